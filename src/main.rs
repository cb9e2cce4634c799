//! The `wasmcalls` command: every subcommand is built on the library's public API.

mod cli;

/// jemalloc, not glibc's malloc. Measured with `bench pacing` (README "Per added call"):
/// an added call's connection is long-lived allocations made among the join's
/// temporaries, and glibc's arenas keep the holes between them — jemalloc's size-class
/// slabs cost 10–35 % less memory per added call and a few % less CPU a frame. Its
/// frees from another thread go to that thread's cache, so a pacer does not wait on
/// the lock of an arena a normal-priority thread is opening streams in.
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Unused pages are returned to the system by jemalloc's own background threads (made
/// from the first one, at normal priority), never inline in a pacer's allocation.
/// `_RJEM_MALLOC_CONF` in the environment adds to or overrides this.
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static MALLOC_CONF: &[u8; 23] = b"background_thread:true\0";

fn main() -> std::process::ExitCode {
    cli::main()
}
