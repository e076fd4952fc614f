//! `producer --stream` (feature `futures`): the producer as a stream of
//! encoded messages on tokio, admitted through `multisem::stream::Admit`,
//! with the three tools multisem offers producers whose message sizes are
//! known late or exceed the budget, at work:
//!
//! * **stream admission**: each encoded message leaves the adaptor with the
//!   permit for `[1, encoded bytes]`, in order; the next message is encoded
//!   only once the current one is admitted, so at most one waits;
//! * **permits that change size**: the send compresses the message first.
//!   Where it shrank, `release` gives the difference back at once; where it
//!   grew (incompressible data plus framing), `try_grow` takes the rest, and
//!   if that does not fit now the send drops its permit and waits for the
//!   full size holding nothing (no grow ever waits: that would be
//!   hold-and-wait);
//! * **the oversized policy**: the semaphore is built with
//!   `clamp_oversized(true)`, and a few messages are larger than the whole
//!   byte budget. Each is granted the whole budget, waits its turn for it,
//!   and is sent alone in it: the demo checks, as each is sent, that nothing
//!   else holds a byte (and, at the end, that the bytes in flight never
//!   passed the budget, which an over-grant meanwhile would break).
//!
//! At the end: a summary, and a check that every permit came back and that
//! the bytes in flight never passed the budget.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream;
use multisem::stream::Admit;
use multisem::{MultiSemaphore, OwnedPermit};

use super::common::*;

/// The budget: 64 messages and 1 MiB in flight.
const BUDGET: [u64; 2] = [64, MIB];
/// Every this many messages, one larger than the whole byte budget.
const OVERSIZED_EVERY: u64 = 400;

struct Options {
    messages: u64,
    seed: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            messages: 4000,
            seed: 1,
        }
    }
}

fn help() -> String {
    let d = Options::default();
    format!(
        "\
producer --stream: a stream of encoded messages on tokio, admitted by weight

USAGE:
    cargo run --release --features futures --example producer -- --stream [OPTIONS]

The messages (most 100 B to 16 KiB, 3% of them 256 KiB, and every {every}th one
2 to 3 MiB) are admitted in order through multisem::stream::Admit against a
budget of {count} messages and {bytes} in flight, each for [1, encoded bytes].
Each send then compresses its message and resizes its permit: release gives
back what compression saved; try_grow takes what framing added, or, where
that does not fit now, the send drops its permit and waits for the full size
holding nothing. The semaphore clamps a request above the budget to it
(clamp_oversized): each message larger than the budget waits for all of it
and is sent alone.

At the end it prints a summary and checks that every message was sent, every
oversized one alone, every permit came back, and the bytes in flight never
passed the budget.

OPTIONS:
    --messages N   how many messages to send, 1 to 1000000 (default {messages})
    --seed N       seed for the message sizes and what compression makes of
                   them (default {seed})
    -h, --help     print this help

Options take their value as the next argument or after '=' (--messages=100).

EXIT STATUS:
    0  every check passed
    1  one did not
    2  bad options
",
        every = OVERSIZED_EVERY,
        count = BUDGET[0],
        bytes = fmt_size(BUDGET[1]),
        messages = d.messages,
        seed = d.seed,
    )
}

/// Parses the options; `Ok(None)` means `--help`.
fn parse(mut args: impl Iterator<Item = String>) -> Result<Option<Options>, String> {
    let mut options = Options::default();
    while let Some(arg) = args.next() {
        let (flag, inline) = split_flag(&arg);
        let mut value = || flag_value(&flag, inline.as_deref(), &mut args);
        match flag.as_str() {
            "-h" | "--help" => {
                switch(&flag, inline.as_deref())?;
                return Ok(None);
            }
            // What brought the producer here.
            "--stream" => {
                switch(&flag, inline.as_deref())?;
            }
            "--messages" => options.messages = parse_number(&flag, &value()?, 1, 1_000_000)?,
            "--seed" => options.seed = parse_number(&flag, &value()?, 0, u64::MAX)?,
            _ => {
                return Err(format!(
                    "unknown option '{arg}' for --stream (its options: --messages, --seed; \
                     see --stream --help)"
                ));
            }
        }
    }
    Ok(Some(options))
}

/// A message as the producer encoded it.
#[derive(Debug)]
struct Encoded {
    len: u64,
    /// What compression will make of it (decided by the seed).
    compressed: u64,
}

#[derive(Default)]
struct Tally {
    sent: AtomicU64,
    bytes: AtomicU64,
    released: AtomicU64,
    grown: AtomicU64,
    regrown: AtomicU64,
    oversized: AtomicU64,
    /// Oversized sends that found another message holding bytes.
    not_alone: AtomicU64,
}

