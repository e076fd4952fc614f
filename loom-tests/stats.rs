//! Issue 13: statistics that stay exact when the events they count race.
//!
//! `acquired_amounts` is counted by fast takes and by grants under the lock,
//! a timed-out waiter counts its dimension under the lock while a release
//! may grant it, and `in_flight` reads the counters while they move
//! (snapshots taken as waits end: `snapshots.rs`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::task::Poll;

use loom::thread;
use multisem::AcquireError;

use crate::support::{Layout, WakeFlag, assert_quiescent, models, poll_once};

models! {
    stats_exact_under_grant_timeout_and_fast_take: 2,
    peak_set_racing_growth_is_not_lost: 2,
    a_take_loaded_before_a_growth_granted_to_a_waiter_sets_its_peak: 2,
    a_resize_read_with_the_stats_counts_as_no_acquire: 2,
    in_flight_racing_growth_counts_what_is_held: 2,
    locked_read_racing_moves_between_tiers_counts_nothing_twice: 2,
    reads_while_queued_racing_a_shrinks_payment_count_what_is_held: 2,
    in_flight_while_queued_racing_a_forget_and_a_grant_counts_nothing_twice: 2,
}

/// What the model's callers were granted: count and amounts (std atomics, as
/// the ghost ledger in `support`).
#[derive(Default)]
struct Delivered {
    count: AtomicU64,
    amounts: [AtomicU64; 2],
}

impl Delivered {
    fn add(&self, amounts: [u64; 2]) {
        self.count.fetch_add(1, SeqCst);
        for (total, amount) in self.amounts.iter().zip(amounts) {
            total.fetch_add(amount, SeqCst);
        }
    }
}

/// A waiter times out (its timer is already done when it is first polled)
/// while another thread returns what it waits for and a third takes on the
/// fast path. Whatever the order, the statistics match what the callers
/// saw: every delivered grant counted once with its amounts, a timeout
/// counted once under one dimension, a refusal under one dimension, the
/// wait ended once, and `in_flight` never above the capacity and zero at
/// the end.
fn stats_exact_under_grant_timeout_and_fast_take(layout: Layout) {
    let cap = [2, 2];
    let sem = layout.arc_counting_amounts(cap);
    let delivered = Arc::new(Delivered::default());

    let held = sem.try_acquire_owned([1, 2]).unwrap();
    delivered.add(held.amounts());
    let releaser = thread::spawn(move || drop(held));
    let taker = {
        let sem = Arc::clone(&sem);
        let delivered = Arc::clone(&delivered);
        thread::spawn(move || {
            let in_flight = sem.in_flight();
            assert!(
                in_flight[0] <= cap[0] && in_flight[1] <= cap[1],
                "{in_flight:?}"
            );
            match sem.try_acquire([1, 0]) {
                Ok(permit) => {
                    delivered.add(permit.amounts());
                    drop(permit);
                    0
                }
                Err(_) => 1,
            }
        })
    };

    let (_flag, waker) = WakeFlag::waker();
    let mut fut = Box::pin(sem.acquire([1, 1]).with_timeout(async {}));
    let timed_out = match poll_once(fut.as_mut(), &waker) {
        Poll::Ready(Ok(permit)) => {
            delivered.add(permit.amounts());
            drop(permit);
            0
        }
        Poll::Ready(Err(AcquireError::Timeout)) => 1,
        other => panic!("a done timer must end the acquire: {other:?}"),
    };
    drop(fut);
    releaser.join().unwrap();
    let refused = taker.join().unwrap();

    let s = sem.stats();
    assert_eq!(s.acquired, delivered.count.load(SeqCst));
    let amounts: [u64; 2] = std::array::from_fn(|d| delivered.amounts[d].load(SeqCst));
    assert_eq!(s.acquired_amounts, amounts);
    assert_eq!(s.timed_out, timed_out);
    assert_eq!(s.timed_out_by.iter().sum::<u64>(), timed_out);
    assert_eq!(s.refused.iter().sum::<u64>(), refused);
    // A timeout waited first; a grant may have come at once or after a wait.
    let waited = s.waited.iter().sum::<u64>();
    assert!(waited >= timed_out && waited <= 1, "waited {waited}");
    assert_eq!(s.cancelled, 0, "a timer handed to the acquire is no cancel");
    // The wait, if there was one, ended once: timed out, or granted (the
    // grant may win the race with the timer, then it is delivered).
    assert_eq!(waited, s.acquired_after_wait + s.timed_out, "{s:?}");
    assert_eq!(s.waits_in_progress(), 0, "{s:?}");
    assert_eq!(sem.in_flight(), [0, 0]);
    assert_quiescent(&sem, cap);
}

