//! The adaptive controller against the best static limits and against
//! count-only adaptive limits, in a deterministic simulation (see
//! `examples/sim/mod.rs` for the model): prints the README's table, writes
//! every limiter's limits and latency over time as CSV, and charts the
//! mixed sizes' timeline as SVG (`examples/chart/mod.rs`).
//!
//! ```text
//! cargo run --release --example adaptive_sim                 # the table, ~10 s
//! cargo run --release --example adaptive_sim -- --csv out.csv --svg out.svg
//! cargo run --release --example adaptive_sim -- --seed 7
//! cargo run --release --example adaptive_sim -- --seeds 20   # the goals over seeds 1 to 20, ~1 min
//! cargo run --release --example adaptive_sim -- --seeds 20 --room 3
//! cargo run --release --example adaptive_sim -- --seeds 20 --statics   # ~40 s
//! cargo run --release --example adaptive_sim -- --downstreams   # other brokers, ~1.5 min
//! cargo run --release --example adaptive_sim -- --downstreams --count-max 5
//! cargo run --release --example adaptive_sim -- --help
//! ```
//!
//! `--seeds N` runs the mixed-size scenario on seeds 1 to N and counts, per
//! phase, the seeds on which each of the joint controller's goals holds: at
//! least 90% of the oracle's goodput (the best static limits for the phase
//! alone) with a p99 at most 1.5x the oracle's and at most 1% drops;
//! re-converged within 5 s of a change; and, against count-only limits, a
//! p99 at most half theirs at no worse goodput. Beside re-convergence it
//! counts how often the oracle itself, run on its phase alone (where
//! nothing changes), passes the same 500 ms test: the measure's own noise.
//! `--room R` gives the joint controller room for `R` whole requests
//! beyond the bandwidth-delay product instead of the preset's 2 (in
//! tenths: how the preset trades p99 for link use); `--statics` asks the
//! same of static limits near the oracle's instead: whether any fixed
//! `[count, bytes]` keeps the oracle's p99 and count-only's goodput.
//! `--downstreams` runs the same three phases on brokers other than the
//! README's (fewer or more workers, a fast or distant broker, a slow link,
//! other sizes, a bounded queue) and measures the joint controller and
//! count-only against each one's oracle (with the oracle's own settling, as
//! above); `--count-max N` bounds the joint controller's count at `N`
//! there, as a user who knows the size of the broker's pool would.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Duration;

mod sim;
use sim::*;

mod chart;
use chart::{Chart, Panel, Scale, Series, Style, per_phase};

mod common;
use common::{
    OutputFile, args_or_exit, errln, flag_value, fmt_size, options_or_exit, outln, parse_decimal,
    parse_number, parse_path, split_flag, switch,
};

/// The timeline's default path: in the crate's `target/`, wherever the
/// example is run from.
const DEFAULT_CSV: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/target/adaptive_sim.csv");

/// The chart's default path, beside the timeline's.
const DEFAULT_SVG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/target/adaptive_sim.svg");

/// The most seeds `--seeds` runs (about 3 s each on two loaded cores).
const MAX_SEEDS: u64 = 1000;

