//! A permit that remembers when it was granted, and what its request's outcome was.

use std::fmt;
use std::time::Instant;

use super::controller::Controller;
use crate::error::{ReleaseError, TryAcquireError};
use crate::permit::OwnedPermit;
use crate::sync::Arc;

/// What became of a request, as its caller reports it to the
/// [`Controller`] through [`TrackedPermit::complete`].
///
/// ```
/// use multisem::adaptive::Outcome;
///
/// let ok = Outcome::delivered(4096);            // a success that moved 4 KiB
/// let busy = Outcome::Dropped;                  // a timeout, a 429 or 503, "busy"
/// let unrelated = Outcome::Ignore;              // e.g. a malformed request
/// assert_ne!(ok, busy);
/// # let _ = unrelated;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Outcome {
    /// The request succeeded; `delivered` is the bytes it moved, if the
    /// caller counts them (a byte limit needs them).
    Success {
        /// Bytes delivered, if known.
        delivered: Option<u64>,
    },
    /// The downstream was overloaded: the request timed out or was refused
    /// as too much (429, 503, a broker's "busy"). Each permit that reports
    /// it is a drop: a batch whose messages each report their own outcome
    /// counts one refused batch as many drops as it has messages (split
    /// parts, [`TrackedPermit::split`]); report once per request sent where
    /// that is what the downstream refused.
    Dropped,
    /// The request failed for a reason unrelated to load: not a sample.
    Ignore,
}

impl Outcome {
    /// A success without a byte count.
    ///
    /// ```
    /// use multisem::adaptive::Outcome;
    /// assert_eq!(Outcome::success(), Outcome::Success { delivered: None });
    /// ```
    pub const fn success() -> Self {
        Outcome::Success { delivered: None }
    }

    /// A success that delivered `bytes`.
    ///
    /// ```
    /// use multisem::adaptive::Outcome;
    /// assert_eq!(Outcome::delivered(10), Outcome::Success { delivered: Some(10) });
    /// ```
    pub const fn delivered(bytes: u64) -> Self {
        Outcome::Success {
            delivered: Some(bytes),
        }
    }
}

/// An [`OwnedPermit`] that notes when it was granted, made by a
/// [`Controller`]. [`complete`](Self::complete) reports the request's
/// outcome and round-trip time to the controller and returns the permits.
///
/// **Dropped without an outcome, it counts as [`Outcome::Ignore`]:** the
/// permits go back and the controller takes no sample (a request abandoned
/// for reasons of the caller's own says nothing about the downstream). Mark
/// timeouts explicitly with [`Outcome::Dropped`].
///
/// ```
/// use multisem::MultiSemaphore;
/// use multisem::adaptive::{Aimd, Controller, Outcome};
/// use std::sync::Arc;
///
/// let sem = Arc::new(MultiSemaphore::new([4, 1 << 20]));
/// let ctl = Controller::builder(Arc::clone(&sem)).limit(0, 1..=64, Aimd::default()).build();
/// let permit = ctl.try_acquire([1, 1000]).unwrap();
/// std::thread::spawn(move || permit.complete(Outcome::Dropped)).join().unwrap();
/// assert_eq!(sem.available(), sem.capacity());
/// ```
#[must_use = "the permits are returned as soon as this is dropped"]
#[clippy::has_significant_drop]
pub struct TrackedPermit<const N: usize> {
    permit: OwnedPermit<N>,
    controller: Arc<Controller<N>>,
    granted: Instant,
}

impl<const N: usize> TrackedPermit<N> {
    pub(crate) fn new(
        permit: OwnedPermit<N>,
        controller: Arc<Controller<N>>,
        granted: Instant,
    ) -> Self {
        TrackedPermit {
            permit,
            controller,
            granted,
        }
    }

    /// The amounts held.
    ///
    /// ```
    /// # use multisem::{MultiSemaphore, adaptive::{Aimd, Controller}};
    /// # use std::sync::Arc;
    /// # let sem = Arc::new(MultiSemaphore::new([4, 1 << 20]));
    /// # let ctl = Controller::builder(sem).limit(0, 1..=64, Aimd::default()).build();
    /// let permit = ctl.try_acquire([1, 1000]).unwrap();
    /// assert_eq!(permit.amounts(), [1, 1000]);
    /// ```
    pub fn amounts(&self) -> [u64; N] {
        self.permit.amounts()
    }

