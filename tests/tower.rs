//! The tower layer on any request type: where the permit is taken, how
//! long it is held, each refusal, and what an adaptive layer reports to its
//! controller. Every await is bounded by a timeout.

use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use multisem::MultiSemaphore;
use multisem::adaptive::{Aimd, Controller, Outcome};
use multisem::tower::{AdmitLayer, BoxError, Closed, Refused, Shed, TimedOut, TooLarge, Waited};
use tokio::sync::oneshot;
use tower::{Layer, Service, ServiceExt, service_fn};

const LIMIT: Duration = Duration::from_secs(10);

/// Awaits `future`, failing the test if it takes longer than [`LIMIT`].
async fn bounded<F: Future>(future: F) -> F::Output {
    tokio::time::timeout(LIMIT, future)
        .await
        .expect("a step took longer than its limit")
}

/// Yields to the runtime until `done` holds, failing after [`LIMIT`].
async fn until(done: impl Fn() -> bool) {
    bounded(async {
        while !done() {
            tokio::task::yield_now().await;
        }
    })
    .await;
}

/// A service that answers each `u64` request once `release` is sent on
/// the channel it registered, so the test decides when responses finish.
#[derive(Clone, Default, Debug)]
struct Gate {
    pending: Arc<Mutex<Vec<oneshot::Sender<()>>>>,
    calls: Arc<AtomicUsize>,
}

impl Gate {
    fn open_one(&self) {
        let tx = self.pending.lock().unwrap().remove(0);
        tx.send(()).unwrap();
    }

    fn waiting(&self) -> usize {
        self.pending.lock().unwrap().len()
    }
}

impl Service<u64> for Gate {
    type Response = u64;
    type Error = Infallible;
    type Future = std::pin::Pin<Box<dyn Future<Output = Result<u64, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, bytes: u64) -> Self::Future {
        self.calls.fetch_add(1, SeqCst);
        let (tx, rx) = oneshot::channel();
        self.pending.lock().unwrap().push(tx);
        Box::pin(async move {
            let _ = rx.await;
            Ok(bytes)
        })
    }
}

/// A service that answers each request with itself at once.
fn echo() -> impl Service<u64, Response = u64, Error = Infallible, Future: Send> + Clone {
    service_fn(|bytes: u64| async move { Ok::<_, Infallible>(bytes) })
}

fn bytes_layer(sem: &Arc<MultiSemaphore<2>>) -> AdmitLayer<fn(&u64) -> [u64; 2], 2> {
    AdmitLayer::new(
        Arc::clone(sem),
        (|bytes: &u64| [1, *bytes]) as fn(&u64) -> [u64; 2],
    )
    .names(&["requests", "bytes"])
}

#[tokio::test]
async fn poll_ready_takes_nothing_and_call_takes_the_weight() {
    let sem = Arc::new(MultiSemaphore::new([4, 1000]));
    let gate = Gate::default();
    let mut svc = bytes_layer(&sem).layer(gate.clone());
    bounded(svc.ready()).await.unwrap();
    assert_eq!(
        sem.available(),
        [4, 1000],
        "poll_ready must not take a permit"
    );
    let response = svc.call(300);
    assert_eq!(sem.available(), [3, 700]);
    let response = tokio::spawn(response);
    until(|| gate.waiting() > 0).await;
    assert_eq!(
        sem.available(),
        [3, 700],
        "held while the response is pending"
    );
    gate.open_one();
    assert_eq!(bounded(response).await.unwrap().unwrap(), 300);
    assert_eq!(sem.available(), [4, 1000]);
}

#[tokio::test]
async fn dropping_the_response_future_returns_the_permit() {
    let sem = Arc::new(MultiSemaphore::new([4, 1000]));
    let gate = Gate::default();
    let mut svc = bytes_layer(&sem).layer(gate.clone());
    let response = bounded(svc.ready()).await.unwrap().call(500);
    let task = tokio::spawn(response);
    until(|| gate.waiting() > 0).await;
    task.abort(); // the client went away mid-request
    assert!(bounded(task).await.unwrap_err().is_cancelled());
    assert_eq!(sem.available(), [4, 1000]);
}

#[tokio::test]
async fn an_inner_error_returns_the_permit_and_passes_through() {
    let sem = Arc::new(MultiSemaphore::new([4, 1000]));
    let mut svc =
        bytes_layer(&sem).layer(service_fn(|_: u64| async { Err::<u64, _>("inner failed") }));
    let err = bounded(svc.ready().await.unwrap().call(10))
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "inner failed");
    assert!(Refused::find(&*err).is_none());
    assert_eq!(sem.available(), [4, 1000]);
}

/// A layer names the dimensions as its semaphore does, unless told otherwise.
#[tokio::test]
async fn a_layer_takes_its_semaphore_s_names() {
    let named = Arc::new(
        MultiSemaphore::builder([4, 1000])
            .names(&["messages", "octets"])
            .build(),
    );
    let refusal_of = |layer: AdmitLayer<fn(&u64) -> [u64; 2], 2>| async move {
        let mut svc = layer.shed().layer(echo());
        let err = svc.ready().await.unwrap().call(2000).await.unwrap_err();
        err.to_string()
    };
    let weigh = (|bytes: &u64| [1, *bytes]) as fn(&u64) -> [u64; 2];
    let layer = AdmitLayer::new(Arc::clone(&named), weigh);
    assert!(bounded(refusal_of(layer)).await.contains("octets"));
    let renamed = AdmitLayer::new(named, weigh).names(&["requests", "bytes"]);
    assert!(bounded(refusal_of(renamed)).await.contains("bytes"));
}

#[tokio::test]
async fn shed_mode_refuses_at_once_naming_the_short_dimension() {
    let sem = Arc::new(MultiSemaphore::new([4, 1000]));
    let gate = Gate::default();
    let mut svc = bytes_layer(&sem).shed().layer(gate.clone());
    let first = svc.ready().await.unwrap().call(800);
    let err = bounded(svc.ready().await.unwrap().call(300))
        .await
        .unwrap_err();
    let shed = err.downcast_ref::<Shed>().expect("a Shed error");
    assert_eq!(
        (shed.dim(), shed.name(), shed.requested(), shed.available()),
        (1, "bytes", 300, 200)
    );
    assert!(!shed.is_queued_ahead());
    assert_eq!(
        err.to_string(),
        "shed: bytes short, requested 300, available 200"
    );
    assert_eq!(
        gate.calls.load(SeqCst),
        1,
        "a shed request never reaches the inner service"
    );
    // One that fits still goes through while the first is held.
    let small = svc.ready().await.unwrap().call(200);
    assert_eq!(sem.available(), [2, 0]);
    let (first, small) = (tokio::spawn(first), tokio::spawn(small));
    until(|| gate.waiting() >= 2).await;
    gate.open_one();
    gate.open_one();
    bounded(first).await.unwrap().unwrap();
    bounded(small).await.unwrap().unwrap();
    assert_eq!(sem.available(), [4, 1000]);
}