fn help() -> String {
    format!(
        "\
adaptive_sim: the adaptive controller against the best static limits and
against count-only adaptive limits, in a deterministic simulation in virtual
time (the model: examples/sim/mod.rs)

USAGE:
    cargo run --release --example adaptive_sim -- [--seed N] [--csv PATH] [--svg PATH]
    cargo run --release --example adaptive_sim -- --seeds N [--room R | --statics]
    cargo run --release --example adaptive_sim -- --downstreams [--seed N] [--count-max N]

Without --seeds it prints the README's table (mixed sizes and 1 KiB, three
phases each, about 10 s), writes every limiter's limits, in-flight and
latency over time as CSV, and charts the mixed sizes' limits, p99 and goodput
over time, against the oracle's, as SVG.

OPTIONS:
    --seed N       seed of the table's run (default 1)
    --csv PATH     where to write the timeline (default {csv})
    --svg PATH     where to write the chart (default {svg})
    --seeds N      instead of the table: on how many of seeds 1 to N (1 to {max_seeds})
                   each goal below holds, per phase of the mixed sizes (~3 s a seed)
    --room R       with --seeds: give the joint controller room for R whole requests
                   beyond the bandwidth-delay product instead of the preset's 2
                   (0 to 100, in tenths, e.g. 0.5)
    --statics      with --seeds: the same question of static limits near the
                   oracle's: whether any fixed [count, bytes] keeps the oracle's p99
                   and count-only's goodput (~2 s a seed)
    --downstreams  instead of the table: the three phases on other brokers than
                   the README's, the joint controller and count-only against
                   each one's oracle (~1.5 min)
    --count-max N  with --downstreams: bound the joint controller's count at N
                   (1 to {count_max}), as a user who knows the broker's pool would
    -h, --help     print this help

Options take their value as the next argument or after '=' (--seeds=20).

THE GOALS (--seeds), for the joint controller in each phase:
    - at least 90% of the oracle's goodput, a p99 at most 1.5x the oracle's,
      and at most 1% drops (the oracle: the best static limits for that phase
      alone, found by searching a grid);
    - re-converged to those within 5 s after the downstream changes (every
      500 ms bucket from then on meets them; the oracle's own run, where
      nothing changes, is judged the same way beside it: the measure's noise);
    - against count-only adaptive limits: a p99 at most half theirs at no
      worse goodput.

EXIT STATUS:
    0  done
    1  a run did not give back every permit, or the CSV or the chart could not
       be written
    2  bad options
",
        csv = DEFAULT_CSV,
        svg = DEFAULT_SVG,
        max_seeds = MAX_SEEDS,
        count_max = COUNT_BOUNDS.1,
    )
}

struct Options {
    seed: Option<u64>,
    csv: Option<String>,
    svg: Option<String>,
    seeds: Option<u64>,
    /// Room beyond the bandwidth-delay product, in tenths of a request.
    room: Option<u32>,
    statics: bool,
    downstreams: bool,
    /// The joint controller's count bound on other brokers.
    count_max: Option<u64>,
}

/// Parses the options; `Ok(None)` means `--help`.
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Options>, String> {
    let mut options = Options {
        seed: None,
        csv: None,
        svg: None,
        seeds: None,
        room: None,
        statics: false,
        downstreams: false,
        count_max: None,
    };
    while let Some(arg) = args.next() {
        let (flag, inline) = split_flag(&arg);
        let mut value = || flag_value(&flag, inline.as_deref(), &mut args);
        match flag.as_str() {
            "-h" | "--help" => {
                switch(&flag, inline.as_deref())?;
                return Ok(None);
            }
            "--statics" => options.statics = switch(&flag, inline.as_deref())?,
            "--downstreams" => options.downstreams = switch(&flag, inline.as_deref())?,
            "--seed" => options.seed = Some(parse_number(&flag, &value()?, 0, u64::MAX)?),
            "--csv" => options.csv = Some(parse_path(&flag, value()?)?),
            "--svg" => options.svg = Some(parse_path(&flag, value()?)?),
            "--seeds" => options.seeds = Some(parse_number(&flag, &value()?, 1, MAX_SEEDS)?),
            "--room" => {
                let requests = parse_decimal(&flag, &value()?, 0.0, 100.0)?;
                options.room = Some((requests * 10.0).round() as u32);
            }
            "--count-max" => {
                options.count_max = Some(parse_number(&flag, &value()?, 1, COUNT_BOUNDS.1)?);
            }
            _ => return Err(format!("unknown option '{arg}'")),
        }
    }
    if options.seeds.is_none() && options.room.is_some() {
        return Err("--room goes with --seeds N".into());
    }
    if options.seeds.is_none() && options.statics {
        return Err("--statics goes with --seeds N".into());
    }
    if options.statics && options.room.is_some() {
        return Err("--room and --statics do not go together".into());
    }
    if options.seeds.is_some() && options.seed.is_some() {
        return Err("--seed is for the table; --seeds N runs seeds 1 to N".into());
    }
    if options.seeds.is_some() && (options.csv.is_some() || options.svg.is_some()) {
        return Err("--csv and --svg are for the table; --seeds writes neither".into());
    }
    if options.downstreams
        && (options.seeds.is_some() || options.csv.is_some() || options.svg.is_some())
    {
        return Err("--downstreams goes with --seed N and --count-max N alone".into());
    }
    if options.count_max.is_some() && !options.downstreams {
        return Err("--count-max goes with --downstreams".into());
    }
    Ok(Some(options))
}

