//! The controller: gathers completions into windows and resizes the semaphore.

use std::fmt;
use std::ops::RangeInclusive;
use std::time::{Duration, Instant};

use super::algorithm::{Algorithm, Dimension};
use super::stripes::Stripes;
use super::tracked::{Outcome, TrackedPermit};
use super::tracked_acquire::TrackedAcquire;
use super::window::Window;
use super::window_due::WindowDue;
use crate::error::{AcquireError, TryAcquireError};
use crate::permit::OwnedPermit;
use crate::semaphore::MultiSemaphore;
use crate::semaphore::Woken;
use crate::sync::{Arc, Mutex};

/// Sets a [`MultiSemaphore`]'s capacity from the outcomes its permits
/// report: each adaptive dimension follows its own [`Algorithm`], between
/// bounds the user gives. See the [module docs](super) for the whole story.
///
/// ```
/// use multisem::MultiSemaphore;
/// use multisem::adaptive::{Aimd, BandwidthDelay, Controller, Gradient2, Min, Outcome};
/// use std::{sync::Arc, time::Duration};
///
/// let sem = Arc::new(MultiSemaphore::new([16, 8 << 20]));
/// let ctl = Controller::builder(Arc::clone(&sem))
///     .limit(0, 4..=1024, Min(Aimd::default(), Gradient2::default()))
///     .limit(1, (4 << 20)..=(1 << 30), BandwidthDelay::default())
///     .window(Duration::from_millis(100), 20)
///     .build();
///
/// let permit = ctl.acquire_blocking_timeout([1, 512], Duration::from_secs(1)).unwrap();
/// permit.complete(Outcome::delivered(512));
/// assert_eq!(ctl.limits(), sem.capacity());
/// ```
pub struct Controller<const N: usize> {
    sem: Arc<MultiSemaphore<N>>,
    /// The window being filled: each thread sums its completions in its
    /// stripe, so completions on many threads at once seldom meet on a
    /// lock.
    stripes: Stripes<N>,
    /// When the window being filled may close, for the check each
    /// completion makes without a lock (see [`WindowDue`]); it holds the
    /// least a window lasts.
    due: WindowDue,
    /// The fewest samples a window holds ([`ControllerBuilder::window`]),
    /// and at least one: another completion's close may have taken this
    /// one's sample already, and a window of none would tell the
    /// algorithms nothing.
    min_samples: u64,
    state: Mutex<State<N>>,
}

struct State<const N: usize> {
    algorithms: [Option<Box<dyn Algorithm>>; N],
    bounds: [(u64, u64); N],
    /// What it last set, in the dimensions it drives (those with an
    /// algorithm); the others are the semaphore's, whoever sets them.
    limits: [u64; N],
    /// When the window being filled started: at the completion that closed
    /// the last one, or at the first completion.
    started: Option<Instant>,
    last: Option<Window>,
    windows: u64,
    resizes: u64,
}

impl<const N: usize> State<N> {
    /// The limits in force, given the semaphore's `capacity`: ours in the
    /// dimensions we drive, the capacity in the others.
    fn limits_over(&self, capacity: [u64; N]) -> [u64; N] {
        std::array::from_fn(|d| {
            if self.algorithms[d].is_some() {
                self.limits[d]
            } else {
                capacity[d]
            }
        })
    }
}

impl<const N: usize> Controller<N> {
    /// Starts configuring a controller for `sem`. A dimension given a
    /// [`limit`](ControllerBuilder::limit) is the controller's: a resize
    /// from elsewhere lasts until its next window (move its bounds with
    /// [`set_bounds`](Controller::set_bounds) instead). The others are not:
    /// it never resizes them, but for `set_bounds`, so their owners can
    /// ([`set_capacity_of`](MultiSemaphore::set_capacity_of)). A controller
    /// given no limit at all resizes nothing, and still times and counts
    /// what it tracks: a static baseline with the same types, or windows to
    /// watch ([`last_window`](Controller::last_window)) before letting it
    /// act.
    ///
    /// ```
    /// use multisem::MultiSemaphore;
    /// use multisem::adaptive::{Aimd, Controller};
    /// use std::sync::Arc;
    ///
    /// let sem = Arc::new(MultiSemaphore::new([16, 1 << 20]));
    /// let ctl = Controller::builder(sem).limit(0, 1..=256, Aimd::default()).build();
    /// assert_eq!(ctl.limits(), [16, 1 << 20]);
    /// ```
    pub fn builder(sem: Arc<MultiSemaphore<N>>) -> ControllerBuilder<N> {
        ControllerBuilder {
            sem,
            algorithms: std::array::from_fn(|_| None),
            bounds: [(0, 0); N],
            min_window: Duration::from_millis(100),
            min_samples: 16,
        }
    }