#[tokio::test]
async fn wait_mode_serves_in_arrival_order_once_room_comes_back() {
    let sem = Arc::new(MultiSemaphore::new([4, 1000]));
    let gate = Gate::default();
    let ends = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&ends);
    let mut svc = bytes_layer(&sem)
        .on_wait(move |_, end| seen.lock().unwrap().push(end))
        .layer(gate.clone());
    let holder = tokio::spawn(svc.ready().await.unwrap().call(900));
    let big = tokio::spawn(svc.ready().await.unwrap().call(600));
    // A waiting request takes its place in the queue when first polled.
    until(|| sem.waiters() >= 1).await;
    let small = tokio::spawn(svc.ready().await.unwrap().call(100));
    until(|| sem.waiters() >= 2).await;
    assert_eq!(
        gate.calls.load(SeqCst),
        1,
        "waiting requests have not reached the service"
    );
    // `small` fits in what is left, but `big` came first: FIFO holds it back.
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(gate.calls.load(SeqCst), 1);
    gate.open_one();
    bounded(holder).await.unwrap().unwrap();
    until(|| gate.calls.load(SeqCst) >= 3).await;
    gate.open_one();
    gate.open_one();
    assert_eq!(bounded(big).await.unwrap().unwrap(), 600);
    assert_eq!(bounded(small).await.unwrap().unwrap(), 100);
    assert_eq!(sem.available(), [4, 1000]);
    assert_eq!(*ends.lock().unwrap(), [Waited::Admitted, Waited::Admitted]);
}

#[tokio::test]
async fn wait_timeout_gives_up_and_takes_nothing() {
    let sem = Arc::new(MultiSemaphore::new([4, 1000]));
    let mut svc = bytes_layer(&sem)
        .wait_timeout(Duration::from_millis(30), tokio::time::sleep)
        .layer(echo());
    let held = sem.try_acquire([0, 950]).unwrap();
    let err = bounded(svc.ready().await.unwrap().call(100))
        .await
        .unwrap_err();
    let timed_out = err.downcast_ref::<TimedOut>().expect("a TimedOut error");
    assert_eq!((timed_out.dim(), timed_out.name()), (Some(1), "bytes"));
    assert!(timed_out.waited() >= Duration::from_millis(30));
    assert_eq!(sem.waiters(), 0, "a timed-out request leaves the queue");
    let stats = sem.stats();
    assert_eq!(
        (stats.timed_out, stats.timed_out_by, stats.cancelled),
        (1, [0, 1], 0)
    );
    drop(held);
    assert_eq!(sem.available(), [4, 1000]);
    // With room, the same service admits at once.
    assert_eq!(
        bounded(svc.ready().await.unwrap().call(100)).await.unwrap(),
        100
    );
}

/// The sleep function is called only for a request that has to wait: one
/// refused at once (too large, closed) calls none (with
/// `tokio::time::sleep`, such a call outside a runtime would panic), and
/// one that waits is bounded from `call`, by one timer.
#[test]
fn the_sleep_function_runs_only_for_a_request_that_waits() {
    let sem = Arc::new(MultiSemaphore::new([1, 100]));
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let mut svc = bytes_layer(&sem)
        .wait_timeout(Duration::from_millis(30), move |after| {
            counted.fetch_add(1, SeqCst);
            async move { std::thread::sleep(after) }
        })
        .layer(echo());
    let mut too_large = Box::pin(svc.call(1000));
    let Poll::Ready(Err(err)) = poll_once(too_large.as_mut()) else {
        panic!("refused at once")
    };
    assert!(err.is::<TooLarge>());
    assert_eq!(calls.load(SeqCst), 0, "a request too large never waits");

    let held = sem.try_acquire_owned([1, 0]).unwrap();
    let started = std::time::Instant::now();
    let err = futures_executor::block_on(svc.call(1)).unwrap_err();
    let timed_out = err.downcast_ref::<TimedOut>().expect("a TimedOut error");
    assert!(timed_out.waited() >= Duration::from_millis(30));
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(
        (calls.load(SeqCst), sem.stats().timed_out, sem.waiters()),
        (1, 1, 0)
    );
    drop(held);

    sem.close();
    let mut closed = Box::pin(svc.call(1));
    let Poll::Ready(Err(err)) = poll_once(closed.as_mut()) else {
        panic!("refused at once")
    };
    assert!(err.is::<Closed>());
    assert_eq!(calls.load(SeqCst), 1, "a closed semaphore never waits");
}

/// `on_wait` sees every request that queued: one closed out between its
/// first poll's enqueue and that poll's look with its timer (the sleep
/// function runs exactly there) is observed as `Closed`, not taken for one
/// refused at once.
#[test]
fn a_request_that_queued_then_closed_out_is_observed() {
    let sem = Arc::new(MultiSemaphore::new([1, 100]));
    let observed = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&observed);
    let closer = Arc::clone(&sem);
    let mut svc = bytes_layer(&sem)
        .wait_timeout(Duration::from_secs(5), move |_| {
            closer.close();
            std::future::pending::<()>()
        })
        .on_wait(move |_, end| seen.lock().unwrap().push(end))
        .layer(echo());
    let held = sem.try_acquire_owned([1, 0]).unwrap();
    let mut call = Box::pin(svc.call(1));
    let Poll::Ready(Err(err)) = poll_once(call.as_mut()) else {
        panic!("closed out")
    };
    assert!(err.is::<Closed>());
    let stats = sem.stats();
    assert_eq!((stats.waited, stats.closed_out), ([1, 0], 1));
    assert_eq!(*observed.lock().unwrap(), [Waited::Closed]);
    drop(held);
}

/// `on_wait` sees what the semaphore counts as a wait: a request whose
/// `call` found no room but whose first poll did never queued, and is not
/// observed; the one that queued after it is, once.
#[test]
fn a_request_admitted_at_its_first_poll_is_not_observed() {
    let sem = Arc::new(MultiSemaphore::new([1, 100]));
    let observed = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&observed);
    let mut svc = bytes_layer(&sem)
        .on_wait(move |_, end| seen.lock().unwrap().push(end))
        .layer(echo());
    let held = sem.try_acquire_owned([1, 0]).unwrap();
    let mut first = Box::pin(svc.call(1));
    drop(held);
    assert!(matches!(poll_once(first.as_mut()), Poll::Ready(Ok(1))));
    assert_eq!(sem.stats().waited, [0, 0]);
    assert!(observed.lock().unwrap().is_empty());
    // The next one queues behind a holder, then is admitted: observed.
    drop(first);
    let held = sem.try_acquire_owned([1, 0]).unwrap();
    let mut second = Box::pin(svc.call(2));
    assert!(poll_once(second.as_mut()).is_pending());
    drop(held);
    assert!(matches!(poll_once(second.as_mut()), Poll::Ready(Ok(2))));
    let stats = sem.stats();
    assert_eq!((stats.waited, stats.acquired_after_wait), ([1, 0], 1));
    assert_eq!(*observed.lock().unwrap(), [Waited::Admitted]);
}

