//! Host bindings generated from `wit/bot.wit`. Imports are async so a command such
//! as `join-group-call` can await the call manager without blocking a thread;
//! exports are async so events run under tokio with wasmtime's async support.

wasmtime::component::bindgen!({
    path: "wit",
    world: "bot",
    imports: { default: async },
    exports: { default: async },
});
