//! The swarm generator: draws a [`FaultSchedule`] from the seed, within the fault model a
//! scenario declares.
//!
//! Swarm testing: each seed first picks a random *subset* of the allowed fault kinds, then draws
//! faults only of those kinds, so some seeds hammer one mechanism and others mix several. The
//! generator only injects what the system promises to survive: at most `max_down` nodes are
//! down (crashed, paused or partitioned away) at any moment.

use crate::fault::{EventTrigger, Fault, FaultKind, FaultSchedule, ScheduledFault};
use rand::seq::SliceRandom;
use rand::Rng;
use serde::{Deserialize, Serialize};
use sim::NodeId;

/// What faults a scenario allows, and how many.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultModel {
    /// Allowed kinds (empty: no faults).
    pub kinds: Vec<FaultKind>,
    /// Fewest faults per run.
    pub min_faults: u32,
    /// Most faults per run.
    pub max_faults: u32,
    /// Faults start within this many ms of the chaos phase's start.
    pub window_ms: u64,
    /// Longest duration of a fault episode.
    pub max_duration_ms: u64,
    /// Verbs that stall / drop / delay faults target (empty: all verbs for drop/delay, and no
    /// stalls).
    pub verbs: Vec<String>,
    /// Most nodes down (crashed, paused, or on the minority side of a partition) at once.
    pub max_down: u32,
    /// State-triggered faults the swarm may add (each with its own share of seeds).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub triggered: Vec<TriggeredFault>,
    /// The model's injection points the swarm may enable (buggify) as
    /// [`Fault::Injection`] faults, when `kinds` has [`FaultKind::Injection`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub injections: Vec<BuggifyPoint>,
    /// Largest clock offset (either way) a [`Fault::ClockSkew`] draws, in ms. With
    /// [`FaultKind::ClockSkew`] in `kinds` the swarm draws skew episodes on single nodes; 0 (and
    /// no drift) leaves that kind out.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub clock_skew_ms: u64,
    /// Largest clock drift (either way) a [`Fault::ClockSkew`] draws, in parts per million.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub clock_drift_ppm: u64,
    /// Skew every node's clock for the whole run (from the chaos start until the heal), each
    /// by its own offset and drift drawn within `clock_skew_ms` / `clock_drift_ppm`, whatever
    /// `kinds` allows: the knob a scripted scenario takes
    /// (`--set fault_model.clock_skew_ms=200 --set fault_model.skew_every_node=true`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub skew_every_node: bool,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

fn is_false(v: &bool) -> bool {
    !*v
}

impl FaultModel {
    /// The fields a serialised model leaves out while they hold their defaults, with those
    /// defaults, so that `--set fault_model.<field>=…` can name them.
    pub fn optional_fields() -> Vec<(&'static str, serde_json::Value)> {
        vec![
            ("triggered", serde_json::json!([])),
            ("injections", serde_json::json!([])),
            ("clock_skew_ms", serde_json::json!(0)),
            ("clock_drift_ppm", serde_json::json!(0)),
            ("skew_every_node", serde_json::json!(false)),
        ]
    }

    /// Does the model allow any clock skew?
    pub fn skews_clocks(&self) -> bool {
        self.clock_skew_ms > 0 || self.clock_drift_ppm > 0
    }
}

/// A clock skew within `model`'s bounds for `node`.
fn draw_skew(model: &FaultModel, node: NodeId, rng: &mut impl Rng) -> Fault {
    let s = model.clock_skew_ms as i64;
    let d = model.clock_drift_ppm.min(999_999) as i64;
    Fault::ClockSkew {
        node,
        offset_ms: rng.gen_range(-s..=s),
        drift_ppm: if d > 0 { rng.gen_range(-d..=d) } else { 0 },
    }
}