    /// [`OwnedPermit::try_grow`]: takes `amounts` more, all or nothing,
    /// without waiting, for a size known late. The round trip is still
    /// timed from the first grant.
    ///
    /// ```
    /// # use multisem::{MultiSemaphore, adaptive::{Aimd, Controller, Outcome}};
    /// # use std::sync::Arc;
    /// # let sem = Arc::new(MultiSemaphore::new([4, 1 << 20]));
    /// # let ctl = Controller::builder(sem).limit(0, 1..=64, Aimd::default()).build();
    /// let mut permit = ctl.try_acquire([1, 1000]).unwrap(); // the size we guessed
    /// permit.try_grow([0, 500]).unwrap();                   // the size it turned out to be
    /// assert_eq!(permit.amounts(), [1, 1500]);
    /// permit.complete(Outcome::delivered(1500));
    /// ```
    ///
    /// # Errors
    ///
    /// As [`OwnedPermit::try_grow`]; then the permit is unchanged.
    pub fn try_grow(&mut self, amounts: [u64; N]) -> Result<(), TryAcquireError> {
        self.permit.try_grow(amounts)
    }

    /// [`OwnedPermit::release`]: gives `amounts` back early (a part of the
    /// request already delivered), keeping the rest and the tracking.
    ///
    /// ```
    /// # use multisem::{MultiSemaphore, adaptive::{Aimd, Controller, Outcome}};
    /// # use std::sync::Arc;
    /// # let sem = Arc::new(MultiSemaphore::new([4, 1 << 20]));
    /// # let ctl = Controller::builder(sem).limit(0, 1..=64, Aimd::default()).build();
    /// let mut permit = ctl.try_acquire([1, 1000]).unwrap();
    /// permit.release([0, 600]).unwrap();
    /// assert_eq!(permit.amounts(), [1, 400]);
    /// permit.complete(Outcome::delivered(1000));
    /// ```
    ///
    /// # Errors
    ///
    /// As [`OwnedPermit::release`]; then the permit is unchanged.
    pub fn release(&mut self, amounts: [u64; N]) -> Result<(), ReleaseError> {
        self.permit.release(amounts)
    }

    /// As [`OwnedPermit::shrink_to`]: keeps at most `amounts` in each
    /// dimension and gives the rest back at once.
    pub fn shrink_to(&mut self, amounts: [u64; N]) {
        self.permit.shrink_to(amounts);
    }

    /// [`OwnedPermit::split`]: moves `amounts` into a new tracked permit,
    /// or returns `None` (changing nothing) if this one holds less. The part
    /// keeps this permit's grant time and reports an outcome of its own: a
    /// batch acquired at once whose messages complete one by one gives the
    /// controller one sample per message, each timed from the batch's grant.
    ///
    /// ```
    /// # use multisem::{MultiSemaphore, adaptive::{Aimd, Controller, Outcome}};
    /// # use std::sync::Arc;
    /// # let sem = Arc::new(MultiSemaphore::new([16, 1 << 20]));
    /// # let ctl = Controller::builder(sem).limit(0, 1..=64, Aimd::default()).build();
    /// let mut batch = ctl.try_acquire([3, 3000]).unwrap();
    /// let first = batch.split([1, 1000]).unwrap();
    /// assert_eq!((batch.amounts(), first.amounts()), ([2, 2000], [1, 1000]));
    /// assert_eq!(first.granted(), batch.granted());
    /// first.complete(Outcome::delivered(1000)); // the first message is acknowledged
    /// batch.complete(Outcome::delivered(2000)); // then the other two
    /// ```
    #[must_use = "the split-off permit is returned as soon as this is dropped"]
    pub fn split(&mut self, amounts: [u64; N]) -> Option<Self> {
        let part = self.permit.split(amounts)?;
        Some(self.part(part))
    }

