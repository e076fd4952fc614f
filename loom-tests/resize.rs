//! Issue 5: live limits (`add_permits`, `set_capacity`, `set_capacity_of`)
//! under concurrency, and the adaptive controller's resize
//! (`Controller::set_bounds`), which hands the waiters it grants back to be
//! woken after its own lock is released. A forget racing a return into a
//! shrink's debt, a growth granting an owned acquire being dropped, and a
//! close racing a shrink keep the books and strand nobody.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::task::{Poll, Wake, Waker};

use loom::thread;
use multisem::adaptive::{Aimd, Controller};
use multisem::{AcquireError, TryAcquireError};

use crate::support::{
    Defuse, Exceeds, Ghost, Layout, Sem, WakeFlag, assert_quiescent, block_on, models, poll_once,
};

models! {
    add_permits_racing_acquire_and_release: 3,
    shrink_below_in_flight_then_concurrent_releases: 3,
    set_capacity_shrink_racing_queued_waiter: 3,
    set_capacity_grow_serves_queued_waiter: 3,
    forget_racing_queued_waiter_fails_it_with_exceeds_capacity: 3,
    give_back_refused_by_a_shrink_still_serves_the_queue: 3,
    set_capacity_of_two_owners_racing_keep_both_values: 3,
    set_capacity_of_shrink_racing_queued_waiter: 3,
    set_capacity_of_shrink_grants_nothing_until_in_flight_fits: 3,
    controller_resize_wakes_its_grants_after_unlocking: 3,
    set_bounds_racing_the_owner_of_a_dimension_keeps_its_resize: 3,
    try_acquire_racing_a_growth_is_granted_or_too_large: 3,
    try_acquire_racing_a_shrink_is_granted_or_too_large: 3,
    try_grow_racing_a_growth_is_granted_or_too_large: 3,
    forget_racing_a_return_into_debt_keeps_the_books: 2,
    add_permits_racing_a_dropped_owned_acquire_passes_it_on: 2,
    close_racing_a_shrink_and_a_waiter: 3,
}

/// `available()` must never read more than `bound` in a dimension: a wrapped
/// counter would read close to `u64::MAX`.
#[track_caller]
fn assert_no_wrap(sem: &Sem, bound: [u64; 2]) {
    let available = sem.available();
    for d in 0..2 {
        assert!(
            available[d] <= bound[d],
            "available {available:?} over {bound:?}: a counter wrapped"
        );
    }
}

/// A blocking waiter is queued behind a full permit; `add_permits` and the
/// release of that permit race it. Either may serve it; both land exactly.
fn add_permits_racing_acquire_and_release(layout: Layout) {
    let cap = [1, 1];
    let grown = [2, 2];
    let sem = layout.arc(cap);
    let ghost = Ghost::new(grown);

    let held = sem.try_acquire_owned(cap).unwrap();
    ghost.take(cap);
    let waiter = {
        let (sem, ghost) = (Arc::clone(&sem), Arc::clone(&ghost));
        thread::spawn(move || {
            let permit = sem
                .acquire_blocking([1, 1])
                .expect("the waiter must be granted");
            ghost.take(permit.amounts());
            ghost.give(permit.amounts());
            drop(permit);
        })
    };
    let grower = {
        let sem = Arc::clone(&sem);
        thread::spawn(move || sem.add_permits([1, 1]).unwrap())
    };
    ghost.give(held.amounts());
    drop(held);
    waiter.join().unwrap();
    grower.join().unwrap();

    assert_quiescent(&sem, grown);
}

