// Musicbot in JavaScript: the same bot as plugins/musicbot (Rust), on the same contract.
//
// /play <file | url | source:arg> or /play replying to an audio file or voice note;
// /queue; /skip, /pause, /resume, /stop, /volume N, /seek SECONDS (admins, unless
// admin_only = false); a "now playing" message with pause/skip/stop buttons; leaves
// when the queue runs out; the queues survive a hot reload. Settings: chat, autoplay,
// admin_only.

import { Bot, Button, NoActiveGroupCall, Source, WasmcallsError } from '../../sdk/js/wasmcalls-bot.js';

const bot = new Bot();

/** One chat's player, kept in bot.state so it survives a reload. */
function player(chat) {
  const players = (bot.state.players ??= {});
  return (players[chat] ??= { now: null, queue: [], paused: false, message: null });
}
const forget = (chat) => { if (bot.state.players) delete bot.state.players[chat]; };
const playing = (chat) => bot.state.players?.[chat]?.now != null;
const sourceOf = (t) => (t.message != null ? Source.message(t.chat, t.message) : Source.parse(t.typed));

/** Runs `f`; a contract error is logged, anything else is a bug and throws. */
function quietly(f, what) {
  try { f(); } catch (e) {
    if (!(e instanceof WasmcallsError)) throw e;
    if (what) bot.log(`${what}: ${e.message}`, 'warn');
  }
}

function buttons(paused) {
  const toggle = paused ? Button('▶ Resume', { data: 'resume' }) : Button('⏸ Pause', { data: 'pause' });
  return [[toggle, Button('⏭ Skip', { data: 'skip' }), Button('⏹ Stop', { data: 'stop' })]];
}

function nowText(chat) {
  const p = bot.state.players?.[chat];
  if (!p || !p.now) return 'Nothing is playing.';
  const t = p.now;
  const state = p.paused ? '⏸ Paused' : '🎵 Now playing';
  const by = t.by ? `\nRequested by \`${t.by}\`` : '';
  const more = p.queue.length ? `\n${p.queue.length} more in the queue` : '';
  return `${state}: **${t.title}**${by}${more}`;
}

const say = (chat, text) => quietly(() => bot.chat.send(chat, text, { format: 'markdown' }), `cannot say ${text} in ${chat}`);
const answer = (m, text) => quietly(() => bot.chat.reply(m, text, { format: 'markdown' }), `cannot answer in ${m.chat}`);

/** Posts a fresh now-playing message (the old one loses its buttons). */
function announce(chat) {
  retire(chat, null);
  const p = player(chat);
  quietly(() => { p.message = bot.chat.send(chat, nowText(chat), { format: 'markdown', buttons: buttons(p.paused) }); },
    `cannot post the now-playing message in ${chat}`);
}

function refresh(chat) {
  const p = player(chat);
  if (p.message == null) return;
  // Telegram refuses an edit that changes nothing: nothing to do.
  quietly(() => bot.chat.edit(chat, p.message, nowText(chat), { format: 'markdown', buttons: buttons(p.paused) }));
}

function retire(chat, last) {
  const p = player(chat);
  if (p.message == null) return;
  const message = p.message;
  p.message = null;
  quietly(() => bot.chat.edit(chat, message, last ?? nowText(chat), { format: 'markdown' }));
}

/** Plays `track` now: joins the call, or switches what it plays. */
function start(chat, track) {
  const status = bot.calls.status(chat);
  bot.calls.play(chat, sourceOf(track));
  // A paused call stays paused across `play`: the new track should sound.
  if (status && status.state === 'paused') bot.calls.resume(chat);
  const p = player(chat);
  p.now = track;
  p.paused = false;
  announce(chat);
}

/** Plays the next queued track, or leaves when there is none. */
function next(chat) {
  for (;;) {
    const p = player(chat);
    if (p.queue.length === 0) {
      p.now = null;
      retire(chat, '✅ The queue is finished.');
      quietly(() => bot.calls.leave(chat));
      forget(chat);
      return;
    }
    const track = p.queue.shift();
    try {
      start(chat, track);
      return;
    } catch (e) {
      if (!(e instanceof WasmcallsError)) throw e;
      say(chat, `⚠️ Skipping **${track.title}**: ${e.message}`);
    }
  }
}

function allowed(chat, user) {
  if (bot.settings.admin_only === false) return true;
  try { return bot.chat.isAdmin(chat, user); } catch { return false; }
}

