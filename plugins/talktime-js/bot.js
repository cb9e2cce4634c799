// Talk time in JavaScript: how long each person has spoken in a call, from its audio.
//
// /talktime (in a chat the bot is in a call of) answers with everyone's seconds so far.
// It listens to each participant on their own — 16 kHz mono, 200 ms batches, what a
// speech recogniser would take — and counts the batches' length, so a pause is never
// counted. Needs grants.audio. Its custom API: {"listen": CHAT, "file": PATH} joins the
// chat's call playing PATH and listens; {} answers the counts.
import { Bot } from '../../sdk/js/wasmcalls-bot.js';

const bot = new Bot();
const secondsOf = (chat) => ((bot.state.talk ??= {})[chat] ??= {});

bot.onAudio((chat, batch) => {
  const talk = secondsOf(chat);
  const who = batch.user != null ? String(batch.user) : `source-${batch.source}`;
  talk[who] = (talk[who] ?? 0) + batch.pcm.length / 16000;
  const stats = (bot.state.stats ??= { batches: 0, dropped: 0 });
  stats.batches += 1;
  stats.dropped += batch.dropped;
});

bot.onMessage('talktime', (m) => {
  const talk = Object.entries(secondsOf(m.chat)).sort((a, b) => b[1] - a[1]);
  bot.chat.reply(m, talk.length ? talk.map(([who, s]) => `${who}: ${s.toFixed(1)} s`).join('\n') : 'Nobody has spoken yet.');
});

bot.onCustomApi((path, body) => {
  if (body && body.listen != null) {
    bot.calls.play(body.listen, body.file);
    bot.calls.listen(body.listen, { target: 'each', sampleRate: 16000, channels: 1, batchMs: 200 });
    return { ok: true };
  }
  return { talk: bot.state.talk ?? {}, stats: bot.state.stats ?? {} };
});

export const { handler, state, audioEvents } = bot.export();
