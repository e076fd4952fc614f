//! The public type: construction, the lock-free fast path, and the locked
//! path that serves the queue and closes; resizing and its debt are in
//! [`resize`].
//!
//! # Fairness: permits stay in the counters
//!
//! Released permits always go back to the counters. While anyone is queued
//! (the `SLOW` flag), no newcomer takes from them: not `try_acquire`, not a
//! new blocking or async acquire. The holder of the queue lock grants the head
//! of the queue once *all* of its request fits, then the next, and stops at
//! the first that does not fit. This is Go's `x/sync/semaphore` discipline,
//! chosen over tokio's direct hand-off (which assigns released permits to the
//! head as they come, so the head accumulates a part while it waits) because
//! with several dimensions a partial hand-off is hold-and-wait: a head waiting
//! for bytes would pin count permits that others could use, the RocketMQ
//! failure in a new form. Here a waiter never holds a part, a waiter that
//! leaves has nothing to give back, and releasing while nobody waits never
//! takes the lock.
//!
//! # Invariants (kept under the lock, checked by the loom models)
//!
//! For every dimension, with `debt` what a shrink below the permits in flight
//! still has to absorb:
//!
//! * `counters + in flight == capacity + debt`;
//! * `capacity + debt <= max_capacity`, so a counter never overflows;
//! * `debt > 0` only while the counter is 0 or a return is on its way to the
//!   lock (that return sees `SLOW` and settles it);
//! * no dimension is granted while it is in debt: every locked take settles
//!   first what returns brought since the last visit and refuses a dimension
//!   that still owes (see [`resize`]), so in flight never passes the
//!   capacity in force once a shrink's debt is paid, nor grows while it is not;
//! * `SLOW` is set exactly when the queue is not empty or some debt is
//!   outstanding (it may be set a moment early, never late);
//! * after every visit to the lock, the queue's head does not fit, unless
//!   the visit stopped at a full batch of wakes; then its visitor comes back
//!   (`wake_and_serve`) once it has woken that batch.

use crate::counters::{Counters, FastError, MAX_PERMITS, Miss, Once, Short, Took, Watch};
use crate::dims::{DimNames, DimSet};
use crate::error::{AcquireError, TryAcquireError};
use crate::permit::{OwnedPermit, Permit, PermitSource};
use crate::shortfall::Shortfall;
use crate::stats::{Event, StatCounters, Stats};
use crate::sync::{Arc, AtomicU64, AtomicUsize, Mutex, Ordering, fence};
use crate::waiters::{
    Notify, Outcome, Parked, QueueGuard, Ticket, WaitQueue, WakeList, drop_quietly,
};
use crossbeam_utils::CachePadded;
use std::fmt;

pub(crate) mod drain;
mod resize;
pub(crate) use resize::Woken;
#[cfg(all(test, not(loom)))]
mod tests;

/// A semaphore over `N` independent pools of `u64` permits, acquired all
/// together or not at all.
///
/// See the [crate documentation](crate) for the guarantees and an overview.
/// Share it in an [`Arc`](std::sync::Arc) and take `*_owned` permits to
/// move them across threads:
///
/// ```
/// use multisem::MultiSemaphore;
/// use std::sync::Arc;
///
/// // 64 messages and 8 MiB in flight, over every sender.
/// let sem = Arc::new(MultiSemaphore::new([64, 8 << 20]));
/// let senders: Vec<_> = (0..4)
///     .map(|_| {
///         let sem = Arc::clone(&sem);
///         std::thread::spawn(move || {
///             for len in [512u64, 4096, 65536] {
///                 let permit = sem.acquire_blocking([1, len]).unwrap();
///                 // ... hand `permit` to the send's completion callback.
///                 drop(permit);
///             }
///         })
///     })
///     .collect();
/// for sender in senders {
///     sender.join().unwrap();
/// }
/// assert_eq!(sem.available(), sem.capacity());
/// ```
pub struct MultiSemaphore<const N: usize> {
    /// The hot word(s): written by every acquire and release.
    counters: CachePadded<Counters<N>>,
    /// Read by every acquire, written only by resizing.
    limits: CachePadded<Limits<N>>,
    queue: Mutex<WaitQueue<N>>,
    /// `queue.len()`, for `waiters()` without the lock.
    queued: AtomicUsize,
    stats: StatCounters<N>,
    max_capacity: [u64; N],
    track_peaks: bool,
    names: DimNames,
    /// `Builder::clamp_oversized`: a request above a capacity is granted
    /// that capacity instead of failing with `ExceedsCapacity`.
    clamp_oversized: bool,
}

/// Capacity, debt and peaks: changed only under the queue lock (peaks by
/// `fetch_max` anywhere), read lock-free. Relaxed but where said: the lock
/// orders the writers, and lock-free readers use them only for errors and
/// statistics, never to decide whether permits are theirs (the exceptions:
/// the count of resizes, and a debt paid, which `load_free_of_debt` reads
/// with the counters it was paid from).
#[derive(Debug)]
struct Limits<const N: usize> {
    capacity: [AtomicU64; N],
    debt: [AtomicU64; N],
    peak: [AtomicU64; N],
    /// Per dimension, the fewest permits a take can leave in the counters
    /// without passing the peak in flight (`capacity + debt - peak`), packed
    /// as the counter word is, so that a fast take checks its peaks with one
    /// load and one subtraction; see `refresh_low_water` for how it never
    /// falls below the truth.
    low_water: AtomicU64,
    /// How many times a resize opened or closed the limits (odd while one
    /// runs), in full: what tells a take that raised a peak, and the
    /// lock-free `in_flight()`, whether the limits they read are those of
    /// the counters they read (`limits_unchanged_since`). The low water's
    /// generation is this count in 6 bits, which 32 resizes bring back: it
    /// only keeps a refresh of the low water from landing across a resize.
    resizes: AtomicU64,
}

/// What the low water must send out of line: every take while acquired
/// amounts are counted (that count is kept out of line); else, while peaks are
/// tracked, takes that pass the peak, given the fewest permits they may leave
/// (`low`); else nothing.
fn watch<const N: usize>(amounts: bool, peaks: bool, low: impl FnOnce() -> [u64; N]) -> Watch<N> {
    if amounts {
        Watch::EveryTake
    } else if peaks {
        Watch::Below(low())
    } else {
        Watch::Nothing
    }
}

fn load_all<const N: usize>(atomics: &[AtomicU64; N]) -> [u64; N] {
    // Relaxed: as everywhere on `Limits` (see there).
    std::array::from_fn(|d| atomics[d].load(Ordering::Relaxed))
}

impl<const N: usize> MultiSemaphore<N> {
    /// The largest capacity of one dimension: `2^60`.
    pub const MAX_PERMITS: u64 = MAX_PERMITS;

    /// A semaphore with `capacity[d]` permits in dimension `d`, all available.
    ///
    /// Where the capacities fit the single-word layout with room to spare
    /// (see [`is_single_word`](Self::is_single_word)), every acquire is a
    /// single compare-and-swap, and the word's spare bits are
    /// shared out as room to grow by [`add_permits`](Self::add_permits) or
    /// [`set_capacity`](Self::set_capacity).
    /// [`max_capacity`](Self::max_capacity) tells how far each dimension can
    /// grow: for `[1024, 100 << 20]`, to `2^19 - 1` messages and `2^35 - 1`
    /// bytes (32 GiB), some 500-fold and 300-fold. To be sure of more, reserve
    /// it with [`builder`](Self::builder). Where fewer bits are spare than
    /// there are dimensions, some get none: such a dimension grows only
    /// within the bits its capacity needs already (5 to 7, say), and one
    /// started at 0 stays 0, so reserve room for a dimension you start
    /// paused.
    ///
    /// ```
    /// use multisem::MultiSemaphore;
    ///
    /// // At most 1024 messages and 100 MiB in flight.
    /// let sem = MultiSemaphore::new([1024, 100 << 20]);
    /// assert_eq!(sem.available(), [1024, 100 << 20]);
    /// assert_eq!(sem.max_capacity(), [(1 << 19) - 1, (1 << 35) - 1]);
    /// ```
    ///
    /// A semaphore needs 1 to 64 dimensions; any other `N` is a compile
    /// error (so is an empty array, which infers `N == 0`):
    ///
    /// ```compile_fail
    /// use multisem::MultiSemaphore;
    ///
    /// let sem = MultiSemaphore::new([]); // error: N must be in 1..=64
    /// # let _: MultiSemaphore<0> = sem;
    /// ```
    ///
    /// ```compile_fail
    /// use multisem::MultiSemaphore;
    ///
    /// let sem = MultiSemaphore::builder([1; 65]).build(); // error: N must be in 1..=64
    /// ```
    ///
    /// # Panics
    ///
    /// If a capacity is above [`MAX_PERMITS`](Self::MAX_PERMITS).
    #[track_caller]
    pub fn new(capacity: [u64; N]) -> Self {
        Self::builder(capacity).build()
    }

    /// A [`Builder`](crate::Builder) for a semaphore with these capacities,
    /// to reserve room to grow, name the dimensions, clamp oversized
    /// requests, count the amounts granted or turn off peak tracking.
    pub fn builder(capacity: [u64; N]) -> crate::Builder<N> {
        const {
            assert!(
                N > 0 && N <= 64,
                "a MultiSemaphore has 1 to 64 dimensions: N must be in 1..=64"
            );
        }
        crate::Builder::new(capacity)
    }

