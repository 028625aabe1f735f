//! A linearizability search for a single register (one key of a strongly consistent table):
//! Wing & Gong's search with Lowe's just-in-time linearization and memoisation of (linearized
//! set, register value), as in Porcupine. Keys are independent (P-compositionality), so the
//! checker runs one search per key.
//!
//! Client outcomes map to the history as Jepsen's do:
//! - an `ok` write must take effect between its call and its return;
//! - an `unknown` write may take effect at any point after its call, or never: it has no return
//!   (an infinitely late one), so it can always be placed last, where it changes nothing;
//! - a `failed` write never took effect and is left out ([`from_outcomes`]);
//! - an `ok` read returns the register's value at its linearization point; failed and unknown
//!   reads observed nothing and are left out.
//!
//! Times are positions in the history (unique and totally ordered), so "a returned before b
//! was called" is exact. No crate on crates.io offered a maintained Porcupine-style checker
//! with optional (unknown) operations, hence this one (about 150 lines, unit-tested below).

use model::Outcome;
use std::collections::HashSet;

/// What a register operation did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegOp {
    /// Set the value.
    Write(u64),
    /// Read the value (`None`: never written).
    Read(Option<u64>),
}

/// One operation of a key's history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistOp {
    /// The operation's id (for reports).
    pub id: u64,
    /// When it was called (history position).
    pub call: u64,
    /// When it returned; `None` for an operation whose outcome is unknown.
    pub ret: Option<u64>,
    /// What it did.
    pub op: RegOp,
}

/// One client operation as recorded, before outcomes are interpreted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientOp {
    /// The operation's id.
    pub id: u64,
    /// When it was called.
    pub call: u64,
    /// When its outcome was recorded (`None`: never, e.g. its node crashed first).
    pub ret: Option<u64>,
    /// A write of this value, or a read (`Read(v)`: what an ok read returned).
    pub op: RegOp,
    /// The outcome (an operation without a recorded end is `Unknown`).
    pub outcome: Outcome,
}

/// The operations the search must place: ok writes, ok reads, and the unknown writes some ok
/// read observed.
///
/// Every write writes a value no other write writes (the workloads draw values from one
/// counter), which makes two reductions sound and keeps the search small when many writes
/// time out:
/// - an unknown write nobody read can be left out: placed nowhere, it changes no read (each
///   read after where it could go reads another value, so another write comes between);
/// - an unknown write some ok read returned must precede that read's linearization point, so
///   it returns (at the latest) when the earliest such read returns.
pub fn from_outcomes(ops: &[ClientOp]) -> Vec<HistOp> {
    let mut writes = std::collections::BTreeSet::new();
    for o in ops {
        if let RegOp::Write(v) = o.op {
            assert!(writes.insert(v), "value {v} written twice");
        }
    }
    // value → the earliest return of an ok read that returned it
    let mut seen: std::collections::BTreeMap<u64, u64> = std::collections::BTreeMap::new();
    for o in ops {
        if let (RegOp::Read(Some(v)), Outcome::Ok) = (o.op, o.outcome) {
            let r = o.ret.expect("an ok operation has returned");
            let e = seen.entry(v).or_insert(r);
            *e = (*e).min(r);
        }
    }
    ops.iter()
        .filter_map(|o| match (o.op, o.outcome) {
            (RegOp::Write(_), Outcome::Failed) => None,
            (RegOp::Write(v), Outcome::Unknown) => seen.get(&v).map(|&r| HistOp {
                id: o.id,
                call: o.call,
                // A read before the write's call cannot have seen it: the search rejects it.
                ret: Some(r.max(o.call + 1)),
                op: o.op,
            }),
            (RegOp::Write(_), Outcome::Ok) | (RegOp::Read(_), Outcome::Ok) => Some(HistOp {
                id: o.id,
                call: o.call,
                ret: Some(o.ret.expect("an ok operation has returned")),
                op: o.op,
            }),
            (RegOp::Read(_), _) => None,
        })
        .collect()
}

/// The verdict of one search.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinResult {
    /// Some linearization exists.
    Linearizable,
    /// None exists. `stuck_at` is the operation whose return the deepest attempt could not
    /// get past; `placed` how many operations that attempt had linearized.
    NotLinearizable {
        /// Id of the operation the search could not place before its return.
        stuck_at: u64,
        /// Operations linearized by the deepest attempt.
        placed: usize,
    },
    /// The search gave up after `budget` steps.
    Inconclusive,
}

