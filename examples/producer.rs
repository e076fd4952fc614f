//! A simulated asynchronous message producer that limits what it has in flight
//! by message count and by bytes at the same time, with one [`MultiSemaphore`].
//!
//! Several sender threads make messages of varied sizes (most between 100 B and
//! 16 KiB, a few between 256 KiB and 4 MiB). Each message is admitted with
//! `acquire_owned_blocking_timeout([1, len], timeout)`: it takes one message permit and
//! `len` byte permits, both or neither. The [`OwnedPermit`] travels with the
//! message into a simulated broker, and the broker's completion callback, on a
//! broker thread, drops it. The broker has latency and fails a share of the
//! sends (errors, and slow replies that time out), so every path runs.
//!
//! Once a second the example prints a status line: messages and MiB sent per
//! second, what is in flight against each limit, how many senders are queued,
//! and how many timed out, by the limit that was short. At the end it prints a
//! summary and checks that `available() == capacity()` once the brokers have
//! drained: every permit came back.
//!
//! With `--naive` the same load runs through two separate counting semaphores
//! taken one after the other, with the bug Apache RocketMQ's producer shipped
//! (apache/rocketmq#8140, fixed by #8661): when the bytes acquire times out, the
//! message permit already taken is never given back. Watch the message limit
//! leak away and throughput fall.
//!
//! ```text
//! cargo run --release --example producer                  # multisem, 10 s
//! cargo run --release --example producer -- --naive       # two semaphores, the RocketMQ bug
//! cargo run --release --example producer -- --adaptive    # limits that follow the broker
//! cargo run --release --features futures --example producer -- --stream
//!                                   # a stream admitted by weight; grow, release, clamp
//! cargo run --release --example producer -- --help        # all the options
//! ```

use std::cmp::Ordering as CmpOrdering;
use std::collections::{BinaryHeap, VecDeque};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use multisem::{AcquireError, MultiSemaphore, OwnedPermit};

mod common;
use common::table::Table;
use common::*;

mod adaptive_demo;
#[cfg(feature = "futures")]
mod stream_demo;

// ---------------------------------------------------------------------------
// Options.
// ---------------------------------------------------------------------------

/// The simulation keeps every message in flight in memory, so the message
/// limit is capped; the byte limit is only a number and may be as large as the
/// semaphore allows.
const MAX_MESSAGES_FLAG: u64 = 1_000_000;

