//! Panics and re-entrancy.
//!
//! - Permits are returned while unwinding: a thread that panics while holding
//!   a `Permit` or an `OwnedPermit`, between two acquisitions, with split
//!   parts, or with a queued future; the semaphore is usable afterwards and
//!   those queued behind are served.
//! - Wakers that call back into the semaphore (tokio #5429 class): from
//!   `wake()` and from the waker's drop, they try to acquire, drop permits,
//!   resize, close or read it. None may deadlock; each case runs on its own
//!   thread and fails (instead of hanging) if it has not finished in time.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak, mpsc};
use std::task::{Poll, Wake, Waker};
use std::thread;
use std::time::{Duration, Instant};

use multisem::*;

mod common;
use common::{Layout, panic_message, poll_once, poll_with, ready};

const LAYOUTS: [Layout; 3] = Layout::ALL;

const CAP: [u64; 2] = [4, 4096];

/// Runs `f` on its own thread; fails the test if it has not finished within
/// `limit` (a deadlock), instead of hanging. A panic in `f` is re-raised.
fn within<T: Send + 'static>(
    what: &str,
    limit: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    let h = thread::spawn(move || {
        let r = catch_unwind(AssertUnwindSafe(f));
        let _ = tx.send(());
        r
    });
    match rx.recv_timeout(limit) {
        Ok(()) => match h.join().unwrap() {
            Ok(v) => v,
            Err(p) => std::panic::resume_unwind(p),
        },
        Err(_) => panic!("{what}: still running after {limit:?} (deadlock?)"),
    }
}

const LIMIT: Duration = Duration::from_secs(20);

fn assert_quiet(sem: &MultiSemaphore<2>) {
    assert_eq!(sem.available(), sem.capacity());
    assert_eq!(sem.waiters(), 0);
    // Usable: the whole capacity at once, by every kind of acquire.
    drop(sem.try_acquire(sem.capacity()).unwrap());
    drop(
        sem.acquire_blocking_timeout(sem.capacity(), Duration::from_secs(5))
            .unwrap(),
    );
    drop(futures_executor::block_on(sem.acquire(sem.capacity())).unwrap());
    assert_eq!(sem.available(), sem.capacity());
}

fn quiet_panics() {
    // Keep expected panics from cluttering the output.
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let msg = info
                .payload()
                .downcast_ref::<&str>()
                .copied()
                .unwrap_or_default();
            if !msg.starts_with("expected:") {
                default(info);
            }
        }));
    });
}

// ---------------------------------------------------------------------------
// Unwinding returns permits
// ---------------------------------------------------------------------------

/// The panic a test raises on purpose, not a failed check before it: a
/// failed `assert!` or `unwrap` in the closure that panics would otherwise
/// pass for the panic expected (and unwinding returns what it held, so the
/// checks after it pass too). The message starts with `expected`.
#[track_caller]
fn assert_expected_panic<T: std::fmt::Debug>(result: thread::Result<T>, expected: &str) {
    let payload = result.expect_err("the closure panics");
    let message = panic_message(&*payload);
    assert!(
        message.starts_with(expected),
        "failed before its intended panic: {message:?}, not {expected:?}"
    );
}

#[test]
fn permit_returned_when_a_thread_panics_holding_it() {
    quiet_panics();
    for layout in LAYOUTS {
        within("panic holding Permit", LIMIT, move || {
            let sem = layout.make(CAP);
            thread::scope(|s| {
                let r = s
                    .spawn(|| {
                        let _p = sem.try_acquire([3, 3000]).unwrap();
                        let _q = sem
                            .acquire_blocking_timeout([1, 1000], Duration::from_secs(5))
                            .unwrap();
                        assert_eq!(sem.available(), [0, 96]);
                        panic!("expected: panic while holding permits");
                    })
                    .join();
                assert_expected_panic(r, "expected: panic while holding permits");
            });
            assert_quiet(&sem);
        });
    }
}

#[test]
fn permit_returned_by_catch_unwind_in_a_thread() {
    quiet_panics();
    for layout in LAYOUTS {
        within("catch_unwind holding Permit", LIMIT, move || {
            let sem = layout.make(CAP);
            thread::scope(|s| {
                s.spawn(|| {
                    let r = catch_unwind(AssertUnwindSafe(|| {
                        let mut p = sem.try_acquire([4, 4096]).unwrap();
                        let part = p.split([1, 1000]).unwrap();
                        let mut other = p.split([1, 0]).unwrap();
                        other.merge(part);
                        assert_eq!(sem.available(), [0, 0]);
                        panic!("expected: panic holding split parts");
                    }));
                    assert_expected_panic(r, "expected: panic holding split parts");
                    assert_eq!(sem.available(), CAP);
                });
            });
            assert_quiet(&sem);
        });
    }
}