fn main() -> ExitCode {
    let args = match args_or_exit() {
        Ok(args) => args,
        Err(code) => return code,
    };
    let options = match options_or_exit(parse_args(args.into_iter()), help) {
        Ok(options) => options,
        Err(code) => return code,
    };
    if options.downstreams {
        let joint = options
            .count_max
            .map_or(Limiter::Joint, Limiter::JointCountMax);
        return match other_downstreams(options.seed.unwrap_or(1), joint) {
            Ok(()) => ExitCode::SUCCESS,
            Err(leak) => leaked(&leak),
        };
    }
    if let Some(seeds) = options.seeds {
        let done = if options.statics {
            statics_over_seeds(seeds)
        } else {
            goals_over_seeds(seeds, options.room)
        };
        return match done {
            Ok(()) => ExitCode::SUCCESS,
            Err(leak) => leaked(&leak),
        };
    }
    // Opened before the run, so that a path that cannot be written fails
    // now, not after ten seconds of simulation.
    let csv_path = options.csv.unwrap_or_else(|| DEFAULT_CSV.to_string());
    let svg_path = options.svg.unwrap_or_else(|| DEFAULT_SVG.to_string());
    let (csv_file, svg_file) = match OutputFile::create_two(
        ["--csv", "--svg"],
        (&csv_path, csv_path == DEFAULT_CSV),
        (&svg_path, svg_path == DEFAULT_SVG),
    ) {
        Ok(files) => files,
        Err(code) => return code,
    };
    let (csv, svg) = match table(options.seed.unwrap_or(1)) {
        Ok(written) => written,
        Err(leak) => return leaked(&leak),
    };
    if let Err(code) = csv_file.write(&csv).and_then(|()| svg_file.write(&svg)) {
        return code;
    }
    errln!("timeline written to {csv_path}, its chart to {svg_path}");
    ExitCode::SUCCESS
}

/// A run whose semaphore did not get every permit back once it drained
/// (`RunReport::balanced`): a bug in the simulation or the library, so the
/// figures cannot be trusted. Prints what leaked; returns exit status 1.
fn leaked(what: &str) -> ExitCode {
    errln!("error: {what}: permits leaked (available() != capacity() once drained)");
    ExitCode::FAILURE
}

/// `Err` naming the run if its permits did not all come back.
fn check_balanced(report: &RunReport, what: impl FnOnce() -> String) -> Result<(), String> {
    if report.balanced { Ok(()) } else { Err(what()) }
}

