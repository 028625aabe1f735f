//! Exploration at scale: nothing of a finished run stays alive from one seed to the next.

use scenarios::runner::{find, resolve, run};

#[test]
fn no_world_outlives_its_run_across_many_seeds() {
    // Every protocol swarm plus a scripted story: after each run on this thread no world of any
    // finished run is alive (the count is per thread, so parallel tests do not disturb it).
    for id in [
        "raft.swarm",
        "topology.swarm",
        "batchlog.swarm",
        "harness.partition_heals",
    ] {
        let def = find(id).expect("scenario exists");
        for seed in 0..4 {
            let cfg = resolve(&def, seed, &[], &[]).expect("config resolves");
            let (report, history) = run(&def, &cfg);
            assert!(report.events > 0 && !history.is_empty());
            assert_eq!(
                sim::world::live_worlds(),
                0,
                "the world of {id} seed {seed} outlived its run"
            );
        }
    }
}
