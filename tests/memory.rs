//! What waiting allocates and keeps, counted by a global allocator that
//! tallies each thread's own allocations (so tests running in parallel do
//! not see each other's). The async tests are single-threaded: futures are
//! polled by hand with a no-op waker. The blocking one counts what its
//! blocked thread allocates.
//!
//! - Steady state allocates nothing: once the queue has held its usual
//!   number of waiters, queueing, granting (one at a time or many per
//!   release), collecting and cancelling allocate nothing.
//! - A queued waiter costs at most 128 bytes (its future plus the queue's
//!   memory), at any queue length, where tokio, with two semaphores (count
//!   and bytes), costs 152 (`benches/memory.rs`).
//! - The memory of a queue's peak is given back once the queue drains.
//! - A blocked thread that is granted frees its slot: blocking grants, one
//!   after another, allocate no more of the queue.
//! - The adaptive controller, and a request through the adaptive tower
//!   layer, allocate nothing once the controller's filters are full.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Barrier};
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::{Duration, Instant};

use multisem::{AcquireOwned, MultiSemaphore, OwnedPermit};

struct PerThread;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static ALLOCATED: Cell<u64> = const { Cell::new(0) };
}

fn note(allocs: u64, bytes: isize) {
    // `try_with`: nothing to count once the thread's locals are gone.
    let _ = ALLOCS.try_with(|a| a.set(a.get() + allocs));
    let _ = LIVE.try_with(|l| l.set(l.get() + bytes));
    if allocs > 0 && bytes > 0 {
        let _ = ALLOCATED.try_with(|a| a.set(a.get() + bytes as u64));
    }
}

// SAFETY: every call is forwarded to `System` unchanged; the counters only
// observe sizes, in const-initialized thread locals that never allocate.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for PerThread {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(1, layout.size() as isize);
        // SAFETY: the caller's contract is `System`'s.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note(0, -(layout.size() as isize));
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(1, new_size as isize - layout.size() as isize);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: PerThread = PerThread;

fn allocs() -> u64 {
    ALLOCS.with(Cell::get)
}

fn live() -> isize {
    LIVE.with(Cell::get)
}

/// Bytes this thread has allocated so far (growth by `realloc` included),
/// whoever frees them.
fn allocated() -> u64 {
    ALLOCATED.with(Cell::get)
}

type Fut = Pin<Box<AcquireOwned<2>>>;

fn poll(f: &mut Fut) -> Poll<OwnedPermit<2>> {
    f.as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
        .map(Result::unwrap)
}

fn queue(sem: &Arc<MultiSemaphore<2>>, f: &mut Fut, amounts: [u64; 2]) {
    // In place: the box is reused, so this allocates nothing itself.
    f.set(sem.acquire_owned(amounts));
    assert!(poll(f).is_pending(), "expected to queue");
}

fn granted(f: &mut Fut) -> OwnedPermit<2> {
    match poll(f) {
        Poll::Ready(p) => p,
        Poll::Pending => panic!("expected a grant"),
    }
}

#[test]
fn steady_queueing_and_granting_allocate_nothing() {
    // 200 waiters queued behind 4 permits, the pattern of a busy async
    // sender: each grant is used, returned, and its task queues again.
    let sem = Arc::new(MultiSemaphore::new([4, 4096]));
    let mut held: Vec<OwnedPermit<2>> = (0..4)
        .map(|_| sem.try_acquire_owned([1, 1024]).unwrap())
        .collect();
    held.reserve(16);
    let mut futures: Vec<Fut> = (0..200)
        .map(|_| Box::pin(sem.acquire_owned([1, 1024])))
        .collect();
    let run = |futures: &mut Vec<Fut>, held: &mut Vec<OwnedPermit<2>>, rounds: usize| {
        for f in futures.iter_mut() {
            assert!(poll(f).is_pending());
        }
        for round in 0..rounds {
            let i = round % futures.len();
            // The oldest waiter is granted by this release...
            drop(held.remove(0));
            held.push(granted(&mut futures[i]));
            // ...and queues again at the back.
            queue(&sem, &mut futures[i], [1, 1024]);
        }
    };
    // The first pass grows the queue to its size; the second must not
    // allocate at all.
    run(&mut futures, &mut held, 1000);
    let before = allocs();
    run(&mut futures, &mut held, 1000);
    assert_eq!(allocs() - before, 0, "allocations in steady state");
    drop(held);
    drop(futures);
    assert_eq!(sem.available(), sem.capacity());
}

