//! Where completions are summed until their window closes: one set of sums
//! per stripe, and each thread records into its own stripe, so that
//! threads completing at once write different cache lines and rarely meet
//! on a lock. The window's closer, under the controller's lock, takes the
//! busy stripes' sums and merges them.
//!
//! One thread alone always records into the same stripe, and a window of
//! one stripe's sums is those sums as they were, so a single-threaded
//! caller (a simulation in virtual time) gets the very windows it got when
//! there was one set of sums. (But for a completion made while the
//! thread's thread-locals are torn down: it records into stripe 0.)

use crossbeam_utils::CachePadded;

use super::tracked::Outcome;
use super::window::{Accumulator, Window};
use crate::sync::{AtomicU64, Mutex, Ordering, thread_index};
use std::time::Duration;

/// At most this many stripes: 16 take contention down sixteenfold where
/// more cores complete at once, and keep a controller's sums within about
/// 30 KiB (each stripe holds a window's size classes, about 1.7 KiB).
const MAX_STRIPES: usize = 16;

/// A window's completions, summed per stripe.
pub(crate) struct Stripes<const N: usize> {
    /// A power of two in length, so a thread's stripe is a mask away.
    stripes: Box<[CachePadded<Stripe<N>>]>,
}

struct Stripe<const N: usize> {
    /// The samples in `sums`, readable without its lock: written only
    /// under it (so it never runs ahead of what `sums` holds), read by the
    /// closer to learn whether a window holds enough. Relaxed throughout:
    /// the figure is only a trigger; what a window holds is read under the
    /// lock, which orders it.
    samples: AtomicU64,
    sums: Mutex<Sums<N>>,
}

/// What one stripe gathered since its sums were last taken.
struct Sums<const N: usize> {
    window: Accumulator,
    /// The most the semaphore had in flight, per dimension, at any of
    /// these completions.
    peak_in_flight: [u64; N],
}

impl<const N: usize> Default for Sums<N> {
    fn default() -> Self {
        Self {
            window: Accumulator::default(),
            peak_in_flight: [0; N],
        }
    }
}

impl<const N: usize> Sums<N> {
    /// Adds `other`'s completions to these.
    fn merge(&mut self, other: &Self) {
        self.window.merge(&other.window);
        for (peak, other) in self.peak_in_flight.iter_mut().zip(other.peak_in_flight) {
            *peak = (*peak).max(other);
        }
    }
}

impl<const N: usize> Stripes<N> {
    /// As many stripes as the machine runs threads at once (rounded up to
    /// a power of two), at most [`MAX_STRIPES`]; two under loom, whatever
    /// the host, so that its models always see two threads' stripes.
    ///
    /// `available_parallelism` reads the process's CPU set and quota (a
    /// few system calls): once per controller, at its build.
    pub(crate) fn new() -> Self {
        if cfg!(loom) {
            return Self::with_stripes(2);
        }
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self::with_stripes(threads.next_power_of_two().min(MAX_STRIPES))
    }

    fn with_stripes(count: usize) -> Self {
        debug_assert!(count.is_power_of_two());
        let stripes = (0..count)
            .map(|_| {
                CachePadded::new(Stripe {
                    samples: AtomicU64::new(0),
                    sums: Mutex::new(Sums::default()),
                })
            })
            .collect();
        Self { stripes }
    }

    /// Counts one completion, in the calling thread's stripe.
    pub(crate) fn record(&self, rtt: Duration, outcome: Outcome, in_flight: [u64; N]) {
        // Threads are numbered in the order they first ask, so the first
        // threads of a pool get stripes of their own.
        self.record_in(thread_index(), rtt, outcome, in_flight);
    }

    /// Counts one completion in stripe `slot` (masked).
    fn record_in(&self, slot: usize, rtt: Duration, outcome: Outcome, in_flight: [u64; N]) {
        let stripe = &self.stripes[slot & (self.stripes.len() - 1)];
        let mut sums = stripe.sums.lock();
        sums.window.record(rtt, outcome);
        for (peak, now) in sums.peak_in_flight.iter_mut().zip(in_flight) {
            *peak = (*peak).max(now);
        }
        // Under the lock: the count never runs ahead of the sums.
        let samples = sums.window.samples();
        stripe.samples.store(samples, Ordering::Relaxed);
    }

    /// How many samples the stripes hold. Called, as [`take`](Self::take)
    /// is, under the controller's lock, so no take runs meanwhile: it is
    /// then at most what a take would find, since only a take lowers a
    /// count, and a count is raised only once its sample is in.
    pub(crate) fn samples(&self) -> u64 {
        self.stripes.iter().fold(0u64, |total, stripe| {
            total.saturating_add(stripe.samples.load(Ordering::Relaxed))
        })
    }

