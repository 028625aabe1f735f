//! A cluster of nodes serving strongly consistent tables ([`ScCluster`]): boots every node
//! (tablet metadata, the SPEC §7.4 shard-count check, the groups manager), restarts nodes with
//! another shard count, and runs client reads and writes through the tablets' groups.
//!
//! Client path: a key belongs to tablet `key % tablets`; the client's coordinator runs on one
//! of the tablet's replica nodes (upstream forwards to a replica and on to the leader; here
//! the replica's server forwards to the leader). A write proposes `Put` and is `ok` once
//! applied on the coordinator, `unknown` on a timeout, `failed` when the group said it was not
//! appended. A read takes a read barrier (read index through the leader) and then reads the
//! coordinator's applied state: linearizable.

use super::events::{ScClientEvent, ScEvent};
use super::groups::{self, Servers, TabletMeta};
use super::kv::ScCmd;
use super::tablets::{self, TabletMap};
use super::MUTANT_NO_SHARD_COUNT_CHECK;
use crate::raft::{GroupId, RaftConfig, RaftError};
use crate::Outcome;
use futures::FutureExt;
use sim::{NodeCtx, NodeId, Sim};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

/// Shape and timing of an sc cluster.
#[derive(Clone, Debug)]
pub struct ScConfig {
    /// Nodes n1..n{nodes}.
    pub nodes: u32,
    /// Initial shard count of every node.
    pub shards: u32,
    /// Tablets of the strongly consistent table.
    pub tablets: u32,
    /// Replicas per tablet.
    pub rf: usize,
    /// Timing of every tablet group.
    pub raft: RaftConfig,
}

struct Shared {
    meta: Rc<TabletMeta>,
    shards: RefCell<BTreeMap<NodeId, u32>>,
    /// Incarnations that refused to start.
    refused: RefCell<BTreeMap<NodeId, (u32, String)>>,
    cfg: ScConfig,
}

/// A started sc cluster. Cheap to clone.
#[derive(Clone)]
pub struct ScCluster {
    /// The simulation.
    pub sim: Sim,
    shared: Rc<Shared>,
    next_op: Rc<Cell<u64>>,
    /// The nodes, in id order.
    pub nodes: Vec<NodeId>,
}

async fn boot(ctx: NodeCtx, shared: Rc<Shared>) {
    let sim = ctx.sim.clone();
    let node = ctx.node;
    let shards = shared.shards.borrow()[&node];
    let disk = sim.disk(node);
    // Loading tablet metadata: the group0 stand-in's map into system.tablets, then back.
    tablets::persist(&disk, &shared.meta.current());
    let map = tablets::load(&disk);
    sim.record(
        Some(node),
        ScEvent::Boot {
            inc: ctx.incarnation,
            shards,
            replicas: map.local_replicas(node),
        },
    );
    if !sim.mutant(MUTANT_NO_SHARD_COUNT_CHECK) {
        if let Err(message) = tablets::check_tablet_replica_shards(&map, node, shards) {
            tracing::error!("sc: {node} refuses to start: {message}");
            sim.record(
                Some(node),
                ScEvent::BootRefused {
                    inc: ctx.incarnation,
                    shards,
                    message: message.clone(),
                },
            );
            shared
                .refused
                .borrow_mut()
                .insert(node, (ctx.incarnation, message));
            // The process exits: nothing is served until the node is restarted.
            std::future::pending::<()>().await;
        }
    }
    groups::run(ctx, shared.meta.clone(), shards, shared.cfg.raft.clone()).await;
    std::future::pending::<()>().await;
}

