//! One `AtomicU64` per dimension, for capacities too large to share a word.
//!
//! A take reads every dimension first and gives up before touching any if one
//! is short, so a request that cannot fit never holds a dimension even
//! briefly; then it takes the dimensions one by one and, if it loses a race on
//! a later one, returns what it took. Only that race can make a concurrent
//! take fail spuriously.
//!
//! # Orderings
//!
//! The flags live in their own word, so the release/enqueue race is the
//! store-buffer pattern across two locations: a waiter sets `SLOW` and then
//! reads the counters; a release adds to the counters and then reads the
//! flags. All four are `SeqCst`, so in their single total order one of the
//! two comes second and sees the other: either the waiter sees the permits, or
//! the releaser sees `SLOW` and takes the lock to serve the queue. (On x86 a
//! `SeqCst` load is a plain load and every RMW is already a full fence.)
//!
//! # Counting takes
//!
//! Counts stay below `MAX_PERMITS < 2^62`, so the last dimension's word has
//! two bits to spare: a fast take adds one to that tally in the CAS it makes
//! there anyway, the one that commits the take (a take that fails before it
//! counts nothing), and the take that wraps the tally adds 4 to `flushed`.
//! Counting acquisitions thus costs a quarter of an atomic operation per
//! take, not a whole one.

use super::{FastError, Short};
use crate::sync::{AtomicU64, Ordering};

const CLOSED: u64 = 1 << 0;
const SLOW: u64 = 1 << 1;
/// Where the last dimension's word keeps the tally of fast takes.
const TALLY_SHIFT: u32 = 62;
const TALLY_ONE: u64 = 1 << TALLY_SHIFT;
const COUNT: u64 = TALLY_ONE - 1;
const _: () = assert!(crate::semaphore::MAX_PERMITS <= COUNT);

#[derive(Debug)]
pub(crate) struct Wide<const N: usize> {
    flags: AtomicU64,
    /// Permits per dimension; the last one's top two bits are the tally.
    available: [AtomicU64; N],
    /// Fast takes counted out of the tally, in steps of 4.
    flushed: AtomicU64,
}

impl<const N: usize> Wide<N> {
    pub(super) fn new(capacity: [u64; N]) -> Self {
        Self {
            flags: AtomicU64::new(0),
            available: capacity.map(AtomicU64::new),
            flushed: AtomicU64::new(0),
        }
    }

    #[inline]
    pub(super) fn try_take_fast(&self, amounts: [u64; N]) -> Result<[u64; N], FastError> {
        // Relaxed would do for a taker alone (missing a flag set this instant
        // just orders this take first); SeqCst costs nothing extra on x86.
        if self.flags.load(Ordering::SeqCst) & (CLOSED | SLOW) != 0 {
            return Err(FastError::Defer);
        }
        match self.take::<false>(amounts) {
            Ok(after) => Ok(after),
            Err(short) => Err(match short {
                Taken::Short(short) => FastError::Short(short),
                // Our rollback found waiters: they need the locked path.
                Taken::RolledBackToWaiters => FastError::Defer,
            }),
        }
    }

    pub(super) fn take_locked(&self, amounts: [u64; N]) -> Result<[u64; N], Short> {
        // SeqCst loads: the waiter's side of the pattern in "Orderings".
        match self.take::<true>(amounts) {
            Ok(after) => Ok(after),
            Err(Taken::Short(short)) => Err(short),
            // The lock holder serves the queue after this anyway.
            Err(Taken::RolledBackToWaiters) => Err(Short {
                dim: 0,
                available: self.load()[0],
            }),
        }
    }

