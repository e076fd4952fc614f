//! Every dimension in one `AtomicU64`: one CAS takes them all, one
//! `fetch_add` returns them.
//!
//! # The word
//!
//! ```text
//!  63     58 57 ...                                                  2    1      0
//! +---------+--------+-------+---------+-----+-------+---------+------+--------+
//! |  tally  | unused | guard | field   | ... | guard | field   | SLOW | CLOSED |
//! | 6 bits  |        | N-1   | N-1     |     | 0     | 0       |      |        |
//! +---------+--------+-------+---------+-----+-------+---------+------+--------+
//! ```
//!
//! | part      | meaning                                                          |
//! |-----------|------------------------------------------------------------------|
//! | `CLOSED`  | set once by `close()`, never cleared                             |
//! | `SLOW`    | waiters queued or shrink debt outstanding: use the locked path   |
//! | field *d* | permits available in dimension *d*, `width[d]` bits              |
//! | guard *d* | always 0 at rest; set during a take to catch a borrow            |
//! | tally     | successful fast takes and resizes, mod 64; wraps out of the top  |
//!
//! A take subtracts every dimension at once, SWAR style: with every guard bit
//! set, `(word | GUARDS) - request` borrows from guard *d* exactly when field
//! *d* is short, and the guard stops the borrow there. So one subtraction and
//! one mask test check all dimensions, and the result (guards cleared) is the
//! new word. The tally adds one in the same CAS; the take that wraps it to 0
//! adds 64 to `flushed`, so counting acquisitions costs no extra atomic
//! operation on the fast path. Every resize adds one to the tally too
//! ([`Packed::step_for_resize`]; the semaphore leaves those out of its
//! count of fast takes, one per resize), so that the word a resize leaves
//! differs from every word before it, even where the permits it added were
//! granted straight back.
//!
//! A fast take whose CAS loses a race pauses before it retries (see
//! [`Packed::take_contended`]): an immediate retry would pull the word's cache line from
//! the core that just won, in the middle of its take and return.
//!
//! A field never overflows into its guard: the semaphore keeps
//! `available + in flight <= capacity + debt <= max_capacity <= field max`
//! (see `semaphore.rs`), so a release can add blindly.
//!
//! The tiered layout's front word is such a word too, but its fields need
//! not hold a dimension's whole capacity: there a return adds by CAS what
//! fits below each field's maximum and leaves the rest to the reserve
//! ([`Packed::give_bounded`]), and a dimension may have no field at all.
//!
//! # Orderings
//!
//! Every state change is a read-modify-write of this one word, so all of them
//! are totally ordered by the word's modification order and each sees the
//! latest value: that alone closes the release/enqueue race. A waiter sets
//! `SLOW` (RMW) before its locked take (RMW); a release's `fetch_add` (RMW)
//! either comes first, and the take sees its permits, or comes after, and sees
//! `SLOW`. The `Acquire` on takes and `Release` on returns make a permit carry
//! the holder's writes to the next holder, as a lock would.

use super::{FastError, Short};
use crate::sync::{AtomicU64, Ordering};
use crossbeam_utils::CachePadded;

const CLOSED: u64 = 1 << 0;
const SLOW: u64 = 1 << 1;
const FIRST_FIELD: u32 = 2;
const TALLY_BITS: u32 = 6;
const TALLY_SHIFT: u32 = 64 - TALLY_BITS;
const TALLY_ONE: u64 = 1 << TALLY_SHIFT;
/// Bits for fields and their guards.
const FIELD_SPACE: u32 = TALLY_SHIFT - FIRST_FIELD;
/// Enough for `MAX_PERMITS`, the most a front field ever holds.
const MAX_FRONT_BITS: u32 = 61;

/// Spin-loop hints after a fast take's first lost race (see
/// [`Packed::take_contended`]): about one cache-line transfer between cores
/// where a hint takes some 10 ns, as on the development machine (CPUs with a
/// slower `pause` wait longer). Each further race lost in a row doubles it,
/// up to `MAX_PAUSES`.
const FIRST_PAUSES: u32 = 8;
const MAX_PAUSES: u32 = 8 * FIRST_PAUSES;