/// An injection point of the model that buggify may enable.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuggifyPoint {
    /// The point's name, as the model declares it.
    pub name: String,
    /// Longest the point may stay enabled: for a wait-for-message point, below the deadline
    /// after which a forgotten message is a test failure. The swarm's kind mix caps it at the
    /// model's `max_duration_ms`; [`BuggifyPoint::episodes`] do not.
    pub max_hold_ms: u64,
    /// Shortest hold of the point's [`BuggifyPoint::episodes`] (0: 1 ms).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub min_hold_ms: u64,
    /// Episodes of this point in *every* seed, besides what the swarm's kind mix draws: a
    /// count from this inclusive range, each on a random node, starting within the model's
    /// `window_ms`, held `min_hold_ms..=max_hold_ms` (a one-shot error armed for a while, a
    /// replay pass held until a random release). For points a scenario needs in every run,
    /// not only in the seeds whose kind subset has `injection`. `[0, 0]`: none.
    #[serde(default, skip_serializing_if = "is_no_range")]
    pub episodes: [u32; 2],
    /// Whether those episodes are one-shot (`None`: a coin per episode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub one_shot: Option<bool>,
}

fn is_no_range(r: &[u32; 2]) -> bool {
    r[1] == 0
}

impl BuggifyPoint {
    /// A point the swarm's kind mix may enable for up to `max_hold_ms`.
    pub fn new(name: &str, max_hold_ms: u64) -> BuggifyPoint {
        BuggifyPoint {
            name: name.into(),
            max_hold_ms,
            min_hold_ms: 0,
            episodes: [0, 0],
            one_shot: None,
        }
    }

    /// Also `episodes` (an inclusive count range) of it in every seed, each held
    /// `min_hold_ms..=max_hold_ms`, one-shot or not.
    pub fn every_seed(mut self, episodes: [u32; 2], min_hold_ms: u64, one_shot: bool) -> Self {
        self.episodes = episodes;
        self.min_hold_ms = min_hold_ms;
        self.one_shot = Some(one_shot);
        self
    }
}

/// A state-triggered fault a scenario offers the swarm: "when this event occurs, do that".
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggeredFault {
    /// The trigger. Its `nth` is the largest occurrence the swarm draws (from `1..=nth`); a
    /// `?` segment of a `bind` path becomes a random index (paths index modulo the length).
    pub trigger: EventTrigger,
    /// The fault; fields named in the trigger's `bind` are filled from the event.
    pub fault: Fault,
    /// Share of seeds whose schedule includes it.
    pub probability: f64,
    /// Most milliseconds between the event and the fault.
    #[serde(default)]
    pub max_delay_ms: u64,
    /// The inclusive range its duration is drawn from (default: `1..=max_duration_ms` of the
    /// model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<[u64; 2]>,
    /// Part of the nearest template before it that does not follow one: drawn only when that
    /// one is (then with its own `probability`), on the same occurrence (`nth`) of its trigger — which should name the
    /// same event, so that one event sets off several faults ("when a stream to x opens,
    /// hold x's receiver and then kill the stream's connection").
    #[serde(default, skip_serializing_if = "is_false")]
    pub follows_previous: bool,
    /// Lasts until the heal: no duration is drawn (a crashed node that an operator then
    /// excludes stays down).
    #[serde(default, skip_serializing_if = "is_false")]
    pub until_heal: bool,
    /// Its node leaves the cluster (a crash that a following template's operator exclusion
    /// takes out of the cluster): not counted against `max_down` for the whole run as other
    /// state-triggered down-faults are, but fired only while every node is up
    /// ([`EventTrigger::all_up`]), so it is the only node down when it goes; once it went,
    /// the nemesis skips the schedule's later down-faults (the node stays down until the
    /// heal), so `max_down` holds at run time.
    #[serde(default, skip_serializing_if = "is_false")]
    pub leaves_cluster: bool,
}

impl TriggeredFault {
    /// "When the `nth` (drawn from `1..=nth`) `trigger` occurs, `fault`", in a share of
    /// seeds, within `max_delay_ms` of the event.
    pub fn new(
        trigger: EventTrigger,
        fault: Fault,
        probability: f64,
        max_delay_ms: u64,
    ) -> TriggeredFault {
        TriggeredFault {
            trigger,
            fault,
            probability,
            max_delay_ms,
            duration_ms: None,
            follows_previous: false,
            until_heal: false,
            leaves_cluster: false,
        }
    }

    /// Lasting `lo..=hi` ms.
    pub fn lasting(mut self, lo: u64, hi: u64) -> Self {
        self.duration_ms = Some([lo, hi]);
        self
    }

    /// Lasting until the heal.
    pub fn until_heal(mut self) -> Self {
        self.until_heal = true;
        self
    }

