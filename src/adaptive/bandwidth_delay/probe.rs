//! When [`BandwidthDelay`](super::BandwidthDelay) probes, for how long, and
//! which of its probes measure the typical delay.
//!
//! A probe runs the limit at half the product for a few windows, so that a
//! queue the full limit built drains. Every window the algorithm updates
//! on (one that measured a rate) is counted here, in this order: the probe
//! under way counts it ([`Probes::count_probe_window`]), every window counts
//! towards the schedule ([`Probes::count_window`]), and a window with no
//! probe under way may begin one ([`Probes::begin`]).
//!
//! The states of the schedule, and what ends each (a measuring probe's
//! measure is the round trips of its last window):
//!
//! ```text
//! state       lasts                          then
//! ─────────   ────────────────────────────   ───────────────────────────────────
//! no probe    until one is due, the first    draining; measuring where the
//!             (once there is a product),     typical delay may matter (see
//!             or the product falls           `begin`)
//! draining    1 window                       no probe
//! measuring   2 windows                      waiting while the old queue is in
//!                                            flight; else measure, no probe
//! waiting     a window at a time, while      settling once the old queue is
//!             the old queue is in flight     gone; after 40 windows, measure
//!             (or less than the round trip   as it stands, no probe
//!             before it has passed)
//! settling    1 window                       measure, no probe
//! ```
//!
//! A window that would measure but holds completions a stall of the client
//! recorded late (see `typical::recorded_late`) is no measure: the probe
//! waits again as if it began then, within the same 40 windows.
//!
//! A window of drops alone (an outage) ends any probe at once, without a
//! measure ([`Probes::abandon`]); the next probe that begins measures.

/// The windows a probe that measures the typical delay lasts: the first
/// one's completions were mostly admitted at the full limit, and carry its
/// queue (measured there, the typical delay took the 1 KiB simulation's
/// p99 from 1.33x to 1.49x the best static limit's); the last one measures
/// the typical delay.
const MEASURING_WINDOWS: u32 = 2;

/// A probe that does not need the typical delay still measures it every
/// this many probes (every 20 s at the preset's spans, with a probe every
/// 5 s), so that round trips that begin to spread are seen; its second
/// window costs one window at half the product in `MEASURE_EVERY` probes.
const MEASURE_EVERY: u32 = 4;

/// The most windows a measuring probe waits beyond its own for the
/// requests granted before it to complete, the window after they did
/// included (1 s at the preset's 25 ms windows): a queue at the full limit
/// that takes longer than that to drain is measured as it stands.
const MAX_WAIT: u32 = 40;

/// The schedule of probes, and the probe under way.
#[derive(Debug, Clone)]
pub(super) struct Probes {
    /// Windows from one due probe to the next (0: never probe).
    every: u32,
    /// Windows counted since the last due probe began.
    since_due: u32,
    /// Whether a probe has begun since the start.
    begun: bool,
    /// Probes begun since the last that measured the typical delay.
    since_measure: u32,
    under_way: Option<Probe>,
}

/// A probe under way.
#[derive(Debug, Clone, Copy)]
pub(super) struct Probe {
    /// Windows left, of its own or of its wait for the old queue.
    windows_left: u32,
    /// Whether its last window measures the typical delay.
    measures: bool,
    /// Windows it has waited beyond its own for the requests granted before
    /// it, its settling window and retakes included (at `MAX_WAIT` it
    /// measures as it stands).
    waited: u32,
    /// Whether its next window is the last, the one after its wait.
    settling: bool,
    /// The limit in force when it began.
    pub(super) limit_before: f64,
    /// The small requests' mean round trip and its standard error in the
    /// window before it, in seconds.
    pub(super) rtt_before: (f64, f64),
    /// Seconds its windows counted so far lasted.
    age: f64,
}

impl Probes {
    pub(super) fn new(every: u32) -> Self {
        Probes {
            every,
            since_due: 0,
            begun: false,
            // So that the first probe measures.
            since_measure: MEASURE_EVERY,
            under_way: None,
        }
    }

    pub(super) fn set_every(&mut self, every: u32) {
        self.every = every;
    }

    /// The probe under way, if any.
    pub(super) fn under_way(&self) -> Option<&Probe> {
        self.under_way.as_ref()
    }

