//! The layer and its settings.

use super::{Admit, Learn, Refused, TooLarge, UntilResponse};
use crate::MultiSemaphore;
use crate::adaptive::Controller;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// A boxed sleep, made only for a request that has to wait.
pub(crate) type Sleep = Pin<Box<Timer>>;

/// A runtime's sleep future, unsized: what a [`Sleep`] boxes.
pub(crate) type Timer = dyn Future<Output = ()> + Send;

/// Makes a [`Sleep`] from the runtime's sleep function.
pub(crate) type SleepFn = Arc<dyn Fn(Duration) -> Sleep + Send + Sync>;

/// Called once per request that waited, with how long and how it ended.
pub(crate) type OnWait = Arc<dyn Fn(Duration, Waited) + Send + Sync>;

/// How a request that had to wait for its permit stopped waiting; passed to
/// [`AdmitLayer::on_wait`].
///
/// ```
/// use multisem::tower::Waited;
///
/// fn label(end: Waited) -> &'static str {
///     match end {
///         Waited::Admitted => "admitted",
///         Waited::TimedOut => "timed_out",
///         _ => "refused",
///     }
/// }
/// assert_eq!(label(Waited::Closed), "refused");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Waited {
    /// It got its permit and went on to the inner service.
    Admitted,
    /// Its wait timeout passed first.
    TimedOut,
    /// The semaphore was closed while it waited.
    Closed,
    /// A capacity shrink left it larger than a dimension's capacity.
    TooLarge,
}

/// How the layer treats a request that does not fit now.
#[derive(Clone)]
pub(crate) enum Mode {
    /// Refuse it at once.
    Shed,
    /// Queue it, first come first served, bounded by `timeout` if given.
    Wait {
        timeout: Option<(Duration, SleepFn)>,
    },
}

/// What every service made by one layer shares.
pub(crate) struct Config<const N: usize> {
    pub(crate) sem: Arc<MultiSemaphore<N>>,
    pub(crate) mode: Mode,
    pub(crate) names: [&'static str; N],
    pub(crate) on_wait: Option<OnWait>,
}

impl<const N: usize> Config<N> {
    /// The refusal of a request larger than dimension `dim`'s capacity.
    pub(crate) fn too_large(&self, dim: usize, requested: u64, capacity: u64) -> Refused {
        Refused::TooLarge(TooLarge {
            dim,
            name: self.names[dim],
            requested,
            capacity,
            max_capacity: self.sem.max_capacity()[dim],
        })
    }
}

/// A tower [`Layer`](tower_layer::Layer) that admits each request by its
/// weight through a shared [`MultiSemaphore`], taking the permit in `call`
/// and holding it until the response is done. See the [module
/// docs](super) for the guarantees and costs.
///
/// `N` is the number of dimensions, `W` the [weigher](super::Weigh) and
/// `H` the [hold](super::Hold) (by default [`UntilResponse`]).
///
/// ```
/// use multisem::MultiSemaphore;
/// use multisem::tower::AdmitLayer;
/// use std::{sync::Arc, time::Duration};
///
/// let sem = Arc::new(MultiSemaphore::new([64, 1 << 20]));
/// // Wait up to 2 s for room, first come first served:
/// let waiting = AdmitLayer::new(sem.clone(), |body: &Vec<u8>| [1, body.len() as u64])
///     .names(&["requests", "bytes"])
///     .wait_timeout(Duration::from_secs(2), tokio::time::sleep);
/// // Or never wait: refuse at once when the request does not fit now.
/// let shedding = AdmitLayer::new(sem, |body: &Vec<u8>| [1, body.len() as u64]).shed();
/// # let _ = (waiting, shedding);
/// ```
pub struct AdmitLayer<W, const N: usize, H = UntilResponse> {
    sem: Arc<MultiSemaphore<N>>,
    weigher: W,
    hold: H,
    mode: Mode,
    names: [&'static str; N],
    on_wait: Option<OnWait>,
}

impl<W, const N: usize> AdmitLayer<W, N> {
    /// A layer in wait mode without a timeout, holding each permit until the
    /// response future completes ([`UntilResponse`]).
    ///
    /// ```
    /// use multisem::MultiSemaphore;
    /// use multisem::tower::AdmitLayer;
    /// use std::sync::Arc;
    ///
    /// let sem = Arc::new(MultiSemaphore::new([16]));
    /// let layer = AdmitLayer::new(sem, |_: &String| [1]);
    /// # let _ = layer;
    /// ```
    pub fn new(sem: Arc<MultiSemaphore<N>>, weigher: W) -> Self {
        let names = std::array::from_fn(|d| sem.names().get(d).unwrap_or(""));
        Self {
            sem,
            weigher,
            hold: UntilResponse,
            mode: Mode::Wait { timeout: None },
            names,
            on_wait: None,
        }
    }

