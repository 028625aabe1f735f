//! Unit tests of the view-building state: CREATE VIEW, the tablet hooks, the selector, the
//! GC and `update_state`.

use super::*;
use crate::topology::ids::ShardId;
use crate::topology::state::{Transition, TransitionKind};

fn r(n: u32) -> Replica {
    Replica {
        node: NodeId(n),
        shard: ShardId(0),
    }
}

const BASE: TableId = TableId(100);
const VIEW: TableId = TableId(60);

fn tablets(n: u32) -> BTreeMap<TabletId, TabletInfo> {
    (0..n)
        .map(|i| {
            (
                TabletId::new(BASE, i),
                TabletInfo {
                    replicas: vec![r(1)],
                    transition: None,
                },
            )
        })
        .collect()
}

fn created(n: u32) -> (ViewBuildingState, BTreeMap<TabletId, TabletInfo>) {
    let tl = tablets(n);
    let mut vb = ViewBuildingState::default();
    vb.apply(
        &[ViewOp::CreateView {
            view: VIEW,
            base: BASE,
            name: "ks.mv".into(),
        }],
        &tl,
    )
    .unwrap();
    (vb, tl)
}

#[test]
fn create_view_makes_one_task_per_tablet_replica() {
    let (mut vb, _) = created(3);
    assert_eq!(vb.tasks.len(), 3);
    assert!(vb.tasks.values().all(|t| t.kind == TaskKind::BuildRange
        && t.view == Some(VIEW)
        && t.replica == r(1)
        && !t.aborted));
    assert_eq!(vb.views[&VIEW].placement, vec![vec![r(1)]; 3]);
    assert_eq!(
        vb.apply(
            &[ViewOp::CreateView {
                view: VIEW,
                base: BASE,
                name: "again".into()
            }],
            &tablets(3)
        ),
        Err(format!("view {VIEW} exists"))
    );
}

#[test]
fn migration_aborts_then_moves_tasks_and_revert_recreates_them() {
    let t0 = TabletId::new(BASE, 0);
    for (end, to) in [(Stage::EndMigration, r(2)), (Stage::RevertMigration, r(1))] {
        let (mut vb, _) = created(2);
        let before: Vec<TaskId> = vb.tasks.keys().copied().collect();
        vb.on_stage(
            t0,
            Stage::AllowWriteBothReadOld,
            Stage::WriteBothReadOld,
            Some(r(1)),
        );
        let aborted: Vec<&Task> = vb.tasks.values().filter(|t| t.aborted).collect();
        assert_eq!(aborted.len(), 1, "only the migrating tablet's task");
        assert_eq!(aborted[0].tablet, t0);
        vb.on_finish(t0, end, Some(r(1)), Some(r(2)));
        let of_t0: Vec<&Task> = vb.tasks.values().filter(|t| t.tablet == t0).collect();
        assert_eq!(of_t0.len(), 1);
        assert_eq!(of_t0[0].replica, to);
        assert!(!of_t0[0].aborted, "the copy is not aborted");
        assert!(!before.contains(&of_t0[0].id), "the copy has a new id");
    }
}

#[test]
fn mutants_skip_the_abort_and_the_rollback() {
    let t0 = TabletId::new(BASE, 0);
    let (mut vb, _) = created(1);
    vb.flags.no_abort_on_migration = true;
    vb.on_stage(
        t0,
        Stage::AllowWriteBothReadOld,
        Stage::WriteBothReadOld,
        Some(r(1)),
    );
    assert!(vb.tasks.values().all(|t| !t.aborted));
    let (mut vb, _) = created(1);
    vb.flags.no_rollback_on_revert = true;
    vb.on_stage(
        t0,
        Stage::AllowWriteBothReadOld,
        Stage::WriteBothReadOld,
        Some(r(1)),
    );
    vb.on_finish(t0, Stage::RevertMigration, Some(r(1)), Some(r(2)));
    assert!(vb.tasks.is_empty(), "coverage lost");
}

