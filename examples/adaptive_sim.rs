//! The adaptive controller against the best static limits and against
//! count-only adaptive limits, in a deterministic simulation (see
//! `examples/sim/mod.rs` for the model): prints the README's table and
//! writes the joint controller's limits and latency over time as CSV.
//!
//! ```text
//! cargo run --release --example adaptive_sim                 # the table, ~10 s
//! cargo run --release --example adaptive_sim -- --csv out.csv
//! cargo run --release --example adaptive_sim -- --seed 7
//! ```

use std::fmt::Write as _;
use std::time::Duration;

mod sim;
use sim::*;

fn main() {
    let mut seed = 1;
    let mut csv_path = String::from("target/adaptive_sim.csv");
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seed" => seed = args.next().and_then(|s| s.parse().ok()).expect("--seed N"),
            "--csv" => csv_path = args.next().expect("--csv PATH"),
            _ => {
                eprintln!("usage: adaptive_sim [--seed N] [--csv PATH]");
                std::process::exit(2);
            }
        }
    }
    let mut csv = String::from(
        "traffic,limiter,t_s,phase,count_limit,bytes_limit,count_in_flight,bytes_in_flight,goodput_mib_s,p50_ms,p99_ms,drops\n",
    );
    println!(
        "| traffic | phase | limiter | limits [count, bytes] | goodput MiB/s | p50 ms | p99 ms | drops | vs oracle: goodput, p99 | re-converged after |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for (label, traffic) in [("mixed", Traffic::MIXED), ("1 KiB", Traffic::Single(KIB))] {
        let scenario = Scenario::three_phases(
            traffic,
            Duration::from_secs(5),
            Duration::from_secs(10),
            seed,
        );
        let grid = grid(traffic);
        // Phases with the same downstream share their oracle.
        let mut oracles: Vec<([u64; 2], PhaseReport)> = Vec::new();
        for (p, phase) in scenario.phases.iter().enumerate() {
            let same = scenario.phases[..p]
                .iter()
                .position(|q| q.downstream == phase.downstream);
            let found = match same {
                Some(q) => oracles[q].clone(),
                None => oracle(&scenario, p, &grid),
            };
            oracles.push(found);
        }
        let runs = [
            run(&scenario, Limiter::CountOnly),
            run(&scenario, Limiter::JointCountOnly),
            run(&scenario, Limiter::Joint),
        ];
        for (p, phase) in scenario.phases.iter().enumerate() {
            let (limits, o) = &oracles[p];
            println!(
                "| {label} | {} | oracle | [{}, {}] | {:.1} | {:.1} | {:.1} | {:.2}% | | |",
                phase.name,
                limits[0],
                fmt_bytes(limits[1]),
                o.goodput / MIB as f64,
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
                println!(
                    "| {label} | {} | {} | ~[{:.0}, {}] | {:.1} | {:.1} | {:.1} | {:.2}% | {:.0}%, {:.2}x | {settled} |",
                    phase.name,
                    r.limiter.name(),
                    ph.mean_limits[0],
                    fmt_bytes(ph.mean_limits[1] as u64),
                    ph.goodput / MIB as f64,
                    ms(ph.p50),
                    ms(ph.p99),
                    ph.drop_rate * 100.0,
                    100.0 * ph.goodput / o.goodput,
                    ph.p99.as_secs_f64() / o.p99.as_secs_f64(),
                );
            }
        }
        for r in &runs {
            assert!(r.balanced, "{}: permits leaked", r.limiter.name());
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
    std::fs::write(&csv_path, csv).expect("write the CSV");
    eprintln!("timeline written to {csv_path}");
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
