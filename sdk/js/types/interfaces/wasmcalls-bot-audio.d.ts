// Generated from wit/v0.2 by `npm run types` (jco guest-types; 64-bit integers as QuickJS passes them).
/// <reference path="./wasmcalls-bot-types.d.ts" />
declare module 'wasmcalls:bot/audio@0.2.1' {
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
  export type ChatId = import('wasmcalls:bot/types@0.2.1').ChatId;
  export type RecordTarget = import('wasmcalls:bot/types@0.2.1').RecordTarget;
  export type RecordOptions = import('wasmcalls:bot/types@0.2.1').RecordOptions;
  export type Recording = import('wasmcalls:bot/types@0.2.1').Recording;
  export type Error = import('wasmcalls:bot/types@0.2.1').Error;
}