/// Capacity shrinks from [2, 2] to [1, 0] while two [1, 1] permits are out
/// and the first is released concurrently; then a second thread, still
/// holding the other, tries to take [1, 0], racing that release, and returns
/// its permit. The counters never wrap, and no grant passes the *new*
/// capacity: the debt holds back every grant of a dimension that owes, even
/// one racing a return that lands in the counters between the locked path's
/// settling of the debt and its take. At the end the books balance at the new
/// capacity.
fn shrink_below_in_flight_then_concurrent_releases(layout: Layout) {
    let cap = [2, 2];
    let shrunk = [1, 0];
    let sem = layout.arc(cap);
    let ghost = Ghost::new(cap);

    let first = sem.try_acquire_owned([1, 1]).unwrap();
    let second = sem.try_acquire_owned([1, 1]).unwrap();
    ghost.take([1, 1]);
    ghost.take([1, 1]);

    let t1 = {
        let (sem, ghost) = (Arc::clone(&sem), Arc::clone(&ghost));
        thread::spawn(move || {
            ghost.give(first.amounts());
            drop(first);
            assert_no_wrap(&sem, cap);
        })
    };
    sem.set_capacity(shrunk).unwrap();
    assert_eq!(sem.capacity(), shrunk, "capacity shrinks at once");
    // From here on, every grant is checked against the new capacity.
    ghost.lower_limit(shrunk);
    let t2 = {
        let (sem, ghost) = (Arc::clone(&sem), Arc::clone(&ghost));
        thread::spawn(move || {
            match sem.try_acquire([1, 0]) {
                Ok(permit) => {
                    ghost.take(permit.amounts());
                    ghost.give(permit.amounts());
                    drop(permit);
                }
                Err(TryAcquireError::Insufficient { dim: 0, .. }) => {}
                Err(other) => panic!("try_acquire([1, 0]) failed with {other:?}"),
            }
            ghost.give(second.amounts());
            drop(second);
        })
    };
    // A snapshot is exact at some instant during the call: it never shows
    // more than the new capacity less the least that was in flight meanwhile.
    ghost.mark_low();
    let available = sem.available();
    let low = ghost.low();
    for d in 0..2 {
        assert!(
            available[d] <= shrunk[d].saturating_sub(low[d]),
            "available() read {available:?} after set_capacity({shrunk:?}) returned, \
             with at least {low:?} in flight throughout the call"
        );
    }
    t1.join().unwrap();
    t2.join().unwrap();

    assert_quiescent(&sem, shrunk);
    assert_eq!(
        sem.try_acquire([0, 1]).unwrap_err(),
        crate::support::TryExceeds {
            dim: 1,
            requested: 1,
            capacity: 0
        }
    );
}

/// A blocking waiter for [2, 1] is queued behind a full permit while capacity
/// shrinks to [1, 2] and the permit is released: the waiter is granted (the
/// release came first) or fails with `ExceedsCapacity` (the shrink came first),
/// and never sleeps forever.
fn set_capacity_shrink_racing_queued_waiter(layout: Layout) {
    shrink_racing_queued_waiter(layout, |sem| sem.set_capacity([1, 2]).unwrap());
}

/// The same with `set_capacity_of(0, 1)`, which shrinks dimension 0 alone:
/// dimension 1 keeps its capacity.
fn set_capacity_of_shrink_racing_queued_waiter(layout: Layout) {
    shrink_racing_queued_waiter(layout, |sem| sem.set_capacity_of(0, 1).unwrap());
}

/// Capacity [2, 2], all of it held, a blocking waiter for [2, 1] queued;
/// `shrink` (which must leave [1, 2]) races the release of the permit.
fn shrink_racing_queued_waiter(layout: Layout, shrink: fn(&Sem)) {
    let cap = [2, 2];
    let shrunk = [1, 2];
    let sem = layout.arc(cap);
    let ghost = Ghost::new(cap);

    let held = sem.try_acquire_owned(cap).unwrap();
    ghost.take(cap);
    let waiter = {
        let (sem, ghost) = (Arc::clone(&sem), Arc::clone(&ghost));
        thread::spawn(move || match sem.acquire_blocking([2, 1]) {
            Ok(permit) => {
                ghost.take(permit.amounts());
                ghost.give(permit.amounts());
                drop(permit);
            }
            Err(err) => assert_eq!(
                err,
                Exceeds {
                    dim: 0,
                    requested: 2,
                    capacity: 1
                }
            ),
        })
    };
    let shrinker = {
        let sem = Arc::clone(&sem);
        thread::spawn(move || shrink(&sem))
    };
    ghost.give(held.amounts());
    drop(held);
    waiter.join().unwrap();
    shrinker.join().unwrap();

    assert_quiescent(&sem, shrunk);
}

