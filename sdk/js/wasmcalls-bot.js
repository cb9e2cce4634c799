// Write wasmcalls bots in JavaScript, on the wasmcalls:bot@0.2.2 contract.
//
//   import { Bot, Button, NoActiveGroupCall } from './wasmcalls-bot.js';
//
//   const bot = new Bot();
//   bot.onMessage('play', (m) => {
//     try { bot.calls.play(m.chat, m.command.args); }
//     catch (e) { if (e instanceof NoActiveGroupCall) bot.chat.reply(m, 'Start a voice chat first.'); else throw e; }
//   });
//   export const { handler, state, audioEvents } = bot.export();
//
// Built into a component with componentize-qjs (QuickJS; `--sync`), which passes
// 64-bit ids as numbers — negative Telegram chat ids arrive and leave intact:
//
//   componentize-qjs --wit wit -n bot-with-audio --js bot.js --module-root . --sync -o bot.wasm
//
// Commands throw errors named like pytgcalls' (NoActiveGroupCall, NotInCallError,
// AlreadyJoinedError, …), all WasmcallsError with the contract's `tag` and `value`.
// `bot.state` is an object handed to the next version across a hot reload (JSON);
// `bot.settings` the plugin's settings.

import * as calls from 'wasmcalls:bot/calls@0.2.2';
import * as chat from 'wasmcalls:bot/chat@0.2.2';
import * as config from 'wasmcalls:bot/config@0.2.2';
import { log } from 'wasmcalls:bot/logging@0.2.2';
import * as audio from 'wasmcalls:bot/audio@0.2.2';

// --- Errors ------------------------------------------------------------------

export class WasmcallsError extends Error {
  constructor(tag, value, message) {
    super(message ?? (typeof value === 'string' ? value : `${tag}${value === undefined ? '' : ` ${JSON.stringify(value)}`}`));
    this.name = this.constructor.name;
    /** The contract's error case, e.g. `not-in-call`. */
    this.tag = tag;
    this.value = value;
  }
}
export class NoActiveGroupCall extends WasmcallsError {}
export class NotInCallError extends WasmcallsError {}
export class AlreadyJoinedError extends WasmcallsError {}
export class StillConnecting extends WasmcallsError {}
export class NothingPlaying extends WasmcallsError {}
export class RateLimited extends WasmcallsError {
  /** Seconds to wait before trying again. */
  get retryAfter() { return this.value; }
}
export class ClientNotRunning extends WasmcallsError {}
export class NoClient extends WasmcallsError {}
export class PermissionDenied extends WasmcallsError {}
export class InvalidArgument extends WasmcallsError {}
export class SourceError extends WasmcallsError {}
export class TelegramServerError extends WasmcallsError {}

const ERRORS = {
  'no-active-group-call': [NoActiveGroupCall, (c) => `chat ${c} has no voice chat running`],
  'not-in-call': [NotInCallError, (c) => `not in chat ${c}'s call`],
  'already-in-call': [AlreadyJoinedError, (c) => `already in chat ${c}'s call`],
  'still-connecting': [StillConnecting, (c) => `chat ${c}'s call is still connecting`],
  'nothing-playing': [NothingPlaying, (c) => `nothing is playing in chat ${c}`],
  'rate-limited': [RateLimited, (s) => `rate-limited: retry in ${s} s`],
  'client-not-running': [ClientNotRunning, () => 'the Telegram client is not connected'],
  'no-client': [NoClient],
  'permission-denied': [PermissionDenied],
  'invalid-argument': [InvalidArgument],
  'source-error': [SourceError],
  telegram: [TelegramServerError, (t) => `Telegram refused it: ${t.code} ${t.name}`],
  other: [WasmcallsError],
};

/** Runs an import, turning a contract error into its exception. */
function call(f, ...args) {
  try {
    return f(...args);
  } catch (e) {
    const p = e && e.payload;
    if (!p || typeof p.tag !== 'string') throw e;
    const [Kind, say] = ERRORS[p.tag] ?? [WasmcallsError];
    throw new Kind(p.tag, p.val, say ? say(p.val) : undefined);
  }
}

// --- Sources and buttons -------------------------------------------------------

/** What a call plays. A plain string works too: a URL, `name:argument`, or a file. */
export const Source = {
  file: (path) => ({ tag: 'file', val: path }),
  url: (url) => ({ tag: 'url', val: url }),
  raw: (path, sampleRate = 48000, channels = 2) => ({ tag: 'raw', val: { path, sampleRate, channels } }),
  /** The audio, voice note or document of a message. */
  message: (chatId, message) => ({ tag: 'message', val: { chat: chatId, message } }),
  named: (name, argument = '') => ({ tag: 'named', val: { name, argument } }),
  parse(text) {
    const t = text.trim();
    if (t.startsWith('http://') || t.startsWith('https://')) return Source.url(t);
    const at = t.indexOf(':');
    if (at > 0 && /^[A-Za-z0-9_-]+$/.test(t.slice(0, at))) return Source.named(t.slice(0, at), t.slice(at + 1));
    return Source.file(t);
  },
};

