//! A byte limit from the bandwidth-delay product, as BBR sizes its window.
//!
//! The filters the product is taken over are in `filter`, the schedule of
//! probes in `probe`, and the typical delay a probe measures in `typical`.

mod filter;
mod probe;
mod typical;

use super::algorithm::{Algorithm, Dimension, Estimate};
use super::window::Window;
use filter::{Deliveries, Windowed};
use probe::Probes;
use typical::{Measure, TypicalDelay, recorded_late, small_rtt};

/// A byte limit from the bandwidth-delay product: what the downstream
/// delivers per second times how long a byte is in flight when nothing
/// queues, times a [`gain`](Self::gain), as BBR sizes its congestion window,
/// plus room for a few whole requests:
///
/// `limit = gain × bandwidth × base_delay + requests × request`
///
/// * `bandwidth`: the highest delivery rate (delivered bytes per second) of
///   the last [`bandwidth_windows`](Self::bandwidth_windows) windows, each
///   taken over the newest windows that together delivered at least 8
///   requests of its byte-weighted mean size (within the same span): where
///   a window holds only a few large requests, its own rate is one more or
///   one less of them (1 MiB requests on a 64 MiB/s link, in 25 ms
///   windows: 40 to 120 MiB/s), and the highest of such rates overstated
///   the link by a quarter to twice;
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
///   byte limit where it was, for the count's `Aimd` to back off, and ends
///   a probe under way), and is no window towards the next probe either;
///   one of a light load gives a rate and no delay;
/// * `request`: the byte-weighted mean request size (the largest of the
///   same windows as `bandwidth`). A request holds its bytes for the whole
///   time they take to deliver, so with mixed sizes the limit must fit the
///   requests that carry the bytes, not just the overhead of the fastest
///   ones; without this term, a bandwidth-delay product measured on
///   1 KiB requests is smaller than one 1 MiB request. With
///   [`requests`](Self::requests) at 2, the next request is ready (its
///   overhead paid) while one transfers, so the bottleneck never idles.
///
/// It needs successes that report their bytes
/// ([`Outcome::delivered`](super::Outcome::delivered)), or
/// [`per_request`](Self::per_request) for a count.
///
/// ```
/// use multisem::adaptive::BandwidthDelay;
///
/// let bytes = BandwidthDelay::default().gain(2.0).probe_every(0);
/// # let _ = bytes;
/// ```
///
/// # Probes
///
/// The rate is measured on what the limit lets through, so a limit that is
/// too low grows by up to the gain each window until the round-trip time
/// rises. The base delay must not include queueing the limit itself causes,
/// or the product feeds on its own queue: it is a minimum over many windows,
/// and every [`probe_every`](Self::probe_every) windows (and once at the
/// start) a window runs with half the product (BBR's ProbeRTT; the whole
/// requests stay, so the bottleneck keeps working), so that queues drain
/// and the minimum is measured afresh. Where the typical delay (below) may
/// matter, a second window measures it.
///
/// While a probe lasts, [`before_probe`](Algorithm::before_probe) gives the
/// limit from before it, so that a partner in a [`Min`](super::Min) (the
/// preset count's [`Aimd`](super::Aimd)) does not regrow from the probe's
/// half a step a window: behind a pool of 50 workers, with round trips
/// that spread after it, that cost 11% of what the pool served. (Where the
/// partner's own last limit is lower, it is shown that: one that backs off
/// through the probe goes on from there; see [`Algorithm::proposed`].)
///
/// # Drain
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
/// With mixed sizes one window is lumpy (its rate is one large request
/// more or less), so a drain restarts from what one window can tell. The
/// rate is the lower of the window's own and its sample over enough
/// requests: a window in which two 1 MiB requests happened to complete
/// reads 80 MiB/s on a 64 MiB/s link. The request size, of the whole
/// requests of room, stays the largest the filter holds: a window in which
/// only small requests completed says nothing of the requests that carry
/// the bytes. Behind a pool of 4 workers with 90% 1 KiB and 10% 1 MiB
/// requests (the simulation's `--downstreams`), one window in ten drained;
/// restarting from such a window as it was took the byte limit past three
/// large requests a third of the time, or down to its lower bound, and the
/// p99 was 1.33x to 1.41x the best static limit's in the steady phase
/// (1.14x to 1.17x now).
///
/// # Round trips that spread
///
/// Where nothing downstream is a bottleneck, the rate follows the limit: it
/// is the limit over the *mean* round trip. A product on the *lowest* round
/// trip then sets about `gain × lowest / mean` of the limit each window,
/// and where round trips spread at random whatever the load (a broker's
/// latency of 1 to 8 ms, say, whose mean is 4.5 times its lowest) it would
/// walk the limit down to its lower bound, though more in flight would
/// move more; BBR's congestion window has that weakness on a jittery path.
/// So the delay in the product is at least the *typical* delay over 1.1
/// ([`typical_delay`](Self::typical_delay)), measured in the last window of
/// a measuring probe, when the limit has stood at half the product for a
/// whole window and a queue it caused has drained:
///
/// * the mean round trip of the small requests
///   ([`Window::small_mean_rtt`](super::Window::small_mean_rtt), the
///   smallest power-of-two size classes holding at least a quarter of
///   the requests), since a larger one's round trip includes
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
/// The 1.1 is for the queue a probe leaves where it does drain: in the
/// simulation (README, "adaptive"), where 16 workers queue 1 KiB requests,
/// a typical delay taken whole holds a little more than the product on the
/// base delay does, and the p99 rises from 1.33x to 1.49x the best static
/// limit's. Without a bottleneck the typical delay is the mean round trip,
/// and the limit grows by about `gain / 1.1` a window.
///
/// **Which measures count.** Behind a bottleneck that the full limit keeps
/// queued (a pool of workers, a shared link), a probe shortens the queue,
/// and the small requests' round trip falls with the limit (by more than
/// two standard errors, against the window before the probe); without one
/// it holds. Where it fell, the rate tells what the probe measured:
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
/// A probe that could not lower the limit by a quarter (a bound, or the
/// other algorithm of a [`Min`](super::Min) holding it lower) cannot tell,
/// and takes what it measures: the next probe that lowers the limit tests
/// it. (Taking no measure where the round trip fell left the product on
/// the base delay, and where round trips spread behind a pool of 50
/// workers it walked the preset's count down to 3 or 4.) But where the
/// round trip fell through it all the same, something else shortened a
/// queue, and what is left of that queue may be in the measure: it counts
/// as one through which the queue stood. In a joint controller that is
/// the other dimension's probe, in the same windows: behind a pool of 4
/// workers with mixed sizes the byte limit's probe keeps its two whole
/// 1 MiB requests and cannot lower it by a quarter, while the count's
/// drains part of the workers' queue. Taken as it was, the workers' queue
/// set the byte limit's typical delay, took it past three 1 MiB requests,
/// and the p99 of the simulation's recovered phase to 1.37x the best
/// static limit's (1.17x now, on its first seed).
///
/// **Behind a bottleneck**, while the last probe that could tell saw one,
/// the typical delay counts at a gain of 1.25 at most: a gain that makes
/// up for the base delay being the fastest round trip, as the preset
/// count's 2 does, would on the mean hold a queue as long as the
/// bottleneck (16 workers: a count of 31-33, against 21-22).
///
/// **A measuring probe waits for the old queue.** It lasts until the
/// requests granted before it have completed (more in flight than its
/// limit, by more than the whole requests of room, or less time since it
/// began than the small requests' round trip before it, their mean plus
/// twice its standard error; at most 40 windows more): where the queue
/// the full limit built takes longer to drain than
/// the probe's own windows, the round trips of its second window are that
/// queue's, and they fed the product (a count started at 1000 on 4
/// workers climbed to 850). Then it measures one window later: the
/// requests granted while the old queue drained waited behind it, and
/// they fill the window in which the last old one completed (a pool that
/// shrank from 64 workers to 4 as a probe began gave a typical delay of
/// 29 ms, against 5.6 before the shrink, and the preset's count stayed at
/// 100 to 200 for 10 s; now 14 to 33). Where that round trip is longer
/// than a window, the last requests granted before the probe complete in
/// its second window though fewer are in flight than its limit: on the
/// simulation's broker 10 ms away (all 1 KiB, a standing queue of 6 ms),
/// 16 of that window's 49 completions were of the old queue, its measure
/// was 28.3 ms where every request granted after the probe took 25.2, and
/// the typical delay took the byte limit from 95 to 100 KiB; with the
/// jitter of real threads (`producer --adaptive --small`), to 128-140 KiB,
/// whose own queue the next probes measured again.
///
/// **A stall of the client's is measured again.** A client that stalls (a
/// process descheduled on busy cores) records nothing while it does, then
/// what completed through the stall at once, late by up to its length:
/// the window in which the stall ended lasts that much longer (only a
/// completion closes a window), and the next holds the late ones, though
/// its fastest request, granted after the stall, took what requests took
/// before. So a measure whose window, or the one before it, lasted more
/// than 1.5 times the window before that, whose small requests' round trip
/// rose above theirs before the probe by more than two standard errors,
/// and whose fastest success took no longer than that, is retaken as if
/// the probe began then (a round trip's wait for the requests granted as
/// the stall ended, the window after it, then the measure), within the
/// probe's 40 windows of waiting. Each of the three happens without a
/// stall (a window that waits for the samples it needs behind a small
/// limit; a downstream that slows as the probe begins), but not all three
/// on a clock that does not stall: the simulation's figures are as they
/// were. Taken as it was, a stall's measure set the product, whose own
/// queue (the gain over 1.1 is above 1) kept the small requests' round
/// trip above it, so that the cap on the current window's never bit: in
/// the demo, whose broker thread slept 35 ms through the first probe,
/// the measure was 47.5 ms where requests took 25.5, and the byte limit
/// stood at 101-210 KiB from the second to the fifth second, where 92
/// serve, until the next measuring probe.
/// A stall that begins and ends within the measuring window stretches no
/// window, and is not seen.
///
/// **Which probes measure.** The first probe comes with the first window
/// that measured a rate and a delay (there is no product to halve before),
/// so the limit does not walk down for a whole `probe_every` first. A
/// probe lasts the second window only where the typical delay may matter:
/// at the first, while the last one measured is what sets the product (its
/// part above the base delay's), and every 4th probe, so that round trips
/// that begin to spread are seen. Elsewhere, as on the simulation's
/// broker, where requests that wait for nothing take the base delay, a
/// probe lasts one window and costs the bottleneck half as much.
///
/// **A fall starts one at once.** A window whose product would take more
/// than half the limit away, with no typical delay setting the product,
/// starts a measuring probe at once: that is what round trips that begin
/// to spread do, and the probe must come before the limit reaches its
/// lower bound. Where a typical delay sets it, such a fall starts one only
/// if a queue stood through the window: a bottleneck appeared, and the
/// typical delay, measured without one, may be what now keeps its queue
/// (after round trips that spread stopped and a pool of 16 workers bound,
/// the count stayed at 92, where 21 keeps the pool busy, until the next
/// probe: up to 5 s, the p99 6.7 ms against 2.0).
#[derive(Debug, Clone)]
pub struct BandwidthDelay {
    gain: f64,
    requests: f64,
    drain: f64,
    per_request: bool,
    /// The delivery rates, and the byte-weighted request sizes, of the
    /// last `bandwidth_windows` windows that measured a rate.
    rates: Windowed<(f64, u64)>,
    /// What the last `bandwidth_windows` windows delivered, for each
    /// window's rate sample.
    deliveries: Deliveries,
    /// The delays of the last `delay_windows` windows that measured one.
    delays: Windowed<f64>,
    probes: Probes,
    typical: TypicalDelay,
    estimate: Estimate,
    /// How long the two windows before this one lasted, in seconds, the
    /// older first (0.0 before any): of those that measured a rate.
    lasted: [f64; 2],
}

