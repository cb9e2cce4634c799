// Generated from wit/v0.2 by `npm run types` (jco guest-types; 64-bit integers as QuickJS passes them).
/// <reference path="./interfaces/wasmcalls-bot-audio.d.ts" />
/// <reference path="./interfaces/wasmcalls-bot-calls.d.ts" />
/// <reference path="./interfaces/wasmcalls-bot-chat.d.ts" />
/// <reference path="./interfaces/wasmcalls-bot-config.d.ts" />
/// <reference path="./interfaces/wasmcalls-bot-handler.d.ts" />
/// <reference path="./interfaces/wasmcalls-bot-logging.d.ts" />
/// <reference path="./interfaces/wasmcalls-bot-state.d.ts" />
/// <reference path="./interfaces/wasmcalls-bot-types.d.ts" />
declare module 'wasmcalls:bot/bot-with-state@0.2.1' {
  export type * as WasmcallsBotAudio021 from 'wasmcalls:bot/audio@0.2.1'; // import wasmcalls:bot/audio@0.2.1
  export type * as WasmcallsBotCalls021 from 'wasmcalls:bot/calls@0.2.1'; // import wasmcalls:bot/calls@0.2.1
  export type * as WasmcallsBotChat021 from 'wasmcalls:bot/chat@0.2.1'; // import wasmcalls:bot/chat@0.2.1
  export type * as WasmcallsBotConfig021 from 'wasmcalls:bot/config@0.2.1'; // import wasmcalls:bot/config@0.2.1
  export type * as WasmcallsBotLogging021 from 'wasmcalls:bot/logging@0.2.1'; // import wasmcalls:bot/logging@0.2.1
  export type * as WasmcallsBotTypes021 from 'wasmcalls:bot/types@0.2.1'; // import wasmcalls:bot/types@0.2.1
  export * as state from 'wasmcalls:bot/state@0.2.1'; // export wasmcalls:bot/state@0.2.1
  export * as handler from 'wasmcalls:bot/handler@0.2.1'; // export wasmcalls:bot/handler@0.2.1
}
