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
    estimate: Estimate,
}

impl Default for Aimd {
    fn default() -> Self {
        Aimd {
            step: 1.0,
            backoff: 0.9,
            tolerance: 0.0,
            utilization: 0.5,
            estimate: Estimate::default(),
        }
    }
}

impl Aimd {
    /// Added to the limit after a window without drops (default 1.0).
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
}

impl Algorithm for Aimd {
    fn update(&mut self, window: &Window, dim: &Dimension) -> u64 {
        let limit = self.estimate.current(dim.limit);
        // A rate above the tolerance (at least 0.0) means drops.
        let next = if window.drop_rate() > self.tolerance {
            limit * self.backoff
        } else if dim.peak_in_flight as f64 >= self.utilization * dim.limit as f64 {
            limit + self.step
        } else {
            limit
        };
        self.estimate.set(next)
    }
}