/// A timer that fires when its flag is set, at the next poll.
struct Flagged(Arc<std::sync::atomic::AtomicBool>);

impl Future for Flagged {
    type Output = ();
    fn poll(self: std::pin::Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        if self.0.load(SeqCst) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

fn poll_once<F: Future>(future: std::pin::Pin<&mut F>) -> Poll<F::Output> {
    future.poll(&mut Context::from_waker(std::task::Waker::noop()))
}

/// `TimedOut::dim` is the semaphore's verdict when the time ran out, not
/// what is available after the timeout's cancel has let in those behind:
/// here they take the requests the timed-out request did not lack.
#[test]
fn timed_out_names_the_dimension_short_when_the_time_ran_out() {
    let sem = Arc::new(MultiSemaphore::new([10, 10]));
    let held = sem.try_acquire_owned([5, 5]).unwrap();
    let fire = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let timer = Arc::clone(&fire);
    let mut svc = AdmitLayer::new(Arc::clone(&sem), |amounts: &[u64; 2]| *amounts)
        .names(&["requests", "bytes"])
        .wait_timeout(Duration::from_secs(3600), move |_| {
            Flagged(Arc::clone(&timer))
        })
        .layer(service_fn(|_: [u64; 2]| async { Ok::<_, Infallible>(()) }));
    // Short in bytes only; behind it, a request that fits but waits its turn.
    let mut ours = Box::pin(svc.call([3, 8]));
    assert!(poll_once(ours.as_mut()).is_pending());
    let mut behind = Box::pin(sem.acquire_owned([4, 0]));
    assert!(poll_once(behind.as_mut()).is_pending());
    fire.store(true, SeqCst);
    let Poll::Ready(Err(err)) = poll_once(ours.as_mut()) else {
        panic!("timed out");
    };
    let timed_out = err.downcast_ref::<TimedOut>().expect("a TimedOut error");
    assert_eq!((timed_out.dim(), timed_out.name()), (Some(1), "bytes"));
    assert_eq!(sem.stats().timed_out_by, [0, 1]);
    assert!(
        poll_once(behind.as_mut()).is_ready(),
        "served by the cancel"
    );
    drop((ours, behind, held));
    assert_eq!(sem.available(), sem.capacity());
}

/// A request that fits but finds others queued is shed with `available`
/// 0, naming a dimension it asks for (the queue's head lacks another), and
/// its message says that others are queued ahead, not that it was short.
#[test]
fn shed_behind_queued_requests_says_nothing_was_available() {
    let sem = Arc::new(MultiSemaphore::new([10, 10]));
    let held = sem.try_acquire_owned([0, 5]).unwrap();
    let mut head = Box::pin(sem.acquire_owned([1, 8]));
    assert!(poll_once(head.as_mut()).is_pending());
    let shed_of = |amounts: [u64; 2]| {
        let mut svc = AdmitLayer::new(Arc::clone(&sem), move |_: &()| amounts)
            .names(&["requests", "bytes"])
            .shed()
            .layer(service_fn(|()| async { Ok::<_, Infallible>(()) }));
        let Poll::Ready(Err(err)) = poll_once(std::pin::pin!(svc.call(()))) else {
            panic!("shed at once");
        };
        err.downcast_ref::<Shed>().expect("a Shed error").clone()
    };
    let shed = shed_of([1, 0]);
    assert_eq!(
        (shed.dim(), shed.name(), shed.requested(), shed.available()),
        (0, "requests", 1, 0)
    );
    assert!(shed.is_queued_ahead());
    assert_eq!(
        shed.to_string(),
        "shed: others are queued ahead (they come first); this request asks 1 of requests"
    );
    // Asking nothing of the first dimension: named by the first it asks of.
    let shed = shed_of([0, 2]);
    assert_eq!(
        (shed.dim(), shed.name(), shed.requested(), shed.available()),
        (1, "bytes", 2, 0)
    );
    assert!(shed.is_queued_ahead());
    drop((head, held));
    assert_eq!(sem.available(), sem.capacity());
}

/// With nothing held, a request for 60 bytes while the bytes toggle
/// between 50 and 100 either fits or is too large at every instant: shed
/// mode admits it or refuses it as `TooLarge` (over http, 413), never as
/// `Shed` (503 and a `Retry-After`, as if a retry could fit). It was shed
/// within a second when a resize raced the semaphore's lock-free refusal
/// (`tests/shrink.rs` has the core's twin). Bounded: 400 ms of tries.
#[test]
fn racing_resizes_shed_mode_admits_or_refuses_as_too_large_never_sheds() {
    use std::sync::atomic::AtomicBool;
    use std::time::Instant;
    let sem = Arc::new(MultiSemaphore::new([4, 100]));
    let mut svc = AdmitLayer::new(Arc::clone(&sem), |bytes: &u64| [1, *bytes])
        .shed()
        .layer(service_fn(|bytes: u64| async move {
            Ok::<_, Infallible>(bytes)
        }));
    let stop = Arc::new(AtomicBool::new(false));
    let resizer = {
        let (sem, stop) = (Arc::clone(&sem), Arc::clone(&stop));
        std::thread::spawn(move || {
            while !stop.load(SeqCst) {
                sem.set_capacity([4, 50]).unwrap();
                sem.set_capacity([4, 100]).unwrap();
            }
        })
    };
    let started = Instant::now();
    let (mut admitted, mut too_large, mut wrong) = (0u64, 0u64, None);
    while wrong.is_none() && started.elapsed() < Duration::from_millis(400) {
        let Poll::Ready(result) = poll_once(std::pin::pin!(svc.call(60))) else {
            panic!("shed mode answers at once");
        };
        match result {
            Ok(_) => admitted += 1,
            Err(err) if err.is::<TooLarge>() => too_large += 1,
            Err(err) => wrong = Some(err.to_string()),
        }
    }
    stop.store(true, SeqCst);
    resizer.join().unwrap();
    assert_eq!(
        wrong, None,
        "after {admitted} admitted and {too_large} too large"
    );
    assert_eq!(sem.available(), sem.capacity());
}

#[tokio::test]
async fn too_large_is_refused_at_once_in_wait_mode() {
    let sem = Arc::new(MultiSemaphore::new([4, 1000]));
    let mut svc = bytes_layer(&sem).layer(echo());
    let err = bounded(svc.ready().await.unwrap().call(1001))
        .await
        .unwrap_err();
    let too_large = err.downcast_ref::<TooLarge>().expect("a TooLarge error");
    assert_eq!(
        (too_large.dim(), too_large.requested(), too_large.capacity()),
        (1, 1001, 1000)
    );
    assert_eq!(
        err.to_string(),
        "too large: bytes requested 1001, capacity 1000"
    );
    assert_eq!(sem.waiters(), 0);
}

#[tokio::test]
async fn close_refuses_queued_and_new_requests() {
    let sem = Arc::new(MultiSemaphore::new([1, 1000]));
    let mut svc = bytes_layer(&sem).layer(echo());
    let held = sem.try_acquire([1, 0]).unwrap();
    let queued = tokio::spawn(svc.ready().await.unwrap().call(10));
    until(|| sem.waiters() > 0).await;
    sem.close();
    let err: BoxError = bounded(queued).await.unwrap().unwrap_err();
    assert!(err.is::<Closed>());
    drop(held);
    let err = bounded(svc.ready().await.unwrap().call(10))
        .await
        .unwrap_err();
    assert!(matches!(Refused::find(&*err), Some(Refused::Closed(_))));
}

/// An error whose `source` is the error it wraps.
#[derive(Debug)]
struct Wrapped(BoxError);

impl std::fmt::Display for Wrapped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("wrapped")
    }
}

