//! The `wasmcalls` command: every subcommand is built on the library's public API.

mod cli;

/// jemalloc, not glibc's malloc: measured with `bench pacing` at 1,000 calls (README
/// "The allocator"), an added call took 9 % less memory with a shared source and up to
/// a third less passing Opus through, the same from run to run where glibc's varied
/// with where a join's temporaries fell among its connection's long-lived allocations,
/// and a few % less CPU a frame. A free from another thread goes to that thread's own
/// cache first, not straight to the lock of the arena a normal-priority thread is
/// opening streams in.
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Unused pages are returned to the system by jemalloc's own background threads (made
/// from the first one, at normal priority), never inline in a pacer's allocation.
/// `_RJEM_MALLOC_CONF` in the environment adds to or overrides this.
#[unsafe(export_name = "_rjem_malloc_conf")]
static MALLOC_CONF: &[u8; 23] = b"background_thread:true\0";

fn main() -> std::process::ExitCode {
    cli::main()
}
