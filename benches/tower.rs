//! The tower layer against what users use today, tower's `ConcurrencyLimitLayer`
//! (count only), on the same inner service, in the same run.
//!
//! Run: `cargo bench --features tower --bench tower` (about 20 s). Plain timed
//! runs printed as tables; `cargo test --features tower --benches` runs each
//! briefly. `MULTISEM_BENCH_SECS` scales the overload runs (default 2 s each).
//!
//! - overhead: one request through `poll_ready` + `call` + polling the
//!   response future to completion, with a no-op waker, on an inner service
//!   that answers at once; nothing contends. Timed in interleaved rounds,
//!   the bare inner service first; ratios are medians of each round's ratio
//!   to it.
//!   The adaptive row is `AdmitLayer::adaptive` with the preset controller
//!   (its bounds pinned, so the limits stay put and the row measures the
//!   reporting: a clock read at the grant, and a sample per completion,
//!   a window closing every 25 ms).
//! - overload: 256 concurrent clients, each sending requests of its
//!   distribution's sizes as fast as they are admitted, through either
//!   limit, to a handler that holds each request 1 ms plus 1 ms per 64 KiB.
//!   The handler measures the request bytes it holds at once. A count-only
//!   limit of 64 bounds them by 64 x the largest request, so they grow with
//!   request size; `[64 requests, 8 MiB]` bounds them by 8 MiB whatever the
//!   sizes. A count limit that bounds the bytes as tightly must allow for
//!   the largest request: `ConcurrencyLimit(2)` (2 x 4 MiB), whatever the
//!   sizes, so small requests pay for it in throughput.

use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::hint::black_box;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use multisem::MultiSemaphore;
use multisem::adaptive::{Controller, Outcome};
use multisem::tower::AdmitLayer;
use tower::limit::ConcurrencyLimitLayer;
use tower::{Layer, Service, ServiceExt, service_fn};

mod common;
use common::{RunMode, XorShift, median};

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;

/// The inner service of the overhead runs: answers at once.
fn inner()
-> impl Service<u64, Response = u64, Error = Infallible, Future = Ready<Result<u64, Infallible>>> + Clone
{
    service_fn(|len: u64| ready(Ok::<_, Infallible>(len)))
}

/// Times `ops` requests through `svc`, each driven to completion by hand.
fn time_requests<S>(svc: &mut S, ops: u64) -> f64
where
    S: Service<u64>,
    S::Error: std::fmt::Debug,
{
    let mut cx = Context::from_waker(Waker::noop());
    let started = Instant::now();
    for i in 0..ops {
        match svc.poll_ready(&mut cx) {
            Poll::Ready(Ok(())) => {}
            _ => panic!("the service must be ready at once"),
        }
        let response = pin!(svc.call(black_box(1000 + (i & 0xff))));
        match response.poll(&mut cx) {
            Poll::Ready(Ok(response)) => {
                black_box(response);
            }
            _ => panic!("the response must be ready at once"),
        }
    }
    started.elapsed().as_nanos() as f64 / ops as f64
}

/// Times `ops` owned permits taken and dropped with no layer around them:
/// the part of the layer's cost that is the semaphore's.
fn time_permits(sem: &Arc<MultiSemaphore<2>>, ops: u64) -> f64 {
    let started = Instant::now();
    for i in 0..ops {
        let permit = sem.try_acquire_owned(black_box([1, 1000 + (i & 0xff)]));
        drop(black_box(permit));
    }
    started.elapsed().as_nanos() as f64 / ops as f64
}

