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
//!   reads), which is the controller's own share.
//!
//! And `adaptive_contention/...`: `N` threads, started together, each
//! acquiring and completing in a loop on one shared controller, so that
//! completions meet on its semaphore and its windows (each thread sums in
//! its stripe; whichever closes a window takes them all under the
//! controller's lock); the time is wall time per
//! operation of one thread (compare within a thread count):
//! - `plain/N`: `try_acquire_owned` + drop, no controller;
//! - `tracked_complete_at/N`: the controller's `try_acquire_at` +
//!   `complete_at` (no clock reads: the controller's own work alone).

use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use multisem::MultiSemaphore;
use multisem::adaptive::{Aimd, BandwidthDelay, Controller, Gradient2, Min, Outcome};

const CAPACITY: [u64; 2] = [1024, 100 << 20];
const AMOUNTS: [u64; 2] = [1, 1000];

fn controlled() -> Arc<Controller<2>> {
    let sem = Arc::new(
        MultiSemaphore::builder(CAPACITY)
            .max_capacity([4096, 1 << 30])
            .build(),
    );
    Controller::builder(sem)
        .limit(0, 16..=4096, Min(Aimd::default(), Gradient2::default()))
        .limit(1, (1 << 20)..=(1 << 30), BandwidthDelay::default())
        .build()
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
    let at = controlled();
    let start = Instant::now();
    let mut t = 0u64;
    group.bench_function("tracked_complete_at", |b| {
        b.iter(|| {
            t += 1000;
            let now = start + Duration::from_nanos(t);
            if let Ok(permit) = at.try_acquire_at(black_box(AMOUNTS), now) {
                permit.complete_at(Outcome::delivered(1000), now + Duration::from_micros(50));
            }
        })
    });
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
        let plain = Arc::new(MultiSemaphore::new(CAPACITY));
        group.bench_function(format!("plain/{threads}"), |b| {
            b.iter_custom(|iters| {
                together(threads, iters, |_| {
                    drop(black_box(plain.try_acquire_owned(black_box(AMOUNTS))))
                })
            })
        });
        let ctl = controlled();
        let start = Instant::now();
        group.bench_function(format!("tracked_complete_at/{threads}"), |b| {
            b.iter_custom(|iters| {
                together(threads, iters, |i| {
                    // Each thread's clock advances 1 µs an operation, so
                    // windows close (and the semaphore resizes) as they
                    // would at a million completions per second per thread.
                    let now = start + Duration::from_micros(i);
                    if let Ok(permit) = ctl.try_acquire_at(black_box(AMOUNTS), now) {
                        permit
                            .complete_at(Outcome::delivered(1000), now + Duration::from_micros(50));
                    }
                })
            })
        });
        assert_eq!(ctl.semaphore().available(), ctl.semaphore().capacity());
    }
    group.finish();
}

criterion_group!(benches, bench, contention);
criterion_main!(benches);
