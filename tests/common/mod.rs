//! Shared by the integration tests: a watchdog against hangs, a counting
//! waker and polling helpers, the two layouts, a small seeded RNG and a
//! panic's message. Each test file uses only a part of it.
#![allow(dead_code)]

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, JoinHandle, Thread};
use std::time::Duration;

use multisem::{Builder, MultiSemaphore};

/// Ends the process if the section that armed it still runs after its
/// limit: a hang is a failure, never a stuck CI job. Disarmed on drop.
pub struct Watchdog {
    disarm: Option<Sender<()>>,
    handle: Option<JoinHandle<()>>,
}

impl Watchdog {
    pub fn new(what: impl Into<String>, limit: Duration) -> Self {
        let what = what.into();
        let (tx, rx) = mpsc::channel::<()>();
        if cfg!(miri) {
            // Miri reports a deadlock itself, and its virtual clock runs with
            // the (slow) interpretation: a watchdog would only misfire.
            return Self {
                disarm: Some(tx),
                handle: None,
            };
        }
        let handle = thread::spawn(move || {
            if let Err(RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
                eprintln!(
                    "watchdog: `{what}` still running after {limit:?}; a wait is stuck \
                     (lost wakeup?). Ending the test process."
                );
                std::process::exit(101);
            }
        });
        Self {
            disarm: Some(tx),
            handle: Some(handle),
        }
    }

    /// Guards the calling test, named after its thread.
    pub fn this_test(limit: Duration) -> Self {
        Self::new(thread::current().name().unwrap_or("<unnamed test>"), limit)
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        drop(self.disarm.take());
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

/// A waker that counts its wakes and unparks the thread that made it.
pub struct CountingWaker {
    wakes: AtomicUsize,
    thread: Thread,
}

impl CountingWaker {
    pub fn wakes(&self) -> usize {
        self.wakes.load(SeqCst)
    }
}

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.wakes.fetch_add(1, SeqCst);
        self.thread.unpark();
    }
}

/// A [`CountingWaker`] for this thread, and the `Waker` made from it.
pub fn counting_waker() -> (Arc<CountingWaker>, Waker) {
    let counter = Arc::new(CountingWaker {
        wakes: AtomicUsize::new(0),
        thread: thread::current(),
    });
    let waker = Waker::from(Arc::clone(&counter));
    (counter, waker)
}

pub fn poll_with<F: Future + ?Sized>(fut: Pin<&mut F>, waker: &Waker) -> Poll<F::Output> {
    fut.poll(&mut Context::from_waker(waker))
}

/// What a poll that must be ready gave; fails the test, saying `what`, if
/// it was pending.
#[track_caller]
pub fn ready<T>(poll: Poll<T>, what: impl fmt::Display) -> T {
    match poll {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("{what} (still pending)"),
    }
}

/// One poll with a waker that does nothing.
pub fn poll_once<F: Future + ?Sized>(fut: Pin<&mut F>) -> Poll<F::Output> {
    poll_with(fut, Waker::noop())
}

/// The internal layouts: every dimension packed in one word, or the tiered
/// one (forced by reserving room up to `MAX_PERMITS`) in two shapes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    Packed,
    /// Tiered, with a front word of 2 bits per dimension, so that these
    /// small capacities keep most of their permits in the reserve behind it
    /// and every path between the two tiers runs.
    PerDim,
    /// Tiered, with no front fields: every permit in the reserve.
    ReserveOnly,
}

impl Layout {
    /// Every layout, for suites that run each.
    pub const ALL: [Layout; 3] = [Layout::Packed, Layout::PerDim, Layout::ReserveOnly];
}

impl Layout {
    /// A builder for `cap` in this layout.
    pub fn builder<const N: usize>(self, cap: [u64; N]) -> Builder<N> {
        let builder = MultiSemaphore::builder(cap);
        match self {
            Layout::Packed => builder,
            Layout::PerDim => builder
                .max_capacity([MultiSemaphore::<N>::MAX_PERMITS; N])
                .front_bits([2; N]),
            Layout::ReserveOnly => builder
                .max_capacity([MultiSemaphore::<N>::MAX_PERMITS; N])
                .front_bits([0; N]),
        }
    }