    #[track_caller]
    pub(crate) fn from_parts(
        capacity: [u64; N],
        max_capacity: Option<[u64; N]>,
        track_peaks: bool,
        track_amounts: bool,
        names: Option<&'static [&'static str; N]>,
        front_bits: Option<[u32; N]>,
    ) -> Self {
        for (dim, &cap) in capacity.iter().enumerate() {
            assert!(
                cap <= MAX_PERMITS,
                "MultiSemaphore: capacity {cap} of dimension {dim} is above MAX_PERMITS ({MAX_PERMITS})"
            );
        }
        if let Some(max) = max_capacity {
            for dim in 0..N {
                assert!(
                    max[dim] <= MAX_PERMITS,
                    "MultiSemaphore: max capacity {} of dimension {dim} is above MAX_PERMITS ({MAX_PERMITS})",
                    max[dim]
                );
                assert!(
                    capacity[dim] <= max[dim],
                    "MultiSemaphore: capacity {} of dimension {dim} is above its max capacity {}",
                    capacity[dim],
                    max[dim]
                );
            }
        }
        let (counters, max_capacity) =
            Counters::new(capacity, max_capacity, front_bits, track_peaks);
        // Nothing in flight yet: the counters may go down to the capacity.
        let low_water = counters.low_water_word(watch(track_amounts, track_peaks, || capacity), 0);
        Self {
            counters: CachePadded::new(counters),
            limits: CachePadded::new(Limits {
                capacity: capacity.map(AtomicU64::new),
                debt: std::array::from_fn(|_| AtomicU64::new(0)),
                peak: std::array::from_fn(|_| AtomicU64::new(0)),
                low_water: AtomicU64::new(low_water),
                resizes: AtomicU64::new(0),
            }),
            queue: Mutex::new(WaitQueue::new()),
            queued: AtomicUsize::new(0),
            stats: StatCounters::new(track_amounts),
            max_capacity,
            track_peaks,
            names: DimNames::new(names.map(|names| &names[..])),
            clamp_oversized: false,
        }
    }

    /// The dimension names given to the [builder](crate::Builder::names),
    /// which its errors, its `Debug` output and a `tower::AdmitLayer` on it
    /// use.
    ///
    /// ```
    /// use multisem::MultiSemaphore;
    ///
    /// let sem = MultiSemaphore::builder([10, 1024]).names(&["messages", "bytes"]).build();
    /// assert_eq!(sem.names().get(1), Some("bytes"));
    /// assert_eq!(MultiSemaphore::new([10]).names().get(0), None);
    /// ```
    pub fn names(&self) -> DimNames {
        self.names
    }

    /// For `Builder::build`.
    pub(crate) fn with_clamp_oversized(mut self, on: bool) -> Self {
        self.clamp_oversized = on;
        self
    }

    /// Whether a request above a dimension's capacity is clamped to that
    /// capacity rather than refused; see
    /// [`Builder::clamp_oversized`](crate::Builder::clamp_oversized).
    ///
    /// ```
    /// use multisem::MultiSemaphore;
    ///
    /// assert!(!MultiSemaphore::new([4, 100]).clamps_oversized());
    /// let sem = MultiSemaphore::builder([4, 100]).clamp_oversized(true).build();
    /// assert!(sem.clamps_oversized());
    /// assert_eq!(sem.try_acquire([1, 500]).unwrap().amounts(), [1, 100]);
    /// ```
    pub fn clamps_oversized(&self) -> bool {
        self.clamp_oversized
    }

    /// The capacity of each dimension now.
    pub fn capacity(&self) -> [u64; N] {
        load_all(&self.limits.capacity)
    }

    /// How far each dimension can grow by [`add_permits`](Self::add_permits)
    /// or [`set_capacity`](Self::set_capacity); fixed at construction.
    pub fn max_capacity(&self) -> [u64; N] {
        self.max_capacity
    }

    /// The permits available now in each dimension: a snapshot for metrics,
    /// exact when nothing is in flight.
    ///
    /// After [`set_capacity`](Self::set_capacity) shrinks a dimension below
    /// what is in flight, it reads 0 there until enough permits come back.
    /// Lock-free in the single-word layout, queued acquirers or not, unless
    /// a shrink is being absorbed or a resize races the read; then it reads
    /// under the internal lock, so that it never counts permits that a
    /// shrink has claimed. The tiered layout always reads under the lock,
    /// and that read holds the fast path off for its while (takes and
    /// returns meanwhile go through the lock): read it at a metrics
    /// interval, not per request.
    pub fn available(&self) -> [u64; N] {
        if let Some(available) = self.counters.load_if_settled() {
            return available;
        }
        // `SLOW` set: while no debt is owed (only queued acquirers), the
        // counters are still exactly what is available.
        if let Some((_, counters)) = self.load_free_of_debt() {
            return counters;
        }
        let _queue = self.lock();
        self.available_locked()
    }

    /// `available()` for the lock holder: debt cannot change meanwhile, and
    /// returns only add to the counters, so this never over-counts.
    fn available_locked(&self) -> [u64; N] {
        let counters = self.counters.load_locked();
        let debt = load_all(&self.limits.debt);
        std::array::from_fn(|d| counters[d].saturating_sub(debt[d]))
    }

    /// How many blocking and async acquirers are queued: a snapshot.
    ///
    /// A caller that sees a waiter here also sees it queued: its next
    /// `try_acquire` or acquire does not overtake that waiter.
    pub fn waiters(&self) -> usize {
        // Acquire: pairs with the Release in `publish`, so whoever sees a
        // waiter counted also sees the `SLOW` flag set before it was.
        self.queued.load(Ordering::Acquire)
    }

    /// Whether the semaphore is using the single-word layout (one CAS per
    /// acquire) rather than the tiered one (a packed front word with one
    /// atomic per dimension behind it), which capacities too large for one
    /// word need.
    ///
    /// The single-word layout gives each dimension a field as wide as its
    /// capacity's bit width (its `max_capacity` where the
    /// [`builder`](Self::builder) sets one) plus a guard bit, all within 56
    /// of the word's 64 bits (the rest hold two flags and a tally): `[1024,
    /// 100 MiB]` needs 11 + 27 + 2 = 40 bits; `[1 Mi, 8 GiB]` needs 21 + 34
    /// + 2 = 57, one too many.
    ///
    /// ```
    /// use multisem::MultiSemaphore;
    ///
    /// assert!(MultiSemaphore::new([1024, 100 << 20]).is_single_word());
    /// assert!(!MultiSemaphore::new([1 << 20, 8 << 30]).is_single_word());
    /// ```
    pub fn is_single_word(&self) -> bool {
        self.counters.is_packed()
    }

    /// Closes the semaphore: every queued acquirer wakes with
    /// [`Closed`](AcquireError::Closed), and every later acquire fails with
    /// it. Permits already out stay valid and return their amounts when
    /// dropped. Closing twice is harmless; there is no reopening.
    ///
    /// The order is kept with a shrink that races it: one that came first
    /// fails with [`ExceedsCapacity`](AcquireError::ExceedsCapacity) every
    /// waiter still too large when its walk of the queue reaches it (the
    /// close finishes that walk first; a growth meanwhile lets those it
    /// has not reached fit again, and the close then closes them out), and
    /// one that comes after the close fails nobody. A release or growth
    /// grants the queue 8 at a time too, letting go of its lock between: a
    /// close that comes between two of its batches closes out those it has
    /// not granted yet, though they fit.
    ///
    /// ```
    /// use multisem::{MultiSemaphore, TryAcquireError};
    ///
    /// let sem = MultiSemaphore::new([2, 100]);
    /// let permit = sem.try_acquire([1, 10]).unwrap();
    /// sem.close();
    /// assert_eq!(sem.try_acquire([1, 10]).unwrap_err(), TryAcquireError::Closed);
    /// drop(permit);
    /// assert_eq!(sem.available(), [2, 100]);
    /// ```
    ///
    /// # Waiting for what is in flight
    ///
    /// A producer that shuts down stops admitting, then waits for what is in
    /// flight to come back: `close`, then [`drained`](Self::drained) (or
    /// [`drained_blocking_timeout`](Self::drained_blocking_timeout)), which
    /// completes once every permit is back, whatever resizes run meanwhile.
    ///
    /// ```
    /// use multisem::MultiSemaphore;
    /// use std::{sync::Arc, thread, time::Duration};
    ///
    /// let sem = Arc::new(MultiSemaphore::new([4, 1000]));
    /// let in_flight = sem.try_acquire_owned([1, 300]).unwrap();
    /// let sender = thread::spawn(move || {
    ///     thread::sleep(Duration::from_millis(10)); // the broker answers
    ///     drop(in_flight);
    /// });
    /// sem.close();
    /// assert!(sem.drained_blocking_timeout(Duration::from_secs(5)));
    /// assert_eq!(sem.in_flight(), [0, 0]);
    /// # sender.join().unwrap();
    /// ```
    ///
    /// To wait for it *without* closing (a flush, then go on), acquire the
    /// whole capacity: acquirers are served first come, first served, so
    /// those who come later queue behind it, and it is granted once
    /// everything in flight has come back. A shrink meanwhile fails it with
    /// `ExceedsCapacity` (try again with the new capacity), and a growth
    /// lets it be granted with the added permits still out.
    pub fn close(&self) {
        let mut wake = WakeList::new();
        loop {
            let mut queue = self.lock();
            // A shrink's walk for the requests it made too large, stopped
            // at a full batch of wakes (this close runs between two): it
            // came first, so it is finished first, and every waiter it made
            // too large fails with `ExceedsCapacity`, not `Closed`.
            if self.fail_oversized(&mut queue, &mut wake, false) {
                drop(queue);
                wake.wake_batch();
                continue;
            }
            // Under the lock: an acquirer checks `CLOSED` under it before
            // queueing, so none can queue after this and sleep forever.
            self.counters.close();
            // Closed, the queue is served by closing out its waiters.
            self.rebalance(&mut queue, &mut wake);
            break;
        }
        self.wake_and_serve(&mut wake, false);
        wake.finish();
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.counters.is_closed()
    }

    /// Takes `amounts` in every dimension, or nothing, without waiting.
    ///
    /// While nobody is queued this is lock-free, with no lock, allocation or
    /// system call: one compare-and-swap in the single-word layout, and in
    /// the tiered layout too while its front word has enough. It does
    /// not overtake queued acquirers: while any is queued it fails with
    /// `Insufficient` even where the counters alone would fit.
    ///
    /// It fails with `Insufficient` only if, at one instant during the call,
    /// a dimension lacked what it asks (or an acquirer was queued); with one
    /// exception, in the tiered layout, for a take that its front word
    /// cannot serve: behind the front, a dimension that another take held
    /// for a moment and gave back (having lost a later dimension to a third
    /// take) can make it fail. A request that cannot fit never holds any
    /// part. The README measures how rare that is.
    ///
    /// ```
    /// use multisem::{MultiSemaphore, TryAcquireError};
    ///
    /// let sem = MultiSemaphore::new([10, 4096]);
    /// let permit = sem.try_acquire([1, 3000]).unwrap();
    /// let err = sem.try_acquire([1, 2000]).unwrap_err();
    /// assert!(matches!(
    ///     err,
    ///     TryAcquireError::Insufficient { dim: 1, requested: 2000, available: 1096, .. }
    /// ));
    /// assert_eq!(err.to_string(), "insufficient permits in dimension 1: requested 2000, available 1096");
    /// // The failed call took nothing: the message count is untouched.
    /// assert_eq!(sem.available(), [9, 1096]);
    /// drop(permit);
    /// ```
    ///
    /// # Errors
    ///
    /// In this order: [`ExceedsCapacity`](TryAcquireError::ExceedsCapacity)
    /// if a dimension's capacity is below the request (unless the semaphore
    /// [clamps](crate::Builder::clamp_oversized) such requests: then it
    /// takes the capacity, and `Insufficient` names the clamped amount);
    /// [`Closed`](TryAcquireError::Closed) once closed;
    /// [`Insufficient`](TryAcquireError::Insufficient) if a dimension lacks
    /// permits now. A request of all zeros succeeds unless closed.
    #[inline(always)]
    pub fn try_acquire(&self, amounts: [u64; N]) -> Result<Permit<'_, N>, TryAcquireError> {
        Self::try_acquire_from(self, amounts)
    }

    /// [`try_acquire`](Self::try_acquire) for a semaphore in an [`Arc`]: the
    /// permit is `'static` and can move to another thread or into a callback.
    ///
    /// ```
    /// use multisem::MultiSemaphore;
    /// use std::sync::Arc;
    ///
    /// let sem = Arc::new(MultiSemaphore::new([10, 4096]));
    /// let permit = sem.try_acquire_owned([1, 512]).unwrap();
    /// std::thread::spawn(move || drop(permit)).join().unwrap();
    /// assert_eq!(sem.available(), [10, 4096]);
    /// ```
    ///
    /// # Errors
    ///
    /// As [`try_acquire`](Self::try_acquire).
    #[inline(always)]
    pub fn try_acquire_owned(
        self: &Arc<Self>,
        amounts: [u64; N],
    ) -> Result<OwnedPermit<N>, TryAcquireError> {
        Self::try_acquire_from(self, amounts)
    }

    /// A snapshot of the counters kept since construction.
    ///
    /// ```
    /// use multisem::MultiSemaphore;
    ///
    /// let sem = MultiSemaphore::new([2, 100]);
    /// let a = sem.try_acquire([2, 10]).unwrap();
    /// assert!(sem.try_acquire([1, 10]).is_err());
    /// let stats = sem.stats();
    /// assert_eq!((stats.acquired, stats.refused), (1, [1, 0]));
    /// assert_eq!(stats.peak_in_flight, [2, 10]);
    /// drop(a);
    /// ```
    pub fn stats(&self) -> Stats<N> {
        let peaks = self.track_peaks.then(|| {
            self.counters
                .peaks()
                .unwrap_or_else(|| load_all(&self.limits.peak))
        });
        self.stats.snapshot(self.fast_takes(), peaks, self.names)
    }

    /// How many fast-path takes have succeeded: the counters' tally, less
    /// the step each resize adds to it (`Counters::step_for_resize`), one
    /// per two counts of resizes. Read between the same two counts, no
    /// resize ran meanwhile (`limits_unchanged_since`: the step is written
    /// inside the count's bracket, so a tally that shows it shows the count
    /// moved); else read again under the lock, where none runs. So no
    /// resize's step counts as a take, nor is one left out for a step not
    /// read: `Stats::acquired` never runs ahead of the takes.
    fn fast_takes(&self) -> u64 {
        // Acquire: pairs with the Release of `rebase_low_water`, so that
        // the step of every resize counted here is in the tally read below.
        let before = self.limits.resizes.load(Ordering::Acquire);
        let tallied = self.counters.tallied();
        if self.limits_unchanged_since(before) {
            // Saturating: a tally read while a take's wrap is not yet
            // flushed lags by 64, and may not hold every resize's step.
            return tallied.saturating_sub(before / 2);
        }
        let _queue = self.lock();
        // Relaxed: the lock orders it after every resize, none runs now.
        let resizes = self.limits.resizes.load(Ordering::Relaxed);
        self.counters.tallied().saturating_sub(resizes / 2)
    }

    /// What live permits hold now, per dimension: a snapshot for metrics,
    /// exact when no acquire, release or resize runs at the same time (as
    /// [`available`](Self::available)).
    ///
    /// Unlike `capacity() - available()`, it stays true after
    /// [`set_capacity`](Self::set_capacity) shrinks a dimension below what is
    /// in flight: it counts what the shrink is still waiting for.
    ///
    /// ```
    /// use multisem::MultiSemaphore;
    ///
    /// let sem = MultiSemaphore::new([10, 1000]);
    /// let held = sem.try_acquire([8, 800]).unwrap();
    /// sem.set_capacity([4, 400]).unwrap();
    /// assert_eq!(sem.available(), [0, 0]);
    /// assert_eq!(sem.in_flight(), [8, 800]); // capacity - available says [4, 400]
    /// drop(held);
    /// assert_eq!(sem.in_flight(), [0, 0]);
    /// ```
    ///
    /// Lock-free in the single-word layout (queued acquirers or not) unless
    /// a shrink is being absorbed or a resize races the read; otherwise,
    /// and always in the tiered layout, it reads under the internal lock,
    /// which in the tiered layout holds the fast path off for its while, as
    /// [`available`](Self::available) says.
    pub fn in_flight(&self) -> [u64; N] {
        if let Some((capacity, counters)) = self.load_free_of_debt() {
            return std::array::from_fn(|d| capacity[d].saturating_sub(counters[d]));
        }
        let _queue = self.lock();
        self.in_flight_locked()
    }

    /// The capacities and the counters, read without the lock between the
    /// same two resizes, with no debt owed meanwhile: then
    /// `counters + in flight == capacity` (see the module docs). `None` in
    /// the tiered layout, whose tiers only the lock holder reads at one
    /// instant, and where a resize ran or runs, or a shrink is still being
    /// absorbed: the caller reads under the lock instead.
    ///
    /// Debt is raised only by a resize (`change_limits`), which the count of
    /// resizes brackets, and lowered by the lock holder's `settle_debt`: a
    /// debt read as 0 with no resize since stayed 0 while the counters were
    /// read. Queued acquirers (`SLOW` set for them alone) do not matter: the
    /// lock holder grants them with compare-and-swaps on the same word.
    fn load_free_of_debt(&self) -> Option<([u64; N], [u64; N])> {
        if !self.counters.is_packed() {
            return None;
        }
        // Acquire: pairs with the Release of `rebase_low_water`, so that
        // what a resize seen as done did is seen below; one that runs or
        // runs later, `limits_unchanged_since` tells (as for a take that
        // raised a peak).
        let before = self.limits.resizes.load(Ordering::Acquire);
        // Acquire: pairs with `settle_debt`'s Release, so that a debt read
        // as paid shows the counters the payment took from.
        let owed = self
            .limits
            .debt
            .iter()
            .any(|debt| debt.load(Ordering::Acquire) != 0);
        if owed {
            return None;
        }
        let capacity = self.capacity();
        let counters = self.counters.load_at_once()?;
        self.limits_unchanged_since(before)
            .then_some((capacity, counters))
    }

    /// `in_flight` for a statistic read at every completion (the adaptive
    /// controller's peak in flight in a window). The tiered layout, where
    /// it tracks peaks, counts what permits hold, and this reads that count
    /// without the lock: never above what they hold, exact once the grants
    /// and returns under way are done, each dimension on its own. Its
    /// locked read would set `SLOW` for the while, sending every take
    /// meanwhile to the lock, at every completion.
    pub(crate) fn in_flight_statistic(&self) -> [u64; N] {
        match self.counters.held() {
            Some(held) => held,
            None => self.in_flight(),
        }
    }

    /// What is in flight, for the lock holder: exact.
    fn in_flight_locked(&self) -> [u64; N] {
        // `counters + in flight == capacity + debt` (see the module docs).
        let counters = self.counters.load_locked();
        let capacity = self.capacity();
        let debt = load_all(&self.limits.debt);
        std::array::from_fn(|d| (capacity[d] + debt[d]).saturating_sub(counters[d]))
    }

    /// The request of the oldest queued acquirer, the one served next, or
    /// `None` while nobody is queued: a snapshot, read under the internal
    /// lock.
    ///
    /// ```
    /// use multisem::MultiSemaphore;
    ///
    /// let sem = MultiSemaphore::new([10, 1000]);
    /// let held = sem.try_acquire([1, 900]).unwrap();
    /// let mut big = Box::pin(sem.acquire([2, 500]));
    /// # let waker = std::task::Waker::noop();
    /// # let _ = big.as_mut().poll(&mut std::task::Context::from_waker(&waker));
    /// // ... polled once: it is queued.
    /// assert_eq!(sem.head_request(), Some([2, 500]));
    /// assert_eq!(sem.head_shortfall(), Some([0, 400]));
    /// drop(big);
    /// assert_eq!(sem.head_request(), None);
    /// # drop(held);
    /// ```
    pub fn head_request(&self) -> Option<[u64; N]> {
        self.lock().front().map(|(_, amounts)| amounts)
    }

    /// What the oldest queued acquirer still lacks in each dimension (its
    /// request minus what is available, 0 where it fits), or `None` while
    /// nobody is queued: for a dashboard that sees waiters and wants to know
    /// which budget they wait for. A snapshot, read under the internal lock;
    /// see [`head_request`](Self::head_request). On a semaphore that
    /// [clamps](crate::Builder::clamp_oversized) oversized requests, it is
    /// what the head lacks of its clamp (`head_request` is what it asked).
    pub fn head_shortfall(&self) -> Option<[u64; N]> {
        let queue = self.lock();
        let (_, head) = queue.front()?;
        // A clamped head waits for its clamp, not for what it asked.
        let head = self.clamp(head);
        let have = self.available_locked();
        Some(std::array::from_fn(|d| head[d].saturating_sub(have[d])))
    }

    /// How many queued acquirers behind the oldest one would fit in what is
    /// available now: they wait only because the queue serves first come,
    /// first served, behind a head that lacks something
    /// ([`head_shortfall`](Self::head_shortfall)). That is head-of-line
    /// blocking: a large request holding back small ones, which is what
    /// keeps the large one from starving. Each is judged on its own (two
    /// that each fit may not fit together); on a semaphore that
    /// [clamps](crate::Builder::clamp_oversized), by its clamp.
    ///
    /// A snapshot, read under the internal lock, which it holds while it
    /// walks the queue: its time grows with [`waiters`](Self::waiters), so
    /// call it for a dashboard, not on every request.
    ///
    /// ```
    /// use multisem::MultiSemaphore;
    /// # use std::task::{Context, Waker};
    ///
    /// let sem = MultiSemaphore::new([10, 1000]);
    /// let held = sem.try_acquire([1, 900]).unwrap();
    /// let mut big = Box::pin(sem.acquire([1, 500]));   // lacks 400 bytes
    /// let mut small = Box::pin(sem.acquire([1, 50]));  // would fit: 100 are free
    /// # let mut cx = Context::from_waker(Waker::noop());
    /// # let _ = (big.as_mut().poll(&mut cx), small.as_mut().poll(&mut cx));
    /// // ... both polled once: queued, `small` behind `big`.
    /// assert_eq!(sem.waiters_blocked_behind_head(), 1);
    /// drop(big);
    /// assert_eq!(sem.waiters_blocked_behind_head(), 0); // `small` was served
    /// # drop((held, small));
    /// ```
    pub fn waiters_blocked_behind_head(&self) -> usize {
        let queue = self.lock();
        if queue.len() < 2 {
            // Nobody behind a head: no need to read what is available (in
            // the tiered layout, a read that holds the fast path off).
            return 0;
        }
        let have = self.available_locked();
        queue
            .behind_front()
            .filter(|&request| {
                let request = self.clamp(request);
                (0..N).all(|d| request[d] <= have[d])
            })
            .count()
    }
}

