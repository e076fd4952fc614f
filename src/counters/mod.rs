//! The permit counters: lock-free, never block, know nothing of waiters.
//!
//! Two layouts, chosen once at construction:
//!
//! * [`Packed`]: every dimension is a bit field of one `AtomicU64`, so an
//!   all-or-nothing take is one compare-and-swap and a release is one
//!   `fetch_add`. Nothing is ever taken partly, so a concurrent `try_acquire`
//!   never fails because another call held a dimension it later gave back.
//!   Used whenever the dimensions' maximum capacities fit in the word
//!   (for example `[1024 messages, 100 MiB]`, with room to grow).
//! * [`Tiered`]: for capacities that do not fit. A packed front word holds
//!   as much of each dimension as its field can, and serves most takes and
//!   returns with one CAS each; a reserve of one `AtomicU64` per dimension
//!   holds the rest. A take the front cannot serve takes its part of the
//!   reserve first and commits with a CAS of the front word.
//!
//! Both carry two flags in the packed word: `CLOSED`, and `SLOW`, which
//! says "the waiter queue is not empty or a shrink left a debt": while it is
//! set, fast-path takers defer to the locked path (so nobody overtakes a
//! queued acquirer) and releasers take the lock after returning their
//! permits (so no queued acquirer misses a release). Every take and return
//! ends with a read-modify-write of that word; each file says why that
//! closes the release/enqueue race.

mod held;
mod packed;
mod reserve;
mod tiered;

use crate::sync::AtomicU64;
use packed::Packed;
pub(crate) use packed::{Miss, Once};
use tiered::Tiered;

/// The most permits one dimension can hold, `2^60`: a limit of this
/// representation. Every dimension's capacity plus debt stays at or below
/// it, so a reserve word, a front field and the sums in between never
/// overflow; `MultiSemaphore::MAX_PERMITS` publishes it.
pub(crate) const MAX_PERMITS: u64 = 1 << 60;

/// A dimension that could not supply a request, with what it held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Short {
    pub(crate) dim: usize,
    pub(crate) available: u64,
}

/// Which fast takes go out of line after their CAS: see
/// [`Counters::low_water_word`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Watch<const N: usize> {
    Nothing,
    /// Those that leave a counter below these.
    Below([u64; N]),
    /// All that take anything.
    EveryTake,
}

/// What a successful fast take after a miss left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Took {
    /// The packed word (the front) it wrote, its tally counted.
    Word(u64),
    /// A tiered split take committed (see `take_after_miss`).
    Split,
}

/// Why the lock-free fast path took nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FastError {
    /// `CLOSED` or `SLOW` is set, or the amounts cannot even be represented:
    /// the caller must take the locked path to decide.
    Defer,
    /// The counters lacked this dimension; no flag was set.
    Short(Short),
    /// `Short`, as the semaphore's fast path hands it on: with the count of
    /// resizes it read before the look that found the shortage, which
    /// tells whether the capacities read after belong to that look
    /// (`MultiSemaphore::limits_unchanged_since`).
    ShortSince(Short, u64),
    /// As `Defer`, and the take held permits that it gave back while
    /// waiters were queued: they may have missed them, so the caller owes
    /// the lock a visit to serve the queue, whatever it decides (even a
    /// refusal that needs no lock, such as `ExceedsCapacity` or `Closed`).
    GaveBack,
}

/// The counters of one semaphore, in the layout chosen at construction.
#[derive(Debug)]
pub(crate) enum Counters<const N: usize> {
    Packed(Packed<N>),
    Tiered(Tiered<N>),
}

impl<const N: usize> Counters<N> {
    /// Full counters (`available == capacity`) able to grow each dimension up
    /// to `max_capacity`, or, when `max_capacity` is `None`, to whatever the
    /// packed word leaves spare. Returns the layout and the maximum it allows.
    /// `front_bits` sets the tiered layout's front fields (for tests);
    /// `track_peaks` has the tiered layout count what permits hold.
    #[track_caller]
    pub(crate) fn new(
        capacity: [u64; N],
        max_capacity: Option<[u64; N]>,
        front_bits: Option<[u32; N]>,
        track_peaks: bool,
    ) -> (Self, [u64; N]) {
        match Packed::plan(capacity, max_capacity) {
            Some((packed, max)) => (Self::Packed(packed), max),
            None => {
                let max = max_capacity.unwrap_or([MAX_PERMITS; N]);
                let tiered = Tiered::new(capacity, front_bits, track_peaks);
                (Self::Tiered(tiered), max)
            }
        }
    }

    /// The packed word that every take and return goes through: all of the
    /// counters in the packed layout, the front in the tiered one. Where the
    /// two variants place it at the same offset (they do on x86-64), this
    /// compiles to no branch at all.
    #[inline(always)]
    fn front(&self) -> &Packed<N> {
        match self {
            Self::Packed(p) => p,
            Self::Tiered(t) => t.front(),
        }
    }

