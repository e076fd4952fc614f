//! Gauges, counters and a wait-time histogram on the
//! [`metrics`](https://docs.rs/metrics) facade (feature `metrics`).
//!
//! An [`Exporter`] reads a semaphore's snapshot ([`available`],
//! [`capacity`], [`waiters`], [`stats`]) and publishes it to whatever
//! recorder the application installed (Prometheus, StatsD, ...). Call
//! [`record`](Exporter::record) periodically, for example once a second
//! from a timer task, or just before each scrape; or let
//! [`record_every`](Exporter::record_every) call it on a thread of its own.
//!
//! **Zero cost on the fast path.** Nothing here runs inside
//! `try_acquire`, an acquire or a permit's drop: the semaphore keeps the
//! counters it always keeps, and the exporter reads them when asked. The
//! `try_acquire` bench compiles to the same machine code with the feature
//! on and off, and measures the same within its noise (README,
//! "Metrics"). The one metric recorded as it happens, the
//! wait-time histogram, is recorded by the tower layer on the wait path
//! only ([`Exporter::wait_observer`], with the `tower` feature).
//!
//! Without the facade, [`stats`] gives the same numbers.
//!
//! | metric | kind | labels | meaning |
//! |---|---|---|---|
//! | `multisem_capacity` | gauge | `semaphore`, `dimension` | [`capacity`] |
//! | `multisem_in_flight` | gauge | `semaphore`, `dimension` | [`in_flight`]: held by live permits |
//! | `multisem_available` | gauge | `semaphore`, `dimension` | [`available`] |
//! | `multisem_peak_in_flight` | gauge | `semaphore`, `dimension` | most ever held at once (only with [`track_peaks`](crate::Builder::track_peaks), the default: without, it is not published) |
//! | `multisem_waiters` | gauge | `semaphore` | [`waiters`]: queued acquirers |
//! | `multisem_waiters_blocked_behind_head` | gauge | `semaphore` | [`waiters_blocked_behind_head`]: queued acquirers that would fit now but wait behind the oldest (head-of-line blocking); only with [`with_waiters_blocked_behind_head`](Exporter::with_waiters_blocked_behind_head) |
//! | `multisem_acquired_total` | counter | `semaphore` | successful acquires |
//! | `multisem_acquired_amount_total` | counter | `semaphore`, `dimension` | what they were granted (only with [`track_amounts`](crate::Builder::track_amounts): without, it is not published) |
//! | `multisem_refused_total` | counter | `semaphore`, `dimension` | `try_acquire` refusals by the short dimension (the tower layer's refusals in shed mode included; in wait mode it refuses none); a request refused only because others are queued counts under the dimension the oldest of them lacks, which may be one it does not ask for (the layer's [`Shed`](crate::tower::Shed) names the request's own first dimension instead) |
//! | `multisem_waited_total` | counter | `semaphore`, `dimension` | waiting acquires that could not be granted at once (a timed one whose deadline had already passed included, which never queued), by the dimension that held them back |
//! | `multisem_exceeded_total` | counter | `semaphore`, `dimension` | requests above a dimension's capacity |
//! | `multisem_timed_out_total` | counter | `semaphore`, `dimension` | timed-out acquires (the tower layer's wait timeouts included), by the dimension that held them back |
//! | `multisem_cancelled_total` | counter | `semaphore` | async acquires dropped while queued (a client that went away) |
//! | `multisem_closed_out_total` | counter | `semaphore` | acquires refused or woken by `close` |
//! | `multisem_acquired_after_wait_total` | counter | `semaphore` | waits that ended with a permit |
//! | `multisem_closed_out_while_waiting_total` | counter | `semaphore` | waits that `close` ended |
//! | `multisem_exceeded_while_waiting_total` | counter | `semaphore` | waits that a shrink ended |
//! | `multisem_clamped_total` | counter | `semaphore` | requests above a capacity granted that capacity (with [`clamp_oversized`](crate::Builder::clamp_oversized)) |
//! | `multisem_wait_seconds` | histogram | `semaphore`, `outcome` | how long each request the tower layer queued waited, by how it ended |
//!
//! With an adaptive [`Controller`] ([`with_controller`](Exporter::with_controller)),
//! what it learns too; the limits it sets are `multisem_capacity`. The
//! gauges describe the last window closed (see [`Window`]) and keep its
//! values until the next one closes: `multisem_adaptive_windows_total`
//! tells whether one has. The round-trip gauges keep those of the last
//! window that had a success: one of drops alone (an outage) timed none.
//!
//! | metric | kind | labels | meaning |
//! |---|---|---|---|
//! | `multisem_adaptive_windows_total` | counter | `semaphore` | [windows closed](Controller::windows): the algorithms ran |
//! | `multisem_adaptive_resizes_total` | counter | `semaphore` | [resizes](Controller::resizes) the controller made |
//! | `multisem_adaptive_rtt_min_seconds` | gauge | `semaphore` | the last window's fastest success |
//! | `multisem_adaptive_rtt_mean_seconds` | gauge | `semaphore` | its mean round trip |
//! | `multisem_adaptive_rtt_max_seconds` | gauge | `semaphore` | its slowest success |
//! | `multisem_adaptive_successes_per_second` | gauge | `semaphore` | its [success rate](Window::success_rate) |
//! | `multisem_adaptive_delivered_bytes_per_second` | gauge | `semaphore` | its [delivery rate](Window::delivery_rate) |
//! | `multisem_adaptive_drop_ratio` | gauge | `semaphore` | its [drops](Window::drop_rate) among successes and drops |
//!
//! [`available`]: crate::MultiSemaphore::available
//! [`in_flight`]: crate::MultiSemaphore::in_flight
//! [`capacity`]: crate::MultiSemaphore::capacity
//! [`waiters`]: crate::MultiSemaphore::waiters
//! [`waiters_blocked_behind_head`]: crate::MultiSemaphore::waiters_blocked_behind_head
//! [`stats`]: crate::MultiSemaphore::stats