/// Prints the README's table for `seed`; returns the timeline as CSV and the
/// mixed sizes' chart as SVG, or the run whose permits leaked.
fn table(seed: u64) -> Result<(String, String), String> {
    let mut csv = String::from(
        "traffic,limiter,t_s,phase,count_limit,bytes_limit,count_in_flight,bytes_in_flight,goodput_mib_s,p50_ms,p99_ms,drops\n",
    );
    outln!(
        "| traffic | phase | limiter | limits [count, bytes] | goodput MiB/s | link busy | p50 ms | p99 ms | drops | vs oracle: goodput, p99 | re-converged after |"
    );
    outln!("|---|---|---|---|---|---|---|---|---|---|---|");
    let mut svg = String::new();
    for (label, traffic) in [("mixed", Traffic::MIXED), ("1 KiB", Traffic::Single(KIB))] {
        let scenario = readme_scenario(traffic, seed);
        let grid = grid(traffic);
        let oracles = oracles(&scenario, &grid);
        let runs = [
            run(&scenario, Limiter::CountOnly),
            run(&scenario, Limiter::JointCountOnly),
            run(&scenario, Limiter::Joint),
        ];
        for (p, phase) in scenario.phases.iter().enumerate() {
            let (limits, o) = &oracles[p];
            outln!(
                "| {label} | {} | oracle | [{}, {}] | {:.1} | {:.2}% | {:.1} | {:.1} | {:.2}% | | |",
                phase.name,
                limits[0],
                fmt_bytes(limits[1]),
                o.goodput / MIB as f64,
                o.link_busy * 100.0,
                ms(o.p50),
                ms(o.p99),
                o.drop_rate * 100.0,
            );
            for r in &runs {
                let ph = &r.phases[p];
                let settled = match convergence(&scenario, r, p, o) {
                    Some(t) => format!("{:.1} s", t.as_secs_f64()),
                    None => "not in the phase".into(),
                };
                outln!(
                    "| {label} | {} | {} | ~[{:.0}, {}] | {:.1} | {:.2}% | {:.1} | {:.1} | {:.2}% | {:.0}%, {:.2}x | {settled} |",
                    phase.name,
                    r.limiter.name(),
                    ph.mean_limits[0],
                    fmt_bytes(ph.mean_limits[1] as u64),
                    ph.goodput / MIB as f64,
                    ph.link_busy * 100.0,
                    ms(ph.p50),
                    ms(ph.p99),
                    ph.drop_rate * 100.0,
                    100.0 * ph.goodput / o.goodput,
                    ph.p99.as_secs_f64() / o.p99.as_secs_f64(),
                );
            }
        }
        if traffic == Traffic::MIXED {
            svg = timeline_chart(&scenario, &runs, &oracles).to_svg();
        }
        for r in &runs {
            check_balanced(r, || format!("{label}, {}, seed {seed}", r.limiter.name()))?;
            for b in &r.timeline {
                let _ = writeln!(
                    csv,
                    "{label},{},{:.1},{},{},{},{},{},{:.2},{:.2},{:.2},{}",
                    r.limiter.name(),
                    b.end.as_secs_f64(),
                    scenario.phases[b.phase].name,
                    b.limits[0],
                    b.limits[1].min(BYTES_MAX),
                    b.in_flight[0],
                    b.in_flight[1],
                    b.goodput / MIB as f64,
                    ms(b.p50),
                    ms(b.p99),
                    b.drops,
                );
            }
        }
    }
    Ok((csv, svg))
}