    /// The semaphore it drives.
    ///
    /// ```
    /// # use multisem::{MultiSemaphore, adaptive::{Aimd, Controller}};
    /// # use std::sync::Arc;
    /// let sem = Arc::new(MultiSemaphore::new([16, 1 << 20]));
    /// let ctl = Controller::builder(Arc::clone(&sem)).limit(0, 1..=256, Aimd::default()).build();
    /// assert!(Arc::ptr_eq(ctl.semaphore(), &sem));
    /// ```
    pub fn semaphore(&self) -> &Arc<MultiSemaphore<N>> {
        &self.sem
    }

    /// The limits in force: in each dimension it drives, what it last set
    /// (the semaphore's capacity, unless someone else resized it since: the
    /// next window sets it again); in the others, the semaphore's capacity.
    ///
    /// ```
    /// # use multisem::{MultiSemaphore, adaptive::{Aimd, Controller}};
    /// # use std::sync::Arc;
    /// let sem = Arc::new(MultiSemaphore::new([1000, 1 << 20]));
    /// // The capacity is clamped into the bounds at once.
    /// let ctl = Controller::builder(sem).limit(0, 1..=256, Aimd::default()).build();
    /// assert_eq!(ctl.limits(), [256, 1 << 20]);
    /// ```
    pub fn limits(&self) -> [u64; N] {
        self.state.lock().limits_over(self.sem.capacity())
    }

    /// The last window closed, if any: what the algorithms last saw.
    ///
    /// ```
    /// # use multisem::{MultiSemaphore, adaptive::{Aimd, Controller}};
    /// # use std::sync::Arc;
    /// # let sem = Arc::new(MultiSemaphore::new([16, 1 << 20]));
    /// let ctl = Controller::builder(sem).limit(0, 1..=256, Aimd::default()).build();
    /// assert!(ctl.last_window().is_none());
    /// ```
    pub fn last_window(&self) -> Option<Window> {
        self.state.lock().last.clone()
    }

    /// How many windows have closed (each ran the algorithms once, or up to
    /// the one that panicked: see [`Algorithm::update`]).
    ///
    /// ```
    /// # use multisem::{MultiSemaphore, adaptive::{Aimd, Controller, Outcome}};
    /// # use std::{sync::Arc, time::Duration};
    /// # let sem = Arc::new(MultiSemaphore::new([16, 1 << 20]));
    /// let ctl = Controller::builder(sem)
    ///     .limit(0, 1..=256, Aimd::default())
    ///     .window(Duration::ZERO, 1)
    ///     .build();
    /// assert_eq!(ctl.windows(), 0);
    /// ctl.try_acquire([1, 10]).unwrap().complete(Outcome::success());
    /// assert_eq!(ctl.windows(), 1);
    /// ```
    pub fn windows(&self) -> u64 {
        self.state.lock().windows
    }

    /// How many times it has resized the semaphore, at a window's close or
    /// in [`set_bounds`](Self::set_bounds); the clamp into the bounds at
    /// [`build`](ControllerBuilder::build) is not counted.
    ///
    /// ```
    /// # use multisem::{MultiSemaphore, adaptive::{Aimd, Controller}};
    /// # use std::sync::Arc;
    /// # let sem = Arc::new(MultiSemaphore::new([16, 1 << 20]));
    /// let ctl = Controller::builder(sem).limit(0, 1..=256, Aimd::default()).build();
    /// assert_eq!(ctl.resizes(), 0);
    /// ```
    pub fn resizes(&self) -> u64 {
        self.state.lock().resizes
    }

