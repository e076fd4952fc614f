//! The adaptive algorithms and controller at their extremes: a round trip
//! far beyond Gradient2's tolerance at small limits, windows of zero round
//! trips, a resize of the controller's that re-raises a waker's panic,
//! counts that overflow a sum, adversarial windows of every kind fed to
//! every algorithm, and completions from threads whose clocks disagree while
//! the bounds move.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::{Duration, Instant};

use multisem::adaptive::{
    Aimd, Algorithm, BandwidthDelay, Controller, Dimension, Gradient2, Min, Outcome, Window,
};
use multisem::{AcquireOwned, MultiSemaphore};
use proptest::prelude::*;

const MAX: u64 = MultiSemaphore::<2>::MAX_PERMITS;
const MIB: u64 = 1 << 20;

fn at(limit: u64, peak: u64, min: u64, max: u64) -> Dimension {
    let mut dim = Dimension::default();
    (dim.limit, dim.peak_in_flight, dim.min, dim.max) = (limit, peak, min, max);
    dim
}

/// A 100 ms window of 10 successes, every round trip `rtt`.
fn rtt_window(rtt: Duration) -> Window {
    let mut window = Window::default();
    window.elapsed = Duration::from_millis(100);
    window.successes = 10;
    (window.min_rtt, window.mean_rtt, window.max_rtt) = (rtt, rtt, rtt);
    window
}

/// Beyond its tolerance Gradient2 never grows the limit, small ones
/// included: there the queue allowance √limit outweighs even the largest
/// cut (0.9 L + 0.2 √L > L for L < 4), and a round trip that kept doubling
/// raised a limit of 1 to 3.
#[test]
fn gradient2_never_raises_the_limit_while_the_rtt_is_beyond_its_tolerance() {
    let mut gradient = Gradient2::default();
    let mut limit = 1;
    // Settle the long term at 10 ms, holding the limit (not in use).
    gradient.update(&rtt_window(Duration::from_millis(10)), &at(1, 0, 1, 1000));
    let mut rtt = Duration::from_millis(10);
    let mut seen = vec![];
    for _ in 0..20 {
        rtt *= 2;
        let window = rtt_window(rtt);
        let long = gradient.long_rtt().unwrap();
        let next = gradient
            .update(&window, &at(limit, limit, 1, 1000))
            .clamp(1, 1000);
        // The long term lags: the short term stays past tolerance x long.
        assert!(rtt.as_secs_f64() > 1.5 * long);
        seen.push(next);
        assert!(
            next <= limit,
            "round trip {rtt:?} (long term {long:.4} s, tolerance 1.5): limit {limit} -> {next}; so far {seen:?}"
        );
        limit = next;
    }
}

/// `successes` 1 MiB requests over `elapsed_ms`, each taking `rtt`.
fn mib_window(successes: u64, elapsed_ms: u64, rtt: Duration) -> Window {
    let mut window = Window::default();
    window.elapsed = Duration::from_millis(elapsed_ms);
    window.successes = successes;
    window.delivered_bytes = successes * MIB;
    window.min_rtt = rtt;
    window.min_rtt_bytes = MIB;
    (window.mean_rtt, window.max_rtt) = (rtt, rtt);
    window.weighted_size = MIB;
    window
}

fn busy(limit: u64) -> Dimension {
    at(limit, limit, MIB, 1 << 40)
}

/// As many 1 MiB requests as the limit allows, each 10 ms, for 20 windows.
fn run(algorithm: &mut BandwidthDelay) -> u64 {
    let mut limit = 2 * MIB;
    for _ in 0..20 {
        let in_flight = limit / MIB;
        limit = algorithm
            .update(
                &mib_window(in_flight * 10, 100, Duration::from_millis(10)),
                &busy(limit),
            )
            .max(MIB);
    }
    limit
}