/// A take sets a new peak, and so lowers the low-water word that tells later
/// takes when to look at the peaks again, while another thread grows the
/// capacity, which raises that word. The take's lowering was computed from
/// the old capacity: it must not land over the growth's (the word carries a
/// generation that the growth bumps), or the word would stay too low and a
/// later take that sets a higher peak would never be seen. Nor may the take
/// count its permits against the grown capacity before the growth's permits
/// are there. Whatever the order, the peak is `[1, 1]` once both are done,
/// and holding `[2, 2]` then must show as the peak.
fn peak_set_racing_growth_is_not_lost(layout: Layout) {
    let sem = Arc::new(layout.builder([1, 1]).track_peaks(true).build());
    let taker = {
        let sem = Arc::clone(&sem);
        thread::spawn(move || sem.try_acquire_owned([1, 1]).unwrap())
    };
    let grower = {
        let sem = Arc::clone(&sem);
        thread::spawn(move || sem.set_capacity([2, 2]).unwrap())
    };
    let first = taker.join().unwrap();
    grower.join().unwrap();
    assert_eq!(
        sem.stats().peak_in_flight,
        [1, 1],
        "one permit of [1, 1] was granted so far"
    );
    let second = sem.try_acquire([1, 1]).unwrap();
    assert_eq!(
        sem.stats().peak_in_flight,
        [2, 2],
        "the second take set a peak"
    );
    drop((first, second));
    assert_quiescent(&sem, [2, 2]);
}

/// A fast take loads the counter word (and the low water), and before its
/// CAS a growth runs whose permits the lock holder grants straight to a
/// queued request: the word's fields are back as the take loaded them.
/// Were the word the same bit for bit, the CAS would pass and count the
/// take against the low water before the growth, and miss the peak its
/// permits let it set (held: 2, then the waiter's 3 and the take's 1). The
/// growth steps the word's tally, so the CAS fails and the take looks
/// again. Whatever the order, the peak is at least what was held at once.
fn a_take_loaded_before_a_growth_granted_to_a_waiter_sets_its_peak(layout: Layout) {
    let builder = layout.builder([4, 1]).track_peaks(true);
    let builder = match layout {
        Layout::Packed => builder.max_capacity([15, 1]),
        _ => builder,
    };
    let sem = Arc::new(builder.build());
    // Peak 3, then 2 held: the low water leaves 1 of dimension 0 free.
    let mut base = sem.try_acquire_owned([3, 0]).unwrap();
    base.release([1, 0]).unwrap();
    let taker = {
        let sem = Arc::clone(&sem);
        thread::spawn(move || sem.try_acquire_owned([1, 0]).ok())
    };
    let (_flag, waker) = WakeFlag::waker();
    let mut waiter = Box::pin(sem.acquire_owned([3, 0]));
    assert!(
        poll_once(waiter.as_mut(), &waker).is_pending(),
        "2 of 4 free at most"
    );
    sem.add_permits([3, 0]).unwrap();
    let Poll::Ready(Ok(waited)) = poll_once(waiter.as_mut(), &waker) else {
        panic!("the growth grants the waiter: 7 fit 2, 3 and 1");
    };
    // Refused only while the waiter was queued (first come, first served).
    let took = taker.join().unwrap();
    // Nothing came back since the base's release: all held now is the peak.
    let held =
        base.amounts()[0] + waited.amounts()[0] + took.as_ref().map_or(0, |t| t.amounts()[0]);
    assert_eq!(
        sem.stats().peak_in_flight[0],
        held,
        "the peak is what is held"
    );
    drop((took, waited, base, waiter));
}

