//! Netflix's Gradient2: the short-term round-trip time against the long-term one.

use super::algorithm::{Algorithm, Dimension, Estimate};
use super::window::Window;

/// The gradient algorithm of Netflix's concurrency-limits (`Gradient2Limit`):
/// it compares the window's mean round-trip time (short term) with an
/// exponential average over many windows (long term). While the short term
/// stays within [`tolerance`](Self::tolerance) times the long term, the limit
/// grows by a queue allowance of √limit; beyond it, the limit never grows:
/// it shrinks in proportion (at most by half a step) where that cut
/// outweighs the allowance, and holds just past the tolerance. Every step is
/// smoothed. A window that used less than [`utilization`](Self::utilization)
/// of the limit changes nothing: as in Netflix's, a caller that did not
/// use the limit says nothing about it.
///
/// Use it for a request count whose latency grows as requests queue. With
/// mixed request sizes the round-trip times are mixed too, which blurs the
/// signal; bound the bytes with [`BandwidthDelay`](super::BandwidthDelay)
/// beside it.
///
/// ```
/// use multisem::adaptive::Gradient2;
///
/// let count = Gradient2::default().tolerance(2.0);
/// # let _ = count;
/// ```
#[derive(Debug, Clone)]
pub struct Gradient2 {
    tolerance: f64,
    smoothing: f64,
    long_windows: u32,
    utilization: f64,
    long_rtt: Option<f64>,
    estimate: Estimate,
}

impl Default for Gradient2 {
    fn default() -> Self {
        Gradient2 {
            tolerance: 1.5,
            smoothing: 0.2,
            long_windows: 20,
            utilization: 0.5,
            long_rtt: None,
            estimate: Estimate::default(),
        }
    }
}

impl Gradient2 {
    /// How far the short-term time may exceed the long-term one before the
    /// limit shrinks (default 1.5).
    ///
    /// ```
    /// let a = multisem::adaptive::Gradient2::default().tolerance(2.0);
    /// # let _ = a;
    /// ```
    ///
    /// # Panics
    ///
    /// If `tolerance` is below 1.0 or not finite (below 1.0 the limit would
    /// shrink while the round-trip time stays at its long-term level).
    #[track_caller]
    pub fn tolerance(mut self, tolerance: f64) -> Self {
        assert!(
            tolerance.is_finite() && tolerance >= 1.0,
            "Gradient2::tolerance: {tolerance} is not a finite factor of 1.0 or more"
        );
        self.tolerance = tolerance;
        self
    }

    /// Weight of each step's proposal against the limit in force (default 0.2).
    ///
    /// ```
    /// let a = multisem::adaptive::Gradient2::default().smoothing(0.1);
    /// # let _ = a;
    /// ```
    ///
    /// # Panics
    ///
    /// If `smoothing` is not in `0.0..=1.0`, or is 0.0 (the limit would
    /// never move).
    #[track_caller]
    pub fn smoothing(mut self, smoothing: f64) -> Self {
        assert!(
            smoothing > 0.0 && smoothing <= 1.0,
            "Gradient2::smoothing: {smoothing} is not a weight above 0.0 and at most 1.0"
        );
        self.smoothing = smoothing;
        self
    }

    /// Windows the long-term average spans (default 20).
    ///
    /// The limit can shrink only where `tolerance × 2 / (long_windows + 1)`
    /// is below 1 (the long term's share of a window, times the tolerance):
    /// with the default tolerance, 3 windows or more. A long term of 1 or 2
    /// windows follows the short term so closely that the limit never
    /// shrinks, however the round trip rises.
    ///
    /// ```
    /// let a = multisem::adaptive::Gradient2::default().long_windows(50);
    /// # let _ = a;
    /// ```
    ///
    /// # Panics
    ///
    /// If `long_windows` is 0.
    #[track_caller]
    pub fn long_windows(mut self, long_windows: u32) -> Self {
        assert!(
            long_windows > 0,
            "Gradient2::long_windows: the long term spans at least 1 window"
        );
        self.long_windows = long_windows;
        self
    }

    /// Change the limit only if the peak in flight reached this share of
    /// it (default 0.5): below it, the window neither grows nor shrinks it.
    ///
    /// ```
    /// let a = multisem::adaptive::Gradient2::default().utilization(0.8);
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
            "Gradient2::utilization: {utilization} is not a share in 0.0..=1.0"
        );
        self.utilization = utilization;
        self
    }
}

impl Gradient2 {
    /// The long-term round-trip time in seconds the last update used
    /// (`None` before any window with a success).
    ///
    /// ```
    /// use multisem::adaptive::Gradient2;
    ///
    /// assert_eq!(Gradient2::default().long_rtt(), None);
    /// ```
    pub fn long_rtt(&self) -> Option<f64> {
        self.long_rtt
    }
}

impl Algorithm for Gradient2 {
    fn proposed(&self) -> Option<u64> {
        self.estimate.proposed()
    }

    fn update(&mut self, window: &Window, dim: &Dimension) -> u64 {
        let limit = self.estimate.current(dim.limit);
        if window.successes == 0 {
            return self.estimate.set(limit);
        }
        let short = window.mean_rtt.as_secs_f64();
        let weight = 2.0 / (f64::from(self.long_windows) + 1.0);
        let mut long = match self.long_rtt {
            Some(long) => long + weight * (short - long),
            None => short,
        };
        // As in Gradient2: a long term over twice the short term is stale
        // (the downstream got faster); let it decay faster.
        if long > 2.0 * short {
            long *= 0.95;
        }
        self.long_rtt = Some(long);
        if (dim.peak_in_flight as f64) < self.utilization * dim.limit as f64 {
            // Not using the limit: no evidence for growing it.
            return self.estimate.set(limit);
        }
        let gradient = if short > 0.0 {
            (self.tolerance * long / short).clamp(0.5, 1.0)
        } else {
            1.0
        };
        let mut proposal = limit * gradient + limit.sqrt();
        if gradient < 1.0 {
            // Beyond the tolerance the limit never grows, where √limit
            // outweighs the cut (0.95 × 100 + 10 > 100; below a limit of 4,
            // even the largest cut, half the limit).
            proposal = proposal.min(limit);
        }
        if proposal == limit {
            // A hold keeps the limit exactly: the blend below can round to
            // just under it (`23 × 0.7 + 23 × 0.3` < 23), which the estimate
            // would floor to a unit less.
            return self.estimate.set(limit);
        }
        self.estimate
            .set(limit * (1.0 - self.smoothing) + proposal * self.smoothing)
    }
}