    /// Replaces what the layer does with a response and its permit, and with
    /// a refusal (see [`Hold`](super::Hold)).
    ///
    /// ```
    /// use multisem::MultiSemaphore;
    /// use multisem::tower::{AdmitLayer, UntilResponse};
    /// use std::sync::Arc;
    ///
    /// let layer = AdmitLayer::new(Arc::new(MultiSemaphore::new([16])), |_: &()| [1]).hold(UntilResponse);
    /// # let _ = layer;
    /// ```
    ///
    /// Only a layer made by [`new`](Self::new) (or one that holds until the
    /// response body ends, feature `http`) takes another hold. A learning
    /// layer ([`adaptive`](AdmitLayer::adaptive)) keeps its own,
    /// which reports each answer to the controller (replacing it would stop
    /// the learning, silently); to hold its permits until the response body
    /// ends, give it `until_body_end` (feature `http`).
    ///
    /// ```compile_fail,E0599
    /// use multisem::MultiSemaphore;
    /// use multisem::adaptive::{Aimd, Controller, Outcome};
    /// use multisem::tower::{AdmitLayer, UntilResponse};
    /// use std::sync::Arc;
    ///
    /// let sem = Arc::new(MultiSemaphore::new([16]));
    /// let ctl = Controller::builder(sem).limit(0, 1..=64, Aimd::default()).build();
    /// let classify = |_: Result<&(), &std::io::Error>, _: [u64; 1]| Outcome::success();
    /// let layer = AdmitLayer::adaptive(ctl, |_: &()| [1], classify).hold(UntilResponse);
    /// ```
    pub fn hold<H2>(self, hold: H2) -> AdmitLayer<W, N, H2> {
        self.map_hold(|_| hold)
    }
}

impl<W, C, const N: usize> AdmitLayer<W, N, Learn<C, N>> {
    /// A layer whose limits learn from the service's answers: it admits
    /// through `controller`'s semaphore, in wait mode without a timeout as
    /// [`new`](AdmitLayer::new) does, and holds each permit until the
    /// response future completes; then `classify` turns the answer into an
    /// [`Outcome`](crate::adaptive::Outcome), which goes to the controller
    /// with the time since the grant, and the controller resizes the
    /// semaphore when a window closes (see [`Learn`] for what is a sample).
    /// Every setting of the layer still applies.
    ///
    /// Give each dimension's bounds a lower end of at least the largest
    /// request the service accepts: a request above the capacity in force
    /// is refused as [`TooLarge`](super::TooLarge), and a shrink can bring
    /// the capacity down to that lower end.
    ///
    /// A closure classifier needs its argument types written out, as below:
    /// the layer is built before the service whose answers it classifies,
    /// so nothing else tells the compiler what they are.
    ///
    /// ```
    /// use multisem::MultiSemaphore;
    /// use multisem::adaptive::{Controller, Outcome};
    /// use multisem::tower::{AdmitLayer, BoxError};
    /// use std::{sync::Arc, time::Duration};
    /// use tower::{service_fn, Layer, Service, ServiceExt};
    ///
    /// # futures_executor::block_on(async {
    /// let sem = Arc::new(MultiSemaphore::new([64, 1 << 20]));
    /// let ctl = Controller::builder(sem.clone())
    ///     .count_and_bytes(0, 4..=1024, 1, (64 << 10)..=(1 << 30))
    ///     .build();
    /// // A reply is a success that delivered the request's bytes; an error
    /// // (say, the downstream's "busy" or a timeout inside this layer) a drop.
    /// let layer = AdmitLayer::adaptive(
    ///     ctl.clone(),
    ///     |payload: &Vec<u8>| [1, payload.len() as u64],
    ///     |result: Result<&usize, &BoxError>, amounts: [u64; 2]| match result {
    ///         Ok(_) => Outcome::delivered(amounts[1]),
    ///         Err(_) => Outcome::Dropped,
    ///     },
    /// )
    /// .wait_timeout(Duration::from_secs(1), tokio::time::sleep);
    /// let mut svc = layer.layer(service_fn(|payload: Vec<u8>| async move {
    ///     Ok::<_, BoxError>(payload.len())
    /// }));
    /// assert_eq!(svc.ready().await?.call(vec![0; 4096]).await?, 4096);
    /// assert_eq!(sem.available(), sem.capacity());
    /// # Ok::<(), BoxError>(())
    /// # }).unwrap();
    /// ```
    pub fn adaptive(controller: Arc<Controller<N>>, weigher: W, classify: C) -> Self {
        AdmitLayer::new(Arc::clone(controller.semaphore()), weigher)
            .hold(Learn::new(controller, classify))
    }
}

impl<W, const N: usize, H> AdmitLayer<W, N, H> {
    /// Names the dimensions (e.g. `["requests", "bytes"]`) for the errors'
    /// messages and [`name`](super::Shed::name)s. By default, the
    /// semaphore's [names](MultiSemaphore::names), if it has some. Names
    /// are `'static`, as [`Builder::names`](crate::Builder::names)' are.
    ///
    /// ```
    /// use multisem::MultiSemaphore;
    /// use multisem::tower::AdmitLayer;
    /// use std::sync::Arc;
    ///
    /// let sem = Arc::new(MultiSemaphore::new([16, 1 << 20]));
    /// let layer = AdmitLayer::new(sem, |b: &Vec<u8>| [1, b.len() as u64]).names(&["requests", "bytes"]);
    /// # let _ = layer;
    /// ```
    pub fn names(mut self, names: &'static [&'static str; N]) -> Self {
        self.names = *names;
        self
    }

