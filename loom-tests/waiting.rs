//! Issue 3: blocking and async acquire, FIFO, cancellation, close.
//!
//! A waiter that is never woken shows up as a loom deadlock ("all threads
//! blocked"), so "the waiter completes" needs no timeout here. A timeout is
//! modelled by polling an async acquire once and dropping it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::task::{Poll, Wake, Waker};
use std::time::{Duration, Instant};

use loom::thread;
use multisem::{AcquireError, TryAcquireError};

use crate::support::{
    Defuse, Ghost, Layout, Sem, WakeFlag, assert_quiescent, block_on, models, poll_once,
};

models! {
    release_racing_blocking_acquire_no_lost_wakeup: 3,
    release_racing_async_acquire_no_lost_wakeup: 3,
    grant_racing_cancel_leaks_nothing: 3,
    granted_future_dropped_before_repoll_passes_permits_on: 3,
    head_waiter_leaving_lets_fitting_follower_in: 3,
    close_racing_blocking_enqueue_wakes_with_closed: 3,
    close_racing_async_enqueue_and_release_never_hangs: 3,
    fifo_two_queued_acquirers: 3,
    waiter_seen_in_waiters_is_not_overtaken: 3,
    rollback_racing_enqueue_and_release_wakes_waiter: 3,
    rollback_of_dimension_1_racing_enqueue_wakes_waiter: 3,
    rollback_lost_to_a_take_wakes_waiter: 3,
    owned_future_cancelled_on_another_thread_leaks_nothing: 3,
    close_wakes_every_queued_waiter: 3,
    waker_calling_back_into_semaphore_does_not_deadlock: 3,
}

/// A blocking `acquire_owned_blocking` enqueues while another thread gives back a full
/// permit in two parts (first dimension 0, then dimension 1). The waiter must
/// not be granted on the first part alone and must not miss the second.
fn release_racing_blocking_acquire_no_lost_wakeup(layout: Layout) {
    let cap = [1, 1];
    let sem = layout.arc(cap);
    let ghost = Ghost::new(cap);

    let mut held = sem.try_acquire_owned(cap).unwrap();
    ghost.take(cap);
    let releaser = {
        let ghost = Arc::clone(&ghost);
        thread::spawn(move || {
            let part = held.split([1, 0]).unwrap();
            ghost.give(part.amounts());
            drop(part);
            ghost.give(held.amounts());
            drop(held);
        })
    };

    let permit = sem
        .acquire_owned_blocking([1, 1])
        .expect("acquire must be granted");
    ghost.take(permit.amounts());
    ghost.give(permit.amounts());
    drop(permit);
    releaser.join().unwrap();

    assert_quiescent(&sem, cap);
}

/// The async twin: the future's waker must be registered so that a release
/// racing the enqueue wakes it.
fn release_racing_async_acquire_no_lost_wakeup(layout: Layout) {
    let cap = [1, 1];
    let sem = layout.arc(cap);
    let ghost = Ghost::new(cap);

    let held = sem.try_acquire_owned(cap).unwrap();
    ghost.take(cap);
    let releaser = {
        let ghost = Arc::clone(&ghost);
        thread::spawn(move || {
            ghost.give(held.amounts());
            drop(held);
        })
    };

    let permit = block_on(sem.acquire_owned([1, 1])).expect("acquire must be granted");
    ghost.take(permit.amounts());
    ghost.give(permit.amounts());
    drop(permit);
    releaser.join().unwrap();

    assert_quiescent(&sem, cap);
}

/// A queued async acquire is dropped (a cancel, or a timeout: same path) while
/// another thread releases what it waits for. Whether the grant lands before the
/// drop or not, the permits end up back in the pool: no leak, no double count,
/// and the undelivered grant is not counted as acquired.
fn grant_racing_cancel_leaks_nothing(layout: Layout) {
    let cap = [1, 1];
    let sem = layout.arc(cap);

    let held = sem.try_acquire_owned(cap).unwrap();
    let (_flag, waker) = WakeFlag::waker();
    let mut fut = Box::pin(sem.acquire([1, 1]));
    assert!(poll_once(fut.as_mut(), &waker).is_pending());
    assert_eq!(sem.waiters(), 1);

    let releaser = thread::spawn(move || drop(held));
    drop(fut);
    releaser.join().unwrap();

    assert_quiescent(&sem, cap);
    // The initial try and the final probe in assert_quiescent.
    let s = sem.stats();
    assert_eq!(s.acquired, 2, "an undelivered grant is not acquired");
    assert_eq!(
        (
            s.waited.iter().sum::<u64>(),
            s.cancelled,
            s.acquired_after_wait
        ),
        (1, 1, 0),
        "the wait ended as a cancel, granted or not: {s:?}"
    );
}