/** A control from a command or a button: what to tell the user. */
function control(chat, what, arg) {
  if (!playing(chat)) return 'Nothing is playing.';
  let said;
  try {
    switch (what) {
      case 'pause':
        bot.calls.pause(chat);
        player(chat).paused = true;
        said = '⏸ Paused.';
        break;
      case 'resume':
        bot.calls.resume(chat);
        player(chat).paused = false;
        said = '▶ Resumed.';
        break;
      case 'skip':
        next(chat);
        return '⏭ Skipped.';
      case 'stop': {
        const p = player(chat);
        p.queue = [];
        p.now = null;
        retire(chat, '⏹ Stopped.');
        forget(chat);
        bot.calls.leave(chat);
        return '⏹ Stopped.';
      }
      case 'volume': {
        const v = arg.replace(/%$/, '');
        if (!/^\d+$/.test(v) || Number(v) > 200) return 'Usage: `/volume N`, N from 0 to 200.';
        bot.calls.volume(chat, Number(v));
        said = `🔊 Volume ${Number(v)} %.`;
        break;
      }
      case 'seek': {
        const s = Number(arg);
        if (arg === '' || !Number.isFinite(s) || s < 0) return 'Usage: `/seek SECONDS`.';
        bot.calls.seek(chat, s);
        said = `⏩ Moved to ${s} s.`;
        break;
      }
      default:
        return `I do not know ${what}.`;
    }
  } catch (e) {
    if (!(e instanceof WasmcallsError)) throw e;
    return `⚠️ ${e.message}`;
  }
  refresh(chat);
  return said;
}

bot.onStart((me) => {
  bot.log(`musicbot ready (account ${me.user}, bot ${me.bot})`);
  const { chat, autoplay = [] } = bot.settings;
  if (chat == null || autoplay.length === 0) return;
  const tracks = autoplay.map((s) => ({ typed: s, title: s.split('/').pop(), by: 0 }));
  player(chat).queue.push(...tracks.slice(1));
  try {
    start(chat, tracks[0]);
  } catch (e) {
    if (!(e instanceof WasmcallsError)) throw e;
    bot.log(`autoplay in ${chat} failed: ${e.message}`, 'error');
    forget(chat);
  }
});

bot.onMessage('play', (m) => {
  const args = m.command.args;
  const reply = m.replyTo;
  let track;
  if (args) {
    track = { typed: args, title: args.split('/').pop(), by: m.sender };
  } else if (reply && reply.media) {
    const media = reply.media;
    if (media.kind === 'document' && !(media.mimeType ?? '').startsWith('audio/')) return answer(m, 'That file is not audio.');
    const title = media.title ?? media.fileName ?? (media.kind === 'voice' ? 'a voice note' : 'audio');
    track = { chat: m.chat, message: reply.message, title, by: m.sender };
  } else {
    return answer(m, 'Usage: `/play <file or URL>`, or reply `/play` to an audio file or voice note.');
  }
  if (playing(m.chat)) {
    const p = player(m.chat);
    p.queue.push(track);
    answer(m, `➕ Queued #${p.queue.length}: **${track.title}**`);
    refresh(m.chat);
    return;
  }
  try {
    start(m.chat, track);
  } catch (e) {
    if (!(e instanceof WasmcallsError)) throw e;
    forget(m.chat);
    const why = e instanceof NoActiveGroupCall ? 'there is no voice chat here; start one and try again' : e.message;
    answer(m, `⚠️ Cannot play that: ${why}`);
  }
});

bot.onMessage('queue', (m) => {
  if (!playing(m.chat)) return answer(m, 'The queue is empty.');
  let text = nowText(m.chat);
  player(m.chat).queue.forEach((t, i) => { text += `\n${i + 1}. ${t.title}`; });
  answer(m, text);
});

bot.onMessage(['skip', 'pause', 'resume', 'stop', 'volume', 'seek'], (m) => {
  if (!allowed(m.chat, m.sender)) return answer(m, "Only the chat's admins can do that.");
  answer(m, control(m.chat, m.command.name, m.command.args));
});

bot.onCallbackQuery((q) => {
  let text;
  if (!allowed(q.chat, q.sender)) text = "Only the chat's admins can do that.";
  else if (bot.state.players?.[q.chat]?.message !== q.message) text = 'That message is old; use the newest one.';
  else text = control(q.chat, q.data, '');
  quietly(() => bot.chat.answer(q, text), 'cannot answer a button press');
});

bot.onStreamEnd((chat) => next(chat));
bot.onKicked((chat) => forget(chat));
bot.onCallEnded((chat) => forget(chat));
bot.onConnectionLost((chat, reason) => {
  retire(chat, "⚠️ Lost the call's connection.");
  forget(chat);
  bot.log(`lost the call in ${chat}: ${reason}`, 'warn');
});

export const { handler, state, audioEvents } = bot.export();