    /// Counts a window of the probe under way, `elapsed` seconds long.
    /// `undrained`: whether requests granted before the probe were still in
    /// flight through it. So they were, too, where the window began less
    /// than the round trip before the probe (the small requests' mean plus
    /// twice its standard error) after the probe began: the last of them,
    /// granted as it began, complete about that long after, however few
    /// they are (where the round trip exceeds a window, they are fewer
    /// than the probe's limit, and the measure took their queue).
    ///
    /// A measuring probe whose own windows are over lasts, a window at a
    /// time, while requests granted before it are in flight (at most
    /// `MAX_WAIT` windows in all), and then one window more, whatever that
    /// shows: requests granted while the old queue drained waited behind
    /// it, and the window in which the last of the old ones completed is
    /// full of them.
    ///
    /// `late`: whether this window holds completions that a stall of the
    /// client recorded late. Where it would be the measure, it is not: the
    /// probe goes on as if it began as this window ended (the requests
    /// granted as the stall ended, at once, are the old queue now), within
    /// the same `MAX_WAIT` windows, after which it measures as it stands.
    /// Elsewhere it changes nothing.
    ///
    /// Returns the probe if this window was the last of a measuring one:
    /// its round trips are the measure.
    pub(super) fn count_probe_window(
        &mut self,
        undrained: bool,
        late: bool,
        elapsed: f64,
    ) -> Option<Probe> {
        let probe = self.under_way.as_mut()?;
        let (rtt, error) = probe.rtt_before;
        let undrained = undrained || probe.age < rtt + 2.0 * error;
        probe.age += elapsed;
        probe.windows_left -= 1;
        if probe.windows_left == 0 && probe.measures && probe.waited < MAX_WAIT {
            let measures_now = probe.settling || (!undrained && probe.waited == 0);
            if measures_now && late {
                // Retake it, as if the probe began now: a round trip's
                // wait, the window after it, then the measure.
                probe.age = 0.0;
                probe.settling = false;
                probe.waited += 1;
                probe.windows_left = 1;
            } else if probe.settling {
                // The measure.
            } else if undrained {
                probe.waited += 1;
                probe.windows_left = 1;
            } else if probe.waited > 0 {
                // Settle: the next window is the last.
                probe.settling = true;
                probe.waited += 1;
                probe.windows_left = 1;
            }
        }
        if probe.windows_left > 0 {
            return None;
        }
        let ended = self.under_way.take()?;
        if !ended.measures {
            return None;
        }
        self.since_measure = 0;
        Some(ended)
    }

    /// Ends the probe under way, if any, without a measure: for a window
    /// of drops alone, an outage, which can neither drain a queue nor
    /// measure a delay. Its wait would last as long as the outage, and
    /// while it lasts a partner in [`Min`](crate::adaptive::Min) is shown
    /// the limit from before the probe, so that its back-off, taken from
    /// that same limit at every window, would never compound. A measuring
    /// probe's measure is owed to the next probe.
    pub(super) fn abandon(&mut self) {
        if self.under_way.take().is_some_and(|probe| probe.measures) {
            self.since_measure = MEASURE_EVERY;
        }
    }

    /// Counts a window towards the next due probe (a probe's own windows
    /// count, so that the schedule holds).
    pub(super) fn count_window(&mut self) {
        self.since_due = self.since_due.saturating_add(1);
    }

    /// Begins a probe, with no probe under way, if one is due, if none has
    /// begun yet (the first comes as soon as there is a product to halve,
    /// to measure the typical delay), or if the product is `falling`;
    /// returns whether one began.
    ///
    /// It measures the typical delay where that may matter: at the first,
    /// on a fall (round trips that begin to spread, or a new bottleneck),
    /// while the typical delay `sets_product`, and every `MEASURE_EVERY`th
    /// probe (round trips may begin to spread). Elsewhere one window drains
    /// the queue, and costs the bottleneck half as much.
    pub(super) fn begin(
        &mut self,
        falling: bool,
        sets_product: bool,
        limit_before: f64,
        rtt_before: (f64, f64),
    ) -> bool {
        debug_assert!(self.under_way.is_none());
        // At least one full window separates a measuring probe's two from
        // the next (but for `probe_every(1)`, which probes always).
        let every = if self.every > 1 {
            self.every.max(MEASURING_WINDOWS + 1)
        } else {
            self.every
        };
        let due = self.since_due >= every;
        if self.every == 0 || !(due || !self.begun || falling) {
            return false;
        }
        if due {
            self.since_due = 0;
        }
        self.begun = true;
        self.since_measure = self.since_measure.saturating_add(1);
        let measures = falling || self.since_measure >= MEASURE_EVERY || sets_product;
        self.under_way = Some(Probe {
            windows_left: if measures { MEASURING_WINDOWS } else { 1 },
            measures,
            waited: 0,
            settling: false,
            limit_before,
            rtt_before,
            age: 0.0,
        });
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a window did: whether it was the last of a measuring probe,
    /// and whether a probe ran through it or began after it (the limit it
    /// sets is then half the product).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    struct Seen {
        measured: bool,
        half: bool,
    }

