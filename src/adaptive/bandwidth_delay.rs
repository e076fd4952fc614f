//! A byte limit from the bandwidth-delay product, as BBR sizes its window.

use std::collections::VecDeque;

use super::algorithm::{Algorithm, Dimension, Estimate};
use super::window::Window;

/// A byte limit from the bandwidth-delay product: what the downstream
/// delivers per second times how long a byte is in flight when nothing
/// queues, times a [`gain`](Self::gain), as BBR sizes its congestion window,
/// plus room for a few whole requests:
///
/// `limit = gain × bandwidth × base_delay + requests × request`
///
/// * `bandwidth`: the highest delivery rate (delivered bytes per second) of
///   the last [`bandwidth_windows`](Self::bandwidth_windows) windows;
/// * `base_delay`: the lowest round-trip time of the last
///   [`delay_windows`](Self::delay_windows) windows, less the time the
///   fastest request's own bytes take at `bandwidth`: the overhead a request
///   pays whatever its size (the network, the downstream's per-request work).
///   A window whose fastest request moved its bytes faster than `bandwidth`
///   was measured on a downstream that idled between requests, and gives
///   no delay, nor does one whose fastest success took no time the clock
///   can measure; a window too short for the clock gives no rate. So the
///   spans count the windows that measured a rate (or a delay): a window
///   of drops alone leaves both filters as they were (an outage holds the
///   byte limit where it was, for the count's `Aimd` to back off), and is
///   no window towards the next probe either; one of a light load gives a
///   rate and no delay;
/// * `request`: the byte-weighted mean request size (the largest of the
///   same windows as `bandwidth`). A request holds its bytes for the whole
///   time they take to deliver, so with mixed sizes the limit must fit the
///   requests that carry the bytes, not just the overhead of the fastest
///   ones; without this term, a bandwidth-delay product measured on
///   1 KiB requests is smaller than one 1 MiB request. With
///   [`requests`](Self::requests) at 2, the next request is ready (its
///   overhead paid) while one transfers, so the bottleneck never idles.
///
/// The rate is measured on what the limit let through, so a limit that is
/// too low grows by up to the gain each window until the round-trip time
/// rises. The base delay must not include queueing the limit itself causes,
/// or the product feeds on its own queue: it is a minimum over many windows,
/// and every [`probe_every`](Self::probe_every) windows (and once at the
/// start) a window runs with half the product (BBR's ProbeRTT; the whole
/// requests stay), so that queues drain and the minimum is measured afresh;
/// where the typical delay (below) may matter, a second one measures it.
/// While a probe lasts, [`before_probe`](Algorithm::before_probe) gives the
/// limit from before it, so that a partner in a [`Min`](super::Min) (the
/// preset count's [`Aimd`](super::Aimd)) does not regrow from the probe's
/// half a step a window: behind a pool of 50 workers, with round trips
/// that spread after it, that cost 11% of what the pool served.
///
/// The maximum over several windows keeps one slow window (a few large
/// messages that happened to finish in the next one) from starving the
/// link, but it holds an old rate for those windows after the downstream
/// slows down. So a window whose *fastest* success was already queued, its
/// delay above [`drain`](Self::drain) times the base delay, replaces them:
/// a queue that stood for a whole window means the downstream was busy
/// throughout it, so the window's rate is what it can deliver now, not an
/// underestimate, and the limit drops at once to drain the queue (BBR's
/// drain). While the bottleneck is a bandwidth shared by the requests
/// transferring, small requests are not queued and the fastest success
/// stays near the base delay; it is a worker bottleneck (every request
/// waits for a worker) that raises it.
///
/// **Round trips that spread.** Where nothing downstream is a bottleneck,
/// the rate follows the limit: it is the limit over the *mean* round trip.
/// A product on the *lowest* round trip then sets about
/// `gain × lowest / mean` of the limit each window, and where round trips
/// spread at random whatever the load (a broker's latency of 1 to 8 ms,
/// say, whose mean is 4.5 times its lowest) it would walk the limit down to
/// its lower bound, though more in flight would move more; BBR's congestion
/// window has that weakness on a jittery path. So the delay in the product
/// is at least the *typical* delay over 1.1, measured in a second window of
/// a probe, when the limit has stood at half the product for a whole window
/// and a queue it caused has drained:
///
/// * the mean round trip of the small requests
///   ([`Window::small_mean_rtt`](super::Window::small_mean_rtt), the
///   smallest quarter by size), since a larger one's round trip includes
///   its transfer, which at a shared bandwidth lasts longer the more
///   transfer with it (and the whole requests of room transfer through the
///   probe);
/// * plus twice its standard error
///   ([`Window::small_rtt_error`](super::Window::small_rtt_error)): a
///   probe that happened to see fast round trips would hold the limit low
///   until the next probe, and an estimate that errs high by that much
///   costs only a little queue, which the next probe drains;
/// * never above what the current window's small requests took (by the
///   same measure), so a downstream that got faster is not held to its old
///   delay.
///
/// Without a bottleneck the typical delay is the mean round trip, and the
/// limit grows by about `gain / 1.1` a window. Behind a bottleneck that the
/// full limit keeps queued (a pool of workers, a shared link), a probe
/// shortens the queue, and the small requests' round trip falls with the
/// limit (by more than two standard errors, against the window before the
/// probe); without one it holds. Where it fell, the rate tells what the
/// probe measured:
///
/// * where the rate fell with the limit too, the probe starved the
///   bottleneck and measured its round trip without the queue: the
///   measure counts;
/// * where the rate held (nearer the rate before than one in proportion to
///   the limit), the bottleneck stayed busy through the probe, and the
///   measure may be a queue's, which would feed the product at every
///   probe: the last typical delay stays, never above this measure, so
///   that one taken before the downstream became a bottleneck falls at
///   every probe. With none before, the measure counts only if the
///   window's fastest request waited for nothing (the queue had drained).
///
/// A measuring probe also lasts until the requests granted before it have
/// completed (more in flight than its limit, by more than the whole
/// requests of room; at most 40 windows more): where the queue the full
/// limit built takes longer to drain than the probe's own windows, the
/// round trips of its second window are that queue's, and they fed the
/// product (a count started at 1000 on 4 workers climbed to 850). Then it
/// measures one window later: the requests granted while the old queue
/// drained waited behind it, and they fill the window in which the last
/// old one completed (a pool that shrank from 64 workers to 4 as a probe
/// began gave a typical delay of 29 ms, against 5.6 before the shrink, and
/// the preset's count stayed at 100 to 200 for 10 s; now 14 to 33).
///
/// And while the last probe that could tell saw a bottleneck, the typical
/// delay counts at a gain of 1.25 at most: a gain that makes up for the
/// base delay being the fastest round trip, as the preset count's 2 does,
/// would on the mean hold a queue as long as the bottleneck (16 workers: a
/// count of 31-33, against 21-22). (Taking no measure where the round trip
/// fell left the product on the base delay, and where round trips spread
/// behind a pool of 50 workers it walked the preset's count down to 3 or
/// 4.) A probe that could not lower the limit by a quarter (a bound, or the
/// other algorithm of a [`Min`](super::Min) holding it lower) cannot tell,
/// and takes what it measures: the next probe that lowers the limit tests
/// it.
///
/// The 1.1 is for the queue a probe leaves where it does drain: in the
/// simulation (README, "adaptive"), where 16 workers queue 1 KiB requests,
/// a typical delay taken whole holds a little more than the product on the
/// base delay does, and the p99 rises from 1.33x to 1.49x the best static
/// limit's. The first probe comes with the first window that measured a
/// rate and a delay (there is no product to halve before), so the limit
/// does not walk down for a whole `probe_every` first. A probe lasts the
/// second window only where the typical delay may matter: at the first,
/// while the last one measured is what sets the product (its part above
/// the base delay's), and every 4th probe, so that round trips that begin
/// to spread are seen. Elsewhere, as on the simulation's broker, where
/// requests that wait for nothing take the base delay, a probe lasts one
/// window and costs the bottleneck half as much. And a window whose product
/// would take more than half the limit away, with no typical delay setting
/// the product, starts a measuring probe at once: that is what round trips
/// that begin to spread do, and the probe must come before the limit
/// reaches its lower bound. Where a typical delay sets it, such a fall
/// starts one only if a queue stood through the window: a bottleneck
/// appeared, and the typical delay, measured without one, may be what now
/// keeps its queue (after round trips that spread stopped and a pool of 16
/// workers bound, the count stayed at 92, where 21 keeps the pool busy,
/// until the next probe: up to 5 s, the p99 6.7 ms against 2.0).
///
/// It needs successes that report their bytes ([`Outcome::delivered`](super::Outcome::delivered)).
///
/// ```
/// use multisem::adaptive::BandwidthDelay;
///
/// let bytes = BandwidthDelay::default().gain(2.0).probe_every(0);
/// # let _ = bytes;
/// ```
#[derive(Debug, Clone)]
pub struct BandwidthDelay {
    gain: f64,
    requests: f64,
    drain: f64,
    per_request: bool,
    probe_every: u32,
    bandwidth_windows: usize,
    delay_windows: usize,
    rates: VecDeque<(f64, u64)>,
    delays: VecDeque<f64>,
    since_probe: u32,
    /// Probe windows left (the last of a measuring one measures the
    /// typical delay).
    probing: u32,
    /// Whether a probe has begun since the start.
    probed: bool,
    /// Whether the probe under way measures the typical delay.
    measuring: bool,
    /// Probes begun since the last that measured the typical delay.
    probes_since_measure: u32,
    /// Windows the probe under way has lasted beyond its own, for a queue
    /// granted before it to drain (`MAX_EXTENDED` once it waits no more).
    extended: u32,
    /// The limit in force when the probe under way began.
    before_probe: f64,
    /// The typical delay in seconds (see `typical_delay`).
    typical: Option<f64>,
    /// The small requests' mean round trip and its standard error in the
    /// last window before the probe under way, in seconds.
    rtt_before_probe: (f64, f64),
    /// Whether the last measuring probe that lowered the limit saw the
    /// small requests' round trip fall with it: a bottleneck, behind which
    /// the typical delay counts at `TYPICAL_GAIN` at most.
    queued: bool,
    estimate: Estimate,
}

