//! Regression snapshots: the normalised report of a fixed seed of every scenario, stored under
//! `snapshots/`. A change in behaviour shows up as a snapshot diff; review it with
//! `cargo insta review` and say why in the commit.

use scenarios::catalog;
use scenarios::runner::{normalized, resolve, run};

/// The fixed seed of every snapshot.
const SEED: u64 = 1;

#[test]
fn normalised_reports_match_snapshots() {
    for def in catalog::all() {
        let cfg = resolve(&def, SEED, &[], &[]).unwrap();
        let (report, _) = run(&def, &cfg);
        let value = normalized(&cfg, &report);
        insta::with_settings!({
            snapshot_path => "../../snapshots",
            prepend_module_to_snapshot => false,
            omit_expression => true,
        }, {
            insta::assert_json_snapshot!(def.id, value);
        });
    }
}
