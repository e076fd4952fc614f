//! The `metrics` exporter, read back through a small in-memory recorder
//! installed for the calling thread only.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};
use multisem::MultiSemaphore;
use multisem::adaptive::{Aimd, Controller, Outcome};
use multisem::metrics::Exporter;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// Every value recorded, by `name{label=value,...}`, and every description
/// given, by name.
#[derive(Default, Clone)]
struct Memory(
    Arc<Mutex<BTreeMap<String, Vec<f64>>>>,
    Arc<Mutex<BTreeMap<String, Option<Unit>>>>,
);

/// One metric's cell in [`Memory`].
struct Cell(Memory, String);

impl Cell {
    fn update(&self, f: impl FnOnce(&mut Vec<f64>)) {
        f(self.0.0.lock().unwrap().entry(self.1.clone()).or_default());
    }
}

impl CounterFn for Cell {
    fn increment(&self, value: u64) {
        self.update(|v| v.push(v.last().copied().unwrap_or(0.0) + value as f64));
    }
    fn absolute(&self, value: u64) {
        self.update(|v| v.push(value as f64));
    }
}

impl GaugeFn for Cell {
    fn increment(&self, value: f64) {
        self.update(|v| v.push(v.last().copied().unwrap_or(0.0) + value));
    }
    fn decrement(&self, value: f64) {
        self.update(|v| v.push(v.last().copied().unwrap_or(0.0) - value));
    }
    fn set(&self, value: f64) {
        self.update(|v| v.push(value));
    }
}

impl HistogramFn for Cell {
    fn record(&self, value: f64) {
        self.update(|v| v.push(value));
    }
}

impl Memory {
    fn cell(&self, key: &Key) -> Arc<Cell> {
        let labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        // A recorder that fails, for the tests of `record_every`.
        assert!(
            !labels.iter().any(|l| l == "semaphore=panics"),
            "the recorder panics"
        );
        Arc::new(Cell(
            self.clone(),
            format!("{}{{{}}}", key.name(), labels.join(",")),
        ))
    }

    /// The latest value of `key`.
    fn last(&self, key: &str) -> f64 {
        let map = self.0.lock().unwrap();
        *map.get(key)
            .and_then(|v| v.last())
            .unwrap_or_else(|| panic!("{key} not recorded; have {:?}", map.keys()))
    }

    fn all(&self, key: &str) -> Vec<f64> {
        self.0.lock().unwrap().get(key).cloned().unwrap_or_default()
    }
}

impl Memory {
    fn describe(&self, key: KeyName, unit: Option<Unit>, help: SharedString) {
        assert!(
            !help.is_empty(),
            "{} described without a text",
            key.as_str()
        );
        self.1.lock().unwrap().insert(key.as_str().to_owned(), unit);
    }

    /// The names of the metrics recorded (without their labels).
    fn names(&self) -> std::collections::BTreeSet<String> {
        let map = self.0.lock().unwrap();
        map.keys()
            .map(|key| key.split('{').next().unwrap().to_owned())
            .collect()
    }

    /// The names described, with their units.
    fn described(&self) -> BTreeMap<String, Option<Unit>> {
        self.1.lock().unwrap().clone()
    }
}

impl Recorder for Memory {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, help: SharedString) {
        self.describe(key, unit, help);
    }
    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, help: SharedString) {
        self.describe(key, unit, help);
    }
    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, help: SharedString) {
        self.describe(key, unit, help);
    }
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.cell(key))
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(self.cell(key))
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(self.cell(key))
    }
}