impl std::error::Error for Wrapped {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

#[test]
fn find_sees_a_refusal_through_wrappers_and_inside_an_io_error() {
    let closed = || Refused::Closed(Closed::default());
    let io = std::io::Error::other(closed());
    assert!(matches!(Refused::find(&io), Some(Refused::Closed(_))));
    let deep = Wrapped(Box::new(std::io::Error::other(Wrapped(Box::new(closed())))));
    assert!(matches!(Refused::find(&deep), Some(Refused::Closed(_))));
    // Nothing to find: an io::Error of a kind alone, or of another payload.
    let plain = std::io::Error::from(std::io::ErrorKind::TimedOut);
    assert!(Refused::find(&plain).is_none());
    let other = Wrapped(Box::new(std::io::Error::other("busy")));
    assert!(Refused::find(&other).is_none());
}

#[tokio::test]
async fn a_dropped_waiting_request_leaves_the_queue_and_lets_the_next_in() {
    let sem = Arc::new(MultiSemaphore::new([4, 1000]));
    let mut svc = bytes_layer(&sem).layer(echo());
    let held = sem.try_acquire([0, 500]).unwrap();
    let big = tokio::spawn(svc.ready().await.unwrap().call(900));
    until(|| sem.waiters() >= 1).await;
    let small = tokio::spawn(svc.ready().await.unwrap().call(100));
    until(|| sem.waiters() >= 2).await;
    big.abort();
    // With the head gone, `small` fits: it is served with no release.
    assert_eq!(bounded(small).await.unwrap().unwrap(), 100);
    assert!(bounded(big).await.unwrap_err().is_cancelled());
    drop(held);
    assert_eq!(sem.available(), [4, 1000]);
    assert_eq!(sem.waiters(), 0);
}

#[test]
fn the_layer_works_without_a_runtime() {
    let sem = Arc::new(MultiSemaphore::new([1]));
    let mut svc = AdmitLayer::new(Arc::clone(&sem), |_: &String| [1]).layer(service_fn(
        |s: String| async move { Ok::<_, Infallible>(s.len()) },
    ));
    let len = futures_executor::block_on(async {
        svc.ready().await.unwrap().call("four".to_string()).await
    });
    assert_eq!(len.unwrap(), 4);
    assert_eq!(sem.available(), [1]);
}

#[test]
fn futures_and_services_are_send() {
    fn is_send<T: Send>(_: &T) {}
    let sem = Arc::new(MultiSemaphore::new([4, 1000]));
    let mut svc = bytes_layer(&sem)
        .wait_timeout(Duration::from_secs(1), tokio::time::sleep)
        .layer(Gate::default());
    is_send(&svc);
    let future = svc.call(1);
    is_send(&future);
}

/// A controller over `sem` whose every completion closes a window (so each
/// sample can be read back with `last_window`), with `Aimd` on dimension 0.
fn every_sample(sem: &Arc<MultiSemaphore<2>>) -> Arc<Controller<2>> {
    Controller::builder(Arc::clone(sem))
        .limit(0, 1..=64, Aimd::default())
        .window(Duration::ZERO, 1)
        .build()
}

/// `Ok` is a success that delivered the bytes; `Err("busy")` a drop; any
/// other error unrelated to load.
fn by_answer(result: Result<&u64, &BoxError>, amounts: [u64; 2]) -> Outcome {
    match result {
        Ok(_) => Outcome::delivered(amounts[1]),
        Err(err) if err.to_string() == "busy" => Outcome::Dropped,
        Err(_) => Outcome::Ignore,
    }
}

fn answers(bytes: u64) -> std::future::Ready<Result<u64, BoxError>> {
    std::future::ready(match bytes {
        0 => Err("busy".into()),
        1 => Err("malformed".into()),
        _ => Ok(bytes),
    })
}

#[tokio::test]
async fn an_adaptive_layer_reports_each_answer_to_its_controller() {
    let sem = Arc::new(MultiSemaphore::new([16, 1 << 20]));
    let ctl = every_sample(&sem);
    let layer = AdmitLayer::adaptive(Arc::clone(&ctl), |b: &u64| [1, *b], by_answer);
    let mut svc = layer.layer(service_fn(answers));
    assert!(ctl.last_window().is_none());

    let answer = bounded(svc.ready().await.unwrap().call(4096)).await;
    assert_eq!(answer.unwrap(), 4096);
    let window = ctl.last_window().expect("the success closed a window");
    assert_eq!((window.successes, window.drops), (1, 0));
    assert_eq!(window.delivered_bytes, 4096);

    let err = bounded(svc.ready().await.unwrap().call(0))
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "busy", "the inner error passes through");
    let window = ctl.last_window().unwrap();
    assert_eq!((window.successes, window.drops), (0, 1));
    assert_eq!(ctl.limits()[0], 14, "Aimd backed off on the drop: 16 x 0.9");
    assert_eq!(sem.capacity(), [14, 1 << 20]);

    let resizes = ctl.resizes();
    let err = bounded(svc.ready().await.unwrap().call(1))
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "malformed");
    assert_eq!(
        ctl.last_window().unwrap(),
        window,
        "an ignored failure is no sample"
    );
    assert_eq!(ctl.resizes(), resizes);
    assert_eq!(sem.available(), sem.capacity());
}

#[tokio::test]
async fn overload_shrinks_the_layers_limit_and_success_grows_it_back() {
    let sem = Arc::new(MultiSemaphore::new([16, 1 << 20]));
    let ctl = every_sample(&sem);
    let mut svc = AdmitLayer::adaptive(Arc::clone(&ctl), |b: &u64| [1, *b], by_answer)
        .layer(service_fn(answers));
    for _ in 0..40 {
        let _ = bounded(svc.ready().await.unwrap().call(0)).await;
    }
    assert_eq!(sem.capacity()[0], 1, "drops drove the count to its floor");
    // Aimd grows a limit only when the window used at least half of it:
    // at a limit of 1, every request in the service uses all of it.
    for _ in 0..8 {
        assert_eq!(
            bounded(svc.ready().await.unwrap().call(100)).await.unwrap(),
            100
        );
    }
    assert!(
        sem.capacity()[0] > 1,
        "successes at full use grew it again: {:?}",
        sem.capacity()
    );
    assert_eq!(sem.available(), sem.capacity());
}

