// Generated from wit/v0.2 by `npm run types` (jco guest-types; 64-bit integers as QuickJS passes them).
/// <reference path="./wasmcalls-bot-types.d.ts" />
declare module 'wasmcalls:bot/logging@0.2.2' {
  /**
   * Writes one line.
   */
  export function log(level: LogLevel, message: string): void;
  export type LogLevel = import('wasmcalls:bot/types@0.2.2').LogLevel;
}
