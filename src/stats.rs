//! Statistics: a cheap snapshot of counters kept since construction.

use crate::dims::DimNames;
use crate::sync::{AtomicU64, Ordering};
use std::fmt;

/// A snapshot of a semaphore's counters since construction; see
/// [`MultiSemaphore::stats`](crate::MultiSemaphore::stats).
///
/// Read while acquires run, the fields may disagree with each other by a few
/// operations (each is read on its own); once everything is quiet they are
/// exact.
///
/// # Which dimension held a request back
///
/// `refused`, `waited` and `timed_out_by` count each event under one
/// dimension, decided from what was available at one moment (under the
/// semaphore's lock, or for a refusal on the lock-free path from the
/// counters its take read): the first dimension in which the request
/// itself was short;
/// or, where the request would have fit but acquirers queued ahead of it come
/// first, the first dimension that the queue's head lacked. So a producer
/// held back behind a large request for bytes learns that bytes, not count,
/// is its limit.
///
/// # Timeouts of async acquires
///
/// An async acquire raced with a runtime's timer (`tokio::time::timeout`)
/// is dropped when the timer wins: the semaphore cannot tell that drop from
/// any other, so it counts in `cancelled`. To count it in `timed_out` (and
/// `timed_out_by`), hand the timer to the acquire with
/// [`Acquire::with_timeout`](crate::Acquire::with_timeout).
///
/// # How every wait ended
///
/// Each wait counted in `waited` ends in exactly one of
/// `acquired_after_wait`, `timed_out`, `cancelled`,
/// `closed_out_while_waiting` or `exceeded_while_waiting`, or has not
/// ended yet: [`waits_in_progress`](Self::waits_in_progress) is the
/// difference. So, once every acquire has returned or been dropped:
///
/// ```
/// use multisem::MultiSemaphore;
/// use std::time::Duration;
///
/// let sem = MultiSemaphore::new([1, 100]);
/// let held = sem.try_acquire([1, 10]).unwrap();
/// // Waits for the one count permit, which is held: times out.
/// assert!(sem.acquire_blocking_timeout([1, 10], Duration::from_millis(1)).is_err());
/// drop(held);
/// let stats = sem.stats();
/// let waited: u64 = stats.waited.iter().sum();
/// assert_eq!(waited, 1);
/// assert_eq!(
///     waited,
///     stats.acquired_after_wait
///         + stats.timed_out
///         + stats.cancelled
///         + stats.closed_out_while_waiting
///         + stats.exceeded_while_waiting
/// );
/// assert_eq!(stats.waits_in_progress(), 0);
/// ```
///
/// Its `Debug` shows the per-dimension figures by name, where the semaphore
/// has [names](crate::Builder::names) (a dimension without one as
/// `"dimension {dim}"`, as messages write it):
///
/// ```
/// use multisem::MultiSemaphore;
///
/// let sem = MultiSemaphore::builder([10, 1024]).names(&["messages", "bytes"]).build();
/// assert!(sem.try_acquire([1, 2048]).is_err());
/// assert!(format!("{:?}", sem.stats()).contains(r#"refused: {"messages": 0, "bytes": 1}"#));
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats<const N: usize> {
    /// Successful acquires delivered to callers, by every method (zero
    /// requests included), and each successful `try_grow` of a permit. Read while acquires run, it may lag behind them
    /// (the fast path tallies its takes in its counter word and moves each
    /// 64 to a total: by 64 for each take between such a wrap and that move;
    /// an async grant counts when its future is polled), but it never counts
    /// one that has not happened, and never reports fewer than an earlier
    /// snapshot did.
    pub acquired: u64,
    /// What the acquires counted in `acquired` were granted in all, per
    /// dimension: two snapshots give the throughput (for example bytes per
    /// second). Kept only by a semaphore built with
    /// [`track_amounts(true)`](crate::Builder::track_amounts); zero
    /// otherwise. Counted at the grant: what a permit gives back early
    /// ([`Permit::release`](crate::Permit::release), say once a message
    /// compressed smaller) is not taken off, and what it gains by
    /// [`try_grow`](crate::Permit::try_grow) is added. Saturates at
    /// `u64::MAX` rather than wrap.
    pub acquired_amounts: [u64; N],
    /// Whether `acquired_amounts` is kept ([`track_amounts`](crate::Builder::track_amounts)):
    /// where it is not, its zeros say nothing, and `Debug` and the metrics
    /// exporter leave it out.
    pub amounts_tracked: bool,
    /// `try_acquire` failures (`Insufficient` or `ExceedsCapacity`), and
    /// those of a permit's `try_grow`, by the dimension the error names. A
    /// caller that waits whenever it cannot take at once is refused
    /// nothing: use
    /// [`try_acquire_or_wait`](crate::MultiSemaphore::try_acquire_or_wait)
    /// for it, whose misses count here not at all (the tower layer does, in
    /// wait mode).
    pub refused: [u64; N],
    /// Acquires of every kind that failed with `ExceedsCapacity`, by the
    /// dimension the error names: `try_acquire` and a permit's `try_grow`
    /// (also counted in `refused`), waiting acquires refused at once, and
    /// queued ones failed by a shrink (counted when the shrink fails them,
    /// delivered or not).
    pub exceeded: [u64; N],
    /// Waiting acquires (blocking, timed or async) that could not be granted
    /// at once, by the dimension that held them back when they queued (see
    /// above). A timed acquire whose deadline had already passed counts
    /// here too, though it never queued. Each of these waits ends in one of
    /// the ways "How every wait ended" lists.
    pub waited: [u64; N],
    /// Acquires that returned [`AcquireError::Timeout`](crate::AcquireError::Timeout).
    pub timed_out: u64,
    /// `timed_out` by the dimension that held each one back when its time
    /// ran out (see above); the fields add up to `timed_out`.
    pub timed_out_by: [u64; N],
    /// Async acquires dropped after they were queued and before they
    /// delivered a permit (a grant that raced the drop is returned, and
    /// counted here, not in `acquired`; one that `close` woke first counts in
    /// `closed_out` and `closed_out_while_waiting`, and one a shrink failed
    /// first only in `exceeded` and `exceeded_while_waiting`).
    /// Includes those dropped by a runtime's timeout: see above.
    pub cancelled: u64,
    /// Acquires, of any kind, refused or woken by [`close`](crate::MultiSemaphore::close).
    /// A queued one counts when its caller learns it (its future polled or
    /// dropped, its thread woken), not at the close: one never polled
    /// again counts in `waits_in_progress` meanwhile. (`exceeded`, by
    /// contrast, counts a waiter when the shrink fails it.)
    pub closed_out: u64,
    /// Of the waits counted in `waited`: those that ended with a permit
    /// delivered to the caller (their turn came; or, at their deadline, a
    /// grant won the race with it). See "How every wait ended".
    pub acquired_after_wait: u64,
    /// Of the waits counted in `waited`: those `close` woke (also counted
    /// in `closed_out`).
    pub closed_out_while_waiting: u64,
    /// Of the waits counted in `waited`: those a shrink failed with
    /// `ExceedsCapacity` (also counted in `exceeded`).
    pub exceeded_while_waiting: u64,
    /// Grants of less than the request: requests above a capacity clamped
    /// to it, on a semaphore built with
    /// [`clamp_oversized`](crate::Builder::clamp_oversized). Counted when
    /// the grant is made (each also counts in `acquired` once delivered).
    pub clamped: u64,
    /// The most held at once by live permits, per dimension. Zero if the
    /// semaphore was built with
    /// [`track_peaks(false)`](crate::Builder::track_peaks).
    ///
    /// Never more than was held at once. Exact in the tiered layout, which
    /// counts a permit from just after its take to just before its return
    /// (a take and a return that race count as one after the other). In
    /// the single-word one, exact but for a take that races a resize (a
    /// `set_capacity`, `add_permits`, `forget` or an adaptive controller's
    /// resize) within the few instructions between its compare-and-swap
    /// and its note of the peak: that take's peak is then read under the
    /// lock just after, and may miss permits released in between. And but
    /// for a take held up between its first read of the counters and its
    /// compare-and-swap while a resize ran and with it a multiple of 64
    /// steps of the counter word's tally (each fast take and each resize
    /// is one), leaving the counters as it read them: its peak is then
    /// judged against the capacity before the resize, and one that the
    /// resize's new permits allowed is missed.
    pub peak_in_flight: [u64; N],
    /// Whether `peak_in_flight` is kept ([`track_peaks`](crate::Builder::track_peaks),
    /// the default): where it is not, its zeros say nothing, and `Debug`
    /// and the metrics exporter leave it out.
    pub peaks_tracked: bool,
    /// The semaphore's dimension names, if it has any.
    pub names: DimNames,
}

