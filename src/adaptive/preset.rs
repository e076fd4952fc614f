//! The configuration measured against the oracle: the count by Little's law,
//! the bytes by the bandwidth-delay product, 25 ms windows.

use std::ops::RangeInclusive;
use std::time::Duration;

use super::aimd::Aimd;
use super::algorithm::Min;
use super::bandwidth_delay::BandwidthDelay;
use super::controller::ControllerBuilder;

/// The preset's window: a limit may change every 25 ms (and 16 samples).
/// A window in which a queue stood is what makes [`BandwidthDelay`] drain,
/// and only a window that began after the downstream slowed can show one;
/// at the builder's default 100 ms that is 100 to 200 ms late, and the
/// requests caught in the queue meanwhile were over 1% of a 10 s phase in
/// the simulation (README, "adaptive").
pub const WINDOW: Duration = Duration::from_millis(25);

/// The preset's minimum samples per window.
pub const MIN_SAMPLES: u64 = 16;

/// Gives a [`BandwidthDelay`] filters that span, in 25 ms windows, the time
/// its defaults span in 100 ms ones: 500 ms of rates, 10 s of delays, a
/// probe every 5 s.
fn spans(algorithm: BandwidthDelay) -> BandwidthDelay {
    algorithm
        .bandwidth_windows(20)
        .delay_windows(400)
        .probe_every(200)
}

/// The preset's count algorithm: Little's law
/// ([`BandwidthDelay::per_request`], requests per second times the base
/// delay, with a gain of 2 since one count limit holds small and large
/// requests alike) under [`Aimd`]'s back-off on drops.
///
/// Where the downstream refuses what its queue cannot hold, the count finds
/// the queue's edge by reaching it. So the back-off is to 0.7 of the limit
/// (as CUBIC's), not `Aimd`'s default 0.9, and the count lingers below the
/// edge afterwards ([`Aimd::plateau`]`(0.8, 0.1)`: a step a window up to
/// 0.8 of it, then a tenth of a step). Behind the simulation's queue of 8
/// (`adaptive_sim --downstreams`), over seeds 1 to 10:
///
/// | `Aimd` | phases refused over 1% (of 30) | most refused in a phase: steady, halved, recovered |
/// |---|---|---|
/// | `backoff(0.9)` | 16 | 1.63%, 2.81%, 1.88% |
/// | `backoff(0.7)` | 8 | 1.21%, 1.77%, 1.39% |
/// | `backoff(0.7).plateau(0.8, 0.1)` | 0 | 0.00%, 0.79%, 0.23% |
///
/// Where nothing is dropped neither changes anything.
///
/// **Where it undercounts.** The rate is measured on what the limit lets
/// through, so a count that binds grows only while `2 × base delay`, or
/// `2 × typical delay / 1.1` (`1.25 ×` behind a bottleneck such as a
/// disk), exceeds the mean round trip. The typical delay is a probe's
/// measure of the small requests' round trip without a queue (see
/// [`BandwidthDelay`], "Round trips that spread"). The base delay is the
/// fastest requests'; where those are far faster than the mean, the count
/// settles near its two requests of room and holds back a downstream whose
/// bottleneck is its bytes. In `examples/http_gateway.rs --adaptive` a
/// 100 B request takes the server a few microseconds and a 4 MiB one tens
/// of milliseconds; the disk serves writes first come, first served, so
/// small requests also wait behind large ones, and keeping it busy takes a
/// queue that grows with the largest requests, not with the per-request
/// delay. There the count stays
/// at 2 (`--adaptive --preset-count`). The disk still moved 58 MiB/s of
/// its 64 (30 of 32 while halved), against 62 (32) with `Min(Aimd,
/// Gradient2)` on the count, but the requests queued in the layer instead
/// of at the disk, and over ten times as many waited out its 200 ms
/// timeout (801 and 1,125 answers of 503 in two 30 s runs, against 40 and
/// 68). In the simulation a per-request
/// overhead makes up most of every round trip (the base delay about 6 ms,
/// the median 6.2 ms, the 10% large requests 20 to 32 ms), and it keeps up.
/// Where round trips differ tenfold, put `Min(Aimd::default(),
/// Gradient2::default())` on the count instead, as that example does: it
/// grows while the round trips hold, and drifts upward under steady
/// saturation, so it needs the byte limit (or drops) to bound what it lets
/// in. Taking the larger of the two counts is no cure: it kept the
/// gateway's disk full and the simulation's joint figures, but the count
/// alone then no longer bounds a worker bottleneck (26 to 77 times the best
/// static limit's p99 on the simulation's 1 KiB control with the bytes
/// unbounded, against 2.2 to 2.3 times now). Nor is Little's law on the
/// delay of the request a delivered byte belongs to (the base delay plus
/// the byte-weighted mean size at the measured bandwidth): it lets the
/// gateway's count grow, but in the simulation the count rose from about 20
/// to 44-51, and late in 2 of the 60 phases (over 20 seeds) a 500 ms
/// stretch fell below 90% of the best static limit's goodput, so that the
/// phase re-converged only after 5 s.
///
/// ```
/// let count = multisem::adaptive::preset::count();
/// # let _ = count;
/// ```
pub fn count() -> Min<Aimd, BandwidthDelay> {
    Min(
        Aimd::default().backoff(0.7).plateau(0.8, 0.1),
        spans(BandwidthDelay::default().per_request().gain(2.0)),
    )
}

