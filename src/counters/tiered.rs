//! For capacities too large to share one word: a packed front word that
//! serves most acquires with one CAS, and a reserve of one word per
//! dimension behind it.
//!
//! # Two tiers
//!
//! The front is a [`Packed`] word whose fields are as wide as the word
//! allows (see `front_widths`), with the flags and the tally; the reserve
//! ([`Reserve`]) holds what does not fit. A dimension's available permits
//! are its front field plus its reserve word. Permits carry no mark of where
//! they came from:
//!
//! * a take first tries the front alone: one CAS, as in the packed layout;
//! * if the front is short (or a field cannot even hold the request), the
//!   take splits: what the front has of each dimension from the front, the
//!   rest from the reserve. It takes the reserve's part first and commits
//!   with a CAS of the front word, which checks the flags and tallies, and
//!   gives the reserve's part back if that CAS cannot take the front's part;
//! * a return adds to the front what fits below each field's maximum (one
//!   CAS) and the rest to the reserve, before that CAS.
//!
//! So the front refills itself from returns, and in a steady state an
//! acquire and a release cost one CAS each, as in the packed layout: the
//! reserve is touched only when the front runs dry or fills up, or for a
//! request larger than a front field. Then a take and a return each cost a
//! locked operation per dimension asked of, and one on the front word.
//!
//! A split take can fail spuriously only when it raced a return that moved
//! permits between the tiers or another split take's brief hold on the
//! reserve (a take that passed the check of every dimension, took the first
//! and lost a later one); it looks at the front once more before it reports
//! a shortage. The adversarial probe in `benches/try_acquire.rs` measures
//! how often, with every take forced through the reserve.
//!
//! # Orderings
//!
//! Every take and return ends with a read-modify-write of the front word,
//! the word with the flags, and a waiter sets `SLOW` there (`AcqRel`) before
//! it looks at the counters. One of the two comes first in the front word's
//! modification order:
//!
//! * the return's CAS (Release; a `touch` when nothing of it fits the
//!   front) first: the waiter's `fetch_or` (Acquire)
//!   reads from its release sequence, so the return's adds to the reserve
//!   happen before the waiter looks, and it sees them;
//! * the waiter's `fetch_or` first: the return's CAS reads `SLOW`, and the
//!   returner takes the lock to serve the queue.
//!
//! A take that gives its reserve part back (its commit lost to a flag or a
//! race) touches the front word in the same way after it, so that permits
//! never come back unseen by a waiter that queued meanwhile. The front word
//! is also where a split take's commit sees `SLOW`, so no take completes
//! past a queued waiter; and the lock holder holds `SLOW` while it reads
//! both tiers, so that it never counts a permit twice (`load_locked`).

use super::held::Held;
use super::packed::{Packed, front_widths, front_widths_fit};
use super::reserve::{Reserve, Shortfall};
use super::{FastError, Short};

/// `repr(C)`, the front first: so that it lies where the packed layout's
/// word does, and the fast path finds it without asking which layout this is
/// (see `Counters::front`).
#[derive(Debug)]
#[repr(C)]
pub(crate) struct Tiered<const N: usize> {
    front: Packed<N>,
    reserve: Reserve<N>,
    /// With peak tracking: what granted permits hold (see `held.rs`).
    held: Option<Held<N>>,
}

/// Why [`Tiered::take_split`] took nothing.
enum Taken {
    Short(Short),
    /// `SLOW` or `CLOSED` was set (fast path only).
    Flagged,
    /// A part went back to the reserve, and waiters were queued.
    GaveBackToWaiters,
}

impl<const N: usize> Tiered<N> {
    /// Full counters for `capacity`, with the front fields `front_bits` wide
    /// if given (for tests), else as wide as the word allows; counting what
    /// permits hold if `track_peaks`.
    ///
    /// # Panics
    ///
    /// If `front_bits` do not fit in the word.
    #[track_caller]
    pub(super) fn new(capacity: [u64; N], front_bits: Option<[u32; N]>, track_peaks: bool) -> Self {
        let width = match front_bits {
            Some(width) => {
                assert!(
                    front_widths_fit(&width),
                    "MultiSemaphore: front bits {width:?} do not fit in one word"
                );
                width
            }
            None => front_widths(capacity),
        };
        let (front, held) = Packed::front(width, capacity);
        Self {
            front,
            reserve: Reserve::new(std::array::from_fn(|d| capacity[d] - held[d])),
            held: track_peaks.then(Held::new),
        }
    }

    /// The front word, which the fast path tries alone first (see
    /// `Counters::try_take_once`).
    #[inline(always)]
    pub(super) fn front(&self) -> &Packed<N> {
        &self.front
    }

    /// The fast path once the front alone could not serve `amounts`: the
    /// split take.
    pub(super) fn try_take_split(&self, amounts: [u64; N]) -> Result<(), FastError> {
        match self.take_split::<false>(amounts) {
            Ok(_) => Ok(()),
            Err(Taken::Short(short)) => Err(FastError::Short(short)),
            Err(Taken::Flagged) => Err(FastError::Defer),
            Err(Taken::GaveBackToWaiters) => Err(FastError::GaveBack),
        }
    }

    pub(super) fn take_locked(&self, amounts: [u64; N]) -> Result<[u64; N], Short> {
        match self.take_split::<true>(amounts) {
            Ok(after) => Ok(after),
            Err(Taken::Short(short)) => Err(short),
            // Not reached: the lock holder ignores the flags.
            Err(Taken::Flagged | Taken::GaveBackToWaiters) => Err(Short {
                dim: 0,
                available: self.load_locked()[0],
            }),
        }
    }

