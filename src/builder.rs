//! Configuration beyond the capacities.

use crate::semaphore::MultiSemaphore;

/// Builds a [`MultiSemaphore`] with what [`MultiSemaphore::new`] does not
/// set: room reserved to grow ([`max_capacity`](Self::max_capacity)),
/// dimension [`names`](Self::names), [`clamp_oversized`](Self::clamp_oversized),
/// [`track_amounts`](Self::track_amounts), or no peak tracking
/// ([`track_peaks`](Self::track_peaks)). Made by [`MultiSemaphore::builder`].
///
/// ```
/// use multisem::MultiSemaphore;
///
/// // Start at 1024 messages / 100 MiB, able to grow to 64 Ki / 16 GiB later.
/// let sem = MultiSemaphore::builder([1024, 100 << 20])
///     .max_capacity([1 << 16, 16 << 30])
///     .build();
/// assert!(sem.is_single_word());
/// sem.set_capacity([4096, 1 << 30]).unwrap();
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct Builder<const N: usize> {
    capacity: [u64; N],
    max_capacity: Option<[u64; N]>,
    track_peaks: bool,
    clamp_oversized: bool,
    track_amounts: bool,
    names: Option<&'static [&'static str; N]>,
    front_bits: Option<[u32; N]>,
}

impl<const N: usize> Builder<N> {
    pub(crate) fn new(capacity: [u64; N]) -> Self {
        Self {
            capacity,
            max_capacity: None,
            track_peaks: true,
            clamp_oversized: false,
            track_amounts: false,
            names: None,
            front_bits: None,
        }
    }

    /// The most each dimension may grow to by
    /// [`add_permits`](MultiSemaphore::add_permits) or
    /// [`set_capacity`](MultiSemaphore::set_capacity).
    ///
    /// By default the semaphore uses the single-word layout whenever the
    /// capacities fit, sharing the word's spare bits out as room to grow, and
    /// reports the result in [`max_capacity`](MultiSemaphore::max_capacity).
    /// A maximum set here is kept exactly; if the maxima do not fit in one
    /// word, the semaphore uses the tiered layout (up to
    /// [`MAX_PERMITS`](MultiSemaphore::MAX_PERMITS) each): a packed word in
    /// front holds as much of each dimension as fits and serves most acquires
    /// with one CAS, and one atomic per dimension behind it holds the rest.
    pub fn max_capacity(mut self, max: [u64; N]) -> Self {
        self.max_capacity = Some(max);
        self
    }

    /// Whether to keep [`Stats::peak_in_flight`](crate::Stats::peak_in_flight)
    /// (default `true`). In the single-word layout it costs nothing
    /// measurable; in the tiered layout it adds an atomic add per dimension
    /// to every take and return (the README's "Performance"), which turning
    /// it off saves.
    pub fn track_peaks(mut self, on: bool) -> Self {
        self.track_peaks = on;
        self
    }

    /// The policy for a request larger than a dimension's capacity (default
    /// `false`: it fails at once with `ExceedsCapacity`, as documented on
    /// each acquire).
    ///
    /// With `true`, such a request is **clamped** instead: in each dimension
    /// it asks more than the capacity of, it is granted the whole capacity.
    /// So it waits, first come first served like any request, until that
    /// dimension is entirely free, and then runs alone in it (until a growth
    /// of the capacity lets others in beside it); the permit's
    /// [`amounts`](crate::Permit::amounts) say what it really holds. For a
    /// producer whose one message is larger than the byte budget: it goes
    /// through on its own rather than failing or waiting forever.
    ///
    /// * Every dimension is clamped, the count included: a batch permit
    ///   asked as `[32, bytes]` while the count's capacity is 8 holds
    ///   `[8, ..]`, so size its parts from [`amounts`](crate::Permit::amounts),
    ///   not from the request, before you [`split`](crate::Permit::split) it,
    ///   or split with [`split_up_to`](crate::Permit::split_up_to),
    ///   which gives the first part that asks more than is left all of it
    ///   (and those after it nothing).
    ///
    /// * A dimension whose capacity is 0 (set so to pause it) is never
    ///   clamped to: a request for some of it waits until its capacity is
    ///   above 0, then is clamped to that ([`try_acquire`](MultiSemaphore::try_acquire)
    ///   fails with `Insufficient` meanwhile). A grant of none of it would
    ///   not run alone: it would run beside every other. Where its
    ///   [`max_capacity`](Self::max_capacity) is 0 too, its capacity can
    ///   never rise above 0, so such a request fails at once with
    ///   `ExceedsCapacity` rather than wait for ever.
    ///
    /// * The clamp follows the capacity at the time of the grant: a queued
    ///   request whose capacity shrinks or grows with
    ///   [`set_capacity`](MultiSemaphore::set_capacity) is granted the
    ///   capacity of the moment it is granted (never failed by a shrink).
    /// * Nothing else changes: no waiter holds a part while it waits, and a
    ///   clamped request at the head holds back those behind it, as a large
    ///   one does.
    /// * [`try_grow`](crate::Permit::try_grow) never clamps.
    /// * A `try_acquire` that misses the lock-free take goes to the internal
    ///   lock before it refuses (a request short as asked may fit once
    ///   clamped, and the capacities change only under the lock), so a
    ///   clamping semaphore's refusals cost a visit to the lock. In the
    ///   tiered layout that visit reads both tiers, which holds the fast
    ///   path off for its while (takes and returns meanwhile go through
    ///   the lock too).
    /// * [`Stats::clamped`](crate::Stats::clamped) counts the clamped grants.
    ///
    /// ```
    /// use multisem::MultiSemaphore;
    ///
    /// let sem = MultiSemaphore::builder([16, 1 << 20]).clamp_oversized(true).build();
    /// let big = sem.try_acquire([1, 5 << 20]).unwrap(); // 5 MiB against a 1 MiB budget
    /// assert_eq!(big.amounts(), [1, 1 << 20]);           // it holds all of the bytes
    /// assert!(sem.try_acquire([1, 1]).is_err());        // so it runs alone in them
    /// drop(big);
    /// assert_eq!(sem.stats().clamped, 1);
    /// ```
    pub fn clamp_oversized(mut self, on: bool) -> Self {
        self.clamp_oversized = on;
        self
    }