#[test]
fn owned_permit_returned_when_its_thread_panics() {
    quiet_panics();
    for layout in LAYOUTS {
        within("panic holding OwnedPermit", LIMIT, move || {
            let sem = Arc::new(layout.make(CAP));
            let p = sem.try_acquire_owned([2, 2048]).unwrap();
            let q = sem.try_acquire_owned([2, 2048]).unwrap();
            let h = thread::spawn(move || {
                let _p = p;
                let _q = q;
                panic!("expected: panic holding owned permits");
            });
            assert_expected_panic(h.join(), "expected: panic holding owned permits");
            assert_quiet(&sem);
            // Also when the panicking thread holds the last Arc besides us.
            let weak = Arc::downgrade(&sem);
            let p = sem.try_acquire_owned(CAP).unwrap();
            drop(sem);
            let h = thread::spawn(move || {
                let _p = p;
                panic!("expected: panic holding the last owned permit");
            });
            assert_expected_panic(h.join(), "expected: panic holding the last owned permit");
            assert!(weak.upgrade().is_none(), "the semaphore leaked");
        });
    }
}

#[test]
fn panic_between_two_acquisitions_returns_the_first() {
    quiet_panics();
    for layout in LAYOUTS {
        within("panic between acquisitions", LIMIT, move || {
            let sem = Arc::new(layout.make(CAP));
            let (took_tx, took_rx) = mpsc::channel::<()>();
            let (go_tx, go_rx) = mpsc::channel::<()>();
            let s2 = Arc::clone(&sem);
            let panicker = thread::spawn(move || {
                let _first = s2
                    .acquire_owned_blocking_timeout([2, 2048], Duration::from_secs(5))
                    .unwrap();
                took_tx.send(()).unwrap();
                go_rx.recv().unwrap();
                panic!("expected: panic between two acquisitions");
            });
            took_rx.recv().unwrap();
            // A blocked acquirer wants everything: it can only be served once
            // the first permit comes back during unwinding.
            let s3 = Arc::clone(&sem);
            let waiter = thread::spawn(move || {
                s3.acquire_owned_blocking_timeout(CAP, Duration::from_secs(10))
                    .map(|p| p.amounts())
            });
            let deadline = Instant::now() + Duration::from_secs(10);
            while sem.waiters() != 1 {
                assert!(Instant::now() < deadline, "waiter never queued");
                thread::sleep(Duration::from_millis(1));
            }
            go_tx.send(()).unwrap();
            assert_expected_panic(panicker.join(), "expected: panic between two acquisitions");
            assert_eq!(waiter.join().unwrap(), Ok(CAP));
            assert_quiet(&sem);
        });
    }
}

#[test]
fn panic_after_first_of_two_acquires_when_second_would_block() {
    quiet_panics();
    for layout in LAYOUTS {
        within("panic between two blocking acquires", LIMIT, move || {
            let sem = layout.make(CAP);
            let r = catch_unwind(AssertUnwindSafe(|| {
                let _count = sem
                    .acquire_blocking_timeout([1, 0], Duration::from_secs(5))
                    .unwrap();
                // The bytes step fails (RocketMQ's shape): bail out by panic.
                match sem.try_acquire([0, 8192]) {
                    Ok(_) => unreachable!(),
                    Err(e) => panic!("expected: {e}"),
                }
            }));
            assert_expected_panic(r, "expected: request exceeds capacity in dimension 1");
            assert_eq!(sem.available(), CAP, "the count permit leaked");
            assert_quiet(&sem);
        });
    }
}

