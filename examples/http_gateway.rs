//! An HTTP gateway that bounds the requests *and the request bytes* in flight
//! across all its connections with one [`MultiSemaphore`], through the
//! `http` feature's tower layer, plus a load generator that shows the limit
//! holding.
//!
//! The server is hyper 1.x behind `multisem::http::layer`: each request is
//! weighed `[1, Content-Length]` and admitted first come, first served (or
//! shed at once with `--shed`); one that waits longer than `--timeout-ms` is
//! answered `503` with `Retry-After`, one larger than the byte limit `413`
//! at once. The handler reads the body and takes 1 ms per 64 KiB to
//! "process" it; the permit is held until hyper has taken the response body's
//! last frame (here its only one).
//!
//! With `--disk RATE`, the handler writes each body to a disk shared by
//! every request instead, first come first served, at RATE bytes a second; the
//! disk runs at half that rate through the middle third of the run (a
//! neighbour's backup, say), so the right limits move. With `--adaptive`
//! (which brings a 64 MiB/s disk unless `--disk` says otherwise), the limits
//! learn: `multisem::http::adaptive_layer` reports every request to an
//! adaptive controller (the count by `Gradient2` under `Aimd`'s back-off,
//! the bytes by the preset's bandwidth-delay product), which resizes the
//! semaphore, and the status line shows the limits in force. The disk is a
//! byte bottleneck, so the count climbs to its bound and the bytes settle
//! near the largest request plus the disk's bandwidth-delay product, above
//! the default `--max-bytes` of 8 MiB: there they stay at that bound.
//! `--max-requests` and `--max-bytes` are then the limits' upper bounds.
//! `--preset-count` puts the preset's count (Little's law) on the count
//! instead, to see it undercount here (README, "The demo").
//!
//! The load mode runs client tasks on keep-alive connections, posting
//! bodies of varied sizes (most 100 B to 16 KiB, 3% of them 256 KiB to
//! 4 MiB), and prints a status line once a second: requests served and
//! latency, and the 503s, 413s and lost answers so far, beside the
//! requests and bytes in flight against the limits. An answer is lost
//! where the server refuses a request before reading its body: hyper then
//! closes the connection, and a client still sending the body may see the
//! connection reset instead of the answer. The client counts those apart,
//! and sends again on a new connection a request that never left; it gives
//! up on one unanswered after 5 s (beside its own server, 1 s past
//! `--timeout-ms` if that is longer; at most 2 s past the run's end) and
//! counts it as timed out. At the end the server stops accepting connections and lets
//! each finish the request it is on, for 2 s at most.
//! `serve` and `load` alone print only what each can measure.
//!
//! ```text
//! cargo run --release --features http --example http_gateway                # server + load, 10 s
//! cargo run --release --features http --example http_gateway -- --shed       # shed instead of waiting
//! cargo run --release --features http --example http_gateway -- --adaptive   # limits that learn, 30 s
//! cargo run --release --features http --example http_gateway -- --adaptive --preset-count
//! cargo run --release --features http --example http_gateway -- serve --listen 127.0.0.1:8080
//! cargo run --release --features http --example http_gateway -- load --target 127.0.0.1:8080
//! cargo run --release --features http --example http_gateway -- --help
//! ```

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use multisem::MultiSemaphore;
use multisem::adaptive::{Aimd, Controller, Gradient2, Min, preset};
use multisem::tower::AdmitLayer;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tower::{Layer, Service, service_fn};

mod common;
use common::{
    LARGE_MAX, MIB, SMALL_MIN, XorShift, args_or_exit, bump, errln, flag_value, fmt_size,
    message_len, mib, options_or_exit, outln, parse_number, parse_size, read, split_flag, switch,
};

