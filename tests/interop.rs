//! Runtime interop: `acquire` and `acquire_owned` driven by tokio
//! (multi-thread and current-thread runtimes, cancelled by `tokio::time::timeout`
//! and `tokio::select!`) and by `futures-executor` (`block_on` on several
//! threads, `LocalPool`), with cancellation by dropping futures. The library
//! itself depends on no runtime; these are dev-dependencies only.
//!
//! Every run ends with exact accounting: `available() == capacity()`,
//! `waiters() == 0`, and the statistics match what the callers saw.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::thread;
use std::time::{Duration, Instant};

use multisem::{AcquireError, MultiSemaphore};

mod common;
use common::{Rng, Watchdog, counting_waker, layouts, poll_once, poll_with};

type Sem = MultiSemaphore<2>;

const LIMIT: Duration = Duration::from_secs(60);

/// What the callers saw, to compare with `stats()` and the capacity.
#[derive(Default)]
struct Books {
    in_use: [AtomicU64; 2],
    ok: AtomicU64,
    cancelled: AtomicU64,
}

impl Books {
    fn take(&self, amounts: [u64; 2], cap: [u64; 2]) {
        self.ok.fetch_add(1, SeqCst);
        for d in 0..2 {
            let now = self.in_use[d].fetch_add(amounts[d], SeqCst) + amounts[d];
            assert!(
                now <= cap[d],
                "dimension {d}: {now} in use, capacity {}",
                cap[d]
            );
        }
    }
    fn give(&self, amounts: [u64; 2]) {
        for (in_use, amount) in self.in_use.iter().zip(amounts) {
            in_use.fetch_sub(amount, SeqCst);
        }
    }
    #[track_caller]
    fn check(&self, layout: &str, sem: &Sem, cap: [u64; 2]) {
        assert_eq!(sem.waiters(), 0, "{layout}");
        assert_eq!(sem.available(), cap, "{layout}");
        assert_eq!(sem.capacity(), cap, "{layout}");
        let s = sem.stats();
        assert_eq!(s.acquired, self.ok.load(SeqCst), "{layout}: {s:?}");
        assert_eq!(s.cancelled, self.cancelled.load(SeqCst), "{layout}: {s:?}");
        assert_eq!(s.timed_out, 0, "{layout}: {s:?}");
        assert!(
            s.peak_in_flight[0] <= cap[0] && s.peak_in_flight[1] <= cap[1],
            "{layout}: {s:?}"
        );
        assert!(self.ok.load(SeqCst) > 0, "{layout}: nothing was acquired");
    }
}

// ---------------------------------------------------------------------------
// tokio
// ---------------------------------------------------------------------------

fn multi_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap()
}

#[test]
fn tokio_many_tasks_with_timeouts_cancelling_acquires() {
    let _w = Watchdog::this_test(LIMIT);
    let rt = multi_thread_runtime();
    const CAP: [u64; 2] = [8, 64 * 1024];
    for (layout, sem) in layouts(CAP) {
        let books = Arc::new(Books::default());
        rt.block_on(async {
            let tasks: Vec<_> = (0..64u64)
                .map(|i| {
                    let (sem, books) = (Arc::clone(&sem), Arc::clone(&books));
                    tokio::spawn(async move {
                        let mut rng = Rng::new(i + 1);
                        for _ in 0..40 {
                            let amounts = [1 + rng.below(3), 1 + rng.below(16 * 1024)];
                            let wait = Duration::from_micros(rng.below(3000));
                            let hold = Duration::from_micros(rng.below(500));
                            if i % 2 == 0 {
                                // Owned permit, 'static future.
                                match tokio::time::timeout(wait, sem.acquire_owned(amounts)).await {
                                    Ok(Ok(p)) => {
                                        books.take(p.amounts(), CAP);
                                        tokio::time::sleep(hold).await;
                                        books.give(p.amounts());
                                        drop(p);
                                    }
                                    Ok(Err(e)) => panic!("unexpected {e}"),
                                    Err(_elapsed) => {
                                        books.cancelled.fetch_add(1, SeqCst);
                                    }
                                }
                            } else {
                                // Borrowed permit held across an await in a spawned task.
                                match tokio::time::timeout(wait, sem.acquire(amounts)).await {
                                    Ok(Ok(p)) => {
                                        books.take(p.amounts(), CAP);
                                        tokio::task::yield_now().await;
                                        books.give(p.amounts());
                                        drop(p);
                                    }
                                    Ok(Err(e)) => panic!("unexpected {e}"),
                                    Err(_elapsed) => {
                                        books.cancelled.fetch_add(1, SeqCst);
                                    }
                                }
                            }
                        }
                    })
                })
                .collect();
            for t in tasks {
                tokio::time::timeout(LIMIT, t)
                    .await
                    .expect("task stuck")
                    .expect("task panicked");
            }
        });
        books.check(layout, &sem, CAP);
    }
}

