//! The `clustersim` binary: the CLI in `scenarios::cli`.

/// A simulation allocates and frees on every message and event (boxed futures, tasks, events);
/// mimalloc's thread-local free lists serve that pattern faster than glibc's malloc
/// (BENCHMARKS.md). The allocator never reaches a run's logic: nothing depends on addresses.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    // Rust ignores SIGPIPE, so printing into a closed pipe (`clustersim list | head`) would
    // panic. Restore the default, as command-line tools do: the process ends quietly instead.
    // SAFETY: called once at start-up, before any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    std::process::exit(scenarios::cli::main());
}
