//! Running simulations from ordinary code: one seed on one fresh madsim runtime, and many seeds
//! in parallel on OS threads (one runtime per thread at a time).
//!
//! A panic inside the simulated cluster is caught and returned as a value with its message, so
//! an explorer keeps going and writes a repro bundle instead of crashing.

use crate::history::History;
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Once};

/// What one run produced.
pub struct RunOutput<T> {
    /// The run's value, or the message of the panic that ended it.
    pub result: Result<T, String>,
    /// Everything recorded (also after a panic, up to the panic).
    pub history: History,
    /// Virtual time at the end of the run, nanoseconds.
    pub sim_time_ns: u64,
}

thread_local! {
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
    static CAPTURING: Cell<bool> = const { Cell::new(false) };
}

static HOOK: Once = Once::new();

fn install_hook() {
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if CAPTURING.with(|c| c.get()) {
                let msg = if let Some(s) = info.payload().downcast_ref::<&str>() {
                    s.to_string()
                } else if let Some(s) = info.payload().downcast_ref::<String>() {
                    s.clone()
                } else {
                    "panic".to_string()
                };
                let loc = info
                    .location()
                    .map(|l| format!(" at {}:{}", l.file(), l.line()))
                    .unwrap_or_default();
                LAST_PANIC.with(|p| *p.borrow_mut() = Some(format!("{msg}{loc}")));
            } else {
                default(info);
            }
        }));
    });
}

/// Run `f` in a fresh madsim runtime seeded with `seed`. `f` receives the run's history.
pub fn run_seed<T, Fut>(seed: u64, f: impl FnOnce(History) -> Fut) -> RunOutput<T>
where
    Fut: Future<Output = T>,
{
    install_hook();
    let history = History::new();
    let h = history.clone();
    let rt = madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default());
    let end = std::rc::Rc::new(Cell::new(0u64));
    let end2 = end.clone();
    CAPTURING.with(|c| c.set(true));
    LAST_PANIC.with(|p| p.borrow_mut().take());
    let res = std::panic::catch_unwind(AssertUnwindSafe(|| {
        rt.block_on(async move {
            let out = f(h).await;
            end2.set(madsim::time::TimeHandle::current().elapsed().as_nanos() as u64);
            out
        })
    }));
    CAPTURING.with(|c| c.set(false));
    let result = res.map_err(|_| {
        LAST_PANIC
            .with(|p| p.borrow_mut().take())
            .unwrap_or_else(|| "panic".to_string())
    });
    let sim_time_ns = if result.is_ok() {
        end.get()
    } else {
        history.entries().last().map_or(0, |e| e.at.0)
    };
    // Free the run's worlds inside the runtime (so madsim drops the killed nodes' tasks), then
    // the runtime itself: nothing of this seed survives into the next.
    let teardown = std::panic::catch_unwind(AssertUnwindSafe(|| {
        rt.block_on(async { crate::world::teardown_run_worlds() })
    }));
    if teardown.is_err() {
        crate::world::teardown_run_worlds();
    }
    drop(rt);
    RunOutput {
        result,
        history,
        sim_time_ns,
    }
}

/// Run `work(item)` for every item on `jobs` OS threads; `on_result` sees each result on the
/// calling thread, in completion order, as soon as it is ready.
pub fn parallel<I, R>(
    items: &[I],
    jobs: usize,
    work: impl Fn(&I) -> R + Sync,
    mut on_result: impl FnMut(usize, R),
) where
    I: Sync,
    R: Send,
{
    let jobs = jobs.max(1).min(items.len().max(1));
    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::channel::<(usize, R)>();
    std::thread::scope(|s| {
        for _ in 0..jobs {
            let tx = tx.clone();
            let next = &next;
            let work = &work;
            s.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= items.len() {
                    break;
                }
                if tx.send((i, work(&items[i]))).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        for (i, r) in rx {
            on_result(i, r);
        }
    });
}

/// Run `work(i)` for every `i` in `0..total` with `include(i)` on `jobs` OS threads, handing
/// each result to `on_result` on the calling thread as soon as it is ready. Once `stop` is set
/// (by `on_result`, say) no new item starts; items already running finish and are reported.
pub fn parallel_indexed<R: Send>(
    total: u64,
    jobs: usize,
    stop: &AtomicBool,
    include: impl Fn(u64) -> bool + Sync,
    work: impl Fn(u64) -> R + Sync,
    mut on_result: impl FnMut(u64, R),
) {
    let jobs = jobs.max(1).min(total.clamp(1, 1 << 16) as usize);
    let next = AtomicU64::new(0);
    let (tx, rx) = mpsc::channel::<(u64, R)>();
    std::thread::scope(|s| {
        for _ in 0..jobs {
            let tx = tx.clone();
            let (next, work, include) = (&next, &work, &include);
            s.spawn(move || loop {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                if !include(i) {
                    continue;
                }
                if tx.send((i, work(i))).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        for (i, r) in rx {
            on_result(i, r);
        }
    });
}