fn help() -> String {
    let d = Config::default();
    format!(
        "\
http_gateway: a hyper server that bounds requests and request bytes in flight
with one MultiSemaphore<2> (multisem's `http` feature), and a load generator.

USAGE:
    http_gateway [OPTIONS]                  server and load in one process
    http_gateway serve [OPTIONS]            only the server (until --seconds pass)
    http_gateway load --target ADDR [...]   only the load, against a running server

OPTIONS:
    --seconds N         how long to run, in seconds (default {seconds})
    -h, --help          print this help

  The server's (refused in load mode, which runs none):
    --listen ADDR       server address (default {listen}; port 0 picks a free one)
    --max-requests N    limit on requests in flight (default {requests})
    --max-bytes SIZE    limit on request bytes in flight: 8MiB, 512KiB or a number
                        of bytes (default {bytes})
    --timeout-ms N      how long a request may wait for admission (default {timeout})
    --shed              refuse at once (503) instead of waiting
    --disk RATE         the handler writes each body to a shared disk of RATE bytes/s
                        (e.g. 64MiB), halved through the middle third of the run
                        (needs --seconds 3 or more)
    --adaptive          learn the limits from the answers (a 64MiB disk unless --disk
                        says otherwise; the limits above become upper bounds; 30 s
                        unless --seconds says otherwise)
    --preset-count      with --adaptive: the preset's count (Little's law on the base
                        delay) instead of Min(Aimd, Gradient2), to see it undercount

  The load's (refused in serve mode, which runs none):
    --target ADDR       the server to load (load mode only)
    --clients N         client tasks, one keep-alive connection each (default {clients})
    --seed N            seed for the request sizes (default {seed})

Options take their value as the next argument or after '=' (--seconds=5).
Bodies above the byte limit are answered 413 at once.

Once a second it prints the requests answered 200 in that second and their
MiB, the 503s, 413s and lost answers so far, the p50 and p99 latency, and
the requests and bytes in flight against the limits with the requests
queued. An answer is lost when the connection closes before it arrives: the
server refuses before reading the body, hyper then closes the connection,
and a client still sending the body may see a reset instead of the answer.
`serve` shows only the server's side (requests admitted per second, its
503s and 413s so far, in flight, queued); `load` only the clients' side.

A client gives up on a request unanswered after {request_timeout} s (or, beside its own
server, 1 s past --timeout-ms if that is longer), or {drain} s past the run's end, and
counts it as timed out. When the time is up the server stops
accepting connections and lets each finish the request it is on; those
still busy {drain} s later are closed, their requests cut off.

EXIT STATUS:
    0  every permit came back, and the bytes in flight never passed the limit
    1  they did not, or the load could not reach the server
    2  bad options
",
        seconds = d.seconds,
        listen = d.listen,
        clients = d.clients,
        requests = d.max_requests,
        bytes = fmt_size(d.max_bytes).replace(' ', ""),
        timeout = d.timeout.as_millis(),
        seed = d.seed,
        request_timeout = REQUEST_TIMEOUT.as_secs(),
        drain = DRAIN.as_secs(),
    )
}

/// How long a client waits for an answer before it counts the request as
/// timed out and drops its connection.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the run's end waits for what is in flight: the clients' last
/// answers, then the server's connections to finish their requests.
const DRAIN: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Both,
    Serve,
    Load,
}

#[derive(Debug, Clone)]
struct Config {
    mode: Mode,
    seconds: u64,
    listen: SocketAddr,
    target: Option<SocketAddr>,
    clients: u64,
    max_requests: u64,
    max_bytes: u64,
    timeout: Duration,
    shed: bool,
    seed: u64,
    /// Bytes a second of the handlers' shared disk, if any.
    disk: Option<u64>,
    adaptive: bool,
    /// With `adaptive`: `preset::count()` on the count.
    preset_count: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mode: Mode::Both,
            seconds: 10,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            target: None,
            clients: 64,
            max_requests: 64,
            max_bytes: 8 * MIB,
            timeout: Duration::from_millis(200),
            shed: false,
            seed: 1,
            disk: None,
            adaptive: false,
            preset_count: false,
        }
    }
}

fn parse_addr(flag: &str, text: &str) -> Result<SocketAddr, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("{flag}: '{text}' is not an address (write e.g. 127.0.0.1:8080)"))
}

