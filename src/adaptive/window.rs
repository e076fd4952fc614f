//! What one window of completions reports to the algorithms.

use std::time::Duration;

use super::tracked::Outcome;

/// The completions of one window, summed up: what an [`Algorithm`](super::Algorithm)
/// sees when the [`Controller`](super::Controller) asks it for a new limit.
///
/// Round-trip times cover successes only: a drop's time says when the
/// caller gave up, not how long the downstream took. Ignored outcomes are
/// not counted at all.
///
/// ```
/// use multisem::adaptive::{Algorithm, Dimension, Window};
///
/// /// Halves the limit on any drop, else adds one.
/// struct Halve;
///
/// impl Algorithm for Halve {
///     fn update(&mut self, window: &Window, dim: &Dimension) -> u64 {
///         if window.drops > 0 { dim.limit / 2 } else { dim.limit + 1 }
///     }
/// }
/// # let _ = Halve;
/// ```
///
/// To test an algorithm on its own, start from [`Window::default()`] (an
/// empty window: every figure zero) and set the fields it reads; the same
/// goes for [`Dimension`](super::Dimension):
///
/// ```
/// use multisem::adaptive::{Aimd, Algorithm, Dimension, Window};
/// use std::time::Duration;
///
/// let mut window = Window::default();
/// window.elapsed = Duration::from_millis(100);
/// window.successes = 90;
/// window.drops = 10;
///
/// let mut dim = Dimension::default();
/// dim.limit = 100;
/// dim.max = 1000;
///
/// // 10% drops: AIMD backs off by its default 0.9.
/// assert_eq!(Aimd::default().update(&window, &dim), 90);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Window {
    /// How long the window lasted.
    pub elapsed: Duration,
    /// Completions marked as successes.
    pub successes: u64,
    /// Completions marked as dropped (overload: timeouts, 429/503, "busy").
    pub drops: u64,
    /// Bytes the successes delivered, as their outcomes reported.
    pub delivered_bytes: u64,
    /// The shortest round-trip time of a success, `ZERO` if none.
    pub min_rtt: Duration,
    /// The bytes delivered by the success that had [`min_rtt`](Self::min_rtt)
    /// (on a tie, the first of them to complete on one thread; between
    /// threads, any of them).
    pub min_rtt_bytes: u64,
    /// The mean round-trip time of the successes, `ZERO` if none.
    pub mean_rtt: Duration,
    /// The longest round-trip time of a success, `ZERO` if none.
    pub max_rtt: Duration,
    /// The mean round-trip time of the smallest successes, `ZERO` if none:
    /// those in the smallest power-of-two size classes that together hold
    /// at least a quarter of the successes (all of them where every size is
    /// alike, or no bytes are reported). Their round trip is mostly the
    /// downstream's per-request delay, not their own transfer's.
    pub small_mean_rtt: Duration,
    /// The standard error of [`small_mean_rtt`](Self::small_mean_rtt): the
    /// small successes' standard deviation over the square root of their
    /// number (`ZERO` for fewer than two).
    pub small_rtt_error: Duration,
    /// The byte-weighted mean size of the successes' deliveries (the sum of
    /// squared sizes over the sum of sizes): the size of the request a
    /// delivered byte typically belongs to. 0 if nothing was delivered.
    pub weighted_size: u64,
}

impl Window {
    /// Drops as a share of successes and drops, 0.0 for an empty window.
    ///
    /// ```
    /// # use multisem::adaptive::Window;
    /// # fn f(window: &Window) -> bool {
    /// window.drop_rate() > 0.01
    /// # }
    /// # let _ = f;
    /// ```
    pub fn drop_rate(&self) -> f64 {
        // In f64: the fields are public, and their sum may not fit a u64.
        let answered = self.successes as f64 + self.drops as f64;
        if answered == 0.0 {
            0.0
        } else {
            self.drops as f64 / answered
        }
    }

