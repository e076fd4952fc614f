//! Helpers shared by the models: the layouts, the model runner that counts
//! executions, a ghost ledger of what callers hold, and async polling helpers.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Instant;

use multisem::{Builder, MultiSemaphore};

pub(crate) type Sem = MultiSemaphore<2>;

/// The layouts every model runs against: the packed one, and the tiered one
/// twice, with front words chosen for these capacities of 1 and 2 (forced by
/// reserving room up to `MAX_PERMITS`).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Layout {
    /// Small capacities: both dimensions packed in one word.
    Packed,
    /// Tiered, with no front fields: every permit is in the reserve, so a
    /// take of both dimensions takes two words and may roll one back, and
    /// commits with a CAS of the front word for the flags.
    Reserve,
    /// Tiered, with 1-permit front fields: capacities of 2 are split between
    /// the tiers, so takes split and returns overflow into the reserve.
    Split,
}

impl Layout {
    /// Peak tracking is off: its Relaxed loads and `fetch_max`, statistics
    /// that decide nothing, would only multiply the interleavings (the api
    /// tests check the peaks).
    pub(crate) fn build(self, capacity: [u64; 2]) -> Sem {
        self.builder(capacity).build()
    }

    /// The builder `build` uses, for models that set more options.
    pub(crate) fn builder(self, capacity: [u64; 2]) -> Builder<2> {
        let builder = MultiSemaphore::builder(capacity).track_peaks(false);
        let tiered = builder.clone().max_capacity([Sem::MAX_PERMITS; 2]);
        match self {
            Layout::Packed => builder,
            Layout::Reserve => tiered.front_bits([0, 0]),
            Layout::Split => tiered.front_bits([1, 1]),
        }
    }

    pub(crate) fn arc(self, capacity: [u64; 2]) -> Arc<Sem> {
        Arc::new(self.build(capacity))
    }

    /// As [`Layout::arc`], keeping `Stats::acquired_amounts`: for the models
    /// of the statistics, whose counters race with the takes they count.
    pub(crate) fn arc_counting_amounts(self, capacity: [u64; 2]) -> Arc<Sem> {
        let builder = MultiSemaphore::builder(capacity)
            .track_peaks(false)
            .track_amounts(true);
        let tiered = builder.clone().max_capacity([Sem::MAX_PERMITS; 2]);
        Arc::new(match self {
            Layout::Packed => builder.build(),
            Layout::Reserve => tiered.front_bits([0, 0]).build(),
            Layout::Split => tiered.front_bits([1, 1]).build(),
        })
    }
}

/// Runs `model` under loom and prints how many executions loom explored.
///
/// The preemption bound is `LOOM_MAX_PREEMPTIONS` when set, never more than
/// `max_bound` (the largest bound that keeps this model fast). When the
/// environment's bound is used as is, the model goes through `loom::model`,
/// so `LOOM_LOG` and `LOOM_LOCATION` work as loom documents them.
pub(crate) fn check<F>(name: &str, max_bound: usize, model: F)
where
    F: Fn() + Send + Sync + 'static,
{
    let from_env: Option<usize> = std::env::var("LOOM_MAX_PREEMPTIONS")
        .ok()
        .map(|v| v.parse().expect("LOOM_MAX_PREEMPTIONS must be a number"));
    let bound = from_env.map_or(max_bound, |b| b.min(max_bound));

    // A plain std atomic: loom runs a model's threads one at a time on one OS
    // thread, and this counter lives outside the model anyway.
    let executions = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&executions);
    let counted = move || {
        counter.fetch_add(1, SeqCst);
        model();
    };

    let start = Instant::now();
    if from_env == Some(bound) {
        loom::model(counted);
    } else {
        let mut builder = loom::model::Builder::new();
        builder.preemption_bound = Some(bound);
        builder.check(counted);
    }
    eprintln!(
        "loom model {name}: {} executions, preemption bound {bound}, {:.2?}",
        executions.load(SeqCst),
        start.elapsed()
    );
}