    /// Runs `windows` windows in `BandwidthDelay::update`'s order;
    /// `undrained(n)` says whether the old queue was in flight through
    /// window `n` (from 1), `falling(n)` whether its product fell.
    fn run(
        probes: &mut Probes,
        windows: u32,
        undrained: impl Fn(u32) -> bool,
        falling: impl Fn(u32) -> bool,
    ) -> Vec<Seen> {
        (1..=windows)
            .map(|n| {
                let measured = probes.under_way().is_some()
                    && probes
                        .count_probe_window(undrained(n), false, 0.025)
                        .is_some();
                probes.count_window();
                let half = probes.under_way().is_some()
                    || probes.begin(falling(n), false, 100.0, (0.0, 0.0));
                Seen { measured, half }
            })
            .collect()
    }

    /// The windows (from 1) at half the product.
    fn half(seen: &[Seen]) -> Vec<usize> {
        (1..=seen.len()).filter(|&n| seen[n - 1].half).collect()
    }

    /// The windows (from 1) that measured the typical delay.
    fn measured(seen: &[Seen]) -> Vec<usize> {
        (1..=seen.len()).filter(|&n| seen[n - 1].measured).collect()
    }

    #[test]
    fn the_first_probe_comes_at_once_and_measures_then_one_is_due_every_so_many_windows() {
        let mut probes = Probes::new(10);
        let seen = run(&mut probes, 62, |_| false, |_| false);
        // The first measures (two windows, the measure on the one after
        // them); then every 10th window, every 4th probe measuring.
        assert_eq!(half(&seen), [1, 2, 10, 20, 30, 40, 41, 50, 60]);
        assert_eq!(measured(&seen), [3, 42]);
    }

    #[test]
    fn a_fall_begins_a_measuring_probe_between_due_ones() {
        let mut probes = Probes::new(10);
        let seen = run(&mut probes, 21, |_| false, |n| n == 5);
        assert_eq!(half(&seen), [1, 2, 5, 6, 10, 20]);
        assert_eq!(measured(&seen), [3, 7]);
    }

    #[test]
    fn a_measuring_probe_waits_for_the_old_queue_then_measures_one_window_after() {
        let mut probes = Probes::new(100);
        // The old queue is in flight through windows 2 to 4.
        let seen = run(&mut probes, 8, |n| (2..=4).contains(&n), |_| false);
        // Windows 1-2 are the probe's own; it waits through 3 and 4, then
        // one window more (5) in which the last old request completed, and
        // the one after that measures.
        assert_eq!(half(&seen), [1, 2, 3, 4, 5]);
        assert_eq!(measured(&seen), [6]);
    }

    #[test]
    fn a_measuring_probe_waits_a_round_trip_before_it_for_the_requests_granted_before_it() {
        let mut probes = Probes::new(100);
        // The small requests took 31 ms (standard error 0.2) before it.
        assert!(probes.begin(false, false, 100.0, (0.031, 0.0002)));
        // In 25 ms windows, never more in flight than its limit: its second
        // window began 25 ms after it, before the last request granted
        // before it completed, so it waits; the third began at 50 ms, and
        // settles; the fourth measures.
        assert!(probes.count_probe_window(false, false, 0.025).is_none());
        assert!(probes.count_probe_window(false, false, 0.025).is_none());
        assert!(probes.count_probe_window(false, false, 0.025).is_none());
        assert!(probes.count_probe_window(false, false, 0.025).is_some());
        // Where the round trip is shorter than a window, the second
        // measures (a fall begins this one).
        assert!(probes.begin(true, false, 100.0, (0.006, 0.0002)));
        assert!(probes.count_probe_window(false, false, 0.025).is_none());
        assert!(probes.count_probe_window(false, false, 0.025).is_some());
    }