    /// Delivered bytes per second over the window; 0.0 for a window whose
    /// `elapsed` is zero, which gives no rate (a controller built with
    /// `window(Duration::ZERO, ..)` can close one).
    ///
    /// ```
    /// # use multisem::adaptive::Window;
    /// # fn f(window: &Window) -> f64 {
    /// window.delivery_rate() / (1 << 20) as f64 // MiB/s
    /// # }
    /// # let _ = f;
    /// ```
    pub fn delivery_rate(&self) -> f64 {
        self.per_second(self.delivered_bytes)
    }

    /// Successes per second over the window; 0.0 for a window whose
    /// `elapsed` is zero, as [`delivery_rate`](Self::delivery_rate).
    ///
    /// ```
    /// # use multisem::adaptive::Window;
    /// # use std::time::Duration;
    /// let mut window = Window::default();
    /// (window.successes, window.elapsed) = (30, Duration::from_millis(100));
    /// assert_eq!(window.success_rate(), 300.0);
    /// ```
    pub fn success_rate(&self) -> f64 {
        self.per_second(self.successes)
    }

    /// `amount` per second of the window; 0.0 for one too short for the
    /// clock.
    fn per_second(&self, amount: u64) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            amount as f64 / secs
        } else {
            0.0
        }
    }
}

/// Running sums for the window being filled.
#[derive(Debug, Clone, Default)]
pub(crate) struct Accumulator {
    successes: u64,
    drops: u64,
    delivered: u64,
    rtt_sum_ns: u128,
    min_rtt: Option<(Duration, u64)>,
    max_rtt: Duration,
    /// The successes' round trips by power-of-two size class, for
    /// `small_mean_rtt` and `small_rtt_error`.
    classes: SizeClasses,
    /// Sum of squared delivered sizes, in f64: a u64 square overflows at 4 GiB.
    size_squares: f64,
    /// The sum of delivered sizes in f64, unsaturated, for `weighted_size`.
    delivered_f64: f64,
}

impl Accumulator {
    /// Counts one outcome; an ignored one counts for nothing.
    pub(crate) fn record(&mut self, rtt: Duration, outcome: Outcome) {
        match outcome {
            Outcome::Ignore => {}
            Outcome::Dropped => self.drops = self.drops.saturating_add(1),
            Outcome::Success { delivered } => {
                let bytes = delivered.unwrap_or(0);
                self.successes = self.successes.saturating_add(1);
                self.delivered = self.delivered.saturating_add(bytes);
                self.size_squares += (bytes as f64) * (bytes as f64);
                self.delivered_f64 += bytes as f64;
                let rtt_ns = rtt.as_nanos();
                self.rtt_sum_ns = self.rtt_sum_ns.saturating_add(rtt_ns);
                if self.min_rtt.is_none_or(|(min, _)| rtt < min) {
                    self.min_rtt = Some((rtt, bytes));
                }
                self.max_rtt = self.max_rtt.max(rtt);
                self.classes.record(bytes, rtt_ns as f64);
            }
        }
    }

    pub(crate) fn samples(&self) -> u64 {
        self.successes.saturating_add(self.drops)
    }

    /// Adds `other`'s completions to these, as if each had been recorded
    /// here: exactly in the integer sums, within rounding in the float
    /// ones (and exactly where either side is empty). Of two equal
    /// shortest round trips, this one's stays.
    pub(crate) fn merge(&mut self, other: &Self) {
        self.successes = self.successes.saturating_add(other.successes);
        self.drops = self.drops.saturating_add(other.drops);
        self.delivered = self.delivered.saturating_add(other.delivered);
        self.rtt_sum_ns = self.rtt_sum_ns.saturating_add(other.rtt_sum_ns);
        if let Some((rtt, bytes)) = other.min_rtt {
            if self.min_rtt.is_none_or(|(min, _)| rtt < min) {
                self.min_rtt = Some((rtt, bytes));
            }
        }
        self.max_rtt = self.max_rtt.max(other.max_rtt);
        self.classes.merge(&other.classes);
        self.size_squares += other.size_squares;
        self.delivered_f64 += other.delivered_f64;
    }