fn run_overhead(rounds: usize, ops: u64) {
    type Run = Box<dyn FnMut(u64) -> f64>;
    let mut bare = inner();
    let mut count_limit = ConcurrencyLimitLayer::new(1024).layer(inner());
    let count_sem = Arc::new(MultiSemaphore::new([1024]));
    let mut admit_count = AdmitLayer::new(count_sem, |_: &u64| [1]).layer(inner());
    let both_sem = Arc::new(MultiSemaphore::new([1024, 1 << 30]));
    let mut admit_both = AdmitLayer::new(both_sem, |len: &u64| [1, *len]).layer(inner());
    let shed_sem = Arc::new(MultiSemaphore::new([1024, 1 << 30]));
    let mut admit_shed = AdmitLayer::new(shed_sem, |len: &u64| [1, *len])
        .shed()
        .layer(inner());
    let learn_sem = Arc::new(MultiSemaphore::new([1024, 1 << 30]));
    let controller = Controller::builder(learn_sem)
        .count_and_bytes(0, 1024..=1024, 1, (1 << 30)..=(1 << 30))
        .build();
    let mut admit_learn = AdmitLayer::adaptive(
        controller,
        |len: &u64| [1, *len],
        |_: Result<&u64, &Infallible>, amounts: [u64; 2]| Outcome::delivered(amounts[1]),
    )
    .layer(inner());
    let alone_sem = Arc::new(MultiSemaphore::new([1024, 1 << 30]));
    let mut runs: Vec<(&str, Run)> = vec![
        (
            "bare inner service",
            Box::new(move |ops| time_requests(&mut bare, ops)),
        ),
        (
            "try_acquire_owned + drop alone",
            Box::new(move |ops| time_permits(&alone_sem, ops)),
        ),
        (
            "tower ConcurrencyLimit(1024)",
            Box::new(move |ops| time_requests(&mut count_limit, ops)),
        ),
        (
            "multisem [1024], count only",
            Box::new(move |ops| time_requests(&mut admit_count, ops)),
        ),
        (
            "multisem [1024, 1 GiB], wait",
            Box::new(move |ops| time_requests(&mut admit_both, ops)),
        ),
        (
            "multisem [1024, 1 GiB], shed",
            Box::new(move |ops| time_requests(&mut admit_shed, ops)),
        ),
        (
            "multisem [1024, 1 GiB], adaptive",
            Box::new(move |ops| time_requests(&mut admit_learn, ops)),
        ),
    ];
    // The row every other is compared with, beside the bare service.
    const CONCURRENCY_LIMIT: usize = 2;
    let mut ns = vec![Vec::with_capacity(rounds); runs.len()];
    for _ in 0..rounds {
        for ((_, run), times) in runs.iter_mut().zip(&mut ns) {
            times.push(run(ops));
        }
    }
    println!();
    println!(
        "overhead per request (poll_ready + call + response), uncontended: {rounds} rounds \
         of {ops} requests each, medians"
    );
    println!(
        "{:<30} {:>10} {:>12} {:>22}",
        "", "ns/request", "vs bare", "vs ConcurrencyLimit"
    );
    let ratio_to = |i: usize, base: usize| {
        let mut ratios: Vec<f64> = ns[i].iter().zip(&ns[base]).map(|(a, b)| a / b).collect();
        median(&mut ratios)
    };
    for (i, (name, _)) in runs.iter().enumerate() {
        let mut times = ns[i].clone();
        println!(
            "{name:<30} {:>10.1} {:>11.2}x {:>21.2}x",
            median(&mut times),
            ratio_to(i, 0),
            ratio_to(i, CONCURRENCY_LIMIT)
        );
    }
}

/// What the handler saw: requests served, and request bytes held at once.
#[derive(Default)]
struct Held {
    served: AtomicU64,
    bytes: AtomicU64,
    peak: AtomicU64,
}

/// The overload runs' handler: holds each request 1 ms + 1 ms per 64 KiB.
fn handler(
    held: Arc<Held>,
) -> impl Service<u64, Response = (), Error = Infallible, Future: Send> + Clone + Send {
    service_fn(move |len: u64| {
        let held = Arc::clone(&held);
        async move {
            // Relaxed: statistics, read after the run.
            let now = held.bytes.fetch_add(len, Ordering::Relaxed) + len;
            held.peak.fetch_max(now, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_micros(1000 + len * 1000 / (64 * KIB))).await;
            held.bytes.fetch_sub(len, Ordering::Relaxed);
            held.served.fetch_add(1, Ordering::Relaxed);
            Ok::<_, Infallible>(())
        }
    })
}