/// What [`Packed::try_take_once`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Once {
    /// It took, and there is nothing to note.
    Took,
    /// It took, writing this word, whose tally wrapped: count it out of line
    /// ([`Packed::count_tally`]).
    ToNote(u64),
    /// It took nothing.
    Missed(Miss),
}

/// Why [`Packed::try_take_once`] took nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Miss {
    /// Its CAS lost a race: pause, then try again.
    LostRace,
    /// A flag, a short field, or amounts a field cannot hold: look again.
    Other,
    /// It did not try its CAS: the word it would write from this one has a
    /// field below the low water (a peak may rise, or every take is
    /// watched), and what that notes must know whether a resize ran since
    /// before the CAS. So the CAS is tried out of line, after the caller
    /// has read the count of resizes (see `MultiSemaphore::take_after_miss`);
    /// it costs the fast path no load. Only the word is carried: a `Once`
    /// of two words comes back in registers, one of three through memory.
    Watched(u64),
}

#[derive(Debug)]
pub(crate) struct Packed<const N: usize> {
    /// On a cache line of its own: the layout below is read by every
    /// operation and must not be invalidated each time another core takes or
    /// returns permits.
    hot: CachePadded<Hot>,
    shift: [u32; N],
    /// The largest value each field holds: `2^width - 1`.
    field_max: [u64; N],
    /// `!field_max`: the bits that an amount too large for the field has.
    over_max: [u64; N],
    guards: u64,
    /// The bits a take must find clear after its subtraction: the guards
    /// (one was borrowed) and the flags.
    refuse: u64,
}

/// What takes and returns write.
#[derive(Debug)]
struct Hot {
    word: AtomicU64,
    /// Fast takes counted out of the tally, in steps of `1 << TALLY_BITS`:
    /// beside the word, whose line the flushing take's core holds already.
    flushed: AtomicU64,
}

/// Bits needed to hold `value`.
fn bits(value: u64) -> u32 {
    u64::BITS - value.leading_zeros()
}

/// The largest value a field `width` bits wide holds.
fn field_max(width: u32) -> u64 {
    if width == 0 {
        0
    } else {
        u64::MAX >> (64 - width)
    }
}

/// Shares `spare` bits out over the fields as room to grow, the remainder
/// to the later dimensions (bytes, typically).
fn share_out<const N: usize>(width: &mut [u32; N], spare: u32) {
    let n = N as u32;
    for (d, w) in width.iter_mut().enumerate() {
        let bonus = u32::from((d as u32) >= n - spare % n);
        *w += spare / n + bonus;
    }
}

/// The field widths of the tiered layout's front word for `capacity`, which
/// does not fit in one word whole: each dimension gets the bits its capacity
/// needs or a fair share of the word, whichever is less, the small ones
/// first so that what they leave goes to the large ones; bits left over are
/// shared out. A dimension may get no field at all (when `N` is large): its
/// permits then all stay in the reserve.
pub(super) fn front_widths<const N: usize>(capacity: [u64; N]) -> [u32; N] {
    let mut order: [usize; N] = std::array::from_fn(|d| d);
    order.sort_by_key(|&d| capacity[d]);
    let mut width = [0; N];
    let mut left = FIELD_SPACE;
    for (i, &d) in order.iter().enumerate() {
        let share = left / (N - i) as u32;
        // A field costs its width and its guard bit.
        let w = bits(capacity[d])
            .min(share.saturating_sub(1))
            .min(MAX_FRONT_BITS);
        if w > 0 {
            width[d] = w;
            left -= w + 1;
        }
    }
    if width.iter().all(|&w| w > 0) {
        // What is left is room for the front to hold more after growth.
        share_out(&mut width, left);
    }
    width
}

/// Whether `width` (chosen by a test through the builder) fits the front word.
pub(super) fn front_widths_fit(width: &[u32]) -> bool {
    let used: u32 = width.iter().map(|&w| if w == 0 { 0 } else { w + 1 }).sum();
    width.iter().all(|&w| w <= MAX_FRONT_BITS) && used <= FIELD_SPACE
}