/// Parses the options; `Ok(None)` means `--help`.
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Config>, String> {
    let mut cfg = Config::default();
    let mut seconds = None;
    let mut first = true;
    // The options given, to refuse those that mean nothing in the mode.
    let mut given = Vec::new();
    while let Some(arg) = args.next() {
        if std::mem::take(&mut first) && !arg.starts_with('-') {
            cfg.mode = match arg.as_str() {
                "serve" => Mode::Serve,
                "load" => Mode::Load,
                _ => return Err(format!("unknown mode '{arg}' (serve or load)")),
            };
            continue;
        }
        let (flag, inline) = split_flag(&arg);
        let mut value = || flag_value(&flag, inline.as_deref(), &mut args);
        match flag.as_str() {
            "-h" | "--help" => {
                switch(&flag, inline.as_deref())?;
                return Ok(None);
            }
            "--shed" => cfg.shed = switch(&flag, inline.as_deref())?,
            "--adaptive" => cfg.adaptive = switch(&flag, inline.as_deref())?,
            "--preset-count" => cfg.preset_count = switch(&flag, inline.as_deref())?,
            "--seconds" => seconds = Some(parse_number(&flag, &value()?, 1, 3600)?),
            "--disk" => {
                let rate = parse_size(&flag, &value()?, 1 << 40)?;
                if rate < MIB {
                    return Err(format!(
                        "{flag}: at least 1MiB a second (slower, the largest bodies would outlast the run)"
                    ));
                }
                cfg.disk = Some(rate);
            }
            "--listen" => cfg.listen = parse_addr(&flag, &value()?)?,
            "--target" => cfg.target = Some(parse_addr(&flag, &value()?)?),
            "--clients" => cfg.clients = parse_number(&flag, &value()?, 1, 4096)?,
            "--max-requests" => cfg.max_requests = parse_number(&flag, &value()?, 1, 1 << 20)?,
            "--max-bytes" => cfg.max_bytes = parse_size(&flag, &value()?, 1 << 40)?,
            "--timeout-ms" => {
                cfg.timeout = Duration::from_millis(parse_number(&flag, &value()?, 1, 60_000)?)
            }
            "--seed" => cfg.seed = parse_number(&flag, &value()?, 0, u64::MAX)?,
            "serve" | "load" => {
                return Err(format!(
                    "the mode comes first: http_gateway {arg} [OPTIONS], not after an option"
                ));
            }
            _ => return Err(format!("unknown option '{arg}'")),
        }
        given.push(flag);
    }
    for flag in &given {
        let flag = flag.as_str();
        match cfg.mode {
            Mode::Load if SERVER_OPTIONS.contains(&flag) => {
                return Err(format!(
                    "{flag} is the server's option, and load mode runs no server"
                ));
            }
            Mode::Serve if LOAD_OPTIONS.contains(&flag) => {
                return Err(format!(
                    "{flag} is the load's option, and serve mode runs no load"
                ));
            }
            Mode::Both if flag == "--target" => {
                return Err(
                    "--target is for load mode; the default mode loads its own server".into(),
                );
            }
            _ => {}
        }
    }
    if cfg.mode == Mode::Load && cfg.target.is_none() {
        return Err("load needs --target ADDR (the server to load)".into());
    }
    if cfg.adaptive {
        cfg.disk = cfg.disk.or(Some(64 * MIB));
        cfg.seconds = 30;
    }
    cfg.seconds = seconds.unwrap_or(cfg.seconds);
    if cfg.disk.is_some() && cfg.seconds < 3 {
        let flag = if cfg.adaptive { "--adaptive" } else { "--disk" };
        return Err(format!(
            "{flag} needs --seconds of at least 3: the disk is halved for the middle third"
        ));
    }
    if cfg.preset_count && !cfg.adaptive {
        return Err("--preset-count is for --adaptive".into());
    }
    if cfg.adaptive && cfg.max_bytes < LARGE_MAX {
        return Err(format!(
            "--adaptive needs --max-bytes of at least the largest request ({})",
            fmt_size(LARGE_MAX)
        ));
    }
    Ok(Some(cfg))
}

/// The options only the server uses: refused in load mode.
const SERVER_OPTIONS: [&str; 8] = [
    "--listen",
    "--max-requests",
    "--max-bytes",
    "--timeout-ms",
    "--shed",
    "--disk",
    "--adaptive",
    "--preset-count",
];

/// The options only the load uses: refused in serve mode.
const LOAD_OPTIONS: [&str; 3] = ["--target", "--clients", "--seed"];

// ---------------------------------------------------------------------------
// The server. Relaxed is enough for every counter here: they are statistics.
// ---------------------------------------------------------------------------

/// What the handlers measure: the declared bytes of the requests being
/// handled now, and the most ever at once.
#[derive(Default)]
struct Handling {
    bytes: AtomicU64,
    peak: AtomicU64,
}

/// A handler's declared bytes, counted in `Handling` until it is dropped.
struct Handled<'a> {
    handling: &'a Handling,
    bytes: u64,
}

impl<'a> Handled<'a> {
    fn enter(handling: &'a Handling, bytes: u64) -> Self {
        let now = handling.bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
        handling.peak.fetch_max(now, Ordering::Relaxed);
        Handled { handling, bytes }
    }
}

