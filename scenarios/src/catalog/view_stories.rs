//! The scripted stories of `view.*` (see `view.rs`), one function per scenario.

use super::*;

fn ms(v: &Vb, d: u64) -> u64 {
    v.sim().now().0 + d * 1_000_000
}

async fn built(v: &Vb) {
    let c = v.cluster.clone();
    v.story
        .wait_until("every view built", 40_000, move || {
            vapi::pending(&c).is_empty()
        })
        .await;
}

/// A tablet (of `config_spread`'s three, one per node) whose replica is not on the leader.
fn off_leader(v: &Vb) -> (TabletId, NodeId) {
    let l = v.leader();
    (0..3)
        .map(|i| (v.tablet(i), v.replica_of(v.tablet(i)).node))
        .find(|(_, n)| *n != l)
        .expect("three tablets on three nodes")
}

pub(super) fn story_happy(v: Rc<Vb>) -> LocalBoxFuture<'static, ()> {
    Box::pin(async move {
        v.preload().await;
        v.writes_until.set(ms(&v, 1_800));
        v.spawn_writes();
        v.create(MV1, "ks.mv1").await;
        sleep(Duration::from_millis(200)).await;
        v.create(MV2, "ks.mv2").await;
        built(&v).await;
    })
}

pub(super) fn story_rpc_failure(v: Rc<Vb>) -> LocalBoxFuture<'static, ()> {
    Box::pin(async move {
        v.preload().await;
        let (t, x) = off_leader(&v);
        v.pause_builds(x, Some(t.index));
        v.create(MV1, "ks.mv1").await;
        v.held(x, 1).await;
        // The batch is held on x; kill the coordinator's connection to x: its RPC fails, and
        // the retry (1 s later) must attach to the batch still running there.
        api::inject_disconnect(v.sim(), v.leader(), x);
        sleep(Duration::from_millis(2_500)).await;
        v.expect(
            api::node(v.sim(), x).is_some(),
            "the worker's node stays up",
        );
        v.release_builds(x);
        built(&v).await;
    })
}

pub(super) fn story_leader_change(v: Rc<Vb>) -> LocalBoxFuture<'static, ()> {
    Box::pin(async move {
        let sim = v.sim().clone();
        v.preload().await;
        let (t, x) = off_leader(&v);
        let old = v.leader();
        v.pause_builds(x, Some(t.index));
        v.create(MV1, "ks.mv1").await;
        v.held(x, 1).await;
        // The old coordinator's retry is held on its way to x.
        sim.net().stall(old, x, WorkOnViewBuildingTasks::NAME);
        api::inject_disconnect(&sim, old, x);
        sleep(Duration::from_millis(1_500)).await;
        sim.pause(old);
        let s2 = sim.clone();
        v.story
            .wait_until("a new group0 leader", 20_000, move || {
                current_leader(&s2).is_some_and(|l| l != old)
            })
            .await;
        // The new coordinator attaches to the held batch; then the old term's RPC arrives.
        sleep(Duration::from_millis(2_000)).await;
        sim.net().release(old, x, WorkOnViewBuildingTasks::NAME);
        sleep(Duration::from_millis(800)).await;
        sim.resume(old);
        v.release_builds(x);
        built(&v).await;
    })
}

pub(super) fn story_migration(v: Rc<Vb>) -> LocalBoxFuture<'static, ()> {
    Box::pin(async move {
        let sim = v.sim().clone();
        v.preload().await;
        let t0 = v.tablet(0);
        let src = v.replica_of(t0);
        let dst = Replica {
            node: NodeId(2),
            shard: ShardId(0),
        };
        v.pause_builds(src.node, Some(0));
        v.create(MV1, "ks.mv1").await;
        v.held(src.node, 1).await;
        v.writes_until.set(ms(&v, 3_000));
        v.spawn_writes();
        // Hold the migration in `streaming` (past the abort edge), then let the held batch go:
        // it was aborted at write_both_read_old and must not finish.
        api::enable_injection(&sim, dst.node, "stream_mutation_fragments", false);
        let done = v.spawn_move(t0, src, dst);
        api::wait_for_injection_enter(&sim, dst.node, "stream_mutation_fragments", 1).await;
        v.expect(
            v.stage(t0) == Some(Stage::Streaming),
            "the migration is streaming",
        );
        v.release_builds(src.node);
        sleep(Duration::from_millis(800)).await;
        api::disable_injection(&sim, dst.node, "stream_mutation_fragments");
        if v.story
            .wait_until("the migration ends", 30_000, || done.get())
            .await
        {
            v.expect(v.replica_of(t0) == dst, "tablet moved");
        }
        built(&v).await;
    })
}

