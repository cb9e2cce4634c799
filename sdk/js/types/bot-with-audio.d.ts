// Generated from wit/v0.2 by `npm run types` (jco guest-types; 64-bit integers as QuickJS passes them).
/// <reference path="./interfaces/wasmcalls-bot-audio-events.d.ts" />
/// <reference path="./interfaces/wasmcalls-bot-audio.d.ts" />
/// <reference path="./interfaces/wasmcalls-bot-calls.d.ts" />
/// <reference path="./interfaces/wasmcalls-bot-chat.d.ts" />
/// <reference path="./interfaces/wasmcalls-bot-config.d.ts" />
/// <reference path="./interfaces/wasmcalls-bot-handler.d.ts" />
/// <reference path="./interfaces/wasmcalls-bot-logging.d.ts" />
/// <reference path="./interfaces/wasmcalls-bot-state.d.ts" />
/// <reference path="./interfaces/wasmcalls-bot-types.d.ts" />
declare module 'wasmcalls:bot/bot-with-audio@0.2.2' {
  export type * as WasmcallsBotAudio022 from 'wasmcalls:bot/audio@0.2.2'; // import wasmcalls:bot/audio@0.2.2
  export type * as WasmcallsBotCalls022 from 'wasmcalls:bot/calls@0.2.2'; // import wasmcalls:bot/calls@0.2.2
  export type * as WasmcallsBotChat022 from 'wasmcalls:bot/chat@0.2.2'; // import wasmcalls:bot/chat@0.2.2
  export type * as WasmcallsBotConfig022 from 'wasmcalls:bot/config@0.2.2'; // import wasmcalls:bot/config@0.2.2
  export type * as WasmcallsBotLogging022 from 'wasmcalls:bot/logging@0.2.2'; // import wasmcalls:bot/logging@0.2.2
  export type * as WasmcallsBotTypes022 from 'wasmcalls:bot/types@0.2.2'; // import wasmcalls:bot/types@0.2.2
  export * as audioEvents from 'wasmcalls:bot/audio-events@0.2.2'; // export wasmcalls:bot/audio-events@0.2.2
  export * as state from 'wasmcalls:bot/state@0.2.2'; // export wasmcalls:bot/state@0.2.2
  export * as handler from 'wasmcalls:bot/handler@0.2.2'; // export wasmcalls:bot/handler@0.2.2
}