impl Default for BandwidthDelay {
    fn default() -> Self {
        BandwidthDelay {
            gain: 1.25,
            requests: 2.0,
            drain: 2.0,
            per_request: false,
            rates: Windowed::new(5),
            deliveries: Deliveries::new(5),
            delays: Windowed::new(100),
            probes: Probes::new(50),
            typical: TypicalDelay::default(),
            estimate: Estimate::default(),
            lasted: [0.0; 2],
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
        self.probes.set_every(probe_every);
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
        self.rates.set_span(bandwidth_windows);
        self.deliveries.set_span(bandwidth_windows);
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
        self.delays.set_span(delay_windows);
        self
    }
}

impl BandwidthDelay {
    /// The bandwidth in bytes per second and the request size, over the
    /// windows its span holds: what the last update used, unless
    /// [`bandwidth_windows`](Self::bandwidth_windows) narrowed the span
    /// since (0.0, 0 before any).
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

    /// The base delay in seconds, over the windows its span holds: what the
    /// last update used, unless [`delay_windows`](Self::delay_windows)
    /// narrowed the span since (`None` before any).
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
        self.typical.seconds()
    }
}

/// A window's rate sample spans the newest windows that delivered at least
/// this many requests of its byte-weighted size (within the bandwidth
/// filter's span): a request more or less then moves it by an eighth.
const RATE_REQUESTS: f64 = 8.0;