/// The head waiter (async) is granted and woken, then its future is dropped
/// without being polled again. The permits must go back and on to the next
/// waiter (a blocking thread queued behind it), which must complete.
fn granted_future_dropped_before_repoll_passes_permits_on(layout: Layout) {
    let cap = [1, 1];
    let sem = layout.arc(cap);
    let ghost = Ghost::new(cap);

    let held = sem.try_acquire_owned(cap).unwrap();
    let (flag, waker) = WakeFlag::waker();
    let mut head = Box::pin(sem.acquire([1, 1]));
    assert!(poll_once(head.as_mut(), &waker).is_pending());

    let next = {
        let (sem, ghost) = (Arc::clone(&sem), Arc::clone(&ghost));
        thread::spawn(move || {
            // The timed path (no clock under loom: it ends by grant or close).
            let permit = sem
                .acquire_blocking_timeout([1, 1], Duration::from_secs(10))
                .expect("the next waiter must be granted");
            ghost.take(permit.amounts());
            ghost.give(permit.amounts());
            drop(permit);
        })
    };
    let releaser = thread::spawn(move || drop(held));

    releaser.join().unwrap();
    assert!(
        flag.woken(),
        "the release granted the head and must wake it"
    );
    drop(head);
    next.join().unwrap();

    assert_quiescent(&sem, cap);
}

/// A big request at the head of the queue leaves (its future is dropped) while
/// a smaller follower that fits what is free waits behind it: the follower is
/// granted at once, with no further release. While the head is queued, a
/// `try_acquire` that the counters alone would allow must not overtake it.
fn head_waiter_leaving_lets_fitting_follower_in(layout: Layout) {
    let cap = [2, 2];
    let sem = layout.arc(cap);
    let ghost = Ghost::new(cap);

    let kept = Defuse::new(sem.try_acquire([1, 1]).unwrap()); // held to the end
    ghost.take([1, 1]);
    let (_flag, waker) = WakeFlag::waker();
    let mut head = Box::pin(sem.acquire([2, 1]));
    assert!(poll_once(head.as_mut(), &waker).is_pending());
    assert!(
        matches!(
            sem.try_acquire([1, 1]),
            Err(TryAcquireError::Insufficient { .. })
        ),
        "try_acquire must not overtake a queued acquirer"
    );

    let follower = {
        let (sem, ghost) = (Arc::clone(&sem), Arc::clone(&ghost));
        thread::spawn(move || {
            let permit = sem
                .acquire_blocking([1, 1])
                .expect("the follower must be granted once the head leaves");
            ghost.take(permit.amounts());
            ghost.give(permit.amounts());
            drop(permit);
        })
    };
    drop(head);
    follower.join().unwrap();

    ghost.give([1, 1]);
    drop(kept);
    assert_quiescent(&sem, cap);
}

/// `close` races a blocking acquire that cannot be served (the permit is held to
/// the end): whether it enqueues before or after the close, it must return
/// `Closed` and never sleep forever.
fn close_racing_blocking_enqueue_wakes_with_closed(layout: Layout) {
    let cap = [1, 1];
    let sem = layout.arc(cap);

    let held = Defuse::new(sem.try_acquire(cap).unwrap());
    let closer = {
        let sem = Arc::clone(&sem);
        thread::spawn(move || sem.close())
    };
    assert_eq!(
        sem.acquire_blocking([1, 1]).err(),
        Some(AcquireError::Closed)
    );
    closer.join().unwrap();

    assert!(sem.is_closed());
    assert_eq!(sem.waiters(), 0);
    drop(held);
    assert_quiescent(&sem, cap);
}