/// A window whose fastest success took no measurable time (completions at
/// the grant's instant: `complete_at` takes a `now` at or before the grant
/// as a round trip of zero; or a coarse clock) gives no delay. Taken as a
/// base delay of 0, it held the product at 0 for `delay_windows` windows:
/// the limit stayed at two requests under a load that a fresh algorithm
/// grows past 3 MiB.
#[test]
fn a_window_of_zero_round_trips_measures_no_delay() {
    let mut fresh = BandwidthDelay::default().probe_every(0);
    let grown = run(&mut fresh);
    assert!(grown > 3 * MIB, "fresh: {grown}");

    let mut after_zero = BandwidthDelay::default().probe_every(0);
    after_zero.update(&mib_window(16, 100, Duration::ZERO), &busy(64 * MIB));
    let pinned = run(&mut after_zero);
    assert!(
        pinned >= grown,
        "after one window of zero round trips: {pinned} bytes (fresh: {grown}); base delay {:?}",
        after_zero.base_delay()
    );
    // Counting requests, a zero round trip gives no delay either.
    let mut count = BandwidthDelay::default().per_request().probe_every(0);
    count.update(&mib_window(16, 100, Duration::ZERO), &at(64, 64, 1, 1000));
    assert_eq!(count.base_delay(), None);
    count.update(
        &mib_window(16, 100, Duration::from_millis(10)),
        &at(64, 64, 1, 1000),
    );
    assert_eq!(count.base_delay(), Some(0.01));
}

/// The same through the controller in virtual time: one window whose
/// completions land at their grant's instant.
#[test]
fn a_controller_window_of_instant_completions_does_not_pin_the_byte_limit() {
    let run_ctl = |zero_first: bool| {
        let sem = Arc::new(MultiSemaphore::new([64, 2 * MIB]));
        let ctl = Controller::builder(Arc::clone(&sem))
            .limit(1, MIB..=(1 << 30), BandwidthDelay::default().probe_every(0))
            .window(Duration::from_millis(100), 16)
            .build();
        let mut t = Instant::now();
        if zero_first {
            for _ in 0..16 {
                let p = ctl.try_acquire_at([1, 4096], t).unwrap();
                let granted = p.granted();
                t += Duration::from_millis(7);
                p.complete_at(Outcome::delivered(4096), granted);
            }
            assert_eq!(ctl.windows(), 1);
        }
        // Busy windows: as many 1 MiB requests as fit, each 10 ms.
        for _ in 0..200 {
            let n = (sem.capacity()[1] / MIB).max(1);
            let permits: Vec<_> = (0..n)
                .map(|_| ctl.try_acquire_at([1, MIB], t).unwrap())
                .collect();
            t += Duration::from_millis(10);
            for p in permits {
                p.complete_at(Outcome::delivered(MIB), t);
            }
        }
        sem.capacity()[1]
    };
    let fresh = run_ctl(false);
    let after_zero = run_ctl(true);
    assert!(fresh > 3 * MIB, "fresh: {fresh}");
    assert!(
        after_zero > 3 * MIB,
        "after a window of instant completions the byte limit is {after_zero} (fresh: {fresh})"
    );
}

/// A semaphore of one request (and 1 MiB) whose count an `Aimd` drives
/// (bounds 1 to 100), closing a window at every completion if `eager`, as
/// the tests of the controller's resizes and their wakes need.
fn one_request_controller(eager: bool) -> (Arc<MultiSemaphore<2>>, Arc<Controller<2>>) {
    let sem = Arc::new(MultiSemaphore::new([1, 1 << 20]));
    let mut builder = Controller::builder(Arc::clone(&sem)).limit(0, 1..=100, Aimd::default());
    if eager {
        builder = builder.window(Duration::ZERO, 1);
    }
    (sem, builder.build())
}

/// An acquire of `[1, 1]` from `sem`, polled once under `waker`: queued.
fn queued(sem: &Arc<MultiSemaphore<2>>, waker: &Waker) -> Pin<Box<AcquireOwned<2>>> {
    let mut acquire = Box::pin(sem.acquire_owned([1, 1]));
    assert!(
        acquire
            .as_mut()
            .poll(&mut Context::from_waker(waker))
            .is_pending()
    );
    acquire
}

/// The permit an acquire was granted, polled once more to collect it.
fn granted<const N: usize>(acquire: Pin<&mut AcquireOwned<N>>) -> multisem::OwnedPermit<N> {
    match acquire.poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(Ok(permit)) => permit,
        other => panic!("expected a grant: {other:?}"),
    }
}

struct PanicWaker;