fn help() -> String {
    let d = Config::default();
    format!(
        "\
producer: a simulated asynchronous message producer, throttled by multisem

USAGE:
    cargo run --release --example producer -- [OPTIONS]

Sender threads make messages (most 100 B to 16 KiB, 3% of them 256 KiB to 4 MiB)
and admit each one with acquire_owned_blocking_timeout([1, len], timeout) on one
MultiSemaphore<2> of [messages, bytes]. The permit travels with the message to a
simulated broker (1-20 ms latency plus 16 ms per MiB, 2% errors, 2% replies that
never come and time out after 200 ms), whose completion callback drops it on a
broker thread. The default limits are RocketMQ's [1024 messages, 100 MiB] scaled
down about 16 times, so that back-pressure happens on a small machine.

OPTIONS:
    --seconds N         how long to send, in seconds (default {seconds})
    --senders N         sender threads (default {senders})
    --brokers N         broker threads that run the completion callbacks (default {brokers})
    --max-messages N    limit on messages in flight (default {messages})
    --max-bytes SIZE    limit on bytes in flight: 8MiB, 512KiB, 1GiB or a number
                        of bytes (default {bytes})
    --timeout-ms N      how long a sender waits for admission, in ms (default {timeout})
    --seed N            seed for message sizes and broker outcomes (default {seed})
    --naive             admit through two separate semaphores, messages then bytes,
                        with RocketMQ's bug: when the bytes acquire times out, the
                        message permit is never given back (apache/rocketmq#8140)
    --adaptive          let the adaptive controller set both limits, against a
                        broker whose capacity halves and recovers during the run.
                        It takes only these options (--adaptive --help for more):
                          --seconds N   3 to 3600 (default 15)
                          --senders N   1 to 1024 (default 32)
                          --small       every message 1 KiB, instead of 90% 1 KiB
                                        and 10% 1 MiB
                          --csv PATH    where to write the limits, in-flight and
                                        latency every 250 ms (default
                                        target/adaptive_producer.csv in the crate)
                          --svg PATH    where to chart them (default
                                        target/adaptive_producer.svg in the crate)
    --stream            (build with --features futures) a stream of encoded
                        messages on tokio, admitted by stream::Admit; compression
                        resizes each permit (release, try_grow); messages above
                        the byte budget are clamped to it and sent alone.
                        It takes only these options (--stream --help for more):
                          --messages N  how many messages the stream sends
                                        (default 4000)
                          --seed N      seed for the message sizes and their
                                        compression (default 1)
    -h, --help          print this help

Options take their value as the next argument or after '=' (--seconds=5).

EXIT STATUS:
    0  the books balance at the end (multisem: every permit came back;
       --naive: what is missing is exactly what the bug lost)
    1  they do not
    2  bad options
",
        seconds = d.seconds,
        senders = d.senders,
        brokers = d.brokers,
        messages = d.max_messages,
        bytes = fmt_size(d.max_bytes).replace(' ', ""),
        timeout = d.timeout.as_millis(),
        seed = d.seed,
    )
}

#[derive(Debug, Clone)]
struct Config {
    seconds: u64,
    senders: usize,
    brokers: usize,
    max_messages: u64,
    max_bytes: u64,
    timeout: Duration,
    seed: u64,
    naive: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            seconds: 10,
            senders: 16,
            brokers: 2,
            max_messages: 64,
            max_bytes: 8 * MIB,
            timeout: Duration::from_millis(50),
            seed: 1,
            naive: false,
        }
    }
}

/// Parses the options; `Ok(None)` means `--help`.
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Config>, String> {
    let mut cfg = Config::default();
    while let Some(arg) = args.next() {
        let (flag, inline) = split_flag(&arg);
        let mut value = || flag_value(&flag, inline.as_deref(), &mut args);
        match flag.as_str() {
            "-h" | "--help" => {
                switch(&flag, inline.as_deref())?;
                return Ok(None);
            }
            "--naive" => cfg.naive = switch(&flag, inline.as_deref())?,
            "--seconds" => cfg.seconds = parse_number(&flag, &value()?, 1, 3600)?,
            "--senders" => cfg.senders = parse_number(&flag, &value()?, 1, 1024)? as usize,
            "--brokers" => cfg.brokers = parse_number(&flag, &value()?, 1, 64)? as usize,
            "--max-messages" => {
                cfg.max_messages = parse_number(&flag, &value()?, 1, MAX_MESSAGES_FLAG)?
            }
            "--max-bytes" => {
                let max = MultiSemaphore::<2>::MAX_PERMITS;
                cfg.max_bytes = parse_size(&flag, &value()?, max)?
            }
            "--timeout-ms" => {
                cfg.timeout = Duration::from_millis(parse_number(&flag, &value()?, 1, 60_000)?)
            }
            "--seed" => cfg.seed = parse_number(&flag, &value()?, 0, u64::MAX)?,
            _ => return Err(format!("unknown option '{arg}'")),
        }
    }
    Ok(Some(cfg))
}

// ---------------------------------------------------------------------------
// Counters shared by every thread. Relaxed is enough: they are statistics,
// read once a second and once more after every thread has been joined.
// ---------------------------------------------------------------------------

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    sent_bytes: AtomicU64,
    acked: AtomicU64,
    broker_errors: AtomicU64,
    broker_timeouts: AtomicU64,
    /// Admission timeouts. With multisem, `stats().timed_out_by` says which
    /// limit held each one back.
    timed_out: AtomicU64,
    /// `--naive` only: admission timeouts by the semaphore that timed out.
    short_messages: AtomicU64,
    short_bytes: AtomicU64,
    too_large: AtomicU64,
    closed: AtomicU64,
    other_errors: AtomicU64,
    /// `--naive` only: message permits the bug lost.
    leaked: AtomicU64,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