/// `close`, a release and an async acquire all race: the acquire gets the
/// permit or `Closed`, never hangs, and everything is back at the end.
fn close_racing_async_enqueue_and_release_never_hangs(layout: Layout) {
    let cap = [1, 1];
    let sem = layout.arc(cap);
    let ghost = Ghost::new(cap);

    let held = sem.try_acquire_owned(cap).unwrap();
    ghost.take(cap);
    let closer = {
        let sem = Arc::clone(&sem);
        thread::spawn(move || sem.close())
    };
    let releaser = {
        let ghost = Arc::clone(&ghost);
        thread::spawn(move || {
            ghost.give(held.amounts());
            drop(held);
        })
    };

    match block_on(sem.acquire([1, 1])) {
        Ok(permit) => {
            ghost.take(permit.amounts());
            ghost.give(permit.amounts());
            drop(permit);
        }
        Err(AcquireError::Closed) => {}
        Err(other) => panic!("acquire failed with {other:?}"),
    }
    closer.join().unwrap();
    releaser.join().unwrap();

    assert!(sem.is_closed());
    assert_quiescent(&sem, cap);
}

/// One thread blocks for dimension 0; another spins until `waiters()` counts
/// it, then tries dimension 1 alone, which the counters could supply. Having
/// seen the waiter, it must not overtake it (`Insufficient`), in either
/// layout: in the per-dimension one that request reads word 0's flags with a
/// plain load, which sees `SLOW` only because `waiters()` synchronises with
/// the enqueue.
fn waiter_seen_in_waiters_is_not_overtaken(layout: Layout) {
    let cap = [1, 1];
    let sem = layout.arc(cap);

    let held = sem.try_acquire_owned([1, 0]).unwrap();
    let waiter = {
        let sem = Arc::clone(&sem);
        thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(10);
            let permit = sem
                .acquire_blocking_deadline([1, 0], deadline)
                .expect("the waiter must be granted");
            assert_eq!(permit.amounts(), [1, 0]);
        })
    };
    while sem.waiters() == 0 {
        thread::yield_now();
    }
    assert!(
        matches!(
            sem.try_acquire([0, 1]),
            Err(TryAcquireError::Insufficient { .. })
        ),
        "a try_acquire overtook a waiter it had seen queued"
    );
    drop(held);
    waiter.join().unwrap();

    assert_quiescent(&sem, cap);
}

/// Two queued acquirers are served in arrival order: A ([2, 1], async, queued
/// first) and B ([1, 1], blocking, queued after A). The full permit comes back
/// in two halves; after the first half B's request fits the counters but A's
/// does not, and B must still wait (no overtaking). A is granted when the rest
/// comes back (its future, first polled with another waker, must be woken
/// through `block_on`'s), and B only once A has let go.
fn fifo_two_queued_acquirers(layout: Layout) {
    let cap = [2, 2];
    let sem = layout.arc(cap);
    let ghost = Ghost::new(cap);
    let a_released = Arc::new(AtomicBool::new(false));

    let mut held = sem.try_acquire_owned(cap).unwrap();
    ghost.take(cap);
    let (_flag, waker) = WakeFlag::waker();
    let mut a = Defuse::new(Box::pin(sem.acquire([2, 1])));
    assert!(poll_once(a.get_mut().as_mut(), &waker).is_pending());

    let b = {
        let (sem, ghost, a_released) = (
            Arc::clone(&sem),
            Arc::clone(&ghost),
            Arc::clone(&a_released),
        );
        thread::spawn(move || {
            let permit = sem.acquire_blocking([1, 1]).expect("B must be granted");
            assert!(a_released.load(SeqCst), "B was granted before A let go");
            ghost.take(permit.amounts());
            ghost.give(permit.amounts());
            drop(permit);
        })
    };
    let releaser = {
        let ghost = Arc::clone(&ghost);
        thread::spawn(move || {
            let half = held.split([1, 1]).unwrap();
            ghost.give(half.amounts());
            drop(half);
            ghost.give(held.amounts());
            drop(held);
        })
    };

    let permit = block_on(a.get_mut().as_mut()).expect("A must be granted");
    assert_eq!(permit.amounts(), [2, 1]);
    ghost.take(permit.amounts());
    a_released.store(true, SeqCst);
    ghost.give(permit.amounts());
    drop(permit);
    drop(a);
    releaser.join().unwrap();
    b.join().unwrap();

    assert_quiescent(&sem, cap);
}

