//! A waker's panic never costs an acquirer its result.
//!
//! A release, resize or close that wakes a panicking waker re-raises that
//! panic to its caller, once everyone is woken (`tests/panics.rs`). An
//! acquire or a cancel also wakes whom it served on its way, but it holds a
//! result of its own; these tests fail if a waker's panic unwinds through
//! it:
//!
//! * a waker's panic in `wake()`, met by an async acquire that queues, or
//!   by a `try_acquire` that takes the locked path: the request must stay
//!   owned by its future (no phantom waiter), the permits by their permit;
//! * a waker whose *drop* panics, where the semaphore drops one: an unused
//!   clone after a grant (`enqueue`, and a re-poll whose clone raced a
//!   grant), or a cancelled waiter's, before it wakes whom the cancel
//!   granted.

use multisem::MultiSemaphore;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};

/// What a test waker counts, and whether its next drop panics.
struct State {
    wakes: AtomicUsize,
    panic_on_drop: AtomicBool,
}

static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, wake, wake_by_ref, drop_waker);

fn state(p: *const ()) -> &'static State {
    // SAFETY: every pointer comes from a leaked `State` (`test_waker`).
    unsafe { &*(p as *const State) }
}

unsafe fn clone(p: *const ()) -> RawWaker {
    RawWaker::new(p, &VTABLE)
}

unsafe fn wake(p: *const ()) {
    state(p).wakes.fetch_add(1, SeqCst);
}

unsafe fn wake_by_ref(p: *const ()) {
    state(p).wakes.fetch_add(1, SeqCst);
}

unsafe fn drop_waker(p: *const ()) {
    if state(p).panic_on_drop.swap(false, SeqCst) {
        panic!("test waker: panic on drop");
    }
}

/// Leaks `value`, for a raw waker's data pointer: it must outlive every
/// clone of the waker, whenever the semaphore drops them. It stays
/// reachable from a static, so that Miri does not report it as a leak.
fn leak<T: std::any::Any + Sync>(value: T) -> &'static T {
    static KEPT: std::sync::Mutex<Vec<&'static (dyn std::any::Any + Sync)>> =
        std::sync::Mutex::new(Vec::new());
    let leaked: &'static T = Box::leak(Box::new(value));
    KEPT.lock().unwrap().push(leaked);
    leaked
}

fn test_waker() -> (&'static State, Waker) {
    let s: &'static State = leak(State {
        wakes: AtomicUsize::new(0),
        panic_on_drop: AtomicBool::new(false),
    });
    // SAFETY: the vtable's functions keep the RawWaker contract; the data
    // pointer is 'static.
    let waker = unsafe { Waker::from_raw(RawWaker::new(s as *const State as *const (), &VTABLE)) };
    (s, waker)
}

fn poll<F: Future + ?Sized>(f: Pin<&mut F>, w: &Waker) -> Poll<F::Output> {
    f.poll(&mut Context::from_waker(w))
}

/// Runs `f`, catching its panic (the panic message still prints: swapping
/// the global hook would race with the other tests).
fn quiet<T>(f: impl FnOnce() -> T) -> std::thread::Result<T> {
    catch_unwind(AssertUnwindSafe(f))
}

/// The head future is dropped; its leaving lets the follower in (granted
/// in the same visit to the lock). The head's stored waker panics when
/// dropped: the follower, already granted, must still be woken.
#[test]
fn cancel_whose_waker_drop_panics_still_wakes_the_granted_follower() {
    let sem = MultiSemaphore::new([2]);
    let hold = sem.try_acquire([1]).unwrap();

    let (sa, wa) = test_waker();
    let mut a = Box::pin(sem.acquire([2]));
    assert!(poll(a.as_mut(), &wa).is_pending());
    let (sb, wb) = test_waker();
    let mut b = Box::pin(sem.acquire([1]));
    assert!(poll(b.as_mut(), &wb).is_pending());
    assert_eq!(sem.waiters(), 2);

    // The clone of `wa` that the queue stores panics when dropped.
    sa.panic_on_drop.store(true, SeqCst);
    let dropped = quiet(move || drop(a));
    assert!(
        dropped.is_ok(),
        "the waker's drop panicked through the cancel"
    );
    assert!(!sa.panic_on_drop.load(SeqCst), "the panicking drop ran");
    assert_eq!(sem.waiters(), 0, "B was granted when A left");

    assert_eq!(
        sb.wakes.load(SeqCst),
        1,
        "B holds its permit but was never woken: stranded"
    );
    drop(wa);
    let p = match poll(b.as_mut(), &wb) {
        Poll::Ready(r) => r.unwrap(),
        Poll::Pending => panic!("B granted"),
    };
    drop((p, hold));
    assert_eq!(sem.available(), [2]);
}

