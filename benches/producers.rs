//! Producers: admitting a stream of messages by count and bytes, and growing a
//! permit once a size is known, each against what a user would write instead,
//! in one run.
//!
//! Run: `cargo bench --features futures --bench producers` (about 30 s:
//! warm-up 1 s and measurement 3 s per benchmark; shorten with e.g.
//! `-- --warm-up-time 0.5 --measurement-time 1`). `cargo test
//! --features futures --benches` runs each once.
//!
//! Benchmark IDs (`group/function`):
//! - `stream/{multisem_admit, buffer_unordered, tokio_two_semaphores}`: 2000
//!   messages of 1 B to 64 KiB (seeded) sent through a budget of 64
//!   messages and 1 MiB, on a current-thread tokio runtime; each send is a
//!   spawned task that yields once and then drops its permit. `multisem_admit`
//!   is `stream::Admit`; `buffer_unordered` is `buffer_unordered(64)` (count
//!   only); `tokio_two_semaphores` is a count semaphore and a bytes semaphore
//!   taken one after the other, by hand. Time per 2000 messages.
//! - `grow/{try_grow, try_acquire_merge}`: a held permit grown by `[0, 64]`
//!   and the 64 given back with `release`, against a `try_acquire` of
//!   `[0, 64]` merged into it and given back the same way.
//!
//! Before criterion runs, each stream contender sends the workload once and
//! prints the peak of messages and bytes in flight (bytes counted by the
//! sends themselves): the budget's bytes bound holds for two of them only.
//! Then the stream contenders run interleaved, each in turn for 101 rounds,
//! and the medians of each round's ratios to `stream::Admit` are printed:
//! the README's ratios (criterion's benchmarks run one after another, and
//! their ratios move with what the machine does meanwhile).

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::Criterion;
use futures_util::stream::{self, StreamExt};
use multisem::MultiSemaphore;
use multisem::stream::Admit;

mod common;
use common::{XorShift, median};

const MESSAGES: usize = 2000;
const MAX_SIZE: u64 = 64 << 10;
const BUDGET: [u64; 2] = [64, 1 << 20];

fn workload() -> Vec<u64> {
    let mut rng = XorShift::new(15);
    (0..MESSAGES).map(|_| rng.range(1, MAX_SIZE)).collect()
}

/// What the sends hold at once, counted by the sends themselves.
#[derive(Default)]
struct InFlight {
    messages: AtomicU64,
    bytes: AtomicU64,
    peak_messages: AtomicU64,
    peak_bytes: AtomicU64,
}

impl InFlight {
    fn start(&self, bytes: u64) {
        // Relaxed: statistics; the runtime's own synchronisation orders them.
        let m = self.messages.fetch_add(1, Ordering::Relaxed) + 1;
        let b = self.bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
        self.peak_messages.fetch_max(m, Ordering::Relaxed);
        self.peak_bytes.fetch_max(b, Ordering::Relaxed);
    }

    fn end(&self, bytes: u64) {
        self.messages.fetch_sub(1, Ordering::Relaxed);
        self.bytes.fetch_sub(bytes, Ordering::Relaxed);
    }
}

/// The send: holds its message (and whatever guards it) across one yield.
async fn send(size: u64, flight: Option<Arc<InFlight>>) {
    if let Some(f) = &flight {
        f.start(size);
    }
    tokio::task::yield_now().await;
    if let Some(f) = &flight {
        f.end(size);
    }
}

async fn multisem_admit(sizes: Vec<u64>, flight: Option<Arc<InFlight>>) {
    let sem = Arc::new(MultiSemaphore::new(BUDGET));
    let mut admitted = Admit::new(stream::iter(sizes), sem, |&size: &u64| [1, size]);
    let mut sends = Vec::with_capacity(MESSAGES);
    while let Some(next) = admitted.next().await {
        let (size, permit) = next.expect("every message fits the budget");
        let flight = flight.clone();
        sends.push(tokio::spawn(async move {
            send(size, flight).await;
            drop(permit);
        }));
    }
    for s in sends {
        s.await.unwrap();
    }
}

async fn buffer_unordered(sizes: Vec<u64>, flight: Option<Arc<InFlight>>) {
    stream::iter(sizes)
        .map(|size| {
            let flight = flight.clone();
            async move { tokio::spawn(send(size, flight)).await.unwrap() }
        })
        .buffer_unordered(BUDGET[0] as usize)
        .for_each(|()| async {})
        .await;
}