impl Wake for PanicWaker {
    fn wake(self: Arc<Self>) {
        panic!("a waker that panics");
    }
}

/// A resize re-raises a woken waiter's waker panic (as a release does).
/// When the resize is the controller's, at a window's close inside
/// `complete`, the panic reaches `complete`, but only once the controller's
/// books are done: its `limits()` and `windows()` say what the semaphore's
/// capacity does, and the next window counts only its own samples.
#[test]
fn a_resize_that_re_raises_a_waker_panic_leaves_the_controller_consistent() {
    let (sem, ctl) = one_request_controller(true);
    let held = ctl.try_acquire([1, 1]).unwrap();
    // A waiter queued with a waker that panics.
    let mut acquire = queued(&sem, &Waker::from(Arc::new(PanicWaker)));
    // Completing the held request closes a window of one busy success:
    // Aimd grows the count 1 -> 2, which grants the waiter and wakes it.
    let panicked = catch_unwind(AssertUnwindSafe(|| held.complete(Outcome::success()))).is_err();
    assert!(
        panicked,
        "the waker's panic reaches `complete` (resizes re-raise)"
    );
    assert_eq!(sem.capacity()[0], 2);
    drop(granted(acquire.as_mut()));
    let after_panic = (ctl.limits(), ctl.windows());
    // One more success: its window holds it alone.
    ctl.try_acquire([1, 1])
        .unwrap()
        .complete(Outcome::success());
    let last = ctl.last_window().unwrap();
    assert_eq!(
        (after_panic, last.successes),
        (([2, 1 << 20], 1), 1),
        "after the panic: limits/windows {after_panic:?}; the next window counted {} successes",
        last.successes
    );
}

/// A waker that runs its task inline, calling back into the controller
/// that woke it: the controller wakes the waiters its resize granted only
/// after letting go of its lock, so the waker may read its limits and
/// complete a tracked permit (which may close a window and resize again)
/// without deadlocking on its own thread.
#[test]
fn a_waker_that_calls_back_into_the_controller_does_not_deadlock() {
    struct CallsBack {
        controller: Arc<Controller<2>>,
        tracked: std::sync::Mutex<Option<multisem::adaptive::TrackedPermit<2>>>,
        seen: std::sync::Mutex<Vec<[u64; 2]>>,
    }
    impl Wake for CallsBack {
        fn wake(self: Arc<Self>) {
            self.seen.lock().unwrap().push(self.controller.limits());
            if let Some(permit) = self.tracked.lock().unwrap().take() {
                permit.complete(Outcome::success());
            }
        }
    }
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        let (sem, ctl) = one_request_controller(true);
        let held = ctl.try_acquire([1, 1]).unwrap();
        // A tracked permit of no count, for the waker to complete.
        let spare = ctl.try_acquire([0, 1]).unwrap();
        let calls_back = Arc::new(CallsBack {
            controller: Arc::clone(&ctl),
            tracked: std::sync::Mutex::new(Some(spare)),
            seen: std::sync::Mutex::new(Vec::new()),
        });
        let mut acquire = queued(&sem, &Waker::from(Arc::clone(&calls_back)));
        // A busy success: Aimd grows the count 1 -> 2, which grants the
        // waiter, whose waker reads the limits and completes the spare
        // (another window: 2 -> 3).
        held.complete(Outcome::success());
        let seen = calls_back.seen.lock().unwrap().clone();
        assert_eq!(seen, [[2, 1 << 20]]);
        assert_eq!((ctl.windows(), sem.capacity()), (2, [3, 1 << 20]));
        drop(granted(acquire.as_mut()));
        assert_eq!(sem.available(), sem.capacity());
        done_tx.send(()).unwrap();
    });
    done_rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the controller deadlocked on a waker that called back into it");
}

