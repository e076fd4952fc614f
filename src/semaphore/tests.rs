//! Paths that need a hand on the internals to reach deterministically.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use crate::counters::FastError;
use crate::{Acquire, MultiSemaphore, TryAcquireError};

struct PanicOnWake;

impl Wake for PanicOnWake {
    fn wake(self: Arc<Self>) {
        panic!("a waker that panics");
    }
}

/// An acquirer of `[1, 1]` queued (its first poll with `waker`) on a
/// `[2, 2]` semaphore, and then a give-back made by hand: what a permit of
/// `[2, 2]` held is back in the counters, and nobody has served the queue
/// since. Reaching it for real takes a release racing a tiered split take;
/// the locked path that follows is the same in both layouts.
fn queued_behind_a_give_back<'a>(
    sem: &'a MultiSemaphore<2>,
    waker: &Waker,
) -> Pin<Box<Acquire<'a, 2>>> {
    let held = sem.try_acquire([2, 2]).unwrap();
    let mut waiter = Box::pin(sem.acquire([1, 1]));
    assert!(
        waiter
            .as_mut()
            .poll(&mut Context::from_waker(waker))
            .is_pending()
    );
    std::mem::forget(held);
    sem.counters.add(&[2, 2]);
    assert_eq!(sem.waiters(), 1);
    waiter
}

/// The acquirer `queued_behind_a_give_back` queued was served: granted,
/// and the books balance once its permit is back.
fn assert_served(sem: &MultiSemaphore<2>, mut waiter: Pin<Box<Acquire<'_, 2>>>) {
    let permit = match waiter
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(Ok(permit)) => permit,
        other => panic!("the queued acquirer was not served: {other:?}"),
    };
    assert_eq!(permit.amounts(), [1, 1]);
    drop(permit);
    assert_eq!(sem.available(), sem.capacity());
    assert_eq!(sem.waiters(), 0);
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
    let panics = Waker::from(Arc::new(PanicOnWake));
    let waiter = queued_behind_a_give_back(&sem, &panics);

    let refused = catch_unwind(AssertUnwindSafe(|| {
        sem.try_take_locked([3, 1], [3, 1], FastError::GaveBack, false)
    }));
    match refused {
        Ok(Err(TryAcquireError::ExceedsCapacity { dim: 0, .. })) => {}
        Ok(other) => panic!("expected ExceedsCapacity in dimension 0, got {other:?}"),
        Err(_) => panic!("the waker's panic unwound through the refusal"),
    }
    // Served on the way out: granted, and woken (its waker panicked).
    assert_served(&sem, waiter);
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
    let sem = MultiSemaphore::new([2, 2]);
    let waiter = queued_behind_a_give_back(&sem, Waker::noop());

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

    assert_served(&sem, waiter);
}

