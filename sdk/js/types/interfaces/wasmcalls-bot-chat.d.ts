// Generated from wit/v0.2 by `npm run types` (jco guest-types; 64-bit integers as QuickJS passes them).
/// <reference path="./wasmcalls-bot-types.d.ts" />
declare module 'wasmcalls:bot/chat@0.2.2' {
  /**
   * Sends a message. Telegram's limits are kept for the plugin: a send that would
   * break them waits briefly or fails with `rate-limited`.
   */
  export function send(chat: ChatId, text: string, options: SendOptions): SentMessage;
  /**
   * Replaces a message's text and buttons.
   */
  export function edit(chat: ChatId, message: MessageId, text: string, format: TextFormat, buttons: Array<Array<Button>>): void;
  /**
   * Deletes a message.
   */
  export { _delete as delete };
  function _delete(chat: ChatId, message: MessageId): void;
  /**
   * Answers a button press; `text` shows as a notification (or an alert).
   */
  export function answerCallback(id: string, text: string | undefined, alert: boolean): void;
  /**
   * `user`'s standing in `chat`: creator, admin, member… (to keep controls to admins).
   */
  export function member(chat: ChatId, user: UserId): MemberStatus;
  export type ChatId = import('wasmcalls:bot/types@0.2.2').ChatId;
  export type UserId = import('wasmcalls:bot/types@0.2.2').UserId;
  export type MessageId = import('wasmcalls:bot/types@0.2.2').MessageId;
  export type SendOptions = import('wasmcalls:bot/types@0.2.2').SendOptions;
  export type SentMessage = import('wasmcalls:bot/types@0.2.2').SentMessage;
  export type TextFormat = import('wasmcalls:bot/types@0.2.2').TextFormat;
  export type Button = import('wasmcalls:bot/types@0.2.2').Button;
  export type MemberStatus = import('wasmcalls:bot/types@0.2.2').MemberStatus;
  export type Error = import('wasmcalls:bot/types@0.2.2').Error;
}