/// The fast path and its slow fallbacks.
impl<const N: usize> MultiSemaphore<N> {
    /// `try_acquire` and `try_acquire_owned`: takes `amounts` and returns a
    /// permit made from `source`. Inlined into callers down to the CAS, as a
    /// permit's drop is down to the `fetch_add`: everything else (a lost
    /// race, a shortage, the locked path, the tiered layout's split take, a
    /// rising peak, the tally's wrap) is one call out of line, with its
    /// arguments in registers, so that what is inlined is small enough for
    /// the caller's own wrapper to be inlined in turn.
    ///
    /// The permit is made once, after both paths meet, from the amounts they
    /// took. Were the call out of line to return the permit itself, through
    /// memory, the inlined path would have to write its permit to the same
    /// place for the two to meet, and the caller would read it back with
    /// loads that straddle those stores: a failed store forwarding, which
    /// doubled the cost of `try_acquire` + drop in a loop that keeps the
    /// permit in an `Option` (`benches/try_acquire.rs`).
    #[inline(always)]
    fn try_acquire_from<'a, S: PermitSource<'a, N>>(
        source: S,
        amounts: [u64; N],
    ) -> Result<S::Permit, TryAcquireError> {
        let sem = source.semaphore();
        // The low water is loaded before the CAS (a load after it would wait
        // for it), and after the word: see `Packed::try_take_once`.
        let once = sem.counters.try_take_once(amounts, &sem.limits.low_water);
        // One call site, so that what is inlined stays small.
        let taken = match once {
            Once::Took => amounts,
            _ => sem.try_acquire_slow(amounts, once)?,
        };
        Ok(source.permit(taken))
    }

