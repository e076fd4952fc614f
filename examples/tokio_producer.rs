//! The `producer` example on tokio: an asynchronous message producer whose
//! sender tasks are admitted by [`MultiSemaphore::acquire_owned`], limited
//! by message count and by bytes at the same time.
//!
//! Sender tasks on a multi-thread runtime make messages of varied sizes (most
//! between 100 B and 16 KiB, a few between 256 KiB and 4 MiB) and admit each
//! with `acquire_owned([1, len]).with_timeout(tokio::time::sleep(timeout))`.
//! When the timer fires first, the acquire gives up: the sender leaves the
//! queue, holds nothing, and `stats()` counts a timeout under the limit that
//! held it back (`timed_out_by`: messages or bytes; a sender queued behind a
//! larger request counts under what that request lacks). An admitted
//! message's [`OwnedPermit`](multisem::OwnedPermit) moves into a spawned
//! completion task that sleeps the simulated broker latency, records the
//! outcome (acked, error, or a reply that never came) and drops the permit.
//!
//! Once a second it prints a status line; at the end a summary, and it checks
//! that `available() == capacity()` once every completion task has finished.
//!
//! ```text
//! cargo run --release --example tokio_producer
//! cargo run --release --example tokio_producer -- --seconds 5 --senders 32
//! cargo run --release --example tokio_producer -- --help
//! ```
//!
//! The library itself depends on no runtime: tokio is only a dev-dependency,
//! used by this example and the tests.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use multisem::{AcquireError, MultiSemaphore};

mod common;
use common::table::Table;
use common::*;
use tokio::sync::mpsc;
use tokio::time::Instant;

// ---------------------------------------------------------------------------
// Options.
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Config {
    seconds: u64,
    senders: usize,
    max_messages: u64,
    max_bytes: u64,
    timeout: Duration,
    seed: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            seconds: 10,
            senders: 16,
            max_messages: 64,
            max_bytes: 8 * MIB,
            timeout: Duration::from_millis(50),
            seed: 1,
        }
    }
}

/// Every message in flight is a task in memory, so the message limit is capped.
const MAX_MESSAGES_FLAG: u64 = 1_000_000;

fn help() -> String {
    let d = Config::default();
    format!(
        "\
tokio_producer: a simulated asynchronous message producer on tokio, throttled by multisem

USAGE:
    cargo run --release --example tokio_producer -- [OPTIONS]

Sender tasks make messages (most 100 B to 16 KiB, 3% of them 256 KiB to 4 MiB)
and admit each one with acquire_owned([1, len]).with_timeout(sleep(timeout))
on one MultiSemaphore<2> of [messages, bytes]; stats() counts each timeout by
the limit that held it back. The permit moves into a spawned task that sleeps the simulated broker
latency (1-20 ms plus 16 ms per MiB, 2% errors, 2% replies that never come and
time out after 200 ms) and then drops it.

OPTIONS:
    --seconds N         how long to send, in seconds (default {seconds})
    --senders N         sender tasks (default {senders})
    --max-messages N    limit on messages in flight (default {messages})
    --max-bytes SIZE    limit on bytes in flight: 8MiB, 512KiB, 1GiB or a number
                        of bytes (default {bytes})
    --timeout-ms N      how long a sender waits for admission, in ms (default {timeout})
    --seed N            seed for message sizes and broker outcomes (default {seed})
    -h, --help          print this help

Options take their value as the next argument or after '=' (--seconds=5).
Exit status: 0 if every permit came back, 1 if not, 2 on bad options.
",
        seconds = d.seconds,
        senders = d.senders,
        messages = d.max_messages,
        bytes = fmt_size(d.max_bytes).replace(' ', ""),
        timeout = d.timeout.as_millis(),
        seed = d.seed,
    )
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
            "--seconds" => cfg.seconds = parse_number(&flag, &value()?, 1, 3600)?,
            "--senders" => cfg.senders = parse_number(&flag, &value()?, 1, 100_000)? as usize,
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
            "--naive" => {
                return Err("--naive is an option of the `producer` example, not this one".into());
            }
            _ => return Err(format!("unknown option '{arg}'")),
        }
    }
    Ok(Some(cfg))
}

// ---------------------------------------------------------------------------
// The simulated broker's reply.
// ---------------------------------------------------------------------------