/// A controller's resize that grants more waiters than one batch of wakes
/// (8) hands them all back and wakes every one of them, once.
#[test]
fn a_controller_resize_granting_many_wakes_every_waiter_once() {
    struct Counted(AtomicUsize);
    impl Wake for Counted {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, SeqCst);
        }
    }
    let (sem, ctl) = one_request_controller(false);
    let held = sem.try_acquire_owned([1, 1]).unwrap();
    let waiting: Vec<_> = (0..19)
        .map(|_| {
            let counted = Arc::new(Counted(AtomicUsize::new(0)));
            (queued(&sem, &Waker::from(Arc::clone(&counted))), counted)
        })
        .collect();
    ctl.set_bounds(0, 20..=100).unwrap();
    assert_eq!((sem.capacity()[0], sem.waiters()), (20, 0));
    for (mut acquire, counted) in waiting {
        assert_eq!(counted.0.load(SeqCst), 1, "woken once");
        drop(granted(acquire.as_mut()));
    }
    drop(held);
    assert_eq!(sem.available(), sem.capacity());
}

/// `Window::drop_rate` of counts whose sum passes u64::MAX (every field is
/// public, and the docs show building windows by hand to test an
/// algorithm) is a rate within 0..=1: the sum overflowed, a panic in debug
/// builds, a rate far above 1 (or NaN) in release ones.
#[test]
fn drop_rate_of_a_window_with_huge_counts_does_not_overflow() {
    let mut window = Window::default();
    (window.successes, window.drops) = (u64::MAX, 1);
    let rate = catch_unwind(|| window.drop_rate());
    assert!(
        matches!(rate, Ok(r) if (0.0..=1.0).contains(&r)),
        "drop_rate: {rate:?}"
    );
}

/// Keeps the limit, recording every window it is shown.
struct Recorder(Arc<std::sync::Mutex<Vec<Window>>>);

impl Algorithm for Recorder {
    fn update(&mut self, window: &Window, dim: &Dimension) -> u64 {
        self.0.lock().unwrap().push(window.clone());
        dim.limit
    }
}

/// The windows `seen`, each as `field` reads it.
fn each<T>(seen: &std::sync::Mutex<Vec<Window>>, field: impl Fn(&Window) -> T) -> Vec<T> {
    seen.lock().unwrap().iter().map(field).collect()
}

fn recorder() -> (Recorder, Arc<std::sync::Mutex<Vec<Window>>>) {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    (Recorder(Arc::clone(&seen)), seen)
}

/// Panics on its first window, then keeps the limit.
struct PanicsOnce(AtomicUsize);

impl Algorithm for PanicsOnce {
    fn update(&mut self, _: &Window, dim: &Dimension) -> u64 {
        if self.0.fetch_add(1, SeqCst) == 0 {
            panic!("expected: a user algorithm that panics once");
        }
        dim.limit
    }
}

/// A controller whose every sample closes a window, with a [`Recorder`] on
/// dimension 0 and, on dimension 1, an algorithm that panics at the first
/// window: the semaphore, the controller and the windows recorded.
fn recorded_then_panicking_once() -> (
    Arc<MultiSemaphore<2>>,
    Arc<Controller<2>>,
    Arc<std::sync::Mutex<Vec<Window>>>,
) {
    let (recorded, seen) = recorder();
    let sem = Arc::new(MultiSemaphore::new([16, MIB]));
    let ctl = Controller::builder(Arc::clone(&sem))
        .limit(0, 1..=64, recorded)
        .limit(1, 1..=2 * MIB, PanicsOnce(AtomicUsize::new(0)))
        .window(Duration::ZERO, 1)
        .build();
    (sem, ctl, seen)
}

/// A user's algorithm that panics at a window's close: the panic reaches
/// `complete`, but the window is spent all the same. Dimension 0's
/// algorithm, which ran before the panic, must not be shown its samples
/// again with the next window's.
#[test]
fn a_window_whose_algorithm_panics_is_not_counted_again() {
    let (sem, ctl, seen) = recorded_then_panicking_once();
    let t0 = Instant::now();
    let completion = |ms| {
        let permit = ctl.try_acquire_at([1, 1], t0).unwrap();
        move || permit.complete_at(Outcome::success(), t0 + Duration::from_millis(ms))
    };
    let panicked = catch_unwind(AssertUnwindSafe(completion(1)));
    assert!(panicked.is_err(), "the algorithm's panic reaches complete");
    assert_eq!((ctl.windows(), ctl.limits()), (1, [16, MIB]));
    assert_eq!(sem.available(), sem.capacity());
    completion(2)();
    assert_eq!(each(&seen, |w| w.successes), [1, 1], "successes per window");
    assert_eq!(ctl.windows(), 2);
}