    /// Moves dimension `dim`'s bounds. The limit in force is clamped into
    /// them at once (one resize, if that changes it), and every limit the
    /// algorithms set afterwards too. For a budget set from outside while
    /// the controller learns within it: a share of a cluster-wide lease, an
    /// operator's cap, a deploy with half the memory. A dimension without an
    /// algorithm keeps its capacity, unless the new bounds exclude it: then
    /// it is clamped into them, once. As with
    /// [`ControllerBuilder::limit`], keep a byte dimension's lower bound at
    /// or above the largest request: a request above the capacity in force
    /// fails with `ExceedsCapacity` (or, with
    /// [`clamp_oversized`](crate::Builder::clamp_oversized), runs alone).
    ///
    /// ```
    /// # use multisem::{MultiSemaphore, adaptive::{Aimd, Controller}};
    /// # use std::sync::Arc;
    /// let sem = Arc::new(MultiSemaphore::new([64, 1 << 20]));
    /// let ctl = Controller::builder(Arc::clone(&sem)).limit(0, 1..=256, Aimd::default()).build();
    /// // The lease now grants this instance 16 requests at most.
    /// ctl.set_bounds(0, 1..=16).unwrap();
    /// assert_eq!(sem.capacity(), [16, 1 << 20]);
    /// ```
    ///
    /// # Errors
    ///
    /// [`BoundsError`], and nothing changes, if `dim` is not a dimension,
    /// the bounds are empty or start at 0, or their upper end is above the
    /// semaphore's [`max_capacity`](MultiSemaphore::max_capacity).
    pub fn set_bounds(&self, dim: usize, bounds: RangeInclusive<u64>) -> Result<(), BoundsError> {
        let (min, max) = check_bounds(&self.sem, dim, bounds)?;
        let mut state = self.state.lock();
        state.bounds[dim] = (min, max);
        let mut into = [None; N];
        into[dim] = Some(if state.algorithms[dim].is_some() {
            let limit = state.limits[dim].clamp(min, max);
            (limit, limit)
        } else {
            // Its owner's capacity, as the semaphore holds it under its
            // lock: an owner's resize just before is clamped, not undone.
            (min, max)
        });
        let woken = self.resize(&mut state, into);
        drop(state);
        woken.wake();
        Ok(())
    }

