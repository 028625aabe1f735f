//! Read index (Raft §6.4): a read is answered with the commit index at the time it started,
//! once a majority has acknowledged this leader, in its term, after the read started.

use super::{Core, PendingRead};

impl<C: Clone> Core<C> {
    pub(super) fn start_reads(&mut self, ids: Vec<u64>) {
        assert_eq!(self.log.term(self.commit), Some(self.term));
        self.read_seq += 1;
        for id in ids {
            self.reads_pending.push(PendingRead {
                id,
                index: self.commit,
                seq: self.read_seq,
            });
        }
        if self.quorum() > 1 {
            self.broadcast_heartbeat();
        }
        self.check_reads();
    }

    pub(super) fn check_reads(&mut self) {
        let quorum = self.quorum();
        let progress = &self.progress;
        let mut done = Vec::new();
        self.reads_pending.retain(|r| {
            let acks = 1 + progress
                .values()
                .filter(|p| p.voter && p.read_ack >= r.seq)
                .count();
            if acks >= quorum {
                done.push((r.id, Ok(r.index)));
                false
            } else {
                true
            }
        });
        self.ready.reads.extend(done);
    }
}