// The docs link to the `tower` feature's items, which exist only with it;
// without it those links are left unresolved rather than broken.
#![cfg_attr(not(feature = "tower"), allow(rustdoc::broken_intra_doc_links))]

mod recording;

pub use recording::Recording;

use crate::MultiSemaphore;
use crate::adaptive::{Controller, Window};
use metrics::{
    SharedString, Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge,
};
use std::fmt;
use std::sync::Arc;

/// Publishes one semaphore's state to the `metrics` facade, labelled
/// `semaphore = name` and, per dimension, `dimension = ` the name you give it
/// ([`new`](Self::new)) or the semaphore's own ([`named`](Self::named)).
///
/// ```
/// use multisem::MultiSemaphore;
/// use multisem::metrics::Exporter;
/// use std::sync::Arc;
///
/// let sem = Arc::new(MultiSemaphore::new([1024, 100 << 20]));
/// let exporter = Exporter::new(sem.clone(), "producer", ["messages", "bytes"]);
/// exporter.describe(); // once, after the recorder is installed
/// let _held = sem.try_acquire([1, 4096]).unwrap();
/// exporter.record();   // periodically: gauges and counters as of now
/// ```
pub struct Exporter<const N: usize> {
    sem: Arc<MultiSemaphore<N>>,
    name: &'static str,
    /// Borrowed names, or (from [`Exporter::named`] on a semaphore without
    /// names) shared index strings: a label's clone per record is a copy
    /// or a reference count, never an allocation.
    dimensions: [SharedString; N],
    controller: Option<Arc<Controller<N>>>,
    /// Whether `record` publishes `waiters_blocked_behind_head`, a walk of
    /// the queue under the semaphore's lock.
    head_of_line: bool,
}

