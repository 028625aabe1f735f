//! Logs a person can follow: a `tracing` subscriber that stamps every line with the run's
//! simulated time and the node it came from.
//!
//! The models log through `tracing` at the protocol's own steps: `info` for what a reader
//! follows (stage commits, barriers, sessions, streaming, coordinators, batchlog passes, faults),
//! `debug` for RPCs and guards, `trace` for storage and disks. Each node's boot future and every
//! task spawned with [`Sim::spawn_on`](crate::Sim::spawn_on) run inside a [`node_span`], and
//! [`crate::spawn`] keeps the span of the task that spawned, so every line a node's tasks write
//! names the node. Lines of the supervisor (the nemesis, the scenario's story) carry `-`.
//!
//! A line reads
//!
//! ```text
//!    0.412345s  INFO n2 model::topology::barrier: barrier 2000003 at v8 waits for closing session s1 barrier=2000003
//! ```
//!
//! Determinism: the same seed gives the same bytes. The time is madsim's virtual clock
//! ([`SimTimer`]), never the wall clock; there are no thread ids, no colours, and madsim's own
//! spans (whose task ids are process-global counters) are not printed. Nothing here draws
//! randomness or yields, so a run's history digest is the same with logging on and off.
//!
//! Free when off: without [`init`] no subscriber is installed, `tracing`'s global max level stays
//! `OFF`, and every macro and span is a single relaxed load that skips its arguments.

use std::fmt;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use tracing::{Event, Subscriber};
use tracing_subscriber::filter::{EnvFilter, LevelFilter};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

use crate::ids::NodeId;

/// Target of the per-node span. The filter always enables it (at `error`, the span's level), so
/// a directive like `RUST_LOG=model=debug` still gets the node on every line.
pub const NODE_SPAN_TARGET: &str = "sim::node";

/// The crates whose lines a bare `--log LEVEL` selects (madsim's own chatter stays out).
const OUR_CRATES: [&str; 4] = ["sim", "fault_injection", "model", "scenarios"];

/// The span a node's tasks run in: `node{node=n2}`, a root span (it never inherits the
/// spawner's node).
pub fn node_span(node: NodeId) -> tracing::Span {
    tracing::error_span!(target: NODE_SPAN_TARGET, parent: None, "node", node = %node)
}

/// A timer that writes madsim's virtual time since the run started, in seconds with
/// microseconds (`  12.345678s`); `-` outside a run.
#[derive(Clone, Copy, Debug, Default)]
pub struct SimTimer;

impl FormatTime for SimTimer {
    fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
        match madsim::time::TimeHandle::try_current() {
            Some(t) => {
                let ns = t.elapsed().as_nanos();
                write!(
                    w,
                    "{:>4}.{:06}s",
                    ns / 1_000_000_000,
                    (ns % 1_000_000_000) / 1_000
                )
            }
            None => write!(w, "{:>12}", "-"),
        }
    }
}

/// The line format: `TIME LEVEL NODE [spans:]target: message fields`.
#[derive(Clone, Copy, Debug, Default)]
pub struct SimFormat;

impl<S, N> FormatEvent<S, N> for SimFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        SimTimer.format_time(&mut w)?;
        let meta = event.metadata();
        write!(w, " {:>5} ", meta.level())?;
        // The innermost node span names the node; other spans of ours print like fmt's default
        // (`name{fields}:`); madsim's spans are skipped (their task ids are process-global).
        let mut node_written = false;
        if let Some(scope) = ctx.event_scope() {
            for span in scope {
                if span.metadata().target() == NODE_SPAN_TARGET {
                    let ext = span.extensions();
                    if let Some(f) = ext.get::<FormattedFields<N>>() {
                        let name = f.fields.strip_prefix("node=").unwrap_or(&f.fields);
                        write!(w, "{name} ")?;
                        node_written = true;
                    }
                    break;
                }
            }
        }
        if !node_written {
            w.write_str("- ")?;
        }
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let target = span.metadata().target();
                if target == NODE_SPAN_TARGET || target.starts_with("madsim") {
                    continue;
                }
                write!(w, "{}", span.name())?;
                let ext = span.extensions();
                if let Some(f) = ext.get::<FormattedFields<N>>() {
                    if !f.fields.is_empty() {
                        write!(w, "{{{}}}", f.fields)?;
                    }
                }
                w.write_str(":")?;
            }
        }
        write!(w, "{}: ", meta.target())?;
        ctx.field_format().format_fields(w.by_ref(), event)?;
        writeln!(w)
    }
}