/// Ghost ledger of what the model's callers hold, per dimension.
///
/// It uses std atomics on purpose: loom runs model threads one at a time (as
/// coroutines on one OS thread), so these see the real execution order without
/// adding scheduling points that would multiply the explored executions. A
/// caller records a permit after its acquire returns and un-records it before
/// dropping it, so the ledger never counts more than the semaphore has handed
/// out: any excess over the limit is a real over-grant.
#[derive(Debug)]
pub(crate) struct Ghost {
    held: [AtomicU64; 2],
    /// The least `held` since the last [`Ghost::mark_low`].
    low: [AtomicU64; 2],
    /// The capacity in force: lowered by a model after a shrink returns.
    limit: [AtomicU64; 2],
    granted: AtomicU64,
}

impl Ghost {
    pub(crate) fn new(limit: [u64; 2]) -> Arc<Self> {
        Arc::new(Ghost {
            held: [AtomicU64::new(0), AtomicU64::new(0)],
            low: [AtomicU64::new(0), AtomicU64::new(0)],
            limit: limit.map(AtomicU64::new),
            granted: AtomicU64::new(0),
        })
    }

    /// Records `amounts` as held and checks no dimension is over its limit.
    pub(crate) fn take(&self, amounts: [u64; 2]) {
        self.take_under(amounts, self.limit());
    }

    /// The limit now. A caller that reads it before an acquire and checks
    /// the grant against it ([`Ghost::take_under`]) checks against the
    /// capacity in force when the acquire began, or a later one.
    pub(crate) fn limit(&self) -> [u64; 2] {
        std::array::from_fn(|d| self.limit[d].load(SeqCst))
    }

    /// Lowers the limit to `limit`: call it once a shrink has returned, so
    /// that acquires begun after that are checked against the new capacity.
    pub(crate) fn lower_limit(&self, limit: [u64; 2]) {
        for (word, limit) in self.limit.iter().zip(limit) {
            word.store(limit, SeqCst);
        }
    }

    /// [`Ghost::take`] against `limit`, read before the acquire began.
    pub(crate) fn take_under(&self, amounts: [u64; 2], limit: [u64; 2]) {
        self.granted.fetch_add(1, SeqCst);
        for (d, (&amount, &limit)) in amounts.iter().zip(&limit).enumerate() {
            let now = self.held[d].fetch_add(amount, SeqCst) + amount;
            assert!(
                now <= limit,
                "dimension {d}: callers hold {now} at once, more than the capacity {limit}"
            );
        }
    }

    /// Un-records `amounts`; call it just before the permit is dropped or forgotten.
    pub(crate) fn give(&self, amounts: [u64; 2]) {
        for (d, &amount) in amounts.iter().enumerate() {
            let now = self.held[d].fetch_sub(amount, SeqCst) - amount;
            self.low[d].fetch_min(now, SeqCst);
        }
    }

    /// Starts watching the least held from now on (one watcher at a time).
    pub(crate) fn mark_low(&self) {
        for d in 0..2 {
            self.low[d].store(self.held[d].load(SeqCst), SeqCst);
        }
    }

    /// The least held in each dimension since [`Ghost::mark_low`]. The
    /// semaphore always has at least what the ledger says in flight (a permit
    /// is recorded after it is granted and un-recorded before it is returned),
    /// so nothing was ever available beyond `capacity - low`.
    pub(crate) fn low(&self) -> [u64; 2] {
        std::array::from_fn(|d| self.low[d].load(SeqCst))
    }

    /// How many successful acquires were recorded.
    pub(crate) fn granted(&self) -> u64 {
        self.granted.load(SeqCst)
    }
}