/// The preset's byte algorithm: the bandwidth-delay product
/// ([`BandwidthDelay`], gain 1.25, plus two byte-weighted mean requests).
///
/// Where round trips spread at random whatever the load, the product
/// takes the typical delay a probe measures, not just the lowest one (see
/// [`BandwidthDelay`], "Round trips that spread").
///
/// ```
/// let bytes = multisem::adaptive::preset::bytes();
/// # let _ = bytes;
/// ```
pub fn bytes() -> BandwidthDelay {
    spans(BandwidthDelay::default())
}

impl<const N: usize> ControllerBuilder<N> {
    /// The measured configuration in one call: dimension `count` follows
    /// [`preset::count`](count), dimension `bytes` follows
    /// [`preset::bytes`](bytes), in [`WINDOW`]s of at least [`MIN_SAMPLES`].
    /// On the simulation of the README (a broker whose workers and bandwidth
    /// halve and recover, mixed 1 KiB / 1 MiB messages) it kept ≥ 98.6% of
    /// the best static limit's goodput at ≤ 1.05x its p99 in every phase,
    /// over 20 seeds.
    ///
    /// Report successes with [`Outcome::delivered`](super::Outcome::delivered),
    /// and give `bytes` a lower bound of at least the largest request. It
    /// sets the window too: to change it, call [`window`](Self::window)
    /// after this, not before.
    ///
    /// **A pool you know.** The count must also let a downstream whose
    /// bottleneck is its link keep a few large requests transferring and
    /// many small ones in flight, so behind a small pool of workers it
    /// holds about twice the pool: with 4 workers and mixed sizes in the
    /// simulation, about 10, where the best static count is 5, and a p99
    /// 1.1x to 1.3x the best static limit's. Where you know the pool's
    /// size, give `count_bounds` an upper end near it (the pool plus the
    /// requests on the wire;
    /// [`Controller::set_bounds`](super::Controller::set_bounds) when the
    /// pool changes): at 5 there, the p99 is the best static limit's while
    /// the pool is whole (`docs/adaptive.md` in the repository, "On other
    /// brokers", also for what a pool of 2 still misses).
    ///
    /// ```
    /// use multisem::MultiSemaphore;
    /// use multisem::adaptive::{Controller, Outcome};
    /// use std::sync::Arc;
    ///
    /// let sem = Arc::new(MultiSemaphore::new([16, 4 << 20]));
    /// let ctl = Controller::builder(Arc::clone(&sem))
    ///     .count_and_bytes(0, 1..=1024, 1, (1 << 20)..=(1 << 30))
    ///     .build();
    /// let permit = ctl.try_acquire([1, 4096]).unwrap();
    /// permit.complete(Outcome::delivered(4096));
    /// assert_eq!(sem.available(), sem.capacity());
    /// ```
    ///
    /// # Panics
    ///
    /// As [`limit`](Self::limit), for either dimension; and if `count` and
    /// `bytes` are the same dimension (the second limit would replace the
    /// first).
    #[track_caller]
    pub fn count_and_bytes(
        self,
        count: usize,
        count_bounds: RangeInclusive<u64>,
        bytes: usize,
        byte_bounds: RangeInclusive<u64>,
    ) -> Self {
        assert!(
            count != bytes,
            "count_and_bytes: the count and the bytes must be two dimensions, not both {count}"
        );
        self.limit(count, count_bounds, self::count())
            .limit(bytes, byte_bounds, self::bytes())
            .window(WINDOW, MIN_SAMPLES)
    }
}