/// A request that `enqueue` grants at once (the fast path deferred to the
/// lock because a shrink's debt is outstanding in another dimension). The
/// unused clone of the waker is dropped after the grant and panics: the
/// permits taken for the grant must not be lost.
#[test]
fn enqueue_grant_then_waker_drop_panic_does_not_leak_permits() {
    let sem = MultiSemaphore::new([4, 4]);
    let hold = sem.try_acquire([0, 4]).unwrap();
    // Debt of 2 in dimension 1: `SLOW` stays set, every acquire goes to the lock.
    sem.set_capacity([4, 2]).unwrap();

    let (s, w) = test_waker();
    let mut f = Box::pin(sem.acquire([1, 0]));
    s.panic_on_drop.store(true, SeqCst);
    let polled = quiet(|| match poll(f.as_mut(), &w) {
        Poll::Ready(r) => r.map(|p| p.amounts()),
        Poll::Pending => panic!("fits: granted at once"),
    });
    // Whatever the poll did, once everything is dropped nothing is held.
    let caught = polled.is_ok() && !s.panic_on_drop.load(SeqCst);
    drop(f);
    drop(w);
    drop(hold);
    assert!(
        caught,
        "the waker's drop panicked, and not through the poll"
    );
    assert_eq!(
        sem.in_flight(),
        [0, 0],
        "the permits of the grant were taken and never returned"
    );
    assert_eq!(sem.available(), sem.capacity());
}

/// A waker that, when cloned, runs an action once (here: drops a permit,
/// which grants the future being polled) and arms a panic on its next drop.
struct Reentrant {
    on_clone: std::sync::Mutex<Option<Box<dyn FnOnce() + Send>>>,
    panic_on_drop: AtomicBool,
}

static REENTRANT: RawWakerVTable = RawWakerVTable::new(r_clone, r_noop, r_noop, r_drop);

fn reentrant(p: *const ()) -> &'static Reentrant {
    // SAFETY: every pointer comes from a leaked `Reentrant`.
    unsafe { &*(p as *const Reentrant) }
}

unsafe fn r_clone(p: *const ()) -> RawWaker {
    let action = reentrant(p).on_clone.lock().unwrap().take();
    if let Some(action) = action {
        action();
        reentrant(p).panic_on_drop.store(true, SeqCst);
    }
    RawWaker::new(p, &REENTRANT)
}

unsafe fn r_noop(_: *const ()) {}

unsafe fn r_drop(p: *const ()) {
    if reentrant(p).panic_on_drop.swap(false, SeqCst) {
        panic!("reentrant waker: panic on drop");
    }
}

