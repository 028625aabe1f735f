# clustersim — common tasks. Everything runs through cargo; no other tool is needed.
.PHONY: run test explore bench snapshots lint mutants

# One scenario, one seed: make run SCENARIO=harness.partition_heals SEED=7
SCENARIO ?= harness.partition_heals
SEED ?= 1
SEEDS ?= 0..1000

run:
	cargo run --release -- run $(SCENARIO) --seed $(SEED)

test:
	cargo test --workspace

explore:
	cargo run --release -- explore --all --seeds $(SEEDS)

mutants:
	cargo run --release -- mutants --seeds 50

bench:
	cargo run --release -- bench

# Re-record every snapshot, then review the diff with git (or `cargo insta review`).
snapshots:
	INSTA_UPDATE=always cargo test -p scenarios --test snapshots

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
