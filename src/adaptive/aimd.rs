//! Additive increase, multiplicative decrease, on drops.

use super::algorithm::{Algorithm, Dimension, Estimate};
use super::window::Window;

/// Additive increase, multiplicative decrease: the limit shrinks by
/// [`backoff`](Self::backoff) after a window whose drop rate passed
/// [`tolerance`](Self::tolerance), and grows by [`step`](Self::step) after
/// a window without, as long as the dimension is in use (its peak in flight
/// reached [`utilization`](Self::utilization) of the limit).
///
/// It reacts to nothing but drops, so on its own it pushes the limit up
/// until the downstream sheds load: use it as the safety net beside a
/// latency-driven algorithm ([`Min`](super::Min)), or alone where the
/// downstream says "busy" early (a broker's quota, a 429).
///
/// By default it regrows at the full step all the way back to where the
/// drops began, and past it: behind a queue that refuses when full, that
/// finds the queue's edge again within a few windows, and again after each
/// back-off. [`plateau`](Self::plateau) remembers the edge and regrows
/// slowly below it, as CUBIC lingers near the window of its last loss.
///
/// ```
/// use multisem::adaptive::Aimd;
///
/// // One more request per window; 10% less after a window with drops.
/// let count = Aimd::default();
/// // For a byte dimension: 64 KiB more per window.
/// let bytes = Aimd::default().step(65536.0);
/// # let _ = (count, bytes);
/// ```
#[derive(Debug, Clone)]
pub struct Aimd {
    step: f64,
    backoff: f64,
    tolerance: f64,
    utilization: f64,
    /// `plateau`: from which share of the edge the step shrinks, and to
    /// which share of itself.
    plateau_from: f64,
    plateau_share: f64,
    /// The limit at the last back-off, until the limit passes it again.
    edge: Option<f64>,
    estimate: Estimate,
}

impl Default for Aimd {
    fn default() -> Self {
        Aimd {
            step: 1.0,
            backoff: 0.9,
            tolerance: 0.0,
            utilization: 0.5,
            plateau_from: 1.0,
            plateau_share: 1.0,
            edge: None,
            estimate: Estimate::default(),
        }
    }
}

impl Aimd {
    /// Added to the limit after a window without drops (default 1.0); 0
    /// makes a limit that only backs off, and never grows back.
    ///
    /// ```
    /// let a = multisem::adaptive::Aimd::default().step(1.0);
    /// # let _ = a;
    /// ```
    ///
    /// # Panics
    ///
    /// If `step` is negative or not finite.
    #[track_caller]
    pub fn step(mut self, step: f64) -> Self {
        assert!(
            step.is_finite() && step >= 0.0,
            "Aimd::step: {step} is not a finite amount of 0 or more"
        );
        self.step = step;
        self
    }

    /// The limit is multiplied by this after a window with drops (default 0.9).
    ///
    /// ```
    /// let a = multisem::adaptive::Aimd::default().backoff(0.5);
    /// # let _ = a;
    /// ```
    ///
    /// # Panics
    ///
    /// If `backoff` is not in `0.0..=1.0`: a drop never raises the limit.
    #[track_caller]
    pub fn backoff(mut self, backoff: f64) -> Self {
        assert!(
            (0.0..=1.0).contains(&backoff),
            "Aimd::backoff: {backoff} is not a factor in 0.0..=1.0"
        );
        self.backoff = backoff;
        self
    }

    /// The drop rate a window may have without a back-off (default 0.0: any drop).
    /// 1.0 turns the back-off off: no window's drop rate exceeds it.
    ///
    /// ```
    /// let a = multisem::adaptive::Aimd::default().tolerance(0.01);
    /// # let _ = a;
    /// ```
    ///
    /// # Panics
    ///
    /// If `tolerance` is not a rate in `0.0..=1.0`.
    #[track_caller]
    pub fn tolerance(mut self, tolerance: f64) -> Self {
        assert!(
            (0.0..=1.0).contains(&tolerance),
            "Aimd::tolerance: {tolerance} is not a drop rate in 0.0..=1.0"
        );
        self.tolerance = tolerance;
        self
    }

