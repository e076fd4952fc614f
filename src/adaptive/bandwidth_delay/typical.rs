//! The typical delay: what a request takes when nothing queues, where
//! round trips spread (see [`BandwidthDelay`](super::BandwidthDelay),
//! "Round trips that spread").

use crate::adaptive::Window;

/// A probe sees a bottleneck where the small requests' mean round trip in
/// its measuring window is below the one in the window before the probe by
/// more than this many standard errors (of the difference): without a
/// bottleneck the round trip is the same at half the limit, where the queue
/// a bottleneck held at the full limit shortens with the limit. At 2, a
/// probe on round trips that spread at random sees one about once in 50
/// (1 in 62 on the spread reproducer's 40 runs), and there the rate, which
/// falls with the limit, keeps the measure.
const QUEUED: f64 = 2.0;

/// A probe that kept more than this share of the limit before it cannot
/// tell a bottleneck's queue from chance.
const LOWERED: f64 = 0.75;

/// Behind a bottleneck, the typical delay counts at this gain at most (the
/// byte preset's own).
const BOTTLENECK_GAIN: f64 = 1.25;

/// The typical delay counts for the base delay divided by this: the
/// share of it that may be queueing a probe did not drain (1.0 took the
/// 1 KiB simulation's p99 from 1.33x to 1.49x the best static limit's).
const SPREAD: f64 = 1.1;

/// The typical delay, and whether the last probe that could tell saw a
/// bottleneck.
#[derive(Debug, Clone, Default)]
pub(super) struct TypicalDelay {
    /// In seconds; `None` before a measure counted.
    seconds: Option<f64>,
    /// Whether the last measuring probe that lowered the limit saw the
    /// small requests' round trip fall with it: a bottleneck, behind which
    /// the typical delay counts at `BOTTLENECK_GAIN` at most.
    behind_bottleneck: bool,
}

/// What a measuring probe saw.
pub(super) struct Measure {
    /// The limit in force through the measuring window, over the one
    /// before the probe.
    pub(super) lowered: f64,
    /// The small requests' mean round trip and its standard error in the
    /// window before the probe, in seconds.
    pub(super) rtt_before: (f64, f64),
    /// The same in the measuring window.
    pub(super) rtt_now: (f64, f64),
    /// The measuring window's rate, and the bandwidth before it.
    pub(super) rate: f64,
    pub(super) bandwidth: f64,
    /// Whether the measuring window's fastest success waited in a queue
    /// (no base delay yet: it may have).
    pub(super) fastest_queued: bool,
}

impl TypicalDelay {
    pub(super) fn seconds(&self) -> Option<f64> {
        self.seconds
    }

    /// Takes a measuring probe's measure, or keeps the last.
    ///
    /// Where nothing queued at the full limit, the small requests take as
    /// long at half of it: their round trip is the downstream's, whatever
    /// the load, and the measure counts. Where it fell with the limit (by
    /// more than `QUEUED` standard errors), part of it was a queue that the
    /// full limit kept at a bottleneck (a pool of workers, a shared link):
    ///
    /// * a probe that starved the bottleneck (its rate fell with the limit)
    ///   measured the round trip without that queue, which counts;
    /// * one through which the queue may have stood (its rate held: nearer
    ///   the bandwidth than the bandwidth in proportion to the limit) may
    ///   have measured the queue, which would feed the product: the last
    ///   measure stays, no higher than this one (with none, this one counts
    ///   if the window's fastest request waited for nothing).
    ///
    /// A probe that could not lower the limit by a quarter (a bound, or
    /// the other algorithm of a `Min` holding it lower) cannot tell; it
    /// takes what it measures, and the next probe that lowers the limit
    /// tests it. But where the round trip fell through it all the same,
    /// something else shortened a queue (in a joint controller, the other
    /// dimension's probe, in the same windows), and what is left of that
    /// queue may be in the measure: it is taken as one through which the
    /// queue stood.
    pub(super) fn take(&mut self, measure: &Measure) {
        let tells = measure.lowered <= LOWERED;
        let (before, before_error) = measure.rtt_before;
        let (now, now_error) = measure.rtt_now;
        let fell = before - now > QUEUED * before_error.hypot(now_error);
        let queued = tells && fell;
        let held = measure.rate >= 0.5 * (1.0 + measure.lowered) * measure.bandwidth;
        let typical = now + 2.0 * now_error;
        if tells {
            self.behind_bottleneck = queued;
        }
        if typical <= 0.0 {
            // No small request measured: the last measure stays.
        } else if (queued && held) || (fell && !tells) {
            self.seconds = match self.seconds {
                Some(last) => Some(last.min(typical)),
                None if !measure.fastest_queued => Some(typical),
                None => None,
            };
        } else {
            self.seconds = Some(typical);
        }
    }

