//! The final state's view of a batch mutation: the replicas of its tablet after convergence and
//! how many of them hold it. Shared by the atomicity and replicas-hold checkers.

use crate::scenario::RunEnd;
use model::batchlog::types::WriteMutation;
use serde_json::{Map, Value};

/// The final state's tablet replicas, live cells and (optionally) tombstones.
pub(crate) struct FinalReplicas<'a> {
    tablets: &'a Map<String, Value>,
    cells: &'a Map<String, Value>,
    tombstones: Option<&'a Map<String, Value>>,
}

/// Who holds one mutation: its tablet, that tablet's final replicas, and how many hold it.
pub(crate) struct Holding<'a> {
    pub tablet: String,
    pub replicas: Vec<&'a str>,
    pub holders: usize,
}

impl Holding<'_> {
    /// A majority of the final replicas, what a QUORUM read needs.
    pub fn needed(&self) -> usize {
        self.replicas.len() / 2 + 1
    }
}

impl<'a> FinalReplicas<'a> {
    /// `None` when the final state has no tablets or cells (nothing to judge). With
    /// `count_tombstones`, a replica's tombstone at the mutation's timestamp or newer holds it too.
    pub fn of(end: &'a RunEnd, count_tombstones: bool) -> Option<Self> {
        let field = |name: &str| end.final_state.get(name).and_then(|v| v.as_object());
        Some(FinalReplicas {
            tablets: field("tablets")?,
            cells: field("cells")?,
            tombstones: if count_tombstones {
                field("tombstones")
            } else {
                None
            },
        })
    }

    fn at(map: &Map<String, Value>, replica: &str, tablet: &str, key: u64) -> Option<u64> {
        map.get(replica)?
            .get(tablet)?
            .get(key.to_string())?
            .as_u64()
    }

    /// The mutation's tablet and who holds it at its timestamp or newer; `None` when the table
    /// has no tablets or the tablet no replicas in the final state.
    pub fn holding(&self, m: &WriteMutation) -> Option<Holding<'a>> {
        let table = m.table.schema_id().0;
        let prefix = format!("table{table}/");
        let n = self
            .tablets
            .keys()
            .filter(|t| t.starts_with(&prefix))
            .count() as u64;
        if n == 0 {
            return None;
        }
        let tablet = format!("table{table}/t{}", m.key % n);
        let replicas: Vec<&str> = self
            .tablets
            .get(&tablet)?
            .as_array()?
            .iter()
            .filter_map(|r| r.as_str())
            .collect();
        let held_at = |replica: &str| {
            let dead = self
                .tombstones
                .and_then(|t| Self::at(t, replica, &tablet, m.key));
            Self::at(self.cells, replica, &tablet, m.key).max(dead)
        };
        let holders = replicas
            .iter()
            .filter(|r| held_at(r).is_some_and(|ts| ts >= m.ts))
            .count();
        Some(Holding {
            tablet,
            replicas,
            holders,
        })
    }
}