/// A log file shared by every line; buffered, flushed by [`LogGuard`].
#[derive(Clone)]
struct SharedFile(Arc<Mutex<BufWriter<File>>>);

impl Write for SharedFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().expect("log file lock").write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.lock().expect("log file lock").flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for SharedFile {
    type Writer = SharedFile;
    fn make_writer(&'a self) -> SharedFile {
        self.clone()
    }
}

/// Keeps the log file flushed: hold it until the command ends.
pub struct LogGuard {
    file: Option<SharedFile>,
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        if let Some(f) = &mut self.file {
            let _ = f.flush();
        }
    }
}

/// The filter for `--log SPEC` (a bare level applies to clustersim's own crates; anything else
/// is an `EnvFilter` directive list such as `model::topology=debug,sim=info`), else `RUST_LOG`
/// as usual. `None`: logging stays off.
pub fn filter(log: Option<&str>) -> Result<Option<EnvFilter>, String> {
    let spec = match log {
        Some(s) => {
            let s = s.trim();
            match s.parse::<LevelFilter>() {
                Ok(LevelFilter::OFF) => return Ok(None),
                Ok(level) => OUR_CRATES
                    .iter()
                    .map(|c| format!("{c}={level}"))
                    .collect::<Vec<_>>()
                    .join(","),
                Err(_) => {
                    EnvFilter::builder()
                        .parse(s)
                        .map_err(|e| format!("bad --log '{s}': {e}"))?;
                    s.to_string()
                }
            }
        }
        None => match std::env::var("RUST_LOG") {
            Ok(s) if !s.trim().is_empty() => s,
            _ => return Ok(None),
        },
    };
    let f = EnvFilter::builder()
        .with_default_directive(LevelFilter::OFF.into())
        .parse_lossy(format!("{spec},{NODE_SPAN_TARGET}=error"));
    if f.max_level_hint() == Some(LevelFilter::OFF) {
        return Ok(None);
    }
    Ok(Some(f))
}

/// Install the process-wide subscriber for `--log SPEC` / `RUST_LOG`, writing to `file` (no
/// colours) or else stderr. With neither `--log` nor `RUST_LOG` (nor a file) nothing is
/// installed and logging costs nothing. `--log-file` alone means `--log info`.
pub fn init(log: Option<&str>, file: Option<&Path>) -> Result<LogGuard, String> {
    let log = match (log, file) {
        (None, Some(_)) if std::env::var_os("RUST_LOG").is_none() => Some("info"),
        _ => log,
    };
    let Some(filter) = filter(log)? else {
        return Ok(LogGuard { file: None });
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .event_format(SimFormat);
    let (res, file) = match file {
        Some(p) => {
            let f =
                File::create(p).map_err(|e| format!("cannot write log {}: {e}", p.display()))?;
            let shared = SharedFile(Arc::new(Mutex::new(BufWriter::new(f))));
            (builder.with_writer(shared.clone()).try_init(), Some(shared))
        }
        None => (builder.with_writer(io::stderr).try_init(), None),
    };
    res.map_err(|e| format!("cannot install the log subscriber: {e}"))?;
    Ok(LogGuard { file })
}

/// Displays a slice as `[a, b, c]` with each item's `Display` (for log fields and messages).
pub struct List<'a, T>(pub &'a [T]);

impl<T: fmt::Display> fmt::Display for List<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, x) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{x}")?;
        }
        f.write_str("]")
    }
}

/// `[a, b, c]` of a slice, for log lines: `tracing::info!("replicas {}", list(&r))`.
pub fn list<T: fmt::Display>(items: &[T]) -> List<'_, T> {
    List(items)
}

/// Displays an `Option` as its value or `-` (for log fields and messages).
pub struct Opt<'a, T>(pub &'a Option<T>);