impl Algorithm for BandwidthDelay {
    fn proposed(&self) -> Option<u64> {
        self.estimate.proposed()
    }

    fn update(&mut self, window: &Window, dim: &Dimension) -> u64 {
        self.rates.reserve();
        self.deliveries.reserve();
        self.delays.reserve();
        let limit = self.estimate.current(dim.limit);
        let (delivered, rate, size, min_rtt_size) = if self.per_request {
            (window.successes, window.success_rate(), 1, 0)
        } else {
            (
                window.delivered_bytes,
                window.delivery_rate(),
                window.weighted_size,
                window.min_rtt_bytes,
            )
        };
        if rate <= 0.0 {
            // Nothing delivered (or no bytes reported), or a window too
            // short for the clock: no rate, and no saying the downstream
            // delivers nothing. Drops alone are an outage: a probe under
            // way ends, so that a partner in `Min` backs off from the limit
            // in force, not from the one before the probe at every window.
            if window.drops > 0 {
                self.probes.abandon();
            }
            return self.estimate.set(limit);
        }
        if self.probes.under_way().is_some() {
            // More in flight than the limit in force, by more than the
            // whole requests of room (a product that moved a little since
            // the probe began is no queue), means requests granted before
            // the probe are still in flight: a queue that has not drained,
            // whose round trips a measure would take.
            let room = self.requests * self.bandwidth().1 as f64;
            let undrained = dim.peak_in_flight as f64 > dim.limit as f64 + room;
            let elapsed = window.elapsed.as_secs_f64();
            let late = self
                .probes
                .under_way()
                .is_some_and(|probe| recorded_late(window, self.lasted, probe.rtt_before));
            if let Some(probe) = self.probes.count_probe_window(undrained, late, elapsed) {
                self.typical.take(&Measure {
                    lowered: limit / probe.limit_before,
                    rtt_before: probe.rtt_before,
                    rtt_now: small_rtt(window),
                    rate,
                    bandwidth: self.bandwidth().0,
                    fastest_queued: self.queue_stood(window, min_rtt_size),
                });
            }
        }
        self.lasted = [self.lasted[1], window.elapsed.as_secs_f64()];
        // The rate sample: over the newest windows that delivered at least
        // `RATE_REQUESTS` requests (of this window's byte-weighted size).
        let sampled = self.deliveries.rate(
            delivered as f64,
            window.elapsed.as_secs_f64(),
            RATE_REQUESTS * size as f64,
        );
        let sample = (sampled, size);
        self.rates.push(sample);
        let (bandwidth, _) = self.bandwidth();
        let delay = fastest_delay(window, min_rtt_size, bandwidth);
        if let Some(delay) = delay {
            self.delays.push(delay);
        }
        // The lowest of the last `delay_windows` windows, this one's included.
        let Some(base_delay) = self.base_delay() else {
            return self.estimate.set(limit);
        };
        let drained = self.queued_through(delay, base_delay);
        if drained {
            // A queue stood through the whole window: the downstream was
            // busy, so what it delivered is what it delivers now. Forget
            // the faster past, the windows before it included, but not what
            // one window cannot tell (see "Drain" above): the rate is the
            // lower of its own and its sample, the request size the largest
            // the filter holds.
            let (_, request) = self.bandwidth();
            self.deliveries.restart();
            self.rates.restart((rate.min(sampled), request));
        }
        let (bandwidth, request) = self.bandwidth();
        let typical = self.typical.part_in(window, self.gain);
        let product = bandwidth * (self.gain * base_delay).max(typical);
        let whole_requests = self.requests * request as f64;
        // Halve the part that can queue; the whole requests stay, so the
        // bottleneck keeps working while the queue drains.
        let probing = 0.5 * product + whole_requests;
        self.probes.count_window();
        if self.probes.under_way().is_some() {
            return self.estimate.set(probing);
        }
        let sets_product = self.typical.sets_product(self.gain, base_delay);
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
        let falling = product + whole_requests < 0.5 * limit && (drained || !sets_product);
        if self
            .probes
            .begin(falling, sets_product, limit, small_rtt(window))
        {
            return self.estimate.set(probing);
        }
        self.estimate.set(product + whole_requests)
    }

    fn before_probe(&self) -> Option<u64> {
        // `as` floors, as the limit in force was, and saturates.
        self.probes
            .under_way()
            .map(|probe| probe.limit_before as u64)
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