impl<const N: usize> Packed<N> {
    /// Lays out the word for `capacity`, or `None` if it does not fit.
    ///
    /// With `max_capacity` given, each field is just wide enough for it.
    /// Without, each gets what its capacity needs and the spare bits are
    /// shared out evenly as room to grow; the returned maximum says how much.
    pub(super) fn plan(
        capacity: [u64; N],
        max_capacity: Option<[u64; N]>,
    ) -> Option<(Self, [u64; N])> {
        let need = max_capacity.unwrap_or(capacity);
        let mut width = need.map(bits);
        // One guard bit per field.
        let used: u32 = width.iter().map(|w| w + 1).sum();
        let spare = FIELD_SPACE.checked_sub(used)?;
        if max_capacity.is_none() {
            share_out(&mut width, spare);
        }
        let packed = Self::with_widths(width, capacity);
        let max =
            max_capacity.unwrap_or_else(|| packed.field_max.map(|m| m.min(super::MAX_PERMITS)));
        Some((packed, max))
    }

    /// The front word of the tiered layout, with fields of the widths that
    /// [`front_widths`] chose, each as full as `capacity` allows; returns it
    /// and what it holds.
    pub(super) fn front(width: [u32; N], capacity: [u64; N]) -> (Self, [u64; N]) {
        let held = std::array::from_fn(|d| capacity[d].min(field_max(width[d])));
        (Self::with_widths(width, held), held)
    }

    /// A word whose field *d* is `width[d]` bits wide (0: no field at all,
    /// and no guard), holding `initial`.
    fn with_widths(width: [u32; N], initial: [u64; N]) -> Self {
        let field_max = width.map(field_max);
        let mut shift = [0; N];
        let mut guards = 0;
        let mut next = FIRST_FIELD;
        for d in 0..N {
            shift[d] = next;
            if width[d] > 0 {
                guards |= 1 << (next + width[d]);
                next += width[d] + 1;
            }
        }
        debug_assert!(next <= TALLY_SHIFT, "fields overlap the tally");
        debug_assert_eq!(shift[0], FIRST_FIELD, "see `shift`");
        let packed = Self {
            hot: CachePadded::new(Hot {
                word: AtomicU64::new(0),
                flushed: AtomicU64::new(0),
            }),
            shift,
            field_max,
            over_max: field_max.map(|max| !max),
            guards,
            refuse: guards | CLOSED | SLOW,
        };
        // Relaxed: not shared yet; handing the semaphore to other threads
        // publishes it.
        packed
            .hot
            .word
            .store(packed.pack_unchecked(initial), Ordering::Relaxed);
        packed
    }

    /// The request as one word, or `None` if a field cannot hold it (then it
    /// exceeds the dimension's maximum capacity too).
    #[inline]
    fn pack(&self, amounts: [u64; N]) -> Option<u64> {
        // One test for all dimensions: a bit above a field's maximum.
        let mut over = 0;
        let mut word = 0;
        for (d, &amount) in amounts.iter().enumerate() {
            over |= amount & self.over_max[d];
            word |= amount << self.shift(d);
        }
        (over == 0).then_some(word)
    }

    /// Where field `d` starts: a constant for the first, which follows the
    /// flags in every layout.
    #[inline(always)]
    fn shift(&self, d: usize) -> u32 {
        if d == 0 { FIRST_FIELD } else { self.shift[d] }
    }

    /// Packs amounts known to fit: ones that were taken from these counters.
    #[inline]
    fn pack_unchecked(&self, amounts: [u64; N]) -> u64 {
        let mut word = 0;
        for (d, &amount) in amounts.iter().enumerate() {
            debug_assert!(amount <= self.field_max[d]);
            word |= amount << self.shift(d);
        }
        word
    }

    #[inline]
    fn unpack(&self, word: u64) -> [u64; N] {
        std::array::from_fn(|d| (word >> self.shift[d]) & self.field_max[d])
    }