#[test]
fn record_publishes_gauges_and_counters_per_dimension() {
    let memory = Memory::default();
    let sem = Arc::new(MultiSemaphore::new([10, 1000]));
    let exporter = Exporter::new(Arc::clone(&sem), "producer", ["messages", "bytes"]);
    let held = sem.try_acquire([2, 300]).unwrap();
    sem.try_acquire([1, 800]).unwrap_err();
    sem.try_acquire([9, 1]).unwrap_err();
    sem.try_acquire([9, 1]).unwrap_err();
    metrics::with_local_recorder(&memory, || {
        exporter.describe();
        exporter.record();
    });
    let dim = |name: &str, d: &str| format!("{name}{{semaphore=producer,dimension={d}}}");
    assert_eq!(memory.last(&dim("multisem_capacity", "messages")), 10.0);
    assert_eq!(memory.last(&dim("multisem_capacity", "bytes")), 1000.0);
    assert_eq!(memory.last(&dim("multisem_in_flight", "messages")), 2.0);
    assert_eq!(memory.last(&dim("multisem_in_flight", "bytes")), 300.0);
    assert_eq!(memory.last(&dim("multisem_available", "bytes")), 700.0);
    assert_eq!(memory.last(&dim("multisem_peak_in_flight", "bytes")), 300.0);
    assert_eq!(memory.last(&dim("multisem_refused_total", "messages")), 2.0);
    assert_eq!(memory.last(&dim("multisem_refused_total", "bytes")), 1.0);
    assert_eq!(
        memory.last("multisem_acquired_total{semaphore=producer}"),
        1.0
    );
    assert_eq!(memory.last("multisem_waiters{semaphore=producer}"), 0.0);
    assert!(
        memory
            .all("multisem_waiters_blocked_behind_head{semaphore=producer}")
            .is_empty(),
        "the queue's walk is published only on request"
    );
    assert_eq!(
        memory.last(&dim("multisem_timed_out_total", "messages")),
        0.0
    );
    assert_eq!(memory.last(&dim("multisem_exceeded_total", "bytes")), 0.0);

    // A second record brings everything up to date.
    drop(held);
    sem.try_acquire([1, 2000]).unwrap_err();
    let hog = sem.try_acquire([10, 0]).unwrap();
    let past = std::time::Duration::ZERO;
    assert!(
        sem.acquire_blocking_timeout([1, 0], past)
            .unwrap_err()
            .is_timeout()
    );
    drop(hog);
    sem.close();
    sem.try_acquire([1, 1]).unwrap_err();
    metrics::with_local_recorder(&memory, || exporter.record());
    assert_eq!(memory.last(&dim("multisem_in_flight", "bytes")), 0.0);
    assert_eq!(memory.last(&dim("multisem_available", "messages")), 10.0);
    assert_eq!(memory.last(&dim("multisem_exceeded_total", "bytes")), 1.0);
    assert_eq!(memory.last(&dim("multisem_refused_total", "bytes")), 2.0);
    assert_eq!(
        memory.last(&dim("multisem_timed_out_total", "messages")),
        1.0
    );
    assert_eq!(memory.last(&dim("multisem_waited_total", "messages")), 1.0);
    assert_eq!(
        memory.last("multisem_acquired_total{semaphore=producer}"),
        2.0
    );
    assert_eq!(
        memory.last("multisem_closed_out_total{semaphore=producer}"),
        1.0
    );
}