/// A resize steps the fast path's tally (see the model above), and
/// `stats()` leaves its steps out of `acquired`: read while a resize runs,
/// after one fast take, it counts that take, and no more.
fn a_resize_read_with_the_stats_counts_as_no_acquire(layout: Layout) {
    let sem = layout.arc([2, 2]);
    drop(sem.try_acquire([1, 1]).unwrap());
    let resizer = {
        let sem = Arc::clone(&sem);
        thread::spawn(move || sem.set_capacity([3, 3]).unwrap())
    };
    assert_eq!(sem.stats().acquired, 1, "while a resize runs");
    resizer.join().unwrap();
    assert_eq!(sem.stats().acquired, 1);
    assert_quiescent(&sem, [3, 3]);
}

/// `in_flight()` while the capacity grows: its lock-free read checks the
/// count of resizes (`Limits::resizes`) around its reads of the capacity and
/// the counters,
/// and reads under the lock if a resize came between, so it never mixes the
/// capacity before the growth with the counters after it (or the reverse).
/// It counts the one permit held, whatever the order.
fn in_flight_racing_growth_counts_what_is_held(layout: Layout) {
    let sem = layout.arc([2, 2]);
    let grower = {
        let sem = Arc::clone(&sem);
        thread::spawn(move || sem.set_capacity([4, 4]).unwrap())
    };
    let held = sem.try_acquire([1, 1]).unwrap();
    assert_eq!(sem.in_flight(), [1, 1], "while the capacity grows");
    grower.join().unwrap();
    assert_eq!(sem.in_flight(), [1, 1], "once it grew");
    drop(held);
    assert_quiescent(&sem, [4, 4]);
}

/// The tiered layout reads its two tiers one after the other under the lock
/// (`in_flight()`, `available()`, the figures in errors), holding `SLOW` for
/// the while, so that no take completes between the two reads. Here the
/// moves that could make a permit count in both tiers race the read: a take
/// of [2, 0] split between the tiers, and a return that overflows into the
/// reserve followed by a take from the front. The reader holds [1, 0]
/// throughout: it must count at least that much in flight, and never more
/// available than the capacity less it. (A read that did not hold `SLOW`
/// passes too: what it can count twice is a part a split take holds for an
/// instant, free in terms of permits granted; see
/// `scripts/mutants-equivalent.md`.)
fn locked_read_racing_moves_between_tiers_counts_nothing_twice(layout: Layout) {
    let cap = [4, 1];
    let sem = layout.arc(cap);
    // In the split layout: the front holds [1, 1] and the reserve [3, 0].
    let own = sem.try_acquire([1, 0]).unwrap();
    let other = sem.try_acquire_owned([1, 0]).unwrap();
    // A third permit taken and returned refills the front, so that the read
    // starts with [1, 0] in each tier and the permits of `own` and `other`
    // held.
    drop(sem.try_acquire([1, 0]).unwrap());

    let splitter = {
        let sem = Arc::clone(&sem);
        thread::spawn(move || drop(sem.try_acquire([2, 0])))
    };
    let mover = {
        let sem = Arc::clone(&sem);
        thread::spawn(move || {
            drop(other);
            drop(sem.try_acquire([1, 0]));
        })
    };
    let in_flight = sem.in_flight();
    assert!(
        in_flight[0] >= 1,
        "in flight {in_flight:?} with [1, 0] held"
    );
    let available = sem.available();
    assert!(
        available[0] < cap[0],
        "available {available:?} with [1, 0] held"
    );
    splitter.join().unwrap();
    mover.join().unwrap();
    drop(own);
    assert_quiescent(&sem, cap);
}