impl<T: fmt::Display> fmt::Display for Opt<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(x) => write!(f, "{x}"),
            None => f.write_str("-"),
        }
    }
}

/// The value of an `Option` or `-`, for log lines.
pub fn opt<T: fmt::Display>(v: &Option<T>) -> Opt<'_, T> {
    Opt(v)
}

/// Log one harness event in words (called by [`Sim::record_sim`](crate::Sim::record_sim)):
/// crashes, restarts, pauses, killed connections, faults and phases at `info` (what a reader
/// follows), RPCs at `debug`, disk syncs at `trace`. `node` is the node the event is about.
pub(crate) fn sim_event(node: Option<NodeId>, ev: &crate::history::SimEvent) {
    use crate::history::SimEvent as E;
    if LevelFilter::current() == LevelFilter::OFF {
        return;
    }
    let n = opt(&node);
    match ev {
        E::RpcSend { id, verb, to, conn } => {
            tracing::debug!(target: "sim::net", rpc = id, verb, "rpc #{id} {verb} {n} -> {to} sent on connection generation {conn}")
        }
        E::RpcAdmit { id, verb, from } => {
            tracing::debug!(target: "sim::net", rpc = id, verb, "rpc #{id} {verb} from {from} admitted on {n}")
        }
        E::RpcDone { id, verb, outcome } => {
            tracing::debug!(target: "sim::net", rpc = id, verb, "rpc #{id} {verb} of {n} done: {outcome:?}")
        }
        E::RpcLateResponseDiscarded { id, verb } => {
            tracing::info!(target: "sim::net", rpc = id, verb, "late response of rpc #{id} {verb} from {n} discarded: its connection was killed")
        }
        E::RpcDropped { id, verb, reason } => {
            tracing::debug!(target: "sim::net", rpc = id, verb, "rpc #{id} {verb} dropped: {reason}")
        }
        E::RpcStalled { id, verb } => {
            tracing::debug!(target: "sim::net", rpc = id, verb, "rpc #{id} {verb} of {n} held by a stall")
        }
        E::StreamOpen { id, verb, to } => {
            tracing::debug!(target: "sim::net", stream = id, verb, "stream #{id} {verb} {n} -> {to} opened")
        }
        E::StreamEnd { id, how } => {
            tracing::debug!(target: "sim::net", stream = id, "stream #{id} ended: {how}")
        }
        E::ConnectionKilled {
            from,
            to,
            failed_calls,
        } => {
            tracing::info!(target: "sim::net", %from, %to, failed_calls, "connection {from} -> {to} killed: {failed_calls} pending call(s) fail with connection closed; requests {to} had admitted are not cancelled")
        }
        E::FaultApplied {
            id,
            fault,
            schedule,
        } => match schedule {
            Some(i) => {
                tracing::info!(target: "sim::fault", fault = id, "fault #{id} applied (schedule #{i}): {fault}")
            }
            None => {
                tracing::info!(target: "sim::fault", fault = id, "fault #{id} applied (scripted): {fault}")
            }
        },
        E::FaultUndone { id, fault, by } => {
            tracing::info!(target: "sim::fault", fault = id, "fault #{id} undone ({by:?}): {fault}")
        }
        E::FaultSkipped {
            schedule,
            fault,
            reason,
        } => {
            tracing::info!(target: "sim::fault", "scheduled fault #{schedule} ({fault}) skipped: {reason}")
        }
        E::Crash { lost_writes } => {
            tracing::info!(target: "sim::world", lost_writes, "{n} crashed: its tasks stop, {lost_writes} unsynced disk write(s) lost")
        }
        E::Start { incarnation: 0 } => tracing::info!(target: "sim::world", "{n} boots"),
        E::Start { incarnation } => {
            tracing::info!(target: "sim::world", incarnation, "{n} restarts (incarnation {incarnation}) and recovers from its disk")
        }
        E::Pause { paused: true } => tracing::info!(target: "sim::world", "{n} paused"),
        E::Pause { paused: false } => tracing::info!(target: "sim::world", "{n} resumed"),
        E::DiskSync { writes, failed } => {
            tracing::trace!(target: "sim::disk", writes, failed, "disk sync of {n}: {writes} write(s){}", if *failed { " FAILED" } else { " durable" })
        }
        E::Phase { name } => tracing::info!(target: "sim::phase", "phase {name} begins"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::NetConfig;
    use crate::runtime::run_seed;
    use crate::time::{sleep, Duration};
    use crate::Sim;
    use futures::FutureExt;

    /// A writer capturing every line in memory.
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Buf {
        type Writer = Buf;
        fn make_writer(&'a self) -> Buf {
            self.clone()
        }
    }

    /// Run `f` with the CLI's subscriber (at `spec`) writing into a buffer; the lines.
    fn capture(spec: &str, f: impl FnOnce()) -> String {
        let buf = Buf::default();
        let sub = tracing_subscriber::fmt()
            .with_env_filter(filter(Some(spec)).unwrap().unwrap())
            .with_ansi(false)
            .event_format(SimFormat)
            .with_writer(buf.clone())
            .finish();
        tracing::subscriber::with_default(sub, f);
        let bytes = buf.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    /// One node that logs at boot, from a task it spawns and from `spawn_on`; the supervisor
    /// logs too. Returns the history digest.
    fn story() -> String {
        let out = run_seed(7, |h| async move {
            let sim = Sim::new(7, &[], NetConfig::default(), h);
            let n = sim.add_node(|_ctx| {
                async {
                    tracing::info!(step = 1, "booted");
                    crate::spawn(async {
                        sleep(Duration::from_millis(5)).await;
                        tracing::debug!("child task of the boot future");
                    });
                    std::future::pending::<()>().await
                }
                .boxed_local()
            });
            sim.spawn_on(n, async {
                sleep(Duration::from_millis(12)).await;
                tracing::info!("spawned on the node");
            });
            tracing::info!("supervisor speaks");
            sleep(Duration::from_millis(20)).await;
            tracing::trace!(target: "sim::disk", "trace line");
            sim.history().digest()
        });
        out.result.unwrap()
    }

    #[test]
    fn every_line_has_simulated_time_and_node() {
        let text = capture("debug", || {
            story();
        });
        let lines: Vec<&str> = text.lines().collect();
        let want = [
            "   0.000000s  INFO - sim::log::tests: supervisor speaks",
            "   0.000000s  INFO - sim::world: n1 boots",
            "   0.000000s  INFO n1 sim::log::tests: booted step=1",
            "   0.005000s DEBUG n1 sim::log::tests: child task of the boot future",
            "   0.012000s  INFO n1 sim::log::tests: spawned on the node",
        ];
        for w in want {
            assert!(lines.contains(&w), "missing {w:?} in\n{text}");
        }
        assert!(!text.contains("trace line"), "debug leaves trace out");
    }

    #[test]
    fn same_seed_same_bytes_and_logging_does_not_change_the_run() {
        let mut digests = Vec::new();
        let a = capture("trace", || digests.push(story()));
        let b = capture("trace", || digests.push(story()));
        digests.push(story()); // logging off
        assert!(!a.is_empty());
        assert_eq!(a, b, "same seed, same log bytes");
        assert!(digests.windows(2).all(|w| w[0] == w[1]), "{digests:?}");
        assert!(a.contains("TRACE - sim::disk: trace line"), "{a}");
    }

    #[test]
    fn filter_specs() {
        assert!(filter(Some("off")).unwrap().is_none());
        assert!(filter(Some("info")).unwrap().is_some());
        assert!(filter(Some("model::topology=debug,sim=info"))
            .unwrap()
            .is_some());
        let e = filter(Some("model==")).err().unwrap();
        assert!(e.starts_with("bad --log 'model=='"), "{e}");
    }

    #[test]
    fn lists_and_options_display() {
        assert_eq!(list(&[NodeId(1), NodeId(2)]).to_string(), "[n1, n2]");
        assert_eq!(list::<NodeId>(&[]).to_string(), "[]");
        assert_eq!(opt(&Some(NodeId(3))).to_string(), "n3");
        assert_eq!(opt::<NodeId>(&None).to_string(), "-");
    }
}