    /// `word - request` in every field at once, or `None` if a field is
    /// short.
    #[inline(always)]
    fn minus(&self, word: u64, request: u64) -> Option<u64> {
        let borrowed = (word | self.guards).wrapping_sub(request);
        (borrowed & self.guards == self.guards).then_some(borrowed ^ self.guards)
    }

    /// `word - request` in every field at once, or the first short dimension.
    #[inline]
    fn subtract(&self, word: u64, request: u64) -> Result<u64, Short> {
        self.minus(word, request)
            .ok_or_else(|| self.short(word, request))
    }

    #[cold]
    #[inline(never)]
    fn short(&self, word: u64, request: u64) -> Short {
        let borrowed = (word | self.guards).wrapping_sub(request);
        let available = self.unpack(word);
        // Fields of width 0 have no guard (and are never requested from).
        let dim = (0..N)
            .find(|&d| {
                self.field_max[d] != 0
                    && borrowed & (1 << (self.shift[d] + bits(self.field_max[d]))) == 0
            })
            .expect("a guard bit was borrowed");
        Short {
            dim,
            available: available[dim],
        }
    }

    /// One try at taking every amount or nothing: a load of the word and of
    /// `low_water`, and one CAS, inlined into callers. Says whether the word
    /// it wrote has something to note out of line: its tally wrapped
    /// ([`Self::count_tally`]). A word that would go below the low water
    /// ([`Self::below`]) is not written here but handed to
    /// [`Self::take_after_miss`] (`Miss::Watched`), as a miss is. Both are
    /// worked out before the CAS, from values already in registers.
    ///
    /// The low water is loaded after the word: a resize raises it before it
    /// adds permits to the word and lets takes pass again, so a take whose
    /// CAS sees the word as the resize left it also sees the raised low
    /// water. Loaded first, it could be older than the resize while the CAS
    /// takes the added permits, and miss a new peak. Nor can a word loaded
    /// before a resize be the word the CAS finds after it, the same bit for
    /// bit, although the fields may be (a growth whose permits the lock
    /// holder granted straight to queued requests): the resize stepped the
    /// tally ([`Self::step_for_resize`]). Only 63 (or 127, ...) more steps
    /// of it (fast takes or resizes) between the load and the CAS, and the
    /// fields as they were, bring the word back; then the take counts against the low
    /// water before the resize, and may miss a peak that the permits the
    /// growth added let it set (`Stats::peak_in_flight` says so).
    #[inline(always)]
    pub(super) fn try_take_once(&self, amounts: [u64; N], low_water: &AtomicU64) -> Once {
        // Acquire, both: a guess for the CAS, which checks it; and, when
        // the word is one a resize wrote (or later), the low water it raised
        // before is seen below.
        let word = self.hot.word.load(Ordering::Acquire);
        let low_water = low_water.load(Ordering::Acquire);
        self.try_take_from(amounts, word, low_water)
    }

    #[inline(always)]
    fn try_take_from(&self, amounts: [u64; N], word: u64, low_water: u64) -> Once {
        let Some(request) = self.pack(amounts) else {
            return Once::Missed(Miss::Other);
        };
        // As `minus`, with the flags checked in the same test: they pass
        // through the subtraction unchanged, and a borrowed guard comes out
        // set.
        let new = ((word | self.guards).wrapping_sub(request)) ^ self.guards;
        if new & self.refuse != 0 {
            return Once::Missed(Miss::Other);
        }
        let new = new.wrapping_add(TALLY_ONE);
        if self.below(new, low_water) {
            return Once::Missed(Miss::Watched(word));
        }
        match self.cas_take(word, new) {
            Ok(()) if Self::tally_wrapped(new) => Once::ToNote(new),
            Ok(()) => Once::Took,
            Err(_) => Once::Missed(Miss::LostRace),
        }
    }

