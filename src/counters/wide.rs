//! One `AtomicU64` per dimension, for capacities too large to share a word.
//!
//! A take first checks every dimension and gives up before touching any if
//! one is short, so a request that cannot fit never holds a dimension even
//! briefly. Then it takes the dimensions in the order a release returns them,
//! `N-1` down to 0, and if it loses a race on one, or finds dimension 0 (the
//! word with the flags) short or flagged after all, returns what it took.
//! Only such a race can make another take fail spuriously.
//!
//! Why dimension 0 last, and its check through a shadow: a release ends with
//! a locked add to word 0, and a take that read word 0 right behind it would
//! stall until that add is done (measured on x86: 4 of the 28 ns that a take
//! and a release cost). So the take reads word 0 only after its first CAS,
//! which waits for the add anyway, and its check reads `shadow0` instead: a
//! recent lower bound of word 0, with its flags, at another address.
//!
//! * A take that leaves word 0 below the shadow lowers it; a release never
//!   raises it. In a steady state nothing writes it: a store beside the
//!   locked operations would cost what the stall did.
//! * The flag changes (under the queue lock) write it exactly.
//! * A shadow that doubts a take (a flag, too few permits) is checked
//!   against word 0 itself and corrected, so it never fails a take nor sends
//!   it to the lock. One that let a take through wrongly is found out by the
//!   CAS of word 0 and corrected there.
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
//! takes dimension 0. The CAS that a fast take always makes first, on
//! dimension `N-1`, carries the tally of fast takes, so counting acquisitions
//! costs no atomic operation of its own: the take that wraps the tally adds
//! its period to `flushed`, and a take rolled back after it was tallied adds
//! one to `untallied`.
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
    hot: CachePadded<Hot<N>>,
    /// Fast takes tallied and then rolled back.
    untallied: AtomicU64,
}