/// `Exporter::named` labels the dimensions as the semaphore names them, or by
/// index where it has no names.
#[test]
fn named_takes_the_dimension_labels_from_the_semaphore() {
    let named = Arc::new(
        MultiSemaphore::builder([10, 1000])
            .names(&["messages", "bytes"])
            .build(),
    );
    let unnamed = Arc::new(MultiSemaphore::new([3, 30]));
    let _held = (
        named.try_acquire([2, 300]).unwrap(),
        unnamed.try_acquire([1, 7]).unwrap(),
    );
    let memory = Memory::default();
    metrics::with_local_recorder(&memory, || {
        Exporter::named(Arc::clone(&named), "producer").record();
        Exporter::named(Arc::clone(&unnamed), "plain").record();
    });
    let key = |sem: &str, d: &str| format!("multisem_in_flight{{semaphore={sem},dimension={d}}}");
    assert_eq!(memory.last(&key("producer", "messages")), 2.0);
    assert_eq!(memory.last(&key("producer", "bytes")), 300.0);
    assert_eq!(memory.last(&key("plain", "0")), 1.0);
    assert_eq!(memory.last(&key("plain", "1")), 7.0);
    let debug = format!("{:?}", Exporter::named(Arc::clone(&named), "producer"));
    assert!(debug.contains(r#"["messages", "bytes"]"#), "{debug}");
}

/// Peaks are published only where they are kept (`track_peaks`, on by
/// default): an untracked semaphore's zeros would say nothing was ever held.
#[test]
fn peaks_are_published_only_where_tracked() {
    for tracked in [false, true] {
        for layout in [[10, 1000], [10, u64::MAX >> 8]] {
            let memory = Memory::default();
            let sem = Arc::new(MultiSemaphore::builder(layout).track_peaks(tracked).build());
            drop(sem.try_acquire([2, 300]).unwrap());
            let stats = sem.stats();
            assert_eq!(stats.peaks_tracked, tracked);
            assert_eq!(
                stats.peak_in_flight,
                if tracked { [2, 300] } else { [0, 0] }
            );
            assert_eq!(
                format!("{stats:?}").contains("peak_in_flight"),
                tracked,
                "{stats:?}"
            );
            let exporter = Exporter::new(Arc::clone(&sem), "producer", ["messages", "bytes"]);
            metrics::with_local_recorder(&memory, || exporter.record());
            assert_eq!(
                memory.names().contains("multisem_peak_in_flight"),
                tracked,
                "{:?}",
                memory.names()
            );
            if tracked {
                let key = "multisem_peak_in_flight{semaphore=producer,dimension=bytes}";
                assert_eq!(memory.last(key), 300.0);
            }
        }
    }
}

/// The amounts granted are published only where they are kept: an untracked
/// semaphore's zeros would draw a flat line that says nothing.
#[test]
fn amounts_granted_are_published_only_where_tracked() {
    for tracked in [false, true] {
        let memory = Memory::default();
        let sem = Arc::new(
            MultiSemaphore::builder([10, 1000])
                .track_amounts(tracked)
                .build(),
        );
        drop(sem.try_acquire([2, 300]).unwrap());
        let stats = sem.stats();
        assert_eq!(stats.amounts_tracked, tracked);
        assert_eq!(
            format!("{stats:?}").contains("acquired_amounts"),
            tracked,
            "{stats:?}"
        );
        let exporter = Exporter::new(Arc::clone(&sem), "producer", ["messages", "bytes"]);
        metrics::with_local_recorder(&memory, || exporter.record());
        let key = "multisem_acquired_amount_total{semaphore=producer,dimension=bytes}";
        assert_eq!(
            memory.names().contains("multisem_acquired_amount_total"),
            tracked,
            "{:?}",
            memory.names()
        );
        if tracked {
            assert_eq!(memory.last(key), 300.0);
        }
    }
}

/// A shrink below what is in flight: capacity is the new one, in flight what
/// permits hold, available 0 until returns bring in flight below capacity
/// (megaeth-labs/stateless-validator#188's misreport).
#[test]
fn gauges_after_a_shrink_below_what_is_in_flight() {
    let memory = Memory::default();
    let sem = Arc::new(MultiSemaphore::new([10, 1000]));
    let exporter = Exporter::new(Arc::clone(&sem), "s", ["messages", "bytes"]);
    let mut held = sem.try_acquire_owned([6, 800]).unwrap();
    sem.set_capacity([4, 500]).unwrap();
    metrics::with_local_recorder(&memory, || exporter.record());
    let dim = |name: &str, d: &str| format!("{name}{{semaphore=s,dimension={d}}}");
    assert_eq!(memory.last(&dim("multisem_capacity", "messages")), 4.0);
    assert_eq!(memory.last(&dim("multisem_capacity", "bytes")), 500.0);
    assert_eq!(memory.last(&dim("multisem_in_flight", "messages")), 6.0);
    assert_eq!(memory.last(&dim("multisem_in_flight", "bytes")), 800.0);
    assert_eq!(memory.last(&dim("multisem_available", "messages")), 0.0);
    assert_eq!(memory.last(&dim("multisem_available", "bytes")), 0.0);
    assert_eq!(memory.last(&dim("multisem_peak_in_flight", "bytes")), 800.0);
    // Part of it back: still above the new capacity.
    let a = held.split([3, 400]).unwrap();
    drop(a);
    let b = held;
    metrics::with_local_recorder(&memory, || exporter.record());
    assert_eq!(memory.last(&dim("multisem_in_flight", "messages")), 3.0);
    assert_eq!(memory.last(&dim("multisem_in_flight", "bytes")), 400.0);
    assert_eq!(memory.last(&dim("multisem_available", "messages")), 1.0);
    assert_eq!(memory.last(&dim("multisem_available", "bytes")), 100.0);
    drop(b);
    sem.set_capacity([20, 2000]).unwrap();
    metrics::with_local_recorder(&memory, || exporter.record());
    assert_eq!(memory.last(&dim("multisem_in_flight", "messages")), 0.0);
    assert_eq!(memory.last(&dim("multisem_available", "bytes")), 2000.0);
    assert_eq!(memory.last(&dim("multisem_capacity", "bytes")), 2000.0);
}

#[test]
fn record_counts_clamped_grants() {
    let memory = Memory::default();
    let sem = Arc::new(
        MultiSemaphore::builder([10, 1000])
            .clamp_oversized(true)
            .build(),
    );
    let exporter = Exporter::new(Arc::clone(&sem), "producer", ["messages", "bytes"]);
    let big = sem.try_acquire([1, 5000]).unwrap();
    assert_eq!(big.amounts(), [1, 1000]);
    assert!(sem.try_acquire([1, 10]).unwrap_err().is_insufficient());
    metrics::with_local_recorder(&memory, || exporter.record());
    assert_eq!(
        memory.last("multisem_clamped_total{semaphore=producer}"),
        1.0
    );
    assert_eq!(
        memory.last("multisem_in_flight{semaphore=producer,dimension=bytes}"),
        1000.0
    );
}

/// How each wait ended is published: one wait admitted, one closed out
/// and one failed by a shrink, with the waits they add up to.
#[test]
fn record_publishes_how_each_wait_ended() {
    let memory = Memory::default();
    let sem = Arc::new(MultiSemaphore::new([4, 1000]));
    let exporter = Exporter::new(Arc::clone(&sem), "producer", ["messages", "bytes"]);
    let mut cx = Context::from_waker(Waker::noop());
    let held = sem.try_acquire([4, 0]).unwrap();
    let mut admitted = pin!(sem.acquire([1, 0]));
    let mut outgrown = pin!(sem.acquire([4, 0]));
    let mut closed = pin!(sem.acquire([1, 0]));
    for fut in [admitted.as_mut(), outgrown.as_mut(), closed.as_mut()] {
        assert!(fut.poll(&mut cx).is_pending());
    }
    drop(held);
    let Poll::Ready(Ok(permit)) = admitted.as_mut().poll(&mut cx) else {
        panic!("admitted once the permits came back");
    };
    let _permit = permit;
    // Below what `outgrown` asks; and `closed`, behind it, still waits for
    // the count `admitted` holds.
    sem.set_capacity([1, 1000]).unwrap();
    assert!(
        matches!(outgrown.as_mut().poll(&mut cx), Poll::Ready(Err(e)) if e.is_exceeds_capacity())
    );
    sem.close();
    assert!(matches!(closed.as_mut().poll(&mut cx), Poll::Ready(Err(e)) if e.is_closed()));
    metrics::with_local_recorder(&memory, || exporter.record());
    let total = |name: &str| memory.last(&format!("{name}{{semaphore=producer}}"));
    assert_eq!(total("multisem_acquired_after_wait_total"), 1.0);
    assert_eq!(total("multisem_exceeded_while_waiting_total"), 1.0);
    assert_eq!(total("multisem_closed_out_while_waiting_total"), 1.0);
    assert_eq!(
        memory.last("multisem_waited_total{semaphore=producer,dimension=messages}"),
        3.0
    );
}

#[cfg(feature = "tower")]
#[tokio::test]
async fn the_layer_records_wait_times_by_outcome() {
    use multisem::tower::AdmitLayer;
    use std::time::Duration;
    use tower::{Layer, Service, ServiceExt, service_fn};

    let memory = Memory::default();
    let _guard = metrics::set_default_local_recorder(&memory);
    let sem = Arc::new(MultiSemaphore::new([1]));
    let exporter = Exporter::new(Arc::clone(&sem), "gateway", ["requests"]);
    let mut svc = AdmitLayer::new(Arc::clone(&sem), |_: &()| [1])
        .wait_timeout(Duration::from_millis(20), tokio::time::sleep)
        .on_wait(exporter.wait_observer())
        .layer(service_fn(|()| async {
            Ok::<_, std::convert::Infallible>(())
        }));

    // Admitted at once: not observed.
    svc.ready().await.unwrap().call(()).await.unwrap();
    // Waits its whole timeout.
    let held = sem.try_acquire([1]).unwrap();
    svc.ready().await.unwrap().call(()).await.unwrap_err();
    // Waits until the holder leaves.
    let waiting = tokio::spawn(svc.ready().await.unwrap().call(()));
    tokio::time::sleep(Duration::from_millis(5)).await;
    drop(held);
    tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .unwrap()
        .unwrap()
        .unwrap();

    let timed_out = memory.all("multisem_wait_seconds{semaphore=gateway,outcome=timed_out}");
    assert_eq!(timed_out.len(), 1);
    assert!(timed_out[0] >= 0.020, "{timed_out:?}");
    // The current-thread runtime runs the spawned task on this thread, so
    // its wait is recorded through the same local recorder.
    let admitted = memory.all("multisem_wait_seconds{semaphore=gateway,outcome=admitted}");
    assert_eq!(
        admitted.len(),
        1,
        "only the request that waited is observed"
    );
}

/// A controller over `sem` that closes a window once it is 100 ms long and
/// holds 4 samples, backing the count off on drops.
fn controller(sem: &Arc<MultiSemaphore<2>>) -> Arc<Controller<2>> {
    Controller::builder(Arc::clone(sem))
        .limit(0, 1..=16, Aimd::default())
        .window(Duration::from_millis(100), 4)
        .build()
}

/// Four requests granted at `start` and answered 10, 20, 30 (a drop) and
/// 110 ms later: one window of 100 ms (from the first answer to the last).
fn answer_one_window(ctl: &Arc<Controller<2>>, start: Instant) {
    let answers = [
        (10, Outcome::delivered(1000)),
        (20, Outcome::delivered(3000)),
        (30, Outcome::Dropped),
        (110, Outcome::delivered(4000)),
    ];
    for (ms, outcome) in answers {
        let permit = ctl.try_acquire_at([1, 1000], start).unwrap();
        permit.complete_at(outcome, start + Duration::from_millis(ms));
    }
}

#[test]
fn record_publishes_what_the_controller_learns() {
    let memory = Memory::default();
    let sem = Arc::new(MultiSemaphore::new([16, 1 << 20]));
    let ctl = controller(&sem);
    let exporter = Exporter::new(Arc::clone(&sem), "producer", ["messages", "bytes"])
        .with_controller(Arc::clone(&ctl));
    let one = |name: &str| format!("{name}{{semaphore=producer}}");

    // No window yet: the counters at zero, no window to describe.
    metrics::with_local_recorder(&memory, || exporter.record());
    assert_eq!(memory.last(&one("multisem_adaptive_windows_total")), 0.0);
    assert_eq!(memory.last(&one("multisem_adaptive_resizes_total")), 0.0);
    assert!(!memory.names().contains("multisem_adaptive_rtt_min_seconds"));

    answer_one_window(&ctl, Instant::now());
    assert_eq!(ctl.windows(), 1);
    metrics::with_local_recorder(&memory, || exporter.record());
    assert_eq!(memory.last(&one("multisem_adaptive_windows_total")), 1.0);
    // A quarter of the answers dropped: Aimd backed the count off, 16 -> 14.
    assert_eq!(memory.last(&one("multisem_adaptive_resizes_total")), 1.0);
    assert_eq!(
        memory.last("multisem_capacity{semaphore=producer,dimension=messages}"),
        14.0
    );
    let close = |name: &str, want: f64| {
        let got = memory.last(&one(name));
        assert!((got - want).abs() < 1e-9, "{name}: {got}, want {want}");
    };
    // Round trips of the three successes: 10, 20 and 110 ms.
    close("multisem_adaptive_rtt_min_seconds", 0.010);
    close("multisem_adaptive_rtt_mean_seconds", 0.140 / 3.0);
    close("multisem_adaptive_rtt_max_seconds", 0.110);
    // Three successes and 8000 bytes in 100 ms.
    close("multisem_adaptive_successes_per_second", 30.0);
    close("multisem_adaptive_delivered_bytes_per_second", 80_000.0);
    close("multisem_adaptive_drop_ratio", 0.25);

    // A window of drops alone (an outage) times no success: the round trips
    // stay as the last window that had one left them, not 0 s.
    let start = Instant::now() + Duration::from_secs(1);
    for ms in [10, 20, 30, 110] {
        let permit = ctl.try_acquire_at([1, 1000], start).unwrap();
        permit.complete_at(Outcome::Dropped, start + Duration::from_millis(ms));
    }
    assert_eq!(ctl.windows(), 2);
    metrics::with_local_recorder(&memory, || exporter.record());
    close("multisem_adaptive_drop_ratio", 1.0);
    close("multisem_adaptive_successes_per_second", 0.0);
    close("multisem_adaptive_rtt_min_seconds", 0.010);
    close("multisem_adaptive_rtt_mean_seconds", 0.140 / 3.0);
    close("multisem_adaptive_rtt_max_seconds", 0.110);
}

/// Describes and records `exporter` through a fresh recorder, checks that
/// every metric it published was described and nothing else, and returns
/// what it published and described.
fn published_as_described(exporter: &Exporter<2>) -> Memory {
    let memory = Memory::default();
    metrics::with_local_recorder(&memory, || {
        exporter.describe();
        exporter.record();
    });
    // The wait-time histogram is recorded by the tower layer, not by record().
    let mut published = memory.names();
    published.insert("multisem_wait_seconds".into());
    let described: std::collections::BTreeSet<_> = memory.described().into_keys().collect();
    assert_eq!(
        described, published,
        "described against published: {exporter:?}"
    );
    memory
}

#[test]
fn every_metric_published_is_described_and_only_those() {
    let sem = Arc::new(
        MultiSemaphore::builder([16, 1 << 20])
            .track_amounts(true)
            .build(),
    );
    let plain = published_as_described(&Exporter::new(
        Arc::clone(&sem),
        "plain",
        ["messages", "bytes"],
    ));
    assert_eq!(
        plain.described()["multisem_wait_seconds"],
        Some(Unit::Seconds)
    );

    let ctl = controller(&sem);
    answer_one_window(&ctl, Instant::now());
    let learning = published_as_described(
        &Exporter::new(Arc::clone(&sem), "learning", ["messages", "bytes"]).with_controller(ctl),
    );
    let added = learning.names().len() - plain.names().len();
    assert_eq!(added, 8, "{:?}", learning.names());
    assert_eq!(
        learning.described()["multisem_adaptive_rtt_mean_seconds"],
        Some(Unit::Seconds)
    );

    let walking = published_as_described(
        &Exporter::new(Arc::clone(&sem), "walking", ["messages", "bytes"])
            .with_waiters_blocked_behind_head(),
    );
    assert_eq!(walking.names().len(), plain.names().len() + 1);
}

/// On request, the exporter publishes how many queued acquirers would fit
/// now but wait behind the oldest.
#[test]
fn record_publishes_waiters_blocked_behind_head_on_request() {
    use std::task::{Context, Waker};

    let sem = Arc::new(MultiSemaphore::new([10, 1000]));
    let exporter = Exporter::new(Arc::clone(&sem), "fifo", ["messages", "bytes"])
        .with_waiters_blocked_behind_head();
    let held = sem.try_acquire([1, 900]).unwrap();
    let mut cx = Context::from_waker(Waker::noop());
    let mut big = Box::pin(sem.acquire([1, 500]));
    let mut small = Box::pin(sem.acquire([1, 50]));
    assert!(big.as_mut().poll(&mut cx).is_pending());
    assert!(small.as_mut().poll(&mut cx).is_pending());
    let memory = Memory::default();
    metrics::with_local_recorder(&memory, || exporter.record());
    assert_eq!(
        memory.last("multisem_waiters_blocked_behind_head{semaphore=fifo}"),
        1.0
    );
    drop((big, small, held));
}

#[test]
fn a_window_too_short_for_the_clock_publishes_no_rates() {
    // Every answer at the grant's instant: a window of zero length, whose
    // rates are 0 (as `Window::delivery_rate` says), not NaN.
    let memory = Memory::default();
    let sem = Arc::new(MultiSemaphore::new([16, 1 << 20]));
    let ctl = Controller::builder(Arc::clone(&sem))
        .limit(0, 1..=16, Aimd::default())
        .window(Duration::ZERO, 1)
        .build();
    let now = Instant::now();
    let permit = ctl.try_acquire_at([1, 1000], now).unwrap();
    permit.complete_at(Outcome::delivered(1000), now);
    let exporter = Exporter::new(sem, "instant", ["messages", "bytes"]).with_controller(ctl);
    metrics::with_local_recorder(&memory, || exporter.record());
    for rate in ["successes", "delivered_bytes"] {
        let key = format!("multisem_adaptive_{rate}_per_second{{semaphore=instant}}");
        assert_eq!(memory.last(&key), 0.0, "{key}");
    }
    assert_eq!(
        memory.last("multisem_adaptive_windows_total{semaphore=instant}"),
        1.0
    );
}

#[test]
#[should_panic(expected = "the controller resizes another semaphore than the exporter's")]
fn an_exporter_refuses_another_semaphore_s_controller() {
    let sem = Arc::new(MultiSemaphore::new([16, 1 << 20]));
    let other = Arc::new(MultiSemaphore::new([16, 1 << 20]));
    let _ =
        Exporter::new(sem, "producer", ["messages", "bytes"]).with_controller(controller(&other));
}

/// The wait observer records each way a wait ends under its own label.
#[cfg(feature = "tower")]
#[test]
fn the_wait_observer_labels_every_end() {
    use multisem::tower::Waited;

    let memory = Memory::default();
    let sem = Arc::new(MultiSemaphore::new([4, 1000]));
    let exporter = Exporter::new(Arc::clone(&sem), "s", ["requests", "bytes"]);
    let observe = exporter.wait_observer();
    metrics::with_local_recorder(&memory, || {
        observe(Duration::from_millis(1), Waited::Admitted);
        observe(Duration::from_millis(2), Waited::TimedOut);
        observe(Duration::from_millis(3), Waited::Closed);
        observe(Duration::from_millis(4), Waited::TooLarge);
    });
    for (outcome, seconds) in [
        ("admitted", 0.001),
        ("timed_out", 0.002),
        ("closed", 0.003),
        ("too_large", 0.004),
    ] {
        let key = format!("multisem_wait_seconds{{semaphore=s,outcome={outcome}}}");
        assert_eq!(memory.last(&key), seconds, "{key}");
    }
}

/// The exporter's `Debug` says what it exports.
#[test]
fn an_exporter_debugs_what_it_exports() {
    let sem = Arc::new(MultiSemaphore::new([4, 1000]));
    let exporter = Exporter::new(sem, "s", ["requests", "bytes"]);
    let shown = format!("{exporter:?}");
    assert!(
        shown.contains(r#"name: "s", dimensions: ["requests", "bytes"], controller: false"#),
        "{shown}"
    );
}

/// The process's global recorder, installed by the first test that needs
/// it: `record_every`'s thread records there. The other tests record to
/// recorders local to their thread, which take precedence on it.
fn global() -> &'static Memory {
    static GLOBAL: std::sync::OnceLock<Memory> = std::sync::OnceLock::new();
    GLOBAL.get_or_init(|| {
        let memory = Memory::default();
        metrics::set_global_recorder(memory.clone()).expect("no other global recorder");
        memory
    })
}

/// Waits, 5 s at most, until `key` has been recorded at least `records`
/// times in the global recorder.
fn wait_for_records(key: &str, records: usize) {
    let until = Instant::now() + Duration::from_secs(5);
    while global().all(key).len() < records {
        assert!(
            Instant::now() < until,
            "{key}: fewer than {records} records in 5 s"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// `record_every` records at once, then on every tick, on its own thread,
/// and once more when stopped: with an interval of an hour, the state as
/// of the stop is published only by that last record.
#[test]
fn record_every_records_on_its_thread_and_once_more_when_stopped() {
    let key = "multisem_in_flight{semaphore=ticking,dimension=bytes}";
    let sem = Arc::new(
        MultiSemaphore::builder([10, 1000])
            .names(&["messages", "bytes"])
            .build(),
    );
    let recording =
        Exporter::named(Arc::clone(&sem), "ticking").record_every(Duration::from_millis(2));
    wait_for_records(key, 1);
    assert!(!recording.is_finished());
    assert_eq!(
        format!("{recording:?}"),
        r#"Recording { thread: Some(Some("msem-ticking")), .. }"#,
        "Debug names the thread"
    );
    let held = sem.try_acquire([1, 100]).unwrap();
    let before = global().all(key).len();
    wait_for_records(key, before + 2);
    assert_eq!(global().last(key), 100.0, "a tick published the permit");
    let exporter = recording.stop();
    drop(held);

    let stopped = global().all(key).len();
    let hourly = exporter.record_every(Duration::from_secs(3600));
    wait_for_records(key, stopped + 1);
    let held = sem.try_acquire([1, 300]).unwrap();
    let records = global().all(key).len();
    let exporter = hourly.stop();
    assert_eq!(
        global().all(key).len(),
        records + 1,
        "one record at the stop"
    );
    assert_eq!(
        global().last(key),
        300.0,
        "the stop's record has the last state"
    );
    drop(held);
    exporter.record();
    assert_eq!(
        global().last(key),
        0.0,
        "the exporter given back still records"
    );
}

/// Dropping a `Recording` stops its thread: no record comes after the
/// drop has returned.
#[test]
fn dropping_a_recording_stops_its_thread() {
    let key = "multisem_waiters{semaphore=dropped}";
    let sem = Arc::new(MultiSemaphore::new([1]));
    let recording = Exporter::new(sem, "dropped", ["jobs"]).record_every(Duration::from_millis(1));
    wait_for_records(key, 3);
    drop(recording);
    let records = global().all(key).len();
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(global().all(key).len(), records, "recorded after the drop");
}

/// An interval past the clock's range records at the start and at the
/// stop, and nothing in between; one of zero is refused.
#[test]
fn record_every_takes_any_interval_but_zero() {
    let key = "multisem_waiters{semaphore=forever}";
    let sem = Arc::new(MultiSemaphore::new([1]));
    let recording = Exporter::new(sem, "forever", ["jobs"]).record_every(Duration::MAX);
    wait_for_records(key, 1);
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(global().all(key).len(), 1);
    drop(recording.stop());
    assert_eq!(global().all(key).len(), 2);

    let zero = std::panic::catch_unwind(|| {
        let sem = Arc::new(MultiSemaphore::new([1]));
        Exporter::new(sem, "zero", ["jobs"]).record_every(Duration::ZERO)
    });
    let message = zero.expect_err("a zero interval is refused");
    let message = message.downcast_ref::<&str>().copied().unwrap_or_default();
    assert!(message.contains("interval of zero"), "{message}");
}

/// A recorder that panics on the thread ends it: `stop` resumes the panic
/// on the caller's thread, and a drop swallows it (a drop must not unwind).
#[test]
fn a_recorder_s_panic_on_the_thread_reaches_stop_not_drop() {
    global();
    let recording = || {
        let sem = Arc::new(MultiSemaphore::new([1]));
        Exporter::new(sem, "panics", ["jobs"]).record_every(Duration::from_millis(1))
    };
    let failed = recording();
    let until = Instant::now() + Duration::from_secs(5);
    while !failed.is_finished() {
        assert!(Instant::now() < until, "the panic ended the thread");
        std::thread::sleep(Duration::from_millis(1));
    }
    drop(failed); // does not panic
    let stopped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| recording().stop()));
    let panic = stopped.expect_err("the panic is resumed by stop");
    let message = panic.downcast_ref::<&str>().copied().unwrap_or_default();
    assert!(message.contains("the recorder panics"), "{message}");
    drop(recording()); // does not panic
}

/// Each counter of the module's table carries its own figure, per
/// dimension where it has one: a scenario where those figures all differ
/// from one another.
#[test]
fn every_counter_carries_its_own_figure_in_its_own_dimension() {
    let memory = Memory::default();
    let sem = Arc::new(MultiSemaphore::new([4, 1000]));
    let exporter = Exporter::new(Arc::clone(&sem), "s", ["messages", "bytes"]);
    let mut cx = Context::from_waker(Waker::noop());
    let held = sem.try_acquire([0, 1000]).unwrap();
    // Too large in messages, twice.
    for _ in 0..2 {
        assert!(sem.try_acquire([5, 0]).unwrap_err().is_exceeds_capacity());
    }
    // Timed out, held back by the bytes.
    assert!(
        sem.acquire_blocking_timeout([1, 10], Duration::from_millis(1))
            .unwrap_err()
            .is_timeout()
    );
    // Queued, then dropped: cancelled, twice.
    for _ in 0..2 {
        let mut gone = pin!(sem.acquire([1, 10]));
        assert!(gone.as_mut().poll(&mut cx).is_pending());
    }
    // Queued, then failed by a shrink.
    let mut outgrown = pin!(sem.acquire([3, 10]));
    assert!(outgrown.as_mut().poll(&mut cx).is_pending());
    sem.set_capacity([2, 1000]).unwrap();
    assert!(
        matches!(outgrown.as_mut().poll(&mut cx), Poll::Ready(Err(e)) if e.is_exceeds_capacity())
    );
    // Queued, then closed out; and one refused by the closed semaphore.
    let mut closed = pin!(sem.acquire([1, 10]));
    assert!(closed.as_mut().poll(&mut cx).is_pending());
    sem.close();
    assert!(matches!(closed.as_mut().poll(&mut cx), Poll::Ready(Err(e)) if e.is_closed()));
    assert!(sem.try_acquire([1, 0]).unwrap_err().is_closed());
    drop(held);

    let stats = sem.stats();
    // The scenario tells the figures apart.
    assert_ne!(stats.timed_out_by[0], stats.timed_out_by[1]);
    assert_ne!(stats.waited[0], stats.waited[1]);
    assert_ne!(stats.exceeded[0], stats.exceeded[1]);
    assert_ne!(stats.closed_out, stats.closed_out_while_waiting);
    assert_ne!(
        stats.exceeded_while_waiting,
        stats.exceeded.iter().sum::<u64>()
    );
    assert_ne!(stats.cancelled, stats.timed_out);
    metrics::with_local_recorder(&memory, || exporter.record());
    for (d, name) in ["messages", "bytes"].into_iter().enumerate() {
        let dim = |metric: &str| memory.last(&format!("{metric}{{semaphore=s,dimension={name}}}"));
        for (metric, figure) in [
            ("multisem_timed_out_total", stats.timed_out_by[d]),
            ("multisem_waited_total", stats.waited[d]),
            ("multisem_exceeded_total", stats.exceeded[d]),
            ("multisem_refused_total", stats.refused[d]),
        ] {
            assert_eq!(dim(metric), figure as f64, "{metric}, {name}");
        }
    }
    let one = |metric: &str| memory.last(&format!("{metric}{{semaphore=s}}"));
    assert_eq!(one("multisem_cancelled_total"), stats.cancelled as f64);
    assert_eq!(one("multisem_closed_out_total"), stats.closed_out as f64);
    assert_eq!(
        one("multisem_closed_out_while_waiting_total"),
        stats.closed_out_while_waiting as f64
    );
    assert_eq!(
        one("multisem_exceeded_while_waiting_total"),
        stats.exceeded_while_waiting as f64
    );
    assert_eq!(one("multisem_acquired_total"), stats.acquired as f64);

    // Clamped grants are not all grants.
    let clamping = Arc::new(
        MultiSemaphore::builder([4, 1000])
            .clamp_oversized(true)
            .build(),
    );
    let exporter = Exporter::new(Arc::clone(&clamping), "c", ["messages", "bytes"]);
    drop(clamping.try_acquire([1, 10]).unwrap());
    drop(clamping.try_acquire([1, 5000]).unwrap());
    metrics::with_local_recorder(&memory, || exporter.record());
    assert_eq!(memory.last("multisem_acquired_total{semaphore=c}"), 2.0);
    assert_eq!(memory.last("multisem_clamped_total{semaphore=c}"), 1.0);

    // Windows closed are not resizes made: successes at the top of the
    // bounds close windows and resize nothing.
    let learning = Arc::new(MultiSemaphore::new([16, 1 << 20]));
    let ctl = Controller::builder(Arc::clone(&learning))
        .limit(0, 1..=16, Aimd::default())
        .window(Duration::ZERO, 1)
        .build();
    let exporter = Exporter::new(Arc::clone(&learning), "a", ["messages", "bytes"])
        .with_controller(Arc::clone(&ctl));
    for _ in 0..3 {
        ctl.try_acquire([1, 10])
            .unwrap()
            .complete(Outcome::success());
    }
    ctl.try_acquire([1, 10]).unwrap().complete(Outcome::Dropped);
    assert_ne!(
        ctl.windows(),
        ctl.resizes(),
        "the scenario tells them apart"
    );
    metrics::with_local_recorder(&memory, || exporter.record());
    assert_eq!(
        memory.last("multisem_adaptive_windows_total{semaphore=a}"),
        ctl.windows() as f64
    );
    assert_eq!(
        memory.last("multisem_adaptive_resizes_total{semaphore=a}"),
        ctl.resizes() as f64
    );
}