    /// Shed mode: a request that does not fit now is refused at once with
    /// [`Shed`](super::Shed); nothing ever waits.
    ///
    /// ```
    /// use multisem::MultiSemaphore;
    /// use multisem::tower::AdmitLayer;
    /// use std::sync::Arc;
    ///
    /// let layer = AdmitLayer::new(Arc::new(MultiSemaphore::new([16])), |_: &()| [1]).shed();
    /// # let _ = layer;
    /// ```
    pub fn shed(mut self) -> Self {
        self.mode = Mode::Shed;
        self
    }

    /// Wait mode without a timeout (the default): a request that does not fit
    /// now waits its turn, first come first served, until it fits or the
    /// semaphore is closed.
    ///
    /// ```
    /// use multisem::MultiSemaphore;
    /// use multisem::tower::AdmitLayer;
    /// use std::sync::Arc;
    ///
    /// let layer = AdmitLayer::new(Arc::new(MultiSemaphore::new([16])), |_: &()| [1]).shed().wait();
    /// # let _ = layer;
    /// ```
    pub fn wait(mut self) -> Self {
        self.mode = Mode::Wait { timeout: None };
        self
    }

    /// Wait mode, giving up after `timeout` with [`TimedOut`](super::TimedOut).
    /// `sleep` is the runtime's sleep function (for example
    /// `tokio::time::sleep`); it is called, and its future boxed, only for a
    /// request that has to wait; its output, whatever it is, is ignored
    /// (async-io's `Timer` gives an `Instant`). The semaphore races that
    /// timer itself, so a timeout counts in
    /// [`Stats::timed_out`](crate::Stats::timed_out) and `timed_out_by` (by
    /// the dimension that held the request back), not as a cancel.
    ///
    /// ```
    /// use multisem::MultiSemaphore;
    /// use multisem::tower::AdmitLayer;
    /// use std::{sync::Arc, time::{Duration, Instant}};
    ///
    /// let layer = AdmitLayer::new(Arc::new(MultiSemaphore::new([16])), |_: &()| [1])
    ///     .wait_timeout(Duration::from_millis(500), tokio::time::sleep);
    /// // A timer whose future has an output, as async-io's `Timer::after`:
    /// let layer = layer.wait_timeout(Duration::from_millis(500), |after| async move {
    ///     tokio::time::sleep(after).await;
    ///     Instant::now()
    /// });
    /// # let _ = layer;
    /// ```
    pub fn wait_timeout<F, Fut>(mut self, timeout: Duration, sleep: F) -> Self
    where
        F: Fn(Duration) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
    {
        let sleep: SleepFn = Arc::new(move |after| {
            let timer = sleep(after);
            // One allocation still: the timer, wrapped to drop its output.
            Box::pin(async move {
                timer.await;
            })
        });
        self.mode = Mode::Wait {
            timeout: Some((timeout, sleep)),
        };
        self
    }