/// A blocking waiter is queued behind a permit that is never released before it
/// completes; `set_capacity` grows the capacity so it fits, and it must be
/// served with no release at all.
fn set_capacity_grow_serves_queued_waiter(layout: Layout) {
    let cap = [1, 1];
    let grown = [2, 2];
    let sem = layout.arc(cap);
    let ghost = Ghost::new(grown);

    let held = Defuse::new(sem.try_acquire(cap).unwrap());
    ghost.take(cap);
    let waiter = {
        let (sem, ghost) = (Arc::clone(&sem), Arc::clone(&ghost));
        thread::spawn(move || {
            let permit = sem
                .acquire_blocking([1, 1])
                .expect("growing must serve the waiter");
            ghost.take(permit.amounts());
            ghost.give(permit.amounts());
            drop(permit);
        })
    };
    sem.set_capacity(grown).unwrap();
    assert_eq!(sem.capacity(), grown);
    waiter.join().unwrap();

    ghost.give(cap);
    drop(held);
    assert_quiescent(&sem, grown);
}

/// A blocking waiter for [2, 1] queues behind a full permit while its holder
/// forgets [1, 0] of it and returns the rest: capacity drops to [1, 2], so the
/// waiter can never fit and must fail with `ExceedsCapacity` instead of
/// blocking the queue (it can never be granted before the forget: the permit
/// holds all of dimension 0 until then).
fn forget_racing_queued_waiter_fails_it_with_exceeds_capacity(layout: Layout) {
    let cap = [2, 2];
    let sem = layout.arc(cap);

    let mut held = sem.try_acquire_owned(cap).unwrap();
    let waiter = {
        let sem = Arc::clone(&sem);
        thread::spawn(move || {
            assert_eq!(
                sem.acquire_blocking([2, 1]).unwrap_err(),
                crate::support::Exceeds {
                    dim: 0,
                    requested: 2,
                    capacity: 1
                }
            );
        })
    };
    held.split([1, 0]).unwrap().forget();
    drop(held);
    waiter.join().unwrap();

    assert_quiescent(&sem, [1, 2]);
}

/// A take of [2, 1] (on this thread) holds its reserve part when a waiter for
/// [1, 1] queues and the capacity shrinks to [1, 2]; its commit then sees
/// `SLOW` and gives its part back, and the shrink makes it fail with
/// `ExceedsCapacity`, a refusal that needs no lock. The permits it gave back
/// are what the waiter needs (with the shrink's debt paid): the take must
/// visit the lock to serve the queue before it returns, or the waiter sleeps
/// for good with its permits free.
fn give_back_refused_by_a_shrink_still_serves_the_queue(layout: Layout) {
    let cap = [2, 2];
    let shrunk = [1, 2];
    let sem = layout.arc(cap);
    let ghost = Ghost::new(cap);

    let waiter = {
        let (sem, ghost) = (Arc::clone(&sem), Arc::clone(&ghost));
        thread::spawn(move || {
            let limit = ghost.limit();
            let permit = sem
                .acquire_blocking([1, 1])
                .expect("[1, 1] fits both capacities: the waiter must be granted");
            ghost.take_under(permit.amounts(), limit);
            ghost.give(permit.amounts());
            drop(permit);
        })
    };
    let shrinker = {
        let (sem, ghost) = (Arc::clone(&sem), Arc::clone(&ghost));
        thread::spawn(move || {
            sem.set_capacity(shrunk).unwrap();
            ghost.lower_limit(shrunk);
        })
    };
    let limit = ghost.limit();
    match sem.try_acquire([2, 1]) {
        Ok(permit) => {
            ghost.take_under(permit.amounts(), limit);
            ghost.give(permit.amounts());
            drop(permit);
        }
        Err(TryAcquireError::Insufficient { .. })
        | Err(TryAcquireError::ExceedsCapacity { dim: 0, .. }) => {}
        Err(other) => panic!("try_acquire([2, 1]) failed with {other:?}"),
    }
    shrinker.join().unwrap();
    waiter.join().unwrap();

    assert_quiescent(&sem, shrunk);
}