impl<const N: usize> Stats<N> {
    /// Waits counted in `waited` that have not ended yet: requests still
    /// queued, and those a grant or `close` has ended whose future has not
    /// been polled since (each counts when it is delivered, or dropped). A
    /// shrink's failure ends a wait when the shrink decides it, as
    /// `exceeded` counts it. See "How every wait ended".
    ///
    /// The fields are read one by one (the ends first, then `waited`): read
    /// while acquires run, it may be off by the waits that start or end
    /// meanwhile, and it saturates at 0 rather than wrap.
    ///
    /// ```
    /// use multisem::MultiSemaphore;
    ///
    /// # futures_executor::block_on(async {
    /// let sem = MultiSemaphore::new([1, 100]);
    /// let held = sem.try_acquire([1, 10]).unwrap();
    /// let mut wait = Box::pin(sem.acquire([1, 10]));
    /// assert!(futures_util::poll!(wait.as_mut()).is_pending()); // queued
    /// assert_eq!(sem.stats().waits_in_progress(), 1);
    /// drop(held);
    /// drop(wait.await.unwrap());
    /// assert_eq!(sem.stats().waits_in_progress(), 0);
    /// assert_eq!(sem.stats().acquired_after_wait, 1);
    /// # });
    /// ```
    pub fn waits_in_progress(&self) -> u64 {
        let started = self
            .waited
            .iter()
            .fold(0u64, |sum, &waits| sum.saturating_add(waits));
        let ended = [
            self.acquired_after_wait,
            self.timed_out,
            self.cancelled,
            self.closed_out_while_waiting,
            self.exceeded_while_waiting,
        ]
        .iter()
        .fold(0u64, |sum, &ended| sum.saturating_add(ended));
        started.saturating_sub(ended)
    }
}