pub(super) fn story_revert(v: Rc<Vb>) -> LocalBoxFuture<'static, ()> {
    Box::pin(async move {
        let sim = v.sim().clone();
        v.preload().await;
        let t0 = v.tablet(0);
        let src = v.replica_of(t0);
        let dst = Replica {
            node: NodeId(2),
            shard: ShardId(0),
        };
        v.pause_builds(src.node, Some(0));
        v.create(MV1, "ks.mv1").await;
        v.held(src.node, 1).await;
        api::enable_injection(&sim, dst.node, "stream_mutation_fragments", false);
        let done = v.spawn_move(t0, src, dst);
        api::wait_for_injection_enter(&sim, dst.node, "stream_mutation_fragments", 1).await;
        for n in 1..=3 {
            api::enable_injection(&sim, NodeId(n), "stream_tablet_move_to_cleanup", false);
        }
        api::inject_disconnect(&sim, src.node, dst.node);
        if v.story
            .wait_until("the migration reverts", 30_000, || done.get())
            .await
        {
            v.expect(v.replica_of(t0) == src, "replicas unchanged after revert");
        }
        for n in 1..=3 {
            api::disable_injection(&sim, NodeId(n), "stream_tablet_move_to_cleanup");
        }
        api::disable_injection(&sim, dst.node, "stream_mutation_fragments");
        v.release_builds(src.node);
        built(&v).await;
    })
}

pub(super) fn story_staging(v: Rc<Vb>) -> LocalBoxFuture<'static, ()> {
    Box::pin(async move {
        let sim = v.sim().clone();
        v.preload().await;
        let (t0, t1) = (v.tablet(0), v.tablet(1));
        let src = v.replica_of(t0);
        let dst = Replica {
            node: NodeId(2),
            shard: ShardId(0),
        };
        // Tablet 1's build is held, so the view stays STARTED; tablet 0 builds.
        v.pause_builds(v.replica_of(t1).node, Some(1));
        v.create(MV1, "ks.mv1").await;
        let v2 = v.clone();
        v.story
            .wait_until("tablet 0 built", 20_000, move || v2.build_tasks_of(t0) == 0)
            .await;
        // Hold the migration at `cleanup` (its cleanup RPC to the leaving replica is stalled),
        // so the tablet stays in transition after its staging task exists while tablet 1
        // finishes building.
        let l = v.leader();
        sim.net().stall(l, src.node, "tablet_cleanup");
        let done = v.spawn_move(t0, src, dst);
        let c = v.cluster.clone();
        v.story
            .wait_until("a staging task", 20_000, move || {
                c.state().is_some_and(|s| {
                    s.views
                        .tasks
                        .values()
                        .any(|t| t.kind == TaskKind::ProcessStaging)
                })
            })
            .await;
        v.release_builds(v.replica_of(t1).node);
        let v3 = v.clone();
        v.story
            .wait_until("tablet 1 built", 20_000, move || v3.build_tasks_of(t1) == 0)
            .await;
        sleep(Duration::from_millis(600)).await;
        v.expect(v.stage(t0).is_some(), "tablet 0 still in transition");
        sim.net().release(l, src.node, "tablet_cleanup");
        if v.story
            .wait_until("the migration ends", 30_000, || done.get())
            .await
        {
            v.expect(v.replica_of(t0) == dst, "tablet moved");
        }
        built(&v).await;
    })
}

pub(super) fn story_drop(v: Rc<Vb>) -> LocalBoxFuture<'static, ()> {
    Box::pin(async move {
        v.preload().await;
        let n = v.replica_of(v.tablet(0)).node;
        v.pause_builds(n, None);
        v.create(MV1, "ks.mv1").await;
        v.create(MV2, "ks.mv2").await;
        v.held(n, 1).await;
        let r = vapi::drop_view(&v.cluster, MV1).await;
        v.expect(r.is_ok(), &format!("DROP VIEW ks.mv1: {r:?}"));
        sleep(Duration::from_millis(300)).await;
        v.expect(
            v.cluster.state().is_some_and(|s| {
                !s.views.views.contains_key(&MV1)
                    && s.views.tasks.values().all(|t| t.view != Some(MV1))
            }),
            "the dropped view and its tasks are gone",
        );
        v.release_builds(n);
        built(&v).await;
    })
}

