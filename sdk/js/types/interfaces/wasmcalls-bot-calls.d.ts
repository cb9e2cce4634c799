// Generated from wit/v0.2 by `npm run types` (jco guest-types; 64-bit integers as QuickJS passes them).
/// <reference path="./wasmcalls-bot-types.d.ts" />
declare module 'wasmcalls:bot/calls@0.2.2' {
  /**
   * Joins `chat`'s call and plays `source`; returns once audio flows.
   */
  export function join(chat: ChatId, source: MediaSource, options: JoinOptions): void;
  /**
   * Leaves `chat`'s call; with `close`, ends the voice chat for everyone (admins only).
   */
  export function leave(chat: ChatId, close: boolean): void;
  /**
   * Plays another source in a call already joined, without reconnecting.
   */
  export function play(chat: ChatId, source: MediaSource): void;
  /**
   * Pauses: nothing is sent, the position is kept.
   */
  export function pause(chat: ChatId): void;
  /**
   * Resumes a paused call from the same sample.
   */
  export function resume(chat: ChatId): void;
  /**
   * Shows our participant as muted; the stream keeps its place (it is paused).
   */
  export function mute(chat: ChatId): void;
  /**
   * Unmutes our participant and resumes the stream.
   */
  export function unmute(chat: ChatId): void;
  /**
   * Moves to `position-ms` in the source (files; a live stream refuses).
   */
  export function seek(chat: ChatId, positionMs: number): void;
  /**
   * Sets the volume in percent, 0–200.
   */
  export function setVolume(chat: ChatId, percent: number): void;
  /**
   * The call in `chat`, if joined.
   */
  export function status(chat: ChatId): CallStatus | undefined;
  /**
   * Every call joined (in chats granted to the plugin).
   */
  export function joined(): Array<CallStatus>;
  /**
   * A page of `chat`'s call's participants: from `offset` (none for the first page),
   * at most `limit` of them.
   */
  export function participants(chat: ChatId, offset: string | undefined, limit: number): ParticipantPage;
  export type ChatId = import('wasmcalls:bot/types@0.2.2').ChatId;
  export type MediaSource = import('wasmcalls:bot/types@0.2.2').MediaSource;
  export type JoinOptions = import('wasmcalls:bot/types@0.2.2').JoinOptions;
  export type CallStatus = import('wasmcalls:bot/types@0.2.2').CallStatus;
  export type ParticipantPage = import('wasmcalls:bot/types@0.2.2').ParticipantPage;
  export type Error = import('wasmcalls:bot/types@0.2.2').Error;
}