    /// Clamps each dimension given a range in `into` (a limit is a range
    /// of one value), and only those: a dimension it does not drive stays
    /// whatever its owner set, and one it drives comes back to its limit
    /// after a resize from elsewhere. A capacity already in its range, read
    /// without the lock, is left as it is (the clamp is nothing at that
    /// read, and a window that keeps its limit takes no lock); those
    /// outside are clamped in one resize, as the semaphore holds them under
    /// its lock. Every bound was checked against the semaphore's max
    /// capacity, so a resize cannot fail; if it ever did, the old limits
    /// would stay, and the next window would try again. Counts a resize
    /// where a capacity changed.
    ///
    /// Whom the resize grants is returned, to be woken once the caller has
    /// let go of `state`'s lock: a waker is user code, and one that calls
    /// back into the controller (completes a tracked permit, reads its
    /// limits) must not find the lock held by its own thread.
    fn resize(&self, state: &mut State<N>, into: [Option<(u64, u64)>; N]) -> Woken<'_, N> {
        let capacity = self.sem.capacity();
        let mut clamp = [None; N];
        for (dim, into) in into.into_iter().enumerate() {
            let Some((min, max)) = into else { continue };
            if (min..=max).contains(&capacity[dim]) {
                state.limits[dim] = capacity[dim];
            } else {
                clamp[dim] = Some((min, max));
            }
        }
        if clamp == [None; N] {
            return Woken::nobody(&self.sem);
        }
        let Ok((before, woken)) = self.sem.clamp_capacities_handing_back(clamp) else {
            return Woken::nobody(&self.sem);
        };
        let mut resized = false;
        for (dim, clamp) in clamp.into_iter().enumerate() {
            let Some((min, max)) = clamp else { continue };
            let after = before[dim].clamp(min, max);
            resized |= before[dim] != after;
            state.limits[dim] = after;
        }
        state.resizes += u64::from(resized);
        woken
    }

    /// Tracks a permit already acquired from the semaphore, granted now.
    ///
    /// # Panics
    ///
    /// If the permit belongs to another semaphore.
    ///
    /// ```
    /// # use multisem::{MultiSemaphore, adaptive::{Aimd, Controller, Outcome}};
    /// # use std::sync::Arc;
    /// let sem = Arc::new(MultiSemaphore::new([16, 1 << 20]));
    /// let ctl = Controller::builder(Arc::clone(&sem)).limit(0, 1..=256, Aimd::default()).build();
    /// let permit = ctl.track(sem.try_acquire_owned([1, 100]).unwrap());
    /// permit.complete(Outcome::success());
    /// ```
    #[track_caller]
    pub fn track(self: &Arc<Self>, permit: OwnedPermit<N>) -> TrackedPermit<N> {
        self.track_at(permit, Instant::now())
    }

    /// [`track`](Self::track) with the grant time supplied by the caller.
    ///
    /// # Panics
    ///
    /// If the permit belongs to another semaphore.
    ///
    /// ```
    /// # use multisem::{MultiSemaphore, adaptive::{Aimd, Controller}};
    /// # use std::{sync::Arc, time::Instant};
    /// # let sem = Arc::new(MultiSemaphore::new([16, 1 << 20]));
    /// # let ctl = Controller::builder(Arc::clone(&sem)).limit(0, 1..=256, Aimd::default()).build();
    /// let permit = ctl.track_at(sem.try_acquire_owned([1, 100]).unwrap(), Instant::now());
    /// # drop(permit);
    /// ```
    #[track_caller]
    pub fn track_at(
        self: &Arc<Self>,
        permit: OwnedPermit<N>,
        granted: Instant,
    ) -> TrackedPermit<N> {
        assert!(
            Arc::ptr_eq(permit.semaphore(), &self.sem),
            "the permit belongs to another semaphore than the controller's"
        );
        TrackedPermit::new(permit, Arc::clone(self), granted)
    }

    /// [`MultiSemaphore::try_acquire_owned`], tracked from now.
    ///
    /// ```
    /// # use multisem::{MultiSemaphore, adaptive::{Aimd, Controller, Outcome}};
    /// # use std::sync::Arc;
    /// # let sem = Arc::new(MultiSemaphore::new([16, 1 << 20]));
    /// # let ctl = Controller::builder(sem).limit(0, 1..=256, Aimd::default()).build();
    /// let permit = ctl.try_acquire([1, 100]).unwrap();
    /// permit.complete(Outcome::success());
    /// ```
    ///
    /// # Errors
    ///
    /// As [`MultiSemaphore::try_acquire`].
    pub fn try_acquire(
        self: &Arc<Self>,
        amounts: [u64; N],
    ) -> Result<TrackedPermit<N>, TryAcquireError> {
        self.try_acquire_at(amounts, Instant::now())
    }

    /// [`try_acquire`](Self::try_acquire) with the grant time supplied by
    /// the caller (a simulation's virtual clock).
    ///
    /// ```
    /// # use multisem::{MultiSemaphore, adaptive::{Aimd, Controller}};
    /// # use std::{sync::Arc, time::Instant};
    /// # let sem = Arc::new(MultiSemaphore::new([16, 1 << 20]));
    /// # let ctl = Controller::builder(sem).limit(0, 1..=256, Aimd::default()).build();
    /// let permit = ctl.try_acquire_at([1, 100], Instant::now()).unwrap();
    /// # drop(permit);
    /// ```
    ///
    /// # Errors
    ///
    /// As [`MultiSemaphore::try_acquire`].
    pub fn try_acquire_at(
        self: &Arc<Self>,
        amounts: [u64; N],
        granted: Instant,
    ) -> Result<TrackedPermit<N>, TryAcquireError> {
        let permit = self.sem.try_acquire_owned(amounts)?;
        Ok(TrackedPermit::new(permit, Arc::clone(self), granted))
    }

    /// [`MultiSemaphore::acquire_owned_blocking_timeout`], tracked from the grant.
    ///
    /// ```
    /// # use multisem::{MultiSemaphore, adaptive::{Aimd, Controller, Outcome}};
    /// # use std::{sync::Arc, time::Duration};
    /// # let sem = Arc::new(MultiSemaphore::new([16, 1 << 20]));
    /// # let ctl = Controller::builder(sem).limit(0, 1..=256, Aimd::default()).build();
    /// let permit = ctl.acquire_blocking_timeout([1, 100], Duration::from_millis(10)).unwrap();
    /// permit.complete(Outcome::success());
    /// ```
    ///
    /// # Errors
    ///
    /// As [`MultiSemaphore::acquire_blocking_timeout`].
    pub fn acquire_blocking_timeout(
        self: &Arc<Self>,
        amounts: [u64; N],
        timeout: Duration,
    ) -> Result<TrackedPermit<N>, AcquireError> {
        let permit = self.sem.acquire_owned_blocking_timeout(amounts, timeout)?;
        Ok(self.track(permit))
    }

    /// [`MultiSemaphore::acquire_owned_blocking_deadline`], tracked from the grant.
    ///
    /// ```
    /// # use multisem::{MultiSemaphore, adaptive::{Aimd, Controller, Outcome}};
    /// # use std::{sync::Arc, time::{Duration, Instant}};
    /// # let sem = Arc::new(MultiSemaphore::new([16, 1 << 20]));
    /// # let ctl = Controller::builder(sem).limit(0, 1..=256, Aimd::default()).build();
    /// let deadline = Instant::now() + Duration::from_millis(10);
    /// let permit = ctl.acquire_blocking_deadline([1, 100], deadline).unwrap();
    /// permit.complete(Outcome::success());
    /// ```
    ///
    /// # Errors
    ///
    /// As [`MultiSemaphore::acquire_blocking_deadline`].
    pub fn acquire_blocking_deadline(
        self: &Arc<Self>,
        amounts: [u64; N],
        deadline: Instant,
    ) -> Result<TrackedPermit<N>, AcquireError> {
        let permit = self
            .sem
            .acquire_owned_blocking_deadline(amounts, deadline)?;
        Ok(self.track(permit))
    }

    /// [`MultiSemaphore::acquire_owned_blocking`], tracked from the grant.
    ///
    /// ```
    /// # use multisem::{MultiSemaphore, adaptive::{Aimd, Controller, Outcome}};
    /// # use std::sync::Arc;
    /// # let sem = Arc::new(MultiSemaphore::new([16, 1 << 20]));
    /// # let ctl = Controller::builder(sem).limit(0, 1..=256, Aimd::default()).build();
    /// let permit = ctl.acquire_blocking([1, 100]).unwrap();
    /// permit.complete(Outcome::success());
    /// ```
    ///
    /// # Errors
    ///
    /// As [`MultiSemaphore::acquire_blocking`].
    ///
    /// # Blocking
    ///
    /// Parks the thread until granted or closed; in async code use
    /// [`acquire`](Self::acquire).
    pub fn acquire_blocking(
        self: &Arc<Self>,
        amounts: [u64; N],
    ) -> Result<TrackedPermit<N>, AcquireError> {
        let permit = self.sem.acquire_owned_blocking(amounts)?;
        Ok(self.track(permit))
    }

    /// [`MultiSemaphore::acquire_owned`], tracked from the grant. The future
    /// is `'static` (it holds its own handle on the controller), so a task
    /// can be spawned on it.
    ///
    /// ```
    /// # use multisem::{MultiSemaphore, adaptive::{Aimd, Controller, Outcome}};
    /// # use std::sync::Arc;
    /// # let sem = Arc::new(MultiSemaphore::new([16, 1 << 20]));
    /// # let ctl = Controller::builder(sem).limit(0, 1..=256, Aimd::default()).build();
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let permit = tokio::spawn(ctl.acquire([1, 100])).await.unwrap().unwrap();
    /// permit.complete(Outcome::success());
    /// # });
    /// ```
    ///
    /// With a timeout, give it the timer
    /// ([`with_timeout`](TrackedAcquire::with_timeout)): the wait then
    /// counts as a timeout in [`stats`](MultiSemaphore::stats), where the
    /// runtime's `timeout(.., ctl.acquire(..))` would be seen as a cancel
    /// (see [`Acquire::with_timeout`](crate::Acquire::with_timeout)).
    ///
    /// # Errors
    ///
    /// As [`MultiSemaphore::acquire_owned`].
    ///
    /// # Cancel safety
    ///
    /// As [`MultiSemaphore::acquire_owned`]: dropped before its grant, it
    /// holds nothing.
    pub fn acquire(self: &Arc<Self>, amounts: [u64; N]) -> TrackedAcquire<N> {
        // `'static`: it holds its own handle on the controller, so it can be
        // spawned, as the semaphore's `acquire_owned` can.
        TrackedAcquire::new(self.sem.acquire_owned(amounts), Arc::clone(self))
    }

    /// Counts one completion; closes the window and resizes if it is due.
    ///
    /// A completion takes its thread's stripe's lock, then reads whether
    /// the window may close. Only a completion that finds it due takes
    /// `state`'s lock, and closes the window if it holds enough samples.
    /// So `state`'s lock is taken about once a window, by the completion
    /// that closes it (and any that found it due at the same moment), and
    /// at every completion only where that check cannot say no: before the
    /// first window starts, where windows have no length, and while a
    /// window has lasted long enough but lacks samples (at low rates,
    /// where threads seldom meet).
    pub(crate) fn record(&self, granted: Instant, now: Instant, outcome: Outcome) {
        if outcome == Outcome::Ignore {
            return;
        }
        let rtt = now.saturating_duration_since(granted);
        self.stripes
            .record(rtt, outcome, self.sem.in_flight_statistic());
        if self.due.reached(now) {
            self.close_if_due(now);
        }
    }

    /// Closes the window and resizes, if it is long enough and holds enough
    /// samples; starts the first window at the first completion.
    fn close_if_due(&self, now: Instant) {
        let mut state = self.state.lock();
        let started = match state.started {
            Some(started) => started,
            None => {
                state.started = Some(now);
                self.due.set(now);
                now
            }
        };
        let elapsed = now.saturating_duration_since(started);
        if elapsed >= self.due.min_window() && self.stripes.samples() >= self.min_samples {
            let woken = self.close_window(&mut state, elapsed, now);
            drop(state);
            woken.wake();
        }
    }

    /// Runs the algorithms on the window, starts the next one and resizes;
    /// returns whom the resizes granted, to wake once `state` is unlocked.
    fn close_window(&self, state: &mut State<N>, elapsed: Duration, now: Instant) -> Woken<'_, N> {
        let (window, peak_in_flight) = self.stripes.take(elapsed);
        // The window is spent before any algorithm runs: one that panics
        // must not leave it to be fed again at the next completion.
        state.windows += 1;
        state.started = Some(now);
        self.due.set(now);
        state.last = Some(window.clone());
        let mut next = [None; N];
        for (d, next) in next.iter_mut().enumerate() {
            let (min, max) = state.bounds[d];
            let dim = Dimension {
                index: d,
                limit: state.limits[d],
                peak_in_flight: peak_in_flight[d],
                min,
                max,
            };
            if let Some(algorithm) = state.algorithms[d].as_mut() {
                let limit = algorithm.update(&window, &dim).clamp(min, max);
                *next = Some((limit, limit));
            }
        }
        self.resize(state, next)
    }
}

