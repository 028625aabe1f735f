//! The `clustersim` binary: the CLI in `scenarios::cli`.

fn main() {
    // Rust ignores SIGPIPE, so printing into a closed pipe (`clustersim list | head`) would
    // panic. Restore the default, as command-line tools do: the process ends quietly instead.
    // SAFETY: called once at start-up, before any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    std::process::exit(scenarios::cli::main());
}
