//! Waiting for the semaphore to drain (`drained`, `drained_blocking*`):
//! ready exactly once it is closed and every permit has come back, woken
//! by the return that was the last (whatever the layout, however many
//! wait), and costing nothing when dropped.

use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::thread;
use std::time::{Duration, Instant};

use multisem::{AcquireError, MultiSemaphore};

mod common;
use common::{Layout, Watchdog, counting_waker, poll_once, poll_with};

#[test]
fn waits_for_close_then_for_the_last_permit() {
    for layout in Layout::ALL {
        let sem = layout.make([4, 100]);
        let first = sem.try_acquire([1, 30]).unwrap();
        let second = sem.try_acquire([2, 50]).unwrap();
        let (woken, waker) = counting_waker();
        let mut drained = pin!(sem.drained());
        assert!(
            poll_with(drained.as_mut(), &waker).is_pending(),
            "{layout:?}: open"
        );
        drop(first);
        assert!(
            poll_with(drained.as_mut(), &waker).is_pending(),
            "{layout:?}"
        );
        sem.close();
        assert_eq!(woken.wakes(), 0, "{layout:?}: one permit is still out");
        assert!(
            poll_with(drained.as_mut(), &waker).is_pending(),
            "{layout:?}"
        );
        drop(second);
        assert_eq!(woken.wakes(), 1, "{layout:?}: the last return wakes it");
        assert!(poll_with(drained.as_mut(), &waker).is_ready(), "{layout:?}");
        assert_eq!(sem.in_flight(), [0, 0]);
        // Drained stays drained: a new future is ready at once.
        assert!(poll_once(pin!(sem.drained())).is_ready(), "{layout:?}");
    }
}

/// Polled again with another waker (the task moved): that one is woken,
/// the first is not.
#[test]
fn the_latest_waker_is_woken() {
    let sem = MultiSemaphore::new([4, 100]);
    let permit = sem.try_acquire([1, 1]).unwrap();
    let (first, first_waker) = counting_waker();
    let (second, second_waker) = counting_waker();
    let mut drained = pin!(sem.drained());
    assert!(poll_with(drained.as_mut(), &first_waker).is_pending());
    assert!(poll_with(drained.as_mut(), &second_waker).is_pending());
    sem.close();
    drop(permit);
    assert_eq!((first.wakes(), second.wakes()), (0, 1));
    assert!(poll_with(drained.as_mut(), &second_waker).is_ready());
}

#[test]
fn a_close_with_nothing_in_flight_wakes_it() {
    for layout in Layout::ALL {
        let sem = layout.make([4, 100]);
        let (woken, waker) = counting_waker();
        let mut drained = pin!(sem.drained());
        assert!(
            poll_with(drained.as_mut(), &waker).is_pending(),
            "{layout:?}"
        );
        sem.close();
        assert_eq!(woken.wakes(), 1, "{layout:?}");
        assert!(poll_with(drained.as_mut(), &waker).is_ready(), "{layout:?}");
    }
}

/// More waiters than a visit to the lock wakes at once (a batch of 8).
#[test]
fn every_waiter_is_woken_however_many() {
    for layout in Layout::ALL {
        let sem = layout.make([4, 100]);
        let permit = sem.try_acquire([1, 1]).unwrap();
        let (woken, waker) = counting_waker();
        let mut futures: Vec<_> = (0..21).map(|_| Box::pin(sem.drained())).collect();
        for future in &mut futures {
            assert!(poll_with(future.as_mut(), &waker).is_pending());
        }
        sem.close();
        // Some dropped before the end: they only stop waiting.
        futures.truncate(17);
        assert_eq!(woken.wakes(), 0, "{layout:?}");
        drop(permit);
        assert_eq!(woken.wakes(), 17, "{layout:?}");
        for future in &mut futures {
            assert!(poll_with(future.as_mut(), &waker).is_ready(), "{layout:?}");
        }
    }
}