    /// The fast take after [`Self::try_take_once`] missed: the CAS it left
    /// to this call (`Miss::Watched`), then as after a lost race; after a
    /// lost race, a pause and another try (see [`Self::take_contended`]);
    /// otherwise a fresh look, which says why it cannot take (or takes, if
    /// permits came back meanwhile). Returns the word it wrote, its tally
    /// counted.
    #[cold]
    #[inline(never)]
    pub(super) fn take_after_miss(&self, amounts: [u64; N], miss: Miss) -> Result<u64, FastError> {
        let request = self.pack(amounts).ok_or(FastError::Defer)?;
        let new = match miss {
            Miss::Watched(word) => match self.take_watched(amounts, word) {
                Some(new) => return Ok(new),
                None => self.take_contended(request)?,
            },
            Miss::LostRace => self.take_contended(request)?,
            Miss::Other => {
                // Relaxed: only a guess for the CAS, which checks it.
                let word = self.hot.word.load(Ordering::Relaxed);
                let new = self.after_take(word, request)?;
                match self.cas_take(word, new) {
                    Ok(()) => new,
                    Err(_) => self.take_contended(request)?,
                }
            }
        };
        self.count_tally(new);
        Ok(new)
    }

    /// The CAS that [`Self::try_take_once`] left to its caller
    /// (`Miss::Watched`): the same word, the same take. Returns the word it
    /// wrote, its tally counted, or `None` if the CAS lost a race.
    #[inline]
    pub(super) fn take_watched(&self, amounts: [u64; N], word: u64) -> Option<u64> {
        // The first try packed these amounts, and found the word without
        // flags and with enough in every field.
        let new = self.after_take(word, self.pack(amounts)?).ok()?;
        self.cas_take(word, new).ok()?;
        self.count_tally(new);
        Some(new)
    }

    /// The tiered layout's commit of a split take: a fast take (or, for
    /// the lock holder, `take_locked`) of amounts that the fields can hold,
    /// starting from the guess `word` that `peek` returned.
    pub(super) fn commit<const LOCKED: bool>(
        &self,
        word: u64,
        amounts: [u64; N],
    ) -> Result<[u64; N], FastError> {
        let request = self.pack_unchecked(amounts);
        if LOCKED {
            self.take_locked_from(word, request)
                .map_err(FastError::Short)
        } else {
            self.take_holding(word, request)
        }
    }

    /// The fast take after its CAS lost a race; returns the word it wrote.
    ///
    /// The CAS lost to another core, which wrote the word a moment ago, holds
    /// its cache line, and will most likely write it again at once (its
    /// permit's return, or its next take). Retrying at once would pull the
    /// line away from it in between, so that both cores pay a line transfer
    /// for each operation; pausing for about one transfer first lets it
    /// finish. Only lost races pause: an uncontended take never does.
    #[cold]
    #[inline(never)]
    fn take_contended(&self, request: u64) -> Result<u64, FastError> {
        let mut pauses = FIRST_PAUSES;
        loop {
            crate::sync::pause(pauses);
            pauses = (pauses * 2).min(MAX_PAUSES);
            // Relaxed: only a guess for the CAS, which checks it.
            let word = self.hot.word.load(Ordering::Relaxed);
            let new = self.after_take(word, request)?;
            if self.cas_take(word, new).is_ok() {
                return Ok(new);
            }
        }
    }

    /// The fast take for a split take's commit, which holds reserve permits
    /// while it runs: it retries at once, so as to hold them no longer than
    /// it must.
    fn take_holding(&self, mut word: u64, request: u64) -> Result<[u64; N], FastError> {
        loop {
            let new = self.after_take(word, request)?;
            // AcqRel, where a plain take's CAS is Acquire: Release too, so
            // that the reserve part this take holds (taken before this CAS)
            // is taken before anything that reads this word after it. The
            // lock holder's `set_slow` does, and then reads the reserve
            // (`Tiered::load_locked`): without the Release, nothing would
            // order its read of the reserve after our take, and it could
            // count that part in both tiers.
            match self.hot.word.compare_exchange_weak(
                word,
                new,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(self.taken(new)),
                Err(actual) => word = actual,
            }
        }
    }