    /// Its node leaves the cluster: fired only while every node is up, not counted against
    /// `max_down` (see [`TriggeredFault::leaves_cluster`]).
    pub fn leaving_cluster(mut self) -> Self {
        self.leaves_cluster = true;
        self
    }

    /// Drawn with the template before it, on the same occurrence of the event.
    pub fn following(mut self) -> Self {
        self.follows_previous = true;
        self
    }
}

impl Default for FaultModel {
    fn default() -> Self {
        FaultModel {
            kinds: Vec::new(),
            min_faults: 0,
            max_faults: 0,
            window_ms: 5_000,
            max_duration_ms: 2_000,
            verbs: Vec::new(),
            max_down: 1,
            triggered: Vec::new(),
            injections: Vec::new(),
            clock_skew_ms: 0,
            clock_drift_ppm: 0,
            skew_every_node: false,
        }
    }
}

/// Intervals during which nodes are down, to respect `max_down`.
struct DownTracker {
    intervals: Vec<(u64, u64, Vec<NodeId>)>,
}

impl DownTracker {
    fn fits(&self, start: u64, end: u64, nodes: &[NodeId], max_down: u32) -> bool {
        // Check every interval boundary inside [start, end): the down set only changes there.
        let mut points = vec![start];
        for (s, _, _) in &self.intervals {
            if *s > start && *s < end {
                points.push(*s);
            }
        }
        points.iter().all(|&t| {
            let mut down: Vec<NodeId> = nodes.to_vec();
            for (s, e, ns) in &self.intervals {
                if *s <= t && t < *e {
                    down.extend(ns.iter().copied());
                }
            }
            // With multiplicity: two overlapping faults on one node count twice, so episodes
            // never overlap on the same node (the second would be a no-op and its undo would
            // cut the first short).
            down.len() as u32 <= max_down
        })
    }
}

/// Draw a schedule for `nodes` from `rng` within `model`.
pub fn generate(model: &FaultModel, nodes: &[NodeId], rng: &mut impl Rng) -> FaultSchedule {
    if nodes.len() < 2 {
        return FaultSchedule::default();
    }
    let (mut faults, mut tracker) = timed(model, nodes, rng);
    // State-triggered faults: when their time comes is only known at run time, so one that
    // takes a node down counts as down for the whole run, and is added only if that fits
    // `max_down` beside the timed episodes.
    // The previous template's drawn occurrence, if it was drawn.
    let mut previous: Option<u32> = None;
    for t in &model.triggered {
        if t.follows_previous && previous.is_none() {
            continue;
        }
        if !rng.gen_bool(t.probability.clamp(0.0, 1.0)) {
            if !t.follows_previous {
                previous = None;
            }
            continue;
        }
        let takes_down = matches!(
            t.fault,
            Fault::Crash { .. } | Fault::Pause { .. } | Fault::Partition { .. } | Fault::KillLeader
        );
        if takes_down && !t.leaves_cluster {
            if !tracker.fits(0, u64::MAX, &[NodeId(0)], model.max_down) {
                if !t.follows_previous {
                    previous = None;
                }
                continue;
            }
            tracker.intervals.push((0, u64::MAX, vec![NodeId(0)]));
        }
        let mut trigger: EventTrigger = t.trigger.clone();
        trigger.nth = match (t.follows_previous, previous) {
            (true, Some(nth)) => nth,
            _ => rng.gen_range(1..=t.trigger.nth.max(1)),
        };
        if !t.follows_previous {
            previous = Some(trigger.nth);
        }
        trigger.all_up |= t.leaves_cluster;
        for path in trigger.bind.values_mut() {
            while path.contains('?') {
                *path = path.replacen('?', &rng.gen_range(0..16u32).to_string(), 1);
            }
        }
        faults.push(ScheduledFault {
            at_ms: rng.gen_range(0..=t.max_delay_ms),
            after: Some(trigger),
            // A fault with a release condition ends when that holds, not after a time.
            duration_ms: (t.fault.lasts() && !t.until_heal && t.trigger.until.is_none()).then(
                || match t.duration_ms {
                    Some([lo, hi]) => rng.gen_range(lo.max(1)..=hi.max(lo).max(1)),
                    None => rng.gen_range(1..=model.max_duration_ms.max(1)),
                },
            ),
            fault: t.fault.clone(),
        });
    }
    every_seed_episodes(model, nodes, &mut faults, rng);
    // Whole-run skew of every node, drawn last so that the rest of a seed's schedule is the
    // same with and without it.
    if model.skew_every_node && model.skews_clocks() {
        for &node in nodes {
            faults.push(ScheduledFault {
                at_ms: 0,
                after: None,
                fault: draw_skew(model, node, rng),
                duration_ms: None,
            });
        }
    }
    faults.sort_by_key(|f| f.at_ms);
    FaultSchedule { faults }
}

