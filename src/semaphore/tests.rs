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

/// A fast take that raised a peak reads the limits after its CAS, and
/// trusts them only if no resize ran since before the CAS. That was told by
/// the low water's 6-bit generation, which 32 resizes bring back: a take
/// held up between its CAS and its note while exactly 32 ran counted its
/// word against the new capacity (2001 in flight, with 1 held). The count
/// of resizes is read in full now. The take is staged by hand, as
/// `take_after_miss` makes it, held up where a preemption would.
#[test]
fn a_peak_is_not_fooled_by_32_resizes_during_a_take() {
    use crate::counters::{Miss, Took};
    use std::sync::atomic::Ordering;

    let sem = MultiSemaphore::builder([1000]).max_capacity([4000]).build();
    assert!(sem.is_single_word());
    // What `take_after_miss` reads before its CAS, then the CAS.
    let before = sem.limits.resizes.load(Ordering::Acquire);
    let Ok(Took::Word(word)) = sem.counters.take_after_miss([1], Miss::Other) else {
        panic!("the take of [1] failed");
    };
    // Held up here while 32 resizes run, ending at a capacity of 3000.
    for k in 0..32u64 {
        sem.set_capacity([1000 * (1 + (k + 1) % 3)]).unwrap();
    }
    assert_eq!(sem.capacity(), [3000]);
    sem.note_peak_after(word, &[1], before);
    assert_eq!(sem.stats().peak_in_flight, [1], "one permit was ever held");
    // The permit the staged take made, given back.
    sem.release(&[1]);
    assert_eq!(sem.available(), sem.capacity());
}