impl Default for BandwidthDelay {
    fn default() -> Self {
        BandwidthDelay {
            gain: 1.25,
            requests: 2.0,
            drain: 2.0,
            per_request: false,
            probe_every: 50,
            bandwidth_windows: 5,
            delay_windows: 100,
            rates: VecDeque::new(),
            delays: VecDeque::new(),
            since_probe: 0,
            probing: 0,
            probed: false,
            measuring: false,
            probes_since_measure: MEASURE_EVERY,
            extended: 0,
            before_probe: 0.0,
            typical: None,
            rtt_before_probe: (0.0, 0.0),
            queued: false,
            estimate: Estimate::default(),
        }
    }
}

impl BandwidthDelay {
    /// Multiplies the bandwidth-delay product (default 1.25): the headroom
    /// for queueing at the downstream, as a share of what keeps it busy.
    ///
    /// ```
    /// let a = multisem::adaptive::BandwidthDelay::default().gain(1.5);
    /// # let _ = a;
    /// ```
    ///
    /// # Panics
    ///
    /// If `gain` is not above 0.0 or not finite.
    #[track_caller]
    pub fn gain(mut self, gain: f64) -> Self {
        assert!(
            gain.is_finite() && gain > 0.0,
            "BandwidthDelay::gain: {gain} is not a finite factor above 0.0"
        );
        self.gain = gain;
        self
    }