/// Two owners resize their own dimension at once: one grows the count
/// (`set_capacity_of(0, 2)`), the other shrinks the bytes
/// (`set_capacity_of(1, 1)`), from [1, 2] to [2, 1], while the permit that
/// holds all of it is released and two requests wait in the queue: a head
/// for [1, 2], which fits the bytes before their shrink only, and a follower
/// for [1, 1], which fits both. At the end the capacity is exactly both
/// owners' values (neither resize reads the other's dimension and writes it
/// back stale), and all of it is available. The head is granted (the release
/// came before the shrink) or fails with `ExceedsCapacity` in the bytes at
/// their new capacity, never in the count that only grows; the follower,
/// which fits whatever happens, is always granted. Each grant is also
/// checked against the larger capacity of each dimension; the outcomes and
/// the state at quiescence are what a stale resize would break.
fn set_capacity_of_two_owners_racing_keep_both_values(layout: Layout) {
    let cap = [1, 2];
    let resized = [2, 1];
    let sem = layout.arc(cap);
    let ghost = Ghost::new([2, 2]);

    let held = sem.try_acquire_owned(cap).unwrap();
    ghost.take(cap);
    let limit = ghost.limit();
    let mut head = Defuse::new(Box::pin(sem.acquire([1, 2])));
    let mut follower = Defuse::new(Box::pin(sem.acquire([1, 1])));
    assert!(poll_once(head.get_mut().as_mut(), Waker::noop()).is_pending());
    assert!(poll_once(follower.get_mut().as_mut(), Waker::noop()).is_pending());
    assert_eq!(sem.waiters(), 2);

    let count_owner = {
        let sem = Arc::clone(&sem);
        thread::spawn(move || sem.set_capacity_of(0, resized[0]).unwrap())
    };
    let bytes_owner = {
        let (sem, ghost) = (Arc::clone(&sem), Arc::clone(&ghost));
        thread::spawn(move || {
            sem.set_capacity_of(1, resized[1]).unwrap();
            ghost.lower_limit([2, resized[1]]);
        })
    };
    ghost.give(held.amounts());
    drop(held);
    match block_on(head.get_mut().as_mut()) {
        Ok(permit) => {
            ghost.take_under(permit.amounts(), limit);
            ghost.give(permit.amounts());
            drop(permit);
        }
        Err(err) => assert_eq!(
            err,
            Exceeds {
                dim: 1,
                requested: 2,
                capacity: 1
            }
        ),
    }
    let permit = block_on(follower.get_mut().as_mut())
        .expect("[1, 1] fits every capacity of the run: the follower must be granted");
    // Nothing else is held: checked against the capacity in force now.
    ghost.take(permit.amounts());
    ghost.give(permit.amounts());
    drop(permit);
    drop((head, follower));
    count_owner.join().unwrap();
    bytes_owner.join().unwrap();

    assert_quiescent(&sem, resized);
}