#[tokio::test]
async fn a_request_is_timed_from_its_grant_not_from_its_wait_in_the_queue() {
    let sem = Arc::new(MultiSemaphore::new([1, 1 << 20]));
    let ctl = every_sample(&sem);
    let gate = Gate::default();
    let mut svc = AdmitLayer::adaptive(Arc::clone(&ctl), |b: &u64| [1, *b], by_answer)
        .layer(gate.clone().map_err(BoxError::from));
    let first = tokio::spawn(svc.ready().await.unwrap().call(10));
    until(|| gate.waiting() == 1).await;
    let second = tokio::spawn(svc.ready().await.unwrap().call(20));
    let queued = Duration::from_millis(300);
    tokio::time::sleep(queued).await; // the second waits in the layer's queue
    assert_eq!(gate.waiting(), 1, "the second is queued, not called");
    gate.open_one();
    until(|| gate.waiting() == 1).await; // the second was granted and called
    gate.open_one();
    assert_eq!(bounded(first).await.unwrap().unwrap(), 10);
    assert_eq!(bounded(second).await.unwrap().unwrap(), 20);
    let window = ctl.last_window().unwrap();
    assert_eq!(window.delivered_bytes, 20);
    assert!(
        window.max_rtt < queued / 2,
        "the second's round trip ({:?}) counts its time in the service only",
        window.max_rtt
    );
}

#[tokio::test]
async fn refusals_and_abandoned_requests_are_no_samples() {
    let sem = Arc::new(MultiSemaphore::new([1, 1 << 20]));
    let ctl = every_sample(&sem);
    let gate = Gate::default();
    let mut svc = AdmitLayer::adaptive(Arc::clone(&ctl), |b: &u64| [1, *b], by_answer)
        .shed()
        .layer(gate.clone().map_err(BoxError::from));
    let held = tokio::spawn(svc.ready().await.unwrap().call(10));
    until(|| gate.waiting() == 1).await;
    let err = bounded(svc.ready().await.unwrap().call(10))
        .await
        .unwrap_err();
    assert!(err.is::<Shed>(), "{err}");
    let err = bounded(svc.ready().await.unwrap().call(2 << 20))
        .await
        .unwrap_err();
    assert!(err.is::<TooLarge>(), "{err}");
    held.abort(); // the client went away with its request in the service
    assert!(bounded(held).await.unwrap_err().is_cancelled());
    assert!(ctl.last_window().is_none(), "{:?}", ctl.last_window());
    assert_eq!(ctl.resizes(), 0);
    assert_eq!(sem.available(), sem.capacity());
}

#[test]
fn adaptive_futures_and_services_are_send() {
    fn is_send<T: Send>(_: &T) {}
    let sem = Arc::new(MultiSemaphore::new([4, 1000]));
    let mut svc = AdmitLayer::adaptive(every_sample(&sem), |b: &u64| [1, *b], by_answer)
        .wait_timeout(Duration::from_secs(1), tokio::time::sleep)
        .layer(Gate::default().map_err(BoxError::from));
    is_send(&svc);
    let future = svc.call(1);
    is_send(&future);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adaptive_layer_under_concurrent_load_resizes_and_loses_nothing() {
    // More clients than the count may ever admit.
    const CLIENTS: u64 = 40;
    const REQUESTS: u64 = 40;
    const MOST: u64 = 12;
    let sem = Arc::new(MultiSemaphore::new([MOST, 1 << 20]));
    let ctl = Controller::builder(Arc::clone(&sem))
        .limit(0, 1..=MOST, Aimd::default())
        .window(Duration::ZERO, 1)
        .build();
    // What the handler sees at once, against the highest capacity the
    // controller may set: never more requests than that are let in.
    let in_flight = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let handler = {
        let (in_flight, peak) = (Arc::clone(&in_flight), Arc::clone(&peak));
        service_fn(move |bytes: u64| {
            let (in_flight, peak) = (Arc::clone(&in_flight), Arc::clone(&peak));
            async move {
                let now = in_flight.fetch_add(1, SeqCst) + 1;
                peak.fetch_max(now, SeqCst);
                tokio::time::sleep(Duration::from_micros(200 + bytes % 7 * 100)).await;
                in_flight.fetch_sub(1, SeqCst);
                // One in five answers "busy": drops that shrink the count.
                if bytes % 5 == 0 {
                    Err::<u64, BoxError>("busy".into())
                } else {
                    Ok(bytes)
                }
            }
        })
    };
    let svc = AdmitLayer::adaptive(Arc::clone(&ctl), |b: &u64| [1, *b], by_answer)
        .wait_timeout(Duration::from_secs(5), tokio::time::sleep)
        .layer(handler);
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let mut svc = svc.clone();
            tokio::spawn(async move {
                let (mut ok, mut busy) = (0, 0);
                for i in 0..REQUESTS {
                    let bytes = 100 + client * REQUESTS + i;
                    match svc.ready().await.unwrap().call(bytes).await {
                        Ok(answer) => {
                            assert_eq!(answer, bytes);
                            ok += 1;
                        }
                        Err(err) => {
                            assert_eq!(err.to_string(), "busy", "no refusal: {err}");
                            busy += 1;
                        }
                    }
                }
                (ok, busy)
            })
        })
        .collect();
    let (mut ok, mut busy) = (0, 0);
    for client in clients {
        let (o, b) = bounded(client).await.unwrap();
        (ok, busy) = (ok + o, busy + b);
    }
    assert_eq!(ok + busy, CLIENTS * REQUESTS, "every request answered");
    assert_eq!(busy, CLIENTS * REQUESTS / 5);
    assert!(ctl.resizes() > 10, "only {} resizes", ctl.resizes());
    let peak = peak.load(SeqCst) as u64;
    assert!(peak <= MOST, "{peak} in the handler at once, bound {MOST}");
    assert!(
        peak >= MOST / 2,
        "the load never came near the limit: {peak}"
    );
    assert_eq!(sem.available(), sem.capacity(), "nothing leaked");
    assert_eq!(sem.in_flight(), [0, 0]);
}

/// On a semaphore that clamps oversized requests, a request above a
/// capacity is admitted with that whole capacity (not refused as too large),
/// and shed while the capacity is not free.
#[tokio::test]
async fn a_clamping_semaphore_admits_an_oversized_request_alone() {
    let sem = Arc::new(
        MultiSemaphore::builder([4, 1000])
            .clamp_oversized(true)
            .build(),
    );
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let service = {
        let (sem, seen) = (Arc::clone(&sem), Arc::clone(&seen));
        service_fn(move |bytes: u64| {
            seen.lock().unwrap().push(sem.available());
            async move { Ok::<_, Infallible>(bytes) }
        })
    };
    let mut svc = bytes_layer(&sem).layer(service.clone());
    assert_eq!(
        bounded(svc.ready().await.unwrap().call(5000))
            .await
            .unwrap(),
        5000
    );
    assert_eq!(
        seen.lock().unwrap().pop(),
        Some([3, 0]),
        "it held the whole byte capacity"
    );
    let mut shed = bytes_layer(&sem).shed().layer(service);
    let held = sem.try_acquire([0, 1]).unwrap();
    let err = bounded(shed.ready().await.unwrap().call(5000))
        .await
        .unwrap_err();
    assert!(err.downcast_ref::<Shed>().is_some(), "{err}");
    drop(held);
    assert_eq!(sem.available(), sem.capacity());
}