// ---------------------------------------------------------------------------
// The naive limiter: two counting semaphores, the way RocketMQ's producer did it.
// ---------------------------------------------------------------------------

/// A counting semaphore, `Mutex` + `Condvar`, fair like the
/// `java.util.concurrent.Semaphore(n, true)` RocketMQ uses: waiters are served
/// in arrival order, and a waiter proceeds only once it is first in line and
/// all it asks for is free.
struct CountingSemaphore {
    capacity: u64,
    state: Mutex<CountingState>,
    changed: Condvar,
}

struct CountingState {
    available: u64,
    /// Tickets of the queued waiters, oldest first.
    queue: VecDeque<u64>,
    next_ticket: u64,
}

impl CountingSemaphore {
    fn new(capacity: u64) -> Self {
        CountingSemaphore {
            capacity,
            state: Mutex::new(CountingState {
                available: capacity,
                queue: VecDeque::new(),
                next_ticket: 0,
            }),
            changed: Condvar::new(),
        }
    }

    /// Takes `n` permits, waiting up to `timeout`; `false` if they did not come.
    fn try_acquire_timeout(&self, n: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = lock(&self.state);
        if state.queue.is_empty() && state.available >= n {
            state.available -= n;
            return true;
        }
        let ticket = state.next_ticket;
        state.next_ticket += 1;
        state.queue.push_back(ticket);
        let acquired = loop {
            if state.queue.front() == Some(&ticket) && state.available >= n {
                state.queue.pop_front();
                state.available -= n;
                break true;
            }
            let now = Instant::now();
            if now >= deadline {
                state.queue.retain(|&t| t != ticket);
                break false;
            }
            state = self
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        };
        drop(state);
        // We left the queue: whoever is first in line now may be able to go.
        self.changed.notify_all();
        acquired
    }

    fn release(&self, n: u64) {
        lock(&self.state).available += n;
        // Waiters want different amounts; wake them all and let the first in line check.
        self.changed.notify_all();
    }

    fn available(&self) -> u64 {
        lock(&self.state).available
    }

    fn waiters(&self) -> usize {
        lock(&self.state).queue.len()
    }
}

struct NaiveLimits {
    messages: CountingSemaphore,
    bytes: CountingSemaphore,
}

/// The send callback of the naive producer. Like RocketMQ's
/// `BackpressureSendCallBack`, it releases on completion whatever its flags say
/// was acquired.
struct NaiveCallback {
    limits: Arc<NaiveLimits>,
    len: u64,
    message_acquired: bool,
    bytes_acquired: bool,
}

impl Drop for NaiveCallback {
    fn drop(&mut self) {
        if self.message_acquired {
            self.limits.messages.release(1);
        }
        if self.bytes_acquired {
            self.limits.bytes.release(self.len);
        }
    }
}

// ---------------------------------------------------------------------------
// Admission: the one place the two modes differ.
// ---------------------------------------------------------------------------

enum Limiter {
    Multi(Arc<MultiSemaphore<2>>),
    Naive(Arc<NaiveLimits>),
}

/// What travels with a message to the broker. Dropping it gives its share of
/// the limits back.
enum Admission {
    Multi(OwnedPermit<2>),
    Naive(NaiveCallback),
}

impl Admission {
    fn len(&self) -> u64 {
        match self {
            Admission::Multi(permit) => permit.amounts()[1],
            Admission::Naive(callback) => callback.len,
        }
    }
}

/// Why a message was not admitted.
enum Refusal {
    /// Timed out (multisem: `stats().timed_out_by` counts it under the
    /// limit that held it back).
    TimedOut,
    /// `--naive`: the message semaphore timed out.
    Messages,
    /// `--naive`: the byte semaphore timed out.
    Bytes,
    /// Larger than the byte limit itself: it could never be admitted.
    TooLarge,
    /// The semaphore was closed (at shutdown).
    Closed,
    Other(AcquireError),
}