/// Each waiter is told apart from the others: a re-poll replaces its own
/// waker, and one that leaves takes only its own place, whichever order
/// they came in (the mutants that gave every waiter the same id, or removed
/// another's, left a waiter that was never woken).
#[test]
fn each_waiter_keeps_its_own_waker_and_its_own_place() {
    let sem = MultiSemaphore::new([4, 100]);
    let permit = sem.try_acquire([1, 1]).unwrap();
    let wakers: Vec<_> = (0..4).map(|_| counting_waker()).collect();
    let mut a = Box::pin(sem.drained());
    let mut b = Box::pin(sem.drained());
    let mut c = Box::pin(sem.drained());
    assert!(poll_with(a.as_mut(), &wakers[0].1).is_pending());
    assert!(poll_with(b.as_mut(), &wakers[1].1).is_pending());
    assert!(poll_with(c.as_mut(), &wakers[2].1).is_pending());
    // B moves to another task: its new waker replaces its own only.
    assert!(poll_with(b.as_mut(), &wakers[3].1).is_pending());
    // A leaves: its place only.
    drop(a);
    sem.close();
    drop(permit);
    let wakes: Vec<_> = wakers.iter().map(|(woken, _)| woken.wakes()).collect();
    assert_eq!(wakes, [0, 0, 1, 1], "a, b's first, c, b's second");
    assert!(poll_with(b.as_mut(), &wakers[3].1).is_ready());
    assert!(poll_with(c.as_mut(), &wakers[2].1).is_ready());
}

/// `Debug` says whether the future is waiting.
#[test]
fn debug_says_whether_it_waits() {
    let sem = MultiSemaphore::new([4, 100]);
    let _permit = sem.try_acquire([1, 1]).unwrap();
    let (_, waker) = counting_waker();
    let mut drained = Box::pin(sem.drained());
    assert_eq!(format!("{drained:?}"), "Drained { waiting: false, .. }");
    sem.close();
    assert!(poll_with(drained.as_mut(), &waker).is_pending());
    assert_eq!(format!("{drained:?}"), "Drained { waiting: true, .. }");
}

/// A grant that its future has not collected is in flight until it is
/// collected and dropped, or given back by the future's drop.
#[test]
fn an_uncollected_grant_is_in_flight_until_given_back() {
    for layout in Layout::ALL {
        let sem = layout.make([4, 100]);
        let held = sem.try_acquire([4, 0]).unwrap();
        let (_, waker) = counting_waker();
        let mut granted = Box::pin(sem.acquire([1, 10]));
        let mut closed_out = Box::pin(sem.acquire([4, 10]));
        assert!(poll_with(granted.as_mut(), &waker).is_pending());
        assert!(poll_with(closed_out.as_mut(), &waker).is_pending());
        drop(held); // grants the first; the second waits behind it
        sem.close(); // closes the second out
        let (woken, drain_waker) = counting_waker();
        let mut drained = pin!(sem.drained());
        assert!(poll_with(drained.as_mut(), &drain_waker).is_pending());
        assert!(matches!(
            poll_with(closed_out.as_mut(), &waker),
            std::task::Poll::Ready(Err(AcquireError::Closed))
        ));
        assert_eq!(woken.wakes(), 0, "{layout:?}: the grant is out");
        drop(granted); // never collected: the drop gives it back
        assert_eq!(woken.wakes(), 1, "{layout:?}");
        assert!(poll_with(drained.as_mut(), &drain_waker).is_ready());
        assert_eq!(sem.available(), [4, 100], "{layout:?}");
    }
}