    /// `try_acquire_from` after a first try that missed, or that took and
    /// has something to note. Returns what it took: `amounts`, or less
    /// where the semaphore clamps oversized requests.
    #[cold]
    #[inline(never)]
    fn try_acquire_slow(&self, amounts: [u64; N], once: Once) -> Result<[u64; N], TryAcquireError> {
        // An oversized request never passes the fast path (its counters
        // never exceed the capacity), so the clamp is decided on the locked
        // path, in `try_take_slow`.
        match self.take_after_once(amounts, once) {
            Ok(()) => Ok(amounts),
            Err(fast) => self.try_take_slow(amounts, amounts, fast, self.clamp_oversized),
        }
    }

    /// `try_acquire` without the permit, for a permit that holds `held`
    /// and grows by `amounts` (`Permit::try_grow`). Never clamps: a permit
    /// grows by exactly what was asked or not at all.
    ///
    /// A grow that would leave the permit holding more than a capacity in
    /// a dimension it grows in fails with `ExceedsCapacity`, first, as an
    /// acquire of more than a capacity does: it cannot succeed while the
    /// capacity stays as it is, and `Insufficient` would say that a retry
    /// may. Judged only once the fast path missed (a take that succeeds
    /// fitted), on the capacities then.
    #[inline(always)]
    pub(crate) fn try_take_more(
        &self,
        held: [u64; N],
        amounts: [u64; N],
    ) -> Result<(), TryAcquireError> {
        // As `try_acquire_from`: one try inlined, one call site after it.
        match self.counters.try_take_once(amounts, &self.limits.low_water) {
            Once::Took => Ok(()),
            once => self.try_take_more_slow(held, amounts, once),
        }
    }

    /// `try_take_more` after a first try that missed, or that took and has
    /// something to note.
    #[cold]
    #[inline(never)]
    fn try_take_more_slow(
        &self,
        held: [u64; N],
        amounts: [u64; N],
        once: Once,
    ) -> Result<(), TryAcquireError> {
        let Err(fast) = self.take_after_once(amounts, once) else {
            return Ok(());
        };
        // What the permit would hold, which must fit the capacities.
        let after: [u64; N] = std::array::from_fn(|d| match amounts[d] {
            // A dimension it does not grow in: a shrink may have left
            // `held` above its capacity, and that is no reason.
            0 => 0,
            more => held[d].saturating_add(more),
        });
        self.try_take_slow(amounts, after, fast, false).map(|_| ())
    }

    /// The lock-free fast path alone; counts its own successes. Inlined as
    /// `try_acquire_from` is.
    #[inline(always)]
    pub(crate) fn take_fast(&self, amounts: [u64; N]) -> Result<(), FastError> {
        match self.counters.try_take_once(amounts, &self.limits.low_water) {
            Once::Took => Ok(()),
            once => self.take_after_once(amounts, once),
        }
    }

    /// The fast path after a first try that missed, or that took and has
    /// its tally to count.
    #[cold]
    #[inline(never)]
    fn take_after_once(&self, amounts: [u64; N], once: Once) -> Result<(), FastError> {
        match once {
            Once::Took => Ok(()),
            Once::ToNote(word) => {
                // Every take that takes anything is watched where amounts
                // are counted: none comes here.
                debug_assert!(!self.stats.tracks_amounts() || amounts == [0; N]);
                self.counters.count_tally(word);
                Ok(())
            }
            Once::Missed(miss) => self.take_after_miss(amounts, miss),
        }
    }

