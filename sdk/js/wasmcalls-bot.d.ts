// Types of the helper layer (wasmcalls-bot.js); the contract's own are in types/.
/// <reference path="./types/bot-with-audio.d.ts" />
import type {
  CallbackQuery, CallStatus, ChatId, Identity, Invite, MediaSource, MemberStatus, Message, MessageId,
  Participant, ParticipantChange, Recording, UserId, AudioBatch, Button as WitButton,
} from 'wasmcalls:bot/types@0.2.2';

export class WasmcallsError extends Error {
  /** The contract's error case, e.g. `not-in-call`. */
  readonly tag: string;
  readonly value: unknown;
}
export class NoActiveGroupCall extends WasmcallsError {}
export class NotInCallError extends WasmcallsError {}
export class AlreadyJoinedError extends WasmcallsError {}
export class StillConnecting extends WasmcallsError {}
export class NothingPlaying extends WasmcallsError {}
export class RateLimited extends WasmcallsError { readonly retryAfter: number; }
export class ClientNotRunning extends WasmcallsError {}
export class NoClient extends WasmcallsError {}
export class PermissionDenied extends WasmcallsError {}
export class InvalidArgument extends WasmcallsError {}
export class SourceError extends WasmcallsError {}
export class TelegramServerError extends WasmcallsError {}

export const Source: {
  file(path: string): MediaSource;
  url(url: string): MediaSource;
  raw(path: string, sampleRate?: number, channels?: number): MediaSource;
  message(chat: ChatId, message: MessageId): MediaSource;
  named(name: string, argument?: string): MediaSource;
  parse(text: string): MediaSource;
};
export function Button(text: string, action: { data: string } | { url: string }): WitButton;

type Format = 'plain' | 'markdown' | 'html';
type Buttons = WitButton[] | WitButton[][];

export interface Calls {
  join(chat: ChatId, source: string | MediaSource, options?: { joinAs?: ChatId; inviteHash?: string; startMuted?: boolean; create?: boolean }): void;
  leave(chat: ChatId, close?: boolean): void;
  play(chat: ChatId, source: string | MediaSource): void;
  pause(chat: ChatId): void;
  resume(chat: ChatId): void;
  mute(chat: ChatId): void;
  unmute(chat: ChatId): void;
  seek(chat: ChatId, seconds: number): void;
  volume(chat: ChatId, percent: number): void;
  status(chat: ChatId): CallStatus | null;
  joined(): CallStatus[];
  participants(chat: ChatId, page?: number): Iterable<Participant>;
  /** Records the call (`mix`: a WAV file; `each`: a folder, a file per participant) into a folder granted by `grants.recordings`. */
  record(chat: ChatId, target: { mix?: string; each?: string; maxSeconds?: number; maxMb?: number }): void;
  /** Stops recording: what was written. */
  stopRecord(chat: ChatId): Recording;
  /** Plays `from`'s call, mixed, into `to`'s call (about 100 ms behind). */
  bridge(from: ChatId, to: ChatId): void;
  unbridge(to: ChatId): void;
  /** Hands the call's audio to `bot.onAudio` as 16-bit PCM (needs `grants.audio`). */
  listen(chat: ChatId, options?: { target?: 'mix' | 'each' | UserId; sampleRate?: 8000 | 12000 | 16000 | 24000 | 48000; channels?: 1 | 2; batchMs?: number }): void;
  unlisten(chat: ChatId): void;
}

export interface Chat {
  send(chat: ChatId, text: string, options?: { format?: Format; replyTo?: MessageId; silent?: boolean; buttons?: Buttons }): MessageId;
  reply(to: Message, text: string, options?: { format?: Format; silent?: boolean; buttons?: Buttons }): MessageId;
  edit(chat: ChatId, message: MessageId, text: string, options?: { format?: Format; buttons?: Buttons }): void;
  delete(chat: ChatId, message: MessageId): void;
  answer(query: string | CallbackQuery, text?: string, alert?: boolean): void;
  member(chat: ChatId, user: UserId): MemberStatus;
  isAdmin(chat: ChatId, user: UserId): boolean;
}

export class Bot {
  readonly calls: Calls;
  readonly chat: Chat;
  /** Handed to the next version across a hot reload (JSON). */
  state: Record<string, any>;
  me: Identity | null;
  readonly settings: Record<string, any>;
  log(message: string, level?: 'trace' | 'debug' | 'info' | 'warn' | 'error'): void;
  onStart(f: (me: Identity) => void): typeof f;
  onMessage(f: (m: Message) => void): typeof f;
  onMessage(command: string | string[], f: (m: Message) => void): typeof f;
  onCallbackQuery(f: (q: CallbackQuery) => void): typeof f;
  onCallbackQuery(data: string, f: (q: CallbackQuery) => void): typeof f;
  onStreamEnd(f: (chat: ChatId) => void): typeof f;
  onParticipants(f: (chat: ChatId, changes: ParticipantChange[]) => void): typeof f;
  onKicked(f: (chat: ChatId) => void): typeof f;
  onCallEnded(f: (chat: ChatId) => void): typeof f;
  onConnectionLost(f: (chat: ChatId, reason: string) => void): typeof f;
  onGroupCallInvite(f: (invite: Invite) => void): typeof f;
  onCustomApi(f: (path: string, body: unknown) => unknown | [number, unknown]): typeof f;
  onRawUpdate(f: (update: Record<string, any>) => void): typeof f;
  onRecordingEnded(f: (chat: ChatId, recording: Recording) => void): typeof f;
  onAudio(f: (chat: ChatId, batch: AudioBatch) => void): typeof f;
  export(): { handler: object; state: object; audioEvents: object };
}
