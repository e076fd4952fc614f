//! Statistics: a cheap snapshot of counters kept since construction.

use crate::sync::{AtomicU64, Ordering};

/// A snapshot of a semaphore's counters since construction; see
/// [`MultiSemaphore::stats`](crate::MultiSemaphore::stats).
///
/// Read while acquires run, the fields may disagree with each other by a few
/// operations (each is read on its own); once everything is quiet they are
/// exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats<const N: usize> {
    /// Successful acquires delivered to callers, by every method (zero
    /// requests included).
    pub acquired: u64,
    /// `try_acquire` failures (`Insufficient` or `ExceedsCapacity`), by the
    /// dimension the error names.
    pub refused: [u64; N],
    /// Acquires that returned [`AcquireError::Timeout`](crate::AcquireError::Timeout).
    pub timed_out: u64,
    /// Async acquires dropped after they were queued and before they
    /// delivered a permit (a grant that raced the drop is returned, and
    /// counted here, not in `acquired`; one that `close` woke first counts in
    /// `closed_out`).
    pub cancelled: u64,
    /// Acquires, of any kind, refused or woken by [`close`](crate::MultiSemaphore::close).
    pub closed_out: u64,
    /// Grants of less than the request: requests above a capacity clamped
    /// to it, on a semaphore built with
    /// [`clamp_oversized`](crate::Builder::clamp_oversized). Counted when
    /// the grant is made (each also counts in `acquired` once delivered).
    pub clamped: u64,
    /// The most held at once by live permits, per dimension. Zero if the
    /// semaphore was built with
    /// [`track_peaks(false)`](crate::Builder::track_peaks).
    pub peak_in_flight: [u64; N],
}

impl<const N: usize> Default for Stats<N> {
    fn default() -> Self {
        Self {
            acquired: 0,
            refused: [0; N],
            timed_out: 0,
            cancelled: 0,
            closed_out: 0,
            clamped: 0,
            peak_in_flight: [0; N],
        }
    }
}

/// The counters of the paths off the lock-free fast path (the fast path
/// counts its takes in the counter word itself, and peaks in `Limits`).
///
/// Every operation is Relaxed: they are statistics, synchronizing nothing.
#[derive(Debug)]
pub(crate) struct StatCounters<const N: usize> {
    slow_acquired: AtomicU64,
    refused: [AtomicU64; N],
    timed_out: AtomicU64,
    cancelled: AtomicU64,
    closed_out: AtomicU64,
    clamped: AtomicU64,
}

/// What a slow-path operation ended with, for the statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    Acquired,
    Refused(usize),
    TimedOut,
    Cancelled,
    ClosedOut,
    Clamped,
}

impl<const N: usize> StatCounters<N> {
    pub(crate) fn new() -> Self {
        Self {
            slow_acquired: AtomicU64::new(0),
            refused: std::array::from_fn(|_| AtomicU64::new(0)),
            timed_out: AtomicU64::new(0),
            cancelled: AtomicU64::new(0),
            closed_out: AtomicU64::new(0),
            clamped: AtomicU64::new(0),
        }
    }

    pub(crate) fn record(&self, event: Event) {
        let counter = match event {
            Event::Acquired => &self.slow_acquired,
            Event::Refused(dim) => &self.refused[dim],
            Event::TimedOut => &self.timed_out,
            Event::Cancelled => &self.cancelled,
            Event::ClosedOut => &self.closed_out,
            Event::Clamped => &self.clamped,
        };
        // Relaxed: a statistic; exact once the callers are quiet.
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The snapshot, given what the fast path counted.
    pub(crate) fn snapshot(&self, fast_acquired: u64, peak_in_flight: [u64; N]) -> Stats<N> {
        // Relaxed: a snapshot of statistics, not one instant.
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Stats {
            acquired: fast_acquired + load(&self.slow_acquired),
            refused: std::array::from_fn(|d| load(&self.refused[d])),
            timed_out: load(&self.timed_out),
            cancelled: load(&self.cancelled),
            closed_out: load(&self.closed_out),
            clamped: load(&self.clamped),
            peak_in_flight,
        }
    }
}
