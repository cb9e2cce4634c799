fn main() -> std::process::ExitCode {
    wasmcalls::cli::main()
}
