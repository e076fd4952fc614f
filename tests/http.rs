//! The `http` layer behind a real hyper 1.x server on 127.0.0.1, with real
//! clients: bytes in flight stay under the limit, shed mode answers 503
//! and recovers, a streamed body holds its permit to the last frame (or to
//! the client's disconnect), a request above capacity gets a 413 at once,
//! and an adaptive server learns from its statuses (a gRPC status in the
//! trailers included), timed to its body ends.
//!
//! Every loop is bounded in count, every await in time; servers and clients
//! are tasks of the test's runtime and end with it.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use multisem::MultiSemaphore;
use multisem::adaptive::{Aimd, Controller};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tower::{Layer, Service, service_fn};

const LIMIT: Duration = Duration::from_secs(20);

type Body = BoxBody<Bytes, Infallible>;

/// Awaits `future`, failing the test if it takes longer than [`LIMIT`].
async fn bounded<F: Future>(future: F) -> F::Output {
    tokio::time::timeout(LIMIT, future)
        .await
        .expect("a step took longer than its limit")
}

/// Sleeps until `done` holds, failing after [`LIMIT`].
async fn until(done: impl Fn() -> bool) {
    bounded(async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await;
}

/// Serves `svc` on a fresh loopback port, one task per connection.
async fn serve<S, B>(svc: S) -> SocketAddr
where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let svc = TowerToHyperService::new(svc.clone());
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

/// Sends one POST of `len` bytes on a new connection; returns the response
/// with its body still to be read.
async fn post(addr: SocketAddr, len: usize) -> Response<Incoming> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let request = Request::post("/")
        .header(http::header::HOST, "127.0.0.1")
        .body(Full::new(Bytes::from(vec![7u8; len])))
        .unwrap();
    sender.send_request(request).await.unwrap()
}

/// Reads a whole response body.
async fn read_body(response: Response<Incoming>) -> Bytes {
    response.into_body().collect().await.unwrap().to_bytes()
}