    /// One try at taking every amount or nothing from the packed word alone
    /// (the front, in the tiered layout): a load of it and of `low_water`
    /// (which holds a word from [`Self::low_water_word`]), and one CAS,
    /// inlined into callers. A word it wrote whose tally wrapped goes to
    /// [`Self::count_tally`]; on a miss, and for a word that would go below
    /// the low water (not written: `Miss::Watched`),
    /// [`Self::take_after_miss`] decides.
    ///
    /// Both layouts share the one CAS of the front word, so the code inlined
    /// into callers is that of the packed layout alone.
    #[inline(always)]
    pub(crate) fn try_take_once(&self, amounts: [u64; N], low_water: &AtomicU64) -> Once {
        self.front().try_take_once(amounts, low_water)
    }

    /// Counts the tally out of `word`, written by `try_take_once`, if it
    /// wrapped.
    pub(crate) fn count_tally(&self, word: u64) {
        self.front().count_tally(word);
    }

    /// The fast take after `try_take_once` missed: in the packed layout the
    /// CAS it left to this call, a retry after a lost race, or a fresh look
    /// that says why it cannot take; in the tiered layout, if the front
    /// still cannot serve, the split take.
    #[cold]
    #[inline(never)]
    pub(crate) fn take_after_miss(&self, amounts: [u64; N], miss: Miss) -> Result<Took, FastError> {
        match (self.front().take_after_miss(amounts, miss), self) {
            (Ok(word), _) => Ok(Took::Word(word)),
            (Err(why), Self::Packed(_)) => Err(why),
            // The front is short, flagged, or cannot hold the request: the
            // split take decides.
            (Err(_), Self::Tiered(t)) => t.try_take_split(amounts).map(|()| Took::Split),
        }
    }

    /// The CAS that `try_take_once` left to its caller (`Miss::Watched`):
    /// returns the word it wrote, its tally counted, or `None` if it lost a
    /// race (then `take_after_miss` with `Miss::LostRace` goes on).
    #[inline]
    pub(crate) fn take_watched(&self, amounts: [u64; N], word: u64) -> Option<u64> {
        self.front().take_watched(amounts, word)
    }

    /// Whether a field of `word`, which `try_take_once` wrote, is below the
    /// same field of `low_water`, a word from [`Self::low_water_word`].
    #[inline(always)]
    pub(crate) fn below(&self, word: u64, low_water: u64) -> bool {
        self.front().below(word, low_water)
    }

    /// The low-water word that a fast take compares the word it wrote with
    /// ([`Self::below`]), to go out of line for what `watch` names. For
    /// [`Watch::Below`], the packed layout's fields hold the fewest permits
    /// a take may leave; the tiered layout's front cannot tell what its fields
    /// leave in all, so there, as for [`Watch::EveryTake`], every field is at
    /// its maximum and every take that takes from the front is below it.
    /// For [`Watch::Nothing`] all fields are 0: no take is below it.
    /// `generation` rides along, mod 64 (see
    /// `MultiSemaphore::refresh_low_water`).
    pub(crate) fn low_water_word(&self, watch: Watch<N>, generation: u64) -> u64 {
        let low = match (watch, self) {
            (Watch::Nothing, _) => [0; N],
            (Watch::Below(low), Self::Packed(_)) => low,
            (Watch::Below(_) | Watch::EveryTake, _) => self.front().full(),
        };
        self.front().low_water_word(low, generation)
    }

    /// What adds one to the generation of a word from
    /// [`Self::low_water_word`] (wrapping at 64 with the word).
    pub(crate) const GENERATION_ONE: u64 = Packed::<N>::GENERATION_ONE;

    /// The generation in a word from [`Self::low_water_word`].
    pub(crate) fn generation(low_water: u64) -> u64 {
        Packed::<N>::generation(low_water)
    }

    /// The packed layout's counters after the fast take that wrote `word`:
    /// its fields (in the tiered layout, the front's alone).
    pub(crate) fn left_after(&self, word: u64) -> [u64; N] {
        self.front().fields(word)
    }

    /// After a grant of `amounts`, in the tiered layout: counts them as held
    /// by permits, for its peaks, if it tracks them (see `held.rs`).
    pub(crate) fn granted(&self, amounts: &[u64; N]) {
        if let Self::Tiered(t) = self {
            t.granted(amounts);
        }
    }

    /// `Permit::forget`: the amounts leave circulation without coming back.
    pub(crate) fn forgot(&self, amounts: &[u64; N]) {
        if let Self::Tiered(t) = self {
            t.returned(amounts);
        }
    }

    /// What permits hold, read without the lock, where the tiered layout
    /// counts it (it tracks peaks; see `held.rs`): never above the truth,
    /// and not read at one instant across dimensions. `None` in the packed
    /// layout, whose word tells it, and without peak tracking.
    pub(crate) fn held(&self) -> Option<[u64; N]> {
        match self {
            Self::Packed(_) => None,
            Self::Tiered(t) => t.held(),
        }
    }