    /// The fast path after its first try missed, or left its CAS to this
    /// call (`Miss::Watched`): a retry, a fresh look, or the tiered layout's
    /// split take (see `Counters::take_after_miss`); then what a take that
    /// went below the low water notes.
    ///
    /// The count of resizes is read before any CAS or look here, in full:
    /// a take that raises a peak reads the limits after its CAS, and a look
    /// that finds the counters short is judged against the capacities read
    /// after it (`try_take_locked`, to which a shortage goes on as
    /// `FastError::ShortSince`); each must know whether a resize ran
    /// between (see `limits_unchanged_since`).
    fn take_after_miss(&self, amounts: [u64; N], miss: Miss) -> Result<(), FastError> {
        // Acquire: pairs with the Release of `rebase_low_water`, so that the
        // limits read after the take are at least as new as this count.
        let before = self.limits.resizes.load(Ordering::Acquire);
        let judged = |why| match why {
            FastError::Short(short) => FastError::ShortSince(short, before),
            why => why,
        };
        let took = match miss {
            // Inlined here, the common case: a take that may raise a peak,
            // or any take where every one is watched.
            Miss::Watched(word) => match self.counters.take_watched(amounts, word) {
                Some(word) => Took::Word(word),
                None => self
                    .counters
                    .take_after_miss(amounts, Miss::LostRace)
                    .map_err(judged)?,
            },
            miss => self
                .counters
                .take_after_miss(amounts, miss)
                .map_err(judged)?,
        };
        match took {
            Took::Word(word) => {
                // Relaxed: see `Limits`; a statistic.
                let low_water = self.limits.low_water.load(Ordering::Relaxed);
                if self.counters.below(word, low_water) {
                    self.note_peak_after(word, &amounts, before);
                }
            }
            Took::Split => self.counters.granted(&amounts),
        }
        if self.stats.tracks_amounts() {
            self.stats.add_amounts(&amounts);
        }
        Ok(())
    }

    /// A fast take of `amounts` that wrote `word` went below the low water:
    /// raise the peaks to match. In the packed layout, from the word, and
    /// bring the low water down to them (or, where debt paid since left it
    /// high, to the truth). The tiered layout's low water sends every take
    /// here (see `Counters::low_water_word`), and it counts what its permits
    /// hold instead: its two tiers cannot be read at one instant, and a part
    /// of the reserve that another take holds for a moment is no permit's
    /// (see `counters/held.rs`).
    ///
    /// In flight is `capacity + debt - left`, and the word was written
    /// before the capacity and debt are read here: if a resize ran between,
    /// the grown capacity would count permits that the word never had
    /// (`before`, the count of resizes read before the take's CAS, tells:
    /// see `limits_unchanged_since`). Then it counts what is in flight under
    /// the lock instead, where the two agree: a moment later, with the
    /// take's permits still held, so never more than permits held at once
    /// (but maybe less, where others returned theirs in between).
    fn note_peak_after(&self, word: u64, amounts: &[u64; N], before: u64) {
        if !self.counters.is_packed() {
            self.counters.granted(amounts);
            return;
        }
        if self.track_peaks {
            let ceilings = self.peak_ceilings();
            if self.limits_unchanged_since(before) {
                self.raise_peaks(ceilings, self.counters.left_after(word));
            } else {
                self.note_peak_locked();
            }
        }
        self.refresh_low_water();
    }

    /// Whether no resize ran between the load of `before`, the count of
    /// resizes read (Acquire) before a fast take's CAS or look (or before
    /// the read of the counters, in `in_flight`), and this call: then the
    /// capacities and debts read before this call are those that the word
    /// the take wrote (or read) was counted against. (A look that found
    /// the counters short reads the word with a plain load; the fence below
    /// makes it an Acquire one for the second case: a word without `SLOW`
    /// written after a resize's is at or after the read-modify-write that
    /// cleared the flag, in its release sequence.)
    ///
    /// A resize bumps the count (to odd: `open_low_water`) before it changes
    /// any capacity, debt or counter, and again (to even:
    /// `rebase_low_water`) after; the take's CAS could not pass while it
    /// ran (`SLOW` is set throughout, and cleared after, by a
    /// read-modify-write of the word that the take's Acquire CAS reads or
    /// follows). So:
    /// * a resize closed before `before` was read: its limits are seen
    ///   below (the Acquire load pairs with the closing bump's Release) and
    ///   the word came after it;
    /// * the take's CAS came after a resize that closed after `before` was
    ///   read: the CAS synchronizes with the clearing of `SLOW`, so the
    ///   load below sees the count moved;
    /// * for a read of the word whatever its flags (`load_free_of_debt`),
    ///   where `SLOW` stays set for queued acquirers: every resize writes
    ///   the word inside its bracket (`change_limits`), so a word read at or
    ///   after that write (a later grant's CAS is in its release sequence)
    ///   makes the fence below see the count moved;
    /// * a capacity or debt read here came from a resize that opened after
    ///   `before` was read: the fences make its opening bump visible to the
    ///   load below, which then shows another count.
    ///
    /// The count is a full `u64`: it never comes back, however many resizes
    /// run while a take is held up (the low water's generation, 6 bits,
    /// would after 32).
    fn limits_unchanged_since(&self, before: u64) -> bool {
        // Acquire: pairs with `open_low_water`'s Release fence (see above).
        fence(Ordering::Acquire);
        // Relaxed: the fence orders it after the reads of the limits.
        let now = self.limits.resizes.load(Ordering::Relaxed);
        before % 2 == 0 && now == before
    }

    /// Raises the peaks to what is in flight now, read under the lock, where
    /// no resize runs: for a fast take that raced one.
    #[cold]
    fn note_peak_locked(&self) {
        let _queue = self.lock();
        self.note_peak(self.counters.load_locked());
    }

    #[cold]
    #[inline(never)]
    fn try_take_slow(
        &self,
        amounts: [u64; N],
        whole: [u64; N],
        fast: FastError,
        clamp: bool,
    ) -> Result<[u64; N], TryAcquireError> {
        let result = self.try_take_locked(amounts, whole, fast, clamp);
        match &result {
            Ok(taken) => self.stats.acquired(taken),
            Err(
                TryAcquireError::Insufficient { dim, .. }
                | TryAcquireError::ExceedsCapacity { dim, .. },
            ) => self.stats.record(Event::Refused(*dim)),
            Err(TryAcquireError::Closed) => self.stats.record(Event::ClosedOut),
        }
        result
    }

    /// Decides what the fast path could not. Takes the lock only when a flag
    /// was set (closed, queued or in debt), or a visit is owed, or to clamp
    /// an oversized request (`clamp`) to the capacity, which changes only
    /// under the lock, or where a resize ran while the fast path looked.
    /// Returns what it took. `whole`: what must fit the capacities
    /// (`amounts`, or what a growing permit would hold); an error for its
    /// size names `whole`'s amount. Not with `clamp`.
    pub(crate) fn try_take_locked(
        &self,
        amounts: [u64; N],
        whole: [u64; N],
        fast: FastError,
        clamp: bool,
    ) -> Result<[u64; N], TryAcquireError> {
        debug_assert!(!clamp || whole == amounts, "a growing permit never clamps");
        // A clamping semaphore decides nothing from a lock-free read of the
        // capacities, which a resize may change before the next read: it
        // refuses nothing for its size, and takes no shortcut below, since
        // a short take may fit once clamped (to a capacity since shrunk, or
        // after a growth). The lock clamps at the capacity in force.
        if let Err(refused) = self.refuse(whole, clamp) {
            if fast == FastError::GaveBack {
                // What the take gave back may be just what the queue's head
                // waits for: serve it before leaving (quietly: the refusal
                // is still to be counted and returned).
                self.serve_quietly();
            }
            return Err(refused);
        }
        if amounts == [0; N] {
            return Ok(amounts);
        }
        if let (FastError::ShortSince(short, before), false) = (fast, clamp) {
            // Cold: a second look finds every other dimension short, in the
            // packed layout's one word. Not in the tiered one, whose tiers
            // only the lock reads at one instant (`available()` takes it): a
            // refusal while nobody is queued takes no lock, so it names the
            // dimension that refused it alone (`have` then shows no other
            // short). The fast path saw no flag, so no debt then; one a
            // shrink made since is counted.
            let have = match self.counters.load_at_once() {
                Some(counters) => {
                    let debt = load_all(&self.limits.debt);
                    std::array::from_fn(|d| counters[d].saturating_sub(debt[d]))
                }
                None => amounts,
            };
            // `refuse` read the capacities after the look that found the
            // shortage. If no resize ran between, they were the look's, and
            // `whole` fitted them: `Insufficient` is true at that look. If
            // one did, it may have shrunk them below `whole` for the look
            // and grown them back since: the lock decides (below).
            if self.limits_unchanged_since(before) {
                return Err(self.insufficient(amounts, have, None, Some(short)));
            }
        }
        let mut wake = WakeList::new();
        let result = loop {
            let mut queue = self.lock();
            self.rebalance(&mut queue, &mut wake);
            if wake.is_full() {
                // The serve stopped at a full batch: the head may fit yet.
                drop(queue);
                wake.wake_batch();
                continue;
            }
            // Under the lock, where capacities change: the clamp is exact,
            // and so is a refusal for size, which a resize since the
            // lock-free check above may call for.
            let amounts = if clamp { self.clamp(amounts) } else { amounts };
            break if let Err((dim, capacity)) = self.check_capacity(whole, clamp) {
                self.stats.record(Event::Exceeded(dim));
                Err(TryAcquireError::exceeds(
                    dim, whole[dim], capacity, self.names,
                ))
            } else if self.is_closed() {
                Err(TryAcquireError::Closed)
            } else if let Some((_, head)) = queue.front() {
                let have = self.available_locked();
                Err(self.insufficient(amounts, have, Some(self.clamp(head)), None))
            } else {
                self.take_locked(amounts)
                    .map(|()| amounts)
                    .map_err(|short| {
                        let have = self.available_locked();
                        self.insufficient(amounts, have, None, Some(short))
                    })
            };
        };
        // Our own result is in hand (permits taken, no permit made yet): a
        // waker's panic must not unwind through it.
        wake.finish_quietly();
        if let Ok(taken) = result {
            self.note_clamped(amounts, taken);
        }
        result
    }