/// `bounds` for dimension `dim` of `sem`, if they can bound it.
fn check_bounds<const N: usize>(
    sem: &MultiSemaphore<N>,
    dim: usize,
    bounds: RangeInclusive<u64>,
) -> Result<(u64, u64), BoundsError> {
    // Before `into_inner`, which forgets that an iterated range is spent.
    let empty = bounds.is_empty();
    let (min, max) = bounds.into_inner();
    if dim >= N {
        return Err(BoundsError::NoDimension { dim, dims: N });
    }
    if min == 0 || empty {
        return Err(BoundsError::Empty { dim, min, max });
    }
    let max_capacity = sem.max_capacity()[dim];
    if max > max_capacity {
        return Err(BoundsError::AboveMaxCapacity {
            dim,
            max,
            max_capacity,
        });
    }
    Ok((min, max))
}

/// Why [`Controller::set_bounds`] (or [`ControllerBuilder::limit`], which
/// panics with it) refused a dimension's bounds.
///
/// ```
/// # use multisem::{MultiSemaphore, adaptive::{Aimd, BoundsError, Controller}};
/// # use std::sync::Arc;
/// let sem = Arc::new(MultiSemaphore::new([64, 1 << 20]));
/// let ctl = Controller::builder(sem).limit(0, 1..=256, Aimd::default()).build();
/// let err = ctl.set_bounds(0, 0..=16).unwrap_err();
/// assert!(matches!(err, BoundsError::Empty { dim: 0, min: 0, max: 16, .. }));
/// assert_eq!(err.to_string(), "dimension 0: bounds 0..=16 must be non-empty and start above 0");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BoundsError {
    /// `dim` is not one of the semaphore's `dims` dimensions.
    #[non_exhaustive]
    NoDimension {
        /// The dimension asked for.
        dim: usize,
        /// How many the semaphore has.
        dims: usize,
    },
    /// The bounds hold no limit above 0 (a limit of 0 would admit nothing,
    /// and no algorithm could learn from it).
    #[non_exhaustive]
    Empty {
        /// The dimension.
        dim: usize,
        /// The lower bound given.
        min: u64,
        /// The upper bound given.
        max: u64,
    },
    /// The upper bound is above what the semaphore can hold.
    #[non_exhaustive]
    AboveMaxCapacity {
        /// The dimension.
        dim: usize,
        /// The upper bound given.
        max: u64,
        /// The dimension's [`max_capacity`](MultiSemaphore::max_capacity).
        max_capacity: u64,
    },
}