#[test]
fn tokio_tasks_share_the_semaphore_with_blocking_threads() {
    let _w = Watchdog::this_test(LIMIT);
    let rt = multi_thread_runtime();
    const CAP: [u64; 2] = [4, 4096];
    for (layout, sem) in layouts(CAP) {
        let books = Arc::new(Books::default());
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let (sem, books) = (Arc::clone(&sem), Arc::clone(&books));
                thread::spawn(move || {
                    for _ in 0..100 {
                        let p = sem
                            .acquire_blocking_timeout([1, 1024], Duration::from_secs(10))
                            .unwrap();
                        books.take(p.amounts(), CAP);
                        thread::yield_now();
                        books.give(p.amounts());
                    }
                })
            })
            .collect();
        rt.block_on(async {
            let tasks: Vec<_> = (0..8)
                .map(|_| {
                    let (sem, books) = (Arc::clone(&sem), Arc::clone(&books));
                    tokio::spawn(async move {
                        for _ in 0..50 {
                            let p = sem.acquire_owned([2, 2048]).await.unwrap();
                            books.take(p.amounts(), CAP);
                            tokio::task::yield_now().await;
                            books.give(p.amounts());
                        }
                    })
                })
                .collect();
            for t in tasks {
                tokio::time::timeout(LIMIT, t)
                    .await
                    .expect("task stuck")
                    .unwrap();
            }
        });
        for t in threads {
            t.join().unwrap();
        }
        books.check(layout, &sem, CAP);
    }
}

#[test]
fn tokio_current_thread_select_cancels_acquires() {
    let _w = Watchdog::this_test(LIMIT);
    const CAP: [u64; 2] = [2, 100];
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    for (layout, sem) in layouts(CAP) {
        let books = Arc::new(Books::default());
        rt.block_on(async {
            let local = tokio::task::LocalSet::new();
            local
                .run_until(async {
                    let tasks: Vec<_> = (0..16u64)
                        .map(|i| {
                            let (sem, books) = (Arc::clone(&sem), Arc::clone(&books));
                            tokio::task::spawn_local(async move {
                                let mut rng = Rng::new(100 + i);
                                for _ in 0..30 {
                                    let amounts = [1, 1 + rng.below(100)];
                                    let wait = Duration::from_micros(rng.below(2000));
                                    tokio::select! {
                                        biased;
                                        r = sem.acquire(amounts) => {
                                            let p = r.unwrap();
                                            books.take(p.amounts(), CAP);
                                            tokio::time::sleep(Duration::from_micros(200)).await;
                                            books.give(p.amounts());
                                        }
                                        _ = tokio::time::sleep(wait) => {
                                            books.cancelled.fetch_add(1, SeqCst);
                                        }
                                    }
                                }
                            })
                        })
                        .collect();
                    for t in tasks {
                        tokio::time::timeout(LIMIT, t)
                            .await
                            .expect("task stuck")
                            .unwrap();
                    }
                })
                .await;
        });
        books.check(layout, &sem, CAP);
    }
}