    /// Whole requests of room beyond the product (default 2.0).
    ///
    /// ```
    /// let a = multisem::adaptive::BandwidthDelay::default().requests(3.0);
    /// # let _ = a;
    /// ```
    ///
    /// # Panics
    ///
    /// If `requests` is negative or not finite.
    #[track_caller]
    pub fn requests(mut self, requests: f64) -> Self {
        assert!(
            requests.is_finite() && requests >= 0.0,
            "BandwidthDelay::requests: {requests} is not a finite number of 0 or more"
        );
        self.requests = requests;
        self
    }

    /// How far a window's fastest success may exceed the base delay before
    /// the window counts as one through which a queue stood (default 2.0;
    /// `f64::INFINITY`: never). Then its delivery rate replaces the
    /// maximum of the last windows. Keep it above the queueing the
    /// [`gain`](Self::gain) itself causes (about `gain` times the base delay).
    ///
    /// ```
    /// let a = multisem::adaptive::BandwidthDelay::default().drain(3.0);
    /// # let _ = a;
    /// ```
    ///
    /// # Panics
    ///
    /// If `drain` is below 1.0 or NaN (below 1.0 every window would count
    /// as one through which a queue stood).
    #[track_caller]
    pub fn drain(mut self, drain: f64) -> Self {
        assert!(
            drain >= 1.0,
            "BandwidthDelay::drain: {drain} is not a factor of 1.0 or more"
        );
        self.drain = drain;
        self
    }