pub(super) fn story_swarm(v: Rc<Vb>) -> LocalBoxFuture<'static, ()> {
    Box::pin(async move {
        let sim = v.sim().clone();
        let mut rng = sim.rng("view_story");
        v.preload().await;
        let chaos = v.story.cfg.phases.chaos_ms;
        v.writes_until.set(ms(&v, chaos.saturating_sub(500)));
        v.spawn_writes();
        sim.spawn_supervisor(crate::workload::moves(&v.cluster, ms(&v, chaos - 1_000)));
        sleep(Duration::from_millis(rng.gen_range(0..400))).await;
        v.create(MV1, "ks.mv1").await;
        sleep(Duration::from_millis(rng.gen_range(300..2_500))).await;
        v.create(MV2, "ks.mv2").await;
    })
}

/// The stage `node` itself has applied for `t` (its own group0 state, not the freshest one).
fn local_stage(v: &Vb, node: NodeId, t: TabletId) -> Option<Stage> {
    v.cluster.services(node).and_then(|s| {
        s.g0.with_state(|st| st.tablets.get(&t).and_then(|i| i.stage()))
    })
}

/// Poll (every 100 µs of virtual time) until `f` holds or `limit_ms` passed; false on timeout.
async fn poll_fine(v: &Vb, limit_ms: u64, f: impl Fn() -> bool) -> bool {
    let until = v.sim().now().0 + limit_ms * 1_000_000;
    while !f() {
        if v.sim().now().0 >= until {
            return false;
        }
        sleep(Duration::from_micros(100)).await;
    }
    true
}

/// Finding F2, step by step, on three nodes (RF 1, both base tablets on one node):
/// 1. the view is built over the preloaded rows;
/// 2. tablet 0 migrates from its replica `src` to a node `dst` that does not lead group0; the
///    moment `dst` has applied `write_both_read_new`, the leader's `raft_append_entries` to
///    `dst` are held, so `dst` answers the stage's barrier and then stays one stage behind;
/// 3. the leader commits `use_new` with the third node's vote; once that node `w` has applied
///    it, `w` coordinates a write of a fresh key of tablet 0: at `use_new` it goes to `dst` only,
///    which accepts it (its fence is older) and generates the view update with its own erm,
///    at `write_both_read_new`, where it is not a natural replica: the update is dropped;
/// 4. the write is acknowledged; the entries to `dst` are released, the migration completes;
///    the view never gets the row (`view_contents`). Passes with
///    `--set topology.view_pairing_any_write_replica=true`.
pub(super) fn story_finding_f2(v: Rc<Vb>) -> LocalBoxFuture<'static, ()> {
    Box::pin(async move {
        let sim = v.sim().clone();
        v.preload().await;
        v.create(MV1, "ks.mv1").await;
        built(&v).await;
        let t0 = v.tablet(0);
        let src = v.replica_of(t0);
        let leader = v.leader();
        let Some(dst_node) = (1..=3).map(NodeId).find(|n| *n != leader && *n != src.node) else {
            v.expect(false, "a node that neither leads group0 nor holds tablet 0");
            return;
        };
        let w = (1..=3)
            .map(NodeId)
            .find(|n| *n != dst_node && *n != leader)
            .unwrap_or(leader);
        let dst = Replica {
            node: dst_node,
            shard: ShardId(0),
        };
        // 2.
        let done = v.spawn_move(t0, src, dst);
        let stalled = poll_fine(&v, 20_000, || {
            local_stage(&v, dst_node, t0) == Some(Stage::WriteBothReadNew)
        })
        .await;
        v.expect(stalled, "the pending replica applies write_both_read_new");
        if !stalled {
            return;
        }
        sim.net().stall(leader, dst_node, "raft_append_entries");
        sim.mark("f2: pending replica held at write_both_read_new");
        // 3.
        let ahead = poll_fine(&v, 20_000, || local_stage(&v, w, t0) == Some(Stage::UseNew)).await;
        v.expect(ahead, "the coordinator of the write applies use_new");
        v.expect(
            local_stage(&v, dst_node, t0) == Some(Stage::WriteBothReadNew),
            "the pending replica is still at write_both_read_new",
        );
        let key = (PRELOAD + 1_000..)
            .find(|k| model::topology::ids::tablet_of(BASE, *k, 2) == t0)
            .expect("an even key");
        if ahead {
            let out = Client::new(&sim, w).write(key, 77_777).await;
            let ok = out == model::topology::events::OpOutcome::Ok;
            v.expect(
                ok,
                &format!("the write of key {key} is acknowledged ({out:?})"),
            );
            if ok && local_stage(&v, dst_node, t0) == Some(Stage::WriteBothReadNew) {
                sim.mark("f2: write at use_new acknowledged by the stale pending replica");
            }
        }
        // 4.
        sim.net().release(leader, dst_node, "raft_append_entries");
        if v.story
            .wait_until("the migration ends", 30_000, || done.get())
            .await
        {
            v.expect(v.replica_of(t0) == dst, "tablet moved");
        }
        built(&v).await;
    })
}