#[test]
fn queued_future_dropped_while_unwinding_serves_followers() {
    quiet_panics();
    for layout in LAYOUTS {
        within("panic with a queued future", LIMIT, move || {
            let sem = Arc::new(layout.make(CAP));
            let hold = sem.try_acquire_owned([3, 100]).unwrap();
            let s2 = Arc::clone(&sem);
            // The head wants everything; a follower wants a little.
            let head_polled = Arc::new(std::sync::Barrier::new(2));
            let hp = Arc::clone(&head_polled);
            let t = thread::spawn(move || {
                let r = catch_unwind(AssertUnwindSafe(|| {
                    let mut f = Box::pin(s2.acquire_owned(CAP));
                    let poll = poll_once(f.as_mut());
                    assert!(poll.is_pending());
                    hp.wait();
                    hp.wait();
                    panic!("expected: panic with a queued future");
                }));
                assert_expected_panic(r, "expected: panic with a queued future");
            });
            head_polled.wait();
            let mut follower = Box::pin(sem.acquire_owned([1, 100]));
            assert!(poll_once(follower.as_mut()).is_pending());
            assert_eq!(sem.waiters(), 2);
            head_polled.wait();
            t.join().unwrap();
            // The head left during unwinding: the follower fits and is served.
            let p = ready(
                poll_once(follower.as_mut()),
                "follower not served after the head unwound",
            )
            .unwrap();
            assert_eq!(p.amounts(), [1, 100]);
            drop((p, hold));
            assert_eq!(sem.stats().cancelled, 1);
            assert_quiet(&sem);
        });
    }
}

#[test]
fn panic_in_a_blocked_threads_neighbour_does_not_stall_it() {
    quiet_panics();
    for layout in LAYOUTS {
        within("blocked thread beside a panic", LIMIT, move || {
            let sem = layout.make(CAP);
            thread::scope(|s| {
                let all = sem.try_acquire(CAP).unwrap();
                let blocked = s.spawn(|| {
                    sem.acquire_blocking_timeout([2, 2048], Duration::from_secs(10))
                        .map(|p| p.amounts())
                });
                let deadline = Instant::now() + Duration::from_secs(10);
                while sem.waiters() != 1 {
                    assert!(Instant::now() < deadline);
                    thread::sleep(Duration::from_millis(1));
                }
                let r = s
                    .spawn(move || {
                        let _all = all;
                        panic!("expected: panic releasing everything");
                    })
                    .join();
                assert_expected_panic(r, "expected: panic releasing everything");
                assert_eq!(blocked.join().unwrap(), Ok([2, 2048]));
            });
            assert_quiet(&sem);
        });
    }
}

// ---------------------------------------------------------------------------
// Re-entrant wakers (tokio #5429 class)
// ---------------------------------------------------------------------------

type Action = Box<dyn Fn(&Arc<MultiSemaphore<2>>) + Send + Sync>;

/// A waker that calls back into the semaphore when woken, and optionally when
/// dropped. Holds only a `Weak`, so it creates no cycle.
struct Reentrant {
    sem: Weak<MultiSemaphore<2>>,
    on_wake: Action,
    on_drop: Option<Action>,
    wakes: AtomicUsize,
}

impl Wake for Reentrant {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.wakes.fetch_add(1, Ordering::SeqCst);
        if let Some(sem) = self.sem.upgrade() {
            (self.on_wake)(&sem);
        }
    }
}

impl Drop for Reentrant {
    fn drop(&mut self) {
        if let (Some(f), Some(sem)) = (&self.on_drop, self.sem.upgrade()) {
            f(&sem);
        }
    }
}

fn reentrant(
    sem: &Arc<MultiSemaphore<2>>,
    on_wake: Action,
    on_drop: Option<Action>,
) -> Arc<Reentrant> {
    Arc::new(Reentrant {
        sem: Arc::downgrade(sem),
        on_wake,
        on_drop,
        wakes: AtomicUsize::new(0),
    })
}

/// Everything a callback might do to the semaphore.
fn poke(sem: &Arc<MultiSemaphore<2>>) {
    if let Ok(p) = sem.try_acquire([1, 1]) {
        drop(p);
    }
    let _ = sem.available();
    let _ = sem.capacity();
    let _ = sem.waiters();
    let _ = sem.stats();
    let _ = sem.is_closed();
    if let Ok(p) = sem.acquire_blocking_deadline([1, 1], Instant::now()) {
        drop(p);
    }
}