enum Outcome {
    Acked,
    Error,
    TimedOut,
}

/// What the simulated broker will answer, and after how long.
fn broker_reply(rng: &mut XorShift, len: u64) -> (Outcome, Duration) {
    if rng.per_mille(ERROR_PER_MILLE) {
        (Outcome::Error, Duration::from_millis(rng.range(1, 5)))
    } else if rng.per_mille(SLOW_PER_MILLE) {
        (Outcome::TimedOut, SLOW_REPLY)
    } else {
        let ms = rng.range(LATENCY_MS.0, LATENCY_MS.1) + len / BYTES_PER_MS;
        (Outcome::Acked, Duration::from_millis(ms))
    }
}

// ---------------------------------------------------------------------------
// Counters shared by every task. Relaxed is enough: they are statistics, read
// once a second and once more after every task has finished.
// ---------------------------------------------------------------------------

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    sent_bytes: AtomicU64,
    acked: AtomicU64,
    broker_errors: AtomicU64,
    broker_timeouts: AtomicU64,
    /// Acquires that timed out (`stats()` says which limit held them back).
    timed_out: AtomicU64,
    too_large: AtomicU64,
    closed: AtomicU64,
    other_errors: AtomicU64,
}

// ---------------------------------------------------------------------------
// Sender tasks.
// ---------------------------------------------------------------------------

struct Shared {
    sem: Arc<MultiSemaphore<2>>,
    counters: Counters,
    stop: AtomicBool,
    timeout: Duration,
}