    #[test]
    fn a_measure_recorded_late_is_retaken_a_round_trip_later() {
        let mut probes = Probes::new(100);
        // The small requests took 20 ms before it; 25 ms windows.
        assert!(probes.begin(false, false, 100.0, (0.020, 0.0002)));
        // Late completions in a window it does not measure change nothing.
        assert!(probes.count_probe_window(false, true, 0.025).is_none());
        // Its second window would measure, but holds completions a stall
        // recorded late: requests granted as the stall ended complete a
        // round trip later, so it waits one window (the round trip is not
        // over when it begins), settles in the next, and measures in the
        // one after.
        assert!(probes.count_probe_window(false, true, 0.025).is_none());
        assert!(probes.count_probe_window(false, false, 0.025).is_none());
        assert!(probes.count_probe_window(false, false, 0.025).is_none());
        assert!(probes.count_probe_window(false, false, 0.025).is_some());
    }

    #[test]
    fn measures_recorded_late_are_retaken_within_max_wait_windows() {
        let mut probes = Probes::new(1000);
        assert!(probes.begin(false, false, 100.0, (0.020, 0.0002)));
        // Every window late: its own two, then `MAX_WAIT` more, and the
        // last measures as it stands.
        let windows = (1..)
            .find(|_| probes.count_probe_window(false, true, 0.025).is_some())
            .unwrap();
        assert_eq!(windows, MEASURING_WINDOWS + MAX_WAIT);
    }

    #[test]
    fn a_measuring_probe_waits_at_most_max_wait_windows() {
        let mut probes = Probes::new(1000);
        let seen = run(&mut probes, 60, |_| true, |_| false);
        // Begun after window 1, its own two windows, then MAX_WAIT more.
        let last = 1 + MEASURING_WINDOWS as usize + MAX_WAIT as usize;
        assert_eq!(half(&seen), (1..last).collect::<Vec<_>>());
        assert_eq!(measured(&seen), [last]);
    }

    #[test]
    fn a_probe_that_does_not_measure_does_not_wait() {
        let mut probes = Probes::new(3);
        probes.begun = true;
        probes.since_measure = 0;
        let seen = run(&mut probes, 7, |_| true, |_| false);
        assert_eq!(half(&seen), [3, 6]);
        assert_eq!(measured(&seen), []);
    }

    #[test]
    fn an_abandoned_probe_ends_at_once_and_owes_its_measure_to_the_next() {
        let mut probes = Probes::new(10);
        // The first probe measures; abandoned in its first window.
        assert!(probes.begin(false, false, 100.0, (0.0, 0.0)));
        probes.abandon();
        assert!(probes.under_way().is_none());
        // Not due again for 10 windows, and then it measures, though
        // fewer than `MEASURE_EVERY` probes have begun since one did.
        let seen = run(&mut probes, 13, |_| false, |_| false);
        assert_eq!(half(&seen), [10, 11]);
        assert_eq!(measured(&seen), [12]);
        // One that does not measure owes nothing; with none under way,
        // abandoning changes nothing.
        let mut plain = Probes::new(10);
        plain.begun = true;
        plain.since_measure = 0;
        plain.since_due = 10;
        assert!(plain.begin(false, false, 100.0, (0.0, 0.0)));
        assert!(!plain.under_way().unwrap().measures);
        plain.abandon();
        plain.abandon();
        assert!(plain.under_way().is_none());
        assert_eq!(plain.since_measure, 1);
    }

    #[test]
    fn probe_every_zero_never_probes_and_one_always_does() {
        let mut never = Probes::new(0);
        let seen = run(&mut never, 20, |_| false, |_| true);
        assert_eq!(half(&seen), []);
        let mut always = Probes::new(1);
        let seen = run(&mut always, 20, |_| false, |_| false);
        assert_eq!(half(&seen), (1..=20).collect::<Vec<_>>());
        // Every 4th probe measures: the first (measured at window 3); the
        // probes begun at windows 3, 4 and 5 last one window each, and
        // window 6 begins the next measuring one.
        assert_eq!(measured(&seen)[..2], [3, 8]);
    }

    #[test]
    fn probe_every_two_leaves_a_full_window_between_probes() {
        let mut probes = Probes::new(2);
        let seen = run(&mut probes, 10, |_| false, |_| false);
        // As 3 would: the measure ends the first probe at window 3, which
        // begins the next; then every 3rd.
        assert_eq!(half(&seen), [1, 2, 3, 6, 9]);
        assert_eq!(measured(&seen), [3]);
    }
}