#[test]
fn waker_that_acquires_and_releases_on_wake() {
    for layout in LAYOUTS {
        within("re-entrant wake: try_acquire", LIMIT, move || {
            let sem = Arc::new(layout.make(CAP));
            let hold = sem.try_acquire_owned(CAP).unwrap();
            let w = reentrant(&sem, Box::new(poke), None);
            let waker = Waker::from(Arc::clone(&w));
            let mut f = Box::pin(sem.acquire_owned([2, 2048]));
            assert!(poll_with(f.as_mut(), &waker).is_pending());
            // The release grants the future and wakes it: the waker re-enters.
            drop(hold);
            assert!(w.wakes.load(Ordering::SeqCst) >= 1, "not woken");
            let p = ready(
                poll_with(f.as_mut(), &waker),
                "granted future still pending",
            )
            .unwrap();
            assert_eq!(p.amounts(), [2, 2048]);
            drop(p);
            drop(f);
            drop(waker);
            drop(w);
            assert_quiet(&sem);
        });
    }
}

#[test]
fn waker_that_drops_a_permit_on_wake() {
    for layout in LAYOUTS {
        within("re-entrant wake: drop permit", LIMIT, move || {
            let sem = Arc::new(layout.make(CAP));
            let hold = sem.try_acquire_owned([4, 0]).unwrap();
            // The waker owns a permit and drops it when woken: a release
            // inside the release that woke it, which may wake a second future.
            let stash: Arc<Mutex<Option<OwnedPermit<2>>>> =
                Arc::new(Mutex::new(Some(sem.try_acquire_owned([0, 4096]).unwrap())));
            let st = Arc::clone(&stash);
            let w1 = reentrant(
                &sem,
                Box::new(move |_| {
                    let p = st.lock().unwrap().take();
                    drop(p);
                }),
                None,
            );
            let w2 = reentrant(&sem, Box::new(poke), None);
            let k1 = Waker::from(Arc::clone(&w1));
            let k2 = Waker::from(Arc::clone(&w2));
            let mut f1 = Box::pin(sem.acquire_owned([1, 0]));
            let mut f2 = Box::pin(sem.acquire_owned([1, 4096]));
            assert!(poll_with(f1.as_mut(), &k1).is_pending());
            assert!(poll_with(f2.as_mut(), &k2).is_pending());
            drop(hold);
            assert!(stash.lock().unwrap().is_none(), "first waker not woken");
            assert!(
                w2.wakes.load(Ordering::SeqCst) >= 1,
                "second waker not woken"
            );
            let p1 = ready(poll_with(f1.as_mut(), &k1), "first future not granted").unwrap();
            let p2 = ready(poll_with(f2.as_mut(), &k2), "second future not granted").unwrap();
            assert_eq!((p1.amounts(), p2.amounts()), ([1, 0], [1, 4096]));
            drop((p1, p2, f1, f2));
            assert_quiet(&sem);
        });
    }
}

#[test]
fn waker_that_resizes_or_closes_on_wake() {
    for layout in LAYOUTS {
        within("re-entrant wake: resize and close", LIMIT, move || {
            let sem = Arc::new(layout.make(CAP));
            let hold = sem.try_acquire_owned(CAP).unwrap();
            let w1 = reentrant(
                &sem,
                Box::new(|s| {
                    s.add_permits([1, 1]).unwrap();
                    s.set_capacity([5, 4097]).unwrap();
                }),
                None,
            );
            let k1 = Waker::from(Arc::clone(&w1));
            let mut f1 = Box::pin(sem.acquire_owned([1, 1]));
            assert!(poll_with(f1.as_mut(), &k1).is_pending());
            // Growth grants f1, whose waker grows again.
            sem.add_permits([1, 1]).unwrap();
            let p1 = ready(poll_with(f1.as_mut(), &k1), "not granted after growth").unwrap();
            assert_eq!(sem.capacity(), [5, 4097]);
            drop(p1);

            // A waker that closes the semaphore when close() wakes it.
            let w2 = reentrant(&sem, Box::new(|s| s.close()), None);
            let k2 = Waker::from(Arc::clone(&w2));
            let w3 = reentrant(&sem, Box::new(poke), None);
            let k3 = Waker::from(Arc::clone(&w3));
            let mut f2 = Box::pin(sem.acquire_owned(CAP));
            let mut f3 = Box::pin(sem.acquire([1, 1]));
            assert!(poll_with(f2.as_mut(), &k2).is_pending());
            assert!(poll_with(f3.as_mut(), &k3).is_pending());
            sem.close();
            assert!(w2.wakes.load(Ordering::SeqCst) >= 1);
            assert!(w3.wakes.load(Ordering::SeqCst) >= 1);
            assert!(matches!(
                poll_with(f2.as_mut(), &k2),
                Poll::Ready(Err(AcquireError::Closed))
            ));
            assert!(matches!(
                poll_with(f3.as_mut(), &k3),
                Poll::Ready(Err(AcquireError::Closed))
            ));
            drop((f2, f3));
            drop(hold);
            assert_eq!(sem.available(), sem.capacity());
            assert_eq!(sem.waiters(), 0);
        });
    }
}