impl Drop for Handled<'_> {
    fn drop(&mut self) {
        self.handling.bytes.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

/// The handlers' shared disk: writes one body after another, first come
/// first served, at `rate` bytes a second.
struct Disk {
    full_rate: u64,
    rate: AtomicU64,
    /// When the disk will have written everything handed to it so far.
    free_at: Mutex<Instant>,
}

impl Disk {
    fn new(rate: u64) -> Self {
        Disk {
            full_rate: rate,
            rate: AtomicU64::new(rate),
            free_at: Mutex::new(Instant::now()),
        }
    }

    /// Queues `bytes`; returns when they will have been written.
    fn write(&self, bytes: u64) -> Instant {
        let rate = read(&self.rate).max(1);
        let mut free_at = self.free_at.lock().unwrap();
        let start = (*free_at).max(Instant::now());
        *free_at = start + Duration::from_secs_f64(bytes as f64 / rate as f64);
        *free_at
    }

    /// Full speed, but half through the middle third of a run of `seconds`.
    fn follow_schedule(&self, second: u64, seconds: u64) {
        let halved = (seconds / 3..2 * seconds / 3).contains(&second);
        let rate = if halved {
            self.full_rate / 2
        } else {
            self.full_rate
        };
        self.rate.store(rate, Ordering::Relaxed);
    }
}

/// Waits until `deadline`, to the nearest tick of tokio's timer (1 ms):
/// the timer rounds every sleep up to a whole tick, which would make a
/// 100 B write (1.5 µs at 64 MiB/s) take a millisecond, as long as a
/// 64 KiB one; here a deadline under half a tick away is met at once.
async fn wait_until(deadline: Instant) {
    if deadline > Instant::now() + Duration::from_micros(500) {
        tokio::time::sleep_until(deadline.into()).await;
    }
}

async fn serve(
    cfg: &Config,
    sem: Arc<MultiSemaphore<2>>,
    controller: Option<Arc<Controller<2>>>,
    disk: Option<Arc<Disk>>,
    handling: Arc<Handling>,
) -> Result<(SocketAddr, Server), String> {
    let listener = TcpListener::bind(cfg.listen)
        .await
        .map_err(|err| format!("cannot listen on {}: {err}", cfg.listen))?;
    let addr = listener.local_addr().map_err(|err| err.to_string())?;
    let handler = service_fn(move |req: Request<Incoming>| {
        let handling = Arc::clone(&handling);
        let disk = disk.clone();
        async move {
            let declared = multisem::http::RequestBytes::new(0).bytes(&req);
            // Counted while this handler runs, and uncounted when it ends,
            // however it ends: hyper drops it when its client goes away.
            let _handled = Handled::enter(&handling, declared);
            let body = req.into_body().collect().await.map(|b| b.to_bytes().len());
            let done = match disk {
                // Written to the shared disk, after what came before.
                Some(disk) => disk.write(declared),
                // "Processing": 1 ms per 64 KiB.
                None => Instant::now() + Duration::from_micros(declared / 64),
            };
            wait_until(done).await;
            let text = match body {
                Ok(len) => format!("received {len} bytes\n"),
                Err(err) => format!("body failed: {err}\n"),
            };
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(text))))
        }
    });
    let server = match controller {
        Some(controller) => {
            let layer = multisem::http::adaptive_layer(controller, 64 * 1024);
            accept(listener, admission(cfg, layer).layer(handler))
        }
        None => {
            let layer = multisem::http::layer(sem, 64 * 1024);
            accept(listener, admission(cfg, layer).layer(handler))
        }
    };
    Ok((addr, server))
}

/// Shed at once, or wait up to the timeout.
fn admission<W, H>(cfg: &Config, layer: AdmitLayer<W, 2, H>) -> AdmitLayer<W, 2, H> {
    if cfg.shed {
        layer.shed()
    } else {
        layer.wait_timeout(cfg.timeout, tokio::time::sleep)
    }
}

/// The running server, until `stop`.
struct Server {
    stop: watch::Sender<bool>,
    /// The accept loop; it returns the connections it closed at the end.
    task: tokio::task::JoinHandle<u64>,
}

impl Server {
    /// Stops accepting connections and asks each open one to close once
    /// it has answered the request it is on; closes those still busy after
    /// `DRAIN`, which drops their requests and so their permits. Returns
    /// how many it closed so.
    async fn stop(self) -> u64 {
        let _ = self.stop.send(true);
        self.task.await.unwrap_or(0)
    }
}

/// Serves `svc` on every connection `listener` accepts, one task each,
/// until the server is stopped.
fn accept<S, B>(listener: TcpListener, svc: S) -> Server
where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(async move {
        let mut connections = JoinSet::new();
        let mut stopping = stopped.clone();
        let mut last_error: Option<Instant> = None;
        loop {
            let stream = tokio::select! {
                _ = stopping.changed() => break,
                // Reap the connections that ended.
                Some(_) = connections.join_next() => continue,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(err) => {
                        // Out of file descriptors, say: wait a little and
                        // accept again, saying so once a second at most.
                        if last_error.is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) {
                            errln!("server: cannot accept a connection ({err}); retrying");
                            last_error = Some(Instant::now());
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let svc = TowerToHyperService::new(svc.clone());
            let mut stopping = stopped.clone();
            connections.spawn(async move {
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc);
                let mut conn = std::pin::pin!(conn);
                tokio::select! {
                    _ = conn.as_mut() => return,
                    _ = stopping.changed() => {}
                }
                // Answer the request in flight, if any, then close.
                conn.as_mut().graceful_shutdown();
                let _ = conn.await;
            });
        }
        drop(listener);
        let drained = tokio::time::timeout(DRAIN, async {
            while connections.join_next().await.is_some() {}
        });
        let _ = drained.await;
        let busy = connections.len() as u64;
        connections.shutdown().await;
        busy
    });
    Server { stop, task }
}

