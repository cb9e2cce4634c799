// {{name}}: a wasmcalls bot. `/play <file or URL>` joins the voice chat and plays it;
// `/stop` leaves. `wasmcalls dev` builds it (componentize-qjs) and reloads it on save;
// `wasmcalls test` runs its scenarios.

import { Bot, NotInCallError, WasmcallsError } from './wasmcalls-bot.js';

const bot = new Bot();

bot.onMessage('play', (m) => {
  const what = m.command.args;
  if (!what) return bot.chat.reply(m, 'Usage: /play <file or URL>');
  try {
    bot.calls.play(m.chat, what);
    bot.chat.reply(m, `▶ Playing ${what}`);
  } catch (e) {
    if (!(e instanceof WasmcallsError)) throw e;
    bot.chat.reply(m, `Cannot play that: ${e.message}`);
  }
});

bot.onMessage('stop', (m) => {
  try {
    bot.calls.leave(m.chat);
    bot.chat.reply(m, '⏹ Stopped');
  } catch (e) {
    if (!(e instanceof NotInCallError)) throw e;
    bot.chat.reply(m, 'Nothing is playing.');
  }
});

export const { handler, state, audioEvents } = bot.export();