impl<const N: usize> Exporter<N> {
    /// An exporter for `sem`, labelled `semaphore = name`, naming its
    /// dimensions `dimensions` (for example `["messages", "bytes"]`).
    ///
    /// ```
    /// use multisem::MultiSemaphore;
    /// use multisem::metrics::Exporter;
    /// use std::sync::Arc;
    ///
    /// let exporter = Exporter::new(Arc::new(MultiSemaphore::new([64, 1 << 20])), "gateway", ["requests", "bytes"]);
    /// # let _ = exporter;
    /// ```
    pub fn new(
        sem: Arc<MultiSemaphore<N>>,
        name: &'static str,
        dimensions: [&'static str; N],
    ) -> Self {
        Self {
            sem,
            name,
            dimensions: dimensions.map(SharedString::const_str),
            controller: None,
            head_of_line: false,
        }
    }

    /// An exporter for `sem`, labelled `semaphore = name`, naming each
    /// dimension as the semaphore does ([`Builder::names`](crate::Builder::names)),
    /// so the names are written once. A semaphore built without names has
    /// its dimensions labelled by index: `"0"`, `"1"`, ...
    ///
    /// ```
    /// use multisem::MultiSemaphore;
    /// use multisem::metrics::Exporter;
    /// use std::sync::Arc;
    ///
    /// let sem = Arc::new(
    ///     MultiSemaphore::builder([64, 1 << 20])
    ///         .names(&["requests", "bytes"])
    ///         .build(),
    /// );
    /// let exporter = Exporter::named(sem, "gateway"); // dimension = "requests", "bytes"
    /// # let _ = exporter;
    /// ```
    pub fn named(sem: Arc<MultiSemaphore<N>>, name: &'static str) -> Self {
        let names = sem.names();
        let dimensions = std::array::from_fn(|dim| match names.get(dim) {
            Some(label) => SharedString::const_str(label),
            None => SharedString::from(Arc::<str>::from(dim.to_string())),
        });
        Self {
            sem,
            name,
            dimensions,
            controller: None,
            head_of_line: false,
        }
    }

    /// Publishes what `controller`, which resizes this exporter's
    /// semaphore, learns as well: its windows and resizes, and the last
    /// window's round trips, rates and drops (the module's second table).
    ///
    /// ```
    /// use multisem::MultiSemaphore;
    /// use multisem::adaptive::Controller;
    /// use multisem::metrics::Exporter;
    /// use std::sync::Arc;
    ///
    /// let sem = Arc::new(MultiSemaphore::new([64, 1 << 20]));
    /// let controller = Controller::builder(sem.clone())
    ///     .count_and_bytes(0, 4..=1024, 1, (1 << 20)..=(1 << 30))
    ///     .build();
    /// let exporter = Exporter::new(sem, "producer", ["messages", "bytes"])
    ///     .with_controller(controller);
    /// # let _ = exporter;
    /// ```
    ///
    /// # Panics
    ///
    /// If `controller` resizes another semaphore.
    #[track_caller]
    pub fn with_controller(mut self, controller: Arc<Controller<N>>) -> Self {
        assert!(
            Arc::ptr_eq(controller.semaphore(), &self.sem),
            "Exporter::with_controller: the controller resizes another semaphore than the exporter's"
        );
        self.controller = Some(controller);
        self
    }

    /// Publishes [`waiters_blocked_behind_head`](MultiSemaphore::waiters_blocked_behind_head)
    /// too, as the gauge `multisem_waiters_blocked_behind_head`: how many
    /// queued acquirers would fit now but wait behind the oldest. Off by
    /// default: each record then walks the queue while it holds the
    /// semaphore's lock, which acquires and releases that wait or serve
    /// waiters also take (about 1 ms for 100,000 waiters, measured in
    /// release).
    ///
    /// ```
    /// use multisem::MultiSemaphore;
    /// use multisem::metrics::Exporter;
    /// use std::sync::Arc;
    ///
    /// let sem = Arc::new(MultiSemaphore::new([64, 1 << 20]));
    /// let exporter = Exporter::new(sem, "producer", ["messages", "bytes"])
    ///     .with_waiters_blocked_behind_head();
    /// # let _ = exporter;
    /// ```
    pub fn with_waiters_blocked_behind_head(mut self) -> Self {
        self.head_of_line = true;
        self
    }

    /// Describes every metric (unit and help text) to the installed
    /// recorder; call it once, after installing the recorder.
    ///
    /// ```
    /// use multisem::MultiSemaphore;
    /// use multisem::metrics::Exporter;
    /// use std::sync::Arc;
    ///
    /// Exporter::new(Arc::new(MultiSemaphore::new([8])), "jobs", ["jobs"]).describe();
    /// ```
    pub fn describe(&self) {
        describe_gauge!("multisem_capacity", "Capacity of each dimension.");
        describe_gauge!("multisem_in_flight", "Permits held now, per dimension.");
        describe_gauge!("multisem_available", "Permits free now, per dimension.");
        describe_gauge!(
            "multisem_peak_in_flight",
            "Most permits ever held at once, per dimension."
        );
        describe_gauge!("multisem_waiters", "Acquirers queued now.");
        if self.head_of_line {
            describe_gauge!(
                "multisem_waiters_blocked_behind_head",
                "Queued acquirers that would fit now but wait behind the oldest."
            );
        }
        describe_counter!("multisem_acquired_total", "Successful acquires.");
        describe_counter!(
            "multisem_acquired_amount_total",
            "Permits granted, per dimension (with Builder::track_amounts)."
        );
        describe_counter!(
            "multisem_refused_total",
            "try_acquire refusals, by the dimension that was short."
        );
        describe_counter!(
            "multisem_waited_total",
            "Waiting acquires not granted at once (past-deadline ones included), by the dimension that held them back."
        );
        describe_counter!(
            "multisem_exceeded_total",
            "Requests above a dimension's capacity."
        );
        describe_counter!(
            "multisem_timed_out_total",
            "Acquires that timed out, by the dimension that held them back."
        );
        describe_counter!(
            "multisem_cancelled_total",
            "Async acquires dropped while queued."
        );
        describe_counter!(
            "multisem_closed_out_total",
            "Acquires refused or woken by close()."
        );
        describe_counter!(
            "multisem_acquired_after_wait_total",
            "Waiting acquires that had to queue and then got their permit."
        );
        describe_counter!(
            "multisem_closed_out_while_waiting_total",
            "Waiting acquires that had to queue and then were woken by close()."
        );
        describe_counter!(
            "multisem_exceeded_while_waiting_total",
            "Waiting acquires that had to queue and then were failed by a shrink."
        );
        describe_counter!(
            "multisem_clamped_total",
            "Requests above a capacity granted that capacity."
        );
        describe_histogram!(
            "multisem_wait_seconds",
            Unit::Seconds,
            "How long each request queued by the tower layer waited."
        );
        if self.controller.is_some() {
            describe_adaptive();
        }
    }

    /// Publishes the semaphore's state as of now: sets every gauge, and
    /// brings every counter up to the semaphore's own count (the counters
    /// are kept by the semaphore since its construction, so a missed call
    /// loses nothing).
    ///
    /// ```
    /// use multisem::MultiSemaphore;
    /// use multisem::metrics::Exporter;
    /// use std::{sync::Arc, time::Duration};
    ///
    /// let sem = Arc::new(MultiSemaphore::new([8]));
    /// let exporter = Exporter::new(sem, "jobs", ["jobs"]);
    /// # let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    /// # rt.block_on(async {
    /// let task = tokio::spawn(async move {
    ///     let mut tick = tokio::time::interval(Duration::from_secs(1));
    ///     loop {
    ///         tick.tick().await;
    ///         exporter.record();
    ///     }
    /// });
    /// # task.abort();
    /// # });
    /// ```
    pub fn record(&self) {
        let sem = &*self.sem;
        let (name, dims) = (self.name, &self.dimensions);
        let capacity = sem.capacity();
        let available = sem.available();
        let in_flight = sem.in_flight();
        let stats = sem.stats();
        for (dim, dimension) in dims.iter().enumerate() {
            let labels = [
                ("semaphore", SharedString::const_str(name)),
                ("dimension", dimension.clone()),
            ];
            gauge!("multisem_capacity", &labels).set(capacity[dim] as f64);
            gauge!("multisem_available", &labels).set(available[dim] as f64);
            gauge!("multisem_in_flight", &labels).set(in_flight[dim] as f64);
            if stats.peaks_tracked {
                gauge!("multisem_peak_in_flight", &labels).set(stats.peak_in_flight[dim] as f64);
            }
            if stats.amounts_tracked {
                counter!("multisem_acquired_amount_total", &labels)
                    .absolute(stats.acquired_amounts[dim]);
            }
            counter!("multisem_refused_total", &labels).absolute(stats.refused[dim]);
            counter!("multisem_waited_total", &labels).absolute(stats.waited[dim]);
            counter!("multisem_exceeded_total", &labels).absolute(stats.exceeded[dim]);
            counter!("multisem_timed_out_total", &labels).absolute(stats.timed_out_by[dim]);
        }
        let labels = [("semaphore", name)];
        gauge!("multisem_waiters", &labels).set(sem.waiters() as f64);
        if self.head_of_line {
            gauge!("multisem_waiters_blocked_behind_head", &labels)
                .set(sem.waiters_blocked_behind_head() as f64);
        }
        counter!("multisem_acquired_total", &labels).absolute(stats.acquired);
        counter!("multisem_cancelled_total", &labels).absolute(stats.cancelled);
        counter!("multisem_closed_out_total", &labels).absolute(stats.closed_out);
        counter!("multisem_acquired_after_wait_total", &labels).absolute(stats.acquired_after_wait);
        counter!("multisem_closed_out_while_waiting_total", &labels)
            .absolute(stats.closed_out_while_waiting);
        counter!("multisem_exceeded_while_waiting_total", &labels)
            .absolute(stats.exceeded_while_waiting);
        counter!("multisem_clamped_total", &labels).absolute(stats.clamped);
        if let Some(controller) = &self.controller {
            record_adaptive(name, controller);
        }
    }

    /// A hook for [`AdmitLayer::on_wait`](crate::tower::AdmitLayer::on_wait)
    /// that records how long each queued request waited in the
    /// `multisem_wait_seconds` histogram, labelled `outcome` = `admitted`,
    /// `timed_out`, `closed` or `too_large`. It runs only for requests that
    /// had to wait: admission at once stays free of clocks and calls.
    ///
    /// ```
    /// use multisem::MultiSemaphore;
    /// use multisem::metrics::Exporter;
    /// use multisem::tower::AdmitLayer;
    /// use std::sync::Arc;
    ///
    /// let sem = Arc::new(MultiSemaphore::new([64, 1 << 20]));
    /// let exporter = Exporter::new(sem.clone(), "gateway", ["requests", "bytes"]);
    /// let layer = AdmitLayer::new(sem, |body: &Vec<u8>| [1, body.len() as u64])
    ///     .on_wait(exporter.wait_observer());
    /// # let _ = layer;
    /// ```
    #[cfg(feature = "tower")]
    pub fn wait_observer(
        &self,
    ) -> impl Fn(std::time::Duration, crate::tower::Waited) + Send + Sync + 'static {
        use crate::tower::Waited;
        let name = self.name;
        move |waited, end| {
            let outcome = match end {
                Waited::Admitted => "admitted",
                Waited::TimedOut => "timed_out",
                Waited::Closed => "closed",
                _ => "too_large",
            };
            metrics::histogram!("multisem_wait_seconds", "semaphore" => name, "outcome" => outcome)
                .record(waited.as_secs_f64());
        }
    }