    /// Grow only if the peak in flight reached this share of the limit
    /// (default 0.5), so an idle limit does not climb without bound.
    ///
    /// ```
    /// let a = multisem::adaptive::Aimd::default().utilization(0.8);
    /// # let _ = a;
    /// ```
    ///
    /// # Panics
    ///
    /// If `utilization` is not a share in `0.0..=1.0`.
    #[track_caller]
    pub fn utilization(mut self, utilization: f64) -> Self {
        assert!(
            (0.0..=1.0).contains(&utilization),
            "Aimd::utilization: {utilization} is not a share in 0.0..=1.0"
        );
        self.utilization = utilization;
        self
    }

    /// After a back-off, regrow by the full step only up to `from` times
    /// the limit the drops began at (the edge), then by `share` of the step
    /// until the limit passes the edge; past it, by the full step again
    /// (the downstream has grown). Default `plateau(1.0, 1.0)`: the full
    /// step throughout.
    ///
    /// Behind a queue that refuses when it is full, the edge is where the
    /// queue overflowed: the limit comes back quickly most of the way and
    /// then lingers below the edge, where it would otherwise be back at it
    /// a few windows after each back-off and refused again (CUBIC's plateau
    /// around the window of its last loss). Each back-off sets the edge
    /// anew, so a downstream that shrank is followed down. The edge is kept
    /// until the limit passes it, however long that takes: after one
    /// transient drop, a downstream that has grown since costs one slow
    /// climb through the band (at `share` 0.1, ten busy windows a request).
    ///
    /// ```
    /// use multisem::adaptive::{Aimd, Algorithm, Dimension, Window};
    ///
    /// let mut aimd = Aimd::default().backoff(0.7).plateau(0.8, 0.25);
    /// let (mut drops, mut busy) = (Window::default(), Window::default());
    /// drops.drops = 1;
    /// busy.successes = 16;
    /// let mut dim = Dimension::default();
    /// (dim.limit, dim.max) = (100, 1000);
    /// // Drops at 100: back to 70, and 100 is the edge.
    /// dim.limit = aimd.update(&drops, &dim);
    /// assert_eq!(dim.limit, 70);
    /// // A step a window (the window used the whole limit) up to 80...
    /// for _ in 0..10 {
    ///     dim.peak_in_flight = dim.limit;
    ///     dim.limit = aimd.update(&busy, &dim);
    /// }
    /// assert_eq!(dim.limit, 80);
    /// // ...then a quarter of one: four windows for the next request.
    /// for _ in 0..4 {
    ///     dim.peak_in_flight = dim.limit;
    ///     dim.limit = aimd.update(&busy, &dim);
    /// }
    /// assert_eq!(dim.limit, 81);
    /// ```
    ///
    /// # Panics
    ///
    /// If `from` is not a share in `0.0..=1.0`, or `share` is not in
    /// `0.0..=1.0` or is 0 (the limit would never pass the edge again, and
    /// could not follow a downstream that grew).
    #[track_caller]
    pub fn plateau(mut self, from: f64, share: f64) -> Self {
        assert!(
            (0.0..=1.0).contains(&from),
            "Aimd::plateau: from {from} is not a share of the edge in 0.0..=1.0"
        );
        assert!(
            share > 0.0 && share <= 1.0,
            "Aimd::plateau: share {share} is not a share of the step in (0.0, 1.0]"
        );
        self.plateau_from = from;
        self.plateau_share = share;
        self
    }
}

impl Algorithm for Aimd {
    fn proposed(&self) -> Option<u64> {
        self.estimate.proposed()
    }

    fn update(&mut self, window: &Window, dim: &Dimension) -> u64 {
        let limit = self.estimate.current(dim.limit);
        // A rate above the tolerance (at least 0.0) means drops.
        let next = if window.drop_rate() > self.tolerance {
            self.edge = Some(limit);
            limit * self.backoff
        } else if dim.peak_in_flight as f64 >= self.utilization * dim.limit as f64 {
            let step = match self.edge {
                // Past the edge: the downstream takes more than it did.
                Some(edge) if limit >= edge => {
                    self.edge = None;
                    self.step
                }
                Some(edge) if limit >= self.plateau_from * edge => self.step * self.plateau_share,
                _ => self.step,
            };
            limit + step
        } else {
            limit
        };
        self.estimate.set(next)
    }
}