/// One sender task. Each completion task it spawns holds a clone of `done`, so
/// the receiver sees the channel close once every one of them has finished.
async fn sender(id: u64, seed: u64, shared: Arc<Shared>, done: mpsc::Sender<()>) {
    let mut rng = XorShift::new(seed, id);
    let counters = &shared.counters;
    while !shared.stop.load(Ordering::Relaxed) {
        let len = message_len(&mut rng);
        // If the timer fires first, the acquire gives up and nothing is held;
        // if the grant and the timer race, the grant wins: a granted permit is
        // never thrown away. (`tokio::time::timeout` would work too, but it
        // drops the future, which stats() can only count as a cancel.)
        let timer = tokio::time::sleep(shared.timeout);
        match shared.sem.acquire_owned([1, len]).with_timeout(timer).await {
            Ok(permit) => {
                bump(&counters.sent, 1);
                bump(&counters.sent_bytes, len);
                let (outcome, latency) = broker_reply(&mut rng, len);
                let (shared, done) = (Arc::clone(&shared), done.clone());
                // The completion callback, on whatever worker runs this task.
                tokio::spawn(async move {
                    tokio::time::sleep(latency).await;
                    let counters = &shared.counters;
                    match outcome {
                        Outcome::Acked => bump(&counters.acked, 1),
                        Outcome::Error => bump(&counters.broker_errors, 1),
                        Outcome::TimedOut => bump(&counters.broker_timeouts, 1),
                    }
                    // Whatever the outcome, the message is no longer in flight.
                    drop(permit);
                    drop(done);
                });
            }
            // All or nothing: we hold nothing now.
            Err(AcquireError::Timeout) => bump(&counters.timed_out, 1),
            Err(AcquireError::ExceedsCapacity { .. }) => bump(&counters.too_large, 1),
            Err(AcquireError::Closed) => bump(&counters.closed, 1),
            Err(err) => {
                errln!("sender {id}: unexpected acquire error: {err}");
                bump(&counters.other_errors, 1);
            }
        }
        // While there is room an acquire completes at once, and one too large
        // for the limits fails at once: yield, so that a sender never keeps a
        // worker thread (and the runtime's timers) to itself.
        tokio::task::yield_now().await;
    }
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
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_time()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            errln!("error: cannot start the tokio runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(cfg))
}

async fn run(cfg: Config) -> ExitCode {
    let shared = Arc::new(Shared {
        sem: Arc::new(
            MultiSemaphore::builder([cfg.max_messages, cfg.max_bytes])
                .names(&["messages", "bytes"])
                .build(),
        ),
        counters: Counters::default(),
        stop: AtomicBool::new(false),
        timeout: cfg.timeout,
    });
    let table = Table::new(cfg.max_messages, cfg.max_bytes, "total", &[]);

    outln!("tokio_producer: one MultiSemaphore<2>, acquire_owned([1, len]).with_timeout(..)");
    outln!(
        "  limits {} messages and {} in flight; {} sender tasks; timeout {} ms; {} s",
        cfg.max_messages,
        fmt_size(cfg.max_bytes),
        cfg.senders,
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
    table.print_header();

    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
    let start = Instant::now();
    let senders: Vec<_> = (0..cfg.senders as u64)
        .map(|id| tokio::spawn(sender(id, cfg.seed, Arc::clone(&shared), done_tx.clone())))
        .collect();
    drop(done_tx);

    let counters = &shared.counters;
    let sem = &shared.sem;
    let capacity = sem.capacity();
    let mut rates = Vec::new();
    let (mut last_sent, mut last_bytes) = (0, 0);
    for tick in 1..=cfg.seconds {
        tokio::time::sleep_until(start + Duration::from_secs(tick)).await;
        let (sent, bytes) = (read(&counters.sent), read(&counters.sent_bytes));
        rates.push(sent - last_sent);
        let held = sem.in_flight();
        let stats = sem.stats();
        let cells = [
            format!("{tick}s"),
            (sent - last_sent).to_string(),
            format!("{:.1}", mib(bytes - last_bytes)),
            format!("{} / {}", held[0], capacity[0]),
            format!("{:.1} / {:.1}", mib(held[1]), mib(capacity[1])),
            sem.waiters().to_string(),
            stats.timed_out_by[0].to_string(),
            stats.timed_out_by[1].to_string(),
            stats.timed_out.to_string(),
        ];
        outln!("{}", table.line(&cells));
        (last_sent, last_bytes) = (sent, bytes);
    }

    // Shut down: stop the senders, and close the semaphore so queued acquires
    // end at once with Closed. Permits already out stay valid and come back
    // when their completion tasks drop them.
    shared.stop.store(true, Ordering::Relaxed);
    let elapsed = start.elapsed();
    sem.close();
    for handle in senders {
        if handle.await.is_err() {
            errln!("a sender task panicked");
            bump(&counters.other_errors, 1);
        }
    }
    // Every completion task holds a clone of the sender half; once the last
    // one has finished, recv() returns None.
    let _ = done_rx.recv().await;

    summary(&shared, elapsed, &rates)
}

fn summary(shared: &Shared, elapsed: Duration, rates: &[u64]) -> ExitCode {
    let (sem, counters) = (&shared.sem, &shared.counters);
    let secs = elapsed.as_secs_f64();
    let sent = read(&counters.sent);
    let sent_bytes = read(&counters.sent_bytes);
    let timeouts = read(&counters.timed_out);
    let closed = read(&counters.closed);
    let stats = sem.stats();

    outln!();
    outln!("summary after {secs:.1} s");
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
    outln!(
        "  timed out  {timeouts} acquires, held back by messages {}, by bytes {}",
        stats.timed_out_by[0],
        stats.timed_out_by[1],
    );
    outln!(
        "  refused    {} too large for the byte limit, {closed} closed at shutdown",
        read(&counters.too_large),
    );
    outln!(
        "  stats()    acquired {}, timed_out {}, cancelled {}, closed_out {}",
        stats.acquired,
        stats.timed_out,
        stats.cancelled,
        stats.closed_out,
    );
    outln!(
        "             peak_in_flight {} messages, {:.1} MiB",
        stats.peak_in_flight[0],
        mib(stats.peak_in_flight[1]),
    );
    let (capacity, available) = (sem.capacity(), sem.available());
    outln!("  capacity() {capacity:?}");
    outln!("  available() {available:?}");

    let mut ok = read(&counters.other_errors) == 0;
    // The library's counters must agree with what the senders saw: the
    // timer handed to each acquire makes a timeout a timeout, not a cancel.
    if stats.acquired != sent
        || stats.timed_out != timeouts
        || stats.cancelled != 0
        || stats.closed_out != closed
    {
        outln!(
            "MISMATCH: stats() disagrees with the senders, who saw {sent} acquired, \
             {timeouts} timed out, {closed} closed"
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
        outln!("LEAK: available() != capacity() after every completion task finished");
        ok = false;
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