impl Limiter {
    fn admit(
        &self,
        len: u64,
        timeout: Duration,
        counters: &Counters,
    ) -> Result<Admission, Refusal> {
        match self {
            Limiter::Multi(sem) => match sem.acquire_owned_blocking_timeout([1, len], timeout) {
                Ok(permit) => Ok(Admission::Multi(permit)),
                // All or nothing: we hold nothing now. The semaphore counts
                // the timeout in `stats().timed_out_by` under the limit that
                // held it back when its time ran out: the one the request was
                // short of, or, where it would have fit, the one the request
                // at the head of the queue lacked.
                Err(AcquireError::Timeout) => Err(Refusal::TimedOut),
                Err(AcquireError::ExceedsCapacity { .. }) => Err(Refusal::TooLarge),
                Err(AcquireError::Closed) => Err(Refusal::Closed),
                Err(other) => Err(Refusal::Other(other)),
            },
            Limiter::Naive(limits) => {
                // RocketMQ's DefaultMQProducerImpl.executeAsyncMessageSend before #8661:
                // take a message permit, then the bytes with what is left of the timeout,
                // and tell the callback what was taken only once both succeeded.
                let start = Instant::now();
                let mut callback = NaiveCallback {
                    limits: Arc::clone(limits),
                    len,
                    message_acquired: false,
                    bytes_acquired: false,
                };
                // Returning early drops `callback`: that is its onException, which
                // releases what its flags say was taken.
                if !limits.messages.try_acquire_timeout(1, timeout) {
                    return Err(Refusal::Messages); // nothing taken, nothing to give back
                }
                let remaining = timeout.saturating_sub(start.elapsed());
                if !limits.bytes.try_acquire_timeout(len, remaining) {
                    // THE BUG: the callback's flags are still false, so dropping it
                    // releases nothing, and the message permit taken above is lost
                    // for good. (The fix sets each flag right after its own acquire.)
                    bump(&counters.leaked, 1);
                    return Err(Refusal::Bytes);
                }
                callback.message_acquired = true;
                callback.bytes_acquired = true;
                Ok(Admission::Naive(callback))
            }
        }
    }

    fn capacity(&self) -> [u64; 2] {
        match self {
            Limiter::Multi(sem) => sem.capacity(),
            Limiter::Naive(limits) => [limits.messages.capacity, limits.bytes.capacity],
        }
    }

    fn available(&self) -> [u64; 2] {
        match self {
            Limiter::Multi(sem) => sem.available(),
            Limiter::Naive(limits) => [limits.messages.available(), limits.bytes.available()],
        }
    }

    fn waiters(&self) -> usize {
        match self {
            Limiter::Multi(sem) => sem.waiters(),
            Limiter::Naive(limits) => limits.messages.waiters() + limits.bytes.waiters(),
        }
    }
}

// ---------------------------------------------------------------------------
// The simulated broker: a queue ordered by when each reply arrives, and broker
// threads that run each message's completion callback at that time.
// ---------------------------------------------------------------------------

enum Outcome {
    Acked,
    Error,
    TimedOut,
}

struct InFlight {
    due: Instant,
    seq: u64,
    outcome: Outcome,
    admission: Admission,
}

// BinaryHeap is a max-heap: order by reversed (due, seq) so the earliest pops first.
impl Ord for InFlight {
    fn cmp(&self, other: &Self) -> CmpOrdering {
        (other.due, other.seq).cmp(&(self.due, self.seq))
    }
}
impl PartialOrd for InFlight {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}
impl PartialEq for InFlight {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == CmpOrdering::Equal
    }
}
impl Eq for InFlight {}

struct BrokerQueue {
    heap: BinaryHeap<InFlight>,
    rng: XorShift,
    seq: u64,
    closed: bool,
}

struct Broker {
    queue: Mutex<BrokerQueue>,
    changed: Condvar,
}

impl Broker {
    fn new(seed: u64) -> Self {
        Broker {
            queue: Mutex::new(BrokerQueue {
                heap: BinaryHeap::new(),
                rng: XorShift::new(seed, u64::MAX),
                seq: 0,
                closed: false,
            }),
            changed: Condvar::new(),
        }
    }