    /// [`OwnedPermit::split_up_to`]: as [`split`](Self::split), but never
    /// fails: the part takes, in each dimension, `amounts` or all this one
    /// holds if less.
    ///
    /// ```
    /// # use multisem::{MultiSemaphore, adaptive::{Aimd, Controller, Outcome}};
    /// # use std::sync::Arc;
    /// # let sem = Arc::new(MultiSemaphore::builder([16, 1000]).clamp_oversized(true).build());
    /// # let ctl = Controller::builder(sem).limit(0, 1..=64, Aimd::default()).build();
    /// let mut batch = ctl.try_acquire([2, 1500]).unwrap(); // clamped to 1000 bytes
    /// let first = batch.split_up_to([1, 800]);
    /// assert_eq!((first.amounts(), batch.amounts()), ([1, 800], [1, 200]));
    /// first.complete(Outcome::delivered(800));
    /// batch.complete(Outcome::delivered(700));
    /// ```
    pub fn split_up_to(&mut self, amounts: [u64; N]) -> Self {
        let part = self.permit.split_up_to(amounts);
        self.part(part)
    }

    /// A part split off this permit: tracked by the same controller, timed
    /// from the same grant.
    fn part(&self, permit: OwnedPermit<N>) -> Self {
        TrackedPermit::new(permit, Arc::clone(&self.controller), self.granted)
    }

    /// [`OwnedPermit::merge`]: moves everything `other` holds into this
    /// permit, which completes as one request, timed from its own grant.
    /// `other`'s tracking ends without a sample, as its drop without an
    /// outcome would.
    ///
    /// ```
    /// # use multisem::{MultiSemaphore, adaptive::{Aimd, Controller, Outcome}};
    /// # use std::sync::Arc;
    /// # let sem = Arc::new(MultiSemaphore::new([16, 1 << 20]));
    /// # let ctl = Controller::builder(sem).limit(0, 1..=64, Aimd::default()).build();
    /// let mut first = ctl.try_acquire([1, 1000]).unwrap();
    /// first.merge(ctl.try_acquire([1, 500]).unwrap()); // sent as one request
    /// assert_eq!(first.amounts(), [2, 1500]);
    /// first.complete(Outcome::delivered(1500));
    /// ```
    ///
    /// # Panics
    ///
    /// If the permits come from different semaphores.
    #[track_caller]
    pub fn merge(&mut self, other: Self) {
        self.permit.merge(other.permit);
    }

    /// When the round trip's clock started: the grant (or the hand-over to
    /// [`Controller::track`]), or the last [`restart`](Self::restart) or
    /// [`report`](Self::report).
    ///
    /// ```
    /// # use multisem::{MultiSemaphore, adaptive::{Aimd, Controller}};
    /// # use std::sync::Arc;
    /// # let sem = Arc::new(MultiSemaphore::new([4, 1 << 20]));
    /// # let ctl = Controller::builder(sem).limit(0, 1..=64, Aimd::default()).build();
    /// let permit = ctl.try_acquire([1, 1000]).unwrap();
    /// assert!(permit.granted() <= std::time::Instant::now());
    /// ```
    pub fn granted(&self) -> Instant {
        self.granted
    }

    /// Starts the round trip's clock again, now: for a permit acquired
    /// before its request leaves (a message that waits in a batch, a
    /// connection to open), so that the controller times the downstream,
    /// not the wait before it.
    ///
    /// ```
    /// # use multisem::{MultiSemaphore, adaptive::{Aimd, Controller, Outcome}};
    /// # use std::sync::Arc;
    /// # let sem = Arc::new(MultiSemaphore::new([16, 1 << 20]));
    /// # let ctl = Controller::builder(sem).limit(0, 1..=64, Aimd::default()).build();
    /// let mut permit = ctl.try_acquire([1, 1000]).unwrap(); // admitted into a batch
    /// // ... the batch fills, then leaves:
    /// permit.restart();
    /// permit.complete(Outcome::delivered(1000)); // timed from the send
    /// ```
    pub fn restart(&mut self) {
        self.restart_at(Instant::now());
    }

    /// [`restart`](Self::restart) at a time the caller supplies.
    pub fn restart_at(&mut self, now: Instant) {
        self.granted = now;
    }