#[test]
fn waker_that_calls_back_when_dropped() {
    // The semaphore drops stored wakers when a future is re-polled with a new
    // one, when it is granted, closed or cancelled. Dropping the last
    // reference runs code that re-enters the semaphore: it must not run under
    // the semaphore's lock.
    for layout in LAYOUTS {
        within("re-entrant waker drop", LIMIT, move || {
            let sem = Arc::new(layout.make(CAP));
            let hold = sem.try_acquire_owned(CAP).unwrap();
            let drops = Arc::new(AtomicUsize::new(0));
            let mk = |sem: &Arc<MultiSemaphore<2>>| {
                let d = Arc::clone(&drops);
                Waker::from(reentrant(
                    sem,
                    Box::new(poke),
                    Some(Box::new(move |s| {
                        d.fetch_add(1, Ordering::SeqCst);
                        poke(s);
                    })),
                ))
            };
            // 1. Re-poll with a different waker: the old one is dropped.
            let mut f = Box::pin(sem.acquire_owned([1, 1]));
            assert!(poll_with(f.as_mut(), &mk(&sem)).is_pending());
            assert!(poll_with(f.as_mut(), &mk(&sem)).is_pending());
            // 2. Cancelled: the stored waker is dropped.
            drop(f);
            // 3. Granted: the stored waker is woken and dropped.
            let mut g = Box::pin(sem.acquire_owned([1, 1]));
            assert!(poll_with(g.as_mut(), &mk(&sem)).is_pending());
            drop(hold);
            let p = ready(poll_once(g.as_mut()), "not granted").unwrap();
            drop(p);
            // 4. Closed: the stored waker is woken and dropped.
            let all = sem.try_acquire_owned(CAP).unwrap();
            let mut h = Box::pin(sem.acquire_owned([1, 1]));
            assert!(poll_with(h.as_mut(), &mk(&sem)).is_pending());
            sem.close();
            assert!(matches!(
                poll_once(h.as_mut()),
                Poll::Ready(Err(AcquireError::Closed))
            ));
            drop(h);
            drop(all);
            assert!(
                drops.load(Ordering::SeqCst) >= 4,
                "only {} waker drops ran",
                drops.load(Ordering::SeqCst)
            );
            assert_eq!(sem.available(), sem.capacity());
            assert_eq!(sem.waiters(), 0);
        });
    }
}

#[test]
fn waker_that_blocks_on_the_semaphore_from_another_thread() {
    // wake() hands off to a thread that acquires (blocking) and waits for it:
    // if wakers were woken under the semaphore's lock, that thread could not
    // get in.
    for layout in LAYOUTS {
        within(
            "waker waiting on another thread's acquire",
            LIMIT,
            move || {
                let sem = Arc::new(layout.make(CAP));
                let hold = sem.try_acquire_owned([2, 2048]).unwrap();
                let w = reentrant(
                    &sem,
                    Box::new(|s| {
                        let s = Arc::clone(s);
                        let r = thread::spawn(move || {
                            let _ = s.available();
                            let _ = s.waiters();
                            s.try_acquire([0, 0]).map(|p| p.amounts())
                        })
                        .join()
                        .unwrap();
                        assert_eq!(r, Ok([0, 0]));
                    }),
                    None,
                );
                let k = Waker::from(Arc::clone(&w));
                let mut f = Box::pin(sem.acquire_owned([4, 4096]));
                assert!(poll_with(f.as_mut(), &k).is_pending());
                drop(hold);
                assert!(w.wakes.load(Ordering::SeqCst) >= 1);
                let p = ready(poll_with(f.as_mut(), &k), "not granted").unwrap();
                drop(p);
                drop(f);
                assert_quiet(&sem);
            },
        );
    }
}

