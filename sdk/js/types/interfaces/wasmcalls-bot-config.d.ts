// Generated from wit/v0.2 by `npm run types` (jco guest-types; 64-bit integers as QuickJS passes them).
declare module 'wasmcalls:bot/config@0.2.2' {
  /**
   * All of them, as a JSON object.
   */
  export function settings(): string;
  /**
   * One setting as a string (a number or boolean written out); none if absent.
   */
  export function getString(key: string): string | undefined;
  /**
   * One setting as an integer; none if absent or not a whole number.
   */
  export function getInt(key: string): number | undefined;
  /**
   * One setting as a boolean; none if absent or not a boolean.
   */
  export function getBool(key: string): boolean | undefined;
  /**
   * The port of the host's HTTP API.
   */
  export function apiPort(): number;
}