/// A request that fits in every dimension but waits behind the queue's
/// head times out with no dimension to blame; `on_wait` sees every way a
/// wait ends (here: a timeout, a close).
#[tokio::test]
async fn a_timeout_behind_the_head_names_no_dimension() {
    let sem = Arc::new(MultiSemaphore::new([2, 1000]));
    let ends = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&ends);
    let layer = bytes_layer(&sem)
        .wait_timeout(Duration::from_millis(50), tokio::time::sleep)
        .on_wait(move |_, end| seen.lock().unwrap().push(end));
    let mut svc = layer.layer(echo());
    let held = sem.try_acquire([1, 0]).unwrap();
    // The head asks for 2 requests: it waits for the one held.
    let head = sem.acquire([2, 0]);
    let mut head = Box::pin(head);
    assert!(futures_util::poll!(head.as_mut()).is_pending());
    // This one fits ([1, 100] of [1, 1000] free), but may not pass the head.
    let err = bounded(svc.ready().await.unwrap().call(100))
        .await
        .unwrap_err();
    let timed_out = err.downcast_ref::<TimedOut>().expect("a TimedOut error");
    assert_eq!((timed_out.dim(), timed_out.name()), (None, ""));
    // A close ends a wait too.
    let waiting = tokio::spawn(svc.ready().await.unwrap().call(100));
    until(|| sem.waiters() >= 2).await;
    sem.close();
    let err = bounded(waiting).await.unwrap().unwrap_err();
    assert!(err.downcast_ref::<Closed>().is_some(), "{err}");
    assert_eq!(*ends.lock().unwrap(), [Waited::TimedOut, Waited::Closed]);
    drop((head, held));
}

/// The layer does not answer ready before its inner service is: an inner
/// service's readiness error comes out of `poll_ready`.
#[tokio::test]
async fn poll_ready_passes_the_inner_service_s_error_through() {
    #[derive(Clone)]
    struct Broken;
    impl Service<u64> for Broken {
        type Response = u64;
        type Error = BoxError;
        type Future = std::future::Ready<Result<u64, BoxError>>;
        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
            Poll::Ready(Err("not ready, ever".into()))
        }
        fn call(&mut self, request: u64) -> Self::Future {
            std::future::ready(Ok(request))
        }
    }
    let sem = Arc::new(MultiSemaphore::new([4, 1000]));
    let mut svc = bytes_layer(&sem).layer(Broken);
    let err = bounded(svc.ready()).await.err().expect("the inner error");
    assert_eq!(err.to_string(), "not ready, ever");
    assert_eq!(sem.available(), [4, 1000]);
}

/// The layer, its service and a response future say what they hold.
#[tokio::test]
async fn the_layer_its_service_and_its_futures_debug_their_state() {
    let sem = Arc::new(MultiSemaphore::new([1, 1000]));
    let layer = bytes_layer(&sem).wait_timeout(Duration::from_millis(500), tokio::time::sleep);
    let shown = format!("{layer:?}");
    assert!(shown.contains("capacity: [1, 1000]"), "{shown}");
    assert!(
        shown.contains("mode: Wait { timeout: Some(500ms) }"),
        "{shown}"
    );
    assert!(shown.contains(r#"names: ["requests", "bytes"]"#), "{shown}");
    let gate = Gate::default();
    let mut svc = layer.layer(gate.clone());
    let shown = format!("{svc:?}");
    assert!(
        shown.starts_with("Admit {") && shown.contains("config: Config {"),
        "{shown}"
    );
    assert!(format!("{:?}", bytes_layer(&sem).shed()).contains("mode: Shed"));
    let calling = svc.ready().await.unwrap().call(300);
    assert!(
        format!("{calling:?}").contains("permit: Some(OwnedPermit"),
        "{calling:?}"
    );
    let mut waiting = Box::pin(svc.ready().await.unwrap().call(200));
    assert!(futures_util::poll!(waiting.as_mut()).is_pending());
    let shown = format!("{waiting:?}");
    assert!(
        shown.contains("waiting: Waiting { amounts: [1, 200]"),
        "{shown}"
    );
    assert!(shown.contains("timeout: true"), "{shown}");
    drop((waiting, calling));
    assert_eq!(sem.available(), [1, 1000]);
}

/// `Shed::requested` is what the request asked, also on a semaphore that
/// clamps oversized requests; `available` is what was free, here with a
/// waiter queued, since the request itself was short.
#[test]
fn shed_reports_the_request_and_what_was_free() {
    let sem = Arc::new(
        MultiSemaphore::builder([4, 100])
            .clamp_oversized(true)
            .build(),
    );
    let held = sem.try_acquire_owned([3, 1]).unwrap();
    let mut head = Box::pin(sem.acquire_owned([2, 0]));
    assert!(poll_once(head.as_mut()).is_pending());
    let mut svc = AdmitLayer::new(Arc::clone(&sem), |len: &u64| [1, *len])
        .shed()
        .layer(service_fn(|_: u64| async { Ok::<_, Infallible>(()) }));
    let Poll::Ready(Err(err)) = poll_once(std::pin::pin!(svc.call(500))) else {
        panic!("shed at once");
    };
    let shed = err.downcast_ref::<Shed>().expect("a Shed error");
    assert_eq!(
        (shed.dim(), shed.requested(), shed.available()),
        (1, 500, 99)
    );
    drop((head, held));
}

/// A waiting request that a shrink leaves larger than the capacity ends
/// with `TooLarge` after waiting, observed as `Waited::TooLarge`.
#[test]
fn a_shrink_turns_a_waiting_request_too_large() {
    let sem = Arc::new(MultiSemaphore::new([4, 1000]));
    let held = sem.try_acquire_owned([0, 500]).unwrap();
    let ends = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&ends);
    let mut svc = bytes_layer(&sem)
        .on_wait(move |_, end| seen.lock().unwrap().push(end))
        .layer(echo());
    let mut call = Box::pin(svc.call(800));
    assert!(poll_once(call.as_mut()).is_pending());
    sem.set_capacity([4, 600]).unwrap();
    let Poll::Ready(Err(err)) = poll_once(call.as_mut()) else {
        panic!("failed by the shrink");
    };
    let too_large = err.downcast_ref::<TooLarge>().expect("a TooLarge error");
    assert_eq!(
        (too_large.dim(), too_large.requested(), too_large.capacity()),
        (1, 800, 600)
    );
    assert_eq!(*ends.lock().unwrap(), [Waited::TooLarge]);
    // It waited and was failed: no refusal (its first try, made by the
    // semaphore's own acquire, counts none).
    let stats = sem.stats();
    assert_eq!(
        (stats.refused, stats.waited, stats.exceeded),
        ([0, 0], [0, 1], [0, 1])
    );
    drop(held);
}

/// A request dropped before its first poll never queued and counts
/// nowhere; one dropped while it waits is not observed and counts as
/// cancelled. Neither counts as refused.
#[test]
fn a_waiting_request_dropped_counts_as_cancelled_once_queued() {
    let sem = Arc::new(MultiSemaphore::new([1, 1000]));
    let held = sem.try_acquire_owned([1, 0]).unwrap();
    let ends = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&ends);
    let mut svc = bytes_layer(&sem)
        .on_wait(move |_, end| seen.lock().unwrap().push(end))
        .layer(echo());
    let unpolled = svc.call(10);
    assert_eq!(sem.waiters(), 0);
    drop(unpolled);
    assert_eq!(sem.stats().cancelled, 0);
    let mut call = Box::pin(svc.call(10));
    assert!(poll_once(call.as_mut()).is_pending());
    assert_eq!(sem.waiters(), 1);
    drop(call);
    assert_eq!((sem.waiters(), sem.stats().cancelled), (0, 1));
    assert!(ends.lock().unwrap().is_empty());
    assert_eq!(sem.stats().refused, [0, 0]);
    drop(held);
}