#[test]
fn a_cancelled_waiters_slot_is_reused() {
    // A waiter that gives up (its future dropped while queued) leaves its
    // slot for the next one: 10,000 queue-and-cancel rounds behind 100 held
    // waiters allocate nothing once the first round is done.
    let sem = Arc::new(MultiSemaphore::new([1, 1]));
    let held = sem.try_acquire_owned([1, 1]).unwrap();
    let mut standing: Vec<Fut> = (0..100)
        .map(|_| Box::pin(sem.acquire_owned([1, 1])))
        .collect();
    for f in standing.iter_mut() {
        assert!(poll(f).is_pending());
    }
    let mut leaving: Fut = Box::pin(sem.acquire_owned([1, 1]));
    queue(&sem, &mut leaving, [1, 1]);
    let before = allocs();
    for _ in 0..10_000 {
        // `set` drops the queued future in place (a cancel), then queues anew.
        queue(&sem, &mut leaving, [1, 1]);
    }
    assert_eq!(allocs() - before, 0, "allocations while waiters cancel");
    assert_eq!(sem.waiters(), 101);
    drop(leaving);
    drop(standing);
    drop(held);
    assert_eq!(sem.available(), sem.capacity());
}

#[test]
fn a_release_that_grants_many_allocates_nothing() {
    // One permit of 40 is returned at once: 40 waiters are granted by the
    // one release (more than one batch of wakes). The queue drains between
    // passes and refills within the slots it keeps (63).
    let sem = Arc::new(MultiSemaphore::new([40, 40]));
    let mut futures: Vec<Fut> = (0..60)
        .map(|_| Box::pin(sem.acquire_owned([1, 1])))
        .collect();
    let mut permits = Vec::with_capacity(60);
    for pass in 0..2 {
        let before = allocs();
        let all = sem.try_acquire_owned([40, 40]).unwrap();
        for f in futures.iter_mut() {
            queue(&sem, f, [1, 1]);
        }
        drop(all);
        for f in &mut futures[..40] {
            permits.push(granted(f));
        }
        assert_eq!(sem.waiters(), 20);
        permits.clear();
        for f in &mut futures[40..50] {
            permits.push(granted(f));
        }
        // The last 10 are dropped before they collect their grants.
        for f in &mut futures[50..] {
            f.set(sem.acquire_owned([0, 0]));
        }
        permits.clear();
        if pass == 1 {
            assert_eq!(allocs() - before, 0, "allocations on the second pass");
        }
    }
    assert_eq!(sem.available(), sem.capacity());
    assert_eq!(sem.waiters(), 0);
}

/// The bytes each of `q` queued waiters costs: its boxed future plus what
/// the queue allocated for it.
fn bytes_per_waiter(q: usize) -> f64 {
    let sem = Arc::new(MultiSemaphore::new([q as u64, 1]));
    let hold = sem.try_acquire_owned([q as u64, 1]).unwrap();
    let mut futures: Vec<Fut> = Vec::with_capacity(q);
    let before = live();
    for _ in 0..q {
        let mut f = Box::pin(sem.acquire_owned([1, 1]));
        assert!(poll(&mut f).is_pending());
        futures.push(f);
    }
    let per_waiter = (live() - before) as f64 / q as f64;
    drop(futures);
    drop(hold);
    per_waiter
}

/// The README's promise: at most 128 bytes per queued `[u64; 2]` waiter,
/// its future included, where tokio, with two semaphores (count and
/// bytes), costs 152 (`benches/memory.rs`). The queue grows in chunks that double (`2^c - 1` slots in
/// `c` chunks), so the worst case is a length that just opens a chunk: a
/// power of two.
#[test]
fn a_queued_waiter_costs_at_most_128_bytes_at_any_length() {
    for q in [1, 2, 3, 4, 5, 8, 9, 17, 100, 1024, 1025, 4096, 10_000] {
        let bytes = bytes_per_waiter(q);
        assert!(bytes <= 128.0, "{bytes} bytes per waiter with {q} queued");
    }
}