    /// Calls `observe` once for every request that had to wait, with how
    /// long it waited and how the wait ended; requests admitted at once are
    /// not observed (that path stays free of clocks and calls). Had to
    /// wait means queued in the semaphore, as its
    /// [`Stats::waited`](crate::Stats::waited) counts: a request whose
    /// `call` found no room but whose first poll did is admitted without
    /// queueing, and is not observed either. A request
    /// dropped while it waits (its client left) is not observed either; the
    /// semaphore counts it in [`Stats::cancelled`](crate::Stats::cancelled)
    /// if it had queued (its future had been polled once).
    /// The `metrics` feature's `Exporter::wait_observer` records these in a
    /// histogram.
    ///
    /// ```
    /// use multisem::MultiSemaphore;
    /// use multisem::tower::{AdmitLayer, Waited};
    /// use std::sync::Arc;
    ///
    /// let layer = AdmitLayer::new(Arc::new(MultiSemaphore::new([16])), |_: &()| [1])
    ///     .on_wait(|waited, end| if end == Waited::TimedOut { eprintln!("gave up after {waited:?}") });
    /// # let _ = layer;
    /// ```
    pub fn on_wait<F>(mut self, observe: F) -> Self
    where
        F: Fn(Duration, Waited) + Send + Sync + 'static,
    {
        self.on_wait = Some(Arc::new(observe));
        self
    }

    /// The same layer with its hold replaced by `f(hold)`: for holds that
    /// wrap the current one.
    pub(crate) fn map_hold<H2>(self, f: impl FnOnce(H) -> H2) -> AdmitLayer<W, N, H2> {
        AdmitLayer {
            sem: self.sem,
            weigher: self.weigher,
            hold: f(self.hold),
            mode: self.mode,
            names: self.names,
            on_wait: self.on_wait,
        }
    }

    /// The semaphore the layer admits through.
    ///
    /// ```
    /// use multisem::MultiSemaphore;
    /// use multisem::tower::AdmitLayer;
    /// use std::sync::Arc;
    ///
    /// let layer = AdmitLayer::new(Arc::new(MultiSemaphore::new([16])), |_: &()| [1]);
    /// assert_eq!(layer.semaphore().capacity(), [16]);
    /// ```
    pub fn semaphore(&self) -> &Arc<MultiSemaphore<N>> {
        &self.sem
    }
}

impl<S, W: Clone, const N: usize, H: Clone> tower_layer::Layer<S> for AdmitLayer<W, N, H> {
    type Service = Admit<S, W, N, H>;

    fn layer(&self, inner: S) -> Self::Service {
        let config = Config {
            sem: Arc::clone(&self.sem),
            mode: self.mode.clone(),
            names: self.names,
            on_wait: self.on_wait.clone(),
        };
        Admit::new(
            inner,
            Arc::new(config),
            self.weigher.clone(),
            self.hold.clone(),
        )
    }
}

impl<W: Clone, const N: usize, H: Clone> Clone for AdmitLayer<W, N, H> {
    fn clone(&self) -> Self {
        Self {
            sem: Arc::clone(&self.sem),
            weigher: self.weigher.clone(),
            hold: self.hold.clone(),
            mode: self.mode.clone(),
            names: self.names,
            on_wait: self.on_wait.clone(),
        }
    }
}

impl fmt::Debug for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Shed => f.write_str("Shed"),
            Self::Wait { timeout } => f
                .debug_struct("Wait")
                .field("timeout", &timeout.as_ref().map(|(after, _)| after))
                .finish(),
        }
    }
}

impl<W, const N: usize, H: fmt::Debug> fmt::Debug for AdmitLayer<W, N, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdmitLayer")
            .field("capacity", &self.sem.capacity())
            .field("mode", &self.mode)
            .field("names", &self.names)
            .field("hold", &self.hold)
            .finish_non_exhaustive()
    }
}

impl<const N: usize> fmt::Debug for Config<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("capacity", &self.sem.capacity())
            .field("mode", &self.mode)
            .field("names", &self.names)
            .finish_non_exhaustive()
    }
}