    /// Whether to keep [`Stats::acquired_amounts`](crate::Stats::acquired_amounts),
    /// the total granted per dimension (default `false`).
    ///
    /// Off by default because it is the one statistic the lock-free fast
    /// path cannot keep for free: every grant adds its amounts to shared
    /// counters, one atomic add per dimension it asks for. Turn it on where
    /// throughput figures (bytes per second from two snapshots) are worth
    /// that.
    ///
    /// ```
    /// use multisem::MultiSemaphore;
    ///
    /// let sem = MultiSemaphore::builder([10, 1 << 20]).track_amounts(true).build();
    /// drop(sem.try_acquire([1, 4096]).unwrap());
    /// drop(sem.try_acquire([1, 1000]).unwrap());
    /// assert_eq!(sem.stats().acquired_amounts, [2, 5096]);
    /// ```
    pub fn track_amounts(mut self, on: bool) -> Self {
        self.track_amounts = on;
        self
    }

    /// Names for the dimensions, used by the `Display` and `Debug` of errors
    /// and of the semaphore, so that a log says "bytes" rather than
    /// "dimension 1". A `&'static` array, as a literal is: errors carry it,
    /// and stay `Clone + Eq + Send + Sync + 'static`. Names known only at
    /// run time (from a configuration) can be leaked once per semaphore,
    /// which lives as long as the program in most uses:
    /// `Box::leak(Box::new(names.map(|n| &*n.leak())))`.
    ///
    /// ```
    /// use multisem::MultiSemaphore;
    ///
    /// let sem = MultiSemaphore::builder([10, 1024]).names(&["messages", "bytes"]).build();
    /// let err = sem.try_acquire([1, 4096]).unwrap_err();
    /// assert_eq!(
    ///     err.to_string(),
    ///     "request exceeds capacity in bytes: requested 4096, capacity 1024"
    /// );
    /// assert!(format!("{err:?}").contains(r#"dim: 1 ("bytes")"#));
    /// ```
    pub fn names(mut self, names: &'static [&'static str; N]) -> Self {
        self.names = Some(names);
        self
    }

    /// For tests of this crate, not part of the API: where the capacities do
    /// not fit in one word, how many bits each dimension gets in the front
    /// word (0: none), so that small capacities exercise the reserve behind
    /// it. `build` panics if they do not fit in the word.
    #[doc(hidden)]
    pub fn front_bits(mut self, bits: [u32; N]) -> Self {
        self.front_bits = Some(bits);
        self
    }

    /// The semaphore, with every permit available.
    ///
    /// # Panics
    ///
    /// If a capacity or maximum is above
    /// [`MAX_PERMITS`](MultiSemaphore::MAX_PERMITS), or a capacity is above
    /// its maximum.
    #[track_caller]
    pub fn build(self) -> MultiSemaphore<N> {
        MultiSemaphore::from_parts(
            self.capacity,
            self.max_capacity,
            self.track_peaks,
            self.track_amounts,
            self.names,
            self.front_bits,
        )
        .with_clamp_oversized(self.clamp_oversized)
    }
}