/// Per-dimension figures in `Debug` output: by name where any dimension
/// has one.
struct PerDim<'a, const N: usize>(&'a [u64; N], DimNames);

impl<const N: usize> fmt::Debug for PerDim<'_, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if (0..N).all(|d| self.1.get(d).is_none()) {
            return fmt::Debug::fmt(self.0, f);
        }
        f.debug_map()
            .entries((0..N).map(|d| {
                (
                    DimKey {
                        dim: d,
                        names: self.1,
                    },
                    &self.0[d],
                )
            }))
            .finish()
    }
}

/// A dimension as a key of `Debug` output: its name, quoted, or
/// `"dimension {dim}"` where it has none, as messages write it.
struct DimKey {
    dim: usize,
    names: DimNames,
}

impl fmt::Debug for DimKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.names.get(self.dim) {
            Some(name) => fmt::Debug::fmt(name, f),
            None => write!(f, "\"dimension {}\"", self.dim),
        }
    }
}

impl<const N: usize> fmt::Debug for Stats<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let per_dim = |v| PerDim(v, self.names);
        let mut out = f.debug_struct("Stats");
        out.field("acquired", &self.acquired);
        if self.amounts_tracked {
            out.field("acquired_amounts", &per_dim(&self.acquired_amounts));
        }
        out.field("refused", &per_dim(&self.refused))
            .field("exceeded", &per_dim(&self.exceeded))
            .field("waited", &per_dim(&self.waited))
            .field("timed_out", &self.timed_out)
            .field("timed_out_by", &per_dim(&self.timed_out_by))
            .field("cancelled", &self.cancelled)
            .field("closed_out", &self.closed_out)
            .field("acquired_after_wait", &self.acquired_after_wait)
            .field("closed_out_while_waiting", &self.closed_out_while_waiting)
            .field("exceeded_while_waiting", &self.exceeded_while_waiting)
            .field("clamped", &self.clamped);
        if self.peaks_tracked {
            out.field("peak_in_flight", &per_dim(&self.peak_in_flight));
        }
        out.finish()
    }
}