/// The statistics see what the layer's callers see: in wait mode a request
/// that waits and is admitted counts in `waited` and `acquired`, never in
/// `refused` (the layer once tried `try_acquire_owned` first, and every
/// request that then waited counted as refused too: a "refused by
/// dimension" dashboard fired under ordinary queueing). In shed mode a
/// refusal is one. Found by a reviewer writing a server with the layer.
#[test]
fn only_refusals_count_as_refused() {
    let sem = Arc::new(MultiSemaphore::new([4, 1000]));
    let held = sem.try_acquire_owned([0, 900]).unwrap();
    let mut waits = bytes_layer(&sem).layer(echo());
    let mut call = Box::pin(waits.call(500));
    assert!(poll_once(call.as_mut()).is_pending());
    drop(held);
    assert!(matches!(poll_once(call.as_mut()), Poll::Ready(Ok(500))));
    let admitted_at_once = std::pin::pin!(waits.call(10));
    assert!(matches!(poll_once(admitted_at_once), Poll::Ready(Ok(10))));
    let stats = sem.stats();
    assert_eq!(
        (stats.refused, stats.waited, stats.acquired),
        ([0, 0], [0, 1], 3)
    );
    // Too large: refused at once, on the first poll, not observed as a
    // wait, counted as exceeded and not as refused.
    let ends = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&ends);
    let mut observed = bytes_layer(&sem)
        .on_wait(move |_, end| seen.lock().unwrap().push(end))
        .layer(echo());
    let Poll::Ready(Err(err)) = poll_once(std::pin::pin!(observed.call(1001))) else {
        panic!("too large at once");
    };
    assert!(err.downcast_ref::<TooLarge>().is_some());
    assert!(ends.lock().unwrap().is_empty());
    let stats = sem.stats();
    assert_eq!((stats.refused, stats.exceeded), ([0, 0], [0, 1]));

    let _held = sem.try_acquire_owned([0, 900]).unwrap();
    let mut sheds = bytes_layer(&sem).shed().layer(echo());
    let Poll::Ready(Err(err)) = poll_once(std::pin::pin!(sheds.call(500))) else {
        panic!("shed at once");
    };
    assert!(err.downcast_ref::<Shed>().is_some());
    let stats = sem.stats();
    assert_eq!((stats.refused, stats.waited), ([0, 1], [0, 1]));
    assert_eq!(stats.exceeded, [0, 1]);
}

/// Tower does not promise that response futures are polled in the order
/// of the calls: a request that waits takes its place in the queue when
/// its future is first polled, so one never polled, or polled later,
/// holds no place and no permit that another awaits. (For a while the
/// layer queued requests in `call`; awaiting the second call first then
/// hung, the first holding the permit. Found by a reviewer.)
#[tokio::test]
async fn a_later_request_awaited_first_is_not_held_up_by_an_unpolled_earlier_one() {
    let sem = Arc::new(MultiSemaphore::new([1]));
    let held = sem.try_acquire_owned([1]).unwrap();
    let mut svc = AdmitLayer::new(Arc::clone(&sem), |_: &u64| [1])
        .layer(service_fn(|n: u64| async move { Ok::<_, Infallible>(n) }));
    let first = svc.ready().await.unwrap().call(1);
    let second = svc.ready().await.unwrap().call(2);
    drop(held);
    assert_eq!(bounded(second).await.unwrap(), 2);
    assert_eq!(bounded(first).await.unwrap(), 1);
    let stats = sem.stats();
    assert_eq!((stats.refused, stats.cancelled), ([0], 0));
    assert_eq!(sem.available(), sem.capacity());
}

/// A request that would fit but times out queued behind an earlier one
/// names no dimension; the semaphore counts it under the head's.
#[test]
fn timed_out_behind_earlier_requests_names_no_dimension() {
    let sem = Arc::new(MultiSemaphore::new([2, 1000]));
    let held = sem.try_acquire_owned([0, 900]).unwrap();
    let mut head = Box::pin(sem.acquire_owned([1, 500]));
    assert!(poll_once(head.as_mut()).is_pending());
    let mut svc = AdmitLayer::new(Arc::clone(&sem), |_: &()| [1, 10])
        .wait_timeout(Duration::ZERO, |_| async {})
        .layer(service_fn(|()| async { Ok::<_, Infallible>(()) }));
    let Poll::Ready(Err(err)) = poll_once(std::pin::pin!(svc.call(()))) else {
        panic!("timed out at once");
    };
    let timed_out = err.downcast_ref::<TimedOut>().expect("a TimedOut error");
    assert_eq!((timed_out.dim(), timed_out.name()), (None, ""));
    assert!(
        timed_out
            .to_string()
            .ends_with("waiting for earlier requests"),
        "{timed_out}"
    );
    let stats = sem.stats();
    assert_eq!((stats.timed_out, stats.timed_out_by), (1, [0, 1]));
    drop((head, held));
}

/// The timeout's sleep function may return a future with an output (as
/// async-io's `Timer` gives an `Instant`): it is ignored, and the timer
/// still bounds the wait. Found by a reviewer trying async-io's timer.
#[test]
fn a_timer_with_an_output_bounds_the_wait() {
    let sem = Arc::new(MultiSemaphore::new([1, 1000]));
    let held = sem.try_acquire_owned([1, 0]).unwrap();
    let mut svc = AdmitLayer::new(Arc::clone(&sem), |_: &()| [1, 10])
        .wait_timeout(Duration::ZERO, |_| async { std::time::Instant::now() })
        .layer(service_fn(|()| async { Ok::<_, Infallible>(()) }));
    let Poll::Ready(Err(err)) = poll_once(std::pin::pin!(svc.call(()))) else {
        panic!("timed out at once");
    };
    let timed_out = err.downcast_ref::<TimedOut>().expect("a TimedOut error");
    assert_eq!(timed_out.dim(), Some(0));
    assert_eq!(sem.stats().timed_out_by, [1, 0]);
    drop(held);
}