/// Does an episode of injection `name` on `node` over `[at, end)` overlap one in `faults`? One
/// episode per point and node at a time: a second enable would be a no-op and the first one's
/// end would cut it short.
fn injection_overlaps(
    faults: &[ScheduledFault],
    node: NodeId,
    name: &str,
    at: u64,
    end: u64,
) -> bool {
    faults.iter().any(|f| {
        matches!(&f.fault, Fault::Injection { node: n, name: m, .. } if *n == node && m == name)
            && f.after.is_none()
            && f.at_ms < end
            && at < f.at_ms + f.duration_ms.unwrap_or(0)
    })
}

/// The [`BuggifyPoint::episodes`] every seed gets.
fn every_seed_episodes(
    model: &FaultModel,
    nodes: &[NodeId],
    faults: &mut Vec<ScheduledFault>,
    rng: &mut impl Rng,
) {
    for point in model.injections.iter().filter(|p| p.episodes[1] > 0) {
        let [lo, hi] = point.episodes;
        let n = rng.gen_range(lo.min(hi)..=hi);
        let mut placed = 0;
        let mut attempts = 0;
        while placed < n && attempts < n * 20 {
            attempts += 1;
            let node = *nodes.choose(rng).expect("nodes");
            let at_ms = rng.gen_range(0..=model.window_ms);
            let min = point.min_hold_ms.max(1);
            let hold = rng.gen_range(min..=point.max_hold_ms.max(min));
            let one_shot = match point.one_shot {
                Some(b) => b,
                None => rng.gen_bool(0.5),
            };
            if injection_overlaps(faults, node, &point.name, at_ms, at_ms + hold) {
                continue;
            }
            placed += 1;
            faults.push(ScheduledFault {
                at_ms,
                after: None,
                fault: Fault::Injection {
                    node,
                    name: point.name.clone(),
                    one_shot,
                },
                duration_ms: Some(hold),
            });
        }
    }
}

