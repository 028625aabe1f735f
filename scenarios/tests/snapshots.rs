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

/// The committed bundles of the registered findings (`findings/F*.json`, named in FINDINGS.md
/// and the README) replay to their verdict *and* history digest on this binary, and the run is
/// classified as that finding, so
/// `clustersim replay findings/F1.json` keeps saying "digest matches". `make snapshots`
/// (`INSTA_UPDATE=always`) re-takes them from a fresh run of their scenario and seed, as it
/// re-records the snapshots; review the diff like a snapshot diff.
#[test]
fn finding_bundles_replay_with_their_digest() {
    use scenarios::bundle::Bundle;
    use scenarios::runner::find;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../findings");
    let retake = std::env::var("INSTA_UPDATE").as_deref() == Ok("always");
    for f in scenarios::findings::ALL.iter().map(|f| f.id) {
        let path = dir.join(format!("{f}.json"));
        let old = Bundle::load(&path).expect("bundle loads");
        let def = find(&old.scenario).expect("scenario exists");
        if retake {
            let cfg = resolve(&def, old.seed, &old.mutants, &[]).expect("config resolves");
            let (report, _) = run(&def, &cfg);
            assert_ne!(
                report.verdict,
                scenarios::Verdict::Pass,
                "{f} no longer fails"
            );
            let json = serde_json::to_string_pretty(&Bundle::from_report(&cfg, &report))
                .expect("bundle serialises");
            std::fs::write(&path, json + "\n").expect("bundle written");
            continue;
        }
        let (report, _) = run(&def, &old.config);
        assert_eq!(report.verdict, old.verdict, "{f}: verdict");
        assert_ne!(
            old.verdict,
            scenarios::Verdict::Pass,
            "{f}: bundle of a pass"
        );
        assert_eq!(
            scenarios::findings::classify(&old.config, &report).map(|x| x.id),
            Some(f),
            "{f}: its bundle's run is not classified as {f}"
        );
        assert_eq!(
            report.digest, old.digest,
            "{f}: history digest moved; re-take the bundles with `make snapshots`"
        );
    }
}