impl<const N: usize> Default for Stats<N> {
    fn default() -> Self {
        Self {
            acquired: 0,
            acquired_amounts: [0; N],
            amounts_tracked: false,
            refused: [0; N],
            exceeded: [0; N],
            waited: [0; N],
            timed_out: 0,
            timed_out_by: [0; N],
            cancelled: 0,
            closed_out: 0,
            acquired_after_wait: 0,
            closed_out_while_waiting: 0,
            exceeded_while_waiting: 0,
            clamped: 0,
            peak_in_flight: [0; N],
            // As the builder's defaults: peaks kept, amounts not.
            peaks_tracked: true,
            names: DimNames::default(),
        }
    }
}

/// The counters of the paths off the lock-free fast path (the fast path
/// counts its takes in the counter word itself, and peaks in `Limits`).
///
/// Relaxed, but for the ends of waits: statistics, synchronizing nothing
/// but a snapshot's view of a wait's end and its start (see `record`).
#[derive(Debug)]
pub(crate) struct StatCounters<const N: usize> {
    slow_acquired: AtomicU64,
    /// The most `acquired` a snapshot has reported: the fast path's count
    /// can lag while takes run (never lead), and a later snapshot must not
    /// report fewer.
    acquired_seen: AtomicU64,
    /// Only with `track_amounts`: an atomic add per dimension is too much
    /// for every fast take to pay by default.
    acquired_amounts: Option<[AtomicU64; N]>,
    refused: [AtomicU64; N],
    exceeded: [AtomicU64; N],
    waited: [AtomicU64; N],
    timed_out_by: [AtomicU64; N],
    cancelled: AtomicU64,
    closed_out: AtomicU64,
    acquired_after_wait: AtomicU64,
    closed_out_while_waiting: AtomicU64,
    exceeded_while_waiting: AtomicU64,
    clamped: AtomicU64,
}

/// What a slow-path operation ended with, for the statistics. Grants are
/// counted by [`StatCounters::acquired`], with their amounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    /// A `try_acquire` failed, held back by this dimension.
    Refused(usize),
    /// An acquire failed with `ExceedsCapacity` in this dimension.
    Exceeded(usize),
    /// A waiting acquire could not be granted at once, held back by this
    /// dimension.
    Waited(usize),
    /// A waiting acquire timed out, held back by this dimension.
    TimedOut(usize),
    Cancelled,
    ClosedOut,
    /// A wait ended with a permit delivered (counted with the grant).
    AcquiredAfterWait,
    /// A wait ended woken by `close` (counted with `ClosedOut`).
    ClosedOutWhileWaiting,
    /// A wait ended failed by a shrink (counted with `Exceeded`).
    ExceededWhileWaiting,
    Clamped,
}

fn zeros<const N: usize>() -> [AtomicU64; N] {
    std::array::from_fn(|_| AtomicU64::new(0))
}

impl<const N: usize> StatCounters<N> {
    pub(crate) fn new(track_amounts: bool) -> Self {
        Self {
            slow_acquired: AtomicU64::new(0),
            acquired_seen: AtomicU64::new(0),
            acquired_amounts: track_amounts.then(zeros),
            refused: zeros(),
            exceeded: zeros(),
            waited: zeros(),
            timed_out_by: zeros(),
            cancelled: AtomicU64::new(0),
            closed_out: AtomicU64::new(0),
            acquired_after_wait: AtomicU64::new(0),
            closed_out_while_waiting: AtomicU64::new(0),
            exceeded_while_waiting: AtomicU64::new(0),
            clamped: AtomicU64::new(0),
        }
    }

    /// Whether grants' amounts are counted: the fast path then calls
    /// [`add_amounts`](Self::add_amounts) for its own grants.
    #[inline(always)]
    pub(crate) fn tracks_amounts(&self) -> bool {
        self.acquired_amounts.is_some()
    }

