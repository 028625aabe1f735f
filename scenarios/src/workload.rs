//! Client workloads, apart from the stories and the nemesis (Jepsen's client / nemesis /
//! checker split): each one is a future the phase sequence spawns when chaos starts and that
//! stops by itself at the end of the chaos phase.
//!
//! - [`KvLoad`]: single-row writes to fresh keys, reads and deletes of earlier keys, through
//!   the tablet data plane from random nodes; it remembers every key it wrote so the final
//!   reads can look at all of them.
//! - [`moves`]: random `move_tablet` calls to random (node, shard) replicas.
//! - [`batches`]: logged batches of 2–4 writes to random live coordinators.

use model::batchlog::types::TableId as BatchTable;
use model::batchlog::BatchlogCluster;
use model::node::Cluster;
use model::topology::api;
use model::topology::data::Client;
use model::topology::{Key, NodeId, Replica, ShardId, TableId, TabletId, Value};
use model::Outcome;
use rand::Rng;
use sim::time::{sleep, Duration};
use sim::Sim;
use std::cell::{Cell, RefCell};
use std::rc::Rc;

/// Single-row client load on the tablet data plane, and the keys it wrote.
#[derive(Default)]
pub struct KvLoad {
    keys: RefCell<Vec<Key>>,
    next_key: Cell<Key>,
}

impl KvLoad {
    /// A load whose fresh keys start at 1 000 (scripted stories use smaller keys).
    pub fn new() -> Rc<KvLoad> {
        Rc::new(KvLoad {
            keys: RefCell::new(Vec::new()),
            next_key: Cell::new(1_000),
        })
    }

    /// Write through `c`, remembering the key for the final reads.
    pub async fn write(&self, c: &Client, key: Key, value: Value) -> Outcome {
        self.keys.borrow_mut().push(key);
        c.write(key, value).await
    }

    /// Every key written so far (with repeats), in write order.
    pub fn keys(&self) -> Vec<Key> {
        self.keys.borrow().clone()
    }

    /// The load itself: until `until_ns`, every 5–25 ms one operation from a random node:
    /// 60 % writes of a fresh key (value `key * 10 + 1`), else a read or (1 in 10) a delete of
    /// an earlier key.
    pub fn run(
        self: &Rc<Self>,
        sim: &Sim,
        nodes: u32,
        until_ns: u64,
    ) -> futures::future::LocalBoxFuture<'static, ()> {
        let (me, sim) = (self.clone(), sim.clone());
        Box::pin(async move {
            let mut rng = sim.rng("workload");
            while sim.now().0 < until_ns {
                let c = Client::new(&sim, NodeId(rng.gen_range(1..=nodes)));
                let roll = rng.gen_range(0..10);
                let written = me.keys();
                if roll < 6 || written.is_empty() {
                    let key = me.next_key.get();
                    me.next_key.set(key + 1);
                    let me2 = me.clone();
                    sim.spawn_supervisor(async move {
                        me2.write(&c, key, key * 10 + 1).await;
                    });
                } else {
                    let key = written[rng.gen_range(0..written.len())];
                    let delete = roll == 9;
                    sim.spawn_supervisor(async move {
                        if delete {
                            c.delete(key).await;
                        } else {
                            c.read(key).await;
                        }
                    });
                }
                sleep(Duration::from_millis(rng.gen_range(5..25))).await;
            }
        })
    }
}

/// Random `move_tablet` calls until `until_ns`: every 200–700 ms a tablet not in transition
/// goes to a random (node, shard) on another node. A move that has not started by `until_ns`
/// is abandoned, so no migration begins after the run converged.
pub fn moves(cluster: &Cluster, until_ns: u64) -> futures::future::LocalBoxFuture<'static, ()> {
    let c = cluster.clone();
    Box::pin(async move {
        let sim = c.sim.clone();
        let mut rng = sim.rng("moves");
        let t = c.cfg.clone();
        while sim.now().0 < until_ns {
            sleep(Duration::from_millis(rng.gen_range(200..700))).await;
            let tablet = TabletId::new(
                TableId::user(rng.gen_range(0..t.tables)),
                rng.gen_range(0..t.tablets),
            );
            let Some(state) = c.state() else {
                continue;
            };
            let info = &state.tablets[&tablet];
            if info.transition.is_some() {
                continue;
            }
            let src = info.replicas[0];
            let dst = Replica {
                node: NodeId(rng.gen_range(1..=t.nodes)),
                shard: ShardId(rng.gen_range(0..t.shards)),
            };
            if dst.node == src.node {
                continue;
            }
            let c2 = c.clone();
            let left = Duration::from_nanos(until_ns.saturating_sub(sim.now().0));
            sim.spawn_supervisor(async move {
                let _ = sim::time::timeout(left, api::move_tablet(&c2, tablet, src, dst)).await;
            });
        }
    })
}