impl fmt::Display for BoundsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::NoDimension { dim, dims } => {
                write!(f, "dimension {dim} out of range: the semaphore has {dims}")
            }
            Self::Empty { dim, min, max } => write!(
                f,
                "dimension {dim}: bounds {min}..={max} must be non-empty and start above 0"
            ),
            Self::AboveMaxCapacity {
                dim,
                max,
                max_capacity,
            } => write!(
                f,
                "dimension {dim}: upper bound {max} is above the semaphore's max capacity \
                 {max_capacity} (raise it with MultiSemaphore::builder(..).max_capacity(..))"
            ),
        }
    }
}

impl std::error::Error for BoundsError {}

/// The bounds `Debug` shows: none for a dimension without an algorithm,
/// whose owner resizes it (`set_bounds` clamps it once).
fn bounds_in_force<const N: usize>(
    algorithms: &[Option<Box<dyn Algorithm>>; N],
    bounds: &[(u64, u64); N],
) -> [Option<(u64, u64)>; N] {
    std::array::from_fn(|d| algorithms[d].as_ref().map(|_| bounds[d]))
}

/// A panic that unwinds through the controller (an algorithm's, a waker's)
/// leaves it consistent: the window is spent and no dimension is resized
/// for it (see [`Algorithm::update`]), and its lock does not poison.
impl<const N: usize> std::panic::RefUnwindSafe for Controller<N> {}