    pub(crate) fn record(&self, event: Event) {
        let counter = match event {
            Event::Refused(dim) => &self.refused[dim],
            Event::Exceeded(dim) => &self.exceeded[dim],
            Event::Waited(dim) => &self.waited[dim],
            Event::TimedOut(dim) => &self.timed_out_by[dim],
            Event::Cancelled => &self.cancelled,
            Event::ClosedOut => &self.closed_out,
            Event::AcquiredAfterWait => &self.acquired_after_wait,
            Event::ClosedOutWhileWaiting => &self.closed_out_while_waiting,
            Event::ExceededWhileWaiting => &self.exceeded_while_waiting,
            Event::Clamped => &self.clamped,
        };
        // The end of a wait is Release, paired with the snapshot's Acquire
        // load of it: a snapshot that sees a wait ended then sees it
        // started (`waited`, counted before, on this thread or under the
        // lock that orders the two), which it reads after. Relaxed
        // otherwise: a statistic; exact once the callers are quiet.
        let order = match event {
            Event::TimedOut(_)
            | Event::Cancelled
            | Event::AcquiredAfterWait
            | Event::ClosedOutWhileWaiting
            | Event::ExceededWhileWaiting => Ordering::Release,
            _ => Ordering::Relaxed,
        };
        counter.fetch_add(1, order);
    }

    /// A grant off the fast path, delivered to its caller.
    pub(crate) fn acquired(&self, amounts: &[u64; N]) {
        // Relaxed: a statistic; exact once the callers are quiet.
        self.slow_acquired.fetch_add(1, Ordering::Relaxed);
        self.add_amounts(amounts);
    }

    /// Counts a grant's amounts, if they are tracked. Out of line: the fast
    /// path inlines only the test of `tracks_amounts`.
    #[inline(never)]
    pub(crate) fn add_amounts(&self, amounts: &[u64; N]) {
        let Some(totals) = &self.acquired_amounts else {
            return;
        };
        for (total, &amount) in totals.iter().zip(amounts) {
            if amount > 0 {
                // Saturating: 16 grants of `MAX_PERMITS` would wrap a sum,
                // and the metrics exporter, which keeps the largest value
                // given, would then stick. Relaxed: a statistic; exact once
                // the callers are quiet.
                let _ = total.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |sum| {
                    Some(sum.saturating_add(amount))
                });
            }
        }
    }

    /// The snapshot, given what the fast path counted.
    pub(crate) fn snapshot(
        &self,
        fast_acquired: u64,
        peak_in_flight: Option<[u64; N]>,
        names: DimNames,
    ) -> Stats<N> {
        // Relaxed: a snapshot of statistics, not one instant.
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let all = |c: &[AtomicU64; N]| -> [u64; N] { std::array::from_fn(|d| load(&c[d])) };
        // The ends of waits are read before `waited`, where they began: a
        // wait that ends between the reads then still counts as in
        // progress, rather than an end showing without its start. Acquire:
        // pairs with `record`'s Release, so that the read of `waited` below
        // sees the start of every end read here (two Relaxed loads may be
        // reordered, by the compiler or the CPU).
        let end = |c: &AtomicU64| c.load(Ordering::Acquire);
        let timed_out_by: [u64; N] = std::array::from_fn(|d| end(&self.timed_out_by[d]));
        let cancelled = end(&self.cancelled);
        let acquired_after_wait = end(&self.acquired_after_wait);
        let closed_out_while_waiting = end(&self.closed_out_while_waiting);
        let exceeded_while_waiting = end(&self.exceeded_while_waiting);
        Stats {
            acquired: {
                let now = fast_acquired + load(&self.slow_acquired);
                // Relaxed: the floor is a statistic like the rest.
                now.max(self.acquired_seen.fetch_max(now, Ordering::Relaxed))
            },
            acquired_amounts: self.acquired_amounts.as_ref().map_or([0; N], all),
            amounts_tracked: self.acquired_amounts.is_some(),
            refused: all(&self.refused),
            exceeded: all(&self.exceeded),
            waited: all(&self.waited),
            timed_out: timed_out_by.iter().sum(),
            timed_out_by,
            cancelled,
            closed_out: load(&self.closed_out),
            acquired_after_wait,
            closed_out_while_waiting,
            exceeded_while_waiting,
            clamped: load(&self.clamped),
            peak_in_flight: peak_in_flight.unwrap_or([0; N]),
            peaks_tracked: peak_in_flight.is_some(),
            names,
        }
    }
}