/// What the semaphore holds after `q` waiters came and went: granted and
/// collected (`grant`), or cancelled while queued.
fn kept_after_drain(q: usize, grant: bool) -> isize {
    let sem = Arc::new(MultiSemaphore::new([q as u64, q as u64]));
    let mut futures: Vec<Fut> = Vec::with_capacity(q);
    let before = live();
    let hold = sem.try_acquire_owned([q as u64, q as u64]).unwrap();
    for _ in 0..q {
        let mut f = Box::pin(sem.acquire_owned([1, 1]));
        assert!(poll(&mut f).is_pending());
        futures.push(f);
    }
    if grant {
        drop(hold);
        for f in &mut futures {
            drop(granted(f));
        }
        futures.clear();
    } else {
        futures.clear();
        drop(hold);
    }
    assert_eq!(sem.available(), sem.capacity());
    live() - before
}

#[test]
fn a_peaks_memory_is_given_back_once_the_queue_drains() {
    // What stays is bounded (the first 63 slots), whatever the peak was.
    for grant in [true, false] {
        let small = kept_after_drain(63, grant);
        for q in [1_000, 10_000] {
            let kept = kept_after_drain(q, grant);
            assert!(
                kept <= small && kept <= 4096,
                "{kept} bytes kept after {q} waiters drained (grant: {grant}); \
                 {small} after 63"
            );
        }
    }
}

#[test]
fn blocking_allocates_nothing_in_steady_state() {
    // A thread blocks, is granted by a release, and leaves with its permit
    // without taking the lock again. Its slot must be freed by the grant
    // itself, or the table would grow by one slot per blocking grant (from
    // round 64 on, a new chunk of at least 64 slots at each doubling); and
    // the flag a grant raises is the thread's own, reused from its last wait
    // (a new one would be 24 bytes a wait). The blocked thread queues
    // itself, so the queue's growth is counted on it.
    //
    // Its one look under the lock before sleeping may meet the releasing
    // thread there and park on the queue's lock: the first park on a
    // `parking_lot` lock in the process creates parking_lot's table of
    // parked threads (1056 bytes here), once for the process, whichever
    // round it falls in. That is parking_lot's, not the queue's: the thread
    // parks once on a lock of its own before measuring (the flake that
    // failed this test about one run in ten, on an idle machine).
    const ROUNDS: usize = 400;
    const MEASURED_FROM: usize = 100;
    let sem = Arc::new(MultiSemaphore::new([1, 1]));
    let turn = Arc::new(Barrier::new(2));
    let blocked = thread::spawn({
        let (sem, turn) = (Arc::clone(&sem), Arc::clone(&turn));
        move || {
            park_once_on_parking_lot();
            let mut before = 0;
            for round in 0..ROUNDS {
                if round == MEASURED_FROM {
                    before = allocated();
                }
                turn.wait();
                let permit = sem
                    .acquire_blocking_timeout([1, 1], Duration::from_secs(10))
                    .expect("granted by the release");
                drop(permit);
                turn.wait();
            }
            allocated() - before
        }
    });
    let mut held = Some(sem.try_acquire_owned([1, 1]).unwrap());
    for _ in 0..ROUNDS {
        turn.wait();
        let deadline = Instant::now() + Duration::from_secs(10);
        while sem.waiters() == 0 {
            assert!(Instant::now() < deadline, "never queued");
            thread::yield_now();
        }
        drop(held.take());
        turn.wait();
        held = Some(sem.try_acquire_owned([1, 1]).expect("returned"));
    }
    let bytes = blocked.join().unwrap();
    let per_grant = bytes as f64 / (ROUNDS - MEASURED_FROM) as f64;
    assert!(
        bytes == 0,
        "{per_grant} bytes allocated per blocking grant ({bytes} in all)"
    );
    drop(held);
    assert_eq!(sem.available(), sem.capacity());
    assert_eq!(sem.waiters(), 0);
}

/// Parks this thread once on a `parking_lot` condition variable, for
/// nothing: parking_lot allocates its global table, and this thread's entry
/// in it, at a thread's first park, and a test that counts allocations must
/// not count that one-time cost as its own.
fn park_once_on_parking_lot() {
    let lock = parking_lot::Mutex::new(());
    let woken = parking_lot::Condvar::new().wait_for(&mut lock.lock(), Duration::from_micros(1));
    assert!(woken.timed_out(), "nothing notifies it");
}