/// A queued future re-polled with a new waker: the semaphore clones it
/// outside the lock, and the grant lands meanwhile (here, from the clone
/// itself, as any other thread's release could). The second look collects
/// the grant (freeing the slot) and drops the clone: if that drop panics,
/// the collected grant is lost and the future still thinks it is queued on
/// a slot that is free again.
#[test]
fn renotify_clone_racing_a_grant_then_drop_panic_does_not_lose_the_grant() {
    let sem = Arc::new(MultiSemaphore::new([1]));
    let hold = sem.try_acquire_owned([1]).unwrap();

    let (_s1, w1) = test_waker();
    let mut f = Box::pin(sem.acquire([1]));
    assert!(poll(f.as_mut(), &w1).is_pending());

    let r: &'static Reentrant = leak(Reentrant {
        on_clone: std::sync::Mutex::new(Some(Box::new(move || drop(hold)))),
        panic_on_drop: AtomicBool::new(false),
    });
    // SAFETY: as `test_waker`.
    let w2 = unsafe {
        Waker::from_raw(RawWaker::new(
            r as *const Reentrant as *const (),
            &REENTRANT,
        ))
    };
    let polled = quiet(|| poll(f.as_mut(), &w2).map(|r| r.map(|p| p.amounts())));
    assert_eq!(
        polled.ok(),
        Some(Poll::Ready(Ok([1]))),
        "granted, the clone's panic caught"
    );
    assert!(!r.panic_on_drop.load(SeqCst), "the panicking drop ran");
    // The future is dropped as the unwinding caller would drop it.
    let dropped = quiet(move || drop(f));
    assert!(
        dropped.is_ok(),
        "dropping the future panicked (its ticket names a freed slot)"
    );
    assert_eq!(sem.in_flight(), [0], "the grant's permit was lost");
}

/// A waker that runs `action` when woken.
struct OnWake(
    std::sync::Mutex<Option<Box<dyn FnOnce() + Send>>>,
    AtomicUsize,
);

impl std::task::Wake for OnWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.1.fetch_add(1, SeqCst);
        let action = self.0.lock().unwrap().take();
        if let Some(action) = action {
            action();
        }
    }
}

fn on_wake(action: Option<Box<dyn FnOnce() + Send>>) -> (Arc<OnWake>, Waker) {
    let w = Arc::new(OnWake(std::sync::Mutex::new(action), AtomicUsize::new(0)));
    (w.clone(), Waker::from(w))
}

type Fut = Pin<Box<multisem::AcquireOwned<1>>>;

/// Nine async acquires of `[1]` queued on `sem` (all of it held): the
/// first one's waker runs `first` (so it runs while the release that
/// grants them wakes its batch), and the ninth's panics.
fn nine_queued(sem: &Arc<MultiSemaphore<1>>, first: Box<dyn FnOnce() + Send>) -> Vec<(Fut, Waker)> {
    let mut first = Some(first);
    let queued: Vec<(Fut, Waker)> = (0..9)
        .map(|i| {
            let action: Option<Box<dyn FnOnce() + Send>> = match i {
                0 => first.take(),
                8 => Some(Box::new(|| panic!("the 9th waiter's waker panics"))),
                _ => None,
            };
            let (_, w) = on_wake(action);
            let mut f: Fut = Box::pin(sem.acquire_owned([1]));
            assert!(poll(f.as_mut(), &w).is_pending());
            (f, w)
        })
        .collect();
    assert_eq!(sem.waiters(), 9);
    queued
}

/// Releases `hold`, which grants and wakes the nine (its own re-raise of
/// the ninth's panic is caught here), then lets each take its grant and go;
/// how many were granted.
fn release_to(hold: multisem::OwnedPermit<1>, queued: Vec<(Fut, Waker)>) -> usize {
    let _ = catch_unwind(AssertUnwindSafe(move || drop(hold)));
    queued
        .into_iter()
        .filter_map(|(mut f, w)| match poll(f.as_mut(), &w) {
            Poll::Ready(r) => Some(r.unwrap()),
            Poll::Pending => None,
        })
        .count()
}