/// A `report` whose sample closes a window that panics still restarts the
/// clock, as `report` promises: a caller that catches the panic and sends
/// again with the permit is timed from the report, not from the grant (the
/// first attempt's round trip was counted twice: 12 ms where the retry
/// took 2). From a reviewer.
#[test]
fn a_report_whose_window_panics_still_restarts_the_clock() {
    let ms = Duration::from_millis;
    let (sem, ctl, seen) = recorded_then_panicking_once();
    let t0 = Instant::now();
    let mut permit = ctl.try_acquire_at([1, 1], t0).unwrap();
    let reported = catch_unwind(AssertUnwindSafe(|| {
        permit.report_at(Outcome::Dropped, t0 + ms(10))
    }));
    assert!(reported.is_err(), "the algorithm's panic reaches report");
    assert_eq!(permit.granted(), t0 + ms(10), "the clock restarted");
    permit.complete_at(Outcome::success(), t0 + ms(12));
    // The first window held a drop (no success's round trip), the second
    // the retry's success.
    assert_eq!(
        each(&seen, |w| w.mean_rtt),
        [ms(0), ms(2)],
        "mean round trips"
    );
    assert_eq!(sem.available(), sem.capacity());
}

/// `build` clamps the semaphore into every dimension's bounds. A clamp
/// that grants a waiter whose waker panics re-raises that panic, but only
/// once every dimension is clamped.
#[test]
fn build_clamps_every_dimension_before_a_waker_panic_goes_on() {
    let sem = Arc::new(MultiSemaphore::new([1, 100]));
    let held = sem.try_acquire_owned([1, 1]).unwrap();
    let mut acquire = queued(&sem, &Waker::from(Arc::new(PanicWaker)));
    let builder = Controller::builder(Arc::clone(&sem))
        .limit(0, 4..=8, recorder().0)
        .limit(1, 10..=50, recorder().0);
    let built = catch_unwind(AssertUnwindSafe(move || builder.build()));
    assert!(built.is_err(), "the waker's panic reaches build");
    assert_eq!(sem.capacity(), [4, 50]);
    drop(granted(acquire.as_mut()));
    drop(held);
    assert_eq!(sem.available(), [4, 50]);
}

/// The byte-weighted mean size is a mean: never above the largest size
/// delivered, even where the delivered bytes saturate.
#[test]
fn weighted_size_stays_within_the_sizes_delivered_when_the_sum_saturates() {
    let sem = Arc::new(MultiSemaphore::new([16, MIB]));
    let ctl = Controller::builder(Arc::clone(&sem))
        .limit(0, 1..=64, recorder().0)
        .window(Duration::ZERO, 3)
        .build();
    let t0 = Instant::now();
    for ms in 1..=3 {
        ctl.try_acquire_at([1, 1], t0)
            .unwrap()
            .complete_at(Outcome::delivered(1 << 63), t0 + Duration::from_millis(ms));
    }
    let window = ctl.last_window().expect("a window closed");
    assert_eq!(window.delivered_bytes, u64::MAX);
    assert_eq!(window.weighted_size, 1 << 63);
}

/// Round trips that sum past 2^64 ns in one size class and window (a
/// thousand streams of a year ending at once) give the small requests'
/// mean round trip as every other mean: it saturated at 2^64 ns and read
/// far below the window's minimum. (Found by a reviewer.)
#[test]
fn the_small_requests_mean_round_trip_survives_sums_past_two_to_the_64_ns() {
    const STREAMS: u64 = 1000;
    let year = Duration::from_secs(365 * 24 * 3600);
    let sem = Arc::new(MultiSemaphore::new([STREAMS, MIB]));
    let ctl = Controller::builder(Arc::clone(&sem))
        .limit(0, 1..=STREAMS, recorder().0)
        .window(Duration::ZERO, STREAMS)
        .build();
    let t0 = Instant::now();
    let held: Vec<_> = (0..STREAMS)
        .map(|_| ctl.try_acquire_at([1, 1], t0).unwrap())
        .collect();
    for permit in held {
        permit.complete_at(Outcome::delivered(1000), t0 + year);
    }
    let window = ctl.last_window().expect("a window closed");
    assert!(u128::from(STREAMS) * year.as_nanos() > u128::from(u64::MAX));
    assert_eq!((window.min_rtt, window.mean_rtt), (year, year));
    assert_eq!(window.small_mean_rtt, year);
    assert_eq!(sem.available(), sem.capacity(), "nothing leaked");
}