/// The time-placed faults of a schedule, and the down intervals they use.
fn timed(
    model: &FaultModel,
    nodes: &[NodeId],
    rng: &mut impl Rng,
) -> (Vec<ScheduledFault>, DownTracker) {
    let mut tracker = DownTracker {
        intervals: Vec::new(),
    };
    if model.kinds.is_empty() || model.max_faults == 0 {
        return (Vec::new(), tracker);
    }
    let mut kinds: Vec<FaultKind> = model
        .kinds
        .iter()
        .copied()
        .filter(|k| *k != FaultKind::Stall || !model.verbs.is_empty())
        .filter(|k| *k != FaultKind::Injection || !model.injections.is_empty())
        // An operator's exclusion follows a crash it names: only in a triggered template.
        .filter(|k| *k != FaultKind::ExcludeNode)
        // Whole-run skews leave no room for episodes on the same nodes.
        .filter(|k| *k != FaultKind::ClockSkew || (model.skews_clocks() && !model.skew_every_node))
        .collect();
    if kinds.is_empty() {
        return (Vec::new(), tracker);
    }
    // Swarm: a random non-empty subset of the allowed kinds.
    kinds.shuffle(rng);
    let keep = rng.gen_range(1..=kinds.len());
    kinds.truncate(keep);
    kinds.sort();

    let n = rng.gen_range(model.min_faults..=model.max_faults.max(model.min_faults));
    let mut faults = Vec::new();
    let mut attempts = 0;
    while faults.len() < n as usize && attempts < n * 20 {
        attempts += 1;
        let kind = *kinds.choose(rng).expect("non-empty");
        let at_ms = rng.gen_range(0..=model.window_ms);
        let duration_ms = rng.gen_range(1..=model.max_duration_ms.max(1));
        let pick = |rng: &mut dyn rand::RngCore| *nodes.choose(rng).expect("nodes");
        let pair = |rng: &mut dyn rand::RngCore| {
            let mut two: Vec<NodeId> = nodes.choose_multiple(rng, 2).copied().collect();
            two.sort();
            if rng.gen_bool(0.5) {
                two.reverse();
            }
            (two[0], two[1])
        };
        let verb = |rng: &mut dyn rand::RngCore| model.verbs.choose(rng).cloned();
        let (fault, down, duration): (Fault, Vec<NodeId>, Option<u64>) = match kind {
            FaultKind::KillConnection => {
                let (from, to) = pair(rng);
                (Fault::KillConnection { from, to }, vec![], None)
            }
            FaultKind::Stall => {
                let (from, to) = pair(rng);
                let verb = verb(rng).expect("stall needs verbs");
                (Fault::Stall { from, to, verb }, vec![], Some(duration_ms))
            }
            FaultKind::Drop => {
                let (from, to) = pair(rng);
                let v = verb(rng);
                let probability = [0.1, 0.5, 1.0][rng.gen_range(0..3)];
                (
                    Fault::Drop {
                        from,
                        to,
                        verb: v,
                        probability,
                    },
                    vec![],
                    Some(duration_ms),
                )
            }
            FaultKind::Delay => {
                let (from, to) = pair(rng);
                let v = verb(rng);
                let ms = rng.gen_range(5..=200);
                (
                    Fault::Delay {
                        from,
                        to,
                        verb: v,
                        ms,
                    },
                    vec![],
                    Some(duration_ms),
                )
            }
            FaultKind::Partition => {
                let mut shuffled = nodes.to_vec();
                shuffled.shuffle(rng);
                let minority = rng.gen_range(1..=((nodes.len() - 1) / 2).max(1));
                let mut a: Vec<NodeId> = shuffled[..minority].to_vec();
                let mut b: Vec<NodeId> = shuffled[minority..].to_vec();
                a.sort();
                b.sort();
                let oneway = rng.gen_bool(0.25);
                let down = a.clone();
                (Fault::Partition { a, b, oneway }, down, Some(duration_ms))
            }
            FaultKind::Crash => {
                let node = pick(rng);
                (Fault::Crash { node }, vec![node], Some(duration_ms))
            }
            FaultKind::Pause => {
                let node = pick(rng);
                (Fault::Pause { node }, vec![node], Some(duration_ms))
            }
            FaultKind::DiskStall => {
                let node = pick(rng);
                (Fault::DiskStall { node }, vec![], Some(duration_ms))
            }
            FaultKind::DiskError => {
                let node = pick(rng);
                let count = rng.gen_range(1..=3);
                (Fault::DiskError { node, count }, vec![], Some(duration_ms))
            }
            FaultKind::DiskLatency => {
                let node = pick(rng);
                let ms = rng.gen_range(1..=50);
                (Fault::DiskLatency { node, ms }, vec![], Some(duration_ms))
            }
            FaultKind::Injection => {
                let point = model.injections.choose(rng).expect("filtered on points");
                let node = pick(rng);
                let one_shot = rng.gen_bool(0.5);
                let hold = rng.gen_range(1..=point.max_hold_ms.min(model.max_duration_ms).max(1));
                (
                    Fault::Injection {
                        node,
                        name: point.name.clone(),
                        one_shot,
                    },
                    vec![],
                    Some(hold),
                )
            }
            FaultKind::ClockSkew => {
                let node = pick(rng);
                (draw_skew(model, node, rng), vec![], Some(duration_ms))
            }
            FaultKind::ExcludeNode => unreachable!("filtered above"),
            FaultKind::KillLeader => {
                // Which node leads is only known at run time: count it as any one node down.
                (Fault::KillLeader, vec![NodeId(0)], Some(duration_ms))
            }
        };
        let end = at_ms + duration.unwrap_or(0);
        if let Fault::ClockSkew { node, .. } = &fault {
            // One skew episode per node at a time (a second would replace the first, and the
            // first one's end would undo both).
            let overlaps = faults.iter().any(|f: &ScheduledFault| {
                matches!(&f.fault, Fault::ClockSkew { node: n, .. } if n == node)
                    && f.at_ms < end
                    && at_ms < f.at_ms + f.duration_ms.unwrap_or(0)
            });
            if overlaps {
                continue;
            }
        }
        if let Fault::Injection { node, name, .. } = &fault {
            if injection_overlaps(&faults, *node, name, at_ms, end) {
                continue;
            }
        }
        if !down.is_empty() {
            if !tracker.fits(at_ms, end, &down, model.max_down) {
                continue;
            }
            tracker.intervals.push((at_ms, end, down));
        }
        faults.push(ScheduledFault {
            at_ms,
            after: None,
            fault,
            duration_ms: duration,
        });
    }
    (faults, tracker)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn model() -> FaultModel {
        FaultModel {
            kinds: vec![
                FaultKind::Crash,
                FaultKind::Partition,
                FaultKind::KillConnection,
                FaultKind::Stall,
                FaultKind::KillLeader,
            ],
            min_faults: 3,
            max_faults: 8,
            window_ms: 1000,
            max_duration_ms: 300,
            verbs: vec!["echo".into()],
            max_down: 1,
            triggered: vec![],
            injections: vec![],
            ..FaultModel::default()
        }
    }

    #[test]
    fn clock_skews_stay_within_bounds_and_every_node_skew_keeps_the_rest() {
        let nodes = [NodeId(1), NodeId(2), NodeId(3)];
        let m = FaultModel {
            kinds: vec![FaultKind::ClockSkew, FaultKind::Crash],
            min_faults: 4,
            max_faults: 4,
            clock_skew_ms: 300,
            clock_drift_ppm: 1_000,
            ..FaultModel::default()
        };
        let mut skews = 0;
        for seed in 0..40 {
            let s = generate(
                &m,
                &nodes,
                &mut rand_chacha::ChaCha8Rng::seed_from_u64(seed),
            );
            for f in &s.faults {
                if let Fault::ClockSkew {
                    offset_ms,
                    drift_ppm,
                    ..
                } = f.fault
                {
                    skews += 1;
                    assert!(offset_ms.abs() <= 300 && drift_ppm.abs() <= 1_000, "{f}");
                    assert!(f.duration_ms.is_some(), "an episode ends");
                }
            }
        }
        assert!(skews > 10, "{skews}");
        // Without bounds the kind is left out.
        let off = FaultModel {
            clock_skew_ms: 0,
            clock_drift_ppm: 0,
            ..m.clone()
        };
        for seed in 0..20 {
            let s = generate(
                &off,
                &nodes,
                &mut rand_chacha::ChaCha8Rng::seed_from_u64(seed),
            );
            assert!(s
                .faults
                .iter()
                .all(|f| !matches!(f.fault, Fault::ClockSkew { .. })));
        }
        // Every node skewed for the whole run; the other faults as without it.
        let plain = FaultModel {
            kinds: vec![FaultKind::Crash],
            ..m.clone()
        };
        let every = FaultModel {
            skew_every_node: true,
            ..plain.clone()
        };
        let a = generate(
            &plain,
            &nodes,
            &mut rand_chacha::ChaCha8Rng::seed_from_u64(3),
        );
        let b = generate(
            &every,
            &nodes,
            &mut rand_chacha::ChaCha8Rng::seed_from_u64(3),
        );
        let (skewed, rest): (Vec<_>, Vec<_>) = b
            .faults
            .into_iter()
            .partition(|f| matches!(f.fault, Fault::ClockSkew { .. }));
        assert_eq!(rest, a.faults);
        assert_eq!(skewed.len(), 3);
        assert!(skewed
            .iter()
            .all(|f| f.at_ms == 0 && f.duration_ms.is_none()));
        assert_eq!(
            Fault::ClockSkew {
                node: NodeId(2),
                offset_ms: -250,
                drift_ppm: 40
            }
            .to_string(),
            "clock skew n2 -250ms drift +40ppm"
        );
    }

    #[test]
    fn same_seed_same_schedule() {
        let nodes = [NodeId(1), NodeId(2), NodeId(3)];
        let a = generate(
            &model(),
            &nodes,
            &mut rand_chacha::ChaCha8Rng::seed_from_u64(5),
        );
        let b = generate(
            &model(),
            &nodes,
            &mut rand_chacha::ChaCha8Rng::seed_from_u64(5),
        );
        assert_eq!(a, b);
        let differs = (0..20).any(|s| {
            generate(
                &model(),
                &nodes,
                &mut rand_chacha::ChaCha8Rng::seed_from_u64(s),
            ) != a
        });
        assert!(differs);
    }

    #[test]
    fn never_more_than_max_down_at_once() {
        let nodes = [NodeId(1), NodeId(2), NodeId(3)];
        for seed in 0..200 {
            let s = generate(
                &model(),
                &nodes,
                &mut rand_chacha::ChaCha8Rng::seed_from_u64(seed),
            );
            assert!(s.faults.len() <= 8);
            for t in (0..1300).step_by(5) {
                let down = s
                    .faults
                    .iter()
                    .filter(|f| {
                        matches!(
                            f.fault,
                            Fault::Crash { .. } | Fault::KillLeader | Fault::Partition { .. }
                        ) && f.at_ms <= t
                            && t < f.at_ms + f.duration_ms.unwrap_or(0)
                    })
                    .count();
                assert!(down <= 1, "seed {seed} t {t}: {s:?}");
            }
        }
    }

    #[test]
    fn triggered_templates_join_the_schedule_with_drawn_occurrence_and_indices() {
        let nodes = [NodeId(1), NodeId(2), NodeId(3)];
        let mut trigger = EventTrigger::on("stage_committed", 3);
        trigger
            .fields
            .insert("stage".into(), serde_json::json!("streaming"));
        trigger.bind.insert("from".into(), "@node".into());
        trigger.bind.insert("to".into(), "nodes.?".into());
        let kill = TriggeredFault {
            trigger,
            fault: Fault::KillConnection {
                from: NodeId(0),
                to: NodeId(0),
            },
            probability: 1.0,
            max_delay_ms: 20,
            duration_ms: None,
            follows_previous: false,
            until_heal: false,
            leaves_cluster: false,
        };
        let crash = TriggeredFault {
            trigger: EventTrigger::on("barrier_started", 1),
            fault: Fault::Crash { node: NodeId(1) },
            probability: 1.0,
            max_delay_ms: 0,
            duration_ms: None,
            follows_previous: false,
            until_heal: false,
            leaves_cluster: false,
        };
        let m = FaultModel {
            triggered: vec![kill, crash],
            ..FaultModel::default()
        };
        let mut seen_nth = std::collections::BTreeSet::new();
        for seed in 0..50 {
            let s = generate(
                &m,
                &nodes,
                &mut rand_chacha::ChaCha8Rng::seed_from_u64(seed),
            );
            assert_eq!(s.faults.len(), 2, "no timed faults: the crash fits");
            let crashes = s
                .faults
                .iter()
                .filter(|f| matches!(f.fault, Fault::Crash { .. }));
            assert_eq!(crashes.count(), 1);
            let k = s
                .faults
                .iter()
                .find(|f| matches!(f.fault, Fault::KillConnection { .. }))
                .unwrap();
            let t = k.after.as_ref().unwrap();
            assert!((1..=3).contains(&t.nth) && k.at_ms <= 20);
            assert!(!t.bind["to"].contains('?'), "{}", t.bind["to"]);
            assert_eq!(k.duration_ms, None, "a killed connection is instantaneous");
            seen_nth.insert(t.nth);
        }
        assert_eq!(seen_nth.len(), 3);
        // With timed crashes in the schedule, a triggered crash could overlap them: left out
        // (max_down 1).
        let busy = FaultModel {
            kinds: vec![FaultKind::Crash],
            min_faults: 2,
            max_faults: 2,
            ..m.clone()
        };
        let s = generate(
            &busy,
            &nodes,
            &mut rand_chacha::ChaCha8Rng::seed_from_u64(1),
        );
        assert!(s
            .faults
            .iter()
            .all(|f| f.after.is_none() || matches!(f.fault, Fault::KillConnection { .. })));
        // No templates: the same draws as before they existed.
        let plain = FaultModel {
            triggered: vec![],
            ..busy
        };
        let a = generate(
            &plain,
            &nodes,
            &mut rand_chacha::ChaCha8Rng::seed_from_u64(9),
        );
        assert!(a.faults.iter().all(|f| f.after.is_none()));
    }

    #[test]
    fn held_and_leaving_templates_draw_no_duration_and_leaving_ones_ignore_max_down() {
        let nodes = [NodeId(1), NodeId(2), NodeId(3)];
        let mut hold = EventTrigger::on("stage_committed", 2);
        hold.until = Some(crate::release::ReleaseOn::MigrationsToNodeEnded);
        let inj = Fault::Injection {
            node: NodeId(1),
            name: "p".into(),
            one_shot: true,
        };
        let crash = Fault::Crash { node: NodeId(1) };
        let wbrn = EventTrigger::on("stage_committed", 3);
        let m = FaultModel {
            kinds: vec![FaultKind::Crash],
            min_faults: 3,
            max_faults: 3,
            triggered: vec![
                TriggeredFault::new(hold, inj, 1.0, 0),
                TriggeredFault::new(wbrn.clone(), crash, 1.0, 0)
                    .until_heal()
                    .leaving_cluster(),
                TriggeredFault::new(wbrn, Fault::ExcludeNode { node: NodeId(1) }, 1.0, 100)
                    .following(),
            ],
            ..FaultModel::default()
        };
        for seed in 0..20 {
            let s = generate(
                &m,
                &nodes,
                &mut rand_chacha::ChaCha8Rng::seed_from_u64(seed),
            );
            let triggered: Vec<&ScheduledFault> =
                s.faults.iter().filter(|f| f.after.is_some()).collect();
            assert_eq!(
                triggered.len(),
                3,
                "timed crashes do not keep them out: {s:?}"
            );
            for f in &triggered {
                let t = f.after.as_ref().unwrap();
                assert_eq!(f.duration_ms, None, "{f}");
                assert_eq!(t.all_up, matches!(f.fault, Fault::Crash { .. }), "{f}");
            }
            let nth: Vec<u32> = triggered
                .iter()
                .filter(|f| f.after.as_ref().unwrap().until.is_none())
                .map(|f| f.after.as_ref().unwrap().nth)
                .collect();
            assert_eq!(nth[0], nth[1], "the exclude follows its crash's occurrence");
        }
    }

    #[test]
    fn buggify_enables_declared_points_for_at_most_their_hold() {
        let nodes = [NodeId(1), NodeId(2), NodeId(3)];
        let m = FaultModel {
            kinds: vec![FaultKind::Injection],
            min_faults: 4,
            max_faults: 4,
            max_duration_ms: 1_000,
            injections: vec![
                BuggifyPoint {
                    name: "a".into(),
                    max_hold_ms: 50,
                    min_hold_ms: 0,
                    episodes: [0, 0],
                    one_shot: None,
                },
                BuggifyPoint {
                    name: "b".into(),
                    max_hold_ms: 5_000,
                    min_hold_ms: 0,
                    episodes: [0, 0],
                    one_shot: None,
                },
            ],
            ..FaultModel::default()
        };
        let mut names = std::collections::BTreeSet::new();
        for seed in 0..30 {
            let s = generate(
                &m,
                &nodes,
                &mut rand_chacha::ChaCha8Rng::seed_from_u64(seed),
            );
            assert_eq!(s.faults.len(), 4);
            for f in &s.faults {
                let Fault::Injection { name, .. } = &f.fault else {
                    panic!("{f}")
                };
                let hold = f.duration_ms.unwrap();
                assert!(hold <= if name == "a" { 50 } else { 1_000 }, "{f}");
                names.insert(name.clone());
            }
        }
        assert_eq!(names.len(), 2);
        let none = FaultModel {
            injections: vec![],
            ..m
        };
        assert!(generate(
            &none,
            &nodes,
            &mut rand_chacha::ChaCha8Rng::seed_from_u64(1)
        )
        .is_empty());
    }

    #[test]
    fn empty_model_gives_no_faults() {
        let nodes = [NodeId(1), NodeId(2)];
        let s = generate(
            &FaultModel::default(),
            &nodes,
            &mut rand_chacha::ChaCha8Rng::seed_from_u64(1),
        );
        assert!(s.is_empty());
    }
}
