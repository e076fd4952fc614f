//! Every wait counted in `Stats::waited` ends in exactly one of
//! `acquired_after_wait`, `timed_out`, `cancelled`,
//! `closed_out_while_waiting` or `exceeded_while_waiting`, and
//! `waits_in_progress` is the difference: each way a wait can end, for the
//! blocking and the async acquires, then all of them at once under load.

mod common;

use std::future::{self, Future};
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Barrier};
use std::task::Poll;
use std::thread;
use std::time::{Duration, Instant};

use common::{Rng, Watchdog, assert_every_wait_ended, layouts, poll_once, stress_time};
use multisem::{AcquireError, Stats};

/// The waits that ended, one figure per way of ending.
fn ended<const N: usize>(stats: &Stats<N>) -> [u64; 5] {
    [
        stats.acquired_after_wait,
        stats.timed_out,
        stats.cancelled,
        stats.closed_out_while_waiting,
        stats.exceeded_while_waiting,
    ]
}

/// Polls `fut` until it queues (the first poll does, on a full semaphore).
#[track_caller]
fn queued<F: Future>(fut: std::pin::Pin<&mut F>) {
    assert!(poll_once(fut).is_pending(), "the acquire queued");
}

/// A blocking waiter woken by a release gets its permit: one wait, ended
/// as acquired; the permit that was free at once is no wait at all.
#[test]
fn a_blocking_wait_granted_later_ends_as_acquired() {
    let _watchdog = Watchdog::this_test(Duration::from_secs(20));
    for (layout, sem) in layouts([2, 100]) {
        drop(sem.acquire_blocking([1, 10]).unwrap());
        let held = sem.try_acquire([2, 0]).unwrap();
        let waiter = {
            let sem = Arc::clone(&sem);
            thread::spawn(move || drop(sem.acquire_blocking([1, 10]).unwrap()))
        };
        while sem.waiters() == 0 {
            thread::yield_now();
        }
        assert_eq!(sem.stats().waits_in_progress(), 1, "{layout}");
        drop(held);
        waiter.join().unwrap();
        let stats = sem.stats();
        assert_eq!(stats.waited, [1, 0], "{layout}");
        assert_eq!(stats.acquired_after_wait, 1, "{layout}");
        assert_eq!(stats.acquired, 3, "{layout}");
        assert_every_wait_ended(&sem, layout);
    }
}

/// The same for an async acquire, and a grant that raced the future's drop
/// ends as cancelled (its permits go back), not acquired.
#[test]
fn an_async_wait_ends_as_acquired_or_as_cancelled_when_dropped() {
    for (layout, sem) in layouts([1, 100]) {
        let held = sem.try_acquire([1, 0]).unwrap();
        let mut granted = pin!(sem.acquire([1, 10]));
        queued(granted.as_mut());
        let mut raced = Box::pin(sem.acquire([0, 10]));
        queued(raced.as_mut());
        let mut abandoned = Box::pin(sem.acquire([0, 10]));
        queued(abandoned.as_mut());
        assert_eq!(sem.stats().waits_in_progress(), 3, "{layout}");
        drop(abandoned); // still queued: cancelled
        drop(held);
        // `raced` was granted by that release; its drop gives the grant back.
        drop(raced);
        let Poll::Ready(Ok(permit)) = poll_once(granted.as_mut()) else {
            panic!("{layout}: granted");
        };
        drop(permit);
        let stats = sem.stats();
        assert_eq!(stats.acquired_after_wait, 1, "{layout}");
        assert_eq!(stats.cancelled, 2, "{layout}");
        assert_eq!(sem.available(), sem.capacity(), "{layout}");
        assert_every_wait_ended(&sem, layout);
    }
}

