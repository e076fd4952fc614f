//! What async waiting allocates and keeps (issue 12 item 9), multisem beside
//! two `tokio::sync::Semaphore`s taken in sequence, in the same run. A
//! counting global allocator sees every allocation of the process.
//!
//! Run: `cargo bench --bench memory` (a few seconds). `MULTISEM_BENCH_SECS`
//! sets the length of the steady-state run (default 2 s);
//! `cargo test --benches` runs everything briefly.
//!
//! - steady: a tokio multi-thread runtime with 2 workers, 256 tasks looping
//!   an owned async acquire of `[1, size]` (sizes 100 B..=64 KiB from a seeded
//!   xorshift) on capacity `[64, 1 MiB]`, each holding its permit across one
//!   `yield_now` before dropping it. After a warm-up, reports the cost per
//!   acquire and the allocations per acquire (the runtime's own included; it
//!   is the same for both).
//! - queue: with every permit held, `Q` boxed futures of `[1, 1]` are polled
//!   once (queued). Reports the bytes per queued waiter (the box holding the
//!   future plus everything the queue allocated, divided by `Q`), the
//!   allocations the queue made (boxes not counted), then, after one release
//!   grants them all and every permit and future is dropped, the bytes the
//!   semaphore still holds; and the same after the futures are dropped while
//!   still queued (cancelled).

use std::alloc::{GlobalAlloc, Layout, System};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use multisem::MultiSemaphore;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

mod common;
use common::{RunMode, XorShift, run_mode, scenario_secs};

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to `System` unchanged; the counters only
// observe sizes.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract is `System`'s.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        LIVE.fetch_add(new_size, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocs() -> u64 {
    ALLOCS.load(Ordering::Relaxed)
}

fn live() -> usize {
    LIVE.load(Ordering::Relaxed)
}

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;

/// An async `[count, bytes]` semaphore with owned permits.
trait AsyncSem: Send + Sync + 'static {
    type Permit: Send + 'static;
    /// What the acquire future gives: the permit, or an error never expected here.
    type Output;
    fn new(capacity: [u64; 2]) -> Arc<Self>;
    fn acquire(self: &Arc<Self>, amounts: [u64; 2]) -> impl Future<Output = Self::Output> + Send;
    fn permit(output: Self::Output) -> Self::Permit;
}

impl AsyncSem for MultiSemaphore<2> {
    type Permit = multisem::OwnedPermit<2>;
    type Output = Result<Self::Permit, multisem::AcquireError>;
    fn new(capacity: [u64; 2]) -> Arc<Self> {
        Arc::new(MultiSemaphore::new(capacity))
    }
    fn acquire(self: &Arc<Self>, amounts: [u64; 2]) -> impl Future<Output = Self::Output> + Send {
        self.acquire_owned(amounts)
    }
    fn permit(output: Self::Output) -> Self::Permit {
        output.unwrap()
    }
}

/// Two tokio semaphores, count then bytes.
struct TokioPair {
    count: Arc<Semaphore>,
    bytes: Arc<Semaphore>,
}

impl AsyncSem for TokioPair {
    type Permit = (OwnedSemaphorePermit, OwnedSemaphorePermit);
    type Output = Self::Permit;
    fn new([count, bytes]: [u64; 2]) -> Arc<Self> {
        Arc::new(Self {
            count: Arc::new(Semaphore::new(count as usize)),
            bytes: Arc::new(Semaphore::new(bytes as usize)),
        })
    }
    fn permit(output: Self::Output) -> Self::Permit {
        output
    }
    fn acquire(self: &Arc<Self>, [c, b]: [u64; 2]) -> impl Future<Output = Self::Output> + Send {
        let (count, bytes) = (Arc::clone(&self.count), Arc::clone(&self.bytes));
        async move {
            let c = count.acquire_many_owned(c as u32).await.unwrap();
            let b = bytes.acquire_many_owned(b as u32).await.unwrap();
            (c, b)
        }
    }
}

