//! `producer --adaptive`: the producer's limits set by the adaptive
//! controller, against a simulated broker whose capacity changes during the
//! run (full, then halved, then full again), in real time on real threads.
//!
//! Kept in its own module so that the producer's other modes stay as they
//! are; the producer's `main` hands over when it sees `--adaptive`.
//!
//! The broker, like the simulation's downstream (`examples/sim`) but 10 ms
//! away each way: `workers` threads' worth of slots, each spending a fixed overhead on a request and
//! then moving its bytes over a link shared equally by the requests
//! transferring; an unbounded queue in front. A request that has waited
//! longer than the client's timeout by the time it is answered (or
//! reached in the queue) is reported as dropped. One thread runs it all, so
//! its times are as exact as the OS's sleeps.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use multisem::MultiSemaphore;
use multisem::adaptive::{Controller, Outcome, TrackedPermit};

#[path = "../sim/mod.rs"]
mod sim;

#[path = "../chart/mod.rs"]
mod chart;
use chart::{Chart, Panel, Scale, Series, Style};

use super::common::{
    KIB, MIB, OutputFile, flag_value, options_or_exit, outln, parse_number, parse_path, split_flag,
    switch,
};

/// The timeline's default path: in the crate's `target/`, wherever the
/// example is run from.
const DEFAULT_CSV: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/target/adaptive_producer.csv");

/// The chart's default path, beside the timeline's.
const DEFAULT_SVG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/target/adaptive_producer.svg");

/// How long a sender waits for admission before it counts a timeout.
const ADMISSION_TIMEOUT: Duration = Duration::from_millis(200);

struct Options {
    seconds: u64,
    senders: usize,
    timeout: Duration,
    csv: String,
    svg: String,
    /// Every message 1 KiB instead of 90% 1 KiB, 10% 1 MiB.
    small: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            seconds: 15,
            senders: 32,
            timeout: Duration::from_secs(1),
            csv: DEFAULT_CSV.into(),
            svg: DEFAULT_SVG.into(),
            small: false,
        }
    }
}

fn help() -> String {
    let d = Options::default();
    format!(
        "\
producer --adaptive: the producer's limits set by multisem's adaptive controller

USAGE:
    cargo run --release --example producer -- --adaptive [OPTIONS]

Sender threads send messages (90% 1 KiB, 10% 1 MiB) to a simulated broker
10 ms away with 16 workers and 64 MiB/s, both halved through the middle
third of the run. The controller sets the message limit (messages a second
times the delay) and the byte limit (bytes a second times the delay). A
sender waits up to {admission} ms for admission; a message the broker has not
answered within {timeout} s of its admission is dropped.

Every second it prints the broker's capacity, both limits, what is in
flight, messages and MiB sent in that second, the p50 and p99 latency of the
messages answered in it, and the drops and admission timeouts so far.

OPTIONS:
    --seconds N    how long to run, in seconds, 3 to 3600 (default {seconds})
    --senders N    sender threads, 1 to 1024 (default {senders})
    --small        every message 1 KiB
    --csv PATH     where to write the limits, in-flight and latency every 250 ms
                   (default {csv})
    --svg PATH     where to chart them, against the broker's capacity
                   (default {svg})
    -h, --help     print this help

Options take their value as the next argument or after '=' (--seconds=5).

EXIT STATUS:
    0  every permit came back
    1  one did not, or the CSV or the chart could not be written
    2  bad options
",
        admission = ADMISSION_TIMEOUT.as_millis(),
        timeout = d.timeout.as_secs(),
        seconds = d.seconds,
        senders = d.senders,
        csv = d.csv,
        svg = d.svg,
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
            "--adaptive" => {
                switch(&flag, inline.as_deref())?;
            }
            "--small" => options.small = switch(&flag, inline.as_deref())?,
            // At least a second in each third of the run; the senders are
            // threads, so as many as the main mode allows.
            "--seconds" => options.seconds = parse_number(&flag, &value()?, 3, 3600)?,
            "--senders" => options.senders = parse_number(&flag, &value()?, 1, 1024)? as usize,
            "--csv" => options.csv = parse_path(&flag, value()?)?,
            "--svg" => options.svg = parse_path(&flag, value()?)?,
            _ => {
                return Err(format!(
                    "unknown option '{arg}' for --adaptive (its options: --seconds, --senders, \
                     --small, --csv, --svg; see --adaptive --help)"
                ));
            }
        }
    }
    Ok(Some(options))
}

