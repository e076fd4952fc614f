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

mod packed;
mod reserve;
mod tiered;

use packed::Packed;
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

/// Why the lock-free fast path took nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FastError {
    /// `CLOSED` or `SLOW` is set, or the amounts cannot even be represented:
    /// the caller must take the locked path to decide.
    Defer,
    /// The counters lacked this dimension; no flag was set.
    Short(Short),
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
    /// `front_bits` sets the tiered layout's front fields (for tests).
    #[track_caller]
    pub(crate) fn new(
        capacity: [u64; N],
        max_capacity: Option<[u64; N]>,
        front_bits: Option<[u32; N]>,
    ) -> (Self, [u64; N]) {
        match Packed::plan(capacity, max_capacity) {
            Some((packed, max)) => (Self::Packed(packed), max),
            None => {
                let max = max_capacity.unwrap_or([MAX_PERMITS; N]);
                (Self::Tiered(Tiered::new(capacity, front_bits)), max)
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

    /// Takes every amount or nothing, unless a flag is set. Returns the
    /// counters as this take left them if `counted` (for peak tracking;
    /// reading the tiered layout's reserve costs loads), else what it saw.
    ///
    /// Both layouts share the one CAS of the front word, so the code inlined
    /// into callers is that of the packed layout alone; the tiered layout's
    /// split take is out of line.
    #[inline(always)]
    pub(crate) fn try_take_fast(
        &self,
        amounts: [u64; N],
        counted: bool,
    ) -> Result<[u64; N], FastError> {
        match (self.front().try_take_fast(amounts), self) {
            (Ok(front), Self::Packed(_)) => Ok(front),
            (Ok(front), Self::Tiered(t)) => Ok(t.left(front, counted)),
            (Err(why), Self::Packed(_)) => Err(why),
            // The front is short, flagged, or cannot hold the request: the
            // split take decides.
            (Err(_), Self::Tiered(t)) => t.try_take_split(amounts, counted),
        }
    }

    /// Takes every amount or nothing, ignoring `SLOW`: for the holder of the
    /// queue lock, which is the one serving the queue. Returns as
    /// `try_take_fast`.
    pub(crate) fn take_locked(&self, amounts: [u64; N], counted: bool) -> Result<[u64; N], Short> {
        match self {
            Self::Packed(p) => p.take_locked(amounts),
            Self::Tiered(t) => t.take_locked(amounts).map(|front| t.left(front, counted)),
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

    /// The raw counters, exact at one instant during the call, for the
    /// holder of the queue lock: it can never count a permit twice, and so
    /// never shows more than is there.
    pub(crate) fn load_locked(&self) -> [u64; N] {
        match self {
            Self::Packed(p) => p.load(),
            Self::Tiered(t) => t.load_locked(),
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

    /// How many fast-path takes have succeeded (the locked path counts its
    /// own grants).
    pub(crate) fn fast_takes(&self) -> u64 {
        match self {
            Self::Packed(p) => p.fast_takes(),
            Self::Tiered(t) => t.fast_takes(),
        }
    }

    /// Whether this is the single-word layout.
    pub(crate) fn is_packed(&self) -> bool {
        matches!(self, Self::Packed(_))
    }
}