    /// Counts requests instead of bytes, for the count dimension: the rate
    /// is successes per second and every request is one unit, so the limit
    /// is `gain × requests per second × base_delay + requests`, Little's law
    /// for a downstream whose bottleneck is its number of workers.
    ///
    /// ```
    /// use multisem::adaptive::{Aimd, BandwidthDelay, Min};
    ///
    /// let count = Min(Aimd::default(), BandwidthDelay::default().per_request());
    /// # let _ = count;
    /// ```
    pub fn per_request(mut self) -> Self {
        self.per_request = true;
        self
    }

    /// Windows from one probe at half the product to the next (default 50;
    /// a probe's own windows count; 2 acts as 3, so that a full window
    /// separates a measuring probe's two from the next; 1 probes always).
    /// 0 never probes, the one window count that does not panic: for tests that
    /// want no probe in their figures, or a downstream whose queue drains
    /// by itself now and then; otherwise the product may feed on the queue
    /// it causes (see the type's docs). Without probes the typical delay is
    /// never measured, so round trips that spread walk the limit down.
    ///
    /// ```
    /// let a = multisem::adaptive::BandwidthDelay::default().probe_every(100);
    /// # let _ = a;
    /// ```
    pub fn probe_every(mut self, probe_every: u32) -> Self {
        self.probe_every = probe_every;
        self
    }

    /// Windows the bandwidth (and request size) maximum spans (default 5).
    ///
    /// ```
    /// let a = multisem::adaptive::BandwidthDelay::default().bandwidth_windows(10);
    /// # let _ = a;
    /// ```
    ///
    /// # Panics
    ///
    /// If `bandwidth_windows` is 0.
    #[track_caller]
    pub fn bandwidth_windows(mut self, bandwidth_windows: usize) -> Self {
        assert!(
            bandwidth_windows > 0,
            "BandwidthDelay::bandwidth_windows: the maximum spans at least 1 window"
        );
        self.bandwidth_windows = bandwidth_windows;
        self
    }

    /// Windows the base delay minimum spans (default 100).
    ///
    /// ```
    /// let a = multisem::adaptive::BandwidthDelay::default().delay_windows(200);
    /// # let _ = a;
    /// ```
    ///
    /// # Panics
    ///
    /// If `delay_windows` is 0.
    #[track_caller]
    pub fn delay_windows(mut self, delay_windows: usize) -> Self {
        assert!(
            delay_windows > 0,
            "BandwidthDelay::delay_windows: the minimum spans at least 1 window"
        );
        self.delay_windows = delay_windows;
        self
    }
}

impl BandwidthDelay {
    /// The bandwidth in bytes per second and the request size the last
    /// update used (0.0, 0 before any).
    ///
    /// ```
    /// use multisem::adaptive::BandwidthDelay;
    ///
    /// assert_eq!(BandwidthDelay::default().bandwidth(), (0.0, 0));
    /// ```
    pub fn bandwidth(&self) -> (f64, u64) {
        self.rates.iter().fold((0.0, 0), |(rate, size), &(r, s)| {
            (f64::max(rate, r), size.max(s))
        })
    }

    /// The base delay in seconds the last update used (`None` before any).
    ///
    /// ```
    /// use multisem::adaptive::BandwidthDelay;
    ///
    /// assert_eq!(BandwidthDelay::default().base_delay(), None);
    /// ```
    pub fn base_delay(&self) -> Option<f64> {
        self.delays.iter().copied().reduce(f64::min)
    }