/// A `try_acquire([1, 1])` short in dimension 1 (held at first) races the
/// release of dimension 1 and a blocking acquirer of dimension 0 alone, which
/// may see dimension 0 taken for an instant and enqueue. A layout that takes
/// dimension 0 first rolls it back here; the rollback is a return like any
/// other: if the acquirer queued, the rollback or a later return must wake it.
fn rollback_racing_enqueue_and_release_wakes_waiter(layout: Layout) {
    rollback_racing_enqueue(layout, 1);
}

/// The mirror image: dimension 0 is held at first, and the acquirer blocks
/// for dimension 1 alone. A take of dimension 1 that finds dimension 0 short,
/// or the flag of the acquirer that queued meanwhile, gives it back, and
/// that acquirer must still be woken.
fn rollback_of_dimension_1_racing_enqueue_wakes_waiter(layout: Layout) {
    rollback_racing_enqueue(layout, 0);
}

/// A thread that tries `request` once and, if granted, lets it go.
fn spawn_try_once(sem: &Arc<Sem>, ghost: &Arc<Ghost>, request: [u64; 2]) -> thread::JoinHandle<()> {
    let (sem, ghost) = (Arc::clone(sem), Arc::clone(ghost));
    thread::spawn(move || {
        if let Ok(permit) = sem.try_acquire(request) {
            ghost.take(permit.amounts());
            ghost.give(permit.amounts());
            drop(permit);
        }
    })
}

/// A `try_acquire([1, 1])` finds both dimensions free and takes one, then
/// loses the other to a `try_acquire([0, 1])`, which keeps its permit until
/// the end, and gives back what it took. A blocking acquirer of dimension 0
/// alone may meanwhile have seen dimension 0 taken and queued: then only the
/// give-back can wake it, so it must serve the queue (the tiered layout's
/// reserve take, which checks both dimensions first, loses such a race only
/// between its check and its second CAS).
fn rollback_lost_to_a_take_wakes_waiter(layout: Layout) {
    let cap = [1, 1];
    let sem = layout.arc(cap);
    let ghost = Ghost::new(cap);

    let both = spawn_try_once(&sem, &ghost, [1, 1]);
    let bytes = {
        let (sem, ghost) = (Arc::clone(&sem), Arc::clone(&ghost));
        thread::spawn(move || {
            let permit = sem.try_acquire_owned([0, 1]).ok();
            if let Some(permit) = &permit {
                ghost.take(permit.amounts());
            }
            Defuse::new(permit)
        })
    };

    let deadline = Instant::now() + Duration::from_secs(10);
    let permit = sem
        .acquire_blocking_deadline([1, 0], deadline)
        .expect("the waiter for dimension 0 must be granted");
    ghost.take(permit.amounts());
    ghost.give(permit.amounts());
    drop(permit);
    both.join().unwrap();
    let mut kept = bytes.join().unwrap();
    if let Some(permit) = kept.get_mut().take() {
        ghost.give(permit.amounts());
        drop(permit);
    }

    assert_quiescent(&sem, cap);
}

/// Dimension `short` is held at first and released by one thread; another
/// tries `[1, 1]`; this one blocks for the other dimension alone.
fn rollback_racing_enqueue(layout: Layout, short: usize) {
    let cap = [1, 1];
    let sem = layout.arc(cap);
    let ghost = Ghost::new(cap);
    let one_of = |dim: usize| -> [u64; 2] { std::array::from_fn(|d| u64::from(d == dim)) };

    let held = sem.try_acquire_owned(one_of(short)).unwrap();
    ghost.take(one_of(short));
    let releaser = {
        let ghost = Arc::clone(&ghost);
        thread::spawn(move || {
            ghost.give(held.amounts());
            drop(held);
        })
    };
    let taker = spawn_try_once(&sem, &ghost, [1, 1]);

    let deadline = Instant::now() + Duration::from_secs(10);
    let permit = sem
        .acquire_blocking_deadline(one_of(1 - short), deadline)
        .expect("the waiter for the other dimension must be granted");
    ghost.take(permit.amounts());
    ghost.give(permit.amounts());
    drop(permit);
    releaser.join().unwrap();
    taker.join().unwrap();

    assert_quiescent(&sem, cap);
}