impl<const N: usize> fmt::Debug for Controller<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state.lock();
        f.debug_struct("Controller")
            .field("limits", &state.limits_over(self.sem.capacity()))
            .field("bounds", &bounds_in_force(&state.algorithms, &state.bounds))
            .field("windows", &state.windows)
            .field("resizes", &state.resizes)
            .finish_non_exhaustive()
    }
}

/// Configures a [`Controller`]; made by [`Controller::builder`].
///
/// ```
/// use multisem::MultiSemaphore;
/// use multisem::adaptive::{BandwidthDelay, Controller};
/// use std::{sync::Arc, time::Duration};
///
/// let sem = Arc::new(MultiSemaphore::new([64, 8 << 20]));
/// let ctl = Controller::builder(sem)
///     .limit(1, (1 << 20)..=(1 << 30), BandwidthDelay::default())
///     .window(Duration::from_millis(250), 50)
///     .build();
/// # drop(ctl);
/// ```
#[must_use = "a builder does nothing until `build` is called"]
pub struct ControllerBuilder<const N: usize> {
    sem: Arc<MultiSemaphore<N>>,
    algorithms: [Option<Box<dyn Algorithm>>; N],
    bounds: [(u64, u64); N],
    min_window: Duration,
    min_samples: u64,
}

impl<const N: usize> ControllerBuilder<N> {
    /// Lets `algorithm` set dimension `dim`'s limit, within `bounds`.
    ///
    /// Set a byte dimension's lower bound to at least the largest request:
    /// a request above the capacity in force fails with `ExceedsCapacity`.
    ///
    /// ```
    /// # use multisem::{MultiSemaphore, adaptive::{Aimd, Controller}};
    /// # use std::sync::Arc;
    /// # let sem = Arc::new(MultiSemaphore::new([16, 1 << 20]));
    /// let ctl = Controller::builder(sem).limit(0, 2..=512, Aimd::default()).build();
    /// # drop(ctl);
    /// ```
    ///
    /// # Panics
    ///
    /// With the [`BoundsError`]'s message, if `dim >= N`, the bounds are
    /// empty or start at 0, or their upper end is above the semaphore's
    /// [`max_capacity`](MultiSemaphore::max_capacity).
    #[track_caller]
    pub fn limit(
        mut self,
        dim: usize,
        bounds: RangeInclusive<u64>,
        algorithm: impl Algorithm,
    ) -> Self {
        let (min, max) = match check_bounds(&self.sem, dim, bounds) {
            Ok(bounds) => bounds,
            Err(err) => panic!("{err}"),
        };
        self.algorithms[dim] = Some(Box::new(algorithm));
        self.bounds[dim] = (min, max);
        self
    }

