//! The `wasmcalls` command: every subcommand is built on the library's public API.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
