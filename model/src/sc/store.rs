//! The per-shard row store the Raft-group tables are written to: each shard of a node owns
//! its own rows (and its own commitlog), all kept on the node's one simulated disk under the
//! shard's prefix, so a row written to shard 2 is found only by a read of shard 2.
//!
//! This is a deliberately small interface (put / get / scan / delete of a partition's rows,
//! sync) so that moving onto the shared storage engine model is one adapter. Rows are keyed
//! by (shard, table, token, partition key, clustering key) and, like every disk write, are
//! buffered until a sync.

use crate::dht::Token;
use futures::future::LocalBoxFuture;
use sim::{Disk, DiskError};

/// The rows of one node, per shard.
#[derive(Clone)]
pub struct ShardStore {
    disk: Disk,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The disk prefix of a partition: ordered by shard, table, token (as an unsigned ring
/// position) and key.
fn partition_prefix(shard: u32, table: &str, token: Token, pk: &[u8]) -> String {
    let ring = (token.0 as u64) ^ (1 << 63);
    format!("sc/s{shard:05}/{table}/{ring:016x}/{}/", hex(pk))
}

impl ShardStore {
    /// The store on `disk`.
    pub fn new(disk: Disk) -> Self {
        ShardStore { disk }
    }

    /// Buffers a write of row `ck` of partition (`token`, `pk`) of `table` on `shard`.
    pub fn put<T: Clone + 'static>(
        &self,
        shard: u32,
        table: &str,
        token: Token,
        pk: &[u8],
        ck: &str,
        row: T,
    ) {
        let key = format!("{}{ck}", partition_prefix(shard, table, token, pk));
        self.disk.put(&key, row);
    }

    /// Row `ck` of the partition on `shard`, seeing buffered writes.
    pub fn get<T: Clone + 'static>(
        &self,
        shard: u32,
        table: &str,
        token: Token,
        pk: &[u8],
        ck: &str,
    ) -> Option<T> {
        let key = format!("{}{ck}", partition_prefix(shard, table, token, pk));
        self.disk.get(&key)
    }

    /// Every row of the partition on `shard`, in clustering order.
    pub fn scan<T: Clone + 'static>(
        &self,
        shard: u32,
        table: &str,
        token: Token,
        pk: &[u8],
    ) -> Vec<(String, T)> {
        let prefix = partition_prefix(shard, table, token, pk);
        self.disk
            .scan::<T>(&prefix)
            .into_iter()
            .map(|(k, v)| (k[prefix.len()..].to_string(), v))
            .collect()
    }

    /// Buffers the delete of row `ck`.
    pub fn delete(&self, shard: u32, table: &str, token: Token, pk: &[u8], ck: &str) {
        let key = format!("{}{ck}", partition_prefix(shard, table, token, pk));
        self.disk.delete(&key);
    }

    /// Buffers the delete of every row (all of type `T`) of the partition on `shard`.
    pub fn delete_partition<T: Clone + 'static>(
        &self,
        shard: u32,
        table: &str,
        token: Token,
        pk: &[u8],
    ) {
        let prefix = partition_prefix(shard, table, token, pk);
        for (k, _) in self.disk.scan::<T>(&prefix) {
            self.disk.delete(&k);
        }
    }

    /// Makes every buffered write of the node durable.
    pub fn sync(&self) -> LocalBoxFuture<'static, Result<(), DiskError>> {
        let disk = self.disk.clone();
        Box::pin(async move { disk.sync().await })
    }
}
