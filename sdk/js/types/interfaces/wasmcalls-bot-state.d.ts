// Generated from wit/v0.2 by `npm run types` (jco guest-types; 64-bit integers as QuickJS passes them).
declare module 'wasmcalls:bot/state@0.2.2' {
  /**
   * The state to hand over (empty: nothing; the new version starts with `on-start`).
   */
  export function save(): Uint8Array;
  /**
   * Given to the new version instead of `on-start`, with what `save` returned.
   */
  export function restore(state: Uint8Array): void;
}