/// How dense a batch workload is: clients, and the pause between a client's batches.
#[derive(Clone, Copy, Debug)]
pub struct BatchLoad {
    /// Concurrent clients.
    pub clients: u64,
    /// Pause between two batches of one client, `[min, max)` ms.
    pub gap_ms: (u64, u64),
}

impl BatchLoad {
    /// No client at all (the story is the only writer).
    pub const NONE: BatchLoad = BatchLoad {
        clients: 0,
        gap_ms: (0, 0),
    };
    /// Two clients, a batch every 30–120 ms each.
    pub const LIGHT: BatchLoad = BatchLoad {
        clients: 2,
        gap_ms: (30, 120),
    };
    /// Four clients, a batch every 5–25 ms each (the #23358 workload).
    pub const STEADY: BatchLoad = BatchLoad {
        clients: 4,
        gap_ms: (5, 25),
    };
}

/// One batch client: until `until_ns`, logged batches of 2–4 writes over the user tables
/// (keys 0..64, value `client * 1e6 + n`), each to a random live coordinator.
pub fn batches(
    c: &BatchlogCluster,
    client: u64,
    gap_ms: (u64, u64),
    until_ns: u64,
) -> futures::future::LocalBoxFuture<'static, ()> {
    batches_over(c, client, gap_ms, until_ns, 64)
}

/// [`batches`] over keys `0..keys` (a wide key space keeps a lost write from being hidden by
/// a later write to the same key).
pub fn batches_over(
    c: &BatchlogCluster,
    client: u64,
    gap_ms: (u64, u64),
    until_ns: u64,
    keys: u64,
) -> futures::future::LocalBoxFuture<'static, ()> {
    batches_then(c, client, gap_ms, until_ns, keys, None)
}

/// What a batch client does once a batch is answered: given the batch's writes and the
/// client's outcome (a client that reacts to a timeout, say).
pub type AfterBatch = Rc<dyn Fn(&[(BatchTable, u64, u64)], Outcome)>;

/// [`batches_over`], calling `after` (if given) with each batch's writes and outcome.
pub fn batches_then(
    c: &BatchlogCluster,
    client: u64,
    gap_ms: (u64, u64),
    until_ns: u64,
    keys: u64,
    after: Option<AfterBatch>,
) -> futures::future::LocalBoxFuture<'static, ()> {
    let c = c.clone();
    Box::pin(async move {
        let sim = c.sim().clone();
        let mut rng = sim.rng("workload");
        let tables = c.cfg().tables;
        let mut n = 0u64;
        while sim.now().0 < until_ns {
            let nodes: Vec<NodeId> = c.nodes().into_iter().filter(|x| sim.is_up(*x)).collect();
            if !nodes.is_empty() {
                let coord = nodes[rng.gen_range(0..nodes.len())];
                let k = rng.gen_range(2..=4);
                let writes: Vec<(BatchTable, u64, u64)> = (0..k)
                    .map(|_| {
                        (
                            BatchTable(rng.gen_range(0..tables)),
                            rng.gen_range(0..keys),
                            client * 1_000_000 + n,
                        )
                    })
                    .filter(|(t, _, _)| !c.is_dropped(*t))
                    .collect();
                n += 1;
                if !writes.is_empty() {
                    match &after {
                        Some(after) => {
                            let outcome = c.execute(coord, writes.clone()).await;
                            after(&writes, outcome);
                        }
                        None => {
                            c.execute(coord, writes).await;
                        }
                    }
                }
            }
            sleep(Duration::from_millis(rng.gen_range(gap_ms.0..gap_ms.1))).await;
        }
    })
}