/// The exact shrink, on one dimension: capacity [2, 2], permits A and B of
/// [1, 1] each out, a head H for [2, 1] and a follower W for [1, 1] queued.
/// `set_capacity_of(0, 1)` races the release of A. H never fits before the
/// shrink (B holds one of the two) and fails with `ExceedsCapacity` once it
/// lands; W, behind it, is granted only after that, when B alone is already
/// all the new capacity of dimension 0 in flight: it must stay queued until
/// B comes back, whichever of the shrink and A's return came first (A's
/// return pays the shrink's debt, or the shrink absorbs the permit A
/// returned). Granting W on A's return would put 2 in flight where the
/// capacity is 1.
fn set_capacity_of_shrink_grants_nothing_until_in_flight_fits(layout: Layout) {
    let cap = [2, 2];
    let shrunk = [1, 2];
    let sem = layout.arc(cap);
    let ghost = Ghost::new(cap);

    let a = sem.try_acquire_owned([1, 1]).unwrap();
    let b = Defuse::new(sem.try_acquire_owned([1, 1]).unwrap());
    ghost.take([1, 1]);
    ghost.take([1, 1]);
    let mut head = Defuse::new(Box::pin(sem.acquire([2, 1])));
    let mut follower = Defuse::new(Box::pin(sem.acquire([1, 1])));
    assert!(poll_once(head.get_mut().as_mut(), Waker::noop()).is_pending());
    assert!(poll_once(follower.get_mut().as_mut(), Waker::noop()).is_pending());

    let shrinker = {
        let (sem, ghost) = (Arc::clone(&sem), Arc::clone(&ghost));
        thread::spawn(move || {
            sem.set_capacity_of(0, shrunk[0]).unwrap();
            ghost.lower_limit(shrunk);
        })
    };
    ghost.give(a.amounts());
    drop(a);
    shrinker.join().unwrap();

    let failed = match poll_once(head.get_mut().as_mut(), Waker::noop()) {
        Poll::Ready(Err(err)) => err,
        other => panic!("H can never fit before the shrink, which fails it: {other:?}"),
    };
    assert_eq!(
        failed,
        Exceeds {
            dim: 0,
            requested: 2,
            capacity: 1
        }
    );
    // B (still held) is all of dimension 0's new capacity: a grant of W now
    // would put 2 in flight there (the ghost would say so), so W must still
    // be pending.
    let (flag, waker) = WakeFlag::waker();
    if let Poll::Ready(granted) = poll_once(follower.get_mut().as_mut(), &waker) {
        let permit = granted.expect("W fits the new capacity");
        ghost.take(permit.amounts());
        panic!("W was granted {:?} with B still out", permit.amounts());
    }
    assert_eq!(
        sem.available(),
        [0, 1],
        "B out; what A returned went to the shrink"
    );

    ghost.give([1, 1]);
    drop(b);
    assert!(flag.woken(), "B's return must grant and wake W");
    let permit = block_on(follower.get_mut().as_mut()).expect("granted on B's return");
    ghost.take(permit.amounts());
    ghost.give(permit.amounts());
    drop(permit);
    drop((head, follower));

    assert_quiescent(&sem, shrunk);
}

/// A waker that calls back into an adaptive controller when woken and when
/// dropped (`limits` takes its lock) and into the semaphore (`add_permits`
/// takes that one): if the controller woke or dropped it under either lock,
/// loom would report the thread blocked on a lock it holds.
#[derive(Debug)]
struct CallsBack {
    ctl: Arc<Controller<2>>,
    woken: Arc<AtomicBool>,
}

impl Wake for CallsBack {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let _ = self.ctl.limits();
        self.ctl.semaphore().add_permits([0, 0]).unwrap();
        self.woken.store(true, SeqCst);
    }
}

impl Drop for CallsBack {
    fn drop(&mut self) {
        // Not while a failed model unwinds: loom's primitives are gone then.
        if !std::thread::panicking() {
            let _ = self.ctl.limits();
        }
    }
}