    /// Reports `outcome` for the attempt so far, timed from the grant (or
    /// the last restart) to now, and keeps the permits for another attempt,
    /// timed anew from now: a request the downstream refused as busy
    /// (report [`Outcome::Dropped`]) and that the caller retries with the
    /// permit it holds. Each report is a sample, as a completion is (but
    /// for [`Outcome::Ignore`], which only restarts the clock).
    ///
    /// ```
    /// # use multisem::{MultiSemaphore, adaptive::{Aimd, Controller, Outcome}};
    /// # use std::sync::Arc;
    /// # let sem = Arc::new(MultiSemaphore::new([16, 1 << 20]));
    /// # let ctl = Controller::builder(sem).limit(0, 1..=64, Aimd::default()).build();
    /// let mut permit = ctl.try_acquire([1, 1000]).unwrap();
    /// // ... the broker answers "busy":
    /// permit.report(Outcome::Dropped);
    /// // ... sent again, and acknowledged:
    /// permit.complete(Outcome::delivered(1000));
    /// ```
    pub fn report(&mut self, outcome: Outcome) {
        self.report_at(outcome, Instant::now());
    }

    /// [`report`](Self::report) at a time the caller supplies. A `now`
    /// before the clock's start counts as a round trip of zero, and leaves
    /// the clock where it was.
    pub fn report_at(&mut self, outcome: Outcome, now: Instant) {
        // The clock restarts before the sample goes in: the window it may
        // close runs the algorithms, and one that panics must not leave the
        // next attempt timed from the start of this one.
        let granted = self.granted;
        self.granted = granted.max(now);
        self.controller.record(granted, now, outcome);
    }

    /// Reports `outcome`, timed from the grant (or the last
    /// [`restart`](Self::restart) or [`report`](Self::report)) to now, and
    /// returns the permits.
    ///
    /// ```
    /// # use multisem::{MultiSemaphore, adaptive::{Aimd, Controller, Outcome}};
    /// # use std::sync::Arc;
    /// # let sem = Arc::new(MultiSemaphore::new([4, 1 << 20]));
    /// # let ctl = Controller::builder(sem).limit(0, 1..=64, Aimd::default()).build();
    /// let permit = ctl.try_acquire([1, 1000]).unwrap();
    /// permit.complete(Outcome::delivered(1000));
    /// ```
    pub fn complete(self, outcome: Outcome) {
        self.complete_at(outcome, Instant::now());
    }

    /// [`complete`](Self::complete) at a time the caller supplies (a
    /// simulation's virtual clock). A `now` before the grant counts as a
    /// round trip of zero. Give every completion (and report) times of one
    /// clock, in order: a window starts at the completion or report that
    /// closed the last, so a `now` far ahead of the others makes later
    /// windows read no elapsed time (and, where windows have a length,
    /// close none) until their times pass it.
    ///
    /// ```
    /// # use multisem::{MultiSemaphore, adaptive::{Aimd, Controller, Outcome}};
    /// # use std::{sync::Arc, time::{Duration, Instant}};
    /// # let sem = Arc::new(MultiSemaphore::new([4, 1 << 20]));
    /// # let ctl = Controller::builder(sem).limit(0, 1..=64, Aimd::default()).build();
    /// let start = Instant::now();
    /// let permit = ctl.try_acquire_at([1, 1000], start).unwrap();
    /// permit.complete_at(Outcome::success(), start + Duration::from_millis(5));
    /// ```
    pub fn complete_at(self, outcome: Outcome, now: Instant) {
        // Record before the permits go back, so the in-flight figure the
        // controller reads includes this request.
        self.controller.record(self.granted, now, outcome);
    }

    /// Gives up tracking: the plain permit, with no sample taken.
    ///
    /// ```
    /// # use multisem::{MultiSemaphore, adaptive::{Aimd, Controller}};
    /// # use std::sync::Arc;
    /// # let sem = Arc::new(MultiSemaphore::new([4, 1 << 20]));
    /// # let ctl = Controller::builder(sem).limit(0, 1..=64, Aimd::default()).build();
    /// let permit = ctl.try_acquire([1, 1000]).unwrap().into_permit();
    /// assert_eq!(permit.amounts(), [1, 1000]);
    /// ```
    pub fn into_permit(self) -> OwnedPermit<N> {
        self.permit
    }
}

impl<const N: usize> fmt::Debug for TrackedPermit<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrackedPermit")
            .field("amounts", &self.permit.amounts())
            .field("granted", &self.granted)
            .finish()
    }
}
