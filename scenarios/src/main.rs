//! `clustersim`: run, explore, replay, shrink and explain scenarios by seed.

fn main() {
    std::process::exit(scenarios::cli::main());
}
