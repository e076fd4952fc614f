//! Statistics read while the events they count happen: a snapshot never
//! shows a wait ended without its start, nor in one of its ways without
//! the total that includes it (`closed_out`, `acquired`, `exceeded`); peaks
//! never count more than was held at once, nor miss what was; and a window
//! of a controller whose length has passed closes once, when it has its
//! samples.

use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use loom::thread;
use multisem::adaptive::{Algorithm, Controller, Dimension, Outcome, Window};
use multisem::{AcquireError, Stats};

use crate::support::{Layout, assert_quiescent, models, poll_once};

models! {
    stats_snapshot_racing_the_end_of_a_wait: 2,
    snapshot_racing_a_dropped_closed_out_wait_counts_it_in_closed_out: 2,
    snapshot_racing_a_polled_closed_out_wait_counts_it_in_closed_out: 2,
    snapshot_racing_a_grant_after_wait_counts_it_in_acquired: 2,
    snapshot_racing_a_shrink_failing_a_waiter_counts_it_in_exceeded: 2,
    snapshot_racing_a_timeout_shows_its_start: 2,
    snapshot_racing_a_cancel_shows_its_start: 2,
    due_window_with_enough_samples_closes_once: 3,
    peak_of_a_return_racing_a_take_never_above_what_was_held: 3,
    peak_counts_overlapping_takes: 3,
}

/// How the future that `close` woke ends, on the closing thread.
#[derive(Clone, Copy)]
enum Ending {
    /// Dropped unpolled (`Waiting::drop` counts the close).
    Dropped,
    /// Polled (`record_delivered` counts it).
    Polled,
}

/// A queued async acquire that `close` wakes, then dropped or polled on
/// the closing thread, while this thread takes a snapshot: every wait that
/// close ended is "also counted in closed_out", so the part never shows
/// above the total.
fn closed_out_wait_racing_a_snapshot(layout: Layout, ending: Ending) {
    let cap = [1, 1];
    let sem = layout.arc(cap);
    let held = sem.try_acquire_owned(cap).unwrap();
    let mut fut = Box::pin(sem.acquire_owned([1, 1]));
    assert!(poll_once(fut.as_mut(), std::task::Waker::noop()).is_pending());
    let closer = {
        let sem = Arc::clone(&sem);
        thread::spawn(move || {
            sem.close();
            match ending {
                Ending::Dropped => drop(fut),
                Ending::Polled => match poll_once(fut.as_mut(), std::task::Waker::noop()) {
                    Poll::Ready(Err(AcquireError::Closed)) => {}
                    other => panic!("{other:?}"),
                },
            }
        })
    };
    let s = sem.stats();
    assert!(
        s.closed_out_while_waiting <= s.closed_out,
        "closed_out_while_waiting {} > closed_out {}: {s:?}",
        s.closed_out_while_waiting,
        s.closed_out
    );
    closer.join().unwrap();
    drop(held);
    let s = sem.stats();
    assert_eq!((s.closed_out, s.closed_out_while_waiting), (1, 1));
}

fn snapshot_racing_a_dropped_closed_out_wait_counts_it_in_closed_out(layout: Layout) {
    closed_out_wait_racing_a_snapshot(layout, Ending::Dropped);
}

fn snapshot_racing_a_polled_closed_out_wait_counts_it_in_closed_out(layout: Layout) {
    closed_out_wait_racing_a_snapshot(layout, Ending::Polled);
}

/// A snapshot never shows a wait ended (in any way) that it does not show
/// started: it reads the ends first, with Acquire (`StatCounters::snapshot`).
fn assert_every_end_has_its_start(s: &Stats<2>) {
    let ended = s.acquired_after_wait
        + s.timed_out
        + s.cancelled
        + s.closed_out_while_waiting
        + s.exceeded_while_waiting;
    let started: u64 = s.waited.iter().sum();
    assert!(ended <= started, "ended {ended} > started {started}: {s:?}");
}

/// A wait that may queue on one thread and be granted by a return on
/// another, while this thread takes a snapshot.
fn stats_snapshot_racing_the_end_of_a_wait(layout: Layout) {
    let cap = [1, 1];
    let sem = layout.arc(cap);
    let held = sem.try_acquire_owned(cap).unwrap();
    let waiter = {
        let sem = Arc::clone(&sem);
        thread::spawn(move || drop(sem.acquire_blocking([1, 1]).unwrap()))
    };
    let releaser = thread::spawn(move || drop(held));
    assert_every_end_has_its_start(&sem.stats());
    waiter.join().unwrap();
    releaser.join().unwrap();
    assert_quiescent(&sem, cap);
}