/// Tracked acquires and completions on the preset controller, in virtual
/// time, with windows closing and the semaphore resized as they go: once
/// its filters are full (400 windows of delays), nothing is allocated.
#[test]
fn an_adaptive_controller_allocates_nothing_in_steady_state() {
    use multisem::adaptive::{Controller, Outcome};
    let sem = Arc::new(MultiSemaphore::new([64, 64 << 20]));
    let ctl = Controller::builder(Arc::clone(&sem))
        .count_and_bytes(0, 4..=1024, 1, (1 << 20)..=(1 << 30))
        .build();
    let start = Instant::now();
    let mut now = Duration::ZERO;
    // One completion every 2 ms of virtual time, a window every 16 of them
    // (32 ms): the filters' longest span, 400 windows, fills in 6,400.
    let mut run = |completions: u64| {
        for i in 0..completions {
            let bytes = if i % 10 == 0 { 1 << 20 } else { 1024 };
            let granted = start + now;
            let permit = ctl.try_acquire_at([1, bytes], granted).unwrap();
            let rtt = Duration::from_millis(if bytes > 1024 { 20 } else { 6 });
            now += Duration::from_millis(2);
            permit.complete_at(Outcome::delivered(bytes), granted + rtt);
        }
    };
    run(8_000);
    let (resizes, before) = (ctl.resizes(), allocated());
    run(8_000);
    let bytes = allocated() - before;
    assert!(
        ctl.resizes() > resizes,
        "the measured stretch resized nothing"
    );
    assert_eq!(
        bytes, 0,
        "{bytes} bytes allocated over 8,000 tracked requests"
    );
    assert_eq!(sem.available(), sem.capacity());
}

/// `BandwidthDelay`'s filters reserve their room at the first window: one
/// that first measures delays after many windows without any (a light
/// load: a rate, but no delay) allocates nothing as they fill.
#[test]
fn bandwidth_delay_filters_fill_without_allocating() {
    use multisem::adaptive::{Algorithm, Dimension, Window, preset};

    let window = |successes: u64, elapsed_ms: u64| {
        let mut window = Window::default();
        window.elapsed = Duration::from_millis(elapsed_ms);
        window.successes = successes;
        window.delivered_bytes = successes << 20;
        window.min_rtt = Duration::from_millis(10);
        (window.mean_rtt, window.max_rtt) = (window.min_rtt, window.min_rtt);
        (window.min_rtt_bytes, window.weighted_size) = (1 << 20, 1 << 20);
        window
    };
    let mut dim = Dimension::default();
    (dim.limit, dim.peak_in_flight, dim.min, dim.max) = (4 << 20, 4 << 20, 1 << 20, 1 << 40);
    let mut bytes = preset::bytes();
    // Light: 16 MiB over 1.6 s, each request 10 ms: no delay measured.
    for _ in 0..10 {
        bytes.update(&window(16, 1600), &dim);
    }
    assert_eq!(bytes.base_delay(), None);
    let before = allocated();
    // Busy: 40 MiB over 100 ms; every window measures a delay, 1,000 of
    // them, past the 400 the delays span.
    for _ in 0..1_000 {
        bytes.update(&window(40, 100), &dim);
    }
    let allocated = allocated() - before;
    assert!(bytes.base_delay().is_some());
    assert_eq!(allocated, 0, "bytes allocated as the filters filled");
}

/// A controller's resize that grants queued waiters wakes them after
/// letting go of its lock, and allocates nothing to do so, however many it
/// grants: it hands back a batch (8), and waking it serves the queue on. (It
/// kept every grant past the first batch in a list, which allocated.)
#[test]
fn a_controller_resize_that_grants_waiters_allocates_nothing() {
    use multisem::adaptive::{Aimd, Controller};
    const WAITERS: u64 = 20;
    let sem = Arc::new(MultiSemaphore::new([1, 4096]));
    let ctl = Controller::builder(Arc::clone(&sem))
        .limit(0, 1..=64, Aimd::default())
        .build();
    let held = sem.try_acquire_owned([1, 0]).unwrap();
    let mut futures: Vec<Fut> = (0..WAITERS)
        .map(|_| Box::pin(sem.acquire_owned([1, 1])))
        .collect();
    for round in 0..3u64 {
        for f in &mut futures {
            queue(&sem, f, [1, 1]);
        }
        // Room for them all: one resize grants them.
        let before = allocs();
        ctl.set_bounds(0, WAITERS + 1..=64).unwrap();
        let allocated = allocs() - before;
        assert_eq!(sem.waiters(), 0, "every waiter granted");
        if round > 0 {
            assert_eq!(
                allocated, 0,
                "allocations in a resize that grants {WAITERS}"
            );
        }
        let permits: Vec<OwnedPermit<2>> = futures.iter_mut().map(granted).collect();
        drop(permits);
        ctl.set_bounds(0, 1..=1).unwrap();
    }
    drop(held);
    assert_eq!(sem.available(), sem.capacity());
}

