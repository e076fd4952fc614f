//! What the adaptive controller costs: a tracked acquire and its completion,
//! against the plain owned acquire and drop, on one thread, in one run.
//!
//! Run: `cargo bench --bench adaptive -- --warm-up-time 1 --measurement-time 3`.
//!
//! Benchmark IDs (`adaptive/...`), all `[1, 1000]` from `[1024, 100 MiB]`:
//! - `plain`: `try_acquire_owned` + drop on a semaphore no controller knows;
//! - `plain_under_controller`: the same on a semaphore a controller drives:
//!   the core does not know the controller, so this is the same code;
//! - `tracked_ignore`: `Controller::try_acquire` (the acquire and a clock
//!   read) + drop without an outcome (no sample);
//! - `tracked_complete`: the same + `complete(Outcome::delivered(1000))`: a
//!   second clock read, the thread's stripe of the window's sums, and the
//!   controller's lock and a resize once a window (100 ms);
//! - `tracked_complete_at`: the same with caller-supplied times (no clock
//!   reads), which is the controller's own share;
//! - `plain_tiered`, `tracked_complete_at_tiered`: `plain` and
//!   `tracked_complete_at` on the tiered layout (`[1024, 2^50]`, peaks
//!   tracked), whose completions read the count of what permits hold;
//! - `tracked_report_at`, `tracked_report_at_while_queued`: a held permit's
//!   `report_at` (a sample, its `in_flight()` read included, with no
//!   return; windows too long to close), with nobody queued and with an
//!   acquirer queued: the single-word layout reads `in_flight()` without
//!   the lock either way.
//!
//! And `adaptive_contention/...`: `N` threads, started together, each
//! acquiring and completing in a loop on one shared controller, so that
//! completions meet on its semaphore and its windows (each thread sums in
//! its stripe; whichever closes a window takes them all under the
//! controller's lock); the time is wall time per
//! operation of one thread (compare within a thread count):
//! - `plain/N`: `try_acquire_owned` + drop, no controller;
//! - `tracked_complete_at/N`: the controller's `try_acquire_at` +
//!   `complete_at` (no clock reads: the controller's own work alone);
//! - `plain_tiered/N`, `tracked_complete_at_tiered/N`: the same on the
//!   tiered layout.

use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use multisem::MultiSemaphore;
use multisem::adaptive::{Aimd, BandwidthDelay, Controller, Gradient2, Min, Outcome};

const CAPACITY: [u64; 2] = [1024, 100 << 20];
/// Too large for one word with the count's field: the tiered layout.
const TIERED: [u64; 2] = [1024, 1 << 50];
const AMOUNTS: [u64; 2] = [1, 1000];

fn controlled() -> Arc<Controller<2>> {
    controlled_within(CAPACITY, [4096, 1 << 30])
}

fn controlled_within(capacity: [u64; 2], max: [u64; 2]) -> Arc<Controller<2>> {
    let sem = Arc::new(MultiSemaphore::builder(capacity).max_capacity(max).build());
    Controller::builder(sem)
        .limit(0, 16..=max[0], Min(Aimd::default(), Gradient2::default()))
        .limit(1, (1 << 20)..=max[1], BandwidthDelay::default())
        .build()
}

fn controlled_tiered() -> Arc<Controller<2>> {
    controlled_within(TIERED, [4096, 1 << 52])
}

/// The controller's `try_acquire_at` + `complete_at` of `AMOUNTS`, the
/// completion 50 µs after the grant at `now`.
fn tracked_at(ctl: &Arc<Controller<2>>, now: Instant) {
    if let Ok(permit) = ctl.try_acquire_at(black_box(AMOUNTS), now) {
        permit.complete_at(Outcome::delivered(1000), now + Duration::from_micros(50));
    }
}

