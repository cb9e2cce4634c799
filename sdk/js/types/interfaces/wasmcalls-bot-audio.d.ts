// Generated from wit/v0.2 by `npm run types` (jco guest-types; 64-bit integers as QuickJS passes them).
/// <reference path="./wasmcalls-bot-types.d.ts" />
declare module 'wasmcalls:bot/audio@0.2.2' {
  /**
   * Starts recording `chat`'s call — one recording per call at a time — until it is
   * stopped, reaches a cap, cannot write, or the call ends. Files are flushed every
   * second: a host that dies mid-recording leaves them playable to that point.
   */
  export function record(chat: ChatId, target: RecordTarget, options: RecordOptions): void;
  /**
   * Stops recording `chat`'s call: what was written.
   */
  export function stopRecord(chat: ChatId): Recording;
  /**
   * Plays `from-chat`'s call — everyone in it, mixed, about 100 ms behind — into
   * `to-chat`'s call in place of what it plays, until `unbridge(to-chat)`, another
   * `play` there, or `from-chat`'s call ends (`on-stream-end(to-chat)` then). Both
   * chats must be granted.
   */
  export function bridge(fromChat: ChatId, toChat: ChatId): void;
  /**
   * Ends the bridge into `to-chat`: it plays nothing.
   */
  export function unbridge(toChat: ChatId): void;
  /**
   * Hands `chat`'s call's audio to this plugin's `audio-events.on-audio` as 16-bit
   * PCM batches, until `unlisten(chat)` or the call ends; a second `listen` on the
   * same call replaces the first. Needs `grants.audio`. A plugin slower than the
   * audio loses batches (each batch says how many), never delaying the call.
   */
  export function listen(chat: ChatId, target: ListenTarget, options: ListenOptions): void;
  /**
   * Stops hearing `chat`'s call; the batch begun is still delivered.
   */
  export function unlisten(chat: ChatId): void;
  export type ChatId = import('wasmcalls:bot/types@0.2.2').ChatId;
  export type RecordTarget = import('wasmcalls:bot/types@0.2.2').RecordTarget;
  export type RecordOptions = import('wasmcalls:bot/types@0.2.2').RecordOptions;
  export type Recording = import('wasmcalls:bot/types@0.2.2').Recording;
  export type Error = import('wasmcalls:bot/types@0.2.2').Error;
  export type ListenTarget = import('wasmcalls:bot/types@0.2.2').ListenTarget;
  export type ListenOptions = import('wasmcalls:bot/types@0.2.2').ListenOptions;
}