    /// The word after taking `request` from `word`, tally counted, or why
    /// the fast path cannot take it.
    #[inline(always)]
    fn after_take(&self, word: u64, request: u64) -> Result<u64, FastError> {
        if word & (CLOSED | SLOW) != 0 {
            return Err(FastError::Defer);
        }
        let taken = self.subtract(word, request).map_err(FastError::Short)?;
        Ok(taken.wrapping_add(TALLY_ONE))
    }

    /// Replaces `word` with `new`, a take of it; on a lost race, the word as
    /// it is now.
    #[inline(always)]
    fn cas_take(&self, word: u64, new: u64) -> Result<(), u64> {
        // Acquire: pairs with the Release of the `fetch_add` that returned
        // these permits, so the last holder's writes are visible to us.
        self.hot
            .word
            .compare_exchange_weak(word, new, Ordering::Acquire, Ordering::Relaxed)
            .map(drop)
    }

    /// The counters a successful take left, `new` being the word it wrote.
    fn taken(&self, new: u64) -> [u64; N] {
        self.count_tally(new);
        self.unpack(new)
    }

    /// After a successful fast take that wrote `new`: if its tally wrapped,
    /// counts the 64 takes out of the word.
    #[inline]
    pub(super) fn count_tally(&self, new: u64) {
        if Self::tally_wrapped(new) {
            self.flush_tally();
        }
    }

    /// Whether the fast take that wrote `new` wrapped the tally to 0.
    #[inline(always)]
    pub(super) fn tally_wrapped(new: u64) -> bool {
        new < TALLY_ONE
    }

    /// The tally wrapped to 0 with our take: move its 64 to `flushed`.
    #[cold]
    #[inline(never)]
    fn flush_tally(&self) {
        // Release: after the take that wrapped the tally, so that a reader
        // that sees these 64 (Acquire, `tallied`) sees the wrap too, and
        // never counts them twice. (The RMW is a locked one on x86 anyway.)
        self.hot
            .flushed
            .fetch_add(1 << TALLY_BITS, Ordering::Release);
    }

    pub(super) fn take_locked(&self, amounts: [u64; N]) -> Result<[u64; N], Short> {
        let Some(request) = self.pack(amounts) else {
            // Too large for its field somewhere (a clamped request at a
            // capacity of 0 keeps its size): short there, and maybe in an
            // earlier dimension too. Name the first that lacks, as a take
            // that fits the word does.
            let available = self.load();
            let dim = (0..N).find(|&d| amounts[d] > available[d]).unwrap_or(0);
            return Err(Short {
                dim,
                available: available[dim],
            });
        };
        // Relaxed: only a guess for the CAS, which checks it.
        let word = self.hot.word.load(Ordering::Relaxed);
        self.take_locked_from(word, request)
    }

    fn take_locked_from(&self, mut word: u64, request: u64) -> Result<[u64; N], Short> {
        loop {
            let new = self.subtract(word, request)?;
            // Acquire: as in `cas_take`.
            match self.hot.word.compare_exchange_weak(
                word,
                new,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(self.unpack(new)),
                Err(actual) => word = actual,
            }
        }
    }

    pub(super) fn take_up_to(&self, wanted: [u64; N]) -> [u64; N] {
        // Relaxed: only a guess for the CAS, which checks it.
        let mut word = self.hot.word.load(Ordering::Relaxed);
        loop {
            let have = self.unpack(word);
            let take: [u64; N] = std::array::from_fn(|d| wanted[d].min(have[d]));
            let new = word - self.pack_unchecked(take);
            // Acquire: as in `cas_take`.
            match self.hot.word.compare_exchange_weak(
                word,
                new,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return take,
                Err(actual) => word = actual,
            }
        }
    }

    #[inline(always)]
    pub(super) fn give(&self, amounts: [u64; N]) -> bool {
        // Release: publishes the holder's writes to the next taker (its
        // Acquire CAS). The RMW reads the latest word, so a `SLOW` set by a
        // waiter before this add is seen here (see "Orderings").
        let before = self
            .hot
            .word
            .fetch_add(self.pack_unchecked(amounts), Ordering::Release);
        before & SLOW != 0
    }

