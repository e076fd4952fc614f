//! One `AtomicU64` per dimension, for capacities too large to share a word.
//!
//! A take reads every dimension first and gives up before touching any if one
//! is short, so a request that cannot fit never holds a dimension even
//! briefly; then it takes the dimensions in order, 0 first, and if it loses a
//! race on a later one, returns what it took. Only that race can make a
//! concurrent take fail spuriously.
//!
//! # The words
//!
//! | word            | bits 0..=60 | bit 61 | bit 62 | bit 63   |
//! |-----------------|-------------|--------|--------|----------|
//! | dimension 0     | permits     | (tally if N = 1) | `SLOW` | `CLOSED` |
//! | dimensions 1..N | permits     | tally of the last (3 bits, 61..=63)  | | |
//!
//! Counts stay at most `MAX_PERMITS = 2^60`, so the top bits are free.
//! Dimension 0 carries the flags, so a fast take checks them in the CAS that
//! takes dimension 0; the last dimension's CAS, the one that commits a take,
//! carries the tally of fast takes, so counting acquisitions costs no atomic
//! operation of its own (the take that wraps the tally adds its period to
//! `flushed`).
//!
//! # Orderings
//!
//! A release adds to dimensions `N-1 ..= 1` and then to dimension 0, the word
//! with the flags; a waiter sets `SLOW` in dimension 0 and then looks at the
//! counters. Both are read-modify-writes of dimension 0's word, so one comes
//! first in its modification order:
//!
//! * the release's add first: the waiter's `fetch_or` (Acquire) reads from the
//!   release sequence of that add (Release), so every add of the release
//!   happens before the waiter looks, and it sees the permits;
//! * the waiter's `fetch_or` first: the release's add returns a word with
//!   `SLOW` set, and the releaser takes the lock to serve the queue.
//!
//! No `SeqCst` is needed, and the handshake is one loom models exactly.

use super::{FastError, Short};
use crate::sync::{AtomicU64, Ordering};
use crossbeam_utils::CachePadded;

const VALUE: u64 = (1 << 61) - 1;
const SLOW: u64 = 1 << 62;
const CLOSED: u64 = 1 << 63;
const TALLY_SHIFT: u32 = 61;
const _: () = assert!(crate::semaphore::MAX_PERMITS <= VALUE);

#[derive(Debug)]
pub(crate) struct Wide<const N: usize> {
    /// Padded away from what every operation reads (the layout's tag), which
    /// must not be invalidated by each take and return on another core.
    words: CachePadded<[AtomicU64; N]>,
    /// Fast takes counted out of the tally, in steps of its period.
    flushed: AtomicU64,
}

/// Why [`Wide::take`] took nothing.
enum Taken {
    Short(Short),
    /// `SLOW` or `CLOSED` was set (fast path only).
    Flagged,
    /// A lost race made us give back a part, and waiters were queued.
    RolledBackToWaiters,
}

impl<const N: usize> Wide<N> {
    /// Tally bits in the last word: 3, or 1 when that word also has the flags.
    const TALLY_BITS: u32 = if N == 1 { 1 } else { 3 };
    const TALLY_MASK: u64 = (1 << Self::TALLY_BITS) - 1;

    pub(super) fn new(capacity: [u64; N]) -> Self {
        Self {
            words: CachePadded::new(capacity.map(AtomicU64::new)),
            flushed: AtomicU64::new(0),
        }
    }

    #[inline]
    pub(super) fn try_take_fast(&self, amounts: [u64; N]) -> Result<[u64; N], FastError> {
        match self.take::<false>(amounts) {
            Ok(after) => Ok(after),
            Err(Taken::Short(short)) => Err(FastError::Short(short)),
            // Flags set, or our rollback found waiters: the locked path decides.
            Err(Taken::Flagged | Taken::RolledBackToWaiters) => Err(FastError::Defer),
        }
    }

    pub(super) fn take_locked(&self, amounts: [u64; N]) -> Result<[u64; N], Short> {
        match self.take::<true>(amounts) {
            Ok(after) => Ok(after),
            Err(Taken::Short(short)) => Err(short),
            // The lock holder serves the queue after this anyway.
            Err(Taken::Flagged | Taken::RolledBackToWaiters) => Err(Short {
                dim: 0,
                available: self.load()[0],
            }),
        }
    }

    /// Checks every dimension, then takes each; rolls back on a lost race.
    /// `LOCKED`: for the lock holder, which ignores `SLOW` (it is the one
    /// serving the queue) and counts its grants elsewhere; the fast path
    /// respects the flags and tallies its take.
    #[inline]
    fn take<const LOCKED: bool>(&self, amounts: [u64; N]) -> Result<[u64; N], Taken> {
        // Acquire: a waiter's look at the counters after setting `SLOW` (see
        // "Orderings"); on the fast path, only a guess that the CAS checks.
        let seen: [u64; N] = std::array::from_fn(|d| self.words[d].load(Ordering::Acquire));
        if !LOCKED && seen[0] & (SLOW | CLOSED) != 0 {
            return Err(Taken::Flagged);
        }
        if let Some(dim) = (0..N).find(|&d| seen[d] & VALUE < amounts[d]) {
            return Err(Taken::Short(Short {
                dim,
                available: seen[dim] & VALUE,
            }));
        }
        let mut after = seen.map(|word| word & VALUE);
        // All but the last dimension, then the last apart: it carries the
        // tally, so the fast path always takes it, and the loop bounds stay
        // constant (for N = 2, no loop is left at all).
        for d in 0..N - 1 {
            if amounts[d] != 0 {
                let check_flags = !LOCKED && d == 0;
                after[d] = self.take_one(d, amounts[d], seen[d], check_flags, false, amounts)?;
            }
        }
        let last = N - 1;
        if !LOCKED || amounts[last] != 0 {
            let check_flags = !LOCKED && last == 0;
            after[last] = self.take_one(
                last,
                amounts[last],
                seen[last],
                check_flags,
                !LOCKED,
                amounts,
            )?;
        }
        Ok(after)
    }