    /// With clamping on, `amounts` lowered to each dimension's capacity. Exact
    /// under the lock, where capacities change: a clamp follows the capacity
    /// at the time of the grant. Never to a capacity of 0: a grant of none
    /// of a dimension would run beside any number of others, so a request
    /// for some of a dimension at 0 keeps its size, and waits (or is
    /// refused) until that capacity is above 0.
    fn clamp(&self, amounts: [u64; N]) -> [u64; N] {
        if !self.clamp_oversized {
            return amounts;
        }
        let capacity = self.capacity();
        std::array::from_fn(|d| match capacity[d] {
            0 => amounts[d],
            capacity => amounts[d].min(capacity),
        })
    }

    /// Counts a grant of less than the request in `Stats::clamped`.
    fn note_clamped(&self, requested: [u64; N], granted: [u64; N]) {
        if granted != requested {
            self.stats.record(Event::Clamped);
        }
    }

    /// `Insufficient` for `amounts`, given what was available (`have`) and
    /// the queue's `head`: see [`Shortfall`]. `first`: the dimension a take
    /// found short, with what it held, which the error names whatever
    /// `have` (read after it) says.
    fn insufficient(
        &self,
        amounts: [u64; N],
        have: [u64; N],
        head: Option<[u64; N]>,
        first: Option<Short>,
    ) -> TryAcquireError {
        let shortfall = Shortfall::of(amounts, have, head);
        let (dim, available, short) = match first {
            Some(first) => {
                // Only dimensions after it: one before it was not short
                // when the take looked (`dim` is the first in `short`).
                let own = (first.dim + 1..N).filter(|&d| amounts[d] > have[d]);
                let short = own.fold(DimSet::one(first.dim), DimSet::with);
                (first.dim, first.available, short)
            }
            None => (
                shortfall.dim,
                have[shortfall.dim],
                DimSet::from_bits(shortfall.short),
            ),
        };
        TryAcquireError::Insufficient {
            dim,
            requested: amounts[dim],
            available,
            queued_ahead: shortfall.queued_ahead,
            short,
            names: self.names,
        }
    }

    /// The refusals that need no look at the counters, in the order the
    /// contract gives: `ExceedsCapacity`, then `Closed`.
    /// `clamps`: the semaphore clamps oversized requests, so a size is a
    /// reason only where it can never be clamped to (see `check_capacity`).
    fn refuse(&self, amounts: [u64; N], clamps: bool) -> Result<(), TryAcquireError> {
        self.check_capacity(amounts, clamps)
            .map_err(|(dim, capacity)| {
                self.stats.record(Event::Exceeded(dim));
                TryAcquireError::exceeds(dim, amounts[dim], capacity, self.names)
            })?;
        if self.is_closed() {
            return Err(TryAcquireError::Closed);
        }
        Ok(())
    }

    /// What holds `amounts` back now, for the lock holder: see [`Shortfall`].
    fn shortfall_locked(&self, queue: &WaitQueue<N>, amounts: [u64; N]) -> Shortfall {
        let head = queue.front().map(|(_, head)| self.clamp(head));
        Shortfall::of(amounts, self.available_locked(), head)
    }

    /// `Err((dim, capacity))` for the first dimension whose capacity is
    /// below the request. Where requests are clamped (`clamps`), only a
    /// dimension whose `max_capacity` is 0 and of which the request asks
    /// some: a clamp never clamps to 0, and that capacity can never grow,
    /// so the request would wait for ever.
    fn check_capacity(&self, amounts: [u64; N], clamps: bool) -> Result<(), (usize, u64)> {
        for (dim, &amount) in amounts.iter().enumerate() {
            // Relaxed: see `Limits`; exact where it matters, under the lock.
            // Read once: off the lock a resize may come between two reads,
            // and the error names the capacity the request was judged by.
            let capacity = self.limits.capacity[dim].load(Ordering::Relaxed);
            let too_large = if clamps {
                // (Then the capacity is 0 for good.)
                amount > 0 && self.max_capacity[dim] == 0
            } else {
                amount > capacity
            };
            if too_large {
                return Err((dim, capacity));
            }
        }
        Ok(())
    }

    /// Takes `amounts` for the lock holder, who serves the queue (so `SLOW`
    /// is no bar), and raises the peaks to match. Nothing of a dimension in
    /// debt: every grant on the locked path comes through here.
    fn take_locked(&self, amounts: [u64; N]) -> Result<(), Short> {
        self.clear_of_debt(amounts)?;
        let left = self.counters.take_locked(amounts)?;
        if self.counters.is_packed() {
            self.note_peak(left);
        } else {
            // As in `note_peak_after`.
            self.counters.granted(&amounts);
        }
        Ok(())
    }

    /// Per dimension, the fewest permits that can be left without passing
    /// the peak in flight: `capacity + debt - peak`.
    fn peak_low_water(&self) -> [u64; N] {
        std::array::from_fn(|d| {
            // Relaxed: see `Limits`; a statistic.
            self.peak_ceiling(d)
                .saturating_sub(self.limits.peak[d].load(Ordering::Relaxed))
        })
    }

    /// What dimension `d` holds in all, available or in flight: the most
    /// that can be in flight.
    fn peak_ceiling(&self, d: usize) -> u64 {
        // Relaxed: see `Limits`; a statistic.
        self.limits.capacity[d].load(Ordering::Relaxed)
            + self.limits.debt[d].load(Ordering::Relaxed)
    }

    /// Raises the peaks to what is in flight, given the counters after a
    /// take, for the holder of the lock. The low water stays where it was:
    /// above the truth now, it sends the next fast take out of line, which
    /// brings it down.
    fn note_peak(&self, left: [u64; N]) {
        if self.track_peaks {
            self.raise_peaks(self.peak_ceilings(), left);
        }
    }

    /// Every dimension's [`peak_ceiling`](Self::peak_ceiling).
    fn peak_ceilings(&self) -> [u64; N] {
        std::array::from_fn(|d| self.peak_ceiling(d))
    }

    /// Raises the peaks to `ceilings - left`, what is in flight when the
    /// counters hold `left` under those ceilings.
    fn raise_peaks(&self, ceilings: [u64; N], left: [u64; N]) {
        for (d, &left) in left.iter().enumerate() {
            let in_flight = ceilings[d].saturating_sub(left);
            // Relaxed: see `Limits`; a statistic. Loaded first so that a
            // peak that does not rise costs no read-modify-write.
            if in_flight > self.limits.peak[d].load(Ordering::Relaxed) {
                self.limits.peak[d].fetch_max(in_flight, Ordering::Relaxed);
            }
        }
    }

    /// What the low water must send out of line now (see `watch`).
    fn watch(&self) -> Watch<N> {
        watch(self.stats.tracks_amounts(), self.track_peaks, || {
            self.peak_low_water()
        })
    }

    /// Brings the low water to `capacity + debt - peak` as they are now.
    ///
    /// It must never be above the truth for long, nor below it ever: below,
    /// a take that passes the peak would not be seen. Peaks only rise and a
    /// shrink's debt only falls here, which lower the truth; only a resize
    /// raises it, and the resize then calls `rebase_low_water`, which bumps
    /// the word's generation. So this CAS fails, and computes again, if a
    /// resize came between its load and its CAS: a value computed from a
    /// capacity since grown never lands. (A low water left high, by a debt
    /// paid or a race between two of these, only sends a take or two out of
    /// line needlessly, and comes down on the first.)
    ///
    /// The generation has 6 bits: a refresh held up while exactly a multiple
    /// of 32 resizes ran finds the word just as it was, and its CAS lands a
    /// value computed from limits since changed, which could hide a peak
    /// until the next resize. So it reads the full count of resizes around
    /// the attempt, and computes again if one ran.
    fn refresh_low_water(&self) {
        self.refresh_low_water_pausing(|_| {});
    }

    /// [`refresh_low_water`](Self::refresh_low_water), calling `pause` at
    /// each step where a resize could come between (nothing, but in tests).
    fn refresh_low_water_pausing(&self, mut pause: impl FnMut(RefreshStep)) {
        loop {
            // Acquire: with the CAS's Acquire, below.
            let resizes = self.limits.resizes.load(Ordering::Acquire);
            if !self.refresh_low_water_once(&mut pause) {
                return;
            }
            // A landed CAS read the word that the last resize's rebase wrote
            // (Release), or a later one: that resize's opening bump of the
            // count, before its rebase, is seen here. So a count unchanged
            // means no resize opened since the load above, and the value
            // landed was computed from the limits in force.
            if self.limits.resizes.load(Ordering::Relaxed) == resizes {
                return;
            }
        }
    }

