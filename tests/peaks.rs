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