    /// The typical delay in seconds: the mean round trip of the small
    /// requests in a measuring probe's second window, plus twice its
    /// standard error, from the last probe whose measure counted (no higher
    /// than those of later probes that measured a queue; `None` before a
    /// measure counted; see the type's docs, "Round trips that spread").
    ///
    /// ```
    /// use multisem::adaptive::BandwidthDelay;
    ///
    /// assert_eq!(BandwidthDelay::default().typical_delay(), None);
    /// ```
    pub fn typical_delay(&self) -> Option<f64> {
        self.typical
    }
}

/// Appends `value`, dropping the oldest first if `queue` holds `len`
/// already: it never holds more, so it never grows past `reserve`'s room.
fn push_bounded<T>(queue: &mut VecDeque<T>, value: T, len: usize) {
    if queue.len() >= len {
        queue.pop_front();
    }
    queue.push_back(value);
}

/// Room for `len` items (up to `RESERVED`) at once, so that filling
/// `queue` later allocates nothing: a window that measures no delay pushes
/// none, so the delays may fill long after the first window.
fn reserve<T>(queue: &mut VecDeque<T>, len: usize) {
    queue.reserve_exact(len.min(RESERVED).saturating_sub(queue.len()));
}

/// The most items a filter reserves room for ahead (the preset's spans are
/// 20 and 400 windows): a longer span grows as it fills.
const RESERVED: usize = 1 << 16;

/// The windows a probe that measures the typical delay lasts: the first
/// one's completions were mostly admitted at the full limit, and carry its
/// queue (measured there, the typical delay took the 1 KiB simulation's
/// p99 from 1.33x to 1.49x the best static limit's); the last one measures
/// the typical delay.
const PROBE_WINDOWS: u32 = 2;

/// A probe that does not need the typical delay still measures it every
/// this many probes (every 20 s at the preset's spans, with a probe every
/// 5 s), so that round trips that begin to spread are seen; its second
/// window costs one window at half the product in `MEASURE_EVERY` probes.
const MEASURE_EVERY: u32 = 4;

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
/// tell a bottleneck's queue from chance (see the type's docs).
const LOWERED: f64 = 0.75;

/// The most windows a measuring probe waits beyond its own for the
/// requests granted before it to complete, the window after they did
/// included (1 s at the preset's 25 ms windows): a queue at the full limit
/// that takes longer than that to drain is measured as it stands.
const MAX_EXTENDED: u32 = 40;

/// Behind a bottleneck, the typical delay counts at this gain at most (the
/// byte preset's own).
const TYPICAL_GAIN: f64 = 1.25;

/// The typical delay counts for the base delay divided by this: the
/// share of it that may be queueing a probe did not drain (see the type's
/// docs, "Round trips that spread"; 1.0 took the 1 KiB simulation's p99
/// from 1.33x to 1.49x the best static limit's).
const SPREAD: f64 = 1.1;