/// Drives `clients` tasks through `svc` for `run_for`; returns what the
/// handler saw.
async fn overload<S>(svc: S, held: Arc<Held>, sizes: (u64, u64), run_for: Duration) -> (u64, u64)
where
    S: Service<u64, Response = ()> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: std::fmt::Debug + Send,
{
    const CLIENTS: u64 = 256;
    let until = Instant::now() + run_for;
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|id| {
            let mut svc = svc.clone();
            tokio::spawn(async move {
                let mut rng = XorShift::new(id);
                while Instant::now() < until {
                    let len = rng.range(sizes.0, sizes.1);
                    svc.ready().await.unwrap().call(len).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    (
        held.served.load(Ordering::Relaxed),
        held.peak.load(Ordering::Relaxed),
    )
}

fn run_overload(run_for: Duration) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    println!();
    println!(
        "overload: 256 clients for {:.1} s per row; the handler holds each request 1 ms + 1 ms per 64 KiB",
        run_for.as_secs_f64()
    );
    println!(
        "{:<22} {:<34} {:>10} {:>20}",
        "request sizes", "limit", "served/s", "peak bytes held"
    );
    let distributions = [
        ("1 KiB..16 KiB", (KIB, 16 * KIB)),
        ("256 KiB..4 MiB", (256 * KIB, 4 * MIB)),
    ];
    for (label, sizes) in distributions {
        let held = Arc::new(Held::default());
        let svc = ConcurrencyLimitLayer::new(64).layer(handler(Arc::clone(&held)));
        let (served, peak) = runtime.block_on(overload(svc, held, sizes, run_for));
        print_overload(label, "tower ConcurrencyLimit(64)", served, peak, run_for);

        // A count that bounds the bytes as tightly needs room for the
        // largest request: 2 x 4 MiB.
        let held = Arc::new(Held::default());
        let svc = ConcurrencyLimitLayer::new(2).layer(handler(Arc::clone(&held)));
        let (served, peak) = runtime.block_on(overload(svc, held, sizes, run_for));
        print_overload(label, "tower ConcurrencyLimit(2)", served, peak, run_for);

        let held = Arc::new(Held::default());
        let sem = Arc::new(MultiSemaphore::new([64, 8 * MIB]));
        let svc = AdmitLayer::new(Arc::clone(&sem), |len: &u64| [1, *len])
            .layer(handler(Arc::clone(&held)));
        let (served, peak) = runtime.block_on(overload(svc, held, sizes, run_for));
        print_overload(label, "multisem [64, 8 MiB]", served, peak, run_for);
        assert!(peak <= 8 * MIB, "multisem let {peak} bytes in, limit 8 MiB");
        assert_eq!(sem.available(), sem.capacity());
    }
}

fn print_overload(sizes: &str, limit: &str, served: u64, peak: u64, run_for: Duration) {
    println!(
        "{sizes:<22} {limit:<34} {:>10.0} {:>16.1} MiB",
        served as f64 / run_for.as_secs_f64(),
        peak as f64 / MIB as f64
    );
}

fn main() {
    let (rounds, ops, run_for) = match common::run_mode() {
        RunMode::List => return,
        RunMode::Test => (2, 1_000, Duration::from_millis(100)),
        RunMode::Bench => (25, 200_000, common::scenario_secs(2.0)),
    };
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wanted =
        |name: &str| filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str()));
    if wanted("overhead") {
        run_overhead(rounds, ops);
    }
    if wanted("overload") {
        run_overload(run_for);
    }
}