/// The timeline of `runs` on `scenario` (every 100 ms; goodput in 500 ms
/// means, since a 100 ms bucket holds only about six 1 MiB messages), each
/// figure against the oracle's for the phase, drawn as a step.
fn timeline_chart(
    scenario: &Scenario,
    runs: &[RunReport],
    oracles: &[([u64; 2], PhaseReport)],
) -> Chart {
    let mut phases = Vec::new();
    let mut start = 0.0;
    for phase in &scenario.phases {
        phases.push((start, phase.name.to_string()));
        start += phase.duration.as_secs_f64();
    }
    let x_max = start;
    let oracle = |values: Vec<f64>| Series {
        name: "oracle (best static, per phase)".into(),
        style: Style {
            color: "#555555",
            dashed: true,
        },
        points: per_phase(&phases, x_max, &values),
    };
    let line = |r: &RunReport, points: Vec<(f64, f64)>| Series {
        name: r.limiter.name(),
        style: Style {
            color: match r.limiter {
                Limiter::CountOnly => "#d62728",
                Limiter::JointCountOnly => "#e69f00",
                _ => "#0072b2",
            },
            dashed: false,
        },
        points,
    };
    // A run's line through `figure` of each of its buckets.
    let per_bucket = |r: &RunReport, figure: &dyn Fn(&Bucket) -> f64| {
        let points = r.timeline.iter().map(|b| (b.end.as_secs_f64(), figure(b)));
        line(r, points.collect())
    };
    let mib = |bytes: f64| bytes / MIB as f64;

    let mut count: Vec<Series> = runs
        .iter()
        .map(|r| per_bucket(r, &|b| b.limits[0] as f64))
        .collect();
    count.push(oracle(oracles.iter().map(|(l, _)| l[0] as f64).collect()));
    // Count-only and the joint count alone leave the bytes unbounded.
    let mut bytes: Vec<Series> = runs
        .iter()
        .filter(|r| r.timeline.iter().any(|b| b.limits[1] < BYTES_MAX))
        .map(|r| per_bucket(r, &|b| mib(b.limits[1] as f64)))
        .collect();
    bytes.push(oracle(
        oracles.iter().map(|(l, _)| mib(l[1] as f64)).collect(),
    ));
    // A bucket without a success has no latency to draw.
    let mut p99: Vec<Series> = runs
        .iter()
        .map(|r| {
            per_bucket(r, &|b| {
                if b.successes == 0 {
                    f64::NAN
                } else {
                    ms(b.p99)
                }
            })
        })
        .collect();
    p99.push(oracle(oracles.iter().map(|(_, o)| ms(o.p99)).collect()));
    let mut goodput: Vec<Series> = runs
        .iter()
        .map(|r| {
            let means = r.timeline.chunks(5).map(|half_second| {
                let sum: f64 = half_second.iter().map(|b| b.goodput).sum();
                let end = half_second[half_second.len() - 1].end;
                (end.as_secs_f64(), mib(sum / half_second.len() as f64))
            });
            line(r, means.collect())
        })
        .collect();
    goodput.push(oracle(
        oracles.iter().map(|(_, o)| mib(o.goodput)).collect(),
    ));

    Chart {
        title: format!(
            "{}, seed {}: each limiter as the broker changes, against the oracle",
            traffic_name(scenario.traffic),
            scenario.seed,
        ),
        x_label: format!(
            "seconds, after a {:.0} s warm-up",
            scenario.warmup.as_secs_f64()
        ),
        x_max,
        phases,
        panels: vec![
            Panel {
                title: "count limit (requests; log scale)".into(),
                scale: Scale::Log,
                series: count,
            },
            Panel {
                title: "byte limit (MiB)".into(),
                scale: Scale::Linear,
                series: bytes,
            },
            Panel {
                title: "p99 latency of the successes in each 100 ms (ms; log scale)".into(),
                scale: Scale::Log,
                series: p99,
            },
            Panel {
                title: "goodput (MiB/s; means over 500 ms)".into(),
                scale: Scale::Linear,
                series: goodput,
            },
        ],
    }
}

/// The chart's name for `traffic`, as "90% 1 KiB, 10% 1 MiB".
fn traffic_name(traffic: Traffic) -> String {
    match traffic {
        Traffic::Mixed {
            small,
            large,
            large_per_mille,
        } => format!(
            "{}% {}, {}% {}",
            (1000 - large_per_mille) as f64 / 10.0,
            fmt_size(small),
            large_per_mille as f64 / 10.0,
            fmt_size(large)
        ),
        Traffic::Single(bytes) => format!("all {}", fmt_size(bytes)),
    }
}