impl Algorithm for BandwidthDelay {
    fn update(&mut self, window: &Window, dim: &Dimension) -> u64 {
        reserve(&mut self.rates, self.bandwidth_windows);
        reserve(&mut self.delays, self.delay_windows);
        let limit = self.estimate.current(dim.limit);
        let (rate, size, min_rtt_size) = if self.per_request {
            (window.success_rate(), 1, 0)
        } else {
            (
                window.delivery_rate(),
                window.weighted_size,
                window.min_rtt_bytes,
            )
        };
        if rate <= 0.0 {
            // Nothing delivered (or no bytes reported), or a window too
            // short for the clock: no rate, and no saying the downstream
            // delivers nothing.
            return self.estimate.set(limit);
        }
        if self.probing > 0 {
            self.probing -= 1;
            // More in flight than the limit in force, by more than the
            // whole requests of room (a product that moved a little since
            // the probe began is no queue), means requests granted before
            // the probe are still in flight: a queue that has not drained,
            // whose round trips the measure would take. The probe lasts
            // until they are gone.
            let room = self.requests * self.bandwidth().1 as f64;
            let undrained = dim.peak_in_flight as f64 > dim.limit as f64 + room;
            // And once they are, one window more, the last, which measures
            // whatever it shows: requests granted while the old queue
            // drained waited behind it, and the window in which the last of
            // the old ones completed is full of them.
            if self.probing == 0 && self.measuring && self.extended < MAX_EXTENDED {
                if undrained {
                    self.extended += 1;
                    self.probing = 1;
                } else if self.extended > 0 {
                    self.extended = MAX_EXTENDED;
                    self.probing = 1;
                }
            }
            if self.probing == 0 && self.measuring {
                self.extended = 0;
                self.probes_since_measure = 0;
                // Where nothing queued at the full limit, the small requests
                // take as long at half of it: their round trip is the
                // downstream's, whatever the load, and the typical delay
                // counts. Where it fell with the limit (by more than
                // `QUEUED` standard errors), part of it was a queue that
                // the full limit kept at a bottleneck (a pool of workers, a
                // shared link). A probe that starved the bottleneck (its
                // rate fell with the limit) measured the round trip without
                // that queue, which counts; one through which the queue
                // may have stood (its rate held: nearer the bandwidth than
                // the bandwidth in proportion to the limit) may have
                // measured the queue, which would feed the product: the last
                // measure stays, no higher than this one (with none, it
                // counts if the window's fastest request waited for
                // nothing). A probe that could not lower the limit by a
                // quarter (a bound, or the other algorithm of a `Min`
                // holding it lower) cannot tell; it takes what it measures,
                // and the next probe that lowers the limit tests it.
                let lowered = limit / self.before_probe;
                let tells = lowered <= LOWERED;
                let (before, before_error) = self.rtt_before_probe;
                let (now, now_error) = small_rtt(window);
                let queued = tells && before - now > QUEUED * before_error.hypot(now_error);
                let held = rate >= 0.5 * (1.0 + lowered) * self.bandwidth().0;
                let typical = typical_bound(window);
                if tells {
                    self.queued = queued;
                }
                if typical <= 0.0 {
                    // No small request measured: the last measure stays.
                } else if queued && held {
                    self.typical = match self.typical {
                        Some(last) => Some(last.min(typical)),
                        None if !self.queue_stood(window, min_rtt_size) => Some(typical),
                        None => None,
                    };
                } else {
                    self.typical = Some(typical);
                }
            }
        }
        let sample = (rate, size);
        push_bounded(&mut self.rates, sample, self.bandwidth_windows);
        let (bandwidth, _) = self.bandwidth();
        let delay = fastest_delay(window, min_rtt_size, bandwidth);
        if let Some(delay) = delay {
            push_bounded(&mut self.delays, delay, self.delay_windows);
        }
        // The lowest of the last `delay_windows` windows, this one's included.
        let Some(base_delay) = self.base_delay() else {
            return self.estimate.set(limit);
        };
        let drained = self.queued_through(delay, base_delay);
        if drained {
            // A queue stood through the whole window: the downstream was
            // busy, so this rate is what it delivers now. Forget the faster
            // past.
            self.rates.clear();
            self.rates.push_back(sample);
        }
        let (bandwidth, request) = self.bandwidth();
        // The typical delay, never above what this window's small requests
        // took (a downstream that got faster is not held to its old delay),
        // and less the spread a probe leaves in it.
        let typical = self.typical.map_or(0.0, |typical| {
            let now = typical_bound(window);
            let typical = if now > 0.0 { typical.min(now) } else { typical };
            self.typical_part(typical)
        });
        let product = bandwidth * (self.gain * base_delay).max(typical);
        let whole_requests = self.requests * request as f64;
        self.since_probe = self.since_probe.saturating_add(1);
        if self.probing > 0 {
            return self.estimate.set(0.5 * product + whole_requests);
        }
        // A measuring probe's windows count towards the next, so that the
        // schedule holds; at least one full window separates probes (but
        // for `probe_every(1)`, which probes always).
        let every = if self.probe_every > 1 {
            self.probe_every.max(PROBE_WINDOWS + 1)
        } else {
            self.probe_every
        };
        let due = self.since_probe >= every;
        // A product that would take more than half the limit away is what
        // round trips that began to spread do (the lowest of them far below
        // what a request takes): measure them before the limit falls to its
        // bound, where a probe cannot halve it. Where a queue stood
        // (`drained`) too: with mixed sizes a large request's own bytes can
        // set the base delay far below what a small one takes, and then
        // every window reads as one through which a queue stood. Where the
        // fall is a real queue draining, the probe drains it further and
        // its measure shows the queue. Once a typical delay sets the
        // product, this fires only where a queue stood through the window:
        // a bottleneck appeared, and the typical delay, measured without
        // one, may now be what keeps its queue (the small requests' round
        // trip, which caps it, is the queue's).
        let falling = product + whole_requests < 0.5 * limit
            && (drained || !self.typical_sets_product(base_delay));
        // The first probe comes as soon as there is a product to halve, to
        // measure the typical delay; the schedule stays.
        if self.probe_every > 0 && (due || !self.probed || falling) {
            if due {
                self.since_probe = 0;
            }
            self.probed = true;
            // A second window measures the typical delay where it may
            // matter: at the first probe, while it is what sets the
            // product, and every `MEASURE_EVERY`th probe (round trips may
            // begin to spread). Elsewhere one window drains the queue, and
            // costs the bottleneck half as much.
            self.before_probe = limit;
            self.rtt_before_probe = small_rtt(window);
            self.probes_since_measure = self.probes_since_measure.saturating_add(1);
            self.measuring = falling
                || self.probes_since_measure >= MEASURE_EVERY
                || self.typical_sets_product(base_delay);
            self.probing = if self.measuring { PROBE_WINDOWS } else { 1 };
            // Halve the part that can queue; the whole requests stay, so the
            // bottleneck keeps working while the queue drains.
            return self.estimate.set(0.5 * product + whole_requests);
        }
        self.estimate.set(product + whole_requests)
    }