/// `clamp_capacities_handing_back`, through the controller (the crate
/// keeps it to itself; `Controller::set_bounds` is the public way in). The
/// controller drives dimension 0 of a [1, 1] semaphore; P = [1, 0] is out
/// and a future for [1, 1] waits, its waker calling back into the
/// controller. `set_bounds(0, 2..=2)` grows dimension 0, which grants the
/// waiter, while the owner of dimension 1 grows it with
/// `set_capacity_of(1, 2)`. The grant the controller's resize handed back
/// is woken, after the controller's lock is released (a wake under it would
/// deadlock here), and the waiter holds its permits with no release at all;
/// neither owner's resize undoes the other's: the capacity ends [2, 2], and
/// so do the controller's limits.
fn controller_resize_wakes_its_grants_after_unlocking(layout: Layout) {
    let cap = [1, 1];
    let grown = [2, 2];
    let sem = layout.arc(cap);
    let ghost = Ghost::new(grown);
    let ctl = Controller::builder(Arc::clone(&sem))
        .limit(0, 1..=1, Aimd::default())
        .build();

    let held = Defuse::new(sem.try_acquire([1, 0]).unwrap());
    ghost.take([1, 0]);
    // Only the flag stays here: the semaphore's clone of the waker is its
    // last handle, so it is dropped wherever the library drops it.
    let woken = Arc::new(AtomicBool::new(false));
    let waker = Waker::from(Arc::new(CallsBack {
        ctl: Arc::clone(&ctl),
        woken: Arc::clone(&woken),
    }));
    let mut waiter = Defuse::new(Box::pin(sem.acquire([1, 1])));
    assert!(poll_once(waiter.get_mut().as_mut(), &waker).is_pending());
    drop(waker);

    let controller = {
        let ctl = Arc::clone(&ctl);
        thread::spawn(move || ctl.set_bounds(0, 2..=2).unwrap())
    };
    let owner = {
        let sem = Arc::clone(&sem);
        thread::spawn(move || sem.set_capacity_of(1, grown[1]).unwrap())
    };
    controller.join().unwrap();
    owner.join().unwrap();

    assert!(woken.load(SeqCst), "the grant handed back was never woken");
    let permit = match poll_once(waiter.get_mut().as_mut(), Waker::noop()) {
        Poll::Ready(granted) => granted.expect("the growth fits the waiter"),
        Poll::Pending => panic!("woken, but not granted"),
    };
    ghost.take(permit.amounts());
    ghost.give(permit.amounts());
    drop(permit);
    drop(waiter);
    assert_eq!(sem.capacity(), grown, "neither owner's resize undone");
    assert_eq!(ctl.limits(), grown);
    assert_eq!(ctl.resizes(), 1);

    ghost.give([1, 0]);
    drop(held);
    drop(ctl);
    assert_quiescent(&sem, grown);
}

/// `Controller::set_bounds` on a dimension the controller does not drive
/// (the bytes of a [1, 1] semaphore, whose count it drives), with bounds
/// that include every capacity, races that dimension's owner, who grows it
/// with `set_capacity_of(1, 2)` while a permit of [1, 1] is out. Whatever
/// the order, the owner's resize stands and the controller resizes
/// nothing: the clamp reads the capacity under the semaphore's lock. (One
/// read before it, then a resize to that reading, undid the owner's
/// growth: [1, 1] at the end, and one resize counted.)
fn set_bounds_racing_the_owner_of_a_dimension_keeps_its_resize(layout: Layout) {
    let cap = [1, 1];
    let grown = [1, 2];
    let sem = layout.arc(cap);
    let ghost = Ghost::new(grown);
    let ctl = Controller::builder(Arc::clone(&sem))
        .limit(0, 1..=1, Aimd::default())
        .build();
    let held = sem.try_acquire_owned(cap).unwrap();
    ghost.take(cap);

    let controller = {
        let ctl = Arc::clone(&ctl);
        thread::spawn(move || ctl.set_bounds(1, 1..=2).unwrap())
    };
    let owner = {
        let sem = Arc::clone(&sem);
        thread::spawn(move || sem.set_capacity_of(1, grown[1]).unwrap())
    };
    ghost.give(held.amounts());
    drop(held);
    controller.join().unwrap();
    owner.join().unwrap();

    assert_eq!(sem.capacity(), grown, "the owner's resize undone");
    assert_eq!(ctl.resizes(), 0, "set_bounds resized within its bounds");
    drop(ctl);
    assert_quiescent(&sem, grown);
}

/// What a one-shot `try_acquire` may answer for `[1, 2]` while the bytes
/// are resized between 1 and 2 and nothing is held: granted (at 2) or
/// `ExceedsCapacity` (at 1), never `Insufficient`, which no instant
/// explains and which tells the caller that a retry may succeed.
#[track_caller]
fn granted_or_too_large<T>(result: Result<T, TryAcquireError>) -> Option<T> {
    match result {
        Ok(granted) => Some(granted),
        Err(TryAcquireError::ExceedsCapacity { dim: 1, .. }) => None,
        Err(error) => panic!("neither granted nor too large: {error:?}"),
    }
}

