//! Waiting for the semaphore to drain: a drain waiter is woken by whichever
//! of `close` and the returns comes last, whether it registers before or
//! after them, async or blocking; and a waiter that leaves costs nothing.
//!
//! A drain waiter never woken leaves its thread parked, which loom reports
//! as a deadlock.

use std::sync::Arc;

use loom::thread;

use crate::support::{Defuse, Layout, WakeFlag, assert_quiescent, block_on, models, poll_once};

models! {
    close_racing_returns_wakes_the_drain_waiter: 3,
    blocking_drain_racing_the_last_return: 3,
    drain_waiter_leaving_racing_close_and_return: 3,
}

/// A permit in two parts returned one dimension at a time, `close`, and an
/// async drain waiter, all at once: it completes, and only with nothing in
/// flight.
fn close_racing_returns_wakes_the_drain_waiter(layout: Layout) {
    let cap = [1, 1];
    let sem = layout.arc(cap);
    let mut first = sem.try_acquire_owned(cap).unwrap();
    let second = first.split([0, 1]).unwrap();
    let closer = {
        let sem = Arc::clone(&sem);
        thread::spawn(move || sem.close())
    };
    let returner = thread::spawn(move || {
        drop(first);
        drop(second);
    });
    block_on(sem.drained());
    assert_eq!(sem.in_flight(), [0, 0], "drained with nothing in flight");
    closer.join().unwrap();
    returner.join().unwrap();
    assert_quiescent(&sem, cap);
}

/// Closed first; a thread blocks until drained while the last permit comes
/// back, in two dimensions (the tiered layouts return them to two words).
fn blocking_drain_racing_the_last_return(layout: Layout) {
    let cap = [1, 1];
    let sem = layout.arc(cap);
    let held = sem.try_acquire_owned(cap).unwrap();
    sem.close();
    let returner = thread::spawn(move || drop(held));
    sem.drained_blocking();
    assert_eq!(sem.in_flight(), [0, 0]);
    returner.join().unwrap();
    assert_quiescent(&sem, cap);
}

/// A drain future polled once and dropped while `close` and the last return
/// race it; a second waiter, registered before, is still woken.
fn drain_waiter_leaving_racing_close_and_return(layout: Layout) {
    let cap = [1, 1];
    let sem = layout.arc(cap);
    let held = sem.try_acquire_owned(cap).unwrap();
    let (_, waker) = WakeFlag::waker();
    let mut leaving = Defuse::new(Box::pin(sem.drained()));
    let _ = poll_once(leaving.get_mut().as_mut(), &waker);
    let stayer = {
        let sem = Arc::clone(&sem);
        thread::spawn(move || block_on(sem.drained()))
    };
    let closer = {
        let sem = Arc::clone(&sem);
        thread::spawn(move || {
            sem.close();
            drop(held);
        })
    };
    drop(leaving);
    stayer.join().unwrap();
    closer.join().unwrap();
    assert_eq!(sem.in_flight(), [0, 0]);
    assert_quiescent(&sem, cap);
}
