//! Host bindings generated from `wit/v0.1/bot.wit`. Imports are async so a command such
//! as `join-group-call` can await the call manager without blocking a thread, and
//! trappable: a `call-error` the contract knows returns to the plugin, a fault of the
//! host traps it ([`super::host::CommandError`]). Exports are async so events run
//! under tokio with wasmtime's async support.

wasmtime::component::bindgen!({
    path: "wit/v0.1",
    world: "bot",
    imports: { default: async | trappable },
    exports: { default: async },
    trappable_error_type: {
        "wasmcalls:bot/types.call-error" => super::host::CommandError,
    },
});