/// A semaphore of capacity `from`, nothing held: thread S resizes it to
/// `to` while the main thread tries `[1, 2]`, which fits one of the two
/// and not the other.
fn try_acquire_racing_a_resize(layout: Layout, from: [u64; 2], to: [u64; 2]) {
    let sem = layout.arc(from);
    let resizer = {
        let sem = Arc::clone(&sem);
        thread::spawn(move || sem.set_capacity(to).unwrap())
    };
    drop(granted_or_too_large(sem.try_acquire([1, 2])));
    resizer.join().unwrap();
    assert_quiescent(&sem, to);
}

/// The bytes grow from 1 to 2. (The fast path's look, at 1 byte, found
/// the bytes short, and the check of the capacities after it read 2: the
/// shortage was reported as `Insufficient`. A reviewer's finding.)
fn try_acquire_racing_a_growth_is_granted_or_too_large(layout: Layout) {
    try_acquire_racing_a_resize(layout, [1, 1], [1, 2]);
}

/// The bytes shrink from 2 to 1. (A shrink after the lock-free check of
/// the capacities left the locked path short, and it reported that as
/// `Insufficient` without judging the size again under the lock.)
fn try_acquire_racing_a_shrink_is_granted_or_too_large(layout: Layout) {
    try_acquire_racing_a_resize(layout, [1, 2], [1, 1]);
}

/// Capacity [1, 1], a permit of [0, 1] held: thread S grows the bytes to
/// 2 while the permit tries to grow by [1, 1], to [1, 2]. The grow is
/// judged on what the permit would hold: granted at 2, too large at 1,
/// never short.
fn try_grow_racing_a_growth_is_granted_or_too_large(layout: Layout) {
    let sem = layout.arc([1, 1]);
    let mut permit = sem.try_acquire([0, 1]).unwrap();
    let resizer = {
        let sem = Arc::clone(&sem);
        thread::spawn(move || sem.set_capacity([1, 2]).unwrap())
    };
    let grew = granted_or_too_large(permit.try_grow([1, 1])).is_some();
    assert_eq!(permit.amounts(), if grew { [1, 2] } else { [0, 1] });
    drop(permit);
    resizer.join().unwrap();
    assert_quiescent(&sem, [1, 2]);
}

/// Capacity [2, 1]; A = [1, 0] and B = [1, 0] are out, and a shrink to
/// [1, 1] leaves a debt of 1. Then, at once: A is dropped (paying the
/// debt), B is forgotten, and a waiter queues for [1, 0].
///
/// Linearizable outcomes: A first: the debt is paid by A, B's forget
/// shrinks the capacity to 0 and fails the waiter (or the waiter came
/// after and is refused for its size). B first: B pays the debt, the
/// capacity stays 1 and A's return grants the waiter. Whatever the order,
/// the books balance, and a granted waiter means a capacity of 1.
fn forget_racing_a_return_into_debt_keeps_the_books(layout: Layout) {
    let cap = [2, 1];
    let sem = layout.arc(cap);
    let a = sem.try_acquire_owned([1, 0]).unwrap();
    let b = sem.try_acquire_owned([1, 0]).unwrap();
    sem.set_capacity([1, 1]).unwrap();
    let ghost = Ghost::new(cap);
    ghost.take([1, 0]);
    ghost.take([1, 0]);
    // The ledger holds 2 against a limit of 1 from now: a shrink below in flight.
    ghost.lower_limit([1, 1]);
    let dropper = {
        let ghost = Arc::clone(&ghost);
        thread::spawn(move || {
            ghost.give([1, 0]);
            drop(a);
        })
    };
    let forgetter = {
        let ghost = Arc::clone(&ghost);
        thread::spawn(move || {
            ghost.give([1, 0]);
            b.forget();
        })
    };
    let got = sem.acquire_blocking([1, 0]);
    let granted = match &got {
        Ok(permit) => {
            assert_eq!(permit.amounts(), [1, 0]);
            ghost.take([1, 0]);
            ghost.give([1, 0]);
            true
        }
        Err(err) => {
            assert_eq!(
                *err,
                Exceeds {
                    dim: 0,
                    requested: 1,
                    capacity: 0
                },
                "the waiter fails only for its size"
            );
            false
        }
    };
    drop(got);
    dropper.join().unwrap();
    forgetter.join().unwrap();
    let capacity = sem.capacity();
    assert!(
        capacity == [1, 1] || capacity == [0, 1],
        "capacity {capacity:?}"
    );
    if granted {
        assert_eq!(capacity, [1, 1], "granted, so B paid the debt");
    }
    assert_eq!(sem.in_flight(), [0, 0]);
    assert_quiescent(&sem, capacity);
}