    /// Every stripe's completions as one window of `elapsed`, and the
    /// most in flight at any of them; the stripes start over, empty.
    /// Called under the controller's lock.
    ///
    /// Each completion is in exactly one take: the first after its
    /// stripe's lock was let go, or a later one if that take read its
    /// stripe's count from before it (and so left the stripe alone). A
    /// stripe whose count reads 0 is neither locked nor cleared; where one
    /// stripe alone is busy (one thread), its sums give the window where
    /// they lie, as the single set of sums did: a close costs what the busy
    /// stripes hold, and moves nothing.
    pub(crate) fn take(&self, elapsed: Duration) -> (Window, [u64; N]) {
        let mut busy = self
            .stripes
            .iter()
            .filter(|stripe| stripe.samples.load(Ordering::Relaxed) > 0);
        let Some(first) = busy.next() else {
            return (Accumulator::default().finish(elapsed), [0; N]);
        };
        let Some(second) = busy.next() else {
            return first.take_finished(elapsed);
        };
        let mut all = first.take_sums();
        for stripe in std::iter::once(second).chain(busy) {
            all.merge(&stripe.take_sums());
        }
        (all.window.finish(elapsed), all.peak_in_flight)
    }
}

impl<const N: usize> Stripe<N> {
    /// The sums, moved out; the stripe starts over, empty.
    fn take_sums(&self) -> Sums<N> {
        let mut sums = self.sums.lock();
        self.samples.store(0, Ordering::Relaxed);
        std::mem::take(&mut *sums)
    }