#[test]
fn panicking_waker_leaves_the_semaphore_consistent() {
    // A waker that panics when woken: the release that woke it panics, but
    // the books stay exact and nothing stays locked.
    quiet_panics();
    for layout in LAYOUTS {
        within("panicking waker", LIMIT, move || {
            let sem = Arc::new(layout.make(CAP));
            let hold = sem.try_acquire_owned(CAP).unwrap();
            let w = reentrant(&sem, Box::new(|_| panic!("expected: waker panics")), None);
            let k = Waker::from(Arc::clone(&w));
            let mut f = Box::pin(sem.acquire_owned([1, 1]));
            assert!(poll_with(f.as_mut(), &k).is_pending());
            // Whether the waker's panic reaches the releaser is the
            // library's choice; either way nothing may be left inconsistent.
            let _ = catch_unwind(AssertUnwindSafe(move || drop(hold)));
            assert!(w.wakes.load(Ordering::SeqCst) >= 1);
            // Nothing is locked: every call still works.
            let _ = sem.stats();
            let p = ready(poll_once(f.as_mut()), "not granted").unwrap();
            assert_eq!(sem.available(), [3, 4095]);
            drop(p);
            drop(f);
            assert_quiet(&sem);
        });
    }
}

// ---------------------------------------------------------------------------
// A panicking waker strands nobody
// ---------------------------------------------------------------------------

/// A waker that counts its wakes and then, if `panics` says so, panics with
/// that message.
struct Panicky {
    wakes: AtomicUsize,
    panics: Option<&'static str>,
}

impl Wake for Panicky {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.wakes.fetch_add(1, Ordering::SeqCst);
        if let Some(msg) = self.panics {
            std::panic::panic_any(msg);
        }
    }
}

fn panicky(panics: Option<&'static str>) -> (Arc<Panicky>, Waker) {
    let w = Arc::new(Panicky {
        wakes: AtomicUsize::new(0),
        panics,
    });
    let k = Waker::from(Arc::clone(&w));
    (w, k)
}

type Queued = (Arc<Panicky>, std::pin::Pin<Box<AcquireOwned<2>>>);