#[test]
fn selector_skips_tablets_in_transition_and_prefers_build_tasks() {
    let (mut vb, mut tl) = created(2);
    let nodes = [NodeId(1)];
    assert!(vb
        .select_batch(&tl, r(1), &BTreeSet::new(), false)
        .is_empty());
    let ops = plan_update(&vb, &nodes, false);
    vb.apply(&ops, &tl).unwrap();
    assert_eq!(vb.processing_base, Some(BASE));
    assert!(vb.building(BASE));
    let t0 = TabletId::new(BASE, 0);
    let t1 = TabletId::new(BASE, 1);
    vb.apply(
        &[ViewOp::CreateStagingTask {
            base: BASE,
            tablet: t1,
            replica: r(1),
        }],
        &tl,
    )
    .unwrap();
    tl.get_mut(&t0).unwrap().transition = Some(Transition {
        kind: TransitionKind::Migration,
        stage: Stage::Streaming,
        new_replicas: vec![r(2)],
        session: None,
        migration: 1,
    });
    let sel = vb.select_batch(&tl, r(1), &BTreeSet::new(), false);
    assert_eq!(sel.len(), 1);
    assert_eq!(vb.tasks[&sel[0]].tablet, t1);
    assert_eq!(vb.tasks[&sel[0]].kind, TaskKind::BuildRange, "build first");
    // Finished build task: the staging task of the same tablet is next.
    let fin: BTreeSet<TaskId> = sel.iter().copied().collect();
    let sel2 = vb.select_batch(&tl, r(1), &fin, false);
    assert_eq!(vb.tasks[&sel2[0]].kind, TaskKind::ProcessStaging);
    // GC deletes the finished one; the view is not SUCCESS while tasks remain.
    vb.apply(&[ViewOp::DeleteFinished { ids: vb.gc(&fin) }], &tl)
        .unwrap();
    assert!(plan_update(&vb, &nodes, false).is_empty());
}

#[test]
fn success_needs_no_build_and_no_staging_task() {
    let tl = tablets(1);
    let (mut vb, _) = created(1);
    let nodes = [NodeId(1), NodeId(2)];
    let ops = plan_update(&vb, &nodes, false);
    vb.apply(&ops, &tl).unwrap();
    let t0 = TabletId::new(BASE, 0);
    vb.apply(
        &[ViewOp::CreateStagingTask {
            base: BASE,
            tablet: t0,
            replica: r(1),
        }],
        &tl,
    )
    .unwrap();
    let build: Vec<TaskId> = vb
        .tasks
        .values()
        .filter(|t| t.kind == TaskKind::BuildRange)
        .map(|t| t.id)
        .collect();
    vb.apply(&[ViewOp::DeleteFinished { ids: build }], &tl)
        .unwrap();
    assert!(plan_update(&vb, &nodes, false).is_empty(), "staging left");
    let ops = plan_update(&vb, &nodes, true);
    assert!(
        matches!(
            ops[0],
            ViewOp::SetStatus {
                status: BuildStatus::Success,
                ..
            }
        ),
        "the mutant declares success early"
    );
    let staging: Vec<TaskId> = vb.tasks.keys().copied().collect();
    vb.apply(&[ViewOp::DeleteFinished { ids: staging }], &tl)
        .unwrap();
    let ops = plan_update(&vb, &nodes, false);
    vb.apply(&ops, &tl).unwrap();
    assert!(vb.built_on(VIEW, &nodes));
    assert_eq!(vb.processing_base, None, "cleared in the same command");
    assert!(plan_update(&vb, &nodes, false).is_empty());
}

#[test]
fn drop_view_deletes_its_tasks_and_aborted_tasks_survive_gc() {
    let t0 = TabletId::new(BASE, 0);
    let (mut vb, tl) = created(1);
    vb.on_stage(
        t0,
        Stage::AllowWriteBothReadOld,
        Stage::WriteBothReadOld,
        Some(r(1)),
    );
    let ids: BTreeSet<TaskId> = vb.tasks.keys().copied().collect();
    assert!(vb.gc(&ids).is_empty(), "an aborted task stays");
    vb.apply(&[ViewOp::DropView { view: VIEW }], &tl).unwrap();
    assert!(vb.tasks.is_empty() && vb.views.is_empty());
}