    /// Returns what fits into the fields, as the tiered layout's front, and
    /// hands the rest, before that, to `overflow`. Returns whether `SLOW`
    /// was set. A field never passes its maximum: the reserve behind it takes
    /// what does not fit, so no return can overflow the word.
    #[inline]
    pub(super) fn give_bounded(&self, amounts: [u64; N], overflow: impl FnMut([u64; N])) -> bool {
        if let Some(add) = self.pack(amounts) {
            // Relaxed: only a guess for the CAS, which checks it.
            let mut word = self.hot.word.load(Ordering::Relaxed);
            loop {
                // Fields are at most their maximum and guards are clear, so
                // a field that passes its maximum carries into its guard and
                // no further.
                let sum = word + add;
                if sum & self.guards != 0 {
                    break;
                }
                // Release: as in `give`; the flags it returns are current.
                match self.hot.word.compare_exchange_weak(
                    word,
                    sum,
                    Ordering::Release,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => return word & SLOW != 0,
                    Err(actual) => word = actual,
                }
            }
        }
        self.give_overflowing(amounts, overflow)
    }

    /// `give_bounded` for a return that does not fit the fields: what does
    /// not fit goes to `overflow` first, and then the CAS adds the rest. The
    /// CAS comes last even if it adds nothing, because it is the
    /// read-modify-write that orders the return against a waiter's `SLOW`.
    #[cold]
    #[inline(never)]
    fn give_overflowing(&self, mut amounts: [u64; N], mut overflow: impl FnMut([u64; N])) -> bool {
        if (0..N).all(|d| amounts[d] == 0 || self.field_max[d] == 0) {
            // No field can take any of it: all to the reserve, then the RMW.
            overflow(amounts);
            return self.touch();
        }
        // Relaxed: only a guess for the CAS, which checks it.
        let mut word = self.hot.word.load(Ordering::Relaxed);
        loop {
            let have = self.unpack(word);
            let fits: [u64; N] =
                std::array::from_fn(|d| amounts[d].min(self.field_max[d] - have[d]));
            if fits != amounts {
                overflow(std::array::from_fn(|d| amounts[d] - fits[d]));
                amounts = fits;
            }
            // Release: as in `give`.
            match self.hot.word.compare_exchange_weak(
                word,
                word + self.pack_unchecked(amounts),
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return word & SLOW != 0,
                Err(actual) => word = actual,
            }
        }
    }

    /// A read-modify-write that changes nothing, after permits went back to
    /// the tiered layout's reserve: returns whether `SLOW` is set, ordered
    /// as a return's CAS is.
    pub(super) fn touch(&self) -> bool {
        // Release: as in `give`, heading the release sequence that a
        // waiter's `set_slow` acquires.
        self.hot.word.fetch_add(0, Ordering::Release) & SLOW != 0
    }

    /// The word as it is, for the tiered layout to split a request by and
    /// to pass to `commit`, whose CAS checks it.
    pub(super) fn peek(&self) -> u64 {
        // Relaxed: a guess (see above).
        self.hot.word.load(Ordering::Relaxed)
    }

    /// Whether `word` has a flag set.
    pub(super) fn flagged(word: u64) -> bool {
        word & (SLOW | CLOSED) != 0
    }

    /// The fields of `word`.
    pub(super) fn fields(&self, word: u64) -> [u64; N] {
        self.unpack(word)
    }

    /// Whether a field of `word` (one a take wrote) is below the same field
    /// of `low_water` (one that [`Self::low_water_word`] packed), checked in
    /// all fields at once as a take is (see [`Self::subtract`]). Flag and
    /// tally bits cannot borrow into a guard: they lie below the first field,
    /// are 0 in both words, or lie above the last guard.
    #[inline(always)]
    pub(super) fn below(&self, word: u64, low_water: u64) -> bool {
        (word | self.guards).wrapping_sub(low_water) & self.guards != self.guards
    }