    /// The semaphore this exports.
    ///
    /// ```
    /// use multisem::MultiSemaphore;
    /// use multisem::metrics::Exporter;
    /// use std::sync::Arc;
    ///
    /// let exporter = Exporter::new(Arc::new(MultiSemaphore::new([8])), "jobs", ["jobs"]);
    /// assert_eq!(exporter.semaphore().capacity(), [8]);
    /// ```
    pub fn semaphore(&self) -> &Arc<MultiSemaphore<N>> {
        &self.sem
    }
}

fn describe_adaptive() {
    describe_counter!(
        "multisem_adaptive_windows_total",
        "Windows the adaptive controller closed (each ran its algorithms)."
    );
    describe_counter!(
        "multisem_adaptive_resizes_total",
        "Resizes the adaptive controller made."
    );
    describe_gauge!(
        "multisem_adaptive_rtt_min_seconds",
        Unit::Seconds,
        "The last window's fastest success."
    );
    describe_gauge!(
        "multisem_adaptive_rtt_mean_seconds",
        Unit::Seconds,
        "The last window's mean round trip of a success."
    );
    describe_gauge!(
        "multisem_adaptive_rtt_max_seconds",
        Unit::Seconds,
        "The last window's slowest success."
    );
    describe_gauge!(
        "multisem_adaptive_successes_per_second",
        Unit::CountPerSecond,
        "The last window's successes per second."
    );
    describe_gauge!(
        "multisem_adaptive_delivered_bytes_per_second",
        "The last window's delivered bytes per second."
    );
    describe_gauge!(
        "multisem_adaptive_drop_ratio",
        "The last window's drops among its successes and drops."
    );
}