/// The messages, encoded lazily as the stream is pulled.
fn encoded_messages(options: &Options) -> impl futures_util::Stream<Item = Encoded> + use<> {
    let mut rng = XorShift::new(options.seed, 15);
    stream::iter(0..options.messages).map(move |id| {
        let len = if id % OVERSIZED_EVERY == OVERSIZED_EVERY - 1 {
            rng.range(2 * MIB, 3 * MIB)
        } else {
            message_len(&mut rng).min(256 * KIB)
        };
        // Most compress to 30-90%; one in ten is incompressible and gains a
        // little framing.
        let compressed = if rng.per_mille(100) {
            len + len / 50 + 64
        } else {
            len * rng.range(30, 90) / 100
        };
        Encoded { len, compressed }
    })
}

/// The send: compress, resize the permit to match, hold it for the
/// broker's latency, then drop it.
async fn send(
    sem: Arc<MultiSemaphore<2>>,
    msg: Encoded,
    mut permit: OwnedPermit<2>,
    tally: Arc<Tally>,
) {
    let clamped = permit.amounts()[1] < msg.len;
    let size = if clamped {
        // It holds the whole budget: nothing can grow, and the compressed
        // size is sent in the budget's room.
        tally.oversized.fetch_add(1, Ordering::Relaxed);
        if sem.in_flight()[1] != permit.amounts()[1] {
            tally.not_alone.fetch_add(1, Ordering::Relaxed);
        }
        msg.compressed
    } else if msg.compressed <= msg.len {
        permit
            .release([0, msg.len - msg.compressed])
            .expect("the permit holds the encoded size");
        tally.released.fetch_add(1, Ordering::Relaxed);
        msg.compressed
    } else {
        let more = msg.compressed - msg.len;
        if permit.try_grow([0, more]).is_ok() {
            tally.grown.fetch_add(1, Ordering::Relaxed);
        } else {
            // Not now: wait for the full size holding nothing.
            drop(permit);
            permit = sem
                .acquire_owned([1, msg.compressed])
                .await
                .expect("never closed");
            tally.regrown.fetch_add(1, Ordering::Relaxed);
        }
        msg.compressed
    };
    let latency = 1 + size / BYTES_PER_MS;
    tokio::time::sleep(Duration::from_millis(latency)).await;
    tally.sent.fetch_add(1, Ordering::Relaxed);
    tally.bytes.fetch_add(size, Ordering::Relaxed);
    drop(permit);
}

pub(crate) fn run(args: impl Iterator<Item = String>) -> ExitCode {
    let options = match options_or_exit(parse(args), help) {
        Ok(options) => options,
        Err(code) => return code,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .expect("a tokio runtime");
    let sem = Arc::new(
        MultiSemaphore::builder(BUDGET)
            .clamp_oversized(true)
            .build(),
    );
    let tally = Arc::new(Tally::default());
    let start = Instant::now();
    runtime.block_on(async {
        let mut admitted = Admit::new(
            encoded_messages(&options),
            Arc::clone(&sem),
            |m: &Encoded| [1, m.len],
        );
        let mut sends = Vec::new();
        while let Some(next) = admitted.next().await {
            let (msg, permit) = next.expect("clamped, so never refused; never closed");
            sends.push(tokio::spawn(send(
                Arc::clone(&sem),
                msg,
                permit,
                Arc::clone(&tally),
            )));
        }
        for s in sends {
            s.await.expect("a send finished");
        }
    });
    let elapsed = start.elapsed();
    let stats = sem.stats();
    let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
    outln!(
        "stream: {} messages, {:.1} MiB in {:.2?} ({:.0} msg/s), budget {} messages / {}",
        get(&tally.sent),
        mib(get(&tally.bytes)),
        elapsed,
        get(&tally.sent) as f64 / elapsed.as_secs_f64(),
        BUDGET[0],
        fmt_size(BUDGET[1]),
    );
    outln!(
        "  compression: {} permits released part of their bytes, {} grew with try_grow, \
         {} could not grow at once and re-acquired the full size holding nothing",
        get(&tally.released),
        get(&tally.grown),
        get(&tally.regrown),
    );
    outln!(
        "  oversized: {} messages above the whole byte budget, each clamped to it \
         (stats.clamped = {}), sent alone in it {} times of {}",
        get(&tally.oversized),
        stats.clamped,
        get(&tally.oversized) - get(&tally.not_alone),
        get(&tally.oversized),
    );
    outln!(
        "  peak in flight: {} messages, {} (never above the budget: {})",
        stats.peak_in_flight[0],
        fmt_size(stats.peak_in_flight[1]),
        stats.peak_in_flight[0] <= BUDGET[0] && stats.peak_in_flight[1] <= BUDGET[1],
    );
    let balanced = sem.available() == sem.capacity();
    let ok = balanced
        && get(&tally.sent) == options.messages
        && get(&tally.not_alone) == 0
        && stats.peak_in_flight[1] <= BUDGET[1];
    outln!(
        "  every permit came back: {balanced}; {}",
        if ok {
            "all checks passed"
        } else {
            "A CHECK FAILED"
        }
    );
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