    pub(crate) fn finish(&self, elapsed: Duration) -> Window {
        let mean_rtt = match self.successes {
            0 => Duration::ZERO,
            n => {
                let ns = self.rtt_sum_ns / u128::from(n);
                Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
            }
        };
        let weighted_size = if self.delivered == 0 {
            0
        } else {
            // Over the same squares' sizes in f64: `delivered` saturates.
            (self.size_squares / self.delivered_f64) as u64
        };
        let (min_rtt, min_rtt_bytes) = self.min_rtt.unwrap_or((Duration::ZERO, 0));
        let (small_mean_rtt, small_rtt_error) = self.classes.small_rtt(self.successes);
        Window {
            elapsed,
            successes: self.successes,
            drops: self.drops,
            delivered_bytes: self.delivered,
            min_rtt,
            min_rtt_bytes,
            mean_rtt,
            max_rtt: self.max_rtt,
            small_mean_rtt,
            small_rtt_error,
            weighted_size,
        }
    }
}

/// Successes and their round trips by power-of-two size class: class `c`
/// holds the sizes with `c` significant bits (class 0 the size 0).
#[derive(Debug, Clone)]
struct SizeClasses([ClassSums; 65]);

/// One size class's successes, and the sums of their round trips and of
/// their squares, in nanoseconds (no division on the completion's path).
/// The sums are `f64`s: exact up to 2^53 ns (104 days of round trips in
/// one class and window), and beyond that off by a part in 10^16, where an
/// integer the size of a stripe's other sums would saturate at 2^64 ns
/// (200,000 streams of three days ending in one window: a reviewer's case).
#[derive(Debug, Clone, Copy, Default)]
struct ClassSums {
    successes: u64,
    rtt_ns: f64,
    rtt_ns_squares: f64,
}

impl Default for SizeClasses {
    fn default() -> Self {
        Self([ClassSums::default(); 65])
    }
}

impl SizeClasses {
    fn record(&mut self, bytes: u64, rtt_ns: f64) {
        let class = &mut self.0[(u64::BITS - bytes.leading_zeros()) as usize];
        class.successes = class.successes.saturating_add(1);
        class.rtt_ns += rtt_ns;
        class.rtt_ns_squares += rtt_ns * rtt_ns;
    }

    fn merge(&mut self, other: &Self) {
        for (class, other) in self.0.iter_mut().zip(&other.0) {
            class.successes = class.successes.saturating_add(other.successes);
            class.rtt_ns += other.rtt_ns;
            class.rtt_ns_squares += other.rtt_ns_squares;
        }
    }

    /// The mean round trip of the smallest classes that together hold at
    /// least a quarter of the `successes`, and its standard error (`ZERO`s
    /// if none; the error is `ZERO` for a single success).
    fn small_rtt(&self, successes: u64) -> (Duration, Duration) {
        let enough = successes.div_ceil(SMALL_SHARE).max(1);
        let (mut n, mut rtt_ns, mut squares) = (0u64, 0f64, 0f64);
        for class in &self.0 {
            n = n.saturating_add(class.successes);
            rtt_ns += class.rtt_ns;
            squares += class.rtt_ns_squares;
            if n >= enough {
                let mean = rtt_ns / n as f64;
                // The sample variance, never below 0 through rounding. The
                // sums' cancellation can leave a spurious error of a few
                // nanoseconds (a reviewer found 2.8 ns for a million equal
                // round trips of 1.1 s): nothing beside the round trips.
                let variance = if n > 1 {
                    ((squares - n as f64 * mean * mean) / (n as f64 - 1.0)).max(0.0)
                } else {
                    0.0
                };
                let error = (variance / n as f64).sqrt();
                return (nanos(mean), nanos(error));
            }
        }
        (Duration::ZERO, Duration::ZERO)
    }
}

/// Nanoseconds as a `Duration`, rounded, saturating (0 for NaN).
fn nanos(nanos: f64) -> Duration {
    // `as` saturates, and takes NaN to 0.
    Duration::from_nanos(nanos.round() as u64)
}

/// The small requests are the smallest `1 / SMALL_SHARE` of a window's
/// successes, by whole size classes.
const SMALL_SHARE: u64 = 4;