/// An owed visit is paid by the caller's own visit: the guard then touches
/// nothing (no visit, no serve), and one that is owed nothing neither.
#[test]
fn an_owed_visit_paid_or_not_owed_serves_nothing() {
    let sem = MultiSemaphore::new([2, 2]);
    let mut waiter = queued_behind_a_give_back(&sem, Waker::noop());
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
    assert_served(&sem, waiter);
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

/// A blocking acquirer relies on the unpark token alone for
/// every outcome but a whole grant (its flag covers only that). Its own
/// `enqueue` wakes, on its own thread, the wakers of those its visit
/// granted, after it is queued and before it parks; a waker that parks
/// (runs its task inline, and that blocks on a channel, as any
/// `recv_timeout`) consumes the token of a `close()` that lands meanwhile,
/// and the acquirer then sleeps through its `Closed` outcome: forever for
/// `acquire_blocking`, until the deadline for the timed ones.
///
/// The visit that grants another waiter during the enqueue is a release
/// racing it (its permits in the counters, its serve not yet run); made
/// here by hand, as `a_refused_take_that_gave_back_serves_the_queue_quietly`
/// does. (Found by a reviewer.)
#[test]
fn a_close_is_not_lost_to_a_waker_that_parks_during_enqueue() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    struct ParksInline {
        started: mpsc::SyncSender<()>,
        go_on: std::sync::Mutex<mpsc::Receiver<()>>,
        ran: AtomicBool,
    }
    impl Wake for ParksInline {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            if self.ran.swap(true, Ordering::SeqCst) {
                return;
            }
            self.started.send(()).unwrap();
            // The task, run inline, blocks on a channel: std parks.
            let _ = self
                .go_on
                .lock()
                .unwrap()
                .recv_timeout(Duration::from_secs(5));
        }
    }

    let sem = Arc::new(MultiSemaphore::new([2, 1]));
    let held = sem.try_acquire([2, 1]).unwrap();
    let (started_tx, started_rx) = mpsc::sync_channel(1);
    let (go_tx, go_rx) = mpsc::channel();
    let waker = Waker::from(Arc::new(ParksInline {
        started: started_tx,
        go_on: std::sync::Mutex::new(go_rx),
        ran: AtomicBool::new(false),
    }));
    // An async head waiting for [1, 0].
    let mut head = Box::pin(sem.acquire([1, 0]));
    assert!(
        head.as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_pending()
    );
    // A release racing what follows: [1, 0] back in the counters, its
    // serve not yet run.
    std::mem::forget(held);
    sem.counters.add(&[1, 0]);

    let (done_tx, done_rx) = mpsc::channel();
    let blocked = {
        let sem = Arc::clone(&sem);
        std::thread::spawn(move || {
            // Its enqueue grants the head and wakes it here, on this thread.
            let result = sem
                .acquire_blocking_timeout([1, 1], Duration::from_secs(6))
                .map(drop);
            done_tx.send((result, Instant::now())).unwrap();
        })
    };
    started_rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(sem.waiters(), 1, "the blocking acquirer is queued");
    let closed_at = Instant::now();
    sem.close();
    std::thread::sleep(Duration::from_millis(50));
    go_tx.send(()).unwrap(); // the waker's task goes on and returns
    let (result, at) = done_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    blocked.join().unwrap();
    assert_eq!(result, Err(crate::AcquireError::Closed));
    let late = at - closed_at;
    assert!(
        late < Duration::from_secs(2),
        "closed out only after {late:?}: the close's wake-up was lost"
    );
    drop(head);
}

/// The crate docs promise that while nobody is queued, `try_acquire` and
/// dropping a permit use atomic operations only, no lock. With the lock
/// held elsewhere, a grant, a refusal and a permit's return must each
/// finish at once, in both layouts. (A refused `try_acquire` on the tiered
/// layout took the queue lock, to read `available()` for its error: found
/// by a reviewer. Another found that nothing checked the grant and the
/// return: every return taking the lock passed the whole suite.)
#[test]
fn try_acquire_and_a_permits_drop_take_no_lock_when_nobody_is_queued() {
    use std::sync::mpsc;
    use std::time::Duration;
    for (name, sem) in [
        ("packed", Arc::new(MultiSemaphore::new([4, 1000]))),
        ("tiered", Arc::new(MultiSemaphore::new([4, 1 << 55]))),
    ] {
        assert_eq!(sem.is_single_word(), name == "packed");
        let _held = sem.try_acquire([3, 0]).unwrap();
        assert_eq!(sem.waiters(), 0);
        let (tx, rx) = mpsc::channel();
        let locked = sem.queue.lock(); // the lock, held by "another visitor"
        let worker = {
            let sem = Arc::clone(&sem);
            std::thread::spawn(move || {
                let granted = sem.try_acquire([1, 1]);
                tx.send(("granted", granted.is_ok())).unwrap();
                let refused = sem.try_acquire([1, 1]);
                let insufficient = refused.is_err_and(|e| e.is_insufficient());
                tx.send(("refused", insufficient)).unwrap();
                drop(granted);
                tx.send(("returned", true)).unwrap();
            })
        };
        let steps: Vec<_> = (0..3)
            .map(|_| rx.recv_timeout(Duration::from_secs(2)))
            .collect();
        drop(locked);
        worker.join().unwrap();
        for (step, expected) in steps.into_iter().zip(["granted", "refused", "returned"]) {
            assert_eq!(
                step,
                Ok((expected, true)),
                "{name}: with nobody queued, {expected} waited for the queue lock"
            );
        }
        assert_eq!(sem.available(), [1, sem.capacity()[1]], "{name}");
    }
}

