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
}

/// Counts the successes and drops of every window it is shown, and the
/// windows. Its lock is std's, not loom's: the controller calls it under
/// its own lock, so nothing contends for it.
struct Tally(Arc<std::sync::Mutex<[u64; 3]>>);

impl Algorithm for Tally {
    fn update(&mut self, window: &Window, dim: &Dimension) -> u64 {
        let mut tally = self.0.lock().unwrap();
        tally[0] += window.successes;
        tally[1] += window.drops;
        tally[2] += 1;
        dim.limit
    }
}

/// Two tracked permits complete on two threads at once, into stripes of
/// their own, under windows of no length and two samples: whichever
/// completes second must find both samples, whatever it read of the other
/// stripe's count without a lock, and close one window holding exactly
/// both. (The count a completion reads under the controller's lock was
/// stored before the other completion took that lock; a close that read
/// the counts before taking it could leave both samples to no window.)
fn completions_racing_a_close_each_count_once(layout: Layout) {
    let cap = [2, 2];
    let sem = layout.arc(cap);
    let tally = Arc::new(std::sync::Mutex::new([0; 3]));
    let ctl = Controller::builder(Arc::clone(&sem))
        .limit(0, 2..=2, Tally(Arc::clone(&tally)))
        .window(Duration::ZERO, 2)
        .build();
    let now = Instant::now();
    let delivered = ctl.try_acquire_at([1, 1], now).unwrap();
    let dropped = ctl.try_acquire_at([1, 1], now).unwrap();

    let first = thread::spawn(move || delivered.complete_at(Outcome::delivered(1), now));
    let second = thread::spawn(move || dropped.complete_at(Outcome::Dropped, now));
    first.join().unwrap();
    second.join().unwrap();

    assert_eq!(
        *tally.lock().unwrap(),
        [1, 1, 1],
        "[successes, drops, windows]"
    );
    assert_eq!(ctl.windows(), 1);
    drop(ctl);
    assert_quiescent(&sem, cap);
}