/// Brokers other than the README's, each through the README's three phases
/// (steady, capacity halved, recovered): what changes from the README's
/// broker (16 workers, a 64 MiB/s link, 5 ms of overhead, 0.5 ms each way,
/// 90% 1 KiB and 10% 1 MiB), the broker, its one-way network delay and the
/// traffic.
fn downstreams() -> Vec<(&'static str, Downstream, Duration, Traffic)> {
    let readme = Downstream::README;
    let near = Duration::from_micros(500);
    vec![
        (
            "4 workers",
            Downstream {
                workers: 4,
                ..readme
            },
            near,
            Traffic::MIXED,
        ),
        (
            "64 workers",
            Downstream {
                workers: 64,
                ..readme
            },
            near,
            Traffic::MIXED,
        ),
        (
            "0.25 ms overhead",
            Downstream {
                overhead: Duration::from_micros(250),
                ..readme
            },
            near,
            Traffic::MIXED,
        ),
        (
            "20 ms each way",
            readme,
            Duration::from_millis(20),
            Traffic::MIXED,
        ),
        (
            "a queue of 8 (refusals)",
            Downstream { queue: 8, ..readme },
            near,
            Traffic::MIXED,
        ),
        (
            "an 8 MiB/s link, 256 KiB large",
            Downstream {
                bandwidth: (8 * MIB) as f64,
                ..readme
            },
            near,
            Traffic::Mixed {
                small: KIB,
                large: 256 * KIB,
                large_per_mille: 100,
            },
        ),
        ("1 MiB only", readme, near, Traffic::Single(MIB)),
        (
            "4 workers, 1 KiB only",
            Downstream {
                workers: 4,
                ..readme
            },
            near,
            Traffic::Single(KIB),
        ),
    ]
}

/// Prints, for each of [`downstreams`] and phase, the oracle and how the
/// joint controller (`joint_limiter`: the preset, or it with the count
/// bounded) and count-only compare with it, and whether the joint
/// controller meets its goals against the oracle there (as the README's
/// table asks: 90% of the goodput, 1.5x the p99, 1% drops, re-converged
/// within 5 s), with how long the oracle itself takes to settle by that
/// measure (its floor there). `Err` names a run whose permits leaked.
fn other_downstreams(seed: u64, joint_limiter: Limiter) -> Result<(), String> {
    if joint_limiter != Limiter::Joint {
        outln!("{}", joint_limiter.name());
    }
    outln!(
        "| broker | phase | oracle [count, bytes]: goodput MiB/s, p99 ms | joint ~[count, bytes] | joint vs oracle: goodput, p99, drops | re-converged after | the oracle's own, by the same measure | goals | count-only vs oracle: goodput, p99, drops |"
    );
    outln!("|---|---|---|---|---|---|---|---|---|");
    for (label, full, network, traffic) in downstreams() {
        let scenario = Scenario::three_phases_on(
            full,
            network,
            traffic,
            Duration::from_secs(5),
            Duration::from_secs(10),
            seed,
        );
        let grid = grid(traffic);
        let joint = run(&scenario, joint_limiter);
        let count_only = run(&scenario, Limiter::CountOnly);
        for r in [&joint, &count_only] {
            check_balanced(r, || format!("{label}, {}, seed {seed}", r.limiter.name()))?;
        }
        for (p, (phase, (limits, o))) in scenario
            .phases
            .iter()
            .zip(oracles(&scenario, &grid))
            .enumerate()
        {
            let (j, c) = (&joint.phases[p], &count_only.phases[p]);
            let versus = |r: &PhaseReport| {
                format!(
                    "{:.0}%, {:.2}x, {:.2}%",
                    100.0 * r.goodput / o.goodput,
                    r.p99.as_secs_f64() / o.p99.as_secs_f64(),
                    100.0 * r.drop_rate,
                )
            };
            let settled = convergence(&scenario, &joint, p, &o);
            let goals =
                meets_oracle_goals(j, &o) && settled.is_some_and(|t| t <= Duration::from_secs(5));
            let own = oracle_settling(&scenario, p, limits, &o);
            let [settled, own] = [settled, own].map(|t| {
                t.map_or("not in the phase".into(), |t| {
                    format!("{:.1} s", t.as_secs_f64())
                })
            });
            outln!(
                "| {label} | {} | [{}, {}]: {:.1}, {:.1} | ~[{:.0}, {}] | {} | {settled} | {own} | {} | {} |",
                phase.name,
                limits[0],
                fmt_bytes(limits[1]),
                o.goodput / MIB as f64,
                ms(o.p99),
                j.mean_limits[0],
                fmt_bytes(j.mean_limits[1] as u64),
                versus(j),
                if goals { "met" } else { "**missed**" },
                versus(c),
            );
        }
    }
    Ok(())
}

