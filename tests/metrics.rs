//! The `metrics` exporter, read back through a small in-memory recorder
//! installed for the calling thread only.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};
use multisem::MultiSemaphore;
use multisem::metrics::Exporter;

/// Every value recorded, by `name{label=value,...}`.
#[derive(Default, Clone)]
struct Memory(Arc<Mutex<BTreeMap<String, Vec<f64>>>>);

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

    #[cfg(feature = "tower")]
    fn all(&self, key: &str) -> Vec<f64> {
        self.0.lock().unwrap().get(key).cloned().unwrap_or_default()
    }
}

impl Recorder for Memory {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
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