impl ScCluster {
    /// Allocates the table's tablets (from the run's `sc/tablets` stream) and boots every node.
    pub fn start(sim: &Sim, cfg: ScConfig) -> ScCluster {
        let ids: Vec<NodeId> = (1..=cfg.nodes).map(NodeId).collect();
        let nodes_with_shards: Vec<(NodeId, u32)> = ids.iter().map(|&n| (n, cfg.shards)).collect();
        let mut rng = sim.rng("sc/tablets");
        let map = TabletMap::allocate(
            &mut rng,
            crate::schema::TableId::user(0),
            cfg.tablets,
            &nodes_with_shards,
            cfg.rf,
        );
        let meta = Rc::new(TabletMeta::default());
        meta.set(map);
        let shared = Rc::new(Shared {
            meta,
            shards: RefCell::new(nodes_with_shards.into_iter().collect()),
            refused: RefCell::new(BTreeMap::new()),
            cfg,
        });
        let nodes = (0..shared.cfg.nodes)
            .map(|_| {
                let s = shared.clone();
                sim.add_node(move |ctx| boot(ctx, s.clone()).boxed_local())
            })
            .collect::<Vec<_>>();
        assert_eq!(nodes, ids);
        ScCluster {
            sim: sim.clone(),
            shared,
            next_op: Rc::new(Cell::new(1)),
            nodes,
        }
    }

    /// The tablet map.
    pub fn tablets(&self) -> TabletMap {
        self.shared.meta.current()
    }

    /// `node`'s shard count (for its current or next incarnation).
    pub fn shards_of(&self, node: NodeId) -> u32 {
        self.shared.shards.borrow()[&node]
    }

    /// The harness fault of SPEC §7.4: restart `node` with `shards` shards.
    pub fn restart_with_shards(&self, node: NodeId, shards: u32) {
        assert!(shards >= 1);
        // Recorded as a crash and a restart; the new count shows in the next `sc_boot`.
        self.shared.shards.borrow_mut().insert(node, shards);
        if self.sim.is_up(node) {
            self.sim.crash(node);
        }
        self.shared.refused.borrow_mut().remove(&node);
        self.sim.restart(node);
    }

    /// Why `node`'s current incarnation refused to start, if it did.
    pub fn refused(&self, node: NodeId) -> Option<String> {
        let r = self.shared.refused.borrow();
        let (inc, msg) = r.get(&node)?;
        (self.sim.is_up(node) && *inc == self.sim.incarnation(node)).then(|| msg.clone())
    }

    /// The server of group `g` on `node`'s current incarnation, if it runs.
    pub fn server(&self, g: GroupId, node: NodeId) -> Option<groups::Server> {
        if !self.sim.is_up(node) {
            return None;
        }
        let s = self
            .sim
            .ext::<Servers>()
            .0
            .borrow()
            .get(&(g, node))
            .cloned()?;
        (s.inc == self.sim.incarnation(node)).then_some(s)
    }

    /// The live, unpaused server leading the highest term of group `g`.
    pub fn leader_of(&self, g: GroupId) -> Option<NodeId> {
        let t = self.tablets();
        let tablet = t.by_group(g)?;
        tablet
            .members()
            .into_iter()
            .filter(|&n| !self.sim.is_paused(n))
            .filter_map(|n| self.server(g, n).map(|s| (n, s)))
            .filter(|(_, s)| s.raft.is_leader())
            .max_by_key(|(_, s)| s.raft.term())
            .map(|(n, _)| n)
    }

    fn new_op(&self) -> u64 {
        let op = self.next_op.get();
        self.next_op.set(op + 1);
        op
    }

    /// Starts a client write of `value` to `key` coordinated on `node` (it dies with the
    /// node); false if `node` runs no server of the key's tablet.
    pub fn write(&self, node: NodeId, key: u64, value: u64) -> bool {
        let g = self.tablets().tablet_of_key(key).raft_group_id;
        let Some(s) = self.server(g, node) else {
            return false;
        };
        let op = self.new_op();
        let sim = self.sim.clone();
        sim.record(
            Some(node),
            ScClientEvent::Invoke {
                op,
                key,
                write: Some(value),
            },
        );
        self.sim.spawn_on(node, async move {
            let outcome = match s.raft.propose(ScCmd::Put { key, value }).await {
                Ok(_) => Outcome::Ok,
                Err(RaftError::Timeout) => Outcome::Unknown,
                Err(_) => Outcome::Failed,
            };
            sim.record(
                Some(node),
                ScClientEvent::Complete {
                    op,
                    outcome,
                    value: None,
                },
            );
        });
        true
    }