    /// The sums as a window of `elapsed`, and their peak, read where they
    /// lie (no 1.7 KiB move); the stripe starts over, empty.
    fn take_finished(&self, elapsed: Duration) -> (Window, [u64; N]) {
        let mut sums = self.sums.lock();
        self.samples.store(0, Ordering::Relaxed);
        let taken = (sums.window.finish(elapsed), sums.peak_in_flight);
        *sums = Sums::default();
        taken
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn success(bytes: u64) -> Outcome {
        Outcome::Success {
            delivered: Some(bytes),
        }
    }

    #[test]
    fn a_take_holds_every_stripes_completions_once() {
        let stripes = Arc::new(Stripes::<2>::with_stripes(4));
        let threads: Vec<_> = (0..6u64)
            .map(|t| {
                let stripes = Arc::clone(&stripes);
                std::thread::spawn(move || {
                    for i in 0..100 {
                        let rtt = Duration::from_micros(10 + t * 100 + i);
                        stripes.record(rtt, success(1000 + t), [t + 1, i]);
                    }
                    stripes.record(Duration::ZERO, Outcome::Dropped, [0, 0]);
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(stripes.samples(), 606);
        let (window, peak) = stripes.take(Duration::from_secs(1));
        assert_eq!((window.successes, window.drops), (600, 6));
        assert_eq!(
            window.delivered_bytes,
            (0..6).map(|t| 100 * (1000 + t)).sum()
        );
        assert_eq!(window.min_rtt, Duration::from_micros(10));
        assert_eq!(window.min_rtt_bytes, 1000);
        assert_eq!(window.max_rtt, Duration::from_micros(10 + 500 + 99));
        assert_eq!(peak, [6, 99]);
        // Taken once: the stripes start over.
        assert_eq!(stripes.samples(), 0);
        let (window, peak) = stripes.take(Duration::from_secs(1));
        assert_eq!((window.successes + window.drops, peak), (0, [0, 0]));
    }

    /// Records three completions in the given stripes, then takes them.
    fn taken_from(slots: [usize; 3]) -> (Window, [u64; 2], Stripes<2>) {
        let stripes = Stripes::<2>::with_stripes(4);
        let ms = Duration::from_millis;
        stripes.record_in(slots[0], ms(7), success(700), [3, 700]);
        stripes.record_in(slots[1], ms(2), success(200), [5, 300]);
        stripes.record_in(slots[2], ms(9), Outcome::Dropped, [1, 900]);
        let (window, peak) = stripes.take(ms(100));
        (window, peak, stripes)
    }

    #[test]
    fn one_busy_stripe_or_several_give_the_same_window() {
        let (alone, alone_peak, _) = taken_from([1, 1, 1]);
        // Slot 6 is stripe 2: masks wrap.
        for slots in [[0, 1, 2], [3, 3, 0], [6, 1, 1]] {
            let (spread, spread_peak, stripes) = taken_from(slots);
            assert_eq!(spread, alone, "slots {slots:?}");
            assert_eq!(spread_peak, alone_peak);
            assert_eq!(stripes.samples(), 0, "every busy stripe emptied");
        }
        assert_eq!((alone.successes, alone.drops), (2, 1));
        assert_eq!(
            (alone.min_rtt, alone.min_rtt_bytes),
            (Duration::from_millis(2), 200)
        );
        assert_eq!(alone_peak, [5, 900]);
    }

    #[test]
    fn a_stripe_whose_count_reads_zero_is_left_for_the_next_take() {
        let stripes = Stripes::<2>::with_stripes(2);
        stripes.record_in(0, Duration::from_millis(1), success(1), [1, 1]);
        stripes.record_in(1, Duration::from_millis(1), success(2), [1, 2]);
        // As a count not yet seen by the taker: its sums stay where they are.
        stripes.stripes[1].samples.store(0, Ordering::Relaxed);
        let (window, _) = stripes.take(Duration::from_millis(10));
        assert_eq!(window.delivered_bytes, 1);
        stripes.stripes[1].samples.store(1, Ordering::Relaxed);
        let (window, _) = stripes.take(Duration::from_millis(10));
        assert_eq!(window.delivered_bytes, 2);
    }

    #[test]
    fn merging_stripes_gives_the_window_one_set_of_sums_gives() {
        let sizes = [1u64, 700, 1024, 5000, 1 << 20, 3, 64 << 20];
        let mut one = Accumulator::default();
        let mut parts = [Accumulator::default(), Accumulator::default()];
        for (i, &bytes) in sizes.iter().cycle().take(50).enumerate() {
            let rtt = Duration::from_nanos(1_000_000 + (i as u64 * 7919) % 5_000_000);
            let outcome = if i % 9 == 4 {
                Outcome::Dropped
            } else {
                success(bytes)
            };
            one.record(rtt, outcome);
            parts[i % 2].record(rtt, outcome);
        }
        let mut merged = Accumulator::default();
        merged.merge(&parts[0]);
        merged.merge(&parts[1]);
        let elapsed = Duration::from_millis(100);
        let (expected, got) = (one.finish(elapsed), merged.finish(elapsed));
        // Exact in every integer figure; the float sums may round apart.
        assert_eq!(
            (got.successes, got.drops, got.delivered_bytes),
            (expected.successes, expected.drops, expected.delivered_bytes)
        );
        assert_eq!(
            (got.min_rtt, got.min_rtt_bytes),
            (expected.min_rtt, expected.min_rtt_bytes)
        );
        assert_eq!(
            (got.mean_rtt, got.max_rtt),
            (expected.mean_rtt, expected.max_rtt)
        );
        assert_eq!(got.small_mean_rtt, expected.small_mean_rtt);
        let error = |w: &crate::adaptive::Window| w.small_rtt_error.as_nanos() as f64;
        assert!((error(&got) - error(&expected)).abs() <= 1.0 + error(&expected) * 1e-9);
        assert!(got.weighted_size.abs_diff(expected.weighted_size) <= 1);
    }

    #[test]
    fn merging_keeps_the_shortest_round_trip_and_on_a_tie_the_first() {
        let ms = Duration::from_millis;
        let of = |rtt, bytes| {
            let mut sums = Accumulator::default();
            sums.record(rtt, success(bytes));
            sums
        };
        let min_of = |first: &Accumulator, second: &Accumulator| {
            let mut merged = Accumulator::default();
            merged.merge(first);
            merged.merge(second);
            let window = merged.finish(ms(100));
            (window.min_rtt, window.min_rtt_bytes)
        };
        // Shorter in the second: it replaces the first's.
        assert_eq!(min_of(&of(ms(5), 10), &of(ms(3), 20)), (ms(3), 20));
        // Longer in the second: the first's stays.
        assert_eq!(min_of(&of(ms(3), 10), &of(ms(5), 20)), (ms(3), 10));
        // A tie: the first's stays, as it does within one set of sums.
        assert_eq!(min_of(&of(ms(3), 10), &of(ms(3), 20)), (ms(3), 10));
    }

    #[test]
    fn merging_empty_sums_changes_nothing_bit_for_bit() {
        let mut one = Accumulator::default();
        for i in 0..40u64 {
            one.record(
                Duration::from_nanos(1_234_567 + i * 1_003),
                success(i * 977 + 1),
            );
        }
        let mut merged = Accumulator::default();
        merged.merge(&Accumulator::default());
        merged.merge(&one);
        merged.merge(&Accumulator::default());
        let elapsed = Duration::from_millis(25);
        assert_eq!(merged.finish(elapsed), one.finish(elapsed));
    }
}