/// At quiescence: every permit is back, nobody is queued, and the counters
/// really hold `capacity` (not only the snapshot: a full-capacity try succeeds
/// when the semaphore is open).
#[track_caller]
pub(crate) fn assert_quiescent(sem: &Sem, capacity: [u64; 2]) {
    assert_eq!(sem.capacity(), capacity, "capacity at the end");
    assert_eq!(sem.available(), capacity, "available at the end");
    assert_eq!(sem.waiters(), 0, "waiters at the end");
    if !sem.is_closed() {
        let all = sem
            .try_acquire(capacity)
            .expect("the whole capacity must be free at the end");
        assert_eq!(all.amounts(), capacity);
        drop(all);
        assert_eq!(sem.available(), capacity, "available after the final probe");
    }
}

/// Holds a permit or a future across a point where the model may block, and
/// drops it normally, except while the thread unwinds: when loom reports a
/// deadlock (a waiter never woken) it unwinds the blocked thread after its
/// execution is gone, and a permit or future dropped then would touch loom's
/// primitives, panic inside the panic and abort the whole test binary, hiding
/// the other models' results. Forgetting it instead keeps the report readable.
#[derive(Debug)]
pub(crate) struct Defuse<T>(Option<T>);

impl<T> Defuse<T> {
    pub(crate) fn new(value: T) -> Self {
        Defuse(Some(value))
    }

    pub(crate) fn get_mut(&mut self) -> &mut T {
        self.0.as_mut().expect("present until dropped")
    }
}

impl<T> Drop for Defuse<T> {
    fn drop(&mut self) {
        if let Some(value) = self.0.take() {
            if std::thread::panicking() {
                std::mem::forget(value);
            } else {
                drop(value);
            }
        }
    }
}

/// A waker that records that it was woken.
#[derive(Debug, Default)]
pub(crate) struct WakeFlag(AtomicBool);

impl Wake for WakeFlag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, SeqCst);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.store(true, SeqCst);
    }
}

impl WakeFlag {
    pub(crate) fn waker() -> (Arc<WakeFlag>, Waker) {
        let flag = Arc::new(WakeFlag::default());
        let waker = Waker::from(Arc::clone(&flag));
        (flag, waker)
    }

    pub(crate) fn woken(&self) -> bool {
        self.0.load(SeqCst)
    }
}

/// Wakes a loom thread: the waker `block_on` polls with.
#[derive(Debug)]
struct Unparker(loom::thread::Thread);

impl Wake for Unparker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Drives `fut` to completion on the current loom thread, parking between
/// polls. (loom's own `block_on` needs its `futures` feature, which the crate
/// does not enable.) loom's park keeps an unpark that came first, so a wake
/// between the poll and the park is not lost; a future that is never woken
/// leaves the thread parked, which loom reports as a deadlock.
pub(crate) fn block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    let waker = Waker::from(Arc::new(Unparker(loom::thread::current())));
    loop {
        if let Poll::Ready(out) = poll_once(fut.as_mut(), &waker) {
            return out;
        }
        loom::thread::park();
    }
}

/// Polls `fut` once with `waker`.
pub(crate) fn poll_once<F: Future + ?Sized>(fut: Pin<&mut F>, waker: &Waker) -> Poll<F::Output> {
    fut.poll(&mut Context::from_waker(waker))
}

/// Generates one `#[test]` per model and layout: `packed::NAME`,
/// `reserve::NAME` and `split::NAME`. Each entry is `NAME: MAX_PREEMPTION_BOUND`.
macro_rules! models {
    ($($model:ident: $bound:expr),* $(,)?) => {
        $crate::support::models!(@layout packed, Packed, $($model: $bound),*);
        $crate::support::models!(@layout reserve, Reserve, $($model: $bound),*);
        $crate::support::models!(@layout split, Split, $($model: $bound),*);
    };
    (@layout $module:ident, $layout:ident, $($model:ident: $bound:expr),*) => {
        mod $module {
            $(
                #[test]
                fn $model() {
                    $crate::support::check(
                        concat!(module_path!(), "::", stringify!($model)),
                        $bound,
                        || super::$model($crate::support::Layout::$layout),
                    );
                }
            )*
        }
    };
}
pub(crate) use models;

#[path = "../tests/common/expected_error.rs"]
mod expected_error;
pub(crate) use expected_error::{Exceeds, TryExceeds};