/// Timeouts of every kind end their wait as timed out: a blocking one, one
/// whose deadline had passed before it began, and an async one given up
/// by its timer.
#[test]
fn every_timeout_ends_its_wait_as_timed_out() {
    for (layout, sem) in layouts([1, 100]) {
        let held = sem.try_acquire([1, 0]).unwrap();
        let short = Duration::from_millis(2);
        assert_eq!(
            sem.acquire_blocking_timeout([1, 0], short).unwrap_err(),
            AcquireError::Timeout
        );
        assert_eq!(
            sem.acquire_blocking_deadline([1, 0], Instant::now() - short)
                .unwrap_err(),
            AcquireError::Timeout
        );
        let mut timer_fired = false;
        let timer = future::poll_fn(|_| {
            if std::mem::replace(&mut timer_fired, true) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        });
        let mut timed = pin!(sem.acquire([1, 0]).with_timeout(timer));
        assert!(poll_once(timed.as_mut()).is_pending(), "{layout}");
        let Poll::Ready(Err(AcquireError::Timeout)) = poll_once(timed.as_mut()) else {
            panic!("{layout}: the timer fired");
        };
        drop(held);
        let stats = sem.stats();
        assert_eq!(stats.timed_out, 3, "{layout}");
        assert_eq!(stats.waited, [3, 0], "{layout}");
        assert_eq!(stats.acquired_after_wait, 0, "{layout}");
        assert_every_wait_ended(&sem, layout);
    }
}

/// `close` ends the waits it wakes as closed out while waiting, however
/// they learn of it (a blocking waiter, a polled future, a future dropped
/// unpolled); an acquire refused because the semaphore was already closed
/// never waited.
#[test]
fn close_ends_the_waits_it_wakes() {
    let _watchdog = Watchdog::this_test(Duration::from_secs(20));
    for (layout, sem) in layouts([1, 100]) {
        let held = sem.try_acquire([1, 0]).unwrap();
        let blocked = {
            let sem = Arc::clone(&sem);
            thread::spawn(move || sem.acquire_blocking([1, 0]).unwrap_err())
        };
        let mut polled = Box::pin(sem.acquire([1, 0]));
        queued(polled.as_mut());
        let mut unpolled = Box::pin(sem.acquire([1, 0]));
        queued(unpolled.as_mut());
        while sem.waiters() < 3 {
            thread::yield_now();
        }
        sem.close();
        assert_eq!(blocked.join().unwrap(), AcquireError::Closed, "{layout}");
        let Poll::Ready(Err(AcquireError::Closed)) = poll_once(polled.as_mut()) else {
            panic!("{layout}: closed");
        };
        drop(unpolled);
        // After the close: refused at once, never queued.
        assert_eq!(
            sem.acquire_blocking([1, 0]).unwrap_err(),
            AcquireError::Closed
        );
        drop(held);
        let stats = sem.stats();
        assert_eq!(stats.closed_out, 4, "{layout}");
        assert_eq!(stats.closed_out_while_waiting, 3, "{layout}");
        assert_eq!(stats.cancelled, 0, "{layout}");
        assert_every_wait_ended(&sem, layout);
    }
}

/// A shrink below a queued request ends its wait as exceeded while
/// waiting, delivered or not; a request above the capacity from the start
/// never waited.
#[test]
fn a_shrink_ends_the_waits_it_fails() {
    let _watchdog = Watchdog::this_test(Duration::from_secs(20));
    for (layout, sem) in layouts([4, 100]) {
        let held = sem.try_acquire([4, 0]).unwrap();
        let blocked = {
            let sem = Arc::clone(&sem);
            thread::spawn(move || sem.acquire_blocking([3, 0]).unwrap_err())
        };
        let mut polled = Box::pin(sem.acquire([3, 0]));
        queued(polled.as_mut());
        let mut unpolled = Box::pin(sem.acquire([3, 0]));
        queued(unpolled.as_mut());
        while sem.waiters() < 3 {
            thread::yield_now();
        }
        sem.set_capacity([2, 100]).unwrap();
        assert!(blocked.join().unwrap().is_exceeds_capacity(), "{layout}");
        let Poll::Ready(Err(err)) = poll_once(polled.as_mut()) else {
            panic!("{layout}: failed by the shrink");
        };
        assert!(err.is_exceeds_capacity(), "{layout}");
        drop(unpolled);
        assert!(
            sem.acquire_blocking([3, 0])
                .unwrap_err()
                .is_exceeds_capacity(),
            "{layout}"
        );
        drop(held);
        let stats = sem.stats();
        assert_eq!(stats.exceeded, [4, 0], "{layout}");
        assert_eq!(stats.exceeded_while_waiting, 3, "{layout}");
        assert_every_wait_ended(&sem, layout);
    }
}