// ---------------------------------------------------------------------------
// The load.
// ---------------------------------------------------------------------------

#[derive(Default)]
struct Load {
    ok: AtomicU64,
    ok_bytes: AtomicU64,
    unavailable: AtomicU64,
    too_large: AtomicU64,
    /// Requests sent (at least in part) whose answer never came: the
    /// connection closed first.
    lost: AtomicU64,
    /// Requests unanswered by their deadline (the client's patience, or
    /// `DRAIN` past the run's end).
    timed_out: AtomicU64,
    /// Connections that could not be made, and unexpected answers.
    failed: AtomicU64,
    /// Latencies of this second's requests, in microseconds.
    latencies: Mutex<Vec<u64>>,
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(target: SocketAddr, deadline: Instant) -> Option<Sender> {
    let stream = tokio::time::timeout_at(deadline.into(), TcpStream::connect(target))
        .await
        .ok()?
        .ok()?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .ok()?;
    tokio::spawn(conn);
    Some(sender)
}

/// One client: posts requests to `target` until `until`, each given
/// `patience` for its answer.
async fn client(
    target: SocketAddr,
    seed: u64,
    id: u64,
    (until, patience): (Instant, Duration),
    load: Arc<Load>,
) {
    let mut rng = XorShift::new(seed, id);
    let mut sender = None;
    // A request the connection closed before sending any of it: it goes
    // out again on the next connection.
    let mut unsent = None;
    while Instant::now() < until {
        // A request (or a connection) gets its `patience`, and never more
        // than `DRAIN` past the run's end.
        let deadline = (Instant::now() + patience).min(until + DRAIN);
        let Some(conn) = sender.as_mut() else {
            sender = connect(target, deadline).await;
            if sender.is_none() {
                bump(&load.failed, 1);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            continue;
        };
        if conn.ready().await.is_err() {
            // The server closed the connection (as it does after answering
            // a request whose body it did not read): reconnect.
            sender = None;
            continue;
        }
        let (len, request) = unsent.take().unwrap_or_else(|| {
            let len = message_len(&mut rng);
            let request = Request::post("/")
                .header(http::header::HOST, target.to_string())
                .body(Full::new(Bytes::from(vec![b'x'; len as usize])))
                .expect("a valid request");
            (len, request)
        });
        let started = Instant::now();
        let answer = tokio::time::timeout_at(deadline.into(), async {
            let response = conn.try_send_request(request).await?;
            let status = response.status();
            let retry_after = response.headers().get(http::header::RETRY_AFTER).is_some();
            let _ = response.into_body().collect().await;
            Ok::<_, hyper::client::conn::TrySendError<_>>((status, retry_after))
        });
        let (status, retry_after) = match answer.await {
            Ok(Ok(answer)) => answer,
            Err(_elapsed) => {
                // The connection still waits for this answer: a new one
                // for the next request.
                bump(&load.timed_out, 1);
                sender = None;
                continue;
            }
            Ok(Err(mut err)) => {
                sender = None;
                match err.take_message() {
                    // Never sent: nothing lost, it goes on the next connection.
                    Some(request) => unsent = Some((len, request)),
                    // Sent, at least in part, and the connection closed
                    // before the answer came: typically a refusal (503 or
                    // 413) the server answered without reading the body,
                    // lost to a reset while this client was still sending.
                    None => bump(&load.lost, 1),
                }
                continue;
            }
        };
        load.latencies
            .lock()
            .unwrap()
            .push(started.elapsed().as_micros() as u64);
        match status {
            StatusCode::OK => {
                bump(&load.ok, 1);
                bump(&load.ok_bytes, len);
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                bump(&load.unavailable, 1);
                // Honour Retry-After, shortened: a demo has no second to spare.
                if retry_after {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            StatusCode::PAYLOAD_TOO_LARGE => {
                bump(&load.too_large, 1);
                sender = None;
            }
            _ => bump(&load.failed, 1),
        }
    }
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

// ---------------------------------------------------------------------------
// Main.
// ---------------------------------------------------------------------------

fn main() -> ExitCode {
    let args = match args_or_exit() {
        Ok(args) => args,
        Err(code) => return code,
    };
    let cfg = match options_or_exit(parse_args(args.into_iter()), help) {
        Ok(cfg) => cfg,
        Err(code) => return code,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(run(cfg))
}

async fn run(cfg: Config) -> ExitCode {
    let sem = Arc::new(MultiSemaphore::new([cfg.max_requests, cfg.max_bytes]));
    // The limits learn between these bounds, starting at the upper ones.
    // Not the preset's count (Little's law on the base delay) unless asked
    // (`--preset-count`): the 100 B requests here take microseconds and the
    // 4 MiB ones tens of milliseconds, and every request waits its turn at
    // the disk, so the base delay is far below the mean round trip and that
    // count stays at 2, and many more requests wait out the layer's timeout
    // (see `preset::count`). Gradient2 grows it while the round trips hold.
    let controller = cfg.adaptive.then(|| {
        let builder = Controller::builder(Arc::clone(&sem));
        let requests = 1..=cfg.max_requests;
        let builder = if cfg.preset_count {
            builder.limit(0, requests, preset::count())
        } else {
            builder.limit(0, requests, Min(Aimd::default(), Gradient2::default()))
        };
        builder
            .limit(1, LARGE_MAX..=cfg.max_bytes, preset::bytes())
            .window(preset::WINDOW, preset::MIN_SAMPLES)
            .build()
    });
    let disk = cfg.disk.map(|rate| Arc::new(Disk::new(rate)));
    let handling = Arc::new(Handling::default());
    let serving = cfg.mode != Mode::Load;
    let (target, server) = if serving {
        let (controller, disk, handling) =
            (controller.clone(), disk.clone(), Arc::clone(&handling));
        match serve(&cfg, Arc::clone(&sem), controller, disk, handling).await {
            Ok((addr, server)) => (addr, Some(server)),
            Err(message) => {
                errln!("error: {message}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        (cfg.target.expect("load mode has a target"), None)
    };
    let admission = if cfg.shed {
        "shed at once".to_string()
    } else {
        format!("wait up to {} ms", cfg.timeout.as_millis())
    };
    if serving {
        let limits = if cfg.adaptive {
            format!(
                "limits that learn: requests 1-{}, request-body bytes {}-{} in flight",
                cfg.max_requests,
                fmt_size(LARGE_MAX),
                fmt_size(cfg.max_bytes),
            )
        } else {
            format!(
                "limits {} requests and {} of request bodies in flight",
                cfg.max_requests,
                fmt_size(cfg.max_bytes),
            )
        };
        outln!("http_gateway: serving on http://{target}; {limits}; {admission}");
        if cfg.adaptive {
            outln!(
                "  (the bytes never below the largest request; each answer is reported to the \
                 controller by its status, timed to the end of its body)"
            );
        }
        if let Some(disk) = &disk {
            outln!(
                "  handlers write to a disk of {:.0} MiB/s, halved from {} s to {} s",
                mib(disk.full_rate),
                cfg.seconds / 3,
                2 * cfg.seconds / 3
            );
        }
    }
    let load = Arc::new(Load::default());
    let start = Instant::now();
    let until = start + Duration::from_secs(cfg.seconds);
    let clients: Vec<_> = if cfg.mode == Mode::Serve {
        Vec::new()
    } else {
        outln!(
            "load: {} clients posting to http://{target} for {} s",
            cfg.clients,
            cfg.seconds
        );
        // Beside its own server, a client waits for the server's answer
        // (a 503 after --timeout-ms) rather than give up before it.
        let patience = match cfg.mode {
            Mode::Load => REQUEST_TIMEOUT,
            Mode::Both | Mode::Serve => REQUEST_TIMEOUT.max(cfg.timeout + Duration::from_secs(1)),
        };
        (0..cfg.clients)
            .map(|id| {
                let load = Arc::clone(&load);
                tokio::spawn(client(target, cfg.seed, id, (until, patience), load))
            })
            .collect()
    };
    let table = Columns::new(cfg.mode);
    table.print_header();
    let (mut last_ok, mut last_bytes, mut last_admitted) = (0, 0, 0);
    for second in 1..=cfg.seconds {
        if let Some(disk) = &disk {
            disk.follow_schedule(second - 1, cfg.seconds);
        }
        tokio::time::sleep_until((start + Duration::from_secs(second)).into()).await;
        let mut cells = vec![format!("{second}s")];
        if cfg.mode == Mode::Serve {
            // What the server alone can tell: its semaphore's counters.
            let stats = sem.stats();
            let refusals = server_refusals(&cfg, &stats);
            cells.push((stats.acquired - last_admitted).to_string());
            cells.push(refusals.unavailable.iter().sum::<u64>().to_string());
            cells.push(refusals.too_large.iter().sum::<u64>().to_string());
            last_admitted = stats.acquired;
        } else {
            let mut latencies = std::mem::take(&mut *load.latencies.lock().unwrap());
            latencies.sort_unstable();
            let (ok, bytes) = (read(&load.ok), read(&load.ok_bytes));
            cells.push((ok - last_ok).to_string());
            cells.push(format!("{:.1}", mib(bytes - last_bytes)));
            cells.push(read(&load.unavailable).to_string());
            cells.push(read(&load.too_large).to_string());
            cells.push(read(&load.lost).to_string());
            cells.push(format!("{:.1}", percentile(&latencies, 0.50)));
            cells.push(format!("{:.1}", percentile(&latencies, 0.99)));
            (last_ok, last_bytes) = (ok, bytes);
        }
        if serving {
            let (capacity, held) = (sem.capacity(), sem.in_flight());
            cells.push(format!("{} / {}", held[0], capacity[0]));
            cells.push(format!("{:.1} / {:.1}", mib(held[1]), mib(capacity[1])));
            cells.push(sem.waiters().to_string());
        }
        outln!("{}", table.line(&cells));
    }
    for client in clients {
        let _ = client.await;
    }
    // No more connections; those open finish their requests or are cut off.
    let end = match server {
        Some(server) => End {
            in_flight: sem.in_flight()[0],
            queued: sem.waiters() as u64,
            cut_off: server.stop().await,
        },
        None => End::default(),
    };
    if let Some(controller) = &controller {
        let limits = controller.limits();
        outln!(
            "\ncontroller: resized the limits {} times; now {} requests and {}",
            controller.resizes(),
            limits[0],
            fmt_size(limits[1])
        );
    }
    report(&cfg, &sem, &handling, &load, end).await
}

/// What the server still had when the time was up.
#[derive(Default)]
struct End {
    /// Requests in flight then, and queued (each connection was let
    /// finish its own).
    in_flight: u64,
    queued: u64,
    /// Connections still busy `DRAIN` later, closed with their requests.
    cut_off: u64,
}

/// The status line's columns for a mode: only what that mode can measure.
/// Each is a group label (shared by neighbours), a name and a width.
struct Columns(Vec<(&'static str, &'static str, usize)>);

impl Columns {
    fn new(mode: Mode) -> Self {
        let mut columns = vec![("", "time", 5)];
        if mode == Mode::Serve {
            columns.extend([
                ("per second", "admitted", 10),
                ("answered so far", "503", 6),
                ("answered so far", "413", 7),
            ]);
        } else {
            columns.extend([
                ("per second", "ok", 7),
                ("per second", "MiB", 7),
                ("so far", "503", 6),
                ("so far", "413", 5),
                ("so far", "lost", 5),
                ("latency", "p50 ms", 7),
                ("latency", "p99 ms", 7),
            ]);
        }
        if mode != Mode::Load {
            columns.extend([
                ("in flight / limit", "requests", 13),
                ("in flight / limit", "MiB", 13),
                ("", "queued", 6),
            ]);
        }
        Columns(columns)
    }

    /// One row: each cell right-aligned in its column, two spaces apart.
    fn line(&self, cells: &[String]) -> String {
        let mut line = String::new();
        for (cell, (_, _, width)) in cells.iter().zip(&self.0) {
            line.push_str(&format!("{cell:>width$}  "));
        }
        line.trim_end().to_string()
    }

    /// The group labels, each centred over its columns, then the names.
    fn print_header(&self) {
        let mut groups = String::new();
        let mut i = 0;
        while i < self.0.len() {
            let label = self.0[i].0;
            let mut span = self.0[i].2;
            let mut j = i + 1;
            while j < self.0.len() && !label.is_empty() && self.0[j].0 == label {
                span += 2 + self.0[j].2;
                j += 1;
            }
            groups.push_str(&format!("{label:^span$}  "));
            i = j;
        }
        outln!("{}", groups.trim_end());
        let names: Vec<String> = self.0.iter().map(|c| c.1.to_string()).collect();
        outln!("{}", self.line(&names));
    }
}

/// The server's refusals so far, per dimension, from its semaphore's
/// counters.
struct Refusals {
    /// Answered 503: shed at once (`refused`, less the `exceeded` among
    /// them), or timed out in the queue (`timed_out_by`).
    unavailable: [u64; 2],
    /// Answered 413 at once: larger than a limit (`exceeded`).
    too_large: [u64; 2],
}

fn server_refusals(cfg: &Config, stats: &multisem::Stats<2>) -> Refusals {
    // In shed mode the layer's try is a `try_acquire`: each failure counts
    // in `refused`, those above a capacity in `exceeded` too, and every
    // other failure is answered 503. In wait mode nothing counts as
    // refused: a request that does not fit queues (`waited`), and only a
    // timeout is answered 503; one above a capacity counts in `exceeded`.
    // (A shrink can fail a queued request as too large; here the bytes
    // never shrink below the largest request.)
    let unavailable = if cfg.shed {
        [0, 1].map(|d| stats.refused[d].saturating_sub(stats.exceeded[d]))
    } else {
        stats.timed_out_by
    };
    Refusals {
        unavailable,
        too_large: stats.exceeded,
    }
}

async fn report(
    cfg: &Config,
    sem: &MultiSemaphore<2>,
    handling: &Handling,
    load: &Load,
    end: End,
) -> ExitCode {
    let mut healthy = true;
    if cfg.mode != Mode::Serve {
        let timed_out = match read(&load.timed_out) {
            0 => String::new(),
            n => format!(", {n} timed out unanswered"),
        };
        outln!(
            "\nload: {} served ({:.1} MiB), {} answered 503, {} answered 413, \
             {} answers lost to a closed connection, {} failed{timed_out}",
            read(&load.ok),
            mib(read(&load.ok_bytes)),
            read(&load.unavailable),
            read(&load.too_large),
            read(&load.lost),
            read(&load.failed),
        );
        if read(&load.ok) == 0 {
            let why = if cfg.mode == Mode::Both && cfg.max_bytes < SMALL_MIN {
                format!(
                    ": every body is larger than --max-bytes ({}; the smallest is {})",
                    fmt_size(cfg.max_bytes),
                    fmt_size(SMALL_MIN)
                )
            } else if read(&load.failed) > 0 && read(&load.too_large) + read(&load.unavailable) == 0
            {
                " (connections failed: is the server there?)".to_string()
            } else {
                " (the counts above say what became of them)".to_string()
            };
            outln!("FAIL: no request was answered 200{why}");
            healthy = false;
        }
    }
    if cfg.mode == Mode::Load {
        return if healthy {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    // Let the last responses finish sending, then check the books.
    for _ in 0..200 {
        if sem.available() == sem.capacity() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let peak = read(&handling.peak);
    let stats = sem.stats();
    let refusals = server_refusals(cfg, &stats);
    let by = |v: [u64; 2]| format!("requests {}, bytes {}", v[0], v[1]);
    // With the controller, the byte limit in force moved below this bound.
    let limit = if cfg.adaptive { "upper bound" } else { "limit" };
    outln!(
        "server: {} admitted; peak {} of request bodies in handlers ({limit} {})",
        stats.acquired,
        fmt_size(peak),
        fmt_size(cfg.max_bytes),
    );
    if end.in_flight + end.queued > 0 {
        outln!(
            "  {} requests in flight and {} queued at the end, not leaked: each connection \
             was let finish its own",
            end.in_flight,
            end.queued
        );
    }
    if end.cut_off > 0 {
        outln!(
            "  {} connections still busy {} s later were closed, dropping their requests",
            end.cut_off,
            DRAIN.as_secs()
        );
    }
    if cfg.shed {
        outln!(
            "  {} shed at once and answered 503 (stats.refused less exceeded; by {})",
            refusals.unavailable.iter().sum::<u64>(),
            by(refusals.unavailable),
        );
    } else {
        outln!(
            "  {} queued (stats.waited; held back by {})",
            stats.waited.iter().sum::<u64>(),
            by(stats.waited),
        );
        outln!(
            "  {} admitted after their wait (stats.acquired_after_wait)",
            stats.acquired_after_wait,
        );
        outln!(
            "  {} timed out in the queue and answered 503 (stats.timed_out; held back by {})",
            stats.timed_out,
            by(stats.timed_out_by),
        );
        outln!(
            "  {} left the queue before their turn, their client gone (stats.cancelled)",
            stats.cancelled,
        );
        if stats.waits_in_progress() != 0 {
            outln!(
                "FAIL: {} waits had not ended after the load",
                stats.waits_in_progress()
            );
            healthy = false;
        }
    }
    outln!(
        "  {} larger than a limit, answered 413 at once (stats.exceeded; by {})",
        refusals.too_large.iter().sum::<u64>(),
        by(refusals.too_large),
    );
    if peak > cfg.max_bytes {
        outln!("FAIL: the bytes in flight passed the limit");
        healthy = false;
    }
    if sem.available() == sem.capacity() {
        outln!("ok: every permit came back (available == capacity)");
    } else {
        outln!(
            "FAIL: available {:?} != capacity {:?} after the load",
            sem.available(),
            sem.capacity()
        );
        healthy = false;
    }
    if healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