const source = (s) => (typeof s === 'string' ? Source.parse(s) : s);

/** An inline button: `data` sends the bot a callback query, `url` opens a link. */
export function Button(text, { data, url } = {}) {
  if ((data === undefined) === (url === undefined)) throw new InvalidArgument('invalid-argument', 'a button has either data or a url');
  return { text, action: data !== undefined ? { tag: 'callback', val: data } : { tag: 'url', val: url } };
}

/** Rows of buttons; a flat list is one row. */
function rows(buttons) {
  if (!buttons || buttons.length === 0) return [];
  return Array.isArray(buttons[0]) ? buttons : [buttons];
}

// --- Commands --------------------------------------------------------------------

class Calls {
  /** Joins `chatId`'s call and plays `src`; returns once audio flows. */
  join(chatId, src, { joinAs, inviteHash, startMuted = false, create = false } = {}) {
    call(calls.join, chatId, source(src), { joinAs, inviteHash, startMuted, createIfMissing: create });
  }
  /** Leaves; `close` ends the voice chat for everyone (admins only). */
  leave(chatId, close = false) { call(calls.leave, chatId, close); }
  /** Plays another source in a joined call, or joins to play it. */
  play(chatId, src) {
    if (calls.status(chatId) == null) this.join(chatId, src);
    else call(calls.play, chatId, source(src));
  }
  pause(chatId) { call(calls.pause, chatId); }
  resume(chatId) { call(calls.resume, chatId); }
  mute(chatId) { call(calls.mute, chatId); }
  unmute(chatId) { call(calls.unmute, chatId); }
  seek(chatId, seconds) { call(calls.seek, chatId, Math.round(seconds * 1000)); }
  /** 0–200 %. */
  volume(chatId, percent) { call(calls.setVolume, chatId, percent); }
  status(chatId) { return calls.status(chatId) ?? null; }
  joined() { return calls.joined(); }
  /** Records the call — `{ mix: 'rec/show.wav' }` or `{ each: 'rec' }` (a file per
   *  participant) — into a folder granted by `grants.recordings`. */
  record(chatId, { mix, each, maxSeconds, maxMb } = {}) {
    const target = mix != null ? { tag: 'mix', val: mix } : { tag: 'each', val: each };
    call(audio.record, chatId, target, { maxSeconds, maxMb });
  }
  /** Stops recording: `{ files, lost, dropped, error }`. */
  stopRecord(chatId) { return call(audio.stopRecord, chatId); }
  /** Plays `fromChat`'s call, mixed, into `toChat`'s (about 100 ms behind). */
  bridge(fromChat, toChat) { call(audio.bridge, fromChat, toChat); }
  unbridge(toChat) { call(audio.unbridge, toChat); }
  /** Hands the call's audio to `bot.onAudio` as 16-bit PCM (needs `grants.audio`):
   *  `target` 'mix', 'each', or a participant's user id. */
  listen(chatId, { target = 'mix', sampleRate = 16000, channels = 1, batchMs = 200 } = {}) {
    const who = typeof target === 'number' ? { tag: 'participant', val: target } : { tag: target === 'each' ? 'each' : 'mix' };
    call(audio.listen, chatId, who, { sampleRate, channels, batchMs });
  }
  unlisten(chatId) { call(audio.unlisten, chatId); }
  /** Everyone in the call, fetched page by page as it is iterated. */
  *participants(chatId, page = 100) {
    let offset;
    for (;;) {
      const p = call(calls.participants, chatId, offset, page);
      yield* p.participants;
      if (p.nextOffset == null) return;
      offset = p.nextOffset;
    }
  }
}

class Chat {
  /** Sends a message: its id. `format`: plain, markdown or html. */
  send(chatId, text, { format = 'plain', replyTo, silent = false, buttons } = {}) {
    return call(chat.send, chatId, text, { format, replyTo, silent, buttons: rows(buttons) }).message;
  }
  /** Sends `text` in reply to message `to`. */
  reply(to, text, options = {}) { return this.send(to.chat, text, { ...options, replyTo: to.id }); }
  edit(chatId, message, text, { format = 'plain', buttons } = {}) {
    call(chat.edit, chatId, message, text, format, rows(buttons));
  }
  delete(chatId, message) { call(chat.delete, chatId, message); }
  /** Answers a button press (Telegram shows a spinner until then). */
  answer(query, text, alert = false) {
    call(chat.answerCallback, typeof query === 'string' ? query : query.id, text, alert);
  }
  /** creator, administrator, member, restricted, left or banned. */
  member(chatId, user) { return call(chat.member, chatId, user); }
  isAdmin(chatId, user) { return ['creator', 'administrator'].includes(this.member(chatId, user)); }
}