    /// One attempt of `refresh_low_water`: whether it landed a value.
    fn refresh_low_water_once(&self, pause: &mut impl FnMut(RefreshStep)) -> bool {
        // Acquire: pairs with the Release of `rebase_low_water`, so that the
        // capacity read below is at least as new as the generation read here.
        let mut current = self.limits.low_water.load(Ordering::Acquire);
        loop {
            let generation = Counters::<N>::generation(current);
            if generation % 2 == 1 {
                // A resize is under way; it rebases the word when done.
                return false;
            }
            pause(RefreshStep::Loaded);
            let fresh = self.counters.low_water_word(self.watch(), generation);
            if fresh == current {
                return false;
            }
            pause(RefreshStep::Computed);
            // Acquire on success: see `refresh_low_water_pausing`; on
            // failure, as the load above.
            match self.limits.low_water.compare_exchange_weak(
                current,
                fresh,
                Ordering::Acquire,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(now) => current = now,
            }
        }
    }

    /// For a resize, under the queue lock, with `SLOW` set, before it
    /// changes any capacity or debt: moves the low water to an odd
    /// generation, its fields as they were (no fast take passes while `SLOW`
    /// is set), so that a take that reads the limits meanwhile knows
    /// (`limits_unchanged_since`) and no refresh lands (`refresh_low_water`).
    /// `rebase_low_water` closes it.
    fn open_low_water(&self) {
        // Relaxed: only the lock holder changes the generation and the
        // count; read-modify-writes, as `rebase_low_water`'s.
        self.limits
            .low_water
            .fetch_add(Counters::<N>::GENERATION_ONE, Ordering::Relaxed);
        self.limits.resizes.fetch_add(1, Ordering::Relaxed);
        // Release: orders the opening before the changes that follow, for
        // `limits_unchanged_since`'s Acquire fence.
        fence(Ordering::Release);
    }

    /// For a resize, under the queue lock, after it changed capacities and
    /// debts: the low water as they are now, in a new (even) generation, so
    /// that no `refresh_low_water` begun before lands a value from the old
    /// ones.
    fn rebase_low_water(&self) {
        // Relaxed: only the lock holder changes the generation.
        let generation = Counters::<N>::generation(self.limits.low_water.load(Ordering::Relaxed));
        let fresh = self.counters.low_water_word(self.watch(), generation + 1);
        // Release: see `refresh_low_water`. A swap rather than a store: the
        // same in C11 terms, but loom 0.7 lets a plain store slip in between
        // the read and the write of a concurrent compare-exchange (loom
        // issue #254), so that a refresh computed before the resize would
        // seem to land after it (the model `peak_set_racing_growth_is_not_lost`).
        self.limits.low_water.swap(fresh, Ordering::Release);
        // Release: pairs with `in_flight`'s Acquire load, as the swap does
        // with a take's.
        self.limits.resizes.fetch_add(1, Ordering::Release);
    }

    /// Returns permits: lock-free unless someone is queued or a shrink is
    /// being absorbed.
    #[inline(always)]
    pub(crate) fn release(&self, amounts: &[u64; N]) {
        if self.counters.give(amounts) {
            self.release_slow();
        }
    }

    #[cold]
    #[inline(never)]
    fn release_slow(&self) {
        self.serve(WakeList::finish);
    }

    /// `release` for a future dropped after its grant raced the drop: it
    /// serves the queue, but a waker's panic must not unwind out of the
    /// future's drop (see `WakeList::finish_quietly`).
    pub(crate) fn release_quietly(&self, amounts: &[u64; N]) {
        if self.counters.give(amounts) {
            self.serve_quietly();
        }
    }

    /// `release_slow` for a caller with a result of its own (an acquirer
    /// refused after giving back what its take held for a moment; a dropped
    /// future giving back a grant; a request that timed out, served before
    /// it gives up): it serves the queue, but a waker's panic must not
    /// unwind through that result (see `WakeList::finish_quietly`).
    #[cold]
    #[inline(never)]
    fn serve_quietly(&self) {
        self.serve(WakeList::finish_quietly);
    }

    /// The visit to the lock that a failed fast take owes the queue, if it
    /// gave permits back while acquirers were queued
    /// (`FastError::GaveBack`): the caller's own visit (`enqueue`) pays it,
    /// but user code may run before that (a waker's `clone`) and panic.
    pub(crate) fn owed_visit(&self, fast: FastError) -> OwedVisit<'_, N> {
        OwedVisit((fast == FastError::GaveBack).then_some(self))
    }

    /// Pays the visit `owed_visit` tells of now, for a caller that does not
    /// visit the lock itself.
    pub(crate) fn pay_owed_visit(&self, fast: FastError) {
        drop(self.owed_visit(fast));
    }

    /// Serves the queue, and wakes whom it granted with `finish`.
    fn serve(&self, finish: fn(&mut WakeList)) {
        let mut wake = WakeList::new();
        self.rebalance(&mut self.lock(), &mut wake);
        self.wake_and_serve(&mut wake, false);
        finish(&mut wake);
    }
}

/// A visit to the lock owed to the queue (see
/// [`MultiSemaphore::owed_visit`]): dropped unpaid, as when a panic unwinds
/// past the visit it was for, it serves the queue itself, quietly, since it
/// may run during that unwind.
#[must_use]
pub(crate) struct OwedVisit<'a, const N: usize>(Option<&'a MultiSemaphore<N>>);

impl<const N: usize> OwedVisit<'_, N> {
    /// The caller is about to visit the lock, which serves the queue.
    pub(crate) fn paid(mut self) {
        self.0 = None;
    }
}

impl<const N: usize> Drop for OwedVisit<'_, N> {
    fn drop(&mut self) {
        if let Some(sem) = self.0 {
            sem.serve_quietly();
        }
    }
}