    /// Checks every dimension, then takes each; rolls back on a lost race.
    /// `LOCKED`: for the lock holder, whose loads take part in the SeqCst
    /// pattern of "Orderings", and whose grants are counted elsewhere; the
    /// fast path needs only Acquire on success, and tallies its take.
    #[inline]
    fn take<const LOCKED: bool>(&self, amounts: [u64; N]) -> Result<[u64; N], Taken> {
        let (load, order) = if LOCKED {
            (Ordering::SeqCst, Ordering::SeqCst)
        } else {
            // Relaxed loads: only a guess, which the CAS checks.
            (Ordering::Relaxed, Ordering::Acquire)
        };
        let mut seen = [0; N];
        for d in 0..N {
            seen[d] = self.available[d].load(load);
            if seen[d] & COUNT < amounts[d] {
                return Err(Taken::Short(Short {
                    dim: d,
                    available: seen[d] & COUNT,
                }));
            }
        }
        let mut after = seen.map(|raw| raw & COUNT);
        for d in 0..N {
            let tally = if !LOCKED && d == N - 1 { TALLY_ONE } else { 0 };
            if amounts[d] == 0 && tally == 0 {
                continue;
            }
            let mut current = seen[d];
            let new = loop {
                if current & COUNT < amounts[d] {
                    let taken = std::array::from_fn(|i| if i < d { amounts[i] } else { 0 });
                    if self.give(taken) {
                        return Err(Taken::RolledBackToWaiters);
                    }
                    return Err(Taken::Short(Short {
                        dim: d,
                        available: current & COUNT,
                    }));
                }
                // The tally wraps out of the top of the word on its own.
                let new = (current - amounts[d]).wrapping_add(tally);
                // `order` on success: Acquire pairs with the Release of the
                // return that put these permits here (SeqCst includes it).
                match self.available[d].compare_exchange_weak(
                    current,
                    new,
                    order,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => break new,
                    Err(actual) => current = actual,
                }
            };
            if tally != 0 && new < TALLY_ONE {
                self.flush_tally();
            }
            after[d] = new & COUNT;
        }
        Ok(after)
    }

    /// The tally wrapped to 0 with our take: move its 4 to `flushed`.
    #[cold]
    fn flush_tally(&self) {
        // Relaxed: a statistic; `stats()` is exact once everything is quiet.
        self.flushed
            .fetch_add(1 << (64 - TALLY_SHIFT), Ordering::Relaxed);
    }

    pub(super) fn take_up_to(&self, wanted: [u64; N]) -> [u64; N] {
        let mut took = [0; N];
        for d in 0..N {
            // SeqCst: runs under the lock, on the waiter's side of the pattern.
            let mut current = self.available[d].load(Ordering::SeqCst);
            loop {
                let take = wanted[d].min(current & COUNT);
                match self.available[d].compare_exchange_weak(
                    current,
                    current - take,
                    Ordering::SeqCst,
                    Ordering::SeqCst,
                ) {
                    Ok(_) => {
                        took[d] = take;
                        break;
                    }
                    Err(actual) => current = actual,
                }
            }
        }
        took
    }

    #[inline]
    pub(super) fn give(&self, amounts: [u64; N]) -> bool {
        for (available, &amount) in self.available.iter().zip(&amounts) {
            if amount != 0 {
                // SeqCst (includes Release, which publishes the holder's
                // writes): the releaser's side of the pattern in "Orderings".
                available.fetch_add(amount, Ordering::SeqCst);
            }
        }
        self.flags.load(Ordering::SeqCst) & SLOW != 0
    }

    pub(super) fn load(&self) -> [u64; N] {
        // Relaxed: a snapshot.
        std::array::from_fn(|d| self.available[d].load(Ordering::Relaxed) & COUNT)
    }

    pub(super) fn set_slow(&self, slow: bool) {
        // SeqCst: the waiter's side of the pattern in "Orderings".
        if slow {
            self.flags.fetch_or(SLOW, Ordering::SeqCst);
        } else {
            self.flags.fetch_and(!SLOW, Ordering::SeqCst);
        }
    }

    pub(super) fn close(&self) {
        // SeqCst: a fast taker that reads the flags after this sees it.
        self.flags.fetch_or(CLOSED, Ordering::SeqCst);
    }

    pub(super) fn is_closed(&self) -> bool {
        self.flags.load(Ordering::SeqCst) & CLOSED != 0
    }

    pub(super) fn fast_takes(&self) -> u64 {
        // Relaxed: statistics. While takes run, a wrap not yet flushed can
        // make this lag by 4; it is exact once they stop.
        let tally = self.available[N - 1].load(Ordering::Relaxed) >> TALLY_SHIFT;
        self.flushed.load(Ordering::Relaxed) + tally
    }
}

/// Why [`Wide::take`] took nothing.
enum Taken {
    Short(Short),
    /// A lost race made us give back a part, and waiters were queued.
    RolledBackToWaiters,
}