/// Threads and futures wait in every way at once, with timeouts, drops,
/// shrinks, growths and, at the end, a close: however the races go, every
/// wait ends in exactly one way, and each way happened.
#[test]
fn under_load_every_wait_ends_in_exactly_one_way() {
    let _watchdog = Watchdog::this_test(Duration::from_secs(60));
    for (layout, sem) in layouts([4, 1000]) {
        let threads = 4;
        let stop = Arc::new(AtomicBool::new(false));
        let barrier = Arc::new(Barrier::new(threads + 1));
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let (sem, stop, barrier) =
                    (Arc::clone(&sem), Arc::clone(&stop), Arc::clone(&barrier));
                thread::spawn(move || {
                    let mut rng = Rng::new(t as u64 + 1);
                    barrier.wait();
                    while !stop.load(SeqCst) {
                        let amounts = [1 + rng.below(3), rng.below(600)];
                        let permit = match rng.below(4) {
                            0 => sem.acquire_blocking_timeout(amounts, rng.micros(300)).ok(),
                            1 => sem.acquire_blocking_deadline(amounts, Instant::now()).ok(),
                            _ => {
                                // An async acquire, polled a few times and
                                // then kept or dropped.
                                let mut fut = Box::pin(sem.acquire(amounts));
                                let mut got = None;
                                for _ in 0..1 + rng.below(4) {
                                    match poll_once(fut.as_mut()) {
                                        Poll::Ready(result) => {
                                            got = Some(result.ok());
                                            break;
                                        }
                                        Poll::Pending => thread::sleep(rng.micros(50)),
                                    }
                                }
                                got.flatten()
                            }
                        };
                        if let Some(permit) = permit {
                            thread::sleep(rng.micros(100));
                            drop(permit);
                        }
                    }
                })
            })
            .collect();
        barrier.wait();
        let mut rng = Rng::new(99);
        let until = Instant::now() + stress_time(Duration::from_millis(400));
        while Instant::now() < until {
            let counts = 2 + rng.below(3);
            let _ = sem.set_capacity([counts, 700 + rng.below(300)]);
            thread::sleep(rng.micros(500));
        }
        // Waits still queued now end with the close; one at least: a
        // request for the whole capacity, queued while this thread holds
        // some of it, so that nothing but the close can end it.
        let some = sem
            .acquire_blocking_timeout([1, 0], Duration::from_secs(10))
            .expect("the workers return what they hold");
        let mut whole = pin!(sem.acquire(sem.capacity()));
        assert!(poll_once(whole.as_mut()).is_pending(), "{layout}");
        sem.close();
        assert_eq!(
            poll_once(whole.as_mut()).map(|r| r.map(drop)),
            Poll::Ready(Err(AcquireError::Closed)),
            "{layout}"
        );
        drop(some);
        stop.store(true, SeqCst);
        for worker in workers {
            worker.join().unwrap();
        }
        let stats = sem.stats();
        assert_every_wait_ended(&sem, layout);
        assert!(
            stats.closed_out_while_waiting > 0,
            "{layout}: no wait ended by the close: {stats:?}"
        );
        for (way, count) in ["acquired", "timed out", "cancelled"]
            .iter()
            .zip(ended(&stats))
        {
            assert!(count > 0, "{layout}: no wait ended {way}: {stats:?}");
        }
        assert!(
            stats.exceeded_while_waiting > 0,
            "{layout}: no queued request outgrew a shrink: {stats:?}"
        );
        assert_eq!(sem.in_flight(), [0, 0], "{layout}: nothing leaked");
    }
}

/// `waits_in_progress` counts a wait that `close` ended until its future
/// delivers (or drops) the outcome, and a wait a shrink failed not at all:
/// the shrink ends it when it decides, as `exceeded` counts it.
#[test]
fn a_close_ends_a_wait_when_delivered_a_shrink_when_decided() {
    for (layout, sem) in layouts([2, 100]) {
        let held = sem.try_acquire([2, 0]).unwrap();
        let mut outgrown = Box::pin(sem.acquire([2, 0]));
        queued(outgrown.as_mut());
        sem.set_capacity([1, 100]).unwrap(); // fails it; not yet told
        assert_eq!(sem.stats().waits_in_progress(), 0, "{layout}");
        let mut closed = Box::pin(sem.acquire([1, 0]));
        queued(closed.as_mut());
        sem.close(); // ends it; not yet told
        assert_eq!(sem.stats().waits_in_progress(), 1, "{layout}");
        assert!(matches!(
            poll_once(closed.as_mut()),
            Poll::Ready(Err(AcquireError::Closed))
        ));
        drop((outgrown, closed, held));
        assert_every_wait_ended(&sem, layout);
    }
}