/// The broker's capacity at `t` into the run: full, halved in the middle
/// third, full again.
fn broker_capacity(t: Duration, seconds: u64) -> (usize, f64) {
    let third = seconds as f64 / 3.0;
    let halved = (third..2.0 * third).contains(&t.as_secs_f64());
    if halved {
        (8, (32 * MIB) as f64)
    } else {
        (16, (64 * MIB) as f64)
    }
}

const OVERHEAD: Duration = Duration::from_millis(5);

/// One-way network delay: a broker some distance away, so that the
/// bandwidth-delay product is more than a request or two.
const NETWORK: Duration = Duration::from_millis(10);

struct Job {
    permit: TrackedPermit<2>,
    len: u64,
}

#[derive(Default)]
struct Tally {
    sent: AtomicU64,
    sent_bytes: AtomicU64,
    acked_bytes: AtomicU64,
    drops: AtomicU64,
    admission_timeouts: AtomicU64,
    latencies: Mutex<Vec<u64>>,
}

/// The broker: one thread owning the queue, the workers and the link.
fn broker(jobs: mpsc::Receiver<Job>, start: Instant, options: &Options, tally: &Tally) {
    let mut arriving: VecDeque<(Instant, Job)> = VecDeque::new();
    let mut replies: Vec<(Instant, Job, bool)> = Vec::new();
    let mut queue: VecDeque<Job> = VecDeque::new();
    let mut overhead: Vec<(Instant, Job)> = Vec::new();
    let mut link: Vec<(f64, Job)> = Vec::new(); // bytes left, job
    let mut last = Instant::now();
    let mut open = true;
    let answer = |job: Job, now: Instant, served: bool| {
        let waited = now.saturating_duration_since(job.permit.granted());
        if served && waited <= options.timeout {
            tally.acked_bytes.fetch_add(job.len, Ordering::Relaxed);
            tally
                .latencies
                .lock()
                .unwrap()
                .push(waited.as_nanos() as u64);
            job.permit.complete_at(Outcome::delivered(job.len), now);
        } else {
            tally.drops.fetch_add(1, Ordering::Relaxed);
            job.permit.complete_at(Outcome::Dropped, now);
        }
    };
    while open
        || !arriving.is_empty()
        || !queue.is_empty()
        || !overhead.is_empty()
        || !link.is_empty()
        || !replies.is_empty()
    {
        let now = Instant::now();
        while arriving.front().is_some_and(|(t, _)| *t <= now) {
            queue.push_back(arriving.pop_front().unwrap().1);
        }
        let mut i = 0;
        while i < replies.len() {
            if replies[i].0 <= now {
                let (_, job, served) = replies.swap_remove(i);
                answer(job, now, served);
            } else {
                i += 1;
            }
        }
        let (workers, bandwidth) = broker_capacity(now - start, options.seconds);
        // Move the link on: each transfer got an equal share since `last`.
        if !link.is_empty() {
            let share = (now - last).as_secs_f64() * bandwidth / link.len() as f64;
            for (left, _) in &mut link {
                *left -= share;
            }
            let mut i = 0;
            while i < link.len() {
                if link[i].0 <= 0.0 {
                    replies.push((now + NETWORK, link.swap_remove(i).1, true));
                } else {
                    i += 1;
                }
            }
        }
        last = now;
        let mut i = 0;
        while i < overhead.len() {
            if overhead[i].0 <= now {
                let (_, job) = overhead.swap_remove(i);
                link.push((job.len as f64, job));
            } else {
                i += 1;
            }
        }
        while overhead.len() + link.len() < workers {
            let Some(job) = queue.pop_front() else { break };
            if now.saturating_duration_since(job.permit.granted()) > options.timeout {
                replies.push((now + NETWORK, job, false)); // its client gave up while it queued
            } else {
                overhead.push((now + OVERHEAD, job));
            }
        }
        let next_overhead = overhead.iter().map(|(t, _)| *t).min();
        let next_link = link
            .iter()
            .map(|(left, _)| *left)
            .reduce(f64::min)
            .map(|left| {
                now + Duration::from_secs_f64((left * link.len() as f64 / bandwidth).max(0.0))
            });
        let next_arrival = arriving.front().map(|(t, _)| *t);
        let next_reply = replies.iter().map(|(t, _, _)| *t).min();
        let wake = [next_overhead, next_link, next_arrival, next_reply]
            .into_iter()
            .flatten()
            .min();
        let wait = wake
            .map_or(Duration::from_millis(5), |t| {
                t.saturating_duration_since(now)
            })
            .min(Duration::from_millis(5));
        match jobs.recv_timeout(wait) {
            Ok(job) => {
                let at = Instant::now() + NETWORK;
                arriving.push_back((at, job));
                while let Ok(job) = jobs.try_recv() {
                    arriving.push_back((at, job));
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => open = false,
        }
    }
}

fn size(bytes: u64) -> String {
    if bytes >= MIB {
        format!("{:.1} MiB", bytes as f64 / MIB as f64)
    } else {
        format!("{} KiB", bytes / KIB)
    }
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1] as f64 / 1e6
}

/// Runs the demo; the producer's `main` calls this when it sees `--adaptive`.
pub fn run(args: impl Iterator<Item = String>) -> ExitCode {
    let options = match options_or_exit(parse(args), help) {
        Ok(options) => options,
        Err(code) => return code,
    };
    // Opened before the run, so that a path that cannot be written fails
    // now, not after it.
    let (csv_file, svg_file) = match OutputFile::create_two(
        ["--csv", "--svg"],
        (&options.csv, options.csv == DEFAULT_CSV),
        (&options.svg, options.svg == DEFAULT_SVG),
    ) {
        Ok(files) => files,
        Err(code) => return code,
    };
    let largest = if options.small { KIB } else { MIB };
    let sem = Arc::new(
        MultiSemaphore::builder([16, 8 * MIB])
            .max_capacity([sim::COUNT_BOUNDS.1, sim::BYTES_MAX])
            .build(),
    );
    // The library's preset, as the simulation measured it: the count by
    // Little's law, the bytes by the bandwidth-delay product, 25 ms windows.
    let ctl = Controller::builder(Arc::clone(&sem))
        .count_and_bytes(
            0,
            sim::COUNT_BOUNDS.0..=sim::COUNT_BOUNDS.1,
            1,
            largest..=sim::BYTES_MAX,
        )
        .build();
    outln!(
        "producer --adaptive: {} senders, {} messages; a sender waits up to {} ms for admission,\n\
         and a message not answered within {:?} of its admission is dropped.\n\
         The broker, 10 ms away, has 16 workers and 64 MiB/s, halved from {:.0} s to {:.0} s; the controller\n\
         sets the message limit (requests/s x delay) and the byte limit (bytes/s x delay).\n",
        options.senders,
        if options.small {
            "1 KiB"
        } else {
            "90% 1 KiB / 10% 1 MiB"
        },
        ADMISSION_TIMEOUT.as_millis(),
        options.timeout,
        options.seconds as f64 / 3.0,
        2.0 * options.seconds as f64 / 3.0,
    );
    let groups = format!(
        "{:63}{:^14}  {:^14}  {:^16}",
        "", "per second", "latency", "so far"
    );
    outln!("{}", groups.trim_end());
    outln!(
        "{:>5}  {:<14}  {:<20}  {:<16}  {:>6}  {:>6}  {:>6}  {:>6}  {:>6}  {:>8}",
        "t s",
        "broker",
        "limits [msgs, bytes]",
        "in flight",
        "sent",
        "MiB",
        "p50 ms",
        "p99 ms",
        "drops",
        "timeouts"
    );
    let tally = Tally::default();
    let stop = AtomicBool::new(false);
    let start = Instant::now();
    let mut samples: Vec<Sample> = Vec::new();
    let mut csv = String::from(
        "t_s,broker_workers,broker_mib_s,count_limit,bytes_limit,count_in_flight,bytes_in_flight,goodput_mib_s,p50_ms,p99_ms,drops\n",
    );
    thread::scope(|s| {
        let (tx, rx) = mpsc::channel::<Job>();
        let options = &options;
        let tally = &tally;
        s.spawn(move || broker(rx, start, options, tally));
        for id in 0..options.senders as u64 {
            let (tx, ctl, stop) = (tx.clone(), Arc::clone(&ctl), &stop);
            s.spawn(move || {
                let mut x = id.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
                while !stop.load(Ordering::Relaxed) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let len = if x % 10 == 0 && !options.small {
                        MIB
                    } else {
                        KIB
                    };
                    match ctl.acquire_blocking_timeout([1, len], ADMISSION_TIMEOUT) {
                        Ok(permit) => {
                            tally.sent.fetch_add(1, Ordering::Relaxed);
                            tally.sent_bytes.fetch_add(len, Ordering::Relaxed);
                            if tx.send(Job { permit, len }).is_err() {
                                break;
                            }
                        }
                        Err(_) => {
                            tally.admission_timeouts.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            });
        }
        drop(tx);
        let tick = Duration::from_millis(250);
        let mut last = (0, 0, 0, 0);
        let mut second: Vec<u64> = Vec::new();
        for n in 1..=options.seconds * 4 {
            thread::sleep((start + tick * n as u32).saturating_duration_since(Instant::now()));
            let t = start.elapsed();
            // The broker as it was through the tick just ended (its middle):
            // at a phase's edge, the new capacity belongs to the next row.
            let (workers, bandwidth) = broker_capacity(t.saturating_sub(tick / 2), options.seconds);
            let limits = ctl.limits();
            let in_flight = sem.in_flight();
            let mut latencies = std::mem::take(&mut *tally.latencies.lock().unwrap());
            latencies.sort_unstable();
            let acked = tally.acked_bytes.load(Ordering::Relaxed);
            let sample = Sample {
                t: t.as_secs_f64(),
                bandwidth_mib: bandwidth / MIB as f64,
                limits,
                in_flight,
                goodput_mib: (acked - last.2) as f64 / MIB as f64 / tick.as_secs_f64(),
                // No answer in the tick: no latency to draw.
                p99_ms: if latencies.is_empty() {
                    f64::NAN
                } else {
                    percentile(&latencies, 0.99)
                },
            };
            let _ = writeln!(
                csv,
                "{:.2},{workers},{:.0},{},{},{},{},{:.2},{:.2},{:.2},{}",
                sample.t,
                sample.bandwidth_mib,
                limits[0],
                limits[1],
                in_flight[0],
                in_flight[1],
                sample.goodput_mib,
                percentile(&latencies, 0.5),
                percentile(&latencies, 0.99),
                tally.drops.load(Ordering::Relaxed) - last.3,
            );
            samples.push(sample);
            last.2 = acked;
            last.3 = tally.drops.load(Ordering::Relaxed);
            second.extend(latencies);
            if n % 4 == 0 {
                second.sort_unstable();
                let sent = tally.sent.load(Ordering::Relaxed);
                let sent_bytes = tally.sent_bytes.load(Ordering::Relaxed);
                outln!(
                    "{:>5.1}  {:<14}  {:<20}  {:<16}  {:>6}  {:>6.1}  {:>6.1}  {:>6.1}  {:>6}  {:>8}",
                    t.as_secs_f64(),
                    format!("{:>2} x {:>3} MiB/s", workers, bandwidth as u64 / MIB),
                    format!("[{:>4}, {:>9}]", limits[0], size(limits[1])),
                    format!("[{:>4}, {:>8}]", in_flight[0], size(in_flight[1])),
                    sent - last.0,
                    (sent_bytes - last.1) as f64 / MIB as f64,
                    percentile(&second, 0.5),
                    percentile(&second, 0.99),
                    tally.drops.load(Ordering::Relaxed),
                    tally.admission_timeouts.load(Ordering::Relaxed),
                );
                last.0 = sent;
                last.1 = sent_bytes;
                second.clear();
            }
        }
        stop.store(true, Ordering::Relaxed);
    });
    let balanced = sem.available() == sem.capacity();
    outln!(
        "\n{} resizes; limits at the end {:?}; every permit came back: {}",
        ctl.resizes(),
        ctl.limits(),
        if balanced { "yes" } else { "NO" }
    );
    let svg = timeline_chart(&samples, &options).to_svg();
    let written = csv_file.write(&csv).is_ok() && svg_file.write(&svg).is_ok();
    if written {
        outln!(
            "limits and latency over time: {}, charted in {}",
            options.csv,
            options.svg
        );
    }
    if balanced && written {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// What the status loop saw at one tick, for the chart.
struct Sample {
    t: f64,
    bandwidth_mib: f64,
    limits: [u64; 2],
    in_flight: [u64; 2],
    goodput_mib: f64,
    p99_ms: f64,
}

/// The run over time: both limits against what was in flight, the goodput
/// against the broker's bandwidth, and the p99, with the broker's phases
/// shaded.
fn timeline_chart(samples: &[Sample], options: &Options) -> Chart {
    let seconds = options.seconds as f64;
    let line =
        |name: &str, color: &'static str, dashed: bool, figure: &dyn Fn(&Sample) -> f64| Series {
            name: name.into(),
            style: Style { color, dashed },
            points: samples.iter().map(|s| (s.t, figure(s))).collect(),
        };
    let limit = |dim: usize, unit: f64| {
        line("limit", "#0072b2", false, &move |s: &Sample| {
            s.limits[dim] as f64 / unit
        })
    };
    let in_flight = |dim: usize, unit: f64| {
        line("in flight", "#999999", false, &move |s: &Sample| {
            s.in_flight[dim] as f64 / unit
        })
    };
    Chart {
        title: format!(
            "producer --adaptive: {} senders, {}; the broker halved from {:.0} s to {:.0} s",
            options.senders,
            if options.small {
                "1 KiB messages"
            } else {
                "90% 1 KiB, 10% 1 MiB"
            },
            seconds / 3.0,
            2.0 * seconds / 3.0,
        ),
        x_label: "seconds".into(),
        x_max: seconds,
        phases: vec![
            (0.0, "full".into()),
            (seconds / 3.0, "halved".into()),
            (2.0 * seconds / 3.0, "recovered".into()),
        ],
        panels: vec![
            Panel {
                title: "messages".into(),
                scale: Scale::Linear,
                series: vec![in_flight(0, 1.0), limit(0, 1.0)],
            },
            Panel {
                title: "MiB".into(),
                scale: Scale::Linear,
                series: vec![in_flight(1, MIB as f64), limit(1, MIB as f64)],
            },
            Panel {
                title: "goodput, MiB/s (each 250 ms)".into(),
                scale: Scale::Linear,
                series: vec![
                    line("the broker's bandwidth", "#555555", true, &|s| {
                        s.bandwidth_mib
                    }),
                    line("goodput", "#009e73", false, &|s| s.goodput_mib),
                ],
            },
            Panel {
                title: "p99 latency of the answers in each 250 ms (ms; log scale)".into(),
                scale: Scale::Log,
                series: vec![line("p99", "#d55e00", false, &|s| s.p99_ms)],
            },
        ],
    }
}
