// Generated from wit/v0.2 by `npm run types` (jco guest-types; 64-bit integers as QuickJS passes them).
/// <reference path="./wasmcalls-bot-types.d.ts" />
declare module 'wasmcalls:bot/audio-events@0.2.2' {
  /**
   * A recording of `chat`'s call ended; `recording.error` says why, if it failed.
   */
  export function onRecordingEnded(chat: ChatId, recording: Recording): void;
  /**
   * A batch of `chat`'s call's audio, for a plugin that called `audio.listen`.
   */
  export function onAudio(chat: ChatId, batch: AudioBatch): void;
  export type ChatId = import('wasmcalls:bot/types@0.2.2').ChatId;
  export type Recording = import('wasmcalls:bot/types@0.2.2').Recording;
  export type AudioBatch = import('wasmcalls:bot/types@0.2.2').AudioBatch;
}