/// What every take touches, on one cache line (for small `N`).
#[derive(Debug)]
struct Hot<const N: usize> {
    words: [AtomicU64; N],
    /// A recent lower bound of word 0 (its permits, with its flags), read by
    /// the fast path's pre-check instead of word 0 itself (see the module
    /// documentation). A hint only: racing writers can leave it stale, and
    /// word 0 decides; whoever finds it wrong there writes what it found.
    shadow0: AtomicU64,
    /// Fast takes counted out of the tally, in steps of its period: beside
    /// the words, whose line the flushing take's core holds already.
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
            hot: CachePadded::new(Hot {
                words: capacity.map(AtomicU64::new),
                shadow0: AtomicU64::new(capacity[0]),
                flushed: AtomicU64::new(0),
            }),
            untallied: AtomicU64::new(0),
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
            // Not reached: the locked path ignores the flags, and its
            // rollbacks report the shortage.
            Err(Taken::Flagged | Taken::RolledBackToWaiters) => Err(Short {
                dim: 0,
                available: self.load()[0],
            }),
        }
    }

    /// Checks every dimension, then takes dimensions `N-1 ..= 1` and last
    /// dimension 0, with the flags; gives back what it took if one is short
    /// (or, on the fast path, flagged). `LOCKED`: for the lock holder, which
    /// ignores `SLOW` (it is the one serving the queue) and counts its grants
    /// elsewhere; the fast path respects the flags and tallies its take. Why
    /// word 0 last, and read through its shadow: see the module documentation.
    #[inline]
    fn take<const LOCKED: bool>(&self, amounts: [u64; N]) -> Result<[u64; N], Taken> {
        // Acquire: a waiter's look at the counters after setting `SLOW` (see
        // "Orderings"); on the fast path, only a guess that the CAS checks.
        // Relaxed, the shadow: a hint, which a doubt sends to `recheck`.
        let mut seen: [u64; N] = std::array::from_fn(|d| match d {
            0 if !LOCKED => self.hot.shadow0.load(Ordering::Relaxed),
            _ => self.hot.words[d].load(Ordering::Acquire),
        });
        let flagged = !LOCKED && seen[0] & (SLOW | CLOSED) != 0;
        if flagged || (0..N).any(|d| seen[d] & VALUE < amounts[d]) {
            seen[0] = self.recheck::<LOCKED>(amounts, seen)?;
        }
        let mut after = seen.map(|word| word & VALUE);
        // The first word taken, N - 1, carries the tally, so the fast path
        // always takes it; the bounds stay constant, and for N = 2 no loop
        // is left at all.
        for d in (1..N).rev() {
            if amounts[d] != 0 || (!LOCKED && d == N - 1) {
                after[d] = self.take_one::<LOCKED>(d, amounts[d], seen[d], amounts)?;
            }
        }
        // Acquire: as above. Read after the first CAS, so the last release's
        // add to this word is done (see the module documentation).
        let current = self.hot.words[0].load(Ordering::Acquire);
        after[0] = if amounts[0] != 0 || (!LOCKED && N == 1) {
            self.take_one::<LOCKED>(0, amounts[0], current, amounts)?
        } else if !LOCKED && current & (SLOW | CLOSED) != 0 {
            self.shadow(current);
            return Err(self.roll_back::<LOCKED>(amounts, 0, Taken::Flagged));
        } else {
            current & VALUE
        };
        // Keep the shadow a lower bound: lower it when this take went below
        // it (a release never raises it, so in a steady state nothing is
        // written). The fast path's word 0 had no flags, nor has `after[0]`.
        if !LOCKED && after[0] < seen[0] & VALUE {
            self.shadow(after[0]);
        }
        Ok(after)
    }

    /// The pre-check doubts the take (a flag, or a short dimension) on the
    /// strength of `seen`, whose word 0 may be a stale shadow: decide on word
    /// 0 itself, so that a stale shadow never fails a take nor sends it to
    /// the lock. Corrects the shadow, and returns word 0 if the take goes on.
    #[cold]
    #[inline(never)]
    fn recheck<const LOCKED: bool>(
        &self,
        amounts: [u64; N],
        mut seen: [u64; N],
    ) -> Result<u64, Taken> {
        // Acquire: as in `take`.
        seen[0] = self.hot.words[0].load(Ordering::Acquire);
        self.shadow(seen[0]);
        if !LOCKED && seen[0] & (SLOW | CLOSED) != 0 {
            return Err(Taken::Flagged);
        }
        match (0..N).find(|&dim| seen[dim] & VALUE < amounts[dim]) {
            Some(dim) => Err(Taken::Short(Short {
                dim,
                available: seen[dim] & VALUE,
            })),
            None => Ok(seen[0]),
        }
    }

    /// Takes `amount` from dimension `d`, starting from the guess `current`,
    /// and returns what is left. On a shortage (or, for dimension 0 on the
    /// fast path, a flag) gives back the dimensions taken before `d` (of
    /// `request`). The fast path's take of dimension `N - 1` tallies.
    #[inline(always)]
    fn take_one<const LOCKED: bool>(
        &self,
        d: usize,
        amount: u64,
        mut current: u64,
        request: [u64; N],
    ) -> Result<u64, Taken> {
        let check_flags = !LOCKED && d == 0;
        let tally = !LOCKED && d == N - 1;
        loop {
            if check_flags && current & (SLOW | CLOSED) != 0 {
                self.shadow(current);
                return Err(self.roll_back::<LOCKED>(request, d, Taken::Flagged));
            }
            if current & VALUE < amount {
                if d == 0 {
                    // The shadow let this take through (or, on the locked
                    // path, may be as wrong): correct it.
                    self.shadow(current);
                }
                let short = self.first_short(
                    request,
                    Short {
                        dim: d,
                        available: current & VALUE,
                    },
                );
                return Err(self.roll_back::<LOCKED>(request, d, Taken::Short(short)));
            }
            let mut new = current - amount;
            if tally {
                new = Self::bump_tally(new);
            }
            // Acquire: pairs with the Release of the return that put these
            // permits here, so the last holder's writes are visible.
            match self.hot.words[d].compare_exchange_weak(
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

    /// `found` was short, but the errors name the first short dimension, and
    /// dimensions below it are checked later in a take: look at them now.
    #[cold]
    #[inline(never)]
    fn first_short(&self, amounts: [u64; N], found: Short) -> Short {
        (0..found.dim)
            .find_map(|dim| {
                // Relaxed: only for the error's report.
                let available = self.hot.words[dim].load(Ordering::Relaxed) & VALUE;
                (available < amounts[dim]).then_some(Short { dim, available })
            })
            .unwrap_or(found)
    }

    /// The take of dimension `failed` could not go on (`why`): give back the
    /// dimensions taken before it, `N-1 ..= failed+1`, and the tally, if
    /// any. Returns `why`, or, on the fast path, if waiters were queued when
    /// the permits came back, [`Taken::RolledBackToWaiters`] so that the
    /// caller serves them.
    #[cold]
    #[inline(never)]
    fn roll_back<const LOCKED: bool>(&self, request: [u64; N], failed: usize, why: Taken) -> Taken {
        if failed == N - 1 {
            // The first in order: nothing was taken.
            return why;
        }
        if !LOCKED {
            // The fast path tallied when it took dimension N - 1.
            // Relaxed: a statistic, as `flushed`.
            self.untallied.fetch_add(1, Ordering::Relaxed);
        }
        let taken = std::array::from_fn(|d| if d > failed { request[d] } else { 0 });
        // The lock holder serves the queue after this anyway.
        if self.give(taken) && !LOCKED {
            Taken::RolledBackToWaiters
        } else {
            why
        }
    }

    /// Records what this thread just made word 0.
    #[inline]
    fn shadow(&self, word0: u64) {
        // Relaxed: a hint (see `Hot::shadow0`).
        self.hot.shadow0.store(word0, Ordering::Relaxed);
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
        self.hot
            .flushed
            .fetch_add(1 << Self::TALLY_BITS, Ordering::Relaxed);
    }

    pub(super) fn take_up_to(&self, wanted: [u64; N]) -> [u64; N] {
        let mut took = [0; N];
        for d in 0..N {
            // Relaxed: only a guess for the CAS, which checks it.
            let mut current = self.hot.words[d].load(Ordering::Relaxed);
            loop {
                let take = wanted[d].min(current & VALUE);
                // Acquire: as in `take`.
                match self.hot.words[d].compare_exchange_weak(
                    current,
                    current - take,
                    Ordering::Acquire,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        if d == 0 {
                            self.shadow(current - take);
                        }
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
                self.hot.words[d].fetch_add(amounts[d], Ordering::Release);
            }
        }
        // Always, even for 0: this add is the one a waiter's `fetch_or`
        // orders itself against (see "Orderings"). Release heads the release
        // sequence the waiter acquires; the flags it returns are current.
        let before = self.hot.words[0].fetch_add(amounts[0], Ordering::Release);
        before & SLOW != 0
    }

    pub(super) fn load(&self) -> [u64; N] {
        // Relaxed: a snapshot.
        std::array::from_fn(|d| self.hot.words[d].load(Ordering::Relaxed) & VALUE)
    }

    pub(super) fn set_slow(&self, slow: bool) {
        // AcqRel: Acquire is the waiter's side of "Orderings"; Release keeps
        // the lock holder's writes ordered before the flag change.
        if slow {
            let before = self.hot.words[0].fetch_or(SLOW, Ordering::AcqRel);
            self.shadow(before | SLOW);
        } else {
            let before = self.hot.words[0].fetch_and(!SLOW, Ordering::AcqRel);
            self.shadow(before & !SLOW);
        }
    }

    pub(super) fn close(&self) {
        // AcqRel: as `set_slow`; every CAS keeps the bits it does not change.
        let before = self.hot.words[0].fetch_or(CLOSED, Ordering::AcqRel);
        self.shadow(before | CLOSED);
    }

    pub(super) fn is_closed(&self) -> bool {
        // Relaxed: as in the packed layout, the lock holder's reads decide.
        self.hot.words[0].load(Ordering::Relaxed) & CLOSED != 0
    }

    pub(super) fn fast_takes(&self) -> u64 {
        // Relaxed: statistics. While takes run, a wrap not yet flushed can
        // make this lag by one period; it is exact once they stop.
        let tally =
            (self.hot.words[N - 1].load(Ordering::Relaxed) >> TALLY_SHIFT) & Self::TALLY_MASK;
        (self.hot.flushed.load(Ordering::Relaxed) + tally)
            .saturating_sub(self.untallied.load(Ordering::Relaxed))
    }
}