/// The README's scenario: a 5 s warm-up, then three 10 s phases.
fn readme_scenario(traffic: Traffic, seed: u64) -> Scenario {
    Scenario::three_phases(
        traffic,
        Duration::from_secs(5),
        Duration::from_secs(10),
        seed,
    )
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Per phase of the mixed-size scenario, on how many of seeds 1 to `seeds`
/// each goal holds: the joint controller (or its variant with `room` tenths
/// of a request) against the oracle and against count-only, and the oracle
/// itself against count-only and by the measure of re-convergence, with the
/// goodput ratios and link use behind the verdicts. `Err` names a run
/// whose permits leaked.
fn goals_over_seeds(seeds: u64, room: Option<u32>) -> Result<(), String> {
    let joint = room.map_or(Limiter::Joint, Limiter::JointRoom);
    let grid = grid(Traffic::MIXED);
    let names: Vec<_> = readme_scenario(Traffic::MIXED, 1)
        .phases
        .iter()
        .map(|phase| phase.name)
        .collect();
    let mut tally = vec![
        Tally {
            worst_goodput: f64::INFINITY,
            ..Tally::default()
        };
        names.len()
    ];
    for seed in 1..=seeds {
        let scenario = readme_scenario(Traffic::MIXED, seed);
        let count_only = run(&scenario, Limiter::CountOnly);
        let ours = run(&scenario, joint);
        for r in [&count_only, &ours] {
            check_balanced(r, || format!("mixed, {}, seed {seed}", r.limiter.name()))?;
        }
        for (p, (t, (limits, o))) in tally.iter_mut().zip(oracles(&scenario, &grid)).enumerate() {
            let (c, j) = (&count_only.phases[p], &ours.phases[p]);
            t.oracle_goals += u64::from(meets_oracle_goals(j, &o));
            let settled = convergence(&scenario, &ours, p, &o);
            t.converged += u64::from(settled.is_some_and(|s| s <= Duration::from_secs(5)));
            let own = oracle_settling(&scenario, p, limits, &o);
            t.oracle_converged += u64::from(own.is_some_and(|s| s <= Duration::from_secs(5)));
            t.half_p99 += u64::from(2 * j.p99 <= c.p99);
            t.no_worse_goodput += u64::from(j.goodput >= c.goodput);
            t.oracle_no_worse_goodput += u64::from(o.goodput >= c.goodput);
            t.worst_p99 = t.worst_p99.max(j.p99.as_secs_f64() / o.p99.as_secs_f64());
            t.worst_goodput = t.worst_goodput.min(j.goodput / o.goodput);
            t.ratios.push(j.goodput / c.goodput);
            t.busy[0] += c.link_busy;
            t.busy[1] += j.link_busy;
            t.busy[2] += o.link_busy;
        }
    }
    outln!(
        "{}, mixed sizes, seeds 1 to {seeds}: on how many seeds each goal holds",
        joint.name()
    );
    outln!();
    outln!(
        "| phase | ≥ 90% oracle goodput, p99 ≤ 1.5x its, drops ≤ 1% | worst goodput, p99 vs oracle | re-converged ≤ 5 s | the oracle's own, by the same measure | p99 ≤ 0.5x count-only's | goodput ≥ count-only's | the oracle's goodput ≥ count-only's | goodput / count-only's: mean (min-max) | link busy: count-only, joint, oracle |"
    );
    outln!("|---|---|---|---|---|---|---|---|---|---|");
    let n = seeds as f64;
    for (name, t) in names.iter().zip(&tally) {
        let mean = t.ratios.iter().sum::<f64>() / n;
        let min = t.ratios.iter().copied().fold(f64::INFINITY, f64::min);
        let max = t.ratios.iter().copied().fold(0.0, f64::max);
        outln!(
            "| {name} | {} of {seeds} | {:.1}%, {:.2}x | {} of {seeds} | {} of {seeds} | {} of {seeds} | {} of {seeds} | {} of {seeds} | {mean:.4} ({min:.4}-{max:.4}) | {:.2}%, {:.2}%, {:.2}% |",
            t.oracle_goals,
            100.0 * t.worst_goodput,
            t.worst_p99,
            t.converged,
            t.oracle_converged,
            t.half_p99,
            t.no_worse_goodput,
            t.oracle_no_worse_goodput,
            100.0 * t.busy[0] / n,
            100.0 * t.busy[1] / n,
            100.0 * t.busy[2] / n,
        );
    }
    Ok(())
}

/// Per phase of the mixed-size scenario with its own downstream (steady and
/// halved; recovered is steady's again), for static limits around the
/// oracle's (counts 20 to 64, bytes 2.5 to 3.25 of the 1 MiB messages): on
/// how many of seeds 1 to `seeds` each keeps the p99 within 1.5x the
/// oracle's, reaches count-only's goodput, or both, and its mean goodput
/// against count-only's. Each limit runs on the phase alone, as the
/// oracle's do. `Err` names a run whose permits leaked.
fn statics_over_seeds(seeds: u64) -> Result<(), String> {
    let limits: Vec<[u64; 2]> = [20, 24, 32, 64]
        .into_iter()
        .flat_map(|count| [10, 11, 13].map(|quarters| [count, quarters * MIB / 4]))
        .collect();
    let grid = grid(Traffic::MIXED);
    outln!("static limits, mixed sizes, seeds 1 to {seeds}: on how many seeds each holds");
    outln!();
    outln!(
        "| phase | limits [count, bytes] | p99 ≤ 1.5x the oracle's | goodput ≥ count-only's | both | mean goodput / count-only's |"
    );
    outln!("|---|---|---|---|---|---|");
    for (p, name) in [(0, "steady"), (1, "halved")] {
        // Per limit: p99 within the goal, goodput no worse, both, ratio sum.
        let mut tally = vec![(0, 0, 0, 0.0); limits.len()];
        for seed in 1..=seeds {
            let scenario = readme_scenario(Traffic::MIXED, seed);
            let count_only = run(&scenario, Limiter::CountOnly);
            check_balanced(&count_only, || format!("mixed, count-only, seed {seed}"))?;
            let count_only = &count_only.phases[p];
            let (_, oracle) = oracle(&scenario, p, &grid);
            let single = scenario.single(p);
            for (t, &limit) in tally.iter_mut().zip(&limits) {
                let alone = run(&single, Limiter::Static(limit));
                check_balanced(&alone, || {
                    format!("mixed, {name} alone, {}, seed {seed}", alone.limiter.name())
                })?;
                let report = &alone.phases[0];
                let p99 = report.p99.as_secs_f64() <= 1.5 * oracle.p99.as_secs_f64();
                let goodput = report.goodput >= count_only.goodput;
                t.0 += u64::from(p99);
                t.1 += u64::from(goodput);
                t.2 += u64::from(p99 && goodput);
                t.3 += report.goodput / count_only.goodput;
            }
        }
        for (&(p99, goodput, both, ratios), limit) in tally.iter().zip(&limits) {
            outln!(
                "| {name} | [{}, {:.2} MiB] | {p99} of {seeds} | {goodput} of {seeds} | {both} of {seeds} | {:.4} |",
                limit[0],
                limit[1] as f64 / MIB as f64,
                ratios / seeds as f64,
            );
        }
    }
    Ok(())
}

#[derive(Clone, Default)]
struct Tally {
    oracle_goals: u64,
    converged: u64,
    /// The oracle's own run settling within 5 s by the same measure.
    oracle_converged: u64,
    /// The goal against count-only is both of these (its other branch,
    /// 1.2x the goodput, cannot hold on a link count-only already fills).
    half_p99: u64,
    no_worse_goodput: u64,
    oracle_no_worse_goodput: u64,
    worst_goodput: f64,
    worst_p99: f64,
    ratios: Vec<f64>,
    /// Sums of link use: count-only, joint, oracle.
    busy: [f64; 3],
}