/// A gain (or a room in requests) so large that the product overflows an
/// f64 saturates the limit at its maximum, as a merely huge one does: an
/// overflow read as no estimate gave the lower bound.
#[test]
fn a_bandwidth_delay_product_that_overflows_saturates() {
    let window = mib_window(10, 100, Duration::from_millis(20));
    let dim = at(MIB, MIB, 1, u64::MAX);
    let update = |mut algorithm: BandwidthDelay| algorithm.update(&window, &dim);
    assert_eq!(update(BandwidthDelay::default().gain(1e100)), u64::MAX);
    assert_eq!(update(BandwidthDelay::default().gain(f64::MAX)), u64::MAX);
    assert_eq!(
        update(BandwidthDelay::default().requests(f64::MAX)),
        u64::MAX
    );
}

// Every algorithm, fed adversarial but legal windows through the
// controller's clamp, never panics, and the Aimd-based ones still back off.

fn any_window() -> impl Strategy<Value = Window> {
    let dur = prop_oneof![
        Just(Duration::ZERO),
        Just(Duration::MAX),
        Just(Duration::from_nanos(1)),
        (0u64..10_000_000_000).prop_map(Duration::from_nanos),
    ];
    let big = prop_oneof![Just(0u64), Just(u64::MAX), Just(1u64), 0u64..(1 << 40)];
    (
        dur.clone(),
        dur.clone(),
        dur,
        big.clone(),
        big.clone(),
        big.clone(),
        big,
        prop_oneof![Just(0u64), Just(u64::MAX), 0u64..100],
    )
        .prop_map(
            |(elapsed, min_rtt, mean_rtt, successes, drops, delivered, min_bytes, weighted)| {
                let mut w = Window::default();
                w.elapsed = elapsed;
                w.min_rtt = min_rtt;
                w.mean_rtt = mean_rtt.max(min_rtt);
                w.max_rtt = w.mean_rtt;
                w.successes = successes;
                // Keep successes + drops within u64 (see the drop_rate test).
                w.drops = drops.min(u64::MAX - successes);
                w.delivered_bytes = delivered;
                w.min_rtt_bytes = min_bytes.min(delivered);
                w.weighted_size = weighted;
                w
            },
        )
}

fn bounds() -> impl Strategy<Value = (u64, u64)> {
    prop_oneof![
        Just((1, 1)),
        Just((1, MAX)),
        Just((MAX, MAX)),
        (1u64..1000).prop_flat_map(|lo| (Just(lo), lo..=lo * 1000)),
    ]
}

fn algorithms() -> Vec<(&'static str, Box<dyn Algorithm>)> {
    vec![
        ("aimd", Box::new(Aimd::default())),
        ("aimd-huge-step", Box::new(Aimd::default().step(f64::MAX))),
        ("gradient", Box::new(Gradient2::default())),
        ("min", Box::new(Min(Aimd::default(), Gradient2::default()))),
        ("bdp", Box::new(BandwidthDelay::default().probe_every(3))),
        (
            "bdp-inf-drain",
            Box::new(BandwidthDelay::default().drain(f64::INFINITY)),
        ),
        (
            "per-request",
            Box::new(BandwidthDelay::default().per_request()),
        ),
        (
            "preset-count",
            Box::new(multisem::adaptive::preset::count()),
        ),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, .. ProptestConfig::default() })]

    #[test]
    fn adversarial_windows_never_panic_and_aimd_still_backs_off(
        windows in proptest::collection::vec((any_window(), 0u64..=MAX), 1..60),
        bounds_seq in proptest::collection::vec(bounds(), 1..4),
    ) {
        for (name, mut algorithm) in algorithms() {
            let mut limit = bounds_seq[0].0;
            for (i, (window, peak)) in windows.iter().enumerate() {
                let (min, max) = bounds_seq[i % bounds_seq.len()];
                limit = limit.clamp(min, max);
                let dim = at(limit, *peak, min, max);
                let next = algorithm.update(window, &dim).clamp(min, max);
                limit = next;
            }
            // After the storm, plain windows: the limit moves only within bounds,
            // and Aimd-based algorithms back off on drops.
            let (min, max) = *bounds_seq.last().unwrap();
            limit = limit.clamp(min, max);
            let mut dropped = Window::default();
            dropped.elapsed = Duration::from_millis(100);
            dropped.drops = 10;
            for _ in 0..5 {
                let next = algorithm.update(&dropped, &at(limit, limit, min, max)).clamp(min, max);
                if name.starts_with("aimd") || name == "min" || name == "preset-count" {
                    prop_assert!(next <= limit, "{name}: drops raised {limit} -> {next}");
                }
                limit = next;
            }
        }
    }
}

