//! The adaptive controller's completions: each thread sums its own in a
//! stripe, and whichever completion finds the window due takes every
//! stripe's sums under the controller's lock.

use std::sync::Arc;
use std::time::{Duration, Instant};

use loom::thread;
use multisem::adaptive::{Algorithm, Controller, Dimension, Outcome, Window};

use crate::support::{Layout, assert_quiescent, models};

models! {
    completions_racing_a_close_each_count_once: 3,
    a_window_holds_the_samples_its_counts_claimed: 3,
    completions_under_windows_of_no_samples_close_none_empty: 3,
}

/// Counts the successes and drops of every window it is shown, the
/// windows, and those that held fewer samples than the window asks (or
/// none, where it asks for none). Its lock is std's, not loom's: the
/// controller calls it under its own lock, so nothing contends for it.
struct Tally {
    tally: Arc<std::sync::Mutex<[u64; 4]>>,
    least: u64,
}

impl Algorithm for Tally {
    fn update(&mut self, window: &Window, dim: &Dimension) -> u64 {
        let mut tally = self.tally.lock().unwrap();
        tally[0] += window.successes;
        tally[1] += window.drops;
        tally[2] += 1;
        tally[3] += u64::from(window.successes + window.drops < self.least);
        dim.limit
    }
}

/// Tracked permits on a `[3, 3]` semaphore whose controller closes a window
/// of no length once it holds `min_samples`: one thread completes
/// `successes` of them one after the other, another a drop, at once;
/// returns the tally and the controller's count of windows.
fn complete_at_once(layout: Layout, min_samples: u64, successes: usize) -> ([u64; 4], u64) {
    let cap = [3, 3];
    let sem = layout.arc(cap);
    let tally = Arc::new(std::sync::Mutex::new([0; 4]));
    let ctl = Controller::builder(Arc::clone(&sem))
        .limit(
            0,
            3..=3,
            Tally {
                tally: Arc::clone(&tally),
                least: min_samples.max(1),
            },
        )
        .window(Duration::ZERO, min_samples)
        .build();
    let now = Instant::now();
    let delivered: Vec<_> = (0..successes)
        .map(|_| ctl.try_acquire_at([1, 1], now).unwrap())
        .collect();
    let dropped = ctl.try_acquire_at([1, 1], now).unwrap();

    let first = thread::spawn(move || {
        for permit in delivered {
            permit.complete_at(Outcome::delivered(1), now);
        }
    });
    let second = thread::spawn(move || dropped.complete_at(Outcome::Dropped, now));
    first.join().unwrap();
    second.join().unwrap();

    let windows = ctl.windows();
    drop(ctl);
    assert_quiescent(&sem, cap);
    let tally = *tally.lock().unwrap();
    (tally, windows)
}

/// Two tracked permits complete on two threads at once, into stripes of
/// their own, under windows of no length and two samples: whichever
/// completes second must find both samples, whatever it read of the other
/// stripe's count without a lock, and close one window holding exactly
/// both. (The count a completion reads under the controller's lock was
/// stored before the other completion took that lock; a close that read
/// the counts before taking it could leave both samples to no window.)
fn completions_racing_a_close_each_count_once(layout: Layout) {
    let (tally, windows) = complete_at_once(layout, 2, 1);
    assert_eq!(tally, [1, 1, 1, 0], "[successes, drops, windows, short]");
    assert_eq!(windows, 1);
}

/// Under windows of two samples, one thread completes two permits in turn
/// while another completes a third. Whoever closes a window takes every
/// stripe whose count it reads, whatever the sums hold by then: a window
/// never holds fewer samples than the counts it was closed on claimed, and
/// each sample is in one window at most (one may stay for the next). (A
/// count stored after its stripe's lock is let go can land after a take
/// emptied that stripe: it then claims samples the stripe no longer holds,
/// and a window closes on them, empty.)
fn a_window_holds_the_samples_its_counts_claimed(layout: Layout) {
    let (tally, windows) = complete_at_once(layout, 2, 2);
    assert_eq!(tally[3], 0, "windows short of their samples: {tally:?}");
    assert!(tally[0] <= 2 && tally[1] <= 1, "counted twice: {tally:?}");
    assert!((2..=3).contains(&(tally[0] + tally[1])), "{tally:?}");
    assert_eq!((tally[2], windows), (1, 1));
}

/// Where a window needs no sample at all (`window(ZERO, 0)`), two
/// completions at once: one whose sample the other's close took must
/// close no window of nothing, and the two samples are in one window or
/// two, each once.
fn completions_under_windows_of_no_samples_close_none_empty(layout: Layout) {
    let (tally, windows) = complete_at_once(layout, 0, 1);
    assert_eq!(tally[..2], [1, 1], "[successes, drops]");
    assert_eq!(tally[3], 0, "empty windows");
    assert!((1..=2).contains(&windows), "{windows} windows");
    assert_eq!(tally[2], windows);
}