/// Capacity [1, 1], all held. An owned acquire F for [1, 1] is queued
/// (polled once), then at once: `add_permits([1, 1])` (which grants F if
/// it is still queued), a blocking waiter W for [1, 1], and F's drop here.
/// W must be granted whatever the order: by the growth, or by F's dropped
/// grant passed on. The held permit comes back at the end.
fn add_permits_racing_a_dropped_owned_acquire_passes_it_on(layout: Layout) {
    let cap = [1, 1];
    let sem = layout.arc(cap);
    let ghost = Ghost::new([2, 2]);
    let held = sem.try_acquire_owned(cap).unwrap();
    ghost.take(cap);
    let (_flag, waker) = WakeFlag::waker();
    let mut f = Box::pin(sem.acquire_owned([1, 1]));
    assert!(poll_once(f.as_mut(), &waker).is_pending());
    let waiter = {
        let (sem, ghost) = (Arc::clone(&sem), Arc::clone(&ghost));
        thread::spawn(move || {
            let permit = sem
                .acquire_blocking([1, 1])
                .expect("W fits the capacity: it must be granted");
            ghost.take(permit.amounts());
            ghost.give(permit.amounts());
            drop(permit);
        })
    };
    let grower = {
        let sem = Arc::clone(&sem);
        thread::spawn(move || sem.add_permits([1, 1]).unwrap())
    };
    drop(f);
    grower.join().unwrap();
    waiter.join().unwrap();
    ghost.give(cap);
    drop(held);
    let stats = sem.stats();
    assert_eq!(stats.waits_in_progress(), 0, "{stats:?}");
    assert_eq!(stats.cancelled, 1, "{stats:?}");
    assert_quiescent(&sem, [2, 2]);
}

/// Capacity [2, 2], [1, 1] held. At once: a waiter for [2, 1] (which a
/// shrink to [1, 2] makes too large), that shrink, and `close`. The waiter
/// ends with `Closed` or `ExceedsCapacity`, never hangs; then the held
/// permit comes back and the semaphore drains.
fn close_racing_a_shrink_and_a_waiter(layout: Layout) {
    let cap = [2, 2];
    let shrunk = [1, 2];
    let sem = layout.arc(cap);
    let held = sem.try_acquire_owned([1, 1]).unwrap();
    let waiter = {
        let sem = Arc::clone(&sem);
        thread::spawn(move || match sem.acquire_blocking([2, 1]) {
            Err(AcquireError::Closed) => {}
            Err(err) => assert_eq!(
                err,
                Exceeds {
                    dim: 0,
                    requested: 2,
                    capacity: 1
                }
            ),
            Ok(permit) => panic!("granted {:?} with [1, 1] held", permit.amounts()),
        })
    };
    let shrinker = {
        let sem = Arc::clone(&sem);
        thread::spawn(move || sem.set_capacity(shrunk).unwrap())
    };
    sem.close();
    waiter.join().unwrap();
    shrinker.join().unwrap();
    drop(held);
    sem.drained_blocking();
    assert_eq!(sem.in_flight(), [0, 0]);
    assert_quiescent(&sem, shrunk);
}