    /// After a grant of `amounts`: counts them as held, if peaks are
    /// tracked. Counted only once committed, so a part of the reserve that a
    /// take held for a moment and gave back never counts.
    pub(super) fn granted(&self, amounts: &[u64; N]) {
        if let Some(held) = &self.held {
            held.granted(amounts);
        }
    }

    /// Before a return or forget of `amounts`: no longer held.
    pub(super) fn returned(&self, amounts: &[u64; N]) {
        if let Some(held) = &self.held {
            held.returned(amounts);
        }
    }

    /// What permits hold, without the lock, if peaks are tracked.
    pub(super) fn held(&self) -> Option<[u64; N]> {
        self.held.as_ref().map(Held::in_flight)
    }

    /// The most that permits have held at once, if peaks are tracked.
    pub(super) fn peaks(&self) -> Option<[u64; N]> {
        self.held.as_ref().map(Held::peaks)
    }

    /// Takes what the front has of each dimension from the front and the
    /// rest from the reserve: the reserve's part first, then the front's in
    /// the CAS that commits (and, on the fast path, checks the flags and
    /// tallies). `LOCKED`: for the lock holder, who ignores `SLOW` and counts
    /// its grants elsewhere.
    fn take_split<const LOCKED: bool>(&self, amounts: [u64; N]) -> Result<[u64; N], Taken> {
        loop {
            let word = self.front.peek();
            if !LOCKED && Packed::<N>::flagged(word) {
                return Err(Taken::Flagged);
            }
            let front = self.front.fields(word);
            let from_front: [u64; N] = std::array::from_fn(|d| amounts[d].min(front[d]));
            let from_reserve: [u64; N] = std::array::from_fn(|d| amounts[d] - from_front[d]);
            match self.reserve.take(from_reserve) {
                Ok(()) => {}
                Err(Shortfall { short, taken }) => {
                    if taken != [0; N] && self.give_back::<LOCKED>(taken) {
                        return Err(Taken::GaveBackToWaiters);
                    }
                    if self.front.fields(self.front.peek())[short.dim] > front[short.dim] {
                        // A return refilled the front under the split: look
                        // again before failing.
                        continue;
                    }
                    return Err(Taken::Short(Short {
                        dim: short.dim,
                        available: short.available + front[short.dim],
                    }));
                }
            }
            match self.front.commit::<LOCKED>(word, from_front) {
                Ok(front) => return Ok(front),
                Err(why) => {
                    if self.give_back::<LOCKED>(from_reserve) {
                        return Err(Taken::GaveBackToWaiters);
                    }
                    if let FastError::Defer = why {
                        return Err(Taken::Flagged);
                    }
                    // Another take emptied the front under us: split again.
                }
            }
        }
    }

    /// Returns a split take's reserve part, then touches the front word so
    /// that a waiter queued meanwhile is served (see "Orderings"). Returns
    /// whether one was, for the fast path to send its caller to the lock.
    fn give_back<const LOCKED: bool>(&self, taken: [u64; N]) -> bool {
        self.reserve.give(taken);
        self.front.touch() && !LOCKED
    }

    pub(super) fn take_up_to(&self, wanted: [u64; N]) -> [u64; N] {
        let front = self.front.take_up_to(wanted);
        let reserve = self
            .reserve
            .take_up_to(std::array::from_fn(|d| wanted[d] - front[d]));
        std::array::from_fn(|d| front[d] + reserve[d])
    }

    /// Out of line: a permit's drop, inlined into every caller, then holds
    /// only the packed layout's one `fetch_add` and this call.
    #[inline(never)]
    pub(super) fn give(&self, amounts: &[u64; N]) -> bool {
        // One load per element, not one copy of the array: the caller has
        // just stored them one by one, and a wider load could not be
        // forwarded from those stores.
        let amounts = std::array::from_fn(|d| amounts[d]);
        self.returned(&amounts);
        self.add(amounts)
    }

    /// Adds permits that no permit held: growth of the capacity.
    pub(super) fn add(&self, amounts: [u64; N]) -> bool {
        self.front
            .give_bounded(amounts, |overflow| self.reserve.give(overflow))
    }

    /// For the holder of the queue lock. The tiers cannot be read at one
    /// instant, and a permit that a take moved from the front to the reserve
    /// (taken from one, returned to the other) between the two reads would
    /// count twice. So the read holds `SLOW` (setting it for the while, if
    /// it was clear), under which no take completes but the lock holder's:
    /// permits only come back, and what it reads is never more than is there.
    pub(super) fn load_locked(&self) -> [u64; N] {
        let was_slow = self.front.is_slow();
        if !was_slow {
            self.front.set_slow(true);
        }
        let front = self.front.load();
        // Read-modify-writes: they read the latest value, which no take
        // lowers any more (Relaxed: a count, no data rides on it). A split
        // take whose commit `set_slow` read took its reserve part before
        // that commit, a Release (`Packed::take_holding`): so it comes
        // before these reads too, and no part counts in both tiers.
        let reserve = self.reserve.load_latest();
        if !was_slow {
            self.front.set_slow(false);
        }
        std::array::from_fn(|d| front[d] + reserve[d])
    }

    pub(super) fn set_slow(&self, slow: bool) {
        self.front.set_slow(slow);
    }

    pub(super) fn close(&self) {
        self.front.close();
    }

    pub(super) fn is_closed(&self) -> bool {
        self.front.is_closed()
    }

    pub(super) fn tallied(&self) -> u64 {
        self.front.tallied()
    }

    /// A resize's write of the front word (see `Packed::step_for_resize`).
    pub(super) fn step_for_resize(&self) {
        self.front.step_for_resize();
    }
}