// The controller under concurrency: completions from threads whose clocks
// disagree (some going backwards), with set_bounds, limits() and
// last_window() meanwhile.

#[test]
fn completions_with_disagreeing_clocks_and_moving_bounds_stay_within_bounds() {
    let sem = Arc::new(
        MultiSemaphore::builder([16, 1 << 20])
            .max_capacity([MAX, MAX])
            .build(),
    );
    let ctl = Controller::builder(Arc::clone(&sem))
        .limit(0, 2..=64, Min(Aimd::default(), Gradient2::default()))
        .limit(1, (1 << 16)..=(1 << 24), BandwidthDelay::default())
        .window(Duration::from_micros(50), 2)
        .build();
    let base = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(3);
    thread::scope(|s| {
        for t in 0..3u64 {
            let ctl = &ctl;
            s.spawn(move || {
                let mut i = 0u64;
                while Instant::now() < deadline {
                    i += 1;
                    // Each thread's clock is skewed: some go backwards.
                    let skew = Duration::from_millis((t * 7 + i) % 13);
                    let granted = base + Duration::from_millis(i % 50);
                    let now = if (i + t) % 3 == 0 {
                        granted - Duration::ZERO
                    } else {
                        granted + skew
                    };
                    let now = if i % 5 == 0 { base } else { now };
                    if let Ok(p) = ctl.try_acquire_at([1, 1000 + i % 5000], granted) {
                        let outcome = match i % 7 {
                            0 => Outcome::Dropped,
                            1 => Outcome::Ignore,
                            _ => Outcome::delivered(i % 5000),
                        };
                        p.complete_at(outcome, now);
                    }
                }
            });
        }
        let ctl = &ctl;
        let sem = &sem;
        s.spawn(move || {
            let mut i = 0u64;
            while Instant::now() < deadline {
                i += 1;
                let hi = 2 + i % 60;
                ctl.set_bounds(0, 2..=hi).unwrap();
                let limits = ctl.limits();
                // Only this thread moves the bounds, and every window
                // clamps into the bounds in force: the limit is within them.
                assert!((2..=hi).contains(&limits[0]), "{limits:?} outside 2..={hi}");
                let _ = ctl.last_window();
                let cap = sem.capacity();
                assert!(cap[1] >= 1 << 16 && cap[1] <= 1 << 24, "{cap:?}");
            }
        });
    });
    ctl.set_bounds(0, 2..=8).unwrap();
    let limits = ctl.limits();
    assert!((2..=8).contains(&limits[0]), "{limits:?}");
    assert_eq!(sem.capacity(), limits);
    assert_eq!(sem.available(), sem.capacity());
}