    /// How often limits may change: a window closes, and the algorithms run,
    /// once it is at least `min_duration` long **and** holds at least
    /// `min_samples` drops and successes (default 100 ms and 16).
    /// `Duration::ZERO` with 0 or 1 sample runs them, and may resize, at
    /// every completion that is not ignored, but for one whose sample a
    /// close on another thread took at the same moment: that sample is in
    /// the other's window, and no window closes empty.
    ///
    /// A window starts at the completion that closed the one before; the
    /// first starts at the first completion, which it also counts, so its
    /// rates (per second of [`Window::elapsed`](super::Window::elapsed))
    /// count `n` completions over the `n - 1` gaps between them and read
    /// `n / (n - 1)` high: 6.7% at 16 samples, for the first window only.
    /// Leaving that completion out would make every controller's first
    /// answer count for nothing, and starting the clock earlier (at the
    /// build, or at the first grant) would add a stretch in which nothing
    /// could complete, and read low by up to half.
    ///
    /// ```
    /// # use multisem::{MultiSemaphore, adaptive::{Aimd, Controller}};
    /// # use std::{sync::Arc, time::Duration};
    /// # let sem = Arc::new(MultiSemaphore::new([16, 1 << 20]));
    /// let ctl = Controller::builder(sem)
    ///     .limit(0, 2..=512, Aimd::default())
    ///     .window(Duration::from_secs(1), 100)
    ///     .build();
    /// # drop(ctl);
    /// ```
    pub fn window(mut self, min_duration: Duration, min_samples: u64) -> Self {
        self.min_window = min_duration;
        self.min_samples = min_samples;
        self
    }

    /// Builds the controller, clamping the semaphore's capacity into the
    /// bounds at once.
    ///
    /// ```
    /// # use multisem::{MultiSemaphore, adaptive::{Aimd, Controller}};
    /// # use std::sync::Arc;
    /// let sem = Arc::new(MultiSemaphore::new([1, 1 << 20]));
    /// let ctl = Controller::builder(Arc::clone(&sem)).limit(0, 8..=512, Aimd::default()).build();
    /// assert_eq!(sem.capacity(), [8, 1 << 20]);
    /// # drop(ctl);
    /// ```
    pub fn build(self) -> Arc<Controller<N>> {
        let capacity = self.sem.capacity();
        let mut bounds = self.bounds;
        for (d, bound) in bounds.iter_mut().enumerate() {
            if self.algorithms[d].is_none() {
                *bound = (capacity[d], capacity[d]);
            }
        }
        // Every driven dimension clamped in one resize, as the semaphore
        // holds it under its lock, then whom that grants woken (a waker's
        // panic re-raised then finds every clamp done).
        let clamp: [_; N] =
            std::array::from_fn(|d| self.algorithms[d].is_some().then_some(bounds[d]));
        let (before, woken) = self
            .sem
            .clamp_capacities_handing_back(clamp)
            .expect("bounds were checked against the semaphore's max capacity");
        woken.wake();
        let limits = std::array::from_fn(|d| match clamp[d] {
            Some((min, max)) => before[d].clamp(min, max),
            None => capacity[d],
        });
        Arc::new(Controller {
            sem: self.sem,
            stripes: Stripes::new(),
            due: WindowDue::new(self.min_window),
            min_samples: self.min_samples.max(1),
            state: Mutex::new(State {
                algorithms: self.algorithms,
                bounds,
                limits,
                started: None,
                last: None,
                windows: 0,
                resizes: 0,
            }),
        })
    }
}

impl<const N: usize> fmt::Debug for ControllerBuilder<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ControllerBuilder")
            .field("bounds", &bounds_in_force(&self.algorithms, &self.bounds))
            .field("min_window", &self.min_window)
            .field("min_samples", &self.min_samples)
            .finish_non_exhaustive()
    }
}