/// A blocking wait granted by a return on another thread; the snapshot
/// never shows the wait ended with a permit without counting the acquire.
fn snapshot_racing_a_grant_after_wait_counts_it_in_acquired(layout: Layout) {
    let cap = [1, 1];
    let sem = layout.arc(cap);
    let held = sem.try_acquire_owned(cap).unwrap();
    let waiter = {
        let sem = Arc::clone(&sem);
        thread::spawn(move || drop(sem.acquire_blocking([1, 1]).unwrap()))
    };
    let releaser = thread::spawn(move || drop(held));
    let s = sem.stats();
    // `held` was acquired before: one acquire more than the waiter's.
    assert!(s.acquired > s.acquired_after_wait, "{s:?}");
    waiter.join().unwrap();
    releaser.join().unwrap();
    assert_quiescent(&sem, cap);
}

/// A queued waiter failed by a shrink (thread S), a snapshot meanwhile:
/// `exceeded_while_waiting` is also counted in `exceeded`, and its wait
/// shows started.
fn snapshot_racing_a_shrink_failing_a_waiter_counts_it_in_exceeded(layout: Layout) {
    let cap = [2, 2];
    let sem = layout.arc(cap);
    let held = sem.try_acquire_owned([1, 1]).unwrap();
    let mut fut = Box::pin(sem.acquire_owned([2, 2]));
    assert!(poll_once(fut.as_mut(), std::task::Waker::noop()).is_pending());
    let shrinker = {
        let sem = Arc::clone(&sem);
        thread::spawn(move || sem.set_capacity([1, 1]).unwrap())
    };
    let s = sem.stats();
    let exceeded: u64 = s.exceeded.iter().sum();
    assert!(s.exceeded_while_waiting <= exceeded, "{s:?}");
    assert!(s.exceeded_while_waiting <= s.waited.iter().sum(), "{s:?}");
    shrinker.join().unwrap();
    drop(fut);
    drop(held);
    assert_quiescent(&sem, [1, 1]);
}

/// An async acquire that queues and times out on another thread (its timer
/// already done); snapshot here.
fn snapshot_racing_a_timeout_shows_its_start(layout: Layout) {
    let cap = [1, 1];
    let sem = layout.arc(cap);
    let held = sem.try_acquire_owned(cap).unwrap();
    let waiter = {
        let sem = Arc::clone(&sem);
        thread::spawn(move || {
            let mut fut = Box::pin(sem.acquire([1, 1]).with_timeout(async {}));
            match poll_once(fut.as_mut(), std::task::Waker::noop()) {
                Poll::Ready(Err(AcquireError::Timeout)) => {}
                other => panic!("{other:?}"),
            }
        })
    };
    assert_every_end_has_its_start(&sem.stats());
    waiter.join().unwrap();
    drop(held);
    assert_quiescent(&sem, cap);
}

/// A queued async acquire dropped on another thread; snapshot here.
fn snapshot_racing_a_cancel_shows_its_start(layout: Layout) {
    let cap = [1, 1];
    let sem = layout.arc(cap);
    let held = sem.try_acquire_owned(cap).unwrap();
    let waiter = {
        let sem = Arc::clone(&sem);
        thread::spawn(move || {
            let mut fut = Box::pin(sem.acquire([1, 1]));
            assert!(poll_once(fut.as_mut(), std::task::Waker::noop()).is_pending());
            drop(fut);
        })
    };
    assert_every_end_has_its_start(&sem.stats());
    waiter.join().unwrap();
    drop(held);
    assert_quiescent(&sem, cap);
}

struct Tally {
    tally: Arc<std::sync::Mutex<[u64; 3]>>,
}

impl Algorithm for Tally {
    fn update(&mut self, window: &Window, dim: &Dimension) -> u64 {
        let mut tally = self.tally.lock().unwrap();
        tally[0] += window.successes;
        tally[1] += 1;
        tally[2] = tally[2].max(dim.peak_in_flight);
        dim.limit
    }
}

