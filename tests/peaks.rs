//! `stats().peak_in_flight` counts only what granted permits held at once,
//! in every layout: never a take's momentary hold on the tiered layout's
//! reserve that it then gave back.
//!
//! Three threads loop `try_acquire` of `[9, 10]`, `[1, 1]` and `[0, 1]`
//! (dropping every permit at once) on a capacity of `[10, 10]`: `[9, 10]` shares
//! dimension 1 with both others, so granted permits never hold more than
//! `[9, 10]`, yet every request passes its check often and then races the
//! others for the last permits. Scaled by `2^36`, the capacities no longer
//! fit one word, and the default tiered layout splits them between its front
//! word and its reserve.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::thread;
use std::time::{Duration, Instant};

use multisem::*;

mod common;
use common::{Layout, Watchdog, stress_time};

/// How long the threads race when nothing goes wrong.
const RUN: Duration = Duration::from_secs(4);

fn peaks_count_only_granted_permits(sem: MultiSemaphore<2>, unit: u64) {
    let _wd = Watchdog::this_test(Duration::from_secs(60));
    let sem = Arc::new(sem);
    let requests = [[9, 10], [1, 1], [0, 1]].map(|r: [u64; 2]| r.map(|a| a * unit));
    // What granted permits can hold at once: `[9, 10]` alone, or the two
    // small ones together.
    let most = [9 * unit, 10 * unit];
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = requests
        .iter()
        .map(|&request| {
            let (sem, stop) = (Arc::clone(&sem), Arc::clone(&stop));
            thread::spawn(move || {
                let mut granted = 0u64;
                while !stop.load(Relaxed) {
                    if let Ok(permit) = sem.try_acquire(request) {
                        granted += 1;
                        drop(permit);
                    }
                }
                granted
            })
        })
        .collect();
    let start = Instant::now();
    let mut peak = [0; 2];
    while start.elapsed() < stress_time(RUN) {
        peak = sem.stats().peak_in_flight;
        if peak[0] > most[0] || peak[1] > most[1] {
            break;
        }
        thread::sleep(Duration::from_millis(5));
    }
    stop.store(true, Relaxed);
    let granted: Vec<u64> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(
        peak[0] <= most[0] && peak[1] <= most[1],
        "peak_in_flight {peak:?} after {:?}, but granted permits never held more than \
         {most:?} at once (grants per request {requests:?}: {granted:?})",
        start.elapsed()
    );
    assert_eq!(sem.available(), sem.capacity());
    // And it is a peak: the largest grant counts in full.
    drop(sem.try_acquire(most).unwrap());
    assert_eq!(sem.stats().peak_in_flight, most);
}

#[test]
fn every_permit_in_the_reserve() {
    peaks_count_only_granted_permits(Layout::ReserveOnly.make([10, 10]), 1);
}

#[test]
fn tiered_with_split_front_and_reserve() {
    peaks_count_only_granted_permits(Layout::PerDim.make([10, 10]), 1);
}

#[test]
fn capacities_too_large_for_one_word() {
    let sem = MultiSemaphore::new([10 << 36, 10 << 36]);
    assert!(!sem.is_single_word());
    peaks_count_only_granted_permits(sem, 1 << 36);
}

#[test]
fn single_word() {
    peaks_count_only_granted_permits(Layout::Packed.make([10, 10]), 1);
}

