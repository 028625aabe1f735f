//! A simple load balancer: when `tablet_balancing_enabled`, move one tablet replica from the
//! most loaded to the least loaded non-excluded node whenever their replica counts differ by
//! two or more, with a bound on concurrent transitions. Pure: state in, migrations out.

use super::ids::{NodeId, Replica, ShardId};
use super::state::{TabletUpdate, TopologyState};
use std::collections::BTreeMap;

/// Plan at most one new migration.
pub fn plan(st: &TopologyState, max_concurrent: usize) -> Vec<TabletUpdate> {
    if !st.tablet_balancing_enabled {
        return vec![];
    }
    let in_transition = st
        .tablets
        .values()
        .filter(|t| t.transition.is_some())
        .count();
    if in_transition >= max_concurrent {
        return vec![];
    }
    // Load counts the replicas a node will hold once running transitions finish.
    let mut load: BTreeMap<NodeId, usize> = st
        .normal_nodes()
        .keys()
        .filter(|n| !st.excluded.contains(n))
        .map(|n| (*n, 0))
        .collect();
    for t in st.tablets.values() {
        let set = t
            .transition
            .as_ref()
            .map_or(&t.replicas, |tr| &tr.new_replicas);
        for r in set {
            if let Some(l) = load.get_mut(&r.node) {
                *l += 1;
            }
        }
    }
    let Some((&max_node, &max)) = load
        .iter()
        .max_by_key(|(n, l)| (**l, std::cmp::Reverse(**n)))
    else {
        return vec![];
    };
    let (&min_node, &min) = load
        .iter()
        .min_by_key(|(n, l)| (**l, **n))
        .expect("non-empty");
    if max < min + 2 {
        return vec![];
    }
    for (id, t) in &st.tablets {
        if t.transition.is_some() || t.replicas.iter().any(|r| r.node == min_node) {
            continue;
        }
        if let Some(pos) = t.replicas.iter().position(|r| r.node == max_node) {
            let shards = st.nodes.get(&min_node).copied().unwrap_or(1).max(1);
            let mut next = t.replicas.clone();
            next[pos] = Replica {
                node: min_node,
                shard: ShardId(id.index % shards),
            };
            return vec![TabletUpdate::Start {
                tablet: *id,
                new_replicas: next,
            }];
        }
    }
    vec![]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::ids::{TableId, TabletId};

    #[test]
    fn moves_from_most_to_least_loaded() {
        let nodes = [(NodeId(1), 2), (NodeId(2), 2)].into_iter().collect();
        let r1 = |s| Replica {
            node: NodeId(1),
            shard: ShardId(s),
        };
        let st = TopologyState::initial(nodes, vec![vec![r1(0)], vec![r1(1)], vec![r1(0)]]);
        let p = plan(&st, 2);
        assert_eq!(
            p,
            vec![TabletUpdate::Start {
                tablet: TabletId::new(TableId::user(0), 0),
                new_replicas: vec![Replica {
                    node: NodeId(2),
                    shard: ShardId(0)
                }]
            }]
        );
        let mut off = st.clone();
        off.tablet_balancing_enabled = false;
        assert!(plan(&off, 2).is_empty());
    }

    #[test]
    fn balanced_cluster_is_left_alone() {
        let nodes = [(NodeId(1), 1), (NodeId(2), 1)].into_iter().collect();
        let r = |n| Replica {
            node: NodeId(n),
            shard: ShardId(0),
        };
        let st = TopologyState::initial(nodes, vec![vec![r(1)], vec![r(2)], vec![r(1)]]);
        assert!(plan(&st, 2).is_empty());
    }
}