/// A peak noted from the word its take wrote counts what was in flight at
/// that take, even if permits came back before the note: only a resize
/// between the two sends the note to the lock, where those returns would be
/// missed. Staged by hand as above: a release between the take's CAS and
/// its note.
#[test]
fn a_peak_counts_the_word_its_take_wrote_when_no_resize_ran() {
    use crate::counters::{Miss, Took};
    use std::sync::atomic::Ordering;

    let sem = MultiSemaphore::new([10]);
    // Two resizes first: the count is 4, not 0, when the take reads it.
    sem.set_capacity([12]).unwrap();
    sem.set_capacity([10]).unwrap();
    let others = sem.try_acquire([5]).unwrap();
    let before = sem.limits.resizes.load(Ordering::Acquire);
    assert_eq!(before, 4);
    let Ok(Took::Word(word)) = sem.counters.take_after_miss([3], Miss::Other) else {
        panic!("the take of [3] failed");
    };
    // 8 in flight at the take; 5 come back before its note.
    drop(others);
    sem.note_peak_after(word, &[3], before);
    assert_eq!(sem.stats().peak_in_flight, [8]);
    sem.release(&[3]);
    assert_eq!(sem.available(), sem.capacity());
}

/// `try_acquire_or_wait` hands back a future without visiting the lock,
/// so the visit its take owes after a tiered give-back
/// (`FastError::GaveBack`) is paid on the spot: the queued acquirer the
/// given-back permits fit is served. Staged by hand as above.
#[test]
fn a_give_back_owed_visit_paid_on_the_spot_serves_the_queue() {
    let sem = MultiSemaphore::new([2, 2]);
    let waiter = queued_behind_a_give_back(&sem, Waker::noop());
    sem.pay_owed_visit(FastError::Defer);
    assert_eq!(sem.waiters(), 1, "nothing owed: no visit");
    sem.pay_owed_visit(FastError::GaveBack);
    assert_eq!(sem.waiters(), 0);
    assert_served(&sem, waiter);
}