const NIL: usize = usize::MAX;

struct Ev {
    op: usize,
    call: bool,
    prev: usize,
    next: usize,
}

/// Searches for a linearization of `ops` on a register that starts unset, in at most `budget`
/// steps (one step: one attempt to place an operation or one backtrack).
pub fn check_register(ops: &[HistOp], budget: u64) -> LinResult {
    // Events in time order; unknown operations have no return event.
    let mut times: Vec<(u64, usize, bool)> = Vec::new();
    for (i, o) in ops.iter().enumerate() {
        times.push((o.call, i, true));
        if let Some(r) = o.ret {
            assert!(r > o.call, "op {} returns after its call", o.id);
            times.push((r, i, false));
        }
    }
    times.sort();
    // evs[0] is the head sentinel.
    let mut evs: Vec<Ev> = vec![Ev {
        op: NIL,
        call: false,
        prev: NIL,
        next: NIL,
    }];
    let mut call_ev = vec![NIL; ops.len()];
    let mut ret_ev = vec![NIL; ops.len()];
    for (_, i, call) in times {
        let idx = evs.len();
        evs[idx - 1].next = idx;
        evs.push(Ev {
            op: i,
            call,
            prev: idx - 1,
            next: NIL,
        });
        if call {
            call_ev[i] = idx;
        } else {
            ret_ev[i] = idx;
        }
    }
    let unlink = |evs: &mut Vec<Ev>, e: usize| {
        let (p, n) = (evs[e].prev, evs[e].next);
        evs[p].next = n;
        if n != NIL {
            evs[n].prev = p;
        }
    };
    let relink = |evs: &mut Vec<Ev>, e: usize| {
        let (p, n) = (evs[e].prev, evs[e].next);
        evs[p].next = e;
        if n != NIL {
            evs[n].prev = e;
        }
    };
    let must_place = ops.iter().filter(|o| o.ret.is_some()).count();
    let mut placed_finite = 0usize;
    let mut bits = vec![0u64; ops.len().div_ceil(64)];
    let mut state: Option<u64> = None;
    // The cache is only probed, never iterated: its order cannot leak.
    let mut cache: HashSet<(Vec<u64>, Option<u64>)> = HashSet::new();
    let mut stack: Vec<(usize, Option<u64>)> = Vec::new();
    let mut deepest = (0usize, ops.first().map_or(0, |o| o.id));
    let mut steps = 0u64;
    let mut cur = evs[0].next;
    loop {
        if placed_finite == must_place {
            return LinResult::Linearizable;
        }
        steps += 1;
        if steps > budget {
            return LinResult::Inconclusive;
        }
        if cur != NIL && evs[cur].call {
            let i = evs[cur].op;
            let next_state = match ops[i].op {
                RegOp::Write(v) => Some(Some(v)),
                RegOp::Read(v) => (v == state).then_some(state),
            };
            if let Some(ns) = next_state {
                bits[i / 64] |= 1 << (i % 64);
                if cache.insert((bits.clone(), ns)) {
                    stack.push((i, state));
                    state = ns;
                    unlink(&mut evs, call_ev[i]);
                    if ret_ev[i] != NIL {
                        unlink(&mut evs, ret_ev[i]);
                        placed_finite += 1;
                    }
                    cur = evs[0].next;
                    continue;
                }
                bits[i / 64] &= !(1 << (i % 64));
            }
            cur = evs[cur].next;
            continue;
        }
        // A return of an unplaced operation (or the end of the list): backtrack.
        if cur != NIL && stack.len() >= deepest.0 {
            deepest = (stack.len(), ops[evs[cur].op].id);
        }
        let Some((i, old)) = stack.pop() else {
            return LinResult::NotLinearizable {
                stuck_at: deepest.1,
                placed: deepest.0,
            };
        };
        state = old;
        bits[i / 64] &= !(1 << (i % 64));
        if ret_ev[i] != NIL {
            relink(&mut evs, ret_ev[i]);
            placed_finite -= 1;
        }
        relink(&mut evs, call_ev[i]);
        cur = evs[call_ev[i]].next;
    }
}