/// `tracked_report_at` and `tracked_report_at_while_queued`: samples of one
/// held permit, first with nobody queued, then behind a queued acquirer of
/// the whole byte capacity (never granted while the permit holds bytes).
fn reports(group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    let sem = Arc::new(MultiSemaphore::new(CAPACITY));
    let ctl = Controller::builder(Arc::clone(&sem))
        .limit(0, 16..=4096, Aimd::default())
        .window(Duration::from_secs(3600), 1)
        .build();
    let start = Instant::now();
    let mut permit = ctl.try_acquire_at(AMOUNTS, start).unwrap();
    let mut t = 0u64;
    let mut report = |b: &mut criterion::Bencher<'_>| {
        b.iter(|| {
            t += 1000;
            permit.report_at(Outcome::delivered(1000), start + Duration::from_nanos(t));
        })
    };
    group.bench_function("tracked_report_at", &mut report);
    let mut queued = Box::pin(sem.acquire([1, CAPACITY[1]]));
    let waker = std::task::Waker::noop();
    let pending = queued
        .as_mut()
        .poll(&mut std::task::Context::from_waker(waker))
        .is_pending();
    assert!(pending && sem.waiters() == 1);
    group.bench_function("tracked_report_at_while_queued", &mut report);
    assert_eq!(sem.waiters(), 1);
    drop(queued);
    permit.complete_at(Outcome::success(), start + Duration::from_nanos(t));
    assert_eq!(sem.available(), sem.capacity());
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("adaptive");
    let plain = Arc::new(MultiSemaphore::new(CAPACITY));
    group.bench_function("plain", |b| {
        b.iter(|| drop(black_box(plain.try_acquire_owned(black_box(AMOUNTS)))))
    });
    let ctl = controlled();
    let sem = Arc::clone(ctl.semaphore());
    group.bench_function("plain_under_controller", |b| {
        b.iter(|| drop(black_box(sem.try_acquire_owned(black_box(AMOUNTS)))))
    });
    group.bench_function("tracked_ignore", |b| {
        b.iter(|| drop(black_box(ctl.try_acquire(black_box(AMOUNTS)))))
    });
    group.bench_function("tracked_complete", |b| {
        b.iter(|| {
            if let Ok(permit) = ctl.try_acquire(black_box(AMOUNTS)) {
                permit.complete(Outcome::delivered(1000));
            }
        })
    });
    for (name, at) in [
        ("tracked_complete_at", controlled()),
        ("tracked_complete_at_tiered", controlled_tiered()),
    ] {
        let start = Instant::now();
        let mut t = 0u64;
        group.bench_function(name, |b| {
            b.iter(|| {
                t += 1000;
                tracked_at(&at, start + Duration::from_nanos(t));
            })
        });
        assert_eq!(at.semaphore().available(), at.semaphore().capacity());
    }
    let tiered = Arc::new(MultiSemaphore::new(TIERED));
    group.bench_function("plain_tiered", |b| {
        b.iter(|| drop(black_box(tiered.try_acquire_owned(black_box(AMOUNTS)))))
    });
    reports(&mut group);
    group.finish();
    assert_eq!(ctl.semaphore().available(), ctl.semaphore().capacity());
}

/// Runs `op` `iters` times on each of `threads` threads released together;
/// the wall time from the release to the last thread's end.
fn together(threads: usize, iters: u64, op: impl Fn(u64) + Sync) -> Duration {
    let barrier = Barrier::new(threads + 1);
    thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                barrier.wait();
                for i in 0..iters {
                    op(i);
                }
            });
        }
        barrier.wait();
        let start = Instant::now();
        // The scope joins every thread before it returns.
        start
    })
    .elapsed()
}

fn contention(c: &mut Criterion) {
    let mut group = c.benchmark_group("adaptive_contention");
    let cores = thread::available_parallelism().map_or(2, |n| n.get());
    let mut counts = vec![1, 2, 4, cores];
    counts.sort_unstable();
    counts.dedup();
    for threads in counts {
        for (suffix, capacity, ctl) in [
            ("", CAPACITY, controlled()),
            ("_tiered", TIERED, controlled_tiered()),
        ] {
            let plain = Arc::new(MultiSemaphore::new(capacity));
            group.bench_function(format!("plain{suffix}/{threads}"), |b| {
                b.iter_custom(|iters| {
                    together(threads, iters, |_| {
                        drop(black_box(plain.try_acquire_owned(black_box(AMOUNTS))))
                    })
                })
            });
            let start = Instant::now();
            // Where each call's clock starts: past the last call's end, so
            // that it never runs back between criterion's samples (it did,
            // from `start`, and no window closed while criterion measured).
            let mut base = 0u64;
            group.bench_function(format!("tracked_complete_at{suffix}/{threads}"), |b| {
                b.iter_custom(|iters| {
                    let from = base;
                    base += iters;
                    // Each thread's clock advances 1 µs an operation, so
                    // windows close (and the semaphore resizes) as they
                    // would at a million completions per second per thread.
                    together(threads, iters, |i| {
                        tracked_at(&ctl, start + Duration::from_micros(from + i))
                    })
                })
            });
            assert_eq!(ctl.semaphore().available(), ctl.semaphore().capacity());
        }
    }
    group.finish();
}

criterion_group!(benches, bench, contention);
criterion_main!(benches);