    /// Takes `amount` from dimension `d`, starting from the guess `current`,
    /// and returns what is left. On a shortage, gives back the dimensions
    /// before `d` (of `request`); with `check_flags`, fails if a flag is set.
    #[inline(always)]
    fn take_one(
        &self,
        d: usize,
        amount: u64,
        mut current: u64,
        check_flags: bool,
        tally: bool,
        request: [u64; N],
    ) -> Result<u64, Taken> {
        loop {
            if check_flags && current & (SLOW | CLOSED) != 0 {
                // Only dimension 0 checks: nothing was taken before it.
                return Err(Taken::Flagged);
            }
            if current & VALUE < amount {
                return Err(self.roll_back(request, d, current & VALUE));
            }
            let mut new = current - amount;
            if tally {
                new = Self::bump_tally(new);
            }
            // Acquire: pairs with the Release of the return that put these
            // permits here, so the last holder's writes are visible.
            match self.words[d].compare_exchange_weak(
                current,
                new,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    if tally && (new >> TALLY_SHIFT) & Self::TALLY_MASK == 0 {
                        self.flush_tally();
                    }
                    return Ok(new & VALUE);
                }
                Err(actual) => current = actual,
            }
        }
    }

    /// Dimension `short` lacked permits after dimensions `..short` were
    /// taken: give those back.
    #[cold]
    #[inline(never)]
    fn roll_back(&self, amounts: [u64; N], short: usize, available: u64) -> Taken {
        let taken = std::array::from_fn(|d| if d < short { amounts[d] } else { 0 });
        if self.give(taken) {
            Taken::RolledBackToWaiters
        } else {
            Taken::Short(Short {
                dim: short,
                available,
            })
        }
    }

    #[inline]
    fn bump_tally(word: u64) -> u64 {
        let tally = (word >> TALLY_SHIFT).wrapping_add(1) & Self::TALLY_MASK;
        (word & !(Self::TALLY_MASK << TALLY_SHIFT)) | (tally << TALLY_SHIFT)
    }

    /// The tally wrapped to 0 with our take: move its period to `flushed`.
    #[cold]
    #[inline(never)]
    fn flush_tally(&self) {
        // Relaxed: a statistic; `stats()` is exact once everything is quiet.
        self.flushed
            .fetch_add(1 << Self::TALLY_BITS, Ordering::Relaxed);
    }

    pub(super) fn take_up_to(&self, wanted: [u64; N]) -> [u64; N] {
        let mut took = [0; N];
        for d in 0..N {
            // Relaxed: only a guess for the CAS, which checks it.
            let mut current = self.words[d].load(Ordering::Relaxed);
            loop {
                let take = wanted[d].min(current & VALUE);
                // Acquire: as in `take`.
                match self.words[d].compare_exchange_weak(
                    current,
                    current - take,
                    Ordering::Acquire,
                    Ordering::Relaxed,
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
        for d in (1..N).rev() {
            if amounts[d] != 0 {
                // Release: publishes the holder's writes to the next taker.
                self.words[d].fetch_add(amounts[d], Ordering::Release);
            }
        }
        // Always, even for 0: this add is the one a waiter's `fetch_or`
        // orders itself against (see "Orderings"). Release heads the release
        // sequence the waiter acquires; the flags it returns are current.
        let before = self.words[0].fetch_add(amounts[0], Ordering::Release);
        before & SLOW != 0
    }

    pub(super) fn load(&self) -> [u64; N] {
        // Relaxed: a snapshot.
        std::array::from_fn(|d| self.words[d].load(Ordering::Relaxed) & VALUE)
    }

    pub(super) fn set_slow(&self, slow: bool) {
        // AcqRel: Acquire is the waiter's side of "Orderings"; Release keeps
        // the lock holder's writes ordered before the flag change.
        if slow {
            self.words[0].fetch_or(SLOW, Ordering::AcqRel);
        } else {
            self.words[0].fetch_and(!SLOW, Ordering::AcqRel);
        }
    }

    pub(super) fn close(&self) {
        // AcqRel: as `set_slow`; every CAS keeps the bits it does not change.
        self.words[0].fetch_or(CLOSED, Ordering::AcqRel);
    }

    pub(super) fn is_closed(&self) -> bool {
        // Relaxed: as in the packed layout, the lock holder's reads decide.
        self.words[0].load(Ordering::Relaxed) & CLOSED != 0
    }

    pub(super) fn fast_takes(&self) -> u64 {
        // Relaxed: statistics. While takes run, a wrap not yet flushed can
        // make this lag by one period; it is exact once they stop.
        let tally = (self.words[N - 1].load(Ordering::Relaxed) >> TALLY_SHIFT) & Self::TALLY_MASK;
        self.flushed.load(Ordering::Relaxed) + tally
    }
}