/// The locked path: queueing, serving, cancelling.
impl<const N: usize> MultiSemaphore<N> {
    /// Locks the queue. The guard frees what the queue retired only after
    /// unlocking.
    fn lock(&self) -> QueueGuard<'_, N> {
        QueueGuard::lock(&self.queue)
    }

    /// Wakes whom a visit to the lock granted or closed out. A visit stops
    /// serving when its batch of notifiers is full (so that collecting them
    /// never allocates): while one came back full, wake that batch and visit
    /// again, to serve the rest. `failing`: the visit's walk of the queue
    /// for requests a shrink left too large stopped at a full batch (see
    /// `fail_oversized`), and each visit goes on with it where it stopped,
    /// so the queue is walked once however many batches it takes. The last
    /// batch is
    /// the caller's to wake: with `WakeList::finish`, which re-raises a
    /// waker's panic (a release, resize or close), or with
    /// `WakeList::finish_quietly` where the caller holds a result of its own
    /// that unwinding would lose (an acquire, a cancel).
    fn wake_and_serve(&self, wake: &mut WakeList, mut failing: bool) {
        while wake.is_full() {
            wake.wake_batch();
            let mut queue = self.lock();
            if failing {
                failing = self.fail_oversized(&mut queue, wake, false);
            }
            self.rebalance(&mut queue, wake);
        }
    }

    /// The heart of the locked path, run by every visitor to the lock before
    /// it leaves: settle any debt from the counters, grant the queue's head
    /// while it fits, and set `SLOW` to match what is left.
    fn rebalance(&self, queue: &mut WaitQueue<N>, wake: &mut WakeList) {
        self.settle_and_serve(queue, wake);
        self.publish(queue);
    }

    /// Pays debt from the counters, then grants the queue's head while it
    /// fits (once closed: closes it out, then wakes those waiting to drain
    /// if it has), until the wake batch is full.
    fn settle_and_serve(&self, queue: &mut WaitQueue<N>, wake: &mut WakeList) {
        self.settle_debt();
        let closed = self.is_closed();
        while !wake.is_full() {
            let Some((ticket, amounts)) = queue.front() else {
                break;
            };
            // A clamped head waits for its whole clamp: all of a dimension
            // it asked more than the capacity of, at the capacity of now.
            let grant = self.clamp(amounts);
            let outcome = if closed {
                Outcome::Closed
            } else if self.take_locked(grant).is_ok() {
                self.note_clamped(amounts, grant);
                Outcome::Granted(grant)
            } else {
                break;
            };
            wake.push(queue.complete(ticket, outcome));
        }
        self.serve_drains(queue, wake);
    }

    /// Sets `SLOW` exactly when someone is queued, debt is left, or the
    /// semaphore is closed with someone waiting for it to drain.
    fn publish(&self, queue: &mut WaitQueue<N>) {
        let in_debt = load_all(&self.limits.debt) != [0; N];
        // Closed with someone waiting to drain: every return visits, and
        // the last wakes them (see `drain`).
        let draining = !queue.drains.is_empty() && self.is_closed();
        let slow = in_debt || !queue.is_empty() || draining;
        self.set_slow(queue, slow);
        // Release: `waiters()` (Acquire) then sees the `SLOW` set above;
        // a caller who saw a waiter must not overtake it.
        self.queued.store(queue.len(), Ordering::Release);
    }

    /// Sets `SLOW` to `slow`, touching the hot word only if that changes it.
    fn set_slow(&self, queue: &mut WaitQueue<N>, slow: bool) {
        if queue.slow != slow {
            self.counters.set_slow(slow);
            queue.slow = slow;
        }
    }

    /// Takes `amounts` now if nobody is ahead and they fit; otherwise queues
    /// the request, to be woken through `notify`.
    ///
    /// `notify` is made by the caller before the lock is taken, and dropped
    /// after it is released if unused: cloning or dropping a waker may run
    /// user code that calls back into the semaphore.
    pub(crate) fn enqueue(
        &self,
        amounts: [u64; N],
        notify: Notify,
    ) -> Result<Enqueued<N>, AcquireError> {
        let mut wake = WakeList::new();
        let mut notify = Some(notify);
        let mut chunk = None;
        let result = loop {
            let mut queue = self.lock();
            let unneeded = chunk.take().and_then(|chunk| queue.add_chunk(chunk));
            let admitted = self.admit(&mut queue, &mut wake, amounts, &mut notify);
            drop(queue);
            drop(unneeded);
            match admitted {
                Ok(Admitted::Granted(taken)) => break Ok(Enqueued::Granted(taken)),
                Ok(Admitted::Queued(ticket)) => break Ok(Enqueued::Queued(ticket)),
                // The queue is full: grow it without the lock, then retry
                // from the start (anything may have changed meanwhile).
                // Those this visit granted are woken first, as after any
                // visit, not after the allocation.
                Ok(Admitted::Grow(len)) => {
                    wake.wake_batch();
                    chunk = Some(WaitQueue::new_chunk(len));
                }
                Err(err) => break Err(err),
            }
        };
        // Our result is in hand (a grant, or a place in the queue): neither
        // a waker's panic nor the drop of our unused one may unwind through it.
        self.wake_and_serve(&mut wake, false);
        wake.finish_quietly();
        drop_quietly(notify);
        result
    }

    fn admit(
        &self,
        queue: &mut WaitQueue<N>,
        wake: &mut WakeList,
        amounts: [u64; N],
        notify: &mut Option<Notify>,
    ) -> Result<Admitted<N>, AcquireError> {
        // Capacity changes only under this lock: the check is exact.
        if let Err((dim, capacity)) = self.check_capacity(amounts, self.clamp_oversized) {
            self.stats.record(Event::Exceeded(dim));
            // The caller's fast take may have given permits back while
            // waiters were queued (`FastError::GaveBack`): serve them.
            self.rebalance(queue, wake);
            return Err(AcquireError::exceeds(
                dim,
                amounts[dim],
                capacity,
                self.names,
            ));
        }
        if self.is_closed() {
            self.rebalance(queue, wake);
            return Err(AcquireError::Closed);
        }
        if amounts == [0; N] {
            return Ok(Admitted::Granted(amounts));
        }
        if !queue.has_room() {
            // Before anything changes here (`SLOW` above all): the caller
            // grows the queue without the lock and comes back, and that
            // visit serves the queue as this one would have.
            return Ok(Admitted::Grow(queue.next_chunk_len()));
        }
        // Before looking at the counters: a release from now on sees `SLOW`
        // and comes to the lock after us, so it cannot slip between our look
        // and our sleep (see `counters`).
        self.set_slow(queue, true);
        self.settle_and_serve(queue, wake);
        let grant = self.clamp(amounts);
        let admitted = if queue.is_empty() && self.take_locked(grant).is_ok() {
            self.note_clamped(amounts, grant);
            Admitted::Granted(grant)
        } else {
            // Serving only frees slots: the room checked above is still there.
            let dim = self.shortfall_locked(queue, grant).dim;
            self.stats.record(Event::Waited(dim));
            let notify = notify.take().expect("a request is queued once");
            // Queued with the request itself: it is clamped when granted.
            Admitted::Queued(queue.push(amounts, notify))
        };
        self.publish(queue);
        Ok(admitted)
    }

    /// The outcome of a parked thread's request for `amounts`, if it has
    /// one (then the ticket is spent). A grant of the whole request is seen
    /// without the lock.
    pub(crate) fn collect_parked(
        &self,
        ticket: Ticket,
        parked: &Parked,
        amounts: [u64; N],
    ) -> Option<Outcome<N>> {
        if parked.granted() {
            return Some(Outcome::Granted(amounts));
        }
        let mut queue = self.lock();
        // Under the lock, where grants happen: a grant freed the slot.
        if parked.granted() {
            return Some(Outcome::Granted(amounts));
        }
        queue.collect(ticket)
    }

    /// Like `collect`, but while still queued makes sure `waker` is the one
    /// woken. The new waker is cloned, and the old one dropped, outside the
    /// lock: either may run user code that calls back into the semaphore.
    pub(crate) fn collect_or_renotify(
        &self,
        ticket: Ticket,
        waker: &std::task::Waker,
    ) -> Option<Outcome<N>> {
        {
            let mut queue = self.lock();
            if let Some(outcome) = queue.collect(ticket) {
                return Some(outcome);
            }
            if queue.will_wake(ticket, waker) {
                return None;
            }
        }
        let new = Notify::Task(waker.clone());
        let old = {
            let mut queue = self.lock();
            if let Some(outcome) = queue.collect(ticket) {
                drop(queue);
                // The outcome is collected (its slot freed): a panic of the
                // unused clone's drop must not lose it.
                drop_quietly(new);
                return Some(outcome);
            }
            queue.renotify(ticket, new)
        };
        drop_quietly(old);
        None
    }

    /// Gives up a queued request of `amounts` (`why`: its timeout, or a
    /// dropped future). `Ok(shortfall)`: it was still queued, held back as
    /// `shortfall` says (judged before it left, so before those behind it
    /// took anything), and took nothing; those behind it that now fit are
    /// served. `Err(outcome)`: it had ended first, and a `Granted`
    /// outcome means the caller holds the permits. `parked`: the blocked
    /// thread's flag, for a request made by `wait` (its flag means the whole
    /// request was granted; a clamped grant is in its slot).
    ///
    /// A request that times out is served first: one that fits at its
    /// turn is granted (its grant raced the deadline), never given up to
    /// those behind it. That turn can come with no visit to the lock since:
    /// a release that grants more than a batch wakes the batch outside the
    /// lock before it comes back for the rest, and between a return and its
    /// visit nobody serves. A dropped future wants nothing: it just leaves.
    pub(crate) fn cancel(
        &self,
        ticket: Ticket,
        amounts: [u64; N],
        parked: Option<&Parked>,
        why: Leaving,
    ) -> Result<Shortfall, Outcome<N>> {
        if why == Leaving::TimedOut {
            // Serve the queue first, through every full batch, as a return
            // does; a waker's panic must not unwind through our result.
            self.serve_quietly();
        }
        let mut wake = WakeList::new();
        let (result, notify) = {
            let mut queue = self.lock();
            // A grant of the whole request, under this lock, freed the slot
            // of a parked thread.
            if parked.is_some_and(Parked::granted) {
                return Err(Outcome::Granted(amounts));
            }
            // Before it leaves: it may be the head itself. What holds it
            // back is judged on what it would be granted (its clamp).
            let shortfall = self.shortfall_locked(&queue, self.clamp(amounts));
            match queue.cancel(ticket) {
                Ok(notify) => {
                    // The head may have left: serve whoever fits now.
                    self.rebalance(&mut queue, &mut wake);
                    (Ok(shortfall), notify)
                }
                Err(outcome) => (Err(outcome), None),
            }
        };
        // Those this cancel granted are woken before the cancelled waker is
        // dropped, and neither may unwind through our result (a grant that
        // raced the cancel is the caller's to return).
        self.wake_and_serve(&mut wake, false);
        wake.finish_quietly();
        drop_quietly(notify);
        result
    }

    pub(crate) fn record(&self, event: Event) {
        self.stats.record(event);
    }

    /// Counts the result a waiting acquire delivered to its caller;
    /// `queued`: whether the request had queued, so that this result ends
    /// a wait counted in `waited`. `Timeout` and `ExceedsCapacity` were
    /// counted where they were decided.
    pub(crate) fn record_delivered(&self, result: &Result<[u64; N], AcquireError>, queued: bool) {
        match result {
            Ok(taken) => {
                self.stats.acquired(taken);
                if queued {
                    self.stats.record(Event::AcquiredAfterWait);
                }
            }
            Err(AcquireError::Closed) => {
                self.stats.record(Event::ClosedOut);
                if queued {
                    self.stats.record(Event::ClosedOutWhileWaiting);
                }
            }
            Err(AcquireError::Timeout | AcquireError::ExceedsCapacity { .. }) => {}
        }
    }
}

/// What `enqueue` did with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Enqueued<const N: usize> {
    /// Granted at once: these amounts (the request, or its clamp).
    Granted([u64; N]),
    /// Queued: wait for the ticket's outcome.
    Queued(Ticket),
}

/// Why a queued request leaves the queue (`MultiSemaphore::cancel`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Leaving {
    /// Its deadline passed or its timer fired: served first, in case its
    /// turn came and it fits.
    TimedOut,
    /// Its future was dropped: it wants nothing any more.
    Dropped,
}

/// Where `refresh_low_water` is between its reads, for a test to run a
/// resize there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RefreshStep {
    /// The low water read, the limits not yet.
    Loaded,
    /// The fresh value computed, its CAS not yet tried.
    Computed,
}

/// What `admit` did with a request.
enum Admitted<const N: usize> {
    /// Granted at once: these amounts (the request, or its clamp).
    Granted([u64; N]),
    Queued(Ticket),
    /// Nothing: the queue needs a chunk of this many slots first.
    Grow(usize),
}

/// A panic that unwinds through any method leaves the semaphore consistent
/// (see "Exact accounting" and "A panicking waker strands nobody" in the
/// crate docs), and its internal lock does not poison: a `&MultiSemaphore`
/// may cross `catch_unwind` as `&tokio::sync::Semaphore` does.
impl<const N: usize> std::panic::RefUnwindSafe for MultiSemaphore<N> {}

impl<const N: usize> fmt::Debug for MultiSemaphore<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut f = f.debug_struct("MultiSemaphore");
        if self.names != DimNames::default() {
            f.field("names", &self.names);
        }
        f.field("capacity", &self.capacity())
            .field("available", &self.available())
            .field("in_flight", &self.in_flight())
            .field("waiters", &self.waiters())
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}