fn full(text: &'static str) -> Body {
    Full::new(Bytes::from_static(text.as_bytes()))
        .map_err(|never| match never {})
        .boxed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_in_flight_stay_under_the_limit_and_every_request_is_served() {
    const BYTE_LIMIT: u64 = 64 * 1024;
    let sem = Arc::new(MultiSemaphore::new([64, BYTE_LIMIT]));
    let in_flight = Arc::new(AtomicU64::new(0));
    let peak = Arc::new(AtomicU64::new(0));
    let (flight, top) = (Arc::clone(&in_flight), Arc::clone(&peak));
    let handler = service_fn(move |req: Request<Incoming>| {
        let (flight, top) = (Arc::clone(&flight), Arc::clone(&top));
        async move {
            // Measured inside the handler: the declared bytes of every
            // request being handled now.
            let len: u64 = req.headers()[http::header::CONTENT_LENGTH]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            let now = flight.fetch_add(len, SeqCst) + len;
            top.fetch_max(now, SeqCst);
            let body = req.into_body().collect().await.unwrap().to_bytes();
            tokio::time::sleep(Duration::from_millis(2)).await;
            flight.fetch_sub(len, SeqCst);
            Ok::<_, Infallible>(Response::new(full(if body.len() as u64 == len {
                "ok"
            } else {
                "short"
            })))
        }
    });
    let addr = serve(multisem::http::layer(Arc::clone(&sem), 1024).layer(handler)).await;

    let clients: Vec<_> = (0..12)
        .map(|client| {
            tokio::spawn(async move {
                for i in 0..15 {
                    let len = 1024 + (client * 7919 + i * 4099) % (24 * 1024);
                    let response = post(addr, len).await;
                    assert_eq!(response.status(), StatusCode::OK);
                    assert_eq!(read_body(response).await, "ok");
                }
            })
        })
        .collect();
    for client in clients {
        bounded(client).await.unwrap();
    }
    let peak = peak.load(SeqCst);
    assert!(
        peak <= BYTE_LIMIT,
        "{peak} bytes in flight, limit {BYTE_LIMIT}"
    );
    assert!(
        peak > BYTE_LIMIT / 4,
        "the load never got near the limit ({peak})"
    );
    until(|| sem.available() == sem.capacity()).await;
    assert_eq!(sem.stats().acquired, 12 * 15);
}

/// A handler that answers once `open` turns true.
fn gated(
    open: watch::Receiver<bool>,
) -> impl Service<Request<Incoming>, Response = Response<Body>, Error = Infallible, Future: Send>
+ Clone
+ Send {
    service_fn(move |_req: Request<Incoming>| {
        let mut open = open.clone();
        async move {
            let _ = open.wait_for(|open| *open).await;
            Ok::<_, Infallible>(Response::new(full("done")))
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shed_mode_answers_503_at_once_while_full_and_serves_once_drained() {
    let sem = Arc::new(MultiSemaphore::new([2, 1 << 20]));
    let (open, gate) = watch::channel(false);
    let layer = multisem::http::layer(Arc::clone(&sem), 1024).shed();
    let addr = serve(layer.layer(gated(gate))).await;

    let held: Vec<_> = (0..2).map(|_| tokio::spawn(post(addr, 10))).collect();
    until(|| sem.available()[0] == 0).await;
    for _ in 0..5 {
        let started = Instant::now();
        let response = bounded(post(addr, 10)).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[http::header::RETRY_AFTER], "1");
        assert!(
            response.headers()["x-multisem-refused"]
                .to_str()
                .unwrap()
                .contains("requests short"),
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "a shed must not wait"
        );
    }
    open.send(true).unwrap();
    for response in held {
        let response = bounded(response).await.unwrap();
        assert_eq!(read_body(response).await, "done");
    }
    until(|| sem.available() == sem.capacity()).await;
    let response = bounded(post(addr, 10)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(bounded(read_body(response)).await, "done");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_body_holds_its_permit_until_its_last_frame_or_the_disconnect() {
    let sem = Arc::new(MultiSemaphore::new([4, 1 << 20]));
    let (senders_tx, mut senders) = mpsc::unbounded_channel::<mpsc::Sender<Bytes>>();
    // Each response streams whatever the test sends on the channel handed
    // to it, and ends when the test drops that sender.
    let handler = service_fn(move |_req: Request<Incoming>| {
        let senders_tx = senders_tx.clone();
        async move {
            let (tx, rx) = mpsc::channel::<Bytes>(4);
            senders_tx.send(tx).unwrap();
            Ok::<_, Infallible>(Response::new(ChannelBody(rx).boxed()))
        }
    });
    let addr = serve(multisem::http::layer(Arc::clone(&sem), 1024).layer(handler)).await;

    // Sent to the end: held after the head and the first frame, back after the last.
    let mut response = bounded(post(addr, 100)).await;
    let frames = bounded(senders.recv()).await.unwrap();
    frames.send(Bytes::from_static(b"first")).await.unwrap();
    let frame = bounded(response.body_mut().frame()).await.unwrap().unwrap();
    assert_eq!(frame.into_data().unwrap(), "first");
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(
        sem.available(),
        [3, (1 << 20) - 100],
        "the head is out, the body is not"
    );
    frames.send(Bytes::from_static(b"last")).await.unwrap();
    drop(frames);
    let rest = bounded(read_body(response)).await;
    assert_eq!(rest, "last");
    until(|| sem.available() == sem.capacity()).await;

    // The client disconnects mid-body: the permit comes back all the same.
    let mut response = bounded(post(addr, 200)).await;
    let frames = bounded(senders.recv()).await.unwrap();
    frames.send(Bytes::from_static(b"first")).await.unwrap();
    bounded(response.body_mut().frame()).await.unwrap().unwrap();
    assert_eq!(sem.available(), [3, (1 << 20) - 200]);
    drop(response); // closes the connection: its task was the only user
    // The server notices when it next writes; keep offering frames.
    let keep_sending = tokio::spawn(async move {
        for _ in 0..1000 {
            if frames.send(Bytes::from_static(b"more")).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    until(|| sem.available() == sem.capacity()).await;
    bounded(keep_sending).await.unwrap();
}

/// What the docs say of a body of one frame: the permit comes back when
/// the server takes that frame, not once its bytes have reached a client
/// that reads nothing of it (16 MiB: more than the sockets can buffer).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_of_one_frame_returns_its_permit_when_the_server_takes_it() {
    const LEN: usize = 16 << 20;
    let sem = Arc::new(MultiSemaphore::new([4, 1 << 20]));
    let handler = service_fn(|_req: Request<Incoming>| async {
        let body = Full::new(Bytes::from(vec![b'x'; LEN])).map_err(|never| match never {});
        Ok::<_, Infallible>(Response::new(body.boxed()))
    });
    let addr = serve(multisem::http::layer(Arc::clone(&sem), 1024).layer(handler)).await;
    let response = bounded(post(addr, 100)).await;
    // The client has the head and reads no body: the permit is back all
    // the same.
    until(|| sem.available() == sem.capacity()).await;
    assert_eq!(bounded(read_body(response)).await.len(), LEN);
}

/// A controller over `sem` whose every completion closes a window, so that
/// each sample reads back alone with `last_window`, with `Aimd` on the count.
fn every_sample(sem: &Arc<MultiSemaphore<2>>) -> Arc<Controller<2>> {
    Controller::builder(Arc::clone(sem))
        .limit(0, 1..=64, Aimd::default())
        .window(Duration::ZERO, 1)
        .build()
}

/// A response body of the data frames sent on a channel, ending when its
/// sender is dropped.
struct ChannelBody(mpsc::Receiver<Bytes>);

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|data| data.map(|data| Ok(Frame::data(data))))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_larger_than_the_byte_capacity_gets_413_at_once() {
    let sem = Arc::new(MultiSemaphore::new([4, 1 << 20]));
    let handler = service_fn(|_req: Request<Incoming>| async {
        Ok::<_, Infallible>(Response::new(full("served")))
    });
    // Wait mode without a timeout: a request that can never fit must still
    // be answered at once, not queued forever.
    let addr = serve(multisem::http::layer(Arc::clone(&sem), 1024).layer(handler)).await;
    let mut stream = bounded(TcpStream::connect(addr)).await.unwrap();
    // Only the head: the body is never sent, so only an answer from the
    // head alone can come back.
    stream
        .write_all(b"POST / HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: 2097152\r\n\r\n")
        .await
        .unwrap();
    let mut head = vec![0; 1024];
    let read = bounded(stream.read(&mut head)).await.unwrap();
    let head = String::from_utf8_lossy(&head[..read]).to_lowercase();
    assert!(head.starts_with("http/1.1 413"), "{head}");
    assert!(
        head.contains("x-multisem-refused: too large: bytes requested 2097152, capacity 1048576"),
        "{head}"
    );
    assert_eq!(sem.available(), sem.capacity());
    assert_eq!(sem.waiters(), 0);
    // A request that fits is still served.
    let response = bounded(post(addr, 1000)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(bounded(read_body(response)).await, "served");
}

/// A server drained by `set_capacity([0, ..])` (maintenance, a lost lease)
/// refuses every request as too large, a `GET` without a body included:
/// that is the service's state, not the payload's fault, so it answers
/// `503` with `Retry-After`, not a `413` that clients do not retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_server_answers_503_and_a_body_too_large_413() {
    let sem = Arc::new(MultiSemaphore::new([4, 1 << 20]));
    let handler = service_fn(|_req: Request<Incoming>| async {
        Ok::<_, Infallible>(Response::new(full("served")))
    });
    let addr = serve(multisem::http::layer(Arc::clone(&sem), 1024).layer(handler)).await;
    async fn answer(addr: SocketAddr, request: &[u8]) -> String {
        let mut stream = bounded(TcpStream::connect(addr)).await.unwrap();
        stream.write_all(request).await.unwrap();
        let mut head = vec![0; 1024];
        let read = bounded(stream.read(&mut head)).await.unwrap();
        String::from_utf8_lossy(&head[..read]).to_lowercase()
    }
    sem.set_capacity([0, 1 << 20]).unwrap();
    let head = answer(addr, b"GET / HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n").await;
    assert!(head.starts_with("http/1.1 503"), "{head}");
    assert!(head.contains("retry-after: 1"), "{head}");
    // A body above a byte capacity that is not 0 is still a 413.
    sem.set_capacity([4, 10]).unwrap();
    let head = answer(
        addr,
        b"POST / HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: 11\r\n\r\nhello world",
    )
    .await;
    assert!(head.starts_with("http/1.1 413"), "{head}");
    assert_eq!((sem.available(), sem.waiters()), ([4, 10], 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adaptive_server_learns_from_its_statuses_and_its_body_ends() {
    let sem = Arc::new(MultiSemaphore::new([16, 1 << 20]));
    let ctl = every_sample(&sem);
    let (senders_tx, mut senders) = mpsc::unbounded_channel::<mpsc::Sender<Bytes>>();
    // The request's length picks the answer: 503 and 500 bytes get those
    // statuses; anything else streams what the test sends.
    let handler = service_fn(move |req: Request<Incoming>| {
        let senders_tx = senders_tx.clone();
        async move {
            let len = req.into_body().collect().await.unwrap().to_bytes().len();
            let mut response = Response::new(full("failed"));
            match len {
                503 => *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE,
                500 => *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR,
                _ => {
                    let (tx, rx) = mpsc::channel::<Bytes>(4);
                    senders_tx.send(tx).unwrap();
                    response = Response::new(ChannelBody(rx).boxed());
                }
            }
            Ok::<_, Infallible>(response)
        }
    });
    let addr = serve(multisem::http::adaptive_layer(Arc::clone(&ctl), 1024).layer(handler)).await;

    // The service's own 503 is overload: a drop, and the count backs off.
    let response = bounded(post(addr, 503)).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(!response.headers().contains_key("x-multisem-refused"));
    bounded(read_body(response)).await;
    until(|| ctl.last_window().is_some()).await;
    let window = ctl.last_window().unwrap();
    assert_eq!((window.successes, window.drops), (0, 1));
    assert_eq!(sem.capacity(), [14, 1 << 20], "16 x Aimd's 0.9");

    // A 500 is unrelated to load: no sample. (Read back once the permit,
    // which goes back after the report, is home.)
    let response = bounded(post(addr, 500)).await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    bounded(read_body(response)).await;
    until(|| sem.available() == sem.capacity()).await;
    assert_eq!(ctl.last_window().unwrap(), window);

    // A success is reported when its body has been sent, timed to then.
    let mut response = bounded(post(addr, 4096)).await;
    let frames = bounded(senders.recv()).await.unwrap();
    frames.send(Bytes::from_static(b"first")).await.unwrap();
    bounded(response.body_mut().frame()).await.unwrap().unwrap();
    let held = Duration::from_millis(200);
    tokio::time::sleep(held).await;
    assert_eq!(
        ctl.last_window().unwrap(),
        window,
        "the body is still going"
    );
    frames.send(Bytes::from_static(b"last")).await.unwrap();
    drop(frames);
    assert_eq!(bounded(read_body(response)).await, "last");
    until(|| ctl.last_window().unwrap().successes == 1).await;
    let window = ctl.last_window().unwrap();
    assert_eq!(window.delivered_bytes, 4096, "the request's bytes");
    assert!(
        window.min_rtt >= held,
        "timed to the body's end: {window:?}"
    );
    until(|| sem.available() == sem.capacity()).await;
}

#[tokio::test]
async fn a_learning_body_carries_its_report_until_its_end() {
    let sem = Arc::new(MultiSemaphore::new([16, 1 << 20]));
    let ctl = every_sample(&sem);
    let layer = multisem::http::adaptive_layer(Arc::clone(&ctl), 1024);
    let shown = format!("{layer:?}");
    assert!(
        shown.contains("Learn")
            && shown.contains("UntilBodyEnd")
            && shown.contains("granted: None"),
        "{shown}"
    );
    let mut svc = layer.layer(service_fn(|_req: Request<Full<Bytes>>| async {
        Ok::<_, Infallible>(Response::new(full("answer")))
    }));
    let request = Request::new(Full::new(Bytes::from(vec![0; 3000])));
    let response = bounded(svc.call(request)).await.unwrap();
    let report = response.body().permit().expect("the body holds the report");
    assert_eq!(report.amounts(), [1, 3000]);
    assert_eq!(
        report.outcome(),
        multisem::adaptive::Outcome::delivered(3000)
    );
    let shown = format!("{report:?}");
    assert!(
        shown.contains("[1, 3000]") && shown.contains("delivered: Some(3000)"),
        "{shown}"
    );
    assert!(
        ctl.last_window().is_none(),
        "not reported before the body ends"
    );
    assert_eq!(
        bounded(response.into_body().collect())
            .await
            .unwrap()
            .to_bytes(),
        "answer"
    );
    assert_eq!(ctl.last_window().unwrap().delivered_bytes, 3000);
    assert_eq!(sem.available(), sem.capacity());
}

#[test]
fn status_outcome_classifies_every_http_status_class_and_grpc_code() {
    use multisem::adaptive::Outcome;
    use multisem::http::StatusOutcome;
    use multisem::tower::Classify;
    let by_status = StatusOutcome::default().delivering(1);
    let classify = |response: Response<()>| by_status.classify(Ok::<_, &()>(&response), [1, 700]);
    let served = Outcome::delivered(700);
    let http = |status: u16| classify(Response::builder().status(status).body(()).unwrap());
    for status in [200, 201, 204, 301, 304, 400, 404, 413, 422] {
        assert_eq!(http(status), served, "{status}");
    }
    for status in [429, 503, 504] {
        assert_eq!(http(status), Outcome::Dropped, "{status}");
    }
    for status in [500, 501, 502, 505] {
        assert_eq!(http(status), Outcome::Ignore, "{status}");
    }
    // gRPC codes 0 to 16, by name in the comments.
    let grpc = |code: &str| {
        classify(
            Response::builder()
                .header("grpc-status", code)
                .body(())
                .unwrap(),
        )
    };
    let expected = [
        served,           // 0 OK
        Outcome::Ignore,  // 1 CANCELLED
        Outcome::Ignore,  // 2 UNKNOWN
        served,           // 3 INVALID_ARGUMENT
        Outcome::Dropped, // 4 DEADLINE_EXCEEDED
        served,           // 5 NOT_FOUND
        served,           // 6 ALREADY_EXISTS
        served,           // 7 PERMISSION_DENIED
        Outcome::Dropped, // 8 RESOURCE_EXHAUSTED
        served,           // 9 FAILED_PRECONDITION
        Outcome::Ignore,  // 10 ABORTED
        served,           // 11 OUT_OF_RANGE
        Outcome::Ignore,  // 12 UNIMPLEMENTED
        Outcome::Ignore,  // 13 INTERNAL
        Outcome::Dropped, // 14 UNAVAILABLE
        Outcome::Ignore,  // 15 DATA_LOSS
        served,           // 16 UNAUTHENTICATED
    ];
    for (code, outcome) in expected.into_iter().enumerate() {
        assert_eq!(grpc(&code.to_string()), outcome, "grpc-status {code}");
    }
    // A value that is no code says nothing: the HTTP status decides.
    assert_eq!(grpc("busy"), served);
    assert_eq!(
        grpc(" 14 "),
        Outcome::Dropped,
        "surrounding spaces are allowed"
    );
    // A gRPC status on an HTTP 503 is still a drop; an error, too.
    let both = Response::builder()
        .status(503)
        .header("grpc-status", "0")
        .body(())
        .unwrap();
    assert_eq!(classify(both), Outcome::Dropped);
    assert_eq!(
        by_status.classify(Err::<&Response<()>, _>(&"reset"), [1, 700]),
        Outcome::Dropped
    );
    // Without `delivering`, a success carries no bytes; a dimension out of
    // range delivers nothing.
    let ok = Response::new(());
    assert_eq!(
        StatusOutcome::default().classify(Ok::<_, &()>(&ok), [1, 700]),
        Outcome::success()
    );
    let beyond = StatusOutcome::default().delivering(5);
    assert_eq!(
        beyond.classify(Ok::<_, &()>(&ok), [1, 700]),
        Outcome::success()
    );
}

#[test]
fn status_outcome_classifies_a_grpc_status_in_the_trailers_as_in_the_head() {
    use multisem::adaptive::Outcome;
    use multisem::http::StatusOutcome;
    use multisem::tower::Classify;
    let by_status = StatusOutcome::default().delivering(1);
    let served = Outcome::delivered(700);
    let after = |code: &str, head: Outcome| {
        let mut trailers = http::HeaderMap::new();
        trailers.insert("grpc-status", code.parse().unwrap());
        Classify::<Response<()>, (), 2>::classify_trailers(&by_status, &trailers, head)
    };
    let drops = [4, 8, 14];
    let ignored = [1, 2, 10, 12, 13, 15];
    for code in 0..=16 {
        let want = if drops.contains(&code) {
            Outcome::Dropped
        } else if ignored.contains(&code) {
            Outcome::Ignore
        } else {
            served
        };
        assert_eq!(after(&code.to_string(), served), want, "grpc-status {code}");
    }
    // A code that says the call was served keeps what the head said; a
    // drop or a failure overrides it; no code, or no trailer, keeps it.
    assert_eq!(after("0", Outcome::Dropped), Outcome::Dropped);
    assert_eq!(after("5", Outcome::Ignore), Outcome::Ignore);
    assert_eq!(after("8", Outcome::Ignore), Outcome::Dropped);
    assert_eq!(after("busy", served), served);
    let none = http::HeaderMap::new();
    assert_eq!(
        Classify::<Response<()>, (), 2>::classify_trailers(&by_status, &none, served),
        served
    );
    // A classifier of one's own keeps the head's outcome by default.
    let own = |_: Result<&Response<()>, &()>, _: [u64; 2]| Outcome::success();
    assert_eq!(
        Classify::<Response<()>, (), 2>::classify_trailers(&own, &none, served),
        served
    );
}

/// A response body of one data frame and then `trailers`.
struct DataThenTrailers(Option<Bytes>, Option<http::HeaderMap>);

impl http_body::Body for DataThenTrailers {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let frame = match (self.0.take(), self.1.take()) {
            (Some(data), trailers) => {
                self.1 = trailers;
                Some(Frame::data(data))
            }
            (None, Some(trailers)) => Some(Frame::trailers(trailers)),
            (None, None) => None,
        };
        std::task::Poll::Ready(frame.map(Ok))
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_none() && self.1.is_none()
    }
}

/// A gRPC-style answer: `200`, a message, then `grpc-status: code` in the
/// trailers.
fn grpc_answer(code: &'static str) -> Response<DataThenTrailers> {
    let mut trailers = http::HeaderMap::new();
    trailers.insert("grpc-status", http::HeaderValue::from_static(code));
    Response::new(DataThenTrailers(
        Some(Bytes::from_static(b"message")),
        Some(trailers),
    ))
}

#[tokio::test]
async fn an_adaptive_layer_learns_from_a_grpc_status_in_the_trailers() {
    let sem = Arc::new(MultiSemaphore::new([16, 1 << 20]));
    let ctl = every_sample(&sem);
    let mut svc = multisem::http::adaptive_layer(Arc::clone(&ctl), 1024).layer(service_fn(
        |req: Request<Full<Bytes>>| async move {
            let code = match req.uri().path() {
                "/exhausted" => "8",
                "/internal" => "13",
                _ => "0",
            };
            Ok::<_, Infallible>(grpc_answer(code))
        },
    ));
    let mut call = |path: &str| {
        let mut request = Request::new(Full::new(Bytes::from(vec![0; 500])));
        *request.uri_mut() = path.parse().unwrap();
        svc.call(request)
    };
    // OK in the trailers: a success that delivered the request's bytes.
    let response = bounded(call("/ok")).await.unwrap();
    assert_eq!(
        bounded(response.into_body().collect())
            .await
            .unwrap()
            .trailers()
            .unwrap()["grpc-status"],
        "0"
    );
    let window = ctl.last_window().expect("reported at the body's end");
    assert_eq!(
        (window.successes, window.drops, window.delivered_bytes),
        (1, 0, 500)
    );
    // RESOURCE_EXHAUSTED after the message: a drop, though the head said 200.
    let response = bounded(call("/exhausted")).await.unwrap();
    bounded(response.into_body().collect()).await.unwrap();
    let window = ctl.last_window().unwrap();
    assert_eq!((window.successes, window.drops), (0, 1));
    assert_eq!(ctl.limits()[0], 14, "Aimd backed off on the drop: 16 -> 14");
    // INTERNAL: a failure unrelated to load, no sample.
    let windows = ctl.windows();
    let response = bounded(call("/internal")).await.unwrap();
    bounded(response.into_body().collect()).await.unwrap();
    assert_eq!(ctl.windows(), windows, "ignored");
    assert_eq!(sem.available(), sem.capacity());
}

#[tokio::test]
async fn a_permit_body_returns_its_permit_after_trailers() {
    let sem = Arc::new(MultiSemaphore::new([4, 1024]));
    let permit = sem.try_acquire_owned([1, 100]).unwrap();
    let mut body = multisem::http::PermitBody::new(grpc_answer("8").into_body(), permit);
    let data = bounded(body.frame()).await.unwrap().unwrap();
    assert!(data.is_data());
    assert_eq!(sem.available(), [3, 924], "held until the last frame");
    let trailers = bounded(body.frame()).await.unwrap().unwrap();
    assert!(trailers.is_trailers());
    assert_eq!(
        sem.available(),
        sem.capacity(),
        "returned with the trailers"
    );
    assert!(bounded(body.frame()).await.is_none());
}

/// `Retry-After` is the hold's `retry_after` rounded up to whole seconds,
/// at least 1, for any `Duration` (`Duration::MAX` overflowed the rounding).
#[test]
fn retry_after_rounds_up_any_duration() {
    use multisem::http::refusal_response;
    use multisem::tower::{Closed, Refused};

    let refused = Refused::Closed(Closed::default());
    let header = |after: Duration| {
        let response = refusal_response(&refused, after);
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        response.headers()["retry-after"]
            .to_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(header(Duration::ZERO), "1");
    assert_eq!(header(Duration::from_millis(1)), "1");
    assert_eq!(header(Duration::from_secs(3)), "3");
    assert_eq!(header(Duration::from_millis(3001)), "4");
    assert_eq!(header(Duration::MAX), u64::MAX.to_string());
}

/// A request's weight: its `Content-Length`, else its body's exact size,
/// else the weigher's default (a streamed upload of unknown length); a
/// length too large for a `u64`, `u64::MAX`.
#[test]
fn request_bytes_weighs_the_declared_length_else_the_default() {
    use multisem::http::RequestBytes;
    use multisem::tower::Weigh;

    let weigh = RequestBytes::new(777);
    let (_tx, rx) = mpsc::channel::<Bytes>(1);
    let streamed = Request::new(ChannelBody(rx));
    assert_eq!(
        weigh.weigh(&streamed),
        [1, 777],
        "unknown length: the default"
    );
    let (_tx, rx) = mpsc::channel::<Bytes>(1);
    let declared = Request::builder()
        .header(http::header::CONTENT_LENGTH, " 4096 ")
        .body(ChannelBody(rx))
        .unwrap();
    assert_eq!(weigh.weigh(&declared), [1, 4096], "Content-Length");
    let exact = Request::new(Full::new(Bytes::from_static(b"hello")));
    assert_eq!(weigh.weigh(&exact), [1, 5], "the exact size hint");
    let (_tx, rx) = mpsc::channel::<Bytes>(1);
    let garbled = Request::builder()
        .header(http::header::CONTENT_LENGTH, "lots")
        .body(ChannelBody(rx))
        .unwrap();
    assert_eq!(
        weigh.weigh(&garbled),
        [1, 777],
        "an unreadable length: the default"
    );
    // A length past u64::MAX declares more than any capacity: never the
    // default, nor the body's own hint (a reviewer's case: admitted as a
    // request of 777 bytes, or of 0 with an empty body).
    for length in ["18446744073709551616", "99999999999999999999999999"] {
        for empty_body in [false, true] {
            let builder = Request::builder().header(http::header::CONTENT_LENGTH, length);
            let weight = if empty_body {
                weigh.weigh(&builder.body(Full::new(Bytes::new())).unwrap())
            } else {
                let (_tx, rx) = mpsc::channel::<Bytes>(1);
                weigh.weigh(&builder.body(ChannelBody(rx)).unwrap())
            };
            assert_eq!(weight, [1, u64::MAX], "Content-Length {length}");
        }
    }
    assert_eq!(
        weigh.weigh(
            &Request::builder()
                .header(http::header::CONTENT_LENGTH, "18446744073709551615")
                .body(Full::new(Bytes::new()))
                .unwrap()
        ),
        [1, u64::MAX],
        "u64::MAX itself"
    );
}

/// A `Content-Length` is digits only (RFC 9110): anything else counts as
/// absent; a request that declares several lengths, repeated or as a
/// list, weighs the largest, so it is never admitted below what a server
/// framing its body by any of them reads.
#[test]
fn request_bytes_reads_only_digits_and_weighs_the_largest_of_several_lengths() {
    use multisem::http::RequestBytes;
    use multisem::tower::Weigh;

    let weigh = RequestBytes::new(777);
    let weight_of = |lengths: &[&str]| {
        let mut builder = Request::builder();
        for length in lengths {
            builder = builder.header(http::header::CONTENT_LENGTH, *length);
        }
        let (_tx, rx) = mpsc::channel::<Bytes>(1);
        weigh.weigh(&builder.body(ChannelBody(rx)).unwrap())[1]
    };
    for not_a_number in ["+5", "-1", "0x10", "1e3", "", " ", "5 5", "5,", "5, lots"] {
        assert_eq!(
            weight_of(&[not_a_number]),
            777,
            "Content-Length {not_a_number:?}"
        );
    }
    // One unreadable weighs as an absent length would, but hides no
    // readable one beside it (a reviewer's case: 100000000 beside "lots"
    // weighed the default).
    assert_eq!(weight_of(&["5", "lots"]), 777, "one of two unreadable");
    assert_eq!(
        weight_of(&["100000000", "lots"]),
        100_000_000,
        "the larger readable"
    );
    assert_eq!(
        weight_of(&["100000000, "]),
        100_000_000,
        "an empty list element"
    );
    assert_eq!(
        weight_of(&["lots", "100000000"]),
        100_000_000,
        "unreadable first"
    );
    assert_eq!(weight_of(&["007"]), 7, "leading zeros");
    assert_eq!(weight_of(&["42, 42"]), 42, "a list of one length");
    assert_eq!(weight_of(&["5,\t100000000"]), 100_000_000, "a list");
    assert_eq!(
        weight_of(&["5", "100000000"]),
        100_000_000,
        "repeated, the larger second"
    );
    assert_eq!(
        weight_of(&["100000000", "5"]),
        100_000_000,
        "repeated, the larger first"
    );
    assert_eq!(
        weight_of(&["5", "18446744073709551616"]),
        u64::MAX,
        "one past u64::MAX among them"
    );
}

/// The `Retry-After` of a shed `503` from `$layer` (shed, over a service
/// that answers "ok"), with `$sem`'s one request held: a macro, since the
/// layers' types differ.
macro_rules! shed_retry_after {
    ($layer:expr, $sem:expr) => {{
        use tower::ServiceExt;
        let mut svc = $layer
            .shed()
            .layer(service_fn(|_: Request<Full<Bytes>>| async {
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
            }));
        let held = $sem.try_acquire([1, 0]).unwrap();
        let response = futures_executor::block_on(async {
            let request = Request::new(Full::new(Bytes::from_static(b"hi")));
            svc.ready().await.unwrap().call(request).await.unwrap()
        });
        drop(held);
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        response.headers()[http::header::RETRY_AFTER].clone()
    }};
}

/// A shed answer's `Retry-After` is the hold's `retry_after`, in whole
/// seconds rounded up.
#[test]
fn a_shed_answer_carries_the_hold_s_retry_after() {
    use multisem::http::{RequestBytes, UntilBodyEnd};
    use multisem::tower::AdmitLayer;

    let sem = Arc::new(MultiSemaphore::new([1, 1 << 20]));
    let hold = UntilBodyEnd::default().retry_after(Duration::from_millis(2500));
    // On a plain layer, and on `http::layer`'s, which holds until the
    // body's end already.
    let plain = AdmitLayer::new(Arc::clone(&sem), RequestBytes::new(1024)).hold(hold);
    assert_eq!(shed_retry_after!(plain, sem), "3");
    let http_layer = multisem::http::layer(Arc::clone(&sem), 1024);
    assert_eq!(shed_retry_after!(http_layer.clone().hold(hold), sem), "3");
    assert_eq!(shed_retry_after!(http_layer, sem), "1");
}

/// `http::layer` names the dimensions as its semaphore does, or else
/// `requests` and `bytes`.
#[test]
fn the_http_layer_names_dimensions_as_its_semaphore_does() {
    let refusal = |sem: MultiSemaphore<2>| {
        let sem = Arc::new(sem);
        let svc = multisem::http::layer(Arc::clone(&sem), 1024)
            .shed()
            .layer(service_fn(|_: Request<Full<Bytes>>| async {
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
            }));
        refusal_header(svc, &sem)
    };
    let named = MultiSemaphore::builder([1, 1 << 20])
        .names(&["calls", "octets"])
        .build();
    assert!(refusal(named).contains("calls short"));
    assert!(refusal(MultiSemaphore::new([1, 1 << 20])).contains("requests short"));
}

/// The `x-multisem-refused` header of `svc`'s answer while `sem` is full
/// in its first dimension.
fn refusal_header<S, B>(mut svc: S, sem: &MultiSemaphore<2>) -> String
where
    S: tower::Service<Request<Full<Bytes>>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
{
    use tower::ServiceExt;

    let held = sem.try_acquire([1, 0]).unwrap();
    let response = futures_executor::block_on(async {
        let request = Request::new(Full::new(Bytes::from_static(b"hi")));
        svc.ready().await.unwrap().call(request).await.unwrap()
    });
    drop(held);
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let value = response.headers()["x-multisem-refused"].clone();
    let text = value.to_str().map(str::to_owned);
    text.unwrap_or_else(|_| panic!("not visible ASCII: {value:?}"))
}

/// The `x-multisem-refused` header is visible ASCII (RFC 9110, 5.5),
/// whatever the message it carries: a dimension's name may be any text, and
/// a wait under a millisecond reads `µs`.
#[test]
fn a_refusal_header_is_visible_ascii_whatever_the_names_and_the_wait() {
    let handler = || {
        service_fn(|_: Request<Full<Bytes>>| async {
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
        })
    };
    let accented = Arc::new(
        MultiSemaphore::builder([1, 1 << 20])
            .names(&["requêtes", "octets"])
            .build(),
    );
    let shed = multisem::http::layer(Arc::clone(&accented), 1024)
        .shed()
        .layer(handler());
    assert_eq!(
        refusal_header(shed, &accented),
        "shed: requ?tes short, requested 1, available 0"
    );

    // A timer that fires at once: the wait is a few microseconds.
    let sem = Arc::new(MultiSemaphore::new([1, 1 << 20]));
    let waiting = multisem::http::layer(Arc::clone(&sem), 1024)
        .wait_timeout(Duration::from_micros(500), |_| std::future::ready(()))
        .layer(handler());
    let message = refusal_header(waiting, &sem);
    assert!(message.starts_with("timed out after "), "{message}");
}

/// A `PermitBody` tells the size of the body it carries (0 once emptied),
/// and its `Debug` says what it holds.
#[test]
fn a_permit_body_passes_on_its_size_and_debugs_its_permit() {
    use http_body::Body as _;
    use multisem::http::PermitBody;

    let sem = Arc::new(MultiSemaphore::new([4, 1000]));
    let permit = sem.try_acquire_owned([1, 5]).unwrap();
    let body = PermitBody::new(Full::new(Bytes::from_static(b"hello")), permit);
    assert_eq!(body.size_hint().exact(), Some(5));
    let shown = format!("{body:?}");
    assert!(
        shown.contains("permit: Some(OwnedPermit") && shown.contains("empty: false"),
        "{shown}"
    );
    let empty = PermitBody::<Full<Bytes>, multisem::OwnedPermit<2>>::empty();
    assert_eq!(empty.size_hint().exact(), Some(0));
    assert!(format!("{empty:?}").contains("empty: true"));
    drop(body);
    assert_eq!(sem.available(), sem.capacity());
}

/// The README's example ("In a tower / hyper service"), as written there,
/// served by hyper and answering a client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_example() {
    let my_handler = service_fn(|request: Request<Incoming>| async move {
        let len = read_body(Response::new(request.into_body())).await.len();
        Ok::<_, Infallible>(Response::new(full(if len == 3000 { "3000" } else { "?" })))
    });
    // From here to the `service` call, as in the README.
    let sem = Arc::new(MultiSemaphore::new([256, 64 << 20]));
    let svc = tower::ServiceBuilder::new()
        .layer(
            multisem::http::layer(sem.clone(), 1 << 20)
                // wait first come, first served, up to 2 s; or `.shed()` to refuse at once
                .wait_timeout(Duration::from_secs(2), tokio::time::sleep),
        )
        .service(my_handler);
    let addr = serve(svc).await;
    let response = bounded(post(addr, 3000)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(bounded(read_body(response)).await, "3000");
    bounded(until(|| sem.available() == sem.capacity())).await;
}

/// A request too large for a dimension at 0 answers `503` where that
/// capacity may grow again (a drain, a lost lease: retry later), but `413`
/// where its `max_capacity` is 0 too, so that it is 0 for good (on a
/// clamping semaphore too, which refuses such a request at once).
#[tokio::test]
async fn too_large_for_a_dimension_at_zero_for_good_answers_413() {
    use multisem::http::refusal_response;
    use multisem::tower::{AdmitLayer, BoxError, Refused};

    // A request within the maximum may fit once the dimension grows again;
    // one above it never can, however it grows.
    for (max, clamp, request, status) in [
        ([4, 1024], false, 5, StatusCode::SERVICE_UNAVAILABLE),
        ([4, 1024], false, 1024, StatusCode::SERVICE_UNAVAILABLE),
        ([4, 1024], false, 1025, StatusCode::PAYLOAD_TOO_LARGE),
        ([4, 0], false, 5, StatusCode::PAYLOAD_TOO_LARGE),
        ([4, 0], true, 5, StatusCode::PAYLOAD_TOO_LARGE),
    ] {
        let sem = Arc::new(
            MultiSemaphore::builder([4, 0])
                .max_capacity(max)
                .clamp_oversized(clamp)
                .build(),
        );
        let mut svc = AdmitLayer::new(sem, |bytes: &u64| [1, *bytes])
            .shed()
            .layer(service_fn(|_: u64| async { Ok::<_, BoxError>(()) }));
        let err = bounded(svc.call(request)).await.unwrap_err();
        let refused = Refused::find(err.as_ref()).expect("a refusal");
        let Refused::TooLarge(too_large) = &refused else {
            panic!("too large, not {refused:?}");
        };
        assert_eq!(
            (too_large.capacity(), too_large.max_capacity()),
            (0, max[1])
        );
        let response = refusal_response(&refused, Duration::from_secs(1));
        assert_eq!(
            response.status(),
            status,
            "max {max:?}, clamp {clamp}, request {request}"
        );
    }
}

/// `until_body_end(hold)`: refusals "are answered with 413 / 503 responses
/// as `UntilBodyEnd` answers them", and `UntilBodyEnd::retry_after` "sets
/// the Retry-After that a 503 answer carries": on a learning layer, and on
/// `http::adaptive_layer`'s, whose hold it replaces.
#[test]
fn a_learning_layer_s_503_carries_its_hold_s_retry_after() {
    use multisem::adaptive::Outcome;
    use multisem::http::{RequestBytes, StatusOutcome, UntilBodyEnd};
    use multisem::tower::{AdmitLayer, Learn};

    let sem = Arc::new(MultiSemaphore::new([1, 1 << 20]));
    let ctl = every_sample(&sem);
    let classify = |_: Result<&Response<Full<Bytes>>, &Infallible>, _: [u64; 2]| Outcome::success();
    let learning = AdmitLayer::adaptive(Arc::clone(&ctl), RequestBytes::new(10), classify)
        .until_body_end(UntilBodyEnd::default().retry_after(Duration::from_secs(5)));
    assert_eq!(shed_retry_after!(learning, sem), "5");
    let preset: AdmitLayer<RequestBytes, 2, Learn<StatusOutcome, 2, UntilBodyEnd>> =
        multisem::http::adaptive_layer(Arc::clone(&ctl), 10);
    assert_eq!(shed_retry_after!(preset.clone(), sem), "1", "the default");
    let replaced =
        preset.until_body_end(UntilBodyEnd::default().retry_after(Duration::from_secs(7)));
    assert_eq!(shed_retry_after!(replaced, sem), "7");
}

/// A body that fails at once.
struct Failing;

impl http_body::Body for Failing {
    type Data = Bytes;
    type Error = &'static str;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, &'static str>>> {
        std::task::Poll::Ready(Some(Err("reset")))
    }
}

/// `PermitBody` "returns it when the body has yielded its last frame,
/// failed, or been dropped": a failed body need not be dropped first.
#[test]
fn a_permit_body_returns_its_permit_when_the_body_fails() {
    use multisem::http::PermitBody;

    let sem = Arc::new(MultiSemaphore::new([4, 1000]));
    let permit = sem.try_acquire_owned([1, 100]).unwrap();
    let mut body = PermitBody::new(Failing, permit);
    let frame = futures_executor::block_on(body.frame());
    assert!(matches!(frame, Some(Err("reset"))));
    assert!(body.permit().is_none(), "the failure ended the body");
    assert_eq!(sem.available(), sem.capacity(), "returned at the failure");
}

/// `http::adaptive_layer`: "429, 503, 504 and service errors are
/// overload": a service error after the grant is one drop.
#[test]
fn an_http_adaptive_layer_counts_a_service_error_as_a_drop() {
    use multisem::tower::BoxError;
    use tower::ServiceExt;

    let sem = Arc::new(MultiSemaphore::new([4, 1 << 20]));
    let ctl = every_sample(&sem);
    let mut svc = multisem::http::adaptive_layer(Arc::clone(&ctl), 1024).layer(service_fn(
        |_: Request<Full<Bytes>>| async {
            Err::<Response<Full<Bytes>>, BoxError>("timed out inside".into())
        },
    ));
    let err = futures_executor::block_on(async {
        let request = Request::new(Full::new(Bytes::from_static(b"hi")));
        svc.ready().await.unwrap().call(request).await.unwrap_err()
    });
    assert_eq!(err.to_string(), "timed out inside");
    let window = ctl.last_window().expect("the error is a sample");
    assert_eq!((ctl.windows(), window.successes, window.drops), (1, 0, 1));
    assert_eq!(sem.available(), sem.capacity());
}