// QuickJS has no TextEncoder: UTF-8 by way of the URI functions.
const utf8 = (s) => Uint8Array.from(unescape(encodeURIComponent(s)), (c) => c.charCodeAt(0));
const fromUtf8 = (b) => decodeURIComponent(escape(String.fromCharCode(...b)));

// --- The bot -------------------------------------------------------------------

export class Bot {
  constructor() {
    this.calls = new Calls();
    this.chat = new Chat();
    /** Handed to the next version across a hot reload (JSON). */
    this.state = {};
    /** The accounts the host acts through (set at start). */
    this.me = null;
    this._settings = null;
    this._handlers = {};
    this._commands = {};
    this._buttons = {};
  }

  /** The plugin's settings (`[plugins.settings]`). */
  get settings() {
    if (this._settings === null) this._settings = JSON.parse(config.settings() || '{}');
    return this._settings;
  }

  log(message, level = 'info') { log(level, String(message)); }

  _on(event, f) { (this._handlers[event] ??= []).push(f); return f; }
  _fire(event, ...args) { for (const f of this._handlers[event] ?? []) f(...args); }

  onStart(f) { return this._on('start', f); }
  /** `onMessage(f)` for every message, or `onMessage('play', f)` (or a list) for commands. */
  onMessage(command, f) {
    if (typeof command === 'function') return this._on('message', command);
    for (const c of [].concat(command)) this._commands[c.replace(/^\//, '').toLowerCase()] = f;
    return f;
  }
  /** `onCallbackQuery(f)` for every press, or `onCallbackQuery('pause', f)`. */
  onCallbackQuery(data, f) {
    if (typeof data === 'function') return this._on('callback', data);
    this._buttons[data] = f;
    return f;
  }
  onStreamEnd(f) { return this._on('streamEnd', f); }
  onParticipants(f) { return this._on('participants', f); }
  onKicked(f) { return this._on('kicked', f); }
  onCallEnded(f) { return this._on('callEnded', f); }
  onConnectionLost(f) { return this._on('connectionLost', f); }
  onGroupCallInvite(f) { return this._on('invite', f); }
  /** `f(path, body) -> object | [status, object]`: `POST /api/<plugin>`. */
  onCustomApi(f) { return this._on('api', f); }
  /** `f(update)`, the update as an object. */
  onRawUpdate(f) { return this._on('raw', f); }
  /** `f(chat, recording)`: a recording ended by itself; `recording.error` says why. */
  onRecordingEnded(f) { return this._on('recordingEnded', f); }
  /** `f(chat, batch)`: audio of a call it listens to (`batch.pcm`, an Int16Array;
   *  `batch.user`, `batch.atMs`, `batch.dropped`). Keep it quick: batches that arrive
   *  faster than they are handled are dropped and counted. */
  onAudio(f) { return this._on('audio', f); }

  /** The `handler`, `state` and `audioEvents` exports of the component. */
  export() {
    const bot = this;
    const handler = {
      onStart(me) { bot.me = me; bot._fire('start', me); },
      onMessage(m) {
        if (m.command && bot._commands[m.command.name]) bot._commands[m.command.name](m);
        bot._fire('message', m);
      },
      onCallbackQuery(q) {
        if (bot._buttons[q.data]) bot._buttons[q.data](q);
        bot._fire('callback', q);
      },
      onStreamEnd(c) { bot._fire('streamEnd', c); },
      onParticipants(c, changes) { bot._fire('participants', c, changes); },
      onKicked(c) { bot._fire('kicked', c); },
      onCallEnded(c) { bot._fire('callEnded', c); },
      onConnectionLost(c, reason) { bot._fire('connectionLost', c, reason); },
      onGroupCallInvite(i) { bot._fire('invite', i); },
      onCustomApi(request) {
        const [f] = bot._handlers.api ?? [];
        if (!f) return { status: 404, body: JSON.stringify({ error: 'this plugin has no custom API' }) };
        const answer = f(request.path, JSON.parse(request.body || 'null'));
        const [status, payload] = Array.isArray(answer) ? answer : [200, answer];
        return { status, body: JSON.stringify(payload) };
      },
      onRawUpdate(u) { if (bot._handlers.raw) bot._fire('raw', JSON.parse(u)); },
    };
    const state = {
      save() {
        if (Object.keys(bot.state).length === 0) return new Uint8Array();
        return utf8(JSON.stringify(bot.state));
      },
      restore(bytes) { bot.state = JSON.parse(fromUtf8(bytes)); },
    };
    const audioEvents = {
      onRecordingEnded(c, recording) { bot._fire('recordingEnded', c, recording); },
      onAudio(c, batch) { bot._fire('audio', c, batch); },
    };
    return { handler, state, audioEvents };
  }
}
