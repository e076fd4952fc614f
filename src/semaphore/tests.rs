//! Paths that need a hand on the internals to reach deterministically.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use crate::counters::FastError;
use crate::{MultiSemaphore, TryAcquireError};

struct PanicOnWake;

impl Wake for PanicOnWake {
    fn wake(self: Arc<Self>) {
        panic!("a waker that panics");
    }
}

/// A `try_acquire` whose tiered split take held permits for a moment and
/// gave them back while an acquirer was queued (`FastError::GaveBack`),
/// then is refused without the lock (here `ExceedsCapacity`), must still
/// serve the queue, since what it gave back may be what the head waits
/// for; and a panic of the waker it wakes must not unwind through its
/// refusal. Reaching it for real takes a release racing a split take;
/// here the give-back is made by hand (the counters hold what a permit
/// held, while the acquirer it fits stays queued), on the single-word
/// layout, since the locked path that follows is the same in both.
#[test]
fn a_refused_take_that_gave_back_serves_the_queue_quietly() {
    let sem = MultiSemaphore::new([2, 2]);
    let held = sem.try_acquire([2, 2]).unwrap();
    let mut waiter = pin!(sem.acquire([1, 1]));
    let panics = Waker::from(Arc::new(PanicOnWake));
    assert!(
        waiter
            .as_mut()
            .poll(&mut Context::from_waker(&panics))
            .is_pending()
    );
    // The give-back: what `held` holds is back in the counters, and nobody
    // has served the queue since.
    std::mem::forget(held);
    sem.counters.add(&[2, 2]);
    assert_eq!(sem.waiters(), 1);

    let refused = catch_unwind(AssertUnwindSafe(|| {
        sem.try_take_locked([3, 1], FastError::GaveBack, false)
    }));
    match refused {
        Ok(Err(TryAcquireError::ExceedsCapacity { dim: 0, .. })) => {}
        Ok(other) => panic!("expected ExceedsCapacity in dimension 0, got {other:?}"),
        Err(_) => panic!("the waker's panic unwound through the refusal"),
    }
    // Served on the way out: granted, and woken (its waker panicked).
    let permit = match waiter.poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(Ok(permit)) => permit,
        other => panic!("the queued acquirer was not served: {other:?}"),
    };
    assert_eq!(permit.amounts(), [1, 1]);
    drop(permit);
    assert_eq!(sem.available(), sem.capacity());
    assert_eq!(sem.waiters(), 0);
}

/// An acquire whose fast take gave permits back while an acquirer was
/// queued (`FastError::GaveBack`, in the tiered layout: a release racing a
/// split take) owes the queue a visit to the lock, which its own visit to
/// queue itself pays. If the waker's `clone` panics first (in an async
/// acquire's first poll, before that visit), the visit is still made, on
/// the way out: otherwise the queued acquirer waits for the next release
/// for permits that are free. The give-back is made by hand, as above.
#[test]
fn a_waker_clone_panicking_after_a_give_back_still_serves_the_queue() {
    let sem = Arc::new(MultiSemaphore::new([2, 2]));
    let held = sem.try_acquire([2, 2]).unwrap();
    let mut waiter = pin!(sem.acquire([1, 1]));
    assert!(
        waiter
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
            .is_pending()
    );
    std::mem::forget(held);
    sem.counters.add(&[2, 2]);

    // The first poll of another acquire, as `Waiting::poll` makes it, with
    // a waker whose `clone` panics (the crate forbids the `unsafe` a
    // `RawWaker` of that kind takes, so the panic is raised in its place).
    fn clone_that_panics(_: &Waker) -> Waker {
        panic!("the waker's clone");
    }
    let panicked = catch_unwind(AssertUnwindSafe(|| {
        let owed = sem.owed_visit(FastError::GaveBack);
        let _notify = clone_that_panics(Waker::noop());
        owed.paid();
    }));
    assert!(panicked.is_err(), "the clone was meant to panic");

    let permit = match waiter.poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(Ok(permit)) => permit,
        other => panic!("the queued acquirer was not served: {other:?}"),
    };
    assert_eq!(permit.amounts(), [1, 1]);
    drop(permit);
    assert_eq!(sem.available(), sem.capacity());
    assert_eq!(sem.waiters(), 0);
}

/// An owed visit is paid by the caller's own visit: the guard then touches
/// nothing (no visit, no serve), and one that is owed nothing neither.
#[test]
fn an_owed_visit_paid_or_not_owed_serves_nothing() {
    let sem = MultiSemaphore::new([2, 2]);
    let held = sem.try_acquire([2, 2]).unwrap();
    let mut waiter = pin!(sem.acquire([1, 1]));
    assert!(
        waiter
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
            .is_pending()
    );
    std::mem::forget(held);
    sem.counters.add(&[2, 2]);
    sem.owed_visit(FastError::GaveBack).paid();
    drop(sem.owed_visit(FastError::Defer));
    // Nobody served the queue: the waiter is still queued.
    assert!(
        waiter
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
            .is_pending()
    );
    assert_eq!(sem.waiters(), 1);
    // A release serves it, as after any give-back's visit.
    sem.serve_quietly();
    assert!(matches!(
        waiter.poll(&mut Context::from_waker(Waker::noop())),
        Poll::Ready(Ok(_))
    ));
}
