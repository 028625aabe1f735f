//! Determinism of the whole catalog: every scenario, run twice with the same seed, gives the
//! same history digest (DESIGN.md: every scenario in CI is run twice on at least one seed).
//! Also: a panic inside the simulated cluster is a verdict, not a crash of the runner.

use futures::FutureExt;
use scenarios::runner::{resolve, run};
use scenarios::{catalog, RunConfig, ScenarioDef, Tier, Verdict};

#[test]
fn every_scenario_is_deterministic() {
    for def in catalog::all() {
        let cfg = resolve(&def, 3, &[], &[]).unwrap();
        let (a, _) = run(&def, &cfg);
        let (b, _) = run(&def, &cfg);
        assert_eq!(a.digest, b.digest, "{} seed 3 is nondeterministic", def.id);
        assert_eq!(a.events, b.events);
        assert_eq!(a.verdict, b.verdict);
    }
}

fn boom_config(_: &mut RunConfig) {}

#[test]
fn a_panic_in_the_cluster_is_a_panic_verdict() {
    let def = ScenarioDef {
        id: "test.panics",
        tier: Tier::Scripted,
        description: "panics inside a node task",
        mutants: &[],
        marks: &[],
        config: boom_config,
        run: |sim, _cfg| {
            async move {
                let n = sim.add_node(|_| std::future::pending().boxed_local());
                sim.spawn_on(n, async { panic!("boom in a node") });
                sim::time::sleep(sim::time::Duration::from_millis(5)).await;
                scenarios::RunEnd::default()
            }
            .boxed_local()
        },
        checkers: &[],
    };
    let cfg = RunConfig::base(def.id, 1, &[]);
    let (report, _) = run(&def, &cfg);
    assert_eq!(report.verdict, Verdict::Panic);
    assert!(report.panic.as_deref().unwrap().contains("boom in a node"));
    assert_eq!(Verdict::Panic.exit_code(), 4);
}