    fn before_probe(&self) -> Option<u64> {
        // `as` floors, as the limit in force was, and saturates.
        (self.probing > 0).then_some(self.before_probe as u64)
    }
}

impl BandwidthDelay {
    /// Whether a window whose fastest success took `delay` was queued
    /// throughout: that delay above `drain` times the base delay.
    fn queued_through(&self, delay: Option<f64>, base_delay: f64) -> bool {
        delay.is_some_and(|delay| delay > self.drain * base_delay)
    }

    /// Whether `window`'s fastest success waited in a queue, against the
    /// bandwidth and base delay before this window counts (no base delay
    /// yet: it may have).
    fn queue_stood(&self, window: &Window, min_rtt_size: u64) -> bool {
        let delay = fastest_delay(window, min_rtt_size, self.bandwidth().0);
        self.base_delay()
            .is_none_or(|base_delay| self.queued_through(delay, base_delay))
    }

    /// Whether the typical delay, not the base delay, sets the product.
    fn typical_sets_product(&self, base_delay: f64) -> bool {
        self.typical
            .is_some_and(|typical| self.typical_part(typical) >= self.gain * base_delay)
    }

    /// What `typical` counts for in the product, before the bandwidth:
    /// less the spread a probe leaves in it, times the gain (at most
    /// `TYPICAL_GAIN` behind a bottleneck).
    fn typical_part(&self, typical: f64) -> f64 {
        let gain = if self.queued {
            self.gain.min(TYPICAL_GAIN)
        } else {
            self.gain
        };
        gain * typical / SPREAD
    }
}

/// The delay of `window`'s fastest success, in seconds: its round trip less
/// the time its own bytes take at `bandwidth`. A fastest request that moved
/// its bytes faster than `bandwidth` says the rate was measured on a light
/// load (the downstream idled between requests), so how much of its round
/// trip was overhead is unknown; one too fast for the clock says nothing
/// either (`None`). A delay of 0 would hold the product at 0 for
/// `delay_windows`, with every window draining: such a window measures the
/// rate, not the delay.
fn fastest_delay(window: &Window, min_rtt_size: u64, bandwidth: f64) -> Option<f64> {
    let own_bytes = min_rtt_size as f64 / bandwidth;
    let min_rtt = window.min_rtt.as_secs_f64();
    (min_rtt > own_bytes).then_some(min_rtt - own_bytes)
}

/// The small requests' mean round trip in `window` and its standard error,
/// in seconds.
fn small_rtt(window: &Window) -> (f64, f64) {
    (
        window.small_mean_rtt.as_secs_f64(),
        window.small_rtt_error.as_secs_f64(),
    )
}

/// The small requests' mean round trip in `window` plus twice its standard
/// error, in seconds.
fn typical_bound(window: &Window) -> f64 {
    let (mean, error) = small_rtt(window);
    mean + 2.0 * error
}