    /// The tiered layout's peaks, counted from what permits hold, if it
    /// tracks them; `None` in the packed layout, whose peaks the semaphore
    /// reads off its one word.
    pub(crate) fn peaks(&self) -> Option<[u64; N]> {
        match self {
            Self::Packed(_) => None,
            Self::Tiered(t) => t.peaks(),
        }
    }

    /// Takes every amount or nothing, ignoring `SLOW`: for the holder of the
    /// queue lock, which is the one serving the queue. Returns the front's
    /// fields as it left them: in the packed layout, all of the counters.
    pub(crate) fn take_locked(&self, amounts: [u64; N]) -> Result<[u64; N], Short> {
        match self {
            Self::Packed(p) => p.take_locked(amounts),
            Self::Tiered(t) => t.take_locked(amounts),
        }
    }

    /// Takes up to `wanted` in each dimension (as much as there is), and
    /// returns what it took. Pays down a shrink's debt.
    pub(crate) fn take_up_to(&self, wanted: [u64; N]) -> [u64; N] {
        match self {
            Self::Packed(p) => p.take_up_to(wanted),
            Self::Tiered(t) => t.take_up_to(wanted),
        }
    }

    /// Returns permits. `true` means `SLOW` was set: the caller must run the
    /// locked path so that queued acquirers see what came back.
    ///
    /// By reference: the tiered layout's out-of-line return reads the
    /// amounts where the permit holds them, so the packed layout's inlined
    /// path stores no copy of them for it.
    #[inline(always)]
    #[must_use]
    pub(crate) fn give(&self, amounts: &[u64; N]) -> bool {
        match self {
            // One load per element (see `Tiered::give`).
            Self::Packed(p) => p.give(std::array::from_fn(|d| amounts[d])),
            Self::Tiered(t) => t.give(amounts),
        }
    }

    /// Adds permits that no permit held (the capacity grew); `SLOW` or not,
    /// the caller then serves the queue.
    pub(crate) fn add(&self, amounts: &[u64; N]) {
        let _ = match self {
            Self::Packed(p) => p.give(*amounts),
            Self::Tiered(t) => t.add(*amounts),
        };
    }

    /// The raw counters, exact at one instant during the call, for the
    /// holder of the queue lock: it can never count a permit twice, and so
    /// never shows more than is there.
    pub(crate) fn load_locked(&self) -> [u64; N] {
        match self {
            Self::Packed(p) => p.load(),
            Self::Tiered(t) => t.load_locked(),
        }
    }

    /// The counters at one instant without the lock, where one load reads
    /// them all: the packed layout's word. `None` in the tiered layout,
    /// whose tiers only the lock holder reads at one instant.
    pub(crate) fn load_at_once(&self) -> Option<[u64; N]> {
        match self {
            Self::Packed(p) => Some(p.load()),
            Self::Tiered(_) => None,
        }
    }

    /// The counters, if `SLOW` was clear when they were read: then no debt
    /// was outstanding and they are exactly what is available. `None` in the
    /// tiered layout, whose words cannot be read at one instant.
    pub(crate) fn load_if_settled(&self) -> Option<[u64; N]> {
        match self {
            Self::Packed(p) => p.load_if_settled(),
            Self::Tiered(_) => None,
        }
    }

    /// Sets or clears `SLOW`. Only under the queue lock.
    pub(crate) fn set_slow(&self, slow: bool) {
        match self {
            Self::Packed(p) => p.set_slow(slow),
            Self::Tiered(t) => t.set_slow(slow),
        }
    }

    /// Sets `CLOSED` for good. Only under the queue lock.
    pub(crate) fn close(&self) {
        match self {
            Self::Packed(p) => p.close(),
            Self::Tiered(t) => t.close(),
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        match self {
            Self::Packed(p) => p.is_closed(),
            Self::Tiered(t) => t.is_closed(),
        }
    }

    /// A resize's write of the counter word (of the front, in the tiered
    /// layout), under the queue lock: its fields unchanged, its tally
    /// stepped, so that the word differs from every word before the resize
    /// (see `Packed::try_take_once`).
    pub(crate) fn step_for_resize(&self) {
        match self {
            Self::Packed(p) => p.step_for_resize(),
            Self::Tiered(t) => t.step_for_resize(),
        }
    }

    /// How many fast-path takes have succeeded (the locked path counts its
    /// own grants), plus one per resize (`step_for_resize`): the semaphore
    /// leaves those out.
    pub(crate) fn tallied(&self) -> u64 {
        match self {
            Self::Packed(p) => p.tallied(),
            Self::Tiered(t) => t.tallied(),
        }
    }

    /// Whether this is the single-word layout.
    pub(crate) fn is_packed(&self) -> bool {
        matches!(self, Self::Packed(_))
    }
}