    /// Starts a client read of `key` coordinated on `node`; false if `node` runs no server of
    /// the key's tablet.
    pub fn read(&self, node: NodeId, key: u64) -> bool {
        let g = self.tablets().tablet_of_key(key).raft_group_id;
        let Some(s) = self.server(g, node) else {
            return false;
        };
        let op = self.new_op();
        let sim = self.sim.clone();
        sim.record(
            Some(node),
            ScClientEvent::Invoke {
                op,
                key,
                write: None,
            },
        );
        self.sim.spawn_on(node, async move {
            let (outcome, value) = match s.raft.read_barrier().await {
                Ok(()) => (
                    Outcome::Ok,
                    s.raft.with_state(|kv| kv.values.get(&key).copied()),
                ),
                Err(RaftError::Timeout) => (Outcome::Unknown, None),
                Err(_) => (Outcome::Failed, None),
            };
            sim.record(Some(node), ScClientEvent::Complete { op, outcome, value });
        });
        true
    }

    /// What keeps the groups from having converged, by name: a group without a leader, a
    /// member down, refused or behind its leader's commit index.
    pub fn pending(&self) -> Vec<String> {
        let mut left = BTreeSet::new();
        for t in self.tablets().tablets {
            let g = t.raft_group_id;
            let Some(l) = self.leader_of(g) else {
                left.insert(format!("{}/{} ({g}) has no leader", t.table, t.tablet));
                continue;
            };
            let commit = self.server(g, l).map_or(0, |s| s.raft.commit_index());
            for n in t.members() {
                if !self.sim.is_up(n) {
                    left.insert(format!("{n} is down"));
                } else if let Some(msg) = self.refused(n) {
                    left.insert(format!("{n} refused to start: {msg}"));
                } else {
                    match self.server(g, n) {
                        None => {
                            left.insert(format!("{n} runs no server of {g}"));
                        }
                        Some(s) if s.raft.applied_index() < commit => {
                            left.insert(format!(
                                "{n} applied {} of leader {l}'s commit index {commit} ({g})",
                                s.raft.applied_index()
                            ));
                        }
                        Some(_) => {}
                    }
                }
            }
        }
        left.into_iter().collect()
    }

    /// Per group: leader, and per member its shard, term, applied index and values.
    pub fn final_state(&self) -> serde_json::Value {
        let mut groups = serde_json::Map::new();
        for t in self.tablets().tablets {
            let g = t.raft_group_id;
            let mut members = serde_json::Map::new();
            for (n, shard) in &t.replicas {
                let v = match self.server(g, *n) {
                    Some(s) => serde_json::json!({
                        "shard": s.shard,
                        "term": s.raft.term(),
                        "applied": s.raft.applied_index(),
                        "values": s.raft.with_state(|kv| kv.values.clone()),
                    }),
                    None => serde_json::json!({ "shard": shard, "down": true }),
                };
                members.insert(n.to_string(), v);
            }
            groups.insert(
                format!("{}/{}", t.table, t.tablet),
                serde_json::json!({
                    "raft_group_id": g.0,
                    "leader": self.leader_of(g).map(|n| n.to_string()),
                    "members": members,
                }),
            );
        }
        let shards: BTreeMap<String, u32> = self
            .shared
            .shards
            .borrow()
            .iter()
            .map(|(n, s)| (n.to_string(), *s))
            .collect();
        serde_json::json!({ "shards": shards, "tablets": groups })
    }
}