/// `stats().acquired` read while another thread takes on the fast path:
/// never more than the takes done by then (the fast path tallies 64 takes
/// in its word, then adds them to a total: a tally read before a wrap
/// added to the total after it counted up to 63 twice), and never less
/// than an earlier read. In every layout (the tiered one's front word
/// tallies the same way). A third thread resizes meanwhile: each resize
/// steps the same tally (so that a take's CAS never finds the word it
/// loaded before a resize), and none counts as an acquire.
#[test]
fn acquired_never_runs_ahead_of_the_takes_nor_goes_back() {
    use std::sync::atomic::{AtomicU64, Ordering::SeqCst, fence};
    for layout in Layout::ALL {
        let sem = Arc::new(layout.make([4, 1000]));
        let stop = Arc::new(AtomicBool::new(false));
        // How many takes have begun: bumped before each, behind a fence.
        let begun = Arc::new(AtomicU64::new(0));
        let taker = {
            let (sem, stop, begun) = (Arc::clone(&sem), Arc::clone(&stop), Arc::clone(&begun));
            thread::spawn(move || {
                for n in 1..=50_000_000u64 {
                    if stop.load(Relaxed) {
                        break;
                    }
                    begun.store(n, Relaxed);
                    // SeqCst fences, here and in the reader: a reader whose
                    // read of the counters (before its fence) saw this take
                    // (after ours) sees `begun` count it.
                    fence(SeqCst);
                    drop(sem.try_acquire([1, 1]).unwrap());
                }
            })
        };
        let resizer = {
            let (sem, stop) = (Arc::clone(&sem), Arc::clone(&stop));
            thread::spawn(move || {
                for k in 0..50_000_000u64 {
                    if stop.load(Relaxed) {
                        break;
                    }
                    sem.set_capacity([4 + k % 2, 1000]).unwrap();
                }
            })
        };
        let deadline = Instant::now() + stress_time(Duration::from_secs(1));
        let mut last = 0;
        while Instant::now() < deadline && !taker.is_finished() {
            let acquired = sem.stats().acquired;
            fence(SeqCst);
            let begun = begun.load(Relaxed);
            assert!(
                acquired <= begun,
                "{layout:?}: {acquired} acquires, {begun} takes begun"
            );
            assert!(acquired >= last, "{layout:?}: {acquired} after {last}");
            last = acquired;
        }
        stop.store(true, Relaxed);
        taker.join().unwrap();
        resizer.join().unwrap();
        let begun = begun.load(Relaxed);
        assert_eq!(sem.stats().acquired, begun, "{layout:?}: exact once quiet");
    }
}

/// Resizes step the fast path's tally, as takes do, and count as no
/// acquires: none alone, 64 of them (a step wraps the tally), or between
/// takes, in every layout.
#[test]
fn resizes_count_as_no_acquires() {
    for layout in Layout::ALL {
        let sem = layout.make([4, 1000]);
        let resize = |times: u64| {
            for k in 0..times {
                sem.set_capacity([4 + k % 2, 1000]).unwrap();
            }
        };
        resize(1);
        assert_eq!(sem.stats().acquired, 0, "{layout:?}");
        resize(63);
        assert_eq!(sem.stats().acquired, 0, "{layout:?}: the tally wrapped");
        for _ in 0..70 {
            drop(sem.try_acquire([1, 1]).unwrap());
            resize(3);
        }
        assert_eq!(sem.stats().acquired, 70, "{layout:?}");
    }
}

/// The lock-free `in_flight()` reads the capacity and the counter word at
/// two moments and trusts the pair only if no resize ran between them. It
/// told by the low water's 6-bit generation, which 32 resizes bring back:
/// a reader held up while exactly 32 ran combined the word under one
/// capacity with another (1001 in flight, with at most 1 ever held). It
/// counts resizes in full now. One thread takes and drops `[1]`, one runs
/// bursts of exactly 32 resizes through three capacities, this one reads.
#[test]
fn in_flight_is_not_fooled_by_32_resizes_during_a_read() {
    let caps = [1000u64, 2000, 3000];
    let sem = Arc::new(
        MultiSemaphore::builder([caps[0]])
            .max_capacity([4000])
            .build(),
    );
    assert!(sem.is_single_word());
    let stop = Arc::new(AtomicBool::new(false));
    let taker = {
        let (sem, stop) = (Arc::clone(&sem), Arc::clone(&stop));
        thread::spawn(move || {
            while !stop.load(Relaxed) {
                drop(sem.try_acquire([1]));
            }
        })
    };
    let resizer = {
        let (sem, stop) = (Arc::clone(&sem), Arc::clone(&stop));
        thread::spawn(move || {
            let mut k = 0;
            while !stop.load(Relaxed) {
                for _ in 0..32 {
                    k += 1;
                    sem.set_capacity([caps[k % 3]]).unwrap();
                }
                thread::sleep(Duration::from_micros(50));
            }
        })
    };
    // Two readers, so that on two cores one is often held up mid-read.
    let reader = || {
        let (sem, stop) = (Arc::clone(&sem), Arc::clone(&stop));
        thread::spawn(move || {
            let mut worst = 0;
            while !stop.load(Relaxed) && worst <= 1 {
                worst = worst.max(sem.in_flight()[0]);
            }
            worst
        })
    };
    let readers = [reader(), reader()];
    let deadline = Instant::now() + stress_time(Duration::from_secs(1));
    while Instant::now() < deadline && !readers.iter().any(|r| r.is_finished()) {
        thread::sleep(Duration::from_millis(1));
    }
    stop.store(true, Relaxed);
    taker.join().unwrap();
    resizer.join().unwrap();
    let worst = readers
        .map(|r| r.join().unwrap())
        .into_iter()
        .max()
        .unwrap();
    assert!(
        worst <= 1,
        "in_flight() read {worst}, with at most 1 ever held"
    );
}