#[test]
fn tokio_close_wakes_every_pending_task() {
    let _w = Watchdog::this_test(LIMIT);
    let rt = multi_thread_runtime();
    for (layout, sem) in layouts([4, 100]) {
        let hold = sem.try_acquire_owned([4, 100]).unwrap();
        let results = rt.block_on(async {
            let tasks: Vec<_> = (0..32)
                .map(|i| {
                    let sem = Arc::clone(&sem);
                    tokio::spawn(async move {
                        if i % 2 == 0 {
                            sem.acquire_owned([1, 1]).await.map(|p| p.amounts())
                        } else {
                            sem.acquire([1, 1]).await.map(|p| p.amounts())
                        }
                    })
                })
                .collect();
            let start = Instant::now();
            while sem.waiters() < 32 {
                assert!(start.elapsed() < LIMIT, "tasks did not queue");
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            sem.close();
            let mut results = Vec::new();
            for t in tasks {
                results.push(
                    tokio::time::timeout(LIMIT, t)
                        .await
                        .expect("task stuck")
                        .unwrap(),
                );
            }
            results
        });
        assert!(
            results.iter().all(|r| *r == Err(AcquireError::Closed)),
            "{layout}: {results:?}"
        );
        assert_eq!(sem.stats().closed_out, 32, "{layout}");
        assert_eq!(sem.waiters(), 0);
        drop(hold);
        assert_eq!(sem.available(), [4, 100], "{layout}");
    }
}

// ---------------------------------------------------------------------------
// futures-executor and plain std
// ---------------------------------------------------------------------------

/// `futures_executor::block_on` on several threads; some acquires are polled
/// once with a no-op waker and dropped (cancellation by drop).
#[test]
fn futures_block_on_on_several_threads_with_dropped_futures() {
    let _w = Watchdog::this_test(LIMIT);
    const CAP: [u64; 2] = [3, 3000];
    for (layout, sem) in layouts(CAP) {
        let books = Arc::new(Books::default());
        let threads: Vec<_> = (0..4u64)
            .map(|t| {
                let (sem, books) = (Arc::clone(&sem), Arc::clone(&books));
                thread::spawn(move || {
                    let mut rng = Rng::new(t + 7);
                    for _ in 0..300 {
                        let amounts = [1 + rng.below(2), 1 + rng.below(1500)];
                        let owned = rng.below(2) == 0;
                        let mut fut: Pin<Box<dyn Future<Output = [u64; 2]> + '_>> = if owned {
                            let f = sem.acquire_owned(amounts);
                            let books = Arc::clone(&books);
                            Box::pin(async move {
                                let p = f.await.unwrap();
                                books.take(p.amounts(), CAP);
                                thread::yield_now();
                                books.give(p.amounts());
                                p.amounts()
                            })
                        } else {
                            let f = sem.acquire(amounts);
                            let books = Arc::clone(&books);
                            Box::pin(async move {
                                let p = f.await.unwrap();
                                books.take(p.amounts(), CAP);
                                thread::yield_now();
                                books.give(p.amounts());
                                p.amounts()
                            })
                        };
                        if rng.below(3) == 0 {
                            // Poll once, then cancel by dropping if it is pending.
                            match poll_once(fut.as_mut()) {
                                Poll::Ready(a) => assert_eq!(a, amounts),
                                Poll::Pending => {
                                    books.cancelled.fetch_add(1, SeqCst);
                                }
                            }
                            drop(fut);
                        } else {
                            assert_eq!(futures_executor::block_on(fut), amounts);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        books.check(layout, &sem, CAP);
    }
}

/// Yields once: wakes itself and returns `Pending` the first time.
struct YieldNow(bool);
impl Future for YieldNow {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

/// Races `fut` against `polls` self-wakes; `None` means it was cancelled
/// (dropped) after being polled that many times.
struct CancelAfter<F> {
    fut: Option<Pin<Box<F>>>,
    polls: u32,
    was_pending: bool,
}
impl<F: Future> Future for CancelAfter<F> {
    type Output = (Option<F::Output>, bool);
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let fut = this.fut.as_mut().expect("polled after completion");
        if let Poll::Ready(v) = fut.as_mut().poll(cx) {
            this.fut = None;
            return Poll::Ready((Some(v), false));
        }
        this.was_pending = true;
        if this.polls == 0 {
            this.fut = None; // cancel
            return Poll::Ready((None, true));
        }
        this.polls -= 1;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// Polls every future until all are done (a hand-written join_all).
struct JoinAll<'a> {
    futs: Vec<Option<Pin<Box<dyn Future<Output = ()> + 'a>>>>,
}
impl Future for JoinAll<'_> {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut pending = false;
        for slot in self.futs.iter_mut() {
            if let Some(f) = slot {
                if f.as_mut().poll(cx).is_ready() {
                    *slot = None;
                } else {
                    pending = true;
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    }
}

/// Many acquires on one thread under `futures_executor::LocalPool`, some
/// cancelled after a few polls by dropping them.
#[test]
fn futures_local_pool_with_cancellation() {
    let _w = Watchdog::this_test(LIMIT);
    const CAP: [u64; 2] = [3, 300];
    for (layout, sem) in layouts(CAP) {
        let books = Arc::new(Books::default());
        let mut pool = futures_executor::LocalPool::new();
        let futs = (0..24u64)
            .map(|i| {
                let (sem, books) = (Arc::clone(&sem), Arc::clone(&books));
                let f: Pin<Box<dyn Future<Output = ()>>> = Box::pin(async move {
                    let mut rng = Rng::new(1000 + i);
                    for _ in 0..40 {
                        let amounts = [1 + rng.below(2), 1 + rng.below(150)];
                        let polls = rng.below(6) as u32;
                        let (r, was_pending) = if i % 2 == 0 {
                            let (r, p) = CancelAfter {
                                fut: Some(Box::pin(sem.acquire(amounts))),
                                polls,
                                was_pending: false,
                            }
                            .await;
                            (r.map(|r| r.map(|p| (p.amounts(), None, Some(p)))), p)
                        } else {
                            let (r, p) = CancelAfter {
                                fut: Some(Box::pin(sem.acquire_owned(amounts))),
                                polls,
                                was_pending: false,
                            }
                            .await;
                            (r.map(|r| r.map(|p| (p.amounts(), Some(p), None))), p)
                        };
                        match r {
                            Some(Ok((a, owned, borrowed))) => {
                                assert_eq!(a, amounts);
                                books.take(a, CAP);
                                for _ in 0..rng.below(4) {
                                    YieldNow(false).await;
                                }
                                books.give(a);
                                drop((owned, borrowed));
                            }
                            Some(Err(e)) => panic!("unexpected {e}"),
                            None => {
                                assert!(was_pending);
                                books.cancelled.fetch_add(1, SeqCst);
                            }
                        }
                        YieldNow(false).await;
                    }
                });
                Some(f)
            })
            .collect();
        pool.run_until(JoinAll { futs });
        books.check(layout, &sem, CAP);
    }
}

/// No executor at all: a future driven by a `Waker` built from `std::task::Wake`
/// that unparks a thread, woken by a release on another thread.
#[test]
fn std_only_waker_is_enough() {
    let _w = Watchdog::this_test(LIMIT);
    for (layout, sem) in layouts([1, 1]) {
        let hold = sem.try_acquire_owned([1, 1]).unwrap();
        // A `std::task::Wake` that counts and unparks this thread.
        let (unpark, waker) = counting_waker();
        let mut fut = Box::pin(sem.acquire_owned([1, 1]));
        assert!(poll_with(fut.as_mut(), &waker).is_pending());
        let releaser = thread::spawn(move || {
            thread::sleep(Duration::from_millis(5));
            drop(hold);
        });
        let start = Instant::now();
        let p = loop {
            if let Poll::Ready(r) = poll_with(fut.as_mut(), &waker) {
                break r.unwrap();
            }
            assert!(start.elapsed() < LIMIT, "{layout}: never woken");
            thread::park_timeout(Duration::from_secs(1));
        };
        releaser.join().unwrap();
        assert!(unpark.wakes() >= 1, "{layout}: granted without a wake");
        drop(p);
        assert_eq!(sem.available(), [1, 1]);
    }
}

/// The async acquires can run on whatever thread the executor picks: an owned
/// future created on one thread and completed on another.
#[test]
fn owned_future_moves_between_executors() {
    let _w = Watchdog::this_test(LIMIT);
    let rt = multi_thread_runtime();
    for (layout, sem) in layouts([1, 10]) {
        let hold = sem.try_acquire_owned([1, 10]).unwrap();
        let mut fut = Box::pin(sem.acquire_owned([1, 10]));
        // First poll under futures-executor's LocalPool (queues it)...
        let mut pool = futures_executor::LocalPool::new();
        let polled = Arc::new(Mutex::new(false));
        let pf = Arc::clone(&polled);
        pool.run_until(std::future::poll_fn(|cx| {
            assert!(fut.as_mut().poll(cx).is_pending());
            *pf.lock().unwrap() = true;
            Poll::Ready(())
        }));
        assert!(*polled.lock().unwrap());
        assert_eq!(sem.waiters(), 1);
        // ...then finished on a tokio worker, with a different waker.
        let task = rt.spawn(fut);
        drop(hold);
        let p = rt
            .block_on(async { tokio::time::timeout(LIMIT, task).await })
            .expect("never granted")
            .unwrap()
            .unwrap();
        assert_eq!(p.amounts(), [1, 10], "{layout}");
        drop(p);
        assert_eq!(sem.available(), [1, 10]);
        assert_eq!(sem.waiters(), 0);
    }
}