/// A shrink below what is in flight (debt), and a `forget`, after the
/// close: drained once what is held has come back or been forgotten.
#[test]
fn resizes_and_forgets_after_close_count_exactly() {
    for layout in Layout::ALL {
        let sem = layout.make([4, 100]);
        let a = sem.try_acquire([2, 60]).unwrap();
        let b = sem.try_acquire([1, 30]).unwrap();
        sem.close();
        sem.set_capacity([1, 10]).unwrap(); // in debt: 3 and 90 are out
        let (woken, waker) = counting_waker();
        let mut drained = pin!(sem.drained());
        assert!(poll_with(drained.as_mut(), &waker).is_pending());
        drop(a);
        assert!(
            poll_with(drained.as_mut(), &waker).is_pending(),
            "{layout:?}"
        );
        b.forget();
        assert_eq!(woken.wakes(), 1, "{layout:?}");
        assert!(poll_with(drained.as_mut(), &waker).is_ready(), "{layout:?}");
        assert_eq!(sem.in_flight(), [0, 0], "{layout:?}");
    }
}

#[test]
fn blocking_waits_for_the_return_on_another_thread() {
    let _watchdog = Watchdog::this_test(Duration::from_secs(30));
    for layout in Layout::ALL {
        let sem = Arc::new(layout.make([4, 100]));
        let permit = sem.try_acquire_owned([1, 50]).unwrap();
        sem.close();
        assert!(!sem.drained_blocking_timeout(Duration::from_millis(5)));
        assert!(!sem.drained_blocking_deadline(Instant::now()), "a look");
        let returner = thread::spawn(move || {
            thread::sleep(Duration::from_millis(20));
            drop(permit);
        });
        sem.drained_blocking();
        assert_eq!(sem.in_flight(), [0, 0], "{layout:?}");
        assert!(sem.drained_blocking_timeout(Duration::ZERO));
        assert!(sem.drained_blocking_deadline(Instant::now()), "a look");
        returner.join().unwrap();
    }
}

/// Producers take and return permits on several threads while the main
/// thread closes and waits: it wakes exactly when the last permit is back,
/// and never before (what the producers hold is counted as they go).
#[test]
fn close_and_drain_under_load() {
    let _watchdog = Watchdog::this_test(Duration::from_secs(60));
    for layout in Layout::ALL {
        for async_wait in [false, true] {
            let sem = Arc::new(layout.make([8, 1000]));
            let held = Arc::new(AtomicU64::new(0));
            let started = Arc::new(AtomicBool::new(false));
            let producers: Vec<_> = (0..3u64)
                .map(|t| {
                    let (sem, held, started) = (sem.clone(), held.clone(), started.clone());
                    thread::spawn(move || {
                        let mut n = t;
                        loop {
                            n = n.wrapping_mul(6364136223846793005).wrapping_add(1);
                            let bytes = 1 + (n >> 33) % 200;
                            let permit = match sem.acquire_blocking([1, bytes]) {
                                Ok(permit) => permit,
                                Err(AcquireError::Closed) => return,
                                Err(other) => panic!("{other}"),
                            };
                            held.fetch_add(1, SeqCst);
                            started.store(true, SeqCst);
                            for _ in 0..(n >> 40) % 200 {
                                std::hint::spin_loop();
                            }
                            held.fetch_sub(1, SeqCst);
                            drop(permit);
                        }
                    })
                })
                .collect();
            while !started.load(SeqCst) {
                thread::yield_now();
            }
            thread::sleep(Duration::from_millis(5));
            sem.close();
            if async_wait {
                futures_executor::block_on(sem.drained());
            } else {
                assert!(sem.drained_blocking_timeout(Duration::from_secs(20)));
            }
            // Every permit is back, so no producer holds one: `held` falls
            // before each drop, so it can only lag in the other direction.
            assert_eq!(held.load(SeqCst), 0, "{layout:?}");
            assert!(
                sem.drained_blocking_timeout(Duration::ZERO),
                "stays drained"
            );
            // `in_flight()` is a snapshot: in the tiered layouts a take begun
            // before the close may hold part of the reserve for a moment
            // before it fails; once the producers are gone it is exact.
            for producer in producers {
                producer.join().unwrap();
            }
            assert_eq!(sem.in_flight(), [0, 0], "{layout:?}");
            assert_eq!(sem.available(), [8, 1000], "{layout:?}");
        }
    }
}