/// A window that grows two dimensions, each growth granting a waiter,
/// allocates nothing: both are clamped in one resize, whose grants fit a
/// batch. (Each dimension was resized on its own, and the second's grants
/// went to a list past the first's batch, which allocated.)
#[test]
fn a_window_that_grows_two_dimensions_granting_waiters_allocates_nothing() {
    use multisem::adaptive::{Aimd, Controller, Outcome};
    let sem = Arc::new(MultiSemaphore::new([4, 4096]));
    let ctl = Controller::builder(Arc::clone(&sem))
        .limit(0, 1..=1 << 16, Aimd::default().step(1.0).utilization(0.0))
        .limit(
            1,
            1024..=1 << 28,
            Aimd::default().step(1024.0).utilization(0.0),
        )
        .window(Duration::ZERO, 1)
        .build();
    let start = Instant::now();
    let mut count: Fut = Box::pin(sem.acquire_owned([0, 0]));
    let mut bytes: Fut = Box::pin(sem.acquire_owned([0, 0]));
    for round in 0..6u64 {
        let at = start + Duration::from_millis(100 * round);
        let tracked = ctl.try_acquire_at([0, 0], at).unwrap();
        let fill = sem.try_acquire_owned(sem.available()).unwrap();
        // The head short of a count only; behind it, one short of bytes.
        queue(&sem, &mut count, [1, 0]);
        queue(&sem, &mut bytes, [0, 1024]);
        let before = allocs();
        tracked.complete_at(Outcome::success(), at + Duration::from_millis(10));
        let allocated = allocs() - before;
        assert_eq!(sem.waiters(), 0, "round {round}: both granted");
        drop((granted(&mut count), granted(&mut bytes), fill));
        if round > 1 {
            assert_eq!(
                allocated, 0,
                "round {round}: allocations in a window that grants 2"
            );
        }
    }
    assert_eq!(sem.available(), sem.capacity());
}

/// A request through `AdmitLayer::adaptive`, polled by hand, allocates
/// nothing once the controller's filters are full.
#[cfg(feature = "tower")]
#[test]
fn an_adaptive_tower_request_allocates_nothing_in_steady_state() {
    use multisem::adaptive::{Controller, Outcome};
    use multisem::tower::AdmitLayer;
    use std::convert::Infallible;
    use tower::{Layer, Service, service_fn};

    let sem = Arc::new(MultiSemaphore::new([64, 64 << 20]));
    let ctl = Controller::builder(Arc::clone(&sem))
        .count_and_bytes(0, 4..=1024, 1, (1 << 20)..=(1 << 30))
        .window(Duration::ZERO, 1)
        .build();
    let mut svc = AdmitLayer::adaptive(
        Arc::clone(&ctl),
        |len: &u64| [1, *len],
        |_: Result<&u64, &Infallible>, amounts: [u64; 2]| Outcome::delivered(amounts[1]),
    )
    .layer(service_fn(|len: u64| {
        std::future::ready(Ok::<_, Infallible>(len))
    }));
    let mut cx = Context::from_waker(Waker::noop());
    let mut request = |len: u64| {
        assert!(svc.poll_ready(&mut cx).is_ready());
        let mut response = std::pin::pin!(svc.call(len));
        match response.as_mut().poll(&mut cx) {
            Poll::Ready(Ok(answer)) => assert_eq!(answer, len),
            _ => panic!("the response must be ready at once"),
        }
    };
    // Every completion closes a window: 1,000 fill the filters.
    for i in 0..1_000 {
        request(1000 + i);
    }
    let before = allocated();
    for i in 0..1_000 {
        request(1000 + i);
    }
    let bytes = allocated() - before;
    assert_eq!(
        bytes, 0,
        "{bytes} bytes allocated over 1,000 adaptive requests"
    );
    assert!(ctl.last_window().is_some());
    assert_eq!(sem.available(), sem.capacity());
}