/// The exact decision for a register whose writes all write distinct values (Gibbons &
/// Korach): group each write with the reads that returned its value (the initial value's reads
/// with a write before time began). With distinct values every linearization places each
/// group contiguously, write first, so one exists iff no read returns before its write is
/// called and the groups can be ordered so that no operation of a later group returned
/// before one of an earlier group was called (the group graph, `A → B` when some operation
/// of `A` returned before some operation of `B` was called, has no cycle). Polynomial:
/// the checker's fallback when the search runs out of budget, and its cross-check in tests.
pub fn check_register_groups(ops: &[HistOp]) -> LinResult {
    const BEFORE_TIME: i128 = i128::MIN / 2;
    // Group of each value: (min return, max call, the write's op id); group 0 is the
    // initial value's.
    let mut group_of: std::collections::BTreeMap<Option<u64>, usize> =
        std::collections::BTreeMap::new();
    let mut groups: Vec<(i128, i128, u64, i128)> = vec![(BEFORE_TIME, BEFORE_TIME, 0, BEFORE_TIME)];
    group_of.insert(None, 0);
    let mut first_read_ret: std::collections::BTreeMap<u64, u64> =
        std::collections::BTreeMap::new();
    for o in ops {
        if let (RegOp::Read(Some(v)), Some(r)) = (o.op, o.ret) {
            let e = first_read_ret.entry(v).or_insert(r);
            *e = (*e).min(r);
        }
    }
    for o in ops {
        if let RegOp::Write(v) = o.op {
            let ret = match o.ret {
                Some(r) => r,
                // An unknown write: placed before its first reader, or nowhere.
                None => match first_read_ret.get(&v) {
                    Some(&r) => r.max(o.call + 1),
                    None => continue,
                },
            };
            let prev = group_of.insert(Some(v), groups.len());
            assert!(prev.is_none(), "value {v} written twice");
            groups.push((ret as i128, o.call as i128, o.id, o.call as i128));
        }
    }
    for o in ops {
        if let RegOp::Read(v) = o.op {
            let Some(&g) = group_of.get(&v) else {
                // Nobody wrote what it read.
                return LinResult::NotLinearizable {
                    stuck_at: o.id,
                    placed: 0,
                };
            };
            let ret = o.ret.expect("a placed read has returned") as i128;
            if ret < groups[g].3 {
                return LinResult::NotLinearizable {
                    stuck_at: o.id,
                    placed: 0,
                };
            }
            let gr = &mut groups[g];
            gr.0 = gr.0.min(ret);
            gr.1 = gr.1.max(o.call as i128);
        }
    }
    // Kahn's algorithm on A → B iff min_ret(A) < max_call(B).
    let n = groups.len();
    let edge = |a: usize, b: usize| a != b && groups[a].0 < groups[b].1;
    let mut indeg: Vec<usize> = (0..n)
        .map(|b| (0..n).filter(|&a| edge(a, b)).count())
        .collect();
    let mut ready: Vec<usize> = (0..n).filter(|&b| indeg[b] == 0).collect();
    let mut done = 0;
    while let Some(a) = ready.pop() {
        done += 1;
        for b in 0..n {
            if edge(a, b) {
                indeg[b] -= 1;
                if indeg[b] == 0 {
                    ready.push(b);
                }
            }
        }
    }
    if done == n {
        LinResult::Linearizable
    } else {
        let stuck = (0..n).find(|&b| indeg[b] > 0).expect("a group on a cycle");
        LinResult::NotLinearizable {
            stuck_at: groups[stuck].2,
            placed: done,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    const BUDGET: u64 = 1_000_000;

    fn w(id: u64, call: u64, ret: Option<u64>, v: u64) -> HistOp {
        HistOp {
            id,
            call,
            ret,
            op: RegOp::Write(v),
        }
    }

    fn r(id: u64, call: u64, ret: u64, v: Option<u64>) -> HistOp {
        HistOp {
            id,
            call,
            ret: Some(ret),
            op: RegOp::Read(v),
        }
    }

    fn bad(ops: &[HistOp]) -> bool {
        matches!(
            check_register(ops, BUDGET),
            LinResult::NotLinearizable { .. }
        )
    }

    fn good(ops: &[HistOp]) -> bool {
        check_register(ops, BUDGET) == LinResult::Linearizable
    }

    #[test]
    fn sequential_histories() {
        assert!(good(&[]));
        assert!(good(&[r(1, 0, 1, None)]));
        assert!(good(&[w(1, 0, Some(1), 7), r(2, 2, 3, Some(7))]));
        // A read after an acknowledged write must see it.
        assert!(bad(&[w(1, 0, Some(1), 7), r(2, 2, 3, None)]));
        // A value nobody wrote.
        assert!(bad(&[r(1, 0, 1, Some(9))]));
        // Stale read after a newer write returned.
        assert!(bad(&[
            w(1, 0, Some(1), 1),
            w(2, 2, Some(3), 2),
            r(3, 4, 5, Some(1))
        ]));
    }

    #[test]
    fn concurrent_operations_may_go_either_way() {
        // A read concurrent with a write sees the old or the new value.
        assert!(good(&[w(1, 0, Some(3), 1), r(2, 1, 2, None)]));
        assert!(good(&[w(1, 0, Some(3), 1), r(2, 1, 2, Some(1))]));
        // Two concurrent writes, then reads in one order: fine.
        let base = [w(1, 0, Some(3), 1), w(2, 1, Some(4), 2)];
        let mut h = base.to_vec();
        h.extend([r(3, 5, 6, Some(1)), r(4, 7, 8, Some(1))]);
        assert!(good(&h));
        // ... but a later read cannot flip back: 1, then 2, then 1.
        let mut h = base.to_vec();
        h.extend([
            r(3, 5, 6, Some(1)),
            r(4, 7, 8, Some(2)),
            r(5, 9, 10, Some(1)),
        ]);
        assert!(bad(&h));
    }

    #[test]
    fn concurrent_reads_must_agree_with_one_order() {
        // Two reads overlapping a write, in sequence: new then old is impossible.
        assert!(bad(&[
            w(1, 0, Some(10), 1),
            r(2, 1, 2, Some(1)),
            r(3, 3, 4, None)
        ]));
        assert!(good(&[
            w(1, 0, Some(10), 1),
            r(2, 1, 2, None),
            r(3, 3, 4, Some(1))
        ]));
    }

    #[test]
    fn unknown_writes_may_apply_late_or_never() {
        // Never applied.
        assert!(good(&[
            w(1, 0, None, 5),
            r(2, 1, 2, None),
            r(3, 10, 11, None)
        ]));
        // Applied long after the client gave up.
        assert!(good(&[
            w(1, 0, None, 5),
            r(2, 1, 2, None),
            r(3, 10, 11, Some(5))
        ]));
        // But once seen, it stays.
        assert!(bad(&[
            w(1, 0, None, 5),
            r(2, 1, 2, Some(5)),
            r(3, 10, 11, None)
        ]));
        // It cannot apply before its call.
        assert!(bad(&[r(2, 0, 1, Some(5)), w(1, 2, None, 5)]));
    }

    #[test]
    fn failed_writes_never_apply() {
        let ops = [
            ClientOp {
                id: 1,
                call: 0,
                ret: Some(1),
                op: RegOp::Write(4),
                outcome: Outcome::Failed,
            },
            ClientOp {
                id: 2,
                call: 2,
                ret: Some(3),
                op: RegOp::Read(Some(4)),
                outcome: Outcome::Ok,
            },
            ClientOp {
                id: 3,
                call: 4,
                ret: Some(5),
                op: RegOp::Read(Some(8)),
                outcome: Outcome::Failed,
            },
        ];
        let h = from_outcomes(&ops);
        assert_eq!(
            h.len(),
            1,
            "the failed write and the failed read are left out"
        );
        assert!(bad(&h));
        let unknown = ClientOp {
            outcome: Outcome::Unknown,
            ret: None,
            ..ops[0]
        };
        assert!(good(&from_outcomes(&[unknown, ops[1]])));
    }

    /// The search and the group decision agree on random small histories, linearizable or not.
    #[test]
    fn search_and_group_decision_agree() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let (mut yes, mut no) = (0, 0);
        for _ in 0..3_000 {
            let n = rng.gen_range(1..9);
            let mut next_value = 1;
            let mut t = 0u64;
            let mut ops = Vec::new();
            for id in 0..n {
                t += rng.gen_range(0..4);
                let call = t * 10 + id;
                let ret = call + rng.gen_range(1..60);
                let op = if rng.gen_bool(0.5) {
                    next_value += 1;
                    RegOp::Write(next_value)
                } else if rng.gen_bool(0.2) {
                    RegOp::Read(None)
                } else {
                    RegOp::Read(Some(rng.gen_range(2..=next_value.max(2))))
                };
                let unknown = matches!(op, RegOp::Write(_)) && rng.gen_bool(0.2);
                // Distinct times, as history positions are.
                ops.push(HistOp {
                    id,
                    call: call * 100 + id,
                    ret: (!unknown).then_some(ret * 100 + 50 + id),
                    op,
                });
            }
            let a = check_register(&ops, BUDGET);
            let b = check_register_groups(&ops);
            assert_eq!(
                a == LinResult::Linearizable,
                b == LinResult::Linearizable,
                "{ops:?}: search {a:?}, groups {b:?}"
            );
            if a == LinResult::Linearizable {
                yes += 1;
            } else {
                no += 1;
            }
        }
        assert!(yes > 300 && no > 300, "both kinds generated: {yes} / {no}");
    }

    #[test]
    fn many_unknown_writes_stay_cheap() {
        // 40 timed-out writes, overlapping everything after them; reads see two of them.
        let mut ops: Vec<ClientOp> = (0..40)
            .map(|i| ClientOp {
                id: i,
                call: i,
                ret: None,
                op: RegOp::Write(i),
                outcome: Outcome::Unknown,
            })
            .collect();
        let read = |id, call, v| ClientOp {
            id,
            call,
            ret: Some(call + 1),
            op: RegOp::Read(v),
            outcome: Outcome::Ok,
        };
        ops.extend([read(100, 100, Some(7)), read(102, 102, Some(30))]);
        let h = from_outcomes(&ops);
        assert_eq!(h.len(), 4, "unread unknown writes are left out");
        assert_eq!(check_register(&h, 1_000), LinResult::Linearizable);
        // Seen in the other order: 30 then 7 is fine too (both unknown, any order)...
        let mut flipped = ops.clone();
        flipped[40].op = RegOp::Read(Some(30));
        flipped[41].op = RegOp::Read(Some(7));
        assert!(good(&from_outcomes(&flipped)));
        // ... but 7, 30, 7 is not.
        let mut back = ops.clone();
        back.push(read(104, 104, Some(7)));
        assert!(bad(&from_outcomes(&back)));
    }

    #[test]
    fn report_names_the_stuck_operation() {
        let res = check_register(&[w(1, 0, Some(1), 7), r(2, 2, 3, None)], BUDGET);
        assert_eq!(
            res,
            LinResult::NotLinearizable {
                stuck_at: 2,
                placed: 1
            }
        );
        let many: Vec<HistOp> = (0..30)
            .map(|i| w(i, 0, Some(100), i))
            .chain([r(99, 101, 102, Some(1000))])
            .collect();
        assert_eq!(check_register(&many, 50), LinResult::Inconclusive);
    }

    /// Histories built from a real sequential execution with widened intervals are always
    /// linearizable; corrupting one read's value usually makes them not.
    #[test]
    fn random_histories_from_a_sequential_execution() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut caught = 0;
        for round in 0..200 {
            let n = rng.gen_range(5..40);
            let mut value = None;
            let mut ops = Vec::new();
            for i in 0..n {
                // The op takes effect at time 10*i + 5; its interval covers that point.
                let at = 10 * i + 5;
                let widen = rng.gen_range(0..3u64).min(i);
                let call = at - rng.gen_range(1..=5 + 10 * widen);
                let ret = at + rng.gen_range(1..=25);
                let op = if rng.gen_bool(0.5) {
                    value = Some(round * 1000 + i);
                    RegOp::Write(round * 1000 + i)
                } else {
                    RegOp::Read(value)
                };
                let unknown = matches!(op, RegOp::Write(_)) && rng.gen_bool(0.1);
                ops.push(HistOp {
                    id: i,
                    call,
                    ret: (!unknown).then_some(ret),
                    op,
                });
            }
            // Distinct times: scale and break ties by id.
            for o in ops.iter_mut() {
                o.call = o.call * 100 + o.id;
                o.ret = o.ret.map(|r| r * 100 + 50 + o.id);
            }
            assert!(good(&ops), "round {round}: {ops:?}");
            let reads: Vec<usize> = (0..ops.len())
                .filter(|&i| matches!(ops[i].op, RegOp::Read(_)) && ops[i].ret.is_some())
                .collect();
            assert_eq!(check_register_groups(&ops), LinResult::Linearizable);
            if let Some(&i) = reads.last() {
                ops[i].op = RegOp::Read(Some(999_999));
                assert!(bad(&ops), "a value nobody wrote is caught");
                assert!(matches!(
                    check_register_groups(&ops),
                    LinResult::NotLinearizable { .. }
                ));
                caught += 1;
            }
        }
        assert!(caught > 150);
    }
}