/// A blocking wait whose deadline passes just after its outcome landed (a
/// grant after its last look, before its cancel takes the lock) delivers
/// that outcome, not `Timeout`: a grant is kept, not leaked, and a close or
/// a shrink says so. The window is a few instructions wide with a real
/// clock, and loom has none; so the request is queued and its outcome set
/// by hand, and the wait loop entered with its deadline already past.
#[test]
fn a_blocking_wait_past_its_deadline_delivers_an_outcome_that_landed() {
    use crate::AcquireError;
    use crate::semaphore::Enqueued;
    use crate::waiters::{Notify, Parked};
    use std::time::Instant;

    /// Lands the queued request's outcome; `held` is what kept it waiting.
    type Land = fn(&MultiSemaphore<2>, crate::Permit<'_, 2>);
    /// A name, how the outcome lands, what the wait returns, what is then
    /// available.
    type Case = (&'static str, Land, Result<[u64; 2], AcquireError>, [u64; 2]);
    let cases: [Case; 3] = [
        // A whole grant: the flag, seen by the cancel under the lock.
        ("granted", |_, held| drop(held), Ok([1, 4]), [1, 6]),
        // A close: the slot's outcome, taken by the cancel.
        (
            "closed",
            |sem, held| {
                sem.close();
                drop(held);
            },
            Err(AcquireError::Closed),
            [2, 10],
        ),
        // A shrink below the request: the same.
        (
            "shrunk",
            |sem, held| {
                sem.set_capacity([2, 3]).unwrap();
                drop(held);
            },
            Err(AcquireError::exceeds(1, 4, 3, Default::default())),
            [2, 3],
        ),
    ];
    for (name, land, expected, available) in cases {
        let sem = MultiSemaphore::new([2, 10]);
        let held = sem.try_acquire([2, 10]).unwrap();
        let parked = Parked::current();
        let Ok(Enqueued::Queued(ticket)) = sem.enqueue([1, 4], Notify::Thread(parked.clone()))
        else {
            panic!("{name}: the request did not queue");
        };
        land(&sem, held);
        let deadline = Instant::now();
        let result = sem.wait_queued(ticket, parked, [1, 4], Some(deadline));
        assert_eq!(result, expected, "{name}");
        assert_eq!(sem.stats().timed_out, 0, "{name}: counted as timed out");
        assert_eq!(sem.available(), available, "{name}");
        assert_eq!(sem.waiters(), 0, "{name}");
        if let Ok(taken) = result {
            sem.release(&taken);
            assert_eq!(sem.available(), sem.capacity(), "{name}");
        }
    }
}

/// The tiered layout, where it tracks peaks, counts what permits hold; the
/// in-flight figure that every tracked completion reads comes from that
/// count, without the lock, whose read would set `SLOW` and send every take
/// meanwhile to the lock. So while another thread holds the lock, the read
/// and a tracked permit's completion both finish. At rest it is
/// `in_flight()`, after a shrink below what is held and after a forget too.
#[test]
fn the_tiered_layouts_in_flight_statistic_takes_no_lock() {
    use crate::adaptive::{Aimd, Controller, Outcome};
    use std::sync::mpsc;
    use std::time::Duration;

    let sem = Arc::new(MultiSemaphore::new([1 << 12, 1 << 50]));
    assert!(
        !sem.counters.is_packed(),
        "the capacities need the tiered layout"
    );
    let ctl = Controller::builder(Arc::clone(&sem))
        .limit(0, 1..=(1 << 12), Aimd::default())
        .build();
    let tracked = ctl.try_acquire([3, 1 << 45]).unwrap();
    let plain = sem.try_acquire([1, 5]).unwrap();
    let held = [4, (1 << 45) + 5];
    assert_eq!(sem.in_flight_statistic(), held);

    let (done, finished) = mpsc::channel();
    let queue = sem.lock();
    std::thread::scope(|s| {
        let sem = &sem;
        s.spawn(move || {
            let seen = sem.in_flight_statistic();
            tracked.complete(Outcome::success());
            done.send(seen).unwrap();
        });
        let seen = finished.recv_timeout(Duration::from_secs(10));
        drop(queue);
        assert_eq!(
            seen,
            Ok(held),
            "the read or the completion waited for the lock"
        );
    });
    assert_eq!(sem.in_flight_statistic(), [1, 5]);
    assert_eq!(sem.in_flight_statistic(), sem.in_flight());

    let big = sem.try_acquire([8, 1 << 49]).unwrap();
    sem.set_capacity([4, 1 << 40]).unwrap();
    assert_eq!(sem.in_flight(), [9, (1 << 49) + 5]);
    assert_eq!(sem.in_flight_statistic(), sem.in_flight());
    big.forget();
    assert_eq!(sem.in_flight_statistic(), [1, 5]);
    assert_eq!(sem.in_flight_statistic(), sem.in_flight());
    drop(plain);
    assert_eq!(sem.in_flight_statistic(), [0, 0]);
    assert_eq!(sem.in_flight(), [0, 0]);
}

/// In the single-word layout `in_flight()` and `available()` read without
/// the lock while acquirers are queued, so long as no shrink is being
/// absorbed: queued acquirers alone set `SLOW`, and the lock holder grants
/// them with compare-and-swaps on the same word (`load_free_of_debt`). So
/// with the lock held elsewhere both reads, and a tracked permit's sample
/// (whose controller reads `in_flight()`), still finish, and exactly. While
/// a shrink's debt is owed they read under the lock, and exactly too.
#[test]
fn the_single_word_layouts_reads_take_no_lock_while_acquirers_are_only_queued() {
    use crate::adaptive::{Aimd, Controller, Outcome};
    use std::sync::mpsc;
    use std::time::Duration;

    let sem = Arc::new(MultiSemaphore::new([10, 1000]));
    assert!(sem.counters.is_packed());
    let ctl = Controller::builder(Arc::clone(&sem))
        .limit(0, 1..=10, Aimd::default())
        .build();
    let tracked = ctl.try_acquire([2, 100]).unwrap();
    let held = sem.try_acquire([3, 800]).unwrap();
    let mut waiter = Box::pin(sem.acquire([1, 500]));
    let mut cx = Context::from_waker(Waker::noop());
    assert!(waiter.as_mut().poll(&mut cx).is_pending());
    assert_eq!(sem.waiters(), 1);

    let (done, finished) = mpsc::channel();
    let queue = sem.lock();
    std::thread::scope(|s| {
        let sem = &sem;
        s.spawn(move || {
            let seen = (sem.in_flight(), sem.available());
            // A sample, as a completion takes, but keeping the permit: its
            // return serves the queue, under the lock.
            let mut tracked = tracked;
            tracked.report(Outcome::success());
            done.send(seen).unwrap();
            drop(tracked);
        });
        let seen = finished.recv_timeout(Duration::from_secs(10));
        drop(queue);
        assert_eq!(
            seen,
            Ok(([5, 900], [5, 100])),
            "a read waited for the lock, or was not exact"
        );
    });
    assert_eq!((sem.in_flight(), sem.available()), ([3, 800], [7, 200]));

    // A shrink below what is held leaves a debt: the reads go to the lock.
    sem.set_capacity([2, 1000]).unwrap();
    assert_eq!(sem.waiters(), 1);
    assert_eq!((sem.in_flight(), sem.available()), ([3, 800], [0, 200]));
    drop(held);
    assert_eq!((sem.in_flight(), sem.available()), ([1, 500], [1, 500]));
    assert!(waiter.as_mut().poll(&mut cx).is_ready());
    drop(waiter);
    assert_eq!((sem.in_flight(), sem.available()), ([0, 0], [2, 1000]));
}

/// A refresh of the low water held up while 32 resizes ran (the word's
/// 6-bit generation comes back, the word bit for bit as it was) must not
/// leave a value computed from a capacity in force only in between: below
/// the truth, it hid every later peak until the next resize. Here the
/// refresh computes from a capacity shrunk to 5, then 31 more resizes bring
/// it back to 10, and its compare-exchange lands.
#[test]
fn a_refresh_held_up_while_32_resizes_ran_leaves_no_stale_low_water() {
    use super::RefreshStep;
    let sem = MultiSemaphore::new([10]);
    drop(sem.try_acquire([4]).unwrap());
    assert_eq!(sem.stats().peak_in_flight, [4]);
    let mut first_attempt = true;
    sem.refresh_low_water_pausing(|step| match step {
        RefreshStep::Loaded if first_attempt => sem.set_capacity([5]).unwrap(),
        RefreshStep::Computed if first_attempt => {
            first_attempt = false;
            for capacity in [10, 5].into_iter().cycle().take(31) {
                sem.set_capacity([capacity]).unwrap();
            }
            assert_eq!(sem.capacity(), [10]);
        }
        _ => {}
    });
    assert!(!first_attempt, "the resizes ran");
    // Nothing races from here on: a take of 7 passes the peak of 4.
    drop(sem.try_acquire([7]).unwrap());
    assert_eq!(sem.stats().peak_in_flight, [7]);
}