/// `enqueue` serves the queue before it queues or grants its caller, then
/// wakes whom it served. Its caller is an acquire whose request is queued
/// (or granted) by then, so a served waiter's waker panic must not unwind
/// out of its `poll` (as it is re-raised from a release, resize or close):
/// that would drop the ticket (or the permits) on the floor, and the
/// request would stay queued with nobody to collect it, its grant never
/// returned.
///
/// Deterministic: a release grants a full batch (8) and wakes it outside
/// the lock; the first woken task polls a new acquire, whose `enqueue`
/// serves the 9th waiter (its waker panics) and then queues itself.
#[test]
fn a_waker_panic_re_raised_through_enqueue_does_not_leave_a_phantom_waiter() {
    let sem = Arc::new(MultiSemaphore::new([100]));
    let hold = sem.try_acquire_owned([100]).unwrap();
    let late: Arc<std::sync::Mutex<Option<Fut>>> = Default::default();
    let outcome: Arc<std::sync::Mutex<Option<bool>>> = Default::default();
    let first = {
        let (sem, late, outcome) = (sem.clone(), late.clone(), outcome.clone());
        // A new acquire of 100: it does not fit once the nine hold 1 each,
        // so it queues.
        Box::new(move || {
            let mut f: Fut = Box::pin(sem.acquire_owned([100]));
            let r = catch_unwind(AssertUnwindSafe(|| {
                poll(f.as_mut(), Waker::noop()).is_pending()
            }));
            *outcome.lock().unwrap() = Some(r.is_ok());
            *late.lock().unwrap() = Some(f);
        })
    };
    let queued = nine_queued(&sem, first);
    assert_eq!(release_to(hold, queued), 9, "all nine granted");
    let polled_ok = outcome.lock().unwrap().expect("the first waker ran");
    // The late acquire's task polls again once the nine are gone.
    let late_granted = late
        .lock()
        .unwrap()
        .take()
        .map(|mut f| matches!(poll(f.as_mut(), Waker::noop()), Poll::Ready(Ok(_))));
    assert!(
        polled_ok,
        "the late acquire's poll panicked with another task's waker panic \
         (its request already queued); later granted: {late_granted:?}"
    );
    assert_eq!(
        late_granted,
        Some(true),
        "it kept its place, and was granted"
    );
    assert_eq!((sem.waiters(), sem.available()), (0, [100]));
}

/// The accounting promise in the case above, whatever the late acquire's
/// poll did: once every permit and future is dropped, nothing is in flight
/// and nobody is queued.
#[test]
fn after_a_re_raised_waker_panic_in_enqueue_every_permit_comes_back() {
    let sem = Arc::new(MultiSemaphore::new([100]));
    let hold = sem.try_acquire_owned([100]).unwrap();
    let first = {
        let sem = sem.clone();
        Box::new(move || {
            let mut f: Fut = Box::pin(sem.acquire_owned([100]));
            let _ = catch_unwind(AssertUnwindSafe(|| {
                let _ = poll(f.as_mut(), Waker::noop());
            }));
            drop(f);
        })
    };
    let queued = nine_queued(&sem, first);
    release_to(hold, queued);
    assert_eq!(sem.waiters(), 0, "a queued request outlived its future");
    assert_eq!(sem.in_flight(), [0]);
    assert!(sem.try_acquire([100]).is_ok());
}

/// The same through `try_acquire`'s locked path: it serves the queue and
/// takes its own permits before it wakes those it served, and before it
/// has made its permit; a waker's panic unwinding there would leak them.
#[test]
fn a_waker_panic_re_raised_through_try_acquire_does_not_leak_its_permits() {
    let sem = Arc::new(MultiSemaphore::new([100]));
    let hold = sem.try_acquire_owned([100]).unwrap();
    let first = {
        let sem = sem.clone();
        Box::new(move || {
            let _ = catch_unwind(AssertUnwindSafe(|| drop(sem.try_acquire([1]))));
        })
    };
    let queued = nine_queued(&sem, first);
    release_to(hold, queued);
    assert_eq!(
        sem.in_flight(),
        [0],
        "try_acquire's permits were taken and dropped"
    );
}

/// A drain future dropped while it waits: the stored waker's drop panics
/// there, and must not unwind out of the future's drop (an abort where the
/// thread was already unwinding).
#[test]
fn a_drain_waiter_dropped_swallows_its_waker_drop_panic() {
    let sem = MultiSemaphore::new([2]);
    let hold = sem.try_acquire([1]).unwrap();
    let (state, waker) = test_waker();
    let mut drained = Box::pin(sem.drained());
    assert!(poll(drained.as_mut(), &waker).is_pending());
    state.panic_on_drop.store(true, SeqCst);
    assert!(
        quiet(move || drop(drained)).is_ok(),
        "the waker's drop panicked through the drain future's drop"
    );
    assert!(!state.panic_on_drop.load(SeqCst), "the panicking drop ran");
    drop((hold, waker));
    sem.close();
    assert!(sem.drained_blocking_timeout(std::time::Duration::ZERO));
}