async fn tokio_two_semaphores(sizes: Vec<u64>, flight: Option<Arc<InFlight>>) {
    let count = Arc::new(tokio::sync::Semaphore::new(BUDGET[0] as usize));
    let bytes = Arc::new(tokio::sync::Semaphore::new(BUDGET[1] as usize));
    let mut sends = Vec::with_capacity(MESSAGES);
    for size in sizes {
        // Count first, then bytes: holding one while waiting for the other.
        let c = Arc::clone(&count).acquire_owned().await.unwrap();
        let b = Arc::clone(&bytes)
            .acquire_many_owned(u32::try_from(size).expect("fits u32"))
            .await
            .unwrap();
        let flight = flight.clone();
        sends.push(tokio::spawn(async move {
            send(size, flight).await;
            drop((c, b));
        }));
    }
    for s in sends {
        s.await.unwrap();
    }
}

type Contender =
    fn(Vec<u64>, Option<Arc<InFlight>>) -> futures_util::future::BoxFuture<'static, ()>;

fn contenders() -> [(&'static str, Contender); 3] {
    [
        ("multisem_admit", |s, f| Box::pin(multisem_admit(s, f))),
        ("buffer_unordered", |s, f| Box::pin(buffer_unordered(s, f))),
        ("tokio_two_semaphores", |s, f| {
            Box::pin(tokio_two_semaphores(s, f))
        }),
    ]
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

fn print_peaks() {
    let rt = runtime();
    eprintln!(
        "stream: peak in flight over {MESSAGES} messages of 1 B..{} KiB, budget {} messages / {} KiB",
        MAX_SIZE >> 10,
        BUDGET[0],
        BUDGET[1] >> 10
    );
    for (name, run) in contenders() {
        let flight = Arc::new(InFlight::default());
        rt.block_on(run(workload(), Some(Arc::clone(&flight))));
        let bytes = flight.peak_bytes.load(Ordering::Relaxed);
        eprintln!(
            "  {name:<22} {:>3} messages  {:>6} KiB  {}",
            flight.peak_messages.load(Ordering::Relaxed),
            bytes >> 10,
            if bytes <= BUDGET[1] {
                "within the bytes budget"
            } else {
                "OVER the bytes budget"
            }
        );
    }
}

/// The stream contenders interleaved, each in turn in every round: the
/// medians of each round's time and of its ratio to `stream::Admit` (the
/// first), with the ratios' quartiles.
fn print_interleaved(rounds: usize) {
    let rt = runtime();
    let contenders = contenders();
    let mut times = vec![Vec::with_capacity(rounds); contenders.len()];
    for _ in 0..rounds {
        for ((_, run), times) in contenders.iter().zip(&mut times) {
            let sizes = workload();
            let start = Instant::now();
            rt.block_on(run(sizes, None));
            times.push(start.elapsed().as_secs_f64());
        }
    }
    eprintln!("stream, interleaved: {rounds} rounds, medians (ratio: each round's, to the first)");
    for ((name, _), own) in contenders.iter().zip(&times) {
        let mut ratios: Vec<f64> = own
            .iter()
            .zip(&times[0])
            .map(|(t, base)| t / base)
            .collect();
        let ratio = median(&mut ratios);
        let (low, high) = (ratios[rounds / 4], ratios[rounds * 3 / 4]);
        eprintln!(
            "  {name:<22} {:>8.3} ms  {ratio:.2}x (quartiles {low:.2}x-{high:.2}x)",
            median(&mut own.clone()) * 1e3
        );
    }
}

fn stream_bench(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("stream");
    for (name, run) in contenders() {
        group.bench_function(name, |b| {
            b.iter_batched(
                workload,
                |sizes| rt.block_on(run(sizes, None)),
                criterion::BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

fn grow_bench(c: &mut Criterion) {
    let sem = MultiSemaphore::new(BUDGET);
    let mut group = c.benchmark_group("grow");
    group.bench_function("try_grow", |b| {
        let mut permit = sem.try_acquire([1, 1000]).unwrap();
        b.iter(|| {
            permit.try_grow(black_box([0, 64])).unwrap();
            permit.release(black_box([0, 64])).unwrap();
        })
    });
    group.bench_function("try_acquire_merge", |b| {
        let mut permit = sem.try_acquire([1, 1000]).unwrap();
        b.iter(|| {
            let more = sem.try_acquire(black_box([0, 64])).unwrap();
            permit.merge(more);
            permit.release(black_box([0, 64])).unwrap();
        })
    });
    group.finish();
}

fn main() {
    if common::run_mode() == common::RunMode::Bench {
        print_peaks();
        print_interleaved(101);
    }
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .without_plots()
        .configure_from_args();
    stream_bench(&mut c);
    grow_bench(&mut c);
    c.final_summary();
}