fn record_adaptive<const N: usize>(name: &'static str, controller: &Controller<N>) {
    let labels = [("semaphore", name)];
    counter!("multisem_adaptive_windows_total", &labels).absolute(controller.windows());
    counter!("multisem_adaptive_resizes_total", &labels).absolute(controller.resizes());
    // Before the first window closes there is nothing to describe.
    let Some(window) = controller.last_window() else {
        return;
    };
    let Window {
        min_rtt,
        mean_rtt,
        max_rtt,
        ..
    } = window;
    // A window without successes timed none: its zeros would read as a
    // downstream that got fast just as it failed. The last ones stay.
    if window.successes > 0 {
        gauge!("multisem_adaptive_rtt_min_seconds", &labels).set(min_rtt.as_secs_f64());
        gauge!("multisem_adaptive_rtt_mean_seconds", &labels).set(mean_rtt.as_secs_f64());
        gauge!("multisem_adaptive_rtt_max_seconds", &labels).set(max_rtt.as_secs_f64());
    }
    gauge!("multisem_adaptive_successes_per_second", &labels).set(window.success_rate());
    gauge!("multisem_adaptive_delivered_bytes_per_second", &labels).set(window.delivery_rate());
    gauge!("multisem_adaptive_drop_ratio", &labels).set(window.drop_rate());
}

impl<const N: usize> fmt::Debug for Exporter<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Exporter")
            .field("name", &self.name)
            .field("dimensions", &self.dimensions)
            .field("controller", &self.controller.is_some())
            .field("waiters_blocked_behind_head", &self.head_of_line)
            .finish_non_exhaustive()
    }
}
