//! Host bindings, one module per contract version: [`v1`] from `wit/v0.1`, [`v2`] from
//! `wit/v0.2`. Both are linked into every plugin's linker (their interfaces are
//! versioned, so they never clash) and a component is run by the world it exports.
//!
//! Imports are async so a command such as `join` can await the call manager without
//! blocking a thread, and trappable: an error the contract knows returns to the
//! plugin, a fault of the host traps it. Exports are async so events run under tokio
//! with wasmtime's async support.

/// `wasmcalls:bot@0.1.0`: PyTgCalls' API, method for method.
pub mod v1 {
    wasmtime::component::bindgen!({
        path: "wit/v0.1",
        world: "bot",
        imports: { default: async | trappable },
        exports: { default: async },
        trappable_error_type: {
            "wasmcalls:bot/types.call-error" => crate::runtime::host::v1::Refusal,
        },
    });
}

/// `wasmcalls:bot@0.2.x`: calls, chat, audio, config and logging, one interface each.
pub mod v2 {
    wasmtime::component::bindgen!({
        path: "wit/v0.2",
        world: "bot",
        imports: { default: async | trappable },
        exports: { default: async },
        trappable_error_type: {
            "wasmcalls:bot/types.error" => crate::runtime::host::v2::Refusal,
        },
    });
}