/// In the packed layout `in_flight()` and `available()` read without the
/// lock while acquirers are queued, as long as no debt is owed and no
/// resize runs (`load_free_of_debt`). Here a waiter is queued for the
/// bytes, the main thread holds [1, 1] and thread R holds [1, 0]; thread S
/// shrinks the count's capacity from 3 to 1, which leaves a debt of 1 that
/// R's return pays. The main thread reads meanwhile: it must count what is
/// held (R's permit too, if R had not returned it when the read ended),
/// and once the shrink is done, nothing available in the count. A read that
/// saw the debt paid but not the counters it was paid from would count R's
/// return as available (so debt reads Acquire, payments Release).
fn reads_while_queued_racing_a_shrinks_payment_count_what_is_held(layout: Layout) {
    let sem = layout.arc([3, 2]);
    let own = sem.try_acquire([1, 1]).unwrap();
    let other = sem.try_acquire_owned([1, 0]).unwrap();
    let mut waiter = Box::pin(sem.acquire([0, 2]));
    assert!(poll_once(waiter.as_mut(), std::task::Waker::noop()).is_pending());
    assert_eq!(sem.waiters(), 1);

    // Set before R returns its permit: unset after the reads, it was held
    // throughout them.
    let returning = Arc::new(AtomicBool::new(false));
    // Set once the shrink is done: set before the reads, it was done.
    let shrunk = Arc::new(AtomicBool::new(false));
    let returner = {
        let returning = Arc::clone(&returning);
        thread::spawn(move || {
            returning.store(true, SeqCst);
            drop(other);
        })
    };
    let shrinker = {
        let (sem, shrunk) = (Arc::clone(&sem), Arc::clone(&shrunk));
        thread::spawn(move || {
            sem.set_capacity([1, 2]).unwrap();
            shrunk.store(true, SeqCst);
        })
    };
    let shrunk_before = shrunk.load(SeqCst);
    let in_flight = sem.in_flight();
    let available = sem.available();
    let other_held = !returning.load(SeqCst);
    assert_eq!(in_flight[1], 1, "in flight {in_flight:?}");
    // Our [1, 1], and R's [1, 0] where it was held throughout.
    let least = 1 + u64::from(other_held);
    assert!(
        (least..=2).contains(&in_flight[0]),
        "in flight {in_flight:?}, R's permit held: {other_held}"
    );
    assert_eq!(available[1], 1, "available {available:?}");
    if shrunk_before {
        assert_eq!(available[0], 0, "available {available:?} after the shrink");
    }
    returner.join().unwrap();
    shrinker.join().unwrap();
    assert_eq!(sem.in_flight(), [1, 1]);
    assert_eq!(sem.available(), [0, 1]);
    drop(waiter);
    drop(own);
    assert_quiescent(&sem, [1, 2]);
}

/// The lock-free `in_flight()` with acquirers queued reads the capacity,
/// then the counter word, which `SLOW` no longer tells it anything about.
/// A `forget` lowers only the capacity; if it did not also write the word
/// inside its bracket, the read could pair the capacity from before it with
/// the word as a grant that followed it left it, and count the forgotten
/// permit again (`[3, 0]` here, where at most 2 were ever held at once;
/// found by a reviewer). Capacity [3, 1]: A and R hold [1, 0] each, a
/// waiter is queued for [2, 0]; A forgets its permit while R returns its
/// own, which grants the waiter.
fn in_flight_while_queued_racing_a_forget_and_a_grant_counts_nothing_twice(layout: Layout) {
    let sem = layout.arc([3, 1]);
    let a = sem.try_acquire_owned([1, 0]).unwrap();
    let r = sem.try_acquire_owned([1, 0]).unwrap();
    let mut waiter = Box::pin(sem.acquire([2, 0]));
    assert!(poll_once(waiter.as_mut(), std::task::Waker::noop()).is_pending());

    // Set once the forget is done; whether R's return began after that.
    let forgot = Arc::new(AtomicBool::new(false));
    let returned_after_the_forget = Arc::new(AtomicBool::new(false));
    let forgetter = {
        let forgot = Arc::clone(&forgot);
        thread::spawn(move || {
            a.forget();
            forgot.store(true, SeqCst);
        })
    };
    let returner = {
        let (forgot, after) = (Arc::clone(&forgot), Arc::clone(&returned_after_the_forget));
        thread::spawn(move || {
            after.store(forgot.load(SeqCst), SeqCst);
            drop(r);
        })
    };
    let in_flight = sem.in_flight();
    let available = sem.available();
    forgetter.join().unwrap();
    returner.join().unwrap();
    if returned_after_the_forget.load(SeqCst) {
        // A and R, then R alone, then the waiter's 2: never 3 at once.
        assert!(
            in_flight[0] <= 2,
            "in flight {in_flight:?}, more than was ever held at once"
        );
    }
    assert!(available[0] <= 2, "available {available:?}");
    assert_eq!(sem.capacity(), [2, 1]);
    drop(waiter);
    assert_quiescent(&sem, [2, 1]);
}