struct Steady {
    acquires: u64,
    allocs: u64,
    ns_per_acquire: f64,
    allocs_per_acquire: f64,
}

fn steady<S: AsyncSem>(run_for: Duration) -> Steady {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let sem = S::new([64, MIB]);
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..256)
        .map(|i| {
            let (sem, stop, done) = (Arc::clone(&sem), Arc::clone(&stop), Arc::clone(&done));
            rt.spawn(async move {
                let mut rng = XorShift::new(i);
                while !stop.load(Ordering::Relaxed) {
                    let size = rng.range(100, 64 * KIB);
                    let permit = S::permit(sem.acquire([1, size]).await);
                    tokio::task::yield_now().await;
                    drop(permit);
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    // Warm-up: the queue reaches its usual length, the runtime its buffers.
    std::thread::sleep(run_for / 4);
    let (a0, d0, t0) = (allocs(), done.load(Ordering::Relaxed), Instant::now());
    std::thread::sleep(run_for);
    let (a1, d1, t1) = (allocs(), done.load(Ordering::Relaxed), Instant::now());
    stop.store(true, Ordering::Relaxed);
    rt.block_on(async {
        for t in tasks {
            t.await.unwrap();
        }
    });
    let acquires = d1 - d0;
    Steady {
        acquires,
        allocs: a1 - a0,
        ns_per_acquire: (t1 - t0).as_nanos() as f64 / acquires.max(1) as f64,
        allocs_per_acquire: (a1 - a0) as f64 / acquires.max(1) as f64,
    }
}

struct Queue {
    future_bytes: usize,
    bytes_per_waiter: f64,
    queue_allocs: u64,
    kept_after_grant: isize,
    kept_after_cancel: isize,
}

fn poll_once<F: Future + ?Sized>(fut: Pin<&mut F>) -> Poll<F::Output> {
    fut.poll(&mut Context::from_waker(Waker::noop()))
}

fn queue<S: AsyncSem>(q: usize) -> Queue {
    let sem = S::new([q as u64, q as u64]);
    let mut futures = Vec::with_capacity(q);
    let mut future_bytes = 0;
    let before = live();
    let hold = S::permit(block_on(sem.acquire([q as u64, q as u64])));
    let (a0, l0) = (allocs(), live());
    for _ in 0..q {
        let mut f = Box::pin(sem.acquire([1, 1]));
        future_bytes = std::mem::size_of_val(&*f);
        assert!(poll_once(f.as_mut()).is_pending());
        futures.push(f);
    }
    let (a1, l1) = (allocs(), live());
    drop(hold);
    let permits: Vec<_> = futures
        .iter_mut()
        .map(|f| match poll_once(f.as_mut()) {
            Poll::Ready(p) => S::permit(p),
            Poll::Pending => panic!("not granted"),
        })
        .collect();
    drop(permits);
    futures.clear();
    Queue {
        future_bytes,
        bytes_per_waiter: (l1 - l0) as f64 / q as f64,
        queue_allocs: a1 - a0 - q as u64,
        kept_after_grant: live() as isize - before as isize,
        kept_after_cancel: cancelled::<S>(q),
    }
}

/// Queues `q` futures on a fresh semaphore and drops them while queued;
/// returns what the semaphore still holds then.
fn cancelled<S: AsyncSem>(q: usize) -> isize {
    let sem = S::new([q as u64, q as u64]);
    let mut queued = Vec::with_capacity(q);
    let before = live() as isize;
    let hold = S::permit(block_on(sem.acquire([q as u64, q as u64])));
    for _ in 0..q {
        let mut f = Box::pin(sem.acquire([1, 1]));
        assert!(poll_once(f.as_mut()).is_pending());
        queued.push(f);
    }
    queued.clear();
    drop(hold);
    live() as isize - before
}

/// The locked path alone, on one thread: 200 futures queued behind 4
/// permits; each round returns the oldest permit (granting the head), polls
/// the granted future, and queues it again at the back. Returns ns per round.
fn rounds<S: AsyncSem>(run_for: Duration) -> f64 {
    let sem = S::new([4, 4]);
    let mut held: std::collections::VecDeque<_> = (0..4)
        .map(|_| S::permit(block_on(sem.acquire([1, 1]))))
        .collect();
    let mut futures: Vec<_> = (0..200).map(|_| Box::pin(sem.acquire([1, 1]))).collect();
    for f in &mut futures {
        assert!(poll_once(f.as_mut()).is_pending());
    }
    let mut run = |n: usize| {
        for round in 0..n {
            let f = &mut futures[round % 200];
            drop(held.pop_front());
            match poll_once(f.as_mut()) {
                Poll::Ready(p) => held.push_back(S::permit(p)),
                Poll::Pending => panic!("not granted"),
            }
            f.set(sem.acquire([1, 1]));
            assert!(poll_once(f.as_mut()).is_pending());
        }
    };
    run(10_000);
    let (start, mut n) = (Instant::now(), 0);
    while start.elapsed() < run_for {
        run(10_000);
        n += 10_000;
    }
    start.elapsed().as_nanos() as f64 / n as f64
}

fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    match poll_once(f.as_mut()) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("expected to be ready at once"),
    }
}

fn main() {
    let mode = run_mode();
    if mode == RunMode::List {
        return;
    }
    let run_for = match mode {
        RunMode::Bench => scenario_secs(2.0),
        _ => Duration::from_millis(100),
    };
    println!(
        "steady: 2 workers, 256 tasks, capacity [64, 1 MiB], owned async acquires ({run_for:?} each)"
    );
    println!(
        "{:<22} {:>12} {:>14} {:>8} {:>16}",
        "", "acquires", "ns / acquire", "allocs", "allocs / acquire"
    );
    let ms = steady::<MultiSemaphore<2>>(run_for);
    let tk = steady::<TokioPair>(run_for);
    for (name, s) in [("multisem", &ms), ("two tokio semaphores", &tk)] {
        println!(
            "{name:<22} {:>12} {:>14.0} {:>8} {:>16.6}",
            s.acquires, s.ns_per_acquire, s.allocs, s.allocs_per_acquire
        );
    }
    println!(
        "cost per acquire, multisem / tokio pair: {:.2}x",
        ms.ns_per_acquire / tk.ns_per_acquire
    );
    println!();
    println!("one thread, 200 queued behind 4 permits: release, grant, collect, queue again");
    let ms = rounds::<MultiSemaphore<2>>(run_for / 2);
    let tk = rounds::<TokioPair>(run_for / 2);
    println!("{:<22} {ms:>8.0} ns / round", "multisem");
    println!("{:<22} {tk:>8.0} ns / round", "two tokio semaphores");
    println!("multisem / tokio pair: {:.2}x", ms / tk);
    println!();
    println!("queue: every permit held, Q futures of [1, 1] queued, then drained");
    println!(
        "{:<22} {:>7} {:>7} {:>16} {:>13} {:>16} {:>17}",
        "",
        "Q",
        "future",
        "bytes / waiter",
        "queue allocs",
        "kept after grant",
        "kept after cancel"
    );
    for q in [1, 5, 100, 10_000] {
        let ms = queue::<MultiSemaphore<2>>(q);
        let tk = queue::<TokioPair>(q);
        for (name, r) in [("multisem", &ms), ("two tokio semaphores", &tk)] {
            println!(
                "{name:<22} {q:>7} {:>7} {:>16.1} {:>13} {:>16} {:>17}",
                r.future_bytes,
                r.bytes_per_waiter,
                r.queue_allocs,
                r.kept_after_grant,
                r.kept_after_cancel
            );
        }
    }
}