    /// `low` packed as a low-water word for [`Self::below`], each value cut
    /// to its field (a field of width 0 gets nothing), with `generation`
    /// (mod 64) where a take's word has its tally.
    pub(super) fn low_water_word(&self, low: [u64; N], generation: u64) -> u64 {
        let low = std::array::from_fn(|d| low[d].min(self.field_max[d]));
        self.pack_unchecked(low) | (generation << TALLY_SHIFT)
    }

    /// One generation in a word from [`Self::low_water_word`].
    pub(super) const GENERATION_ONE: u64 = TALLY_ONE;

    /// The generation that [`Self::low_water_word`] packed into `word`.
    pub(super) fn generation(word: u64) -> u64 {
        word >> TALLY_SHIFT
    }

    /// Every field at its maximum: a word that every take which takes
    /// anything from a field is below.
    pub(super) fn full(&self) -> [u64; N] {
        self.field_max
    }

    pub(super) fn load(&self) -> [u64; N] {
        // Relaxed: a snapshot for callers that hold no permit on its strength.
        self.unpack(self.hot.word.load(Ordering::Relaxed))
    }

    pub(super) fn load_if_settled(&self) -> Option<[u64; N]> {
        // The one load sees counters and flag together. Acquire: a word
        // that a resize left settled makes what the resize did visible (see
        // `MultiSemaphore::in_flight`).
        let word = self.hot.word.load(Ordering::Acquire);
        (word & SLOW == 0).then(|| self.unpack(word))
    }

    pub(super) fn set_slow(&self, slow: bool) {
        // In this layout the word's modification order alone orders the flag
        // against takes and returns (all are RMWs of this word). AcqRel for
        // the tiered layout, whose returns also add to the reserve first:
        // Acquire makes those adds visible to the waiter that sets `SLOW`
        // after them, Release keeps the lock holder's writes before it.
        if slow {
            self.hot.word.fetch_or(SLOW, Ordering::AcqRel);
        } else {
            self.hot.word.fetch_and(!SLOW, Ordering::AcqRel);
        }
    }

    pub(super) fn close(&self) {
        // AcqRel: as `set_slow`; every CAS keeps the bits it did not change.
        self.hot.word.fetch_or(CLOSED, Ordering::AcqRel);
    }

    /// Whether `SLOW` is set; exact for the queue lock's holder, under
    /// which alone it changes.
    pub(super) fn is_slow(&self) -> bool {
        // Relaxed: only the lock holder changes `SLOW`, and it asks.
        self.hot.word.load(Ordering::Relaxed) & SLOW != 0
    }

    pub(super) fn is_closed(&self) -> bool {
        // Relaxed: a hint for error order; whoever must not miss `CLOSED`
        // reads it under the lock, where `close` sets it.
        self.hot.word.load(Ordering::Relaxed) & CLOSED != 0
    }

    /// The tally's steps so far: successful fast takes, and one per resize
    /// ([`Self::step_for_resize`]).
    pub(super) fn tallied(&self) -> u64 {
        // `flushed` first, Acquire (pairs with the Release in `flush_tally`):
        // the word then shows every wrap whose 64 it counted, so a tally
        // read from before a wrap is never added to that wrap's flush (which
        // ran up to 63 ahead). While takes run, a wrap not yet flushed can
        // still make this lag by up to 64; it is exact once they stop.
        let flushed = self.hot.flushed.load(Ordering::Acquire);
        let tally = self.hot.word.load(Ordering::Relaxed) >> TALLY_SHIFT;
        flushed + tally
    }

    /// A resize's write of the word, under the queue lock (see
    /// `MultiSemaphore::change_limits`): one step of the tally, as a fast
    /// take's, so that no take's CAS finds the word as it loaded it before
    /// the resize (see [`Self::try_take_once`]), and a read-modify-write
    /// that lock-free readers' reads of the word are ordered after.
    pub(super) fn step_for_resize(&self) {
        // Release: as a return's (`give`), for the readers that pair with
        // it; the word's fields are unchanged.
        let before = self.hot.word.fetch_add(TALLY_ONE, Ordering::Release);
        self.count_tally(before.wrapping_add(TALLY_ONE));
    }
}
