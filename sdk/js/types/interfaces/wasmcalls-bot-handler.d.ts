// Generated from wit/v0.2 by `npm run types` (jco guest-types; 64-bit integers as QuickJS passes them).
/// <reference path="./wasmcalls-bot-types.d.ts" />
declare module 'wasmcalls:bot/handler@0.2.2' {
  /**
   * The host is running; `me` are the accounts it acts through.
   */
  export function onStart(me: Identity): void;
  /**
   * A new message in a chat granted to the plugin (each exactly once, even when
   * both accounts see it).
   */
  export function onMessage(message: Message): void;
  /**
   * A button under one of the bot's messages was pressed.
   */
  export function onCallbackQuery(query: CallbackQuery): void;
  /**
   * The stream in `chat` played to its end: exactly once per source, never on
   * pause, never for a source replaced by `play`.
   */
  export function onStreamEnd(chat: ChatId): void;
  /**
   * Who is in `chat`'s call changed.
   */
  export function onParticipants(chat: ChatId, changes: Array<ParticipantChange>): void;
  /**
   * We were removed from `chat`, or our participant from its call: the call is gone.
   */
  export function onKicked(chat: ChatId): void;
  /**
   * `chat`'s voice chat ended: the call is gone.
   */
  export function onCallEnded(chat: ChatId): void;
  /**
   * `chat`'s call lost its connection and could not be recovered: the call is gone.
   */
  export function onConnectionLost(chat: ChatId, reason: string): void;
  /**
   * Someone invited us to a group call.
   */
  export function onGroupCallInvite(invite: Invite): void;
  /**
   * A request to the plugin's HTTP API; the answer is the response.
   */
  export function onCustomApi(request: ApiRequest): ApiResponse;
  /**
   * Every Telegram update about a chat the plugin was granted, as JSON
   * (`{"_": "<constructor>", …fields}`).
   */
  export function onRawUpdate(update: string): void;
  export type ChatId = import('wasmcalls:bot/types@0.2.2').ChatId;
  export type Identity = import('wasmcalls:bot/types@0.2.2').Identity;
  export type Message = import('wasmcalls:bot/types@0.2.2').Message;
  export type CallbackQuery = import('wasmcalls:bot/types@0.2.2').CallbackQuery;
  export type ParticipantChange = import('wasmcalls:bot/types@0.2.2').ParticipantChange;
  export type Invite = import('wasmcalls:bot/types@0.2.2').Invite;
  export type ApiRequest = import('wasmcalls:bot/types@0.2.2').ApiRequest;
  export type ApiResponse = import('wasmcalls:bot/types@0.2.2').ApiResponse;
}