/// Above 2^53 an `f64` cannot hold every limit: a window that holds (an
/// idle one, one without a rate) keeps the limit exactly, and `Aimd`'s step
/// of one, below the `f64`'s spacing there, never lowers a fully used limit
/// (a reviewer saw 2^54 + 3 become 2^54 + 4, and 2^54 + 1 fall to 2^54).
#[test]
fn limits_above_two_to_the_53_move_only_on_a_signal() {
    let mut idle = Window::default();
    (idle.elapsed, idle.successes, idle.mean_rtt) =
        (Duration::from_millis(100), 10, Duration::from_millis(5));
    for limit in [(1u64 << 54) + 1, (1 << 54) + 3, MAX - 1, MAX] {
        let next = Aimd::default().update(&idle, &at(limit, limit, 1, MAX));
        assert!(
            next >= limit,
            "Aimd, no drops, fully used: {limit} -> {next}"
        );
        let gradient = Gradient2::default().update(&idle, &at(limit, 0, 1, MAX));
        assert_eq!(gradient, limit, "Gradient2, an idle window");
        let rateless =
            BandwidthDelay::default().update(&Window::default(), &at(limit, limit, 1, MAX));
        assert_eq!(rateless, limit, "BandwidthDelay, a window without a rate");
    }
    // Below 2^53, steps smaller than one still add up, as before.
    let mut aimd = Aimd::default().step(0.5);
    let dim = |limit| at(limit, limit, 1, MAX);
    let first = aimd.update(&idle, &dim(1 << 40));
    assert_eq!(first, 1 << 40, "half a step");
    assert_eq!(
        aimd.update(&idle, &dim(first)),
        (1 << 40) + 1,
        "a whole one"
    );
}

/// Just past its tolerance, where the cut and the queue allowance √limit
/// cancel, Gradient2 holds the limit exactly whatever its smoothing: the
/// blend `limit × (1 - s) + limit × s` rounded to just below some limits
/// (23 at 0.3, 3 at 0.05), which the estimate floored to a unit less.
#[test]
fn gradient2_holds_a_limit_exactly_whatever_its_smoothing() {
    let mut moved = vec![];
    for smoothing in [0.05, 0.1, 0.2, 0.3, 0.33, 0.5, 1.0] {
        for limit in 2..200 {
            let mut gradient = Gradient2::default().smoothing(smoothing);
            // Settle the long term at 10 ms, holding the limit (not in use).
            gradient.update(&rtt_window(Duration::from_millis(10)), &at(100, 0, 1, 1000));
            let short = Duration::from_micros(16_500);
            let long = 0.010 + 2.0 / 21.0 * (short.as_secs_f64() - 0.010);
            let cut = (1.5 * long / short.as_secs_f64()).clamp(0.5, 1.0);
            let l = limit as f64;
            assert!(cut < 1.0, "the window is past the tolerance");
            let got = gradient.update(&rtt_window(short), &at(limit, limit, 1, 1000));
            // Where √limit outweighs the cut the proposal is the limit.
            if l * cut + l.sqrt() >= l && got != limit {
                moved.push((smoothing, limit, got));
            }
        }
    }
    assert!(
        moved.is_empty(),
        "holds that moved the limit (smoothing, limit, got): {moved:?}"
    );
}

/// A `BandwidthDelay` narrowed after use (`delay_windows` on one already
/// updated) forgets at once what its new span does not cover: the filter
/// dropped one old sample per new one, so the base delay kept the old
/// minimum for as many windows as the old span held.
#[test]
fn a_narrowed_delay_span_forgets_the_older_delays_at_once() {
    // 100 ms of 100 requests of 1 KiB, each taking `rtt`.
    let kib_window = |rtt: Duration| {
        let mut window = Window::default();
        (window.elapsed, window.successes) = (Duration::from_millis(100), 100);
        (window.delivered_bytes, window.weighted_size) = (100 << 10, 1 << 10);
        (window.min_rtt, window.min_rtt_bytes) = (rtt, 1 << 10);
        (window.mean_rtt, window.small_mean_rtt) = (rtt, rtt);
        window
    };
    let mut algorithm = BandwidthDelay::default().probe_every(0);
    let dim = busy(2 * MIB);
    for _ in 0..10 {
        algorithm.update(&kib_window(Duration::from_millis(5)), &dim);
    }
    // (Less the transfer time of a request at the measured bandwidth.)
    let base = algorithm.base_delay().unwrap();
    assert!(base < 0.005, "{base}");
    let mut algorithm = algorithm.delay_windows(1);
    algorithm.update(&kib_window(Duration::from_millis(50)), &dim);
    let base = algorithm.base_delay().unwrap();
    assert!(
        base > 0.045,
        "the base delay {base} s, after one window of 50 ms with a span of 1"
    );
}