    /// Sends a message; its callback runs later on a broker thread.
    fn send(&self, admission: Admission) {
        let mut queue = lock(&self.queue);
        let rng = &mut queue.rng;
        let (outcome, latency) = if rng.per_mille(ERROR_PER_MILLE) {
            (Outcome::Error, Duration::from_millis(rng.range(1, 5)))
        } else if rng.per_mille(SLOW_PER_MILLE) {
            (Outcome::TimedOut, SLOW_REPLY)
        } else {
            let ms = rng.range(LATENCY_MS.0, LATENCY_MS.1) + admission.len() / BYTES_PER_MS;
            (Outcome::Acked, Duration::from_millis(ms))
        };
        queue.seq += 1;
        let item = InFlight {
            due: Instant::now() + latency,
            seq: queue.seq,
            outcome,
            admission,
        };
        queue.heap.push(item);
        drop(queue);
        self.changed.notify_one();
    }

    /// A broker thread: runs completion callbacks as their replies fall due,
    /// until closed and drained.
    fn run(&self, counters: &Counters) {
        let mut queue = lock(&self.queue);
        loop {
            let now = Instant::now();
            let next_due = queue.heap.peek().map(|item| item.due);
            match next_due {
                Some(due) if due <= now => {
                    let item = queue.heap.pop().expect("peeked above");
                    drop(queue);
                    complete(item, counters);
                    queue = lock(&self.queue);
                }
                Some(due) => {
                    queue = self
                        .changed
                        .wait_timeout(queue, due - now)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
                None if queue.closed => return,
                None => {
                    queue = self
                        .changed
                        .wait(queue)
                        .unwrap_or_else(PoisonError::into_inner)
                }
            }
        }
    }

    /// No more sends: broker threads finish what is queued, then return.
    fn close(&self) {
        lock(&self.queue).closed = true;
        self.changed.notify_all();
    }
}

/// The completion callback, on a broker thread.
fn complete(item: InFlight, counters: &Counters) {
    match item.outcome {
        Outcome::Acked => bump(&counters.acked, 1),
        Outcome::Error => bump(&counters.broker_errors, 1),
        Outcome::TimedOut => bump(&counters.broker_timeouts, 1),
    }
    // Whatever the outcome, the message is no longer in flight: dropping its
    // admission gives its permits back, here, on the broker thread.
    drop(item.admission);
}

// ---------------------------------------------------------------------------
// Senders.
// ---------------------------------------------------------------------------

fn sender(
    id: u64,
    cfg: &Config,
    limiter: &Limiter,
    broker: &Broker,
    counters: &Counters,
    stop: &AtomicBool,
) {
    let mut rng = XorShift::new(cfg.seed, id);
    while !stop.load(Ordering::Relaxed) {
        let len = message_len(&mut rng);
        match limiter.admit(len, cfg.timeout, counters) {
            Ok(admission) => {
                bump(&counters.sent, 1);
                bump(&counters.sent_bytes, admission.len());
                broker.send(admission);
            }
            Err(Refusal::TimedOut) => bump(&counters.timed_out, 1),
            Err(Refusal::Messages) => bump(&counters.short_messages, 1),
            Err(Refusal::Bytes) => bump(&counters.short_bytes, 1),
            Err(Refusal::TooLarge) => bump(&counters.too_large, 1),
            Err(Refusal::Closed) => bump(&counters.closed, 1),
            Err(Refusal::Other(err)) => {
                errln!("sender {id}: unexpected acquire error: {err}");
                bump(&counters.other_errors, 1);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Output.
// ---------------------------------------------------------------------------

fn print_intro(cfg: &Config) {
    if cfg.naive {
        outln!(
            "producer --naive: two counting semaphores, messages then bytes, with RocketMQ's leak"
        );
    } else {
        outln!(
            "producer: one MultiSemaphore<2>, admitting by acquire_owned_blocking_timeout([1, len])"
        );
    }
    outln!(
        "  limits {} messages and {} in flight; {} senders, {} broker threads; timeout {} ms; {} s",
        cfg.max_messages,
        fmt_size(cfg.max_bytes),
        cfg.senders,
        cfg.brokers,
        cfg.timeout.as_millis(),
        cfg.seconds,
    );
    if cfg.max_bytes < LARGE_MAX {
        outln!(
            "  note: messages over {} exceed the byte limit and can never be admitted",
            fmt_size(cfg.max_bytes)
        );
    }
    outln!();
}

// ---------------------------------------------------------------------------
// Main.
// ---------------------------------------------------------------------------

/// The demos `producer` runs: its own, `--adaptive` or `--stream`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Demo {
    Main,
    Adaptive,
    Stream,
}

/// Which demo the arguments ask for. A mode flag counts only where it is a
/// flag, never as a value: an option's value given inline is part of its
/// argument (`--csv=--adaptive`), and `flag_value` refuses a next argument
/// that starts with `--` (`--csv --adaptive` is `--csv` without its path,
/// which the demo's parser reports), so an argument that is exactly a mode
/// flag is that flag. (`--adaptive=x` asks for the demo too, whose parser
/// then says the flag takes no value.)
fn demo(args: &[String]) -> Result<Demo, String> {
    let mut demo = Demo::Main;
    for arg in args {
        let this = match split_flag(arg).0.as_str() {
            "--adaptive" => Demo::Adaptive,
            "--stream" => Demo::Stream,
            _ => continue,
        };
        if demo != Demo::Main && demo != this {
            return Err("--adaptive and --stream are separate demos: give one of them".into());
        }
        demo = this;
    }
    Ok(demo)
}

fn main() -> ExitCode {
    let args = match args_or_exit() {
        Ok(args) => args,
        Err(code) => return code,
    };
    let demo = match demo(&args) {
        Ok(demo) => demo,
        Err(message) => return usage_error(&message),
    };
    match demo {
        // Limits set by the adaptive controller: examples/adaptive_demo.
        Demo::Adaptive => return adaptive_demo::run(args.into_iter()),
        // Stream admission, resizable permits, the oversized policy:
        // examples/stream_demo.
        #[cfg(feature = "futures")]
        Demo::Stream => return stream_demo::run(args.into_iter()),
        #[cfg(not(feature = "futures"))]
        Demo::Stream => {
            errln!(
                "error: --stream needs the futures feature: cargo run --release --features futures --example producer -- --stream"
            );
            return ExitCode::from(2);
        }
        Demo::Main => {}
    }
    let cfg = match options_or_exit(parse_args(args.into_iter()), help) {
        Ok(cfg) => cfg,
        Err(code) => return code,
    };
    run(&cfg)
}

fn run(cfg: &Config) -> ExitCode {
    let limits = [cfg.max_messages, cfg.max_bytes];
    let limiter = if cfg.naive {
        Limiter::Naive(Arc::new(NaiveLimits {
            messages: CountingSemaphore::new(limits[0]),
            bytes: CountingSemaphore::new(limits[1]),
        }))
    } else {
        Limiter::Multi(Arc::new(MultiSemaphore::new(limits)))
    };
    let broker = Broker::new(cfg.seed);
    let counters = Counters::default();
    let stop = AtomicBool::new(false);
    let extra: &[(&str, usize)] = if cfg.naive { &[("msgs lost", 9)] } else { &[] };
    let table = Table::new(cfg.max_messages, cfg.max_bytes, "total", extra);

    print_intro(cfg);
    table.print_header();
    let start = Instant::now();
    let mut rates = Vec::new();
    let (elapsed, stopping) = thread::scope(|s| {
        let brokers: Vec<_> = (0..cfg.brokers)
            .map(|_| s.spawn(|| broker.run(&counters)))
            .collect();
        let senders: Vec<_> = (0..cfg.senders as u64)
            .map(|id| {
                let (limiter, broker, counters, stop) = (&limiter, &broker, &counters, &stop);
                s.spawn(move || sender(id, cfg, limiter, broker, counters, stop))
            })
            .collect();

        let (mut last_sent, mut last_bytes) = (0, 0);
        for tick in 1..=cfg.seconds {
            let due = start + Duration::from_secs(tick);
            thread::sleep(due.saturating_duration_since(Instant::now()));
            let (sent, bytes) = (read(&counters.sent), read(&counters.sent_bytes));
            rates.push(sent - last_sent);
            // In flight, as the limiter sees it: capacity - available. In --naive
            // mode this includes the permits the bug lost, which nobody holds.
            let capacity = limiter.capacity();
            let available = limiter.available();
            let held = [
                capacity[0].saturating_sub(available[0]),
                capacity[1].saturating_sub(available[1]),
            ];
            // Timeouts so far, by the limit that held each back: multisem's
            // own count; in --naive mode, which semaphore timed out.
            let timed_out_by = match &limiter {
                Limiter::Multi(sem) => sem.stats().timed_out_by,
                Limiter::Naive(_) => [read(&counters.short_messages), read(&counters.short_bytes)],
            };
            let mut cells = vec![
                format!("{tick}s"),
                (sent - last_sent).to_string(),
                format!("{:.1}", mib(bytes - last_bytes)),
                format!("{} / {}", held[0], capacity[0]),
                format!("{:.1} / {:.1}", mib(held[1]), mib(capacity[1])),
                limiter.waiters().to_string(),
                timed_out_by[0].to_string(),
                timed_out_by[1].to_string(),
                (timed_out_by[0] + timed_out_by[1]).to_string(),
            ];
            if cfg.naive {
                cells.push(read(&counters.leaked).to_string());
            }
            outln!("{}", table.line(&cells));
            (last_sent, last_bytes) = (sent, bytes);
        }

        // Shut down: stop the senders. With multisem, close() also wakes every
        // queued sender at once with Closed instead of letting it wait out its
        // timeout; the permits already out stay valid and still come back.
        stop.store(true, Ordering::Relaxed);
        let elapsed = start.elapsed();
        if let Limiter::Multi(sem) = &limiter {
            sem.close();
        }
        for handle in senders {
            handle.join().expect("sender thread panicked");
        }
        let stopping = start.elapsed() - elapsed;
        // Wait for what is in flight: the brokers answer it, and each
        // callback's permit comes back.
        if let Limiter::Multi(sem) = &limiter {
            if !sem.drained_blocking_timeout(Duration::from_secs(30)) {
                errln!("still in flight after 30 s: {:?}", sem.in_flight());
            }
        }
        // No more sends; the brokers run the callbacks still due, then return.
        broker.close();
        for handle in brokers {
            handle.join().expect("broker thread panicked");
        }
        (elapsed, stopping)
    });

    summary(&limiter, &counters, (elapsed, stopping), &rates)
}

/// `times`: how long the senders ran, and how long they took to stop.
fn summary(
    limiter: &Limiter,
    counters: &Counters,
    times: (Duration, Duration),
    rates: &[u64],
) -> ExitCode {
    let (elapsed, stopping) = times;
    let secs = elapsed.as_secs_f64();
    let sent = read(&counters.sent);
    let sent_bytes = read(&counters.sent_bytes);
    let short_messages = read(&counters.short_messages);
    let short_bytes = read(&counters.short_bytes);
    let timeouts = read(&counters.timed_out) + short_messages + short_bytes;
    let closed = read(&counters.closed);

    outln!();
    outln!("summary after {secs:.1} s");
    if let Limiter::Naive(_) = limiter {
        // No close: a sender queued at the stop waits out its timeout.
        outln!(
            "             (then {:.3} s for the senders to stop: with no close, each one queued",
            stopping.as_secs_f64()
        );
        outln!("             at the stop waited out its --timeout-ms; counted below)");
    } else {
        outln!(
            "             (then {:.3} s for the senders to stop: close() woke the queued ones)",
            stopping.as_secs_f64()
        );
    }
    outln!(
        "  sent       {sent} messages, {:.1} MiB ({:.0} msg/s, {:.1} MiB/s)",
        mib(sent_bytes),
        sent as f64 / secs,
        mib(sent_bytes) / secs,
    );
    if let (Some(first), Some(last)) = (rates.first(), rates.last()) {
        outln!("             {first} msg/s in the first second, {last} msg/s in the last");
    }
    outln!(
        "  completed  {} acked, {} broker errors, {} broker timeouts",
        read(&counters.acked),
        read(&counters.broker_errors),
        read(&counters.broker_timeouts),
    );
    match limiter {
        Limiter::Multi(sem) => {
            let by = sem.stats().timed_out_by;
            outln!(
                "  timed out  {timeouts} waiting for admission, held back by messages {}, by bytes {}",
                by[0],
                by[1],
            );
            outln!(
                "             (stats().timed_out_by: the limit the request was short of when its"
            );
            outln!(
                "             time ran out, or, where it would have fit, the one the request at"
            );
            outln!("             the head of the queue lacked)");
        }
        Limiter::Naive(_) => outln!(
            "  timed out  {timeouts} waiting for admission: the message semaphore {short_messages}, \
             the byte semaphore {short_bytes}"
        ),
    }
    outln!(
        "  refused    {} too large for the byte limit, {closed} closed at shutdown",
        read(&counters.too_large),
    );

    let capacity = limiter.capacity();
    let available = limiter.available();
    let mut ok = read(&counters.other_errors) == 0;
    match limiter {
        Limiter::Multi(sem) => {
            let stats = sem.stats();
            outln!(
                "  stats()    acquired {}, timed_out {}, cancelled {}, closed_out {}",
                stats.acquired,
                stats.timed_out,
                stats.cancelled,
                stats.closed_out,
            );
            outln!(
                "             waited {}, of which acquired after the wait {}",
                stats.waited.iter().sum::<u64>(),
                stats.acquired_after_wait,
            );
            outln!(
                "             peak_in_flight {} messages, {:.1} MiB",
                stats.peak_in_flight[0],
                mib(stats.peak_in_flight[1]),
            );
            outln!("  capacity() {capacity:?}");
            outln!("  available() {available:?}");
            // The library's own counters must agree with what the senders saw.
            if stats.acquired != sent || stats.timed_out != timeouts || stats.closed_out != closed {
                outln!(
                    "MISMATCH: stats() disagrees with the senders, who saw {sent} acquired, \
                     {timeouts} timed out, {closed} closed"
                );
                ok = false;
            }
            // Every wait ended, in one way each (Stats, "How every wait ended").
            if stats.waits_in_progress() != 0 {
                outln!(
                    "MISMATCH: {} waits counted in stats().waited never ended",
                    stats.waits_in_progress()
                );
                ok = false;
            }
            if stats.peak_in_flight[0] > capacity[0] || stats.peak_in_flight[1] > capacity[1] {
                outln!("MISMATCH: stats().peak_in_flight is above the limits");
                ok = false;
            }
            if available == capacity {
                outln!("OK: no permit leaked");
            } else {
                outln!("LEAK: available() != capacity() after every message completed");
                ok = false;
            }
        }
        Limiter::Naive(_) => {
            let leaked = read(&counters.leaked);
            outln!(
                "  messages   {} of {} permits available",
                available[0],
                capacity[0]
            );
            outln!(
                "  bytes      {} of {} permits available",
                available[1],
                capacity[1]
            );
            // What is missing must be exactly what the bug lost: the simulation
            // keeps its own books.
            if available[0] + leaked != capacity[0] || available[1] != capacity[1] {
                outln!("MISMATCH: the naive limiter's books do not balance");
                ok = false;
            }
            if leaked == 0 {
                outln!("no message permit was lost this time (try more --seconds)");
            } else {
                let share = 100.0 * leaked as f64 / capacity[0] as f64;
                outln!(
                    "LOST: {leaked} of {} message permits ({share:.0}%) never came back. \
                     Each was taken,",
                    capacity[0],
                );
                outln!(
                    "      then the bytes acquire timed out and the error path gave nothing back"
                );
                outln!(
                    "      (apache/rocketmq#8140). Run without --naive: multisem keeps every one."
                );
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