/// The refusals say which dimension, by index and by name, and what
/// happened, in their `Display`.
#[test]
fn refusals_name_their_dimension() {
    let sem = Arc::new(MultiSemaphore::new([4, 1000]));
    let mut svc = AdmitLayer::new(Arc::clone(&sem), |amounts: &[u64; 2]| *amounts)
        .names(&["requests", "bytes"])
        .layer(service_fn(|_: [u64; 2]| async { Ok::<_, Infallible>(()) }));
    let Poll::Ready(Err(err)) = poll_once(std::pin::pin!(svc.call([5, 1]))) else {
        panic!("too large at once");
    };
    let too_large = err.downcast_ref::<TooLarge>().expect("a TooLarge error");
    assert_eq!((too_large.dim(), too_large.name()), (0, "requests"));
    assert_eq!(
        too_large.to_string(),
        "too large: requests requested 5, capacity 4"
    );
    sem.close();
    let Poll::Ready(Err(err)) = poll_once(std::pin::pin!(svc.call([1, 1]))) else {
        panic!("closed at once");
    };
    assert_eq!(err.to_string(), "semaphore closed");
    assert!(err.is::<Closed>());
}

/// `AdmitLayer::adaptive`: "Every setting of the layer still applies", and
/// `Hold::admitted` is called "once per admitted request". In shed mode a
/// request admitted at once is a sample like any other.
#[test]
fn a_shedding_adaptive_layer_reports_each_admitted_request() {
    let sem = Arc::new(MultiSemaphore::new([4, 1 << 20]));
    let ctl = every_sample(&sem);
    let classify = |result: Result<&u64, &BoxError>, amounts: [u64; 2]| match result {
        Ok(_) => Outcome::delivered(amounts[1]),
        Err(_) => Outcome::Dropped,
    };
    let mut svc = AdmitLayer::adaptive(Arc::clone(&ctl), |n: &u64| [1, *n], classify)
        .shed()
        .layer(service_fn(|n: u64| async move { Ok::<_, BoxError>(n) }));
    let answer = futures_executor::block_on(async { svc.ready().await?.call(100).await });
    assert_eq!(answer.unwrap(), 100);
    let window = ctl
        .last_window()
        .expect("the admitted request closed a window");
    assert_eq!(
        (ctl.windows(), window.successes, window.delivered_bytes),
        (1, 1, 100)
    );
    assert_eq!(sem.available(), sem.capacity());
}

/// The wait timeout bounds the wait from `call` (the test
/// `the_sleep_function_runs_only_for_a_request_that_waits` says "one that
/// waits is bounded from `call`", and `TimedOut::waited` is counted from
/// there): a future first polled late gets a timer for what is left.
#[test]
fn the_wait_timeout_counts_from_call_not_from_the_first_poll() {
    let sem = Arc::new(MultiSemaphore::new([1, 100]));
    let asked = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&asked);
    let timeout = Duration::from_secs(10);
    let mut svc = AdmitLayer::new(Arc::clone(&sem), |n: &u64| [1, *n])
        .wait_timeout(timeout, move |after| {
            seen.lock().unwrap().push(after);
            std::future::pending::<()>()
        })
        .layer(service_fn(|n: u64| async move { Ok::<_, Infallible>(n) }));
    let held = sem.try_acquire_owned([1, 0]).unwrap();
    let mut call = Box::pin(svc.call(1));
    let late = Duration::from_millis(300);
    std::thread::sleep(late);
    assert!(poll_once(call.as_mut()).is_pending(), "queued");
    let asked = asked.lock().unwrap().clone();
    assert_eq!(asked.len(), 1);
    assert!(
        asked[0] <= timeout - late,
        "timer for {:?}, but {late:?} of the {timeout:?} had passed since `call`",
        asked[0]
    );
    drop((call, held));
    assert_eq!(sem.available(), sem.capacity());
}

/// A learning layer's sample is "timed from the grant": the round trip
/// includes the time in the service, not only what follows its answer.
#[tokio::test]
async fn an_adaptive_layer_times_the_service_from_the_grant() {
    let sem = Arc::new(MultiSemaphore::new([4, 1 << 20]));
    let ctl = every_sample(&sem);
    let classify = |_: Result<&u64, &BoxError>, _: [u64; 2]| Outcome::success();
    let service_time = Duration::from_millis(200);
    let mut svc = AdmitLayer::adaptive(Arc::clone(&ctl), |n: &u64| [1, *n], classify).layer(
        service_fn(move |n: u64| async move {
            tokio::time::sleep(service_time).await;
            Ok::<_, BoxError>(n)
        }),
    );
    let answer = tokio::time::timeout(Duration::from_secs(10), async {
        svc.ready().await?.call(10).await
    })
    .await
    .unwrap();
    assert_eq!(answer.unwrap(), 10);
    let window = ctl.last_window().expect("a sample");
    assert!(
        window.min_rtt >= service_time,
        "round trip {:?}, the service alone took {service_time:?}",
        window.min_rtt
    );
}

/// A waiting request keeps the inner service's readiness (the module docs'
/// "In a stack"): with tower's `ConcurrencyLimit` inside the layer, the
/// request queued for its permit holds the inner limit's permit too, the
/// clone left behind is not ready, and dropping the waiting request gives
/// both back.
#[tokio::test]
async fn a_waiting_request_keeps_an_inner_concurrency_limit_s_permit() {
    let sem = Arc::new(MultiSemaphore::new([1]));
    let gate = Gate::default();
    let mut svc = tower::ServiceBuilder::new()
        .layer(AdmitLayer::new(Arc::clone(&sem), |_: &u64| [1]))
        .concurrency_limit(2)
        .service(gate.clone());
    let mut first = Box::pin(svc.ready().await.unwrap().call(1));
    assert!(poll_once(first.as_mut()).is_pending());
    assert_eq!(gate.waiting(), 1);
    let mut second = Box::pin(svc.ready().await.unwrap().call(2));
    assert!(
        poll_once(second.as_mut()).is_pending(),
        "queued for the permit"
    );
    assert_eq!(sem.waiters(), 1);

    let mut cx = Context::from_waker(std::task::Waker::noop());
    assert!(
        svc.poll_ready(&mut cx).is_pending(),
        "the inner limit is spent"
    );
    drop(second);
    assert_eq!(sem.waiters(), 0);
    assert!(
        svc.poll_ready(&mut cx).is_ready(),
        "its inner permit came back"
    );
    gate.open_one();
    assert_eq!(bounded(first).await.unwrap(), 1);
    assert_eq!(sem.available(), [1]);
}