    /// What the typical delay counts for in `window`'s product, before the
    /// bandwidth (0.0 before a measure counted): never above what the
    /// window's small requests took (a downstream that got faster is not
    /// held to its old delay), less the spread a probe leaves in it, times
    /// `gain` (at most `BOTTLENECK_GAIN` behind a bottleneck).
    pub(super) fn part_in(&self, window: &Window, gain: f64) -> f64 {
        self.seconds.map_or(0.0, |typical| {
            let now = upper_bound(window);
            let typical = if now > 0.0 { typical.min(now) } else { typical };
            self.part(typical, gain)
        })
    }

    /// Whether the typical delay, not `gain` times the base delay, sets
    /// the product.
    pub(super) fn sets_product(&self, gain: f64, base_delay: f64) -> bool {
        self.seconds
            .is_some_and(|typical| self.part(typical, gain) >= gain * base_delay)
    }

    fn part(&self, typical: f64, gain: f64) -> f64 {
        let gain = if self.behind_bottleneck {
            gain.min(BOTTLENECK_GAIN)
        } else {
            gain
        };
        gain * typical / SPREAD
    }
}

/// The small requests' mean round trip in `window` and its standard error,
/// in seconds.
pub(super) fn small_rtt(window: &Window) -> (f64, f64) {
    (
        window.small_mean_rtt.as_secs_f64(),
        window.small_rtt_error.as_secs_f64(),
    )
}

/// The small requests' mean round trip in `window` plus twice its standard
/// error, in seconds.
fn upper_bound(window: &Window) -> f64 {
    let (mean, error) = small_rtt(window);
    mean + 2.0 * error
}

/// A window that lasted more than this many times the one before it was
/// stretched: no completion closed it for that long. (The demo's windows,
/// `producer --adaptive --small`, last up to 1.33 times the one before
/// them on a calm machine; one its broker's stall of 35 ms stretched, 2.4
/// times.)
const STRETCHED: f64 = 1.5;

/// Whether `window`, a measuring probe's measuring window, holds
/// completions that a stall of the client recorded late: all three of
///
/// * a window stretched: this one, or the one before it, lasted more than
///   `STRETCHED` times the one before that (`lasted`: the two before this
///   one, in seconds, the older first);
/// * the small requests' mean round trip above theirs in the window before
///   the probe (`rtt_before`) by more than `QUEUED` standard errors;
/// * the window's fastest success no slower than that mean.
///
/// A client that stalls (a process descheduled on busy cores) records
/// nothing while it does, and then what completed through the stall, at
/// once, late by up to its length: the window in which the stall ended
/// lasts that much longer (only a completion closes a window, and the
/// first late one does), and the next holds the other late ones, but also
/// the request that closes it, granted after the stall, which takes what
/// requests took before. A probe does not slow the small requests, and a
/// downstream that slowed would slow the fastest too: a round trip that
/// rose while the fastest held is a few late completions.
///
/// Each of the three happens without a stall: a window stretched where it
/// waits for the samples it needs (a small limit's requests complete in
/// bursts a round trip apart), a round trip that rose where the downstream
/// slowed as the probe began, and both with 1 MiB messages alone on a link
/// (the simulation's `--downstreams`: a probe's windows of 131 then 356
/// ms, every round trip 131 ms before it and 178 ms in its measure, the
/// fastest too; a rule on the rise alone cost that broker its
/// re-convergence). All three are a stall's, and on a clock that does not
/// stall (the simulation's) they do not meet.
pub(super) fn recorded_late(window: &Window, lasted: [f64; 2], rtt_before: (f64, f64)) -> bool {
    let elapsed = window.elapsed.as_secs_f64();
    let [older, last] = lasted;
    let stretched =
        (older > 0.0 && last > STRETCHED * older) || (last > 0.0 && elapsed > STRETCHED * last);
    let (before, before_error) = rtt_before;
    let (now, now_error) = small_rtt(window);
    let rose = now - before > QUEUED * before_error.hypot(now_error);
    let fastest_held = window.min_rtt.as_secs_f64() <= before;
    stretched && rose && fastest_held
}