/// WindowDue and the stripes' counts with a window of real length (the
/// other adaptive models use windows of no length, where `reached` never
/// reads the figure): the first completion starts a window at t0; two
/// completions at t0 + 2 s on two threads, past the window's 1 s. The
/// window holds 3 samples, and `min_samples` is 3: whichever of the two
/// takes the controller's lock second must find all three and close one
/// window, whatever stale figure or count it read without a lock. The peak
/// in flight it reports never exceeds the capacity.
fn due_window_with_enough_samples_closes_once(layout: Layout) {
    let cap = [3, 3];
    let sem = layout.arc(cap);
    let tally = Arc::new(std::sync::Mutex::new([0; 3]));
    let ctl = Controller::builder(Arc::clone(&sem))
        .limit(
            0,
            3..=3,
            Tally {
                tally: Arc::clone(&tally),
            },
        )
        .window(Duration::from_secs(1), 3)
        .build();
    let t0 = Instant::now();
    let later = t0 + Duration::from_secs(2);
    let first = ctl.try_acquire_at([1, 1], t0).unwrap();
    let a = ctl.try_acquire_at([1, 1], t0).unwrap();
    let b = ctl.try_acquire_at([1, 1], t0).unwrap();
    first.complete_at(Outcome::delivered(1), t0);
    assert_eq!(ctl.windows(), 0);
    let ta = thread::spawn(move || a.complete_at(Outcome::delivered(1), later));
    let tb = thread::spawn(move || b.complete_at(Outcome::delivered(1), later));
    ta.join().unwrap();
    tb.join().unwrap();
    let windows = ctl.windows();
    drop(ctl);
    let tally = *tally.lock().unwrap();
    assert_eq!(windows, 1, "{tally:?}");
    assert_eq!(tally[..2], [3, 1]);
    assert!(tally[2] <= 3, "peak in flight {tally:?}");
    assert_quiescent(&sem, cap);
}

/// With peaks tracked: A's permit of the whole capacity is returned on one
/// thread while another takes the whole capacity (succeeding only with A's
/// permits). The peak (in the tiered layout, from `Held`'s counts, Relaxed)
/// never shows both held at once: a return's lowering of the count must
/// come before the increment of the take that got its permits.
fn peak_of_a_return_racing_a_take_never_above_what_was_held(layout: Layout) {
    let cap = [1, 1];
    let sem = Arc::new(layout.builder(cap).track_peaks(true).build());
    let held = sem.try_acquire_owned(cap).unwrap();
    let returner = thread::spawn(move || drop(held));
    let taker = {
        let sem = Arc::clone(&sem);
        thread::spawn(move || {
            if let Ok(p) = sem.try_acquire(cap) {
                drop(p);
            }
        })
    };
    let during = sem.stats().peak_in_flight;
    assert!(during[0] <= 1 && during[1] <= 1, "peak {during:?}");
    returner.join().unwrap();
    taker.join().unwrap();
    assert_eq!(sem.stats().peak_in_flight, cap);
    assert_quiescent(&sem, cap);
}

/// Two threads each take [1, 1] and return it; a ghost (std atomics, in
/// execution order) records when both were held at once. The peak is never
/// less than the ghost saw (no take that passed the peak goes unseen by the
/// low water) and never more than the capacity.
fn peak_counts_overlapping_takes(layout: Layout) {
    let cap = [2, 2];
    let sem = Arc::new(layout.builder(cap).track_peaks(true).build());
    let ghost = Arc::new((
        std::sync::atomic::AtomicU64::new(0),
        std::sync::atomic::AtomicU64::new(0),
    ));
    let spawn = || {
        let (sem, ghost) = (Arc::clone(&sem), Arc::clone(&ghost));
        thread::spawn(move || {
            use std::sync::atomic::Ordering::SeqCst;
            let p = sem.try_acquire([1, 1]).unwrap();
            let now = ghost.0.fetch_add(1, SeqCst) + 1;
            ghost.1.fetch_max(now, SeqCst);
            ghost.0.fetch_sub(1, SeqCst);
            drop(p);
        })
    };
    let (a, b) = (spawn(), spawn());
    a.join().unwrap();
    b.join().unwrap();
    let seen = ghost.1.load(std::sync::atomic::Ordering::SeqCst);
    let peak = sem.stats().peak_in_flight;
    assert!(
        peak[0] >= seen && peak[1] >= seen,
        "peak {peak:?}, ghost saw {seen}"
    );
    assert!(peak[0] <= 2 && peak[1] <= 2, "peak {peak:?}");
    assert_quiescent(&sem, cap);
}
