//! Waiting for the semaphore to drain: a drain waiter is woken by whichever
//! of `close` and the returns comes last, whether it registers before or
//! after them, async or blocking; a waiter that leaves costs nothing; a take
//! or a grow that fails on the close neither hides the drain nor undoes it;
//! a forget, or a shrink's debt paid by the last return, drains as a
//! return does.
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
    split_take_failing_on_close_then_drained: 3,
    try_grow_racing_close_then_drained: 3,
    a_take_failing_on_close_never_undoes_a_drain: 3,
    forget_racing_the_last_return_wakes_the_drain_waiter: 3,
    drain_racing_a_shrink_below_in_flight_and_its_payment: 3,
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

/// A take of both dimensions (a split take in the tiered layouts: it holds
/// reserve permits before its commit) racing `close`, with a drain waiter:
/// the waiter is woken whether the take won or gave its part back.
fn split_take_failing_on_close_then_drained(layout: Layout) {
    let cap = [1, 1];
    let sem = layout.arc(cap);
    let taker = {
        let sem = Arc::clone(&sem);
        thread::spawn(move || drop(sem.try_acquire(cap)))
    };
    let closer = {
        let sem = Arc::clone(&sem);
        thread::spawn(move || sem.close())
    };
    block_on(sem.drained());
    // Not `in_flight() == 0` here: a take that began before the close may
    // hold part of the tiered reserve for a moment (a snapshot's caveat).
    assert!(poll_once(Box::pin(sem.drained()).as_mut(), &WakeFlag::waker().1).is_ready());
    taker.join().unwrap();
    closer.join().unwrap();
    assert_eq!(sem.in_flight(), [0, 0]);
    assert_quiescent(&sem, cap);
}

/// `try_grow` of a held permit racing `close`, the permit then dropped.
fn try_grow_racing_close_then_drained(layout: Layout) {
    let cap = [1, 1];
    let sem = layout.arc(cap);
    let mut held = sem.try_acquire_owned([1, 0]).unwrap();
    let grower = thread::spawn(move || {
        let _ = held.try_grow([0, 1]);
        drop(held);
    });
    let closer = {
        let sem = Arc::clone(&sem);
        thread::spawn(move || sem.close())
    };
    block_on(sem.drained());
    assert_eq!(sem.in_flight(), [0, 0]);
    grower.join().unwrap();
    closer.join().unwrap();
    assert_quiescent(&sem, cap);
}

/// The docs: "once drained the semaphore stays drained". A take begun
/// before `close` (a split take in the tiered layouts holds reserve permits
/// before its commit fails on `CLOSED`) races two looks after the close.
fn a_take_failing_on_close_never_undoes_a_drain(layout: Layout) {
    let cap = [1, 1];
    let sem = layout.arc(cap);
    let taker = {
        let sem = Arc::clone(&sem);
        thread::spawn(move || drop(sem.try_acquire(cap)))
    };
    sem.close();
    let (_, waker) = WakeFlag::waker();
    let first = poll_once(Box::pin(sem.drained()).as_mut(), &waker).is_ready();
    let second = poll_once(Box::pin(sem.drained()).as_mut(), &waker).is_ready();
    assert!(
        !first || second,
        "drained, then not drained: ({first}, {second})"
    );
    taker.join().unwrap();
    block_on(sem.drained());
    assert_quiescent(&sem, cap);
}

/// Closed, one permit in two parts: one dropped, the other forgotten, on
/// two threads, while this thread waits to drain. The forget's visit must
/// look for the drain as a return's does.
fn forget_racing_the_last_return_wakes_the_drain_waiter(layout: Layout) {
    let cap = [1, 1];
    let sem = layout.arc(cap);
    let mut first = sem.try_acquire_owned(cap).unwrap();
    let second = first.split([0, 1]).unwrap();
    sem.close();
    let dropper = thread::spawn(move || drop(first));
    let forgetter = thread::spawn(move || second.forget());
    sem.drained_blocking();
    assert_eq!(sem.in_flight(), [0, 0], "drained with nothing in flight");
    dropper.join().unwrap();
    forgetter.join().unwrap();
    assert_eq!(sem.capacity(), [1, 0]);
    assert_quiescent(&sem, [1, 0]);
}

/// Closed, [1, 1] out. At once: a shrink to [0, 1] (a debt of 1, which the
/// return pays), the return, and a blocking drain waiter here. It wakes,
/// with nothing in flight.
fn drain_racing_a_shrink_below_in_flight_and_its_payment(layout: Layout) {
    let cap = [1, 1];
    let shrunk = [0, 1];
    let sem = layout.arc(cap);
    let held = sem.try_acquire_owned(cap).unwrap();
    sem.close();
    let shrinker = {
        let sem = Arc::clone(&sem);
        thread::spawn(move || sem.set_capacity(shrunk).unwrap())
    };
    let returner = thread::spawn(move || drop(held));
    sem.drained_blocking();
    assert_eq!(sem.in_flight(), [0, 0], "drained with nothing in flight");
    shrinker.join().unwrap();
    returner.join().unwrap();
    assert_eq!(sem.in_flight(), [0, 0]);
    assert_quiescent(&sem, shrunk);
}