    pub fn make<const N: usize>(self, cap: [u64; N]) -> MultiSemaphore<N> {
        self.builder(cap).build()
    }
}

/// The same capacity in every layout, named.
pub fn layouts(cap: [u64; 2]) -> Vec<(&'static str, Arc<MultiSemaphore<2>>)> {
    vec![
        ("packed", Arc::new(Layout::Packed.make(cap))),
        ("per-dim", Arc::new(Layout::PerDim.make(cap))),
        ("reserve-only", Arc::new(Layout::ReserveOnly.make(cap))),
    ]
}

/// xorshift64*, seeded: reproducible randomness without a dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-ish in `0..n` (modulo bias is irrelevant here).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn chance(&mut self, one_in: u64) -> bool {
        self.below(one_in) == 0
    }

    /// Up to `max` microseconds.
    pub fn micros(&mut self, max: u64) -> Duration {
        Duration::from_micros(self.below(max + 1))
    }
}

mod expected_error;
#[allow(unused_imports)] // each test file uses a part, as the rest of this module
pub use expected_error::{Exceeds, Insufficient, Overflow, TryExceeds};

/// An `AcquireError` with only what tests compare, for results compared
/// whole (`Err(..)` inside tuples or `Poll`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plain {
    Timeout,
    Exceeds {
        dim: usize,
        requested: u64,
        capacity: u64,
    },
    Closed,
}

/// `err` as a [`Plain`].
pub fn plain(err: multisem::AcquireError) -> Plain {
    match err {
        multisem::AcquireError::Timeout => Plain::Timeout,
        multisem::AcquireError::ExceedsCapacity {
            dim,
            requested,
            capacity,
            ..
        } => Plain::Exceeds {
            dim,
            requested,
            capacity,
        },
        multisem::AcquireError::Closed => Plain::Closed,
        other => panic!("an error tests do not know: {other:?}"),
    }
}

/// How long a stress test that races threads for a fixed time runs: `full`,
/// scaled by `$MULTISEM_STRESS_SCALE` (a factor in (0, 1], for quick runs such
/// as `scripts/mutants.sh`'s; malformed or out-of-range values are ignored).
pub fn stress_time(full: Duration) -> Duration {
    let scale = std::env::var("MULTISEM_STRESS_SCALE")
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| *s > 0.0 && *s <= 1.0)
        .unwrap_or(1.0);
    full.mul_f64(scale)
}

/// The message a panic carried (empty if it was neither a `String` nor a
/// `&str`).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

/// Once every acquire has returned or been dropped: each wait counted in
/// `waited` ended in exactly one way, and none is in progress (`Stats`,
/// "How every wait ended").
#[track_caller]
pub fn assert_every_wait_ended<const N: usize>(sem: &MultiSemaphore<N>, what: &str) {
    let s = sem.stats();
    let waited: u64 = s.waited.iter().sum();
    let ended = s.acquired_after_wait
        + s.timed_out
        + s.cancelled
        + s.closed_out_while_waiting
        + s.exceeded_while_waiting;
    assert_eq!(waited, ended, "{what}: every wait ended once; {s:?}");
    assert_eq!(s.waits_in_progress(), 0, "{what}: {s:?}");
}

/// Runs `attempt` for 400 ms while another thread toggles the bytes of
/// `sem` between 50 and 100; returns the first refusal `attempt` reports,
/// and how many attempts ran.
pub fn while_the_bytes_toggle(
    sem: &Arc<MultiSemaphore<2>>,
    mut attempt: impl FnMut() -> Option<String>,
) -> (Option<String>, u64) {
    use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
    use std::time::Instant;
    let stop = Arc::new(AtomicBool::new(false));
    let resizer = {
        let (sem, stop) = (Arc::clone(sem), Arc::clone(&stop));
        thread::spawn(move || {
            while !stop.load(Relaxed) {
                sem.set_capacity([4, 50]).unwrap();
                sem.set_capacity([4, 100]).unwrap();
            }
        })
    };
    let start = Instant::now();
    let mut tries = 0u64;
    let refused = loop {
        if start.elapsed() > Duration::from_millis(400) {
            break None;
        }
        tries += 1;
        if let Some(refusal) = attempt() {
            break Some(refusal);
        }
    };
    stop.store(true, Relaxed);
    resizer.join().unwrap();
    (refused, tries)
}