/// Queues one `[1, 1]` future per entry of `panics` (in that order) behind
/// `hold`, each with its own waker.
fn queue_futures(sem: &Arc<MultiSemaphore<2>>, panics: &[Option<&'static str>]) -> Vec<Queued> {
    let queued: Vec<Queued> = panics
        .iter()
        .map(|&p| {
            let (w, k) = panicky(p);
            let mut f = Box::pin(sem.acquire_owned([1, 1]));
            assert!(poll_with(f.as_mut(), &k).is_pending());
            (w, f)
        })
        .collect();
    assert_eq!(sem.waiters(), panics.len());
    queued
}

#[test]
fn panicking_waker_does_not_strand_the_others_granted_by_the_same_release() {
    // Six waiters granted by one release (past the wake list's inline
    // part); the first and the fourth wakers panic. Every waiter is woken
    // once, and the releaser sees the first panic.
    quiet_panics();
    for layout in LAYOUTS {
        within("panicking waker, release", LIMIT, move || {
            let sem = Arc::new(layout.make([8, 8]));
            let hold = sem.try_acquire_owned([8, 8]).unwrap();
            let panics = [
                Some("expected: first waker"),
                None,
                None,
                Some("expected: fourth waker"),
                None,
                None,
            ];
            let mut queued = queue_futures(&sem, &panics);
            let err = catch_unwind(AssertUnwindSafe(move || drop(hold)))
                .expect_err("the waker's panic reaches the releaser");
            assert_eq!(panic_message(&*err), "expected: first waker");
            for (i, (w, _)) in queued.iter().enumerate() {
                assert_eq!(w.wakes.load(Ordering::SeqCst), 1, "waiter {i} not woken");
            }
            assert_eq!(sem.waiters(), 0);
            let permits: Vec<_> = queued
                .iter_mut()
                .map(|(_, f)| ready(poll_once(f.as_mut()), "granted").unwrap())
                .collect();
            assert_eq!(sem.available(), [2, 2]);
            drop(permits);
            drop(queued);
            assert_quiet(&sem);
        });
    }
}

#[test]
fn panicking_waker_does_not_strand_blocked_threads_behind_it() {
    // The head is a future whose waker panics; three threads are blocked
    // (parked, no timeout) behind it. One release grants all four: each
    // thread must be unparked, not left asleep forever.
    quiet_panics();
    for layout in LAYOUTS {
        within("panicking waker, blocked threads", LIMIT, move || {
            let sem = Arc::new(layout.make([4, 4]));
            let hold = sem.try_acquire_owned([4, 4]).unwrap();
            let mut head = queue_futures(&sem, &[Some("expected: head's waker")]);
            let (tx, rx) = mpsc::channel();
            let threads: Vec<_> = (0..3)
                .map(|_| {
                    let (sem, tx) = (Arc::clone(&sem), tx.clone());
                    thread::spawn(move || {
                        let p = sem.acquire_blocking([1, 1]).unwrap();
                        let _ = tx.send(p.amounts());
                        drop(p);
                    })
                })
                .collect();
            let deadline = Instant::now() + Duration::from_secs(10);
            while sem.waiters() != 4 {
                assert!(Instant::now() < deadline, "threads did not queue");
                thread::sleep(Duration::from_millis(1));
            }
            // Past their spin: they are parked.
            thread::sleep(Duration::from_millis(50));
            assert!(catch_unwind(AssertUnwindSafe(move || drop(hold))).is_err());
            for i in 0..3 {
                let got = rx.recv_timeout(Duration::from_secs(10));
                assert_eq!(got, Ok([1, 1]), "blocked thread {i} never woken");
            }
            threads.into_iter().for_each(|t| t.join().unwrap());
            let (w, f) = &mut head[0];
            assert_eq!(w.wakes.load(Ordering::SeqCst), 1);
            drop(ready(poll_once(f.as_mut()), "head granted").unwrap());
            drop(head);
            assert_quiet(&sem);
        });
    }
}

#[test]
fn panicking_waker_does_not_strand_the_others_woken_by_close() {
    quiet_panics();
    for layout in LAYOUTS {
        within("panicking waker, close", LIMIT, move || {
            let sem = Arc::new(layout.make([8, 8]));
            let hold = sem.try_acquire_owned([8, 8]).unwrap();
            let panics = [None, Some("expected: second waker"), None, None, None, None];
            let mut queued = queue_futures(&sem, &panics);
            let s2 = Arc::clone(&sem);
            let blocked = thread::spawn(move || s2.acquire_blocking([1, 1]).map(|p| p.amounts()));
            let deadline = Instant::now() + Duration::from_secs(10);
            while sem.waiters() != panics.len() + 1 {
                assert!(Instant::now() < deadline, "thread did not queue");
                thread::sleep(Duration::from_millis(1));
            }
            thread::sleep(Duration::from_millis(50));
            let err = catch_unwind(AssertUnwindSafe(|| sem.close()))
                .expect_err("the waker's panic reaches the closer");
            assert_eq!(panic_message(&*err), "expected: second waker");
            assert!(sem.is_closed());
            for (i, (w, f)) in queued.iter_mut().enumerate() {
                assert_eq!(w.wakes.load(Ordering::SeqCst), 1, "waiter {i} not woken");
                let r = ready(poll_once(f.as_mut()), "closed out");
                assert_eq!(r.unwrap_err(), AcquireError::Closed);
            }
            let (tx, rx) = mpsc::channel();
            thread::spawn(move || tx.send(blocked.join().unwrap()));
            let got = rx.recv_timeout(Duration::from_secs(10));
            assert_eq!(
                got,
                Ok(Err(AcquireError::Closed)),
                "blocked thread never woken"
            );
            drop(hold);
            drop(queued);
            assert_eq!(sem.available(), sem.capacity());
            assert_eq!(sem.waiters(), 0);
        });
    }
}

#[test]
fn forget_that_fails_a_panicking_waiter_counts_the_forgotten_permits_once() {
    // A forget shrinks the capacity and fails the queued request that no
    // longer fits; its waker panics, and the panic reaches the forgetter, as
    // from any resize. The permit is gone all the same: the drop that runs
    // while that panic unwinds must not give its amounts back too (the
    // capacity would be smaller than what can be granted).
    quiet_panics();
    for layout in LAYOUTS {
        for owned in [false, true] {
            within("forget, panicking waker", LIMIT, move || {
                let sem = Arc::new(layout.make([10, 10]));
                let rest = sem.try_acquire_owned([6, 6]).unwrap();
                let plain = (!owned).then(|| sem.try_acquire([4, 4]).unwrap());
                let arced = owned.then(|| sem.try_acquire_owned([4, 4]).unwrap());
                let forget = move || match (plain, arced) {
                    (Some(permit), None) => permit.forget(),
                    (None, Some(permit)) => permit.forget(),
                    _ => unreachable!(),
                };
                let (w, k) = panicky(Some("expected: failed waiter's waker"));
                let mut f = Box::pin(sem.acquire_owned([8, 1]));
                assert!(poll_with(f.as_mut(), &k).is_pending());
                let err = catch_unwind(AssertUnwindSafe(forget))
                    .expect_err("the waker's panic reaches the forgetter");
                assert_eq!(panic_message(&*err), "expected: failed waiter's waker");
                assert_eq!(w.wakes.load(Ordering::SeqCst), 1);
                let failed = ready(poll_once(f.as_mut()), "failed by the shrink");
                assert!(
                    matches!(failed, Err(AcquireError::ExceedsCapacity { dim: 0, .. })),
                    "{failed:?}"
                );
                assert_eq!(sem.capacity(), [6, 6]);
                assert_eq!(sem.available(), [0, 0]);
                assert!(
                    sem.try_acquire([1, 1]).is_err(),
                    "granted above the capacity"
                );
                drop(rest);
                assert_eq!(sem.stats().peak_in_flight, [10, 10]);
                drop(f);
                assert_quiet(&sem);
            });
        }
    }
}

#[test]
fn dropping_a_granted_future_swallows_the_panic_of_the_waiter_it_serves() {
    // A future granted but dropped before its next poll gives its grant
    // back, which grants the next waiter, whose waker panics. That panic
    // must not unwind out of the drop (a drop during an unwind would then
    // abort) nor skip counting the cancel.
    quiet_panics();
    for layout in LAYOUTS {
        within("dropped grant, panicking waker", LIMIT, move || {
            let sem = Arc::new(layout.make([1, 1]));
            let hold = sem.try_acquire_owned([1, 1]).unwrap();
            let panics = [None, Some("expected: the follower's waker")];
            let mut queued = queue_futures(&sem, &panics);
            drop(hold); // grants the first
            assert_eq!(queued[0].0.wakes.load(Ordering::SeqCst), 1);
            assert_eq!(sem.waiters(), 1);
            let (_, granted) = queued.remove(0);
            catch_unwind(AssertUnwindSafe(move || drop(granted)))
                .expect("the follower's panic stays inside the drop");
            assert_eq!(sem.stats().cancelled, 1);
            let (w, f) = &mut queued[0];
            assert_eq!(w.wakes.load(Ordering::SeqCst), 1, "follower not woken");
            drop(ready(poll_once(f.as_mut()), "granted").unwrap());
            drop(queued);
            assert_eq!(sem.stats().cancelled, 1);
            assert_quiet(&sem);
        });
    }
}

/// The child's half of `panicking_waker_while_unwinding_does_not_abort`.
const UNWIND_CHILD: &str = "MULTISEM_PANICS_UNWIND_CHILD";

#[test]
fn panicking_waker_while_unwinding_does_not_abort() {
    // A thread panics holding a permit; dropping it during the unwind grants
    // queued futures, and the first one's waker panics. Raising that panic
    // there would abort the process, so this runs in a child process: an
    // abort fails the test instead of ending the run.
    if std::env::var_os(UNWIND_CHILD).is_none() {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "panicking_waker_while_unwinding_does_not_abort",
                "--test-threads=1",
            ])
            .env(UNWIND_CHILD, "1")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "child failed ({:?}):\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    quiet_panics();
    for layout in LAYOUTS {
        let sem = Arc::new(layout.make([4, 4]));
        let hold = sem.try_acquire_owned([4, 4]).unwrap();
        let panics = [Some("expected: waker panics during unwind"), None, None];
        let mut queued = queue_futures(&sem, &panics);
        let err = catch_unwind(AssertUnwindSafe(move || {
            let _hold = hold;
            panic!("expected: the original panic");
        }))
        .expect_err("the original panic goes on");
        // The waker's panic was swallowed: the original one arrives.
        assert_eq!(panic_message(&*err), "expected: the original panic");
        for (i, (w, f)) in queued.iter_mut().enumerate() {
            assert_eq!(w.wakes.load(Ordering::SeqCst), 1, "waiter {i} not woken");
            drop(ready(poll_once(f.as_mut()), "granted").unwrap());
        }
        drop(queued);
        assert_quiet(&sem);
    }
}