/// An owned async acquire is queued on one thread, then moved to another and
/// dropped there while a third returns the permits it waits for: a grant that
/// lands first goes back to the pool, and nothing is left queued.
fn owned_future_cancelled_on_another_thread_leaks_nothing(layout: Layout) {
    let cap = [1, 1];
    let sem = layout.arc(cap);

    let held = sem.try_acquire_owned(cap).unwrap();
    let (_flag, waker) = WakeFlag::waker();
    let mut fut = Box::pin(sem.acquire_owned([1, 1]));
    assert!(poll_once(fut.as_mut(), &waker).is_pending());

    let canceller = thread::spawn(move || drop(fut));
    drop(held);
    canceller.join().unwrap();

    assert_quiescent(&sem, cap);
}

/// Two blocking acquirers queue (in either order, each maybe after the close)
/// behind a permit held to the end while `close` runs: both return `Closed`.
fn close_wakes_every_queued_waiter(layout: Layout) {
    let cap = [1, 1];
    let sem = layout.arc(cap);

    let held = Defuse::new(sem.try_acquire(cap).unwrap());
    let waiters: Vec<_> = [[1, 0], [0, 1]]
        .into_iter()
        .map(|request| {
            let sem = Arc::clone(&sem);
            thread::spawn(move || {
                assert_eq!(
                    sem.acquire_blocking(request).err(),
                    Some(AcquireError::Closed)
                );
            })
        })
        .collect();
    sem.close();
    for waiter in waiters {
        waiter.join().unwrap();
    }

    assert_eq!(sem.waiters(), 0);
    drop(held);
    assert_quiescent(&sem, cap);
}

/// A waker that calls back into the semaphore when woken and when dropped
/// (both take its lock): if the library woke or dropped it under that lock,
/// loom would report the thread blocked on a lock it holds.
#[derive(Debug)]
struct Reentrant {
    sem: Arc<Sem>,
    woken: Arc<AtomicBool>,
}

impl Wake for Reentrant {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // Whatever it gets (the woken future may even have completed and
        // returned its permit by now), a permit taken here goes straight back.
        drop(self.sem.try_acquire([1, 1]));
        self.sem.add_permits([0, 0]).unwrap(); // always takes the lock
        self.woken.store(true, SeqCst);
    }
}

impl Drop for Reentrant {
    fn drop(&mut self) {
        // Not while a failed model unwinds: loom's primitives are gone then.
        if !std::thread::panicking() {
            self.sem.add_permits([0, 0]).unwrap();
        }
    }
}

/// The release that grants a queued future wakes it through a waker that
/// re-enters the semaphore and is dropped right after (re-entering again),
/// while the owner re-polls with another waker, which makes the library drop
/// the first one. Either way the waker must run, and be dropped, outside the
/// semaphore's lock; the future completes with the permits, and no waker is
/// left behind holding the semaphore.
fn waker_calling_back_into_semaphore_does_not_deadlock(layout: Layout) {
    let cap = [1, 1];
    let sem = layout.arc(cap);

    let held = sem.try_acquire_owned(cap).unwrap();
    let woken = Arc::new(AtomicBool::new(false));
    // Only the semaphore's queue keeps the waker once the poll has returned.
    let waker = Waker::from(Arc::new(Reentrant {
        sem: Arc::clone(&sem),
        woken: Arc::clone(&woken),
    }));
    let mut fut = Defuse::new(Box::pin(sem.acquire([1, 1])));
    assert!(poll_once(fut.get_mut().as_mut(), &waker).is_pending());
    drop(waker);

    let releaser = thread::spawn(move || drop(held));
    let (flag, plain) = WakeFlag::waker();
    let permit = match poll_once(fut.get_mut().as_mut(), &plain) {
        Poll::Ready(result) => result.expect("granted"),
        Poll::Pending => block_on(fut.get_mut().as_mut()).expect("granted"),
    };
    assert_eq!(permit.amounts(), cap);
    drop(permit);
    drop(fut);
    releaser.join().unwrap();

    let _ = (woken.load(SeqCst), flag.woken());
    assert_eq!(
        Arc::strong_count(&sem),
        1,
        "a waker (which holds the semaphore) was kept after the future completed"
    );
    assert_quiescent(&sem, cap);
}
