//! Helpers shared by the benches (`mod common;` in each bench file).
//!
//! Each bench uses a subset of these, hence the `dead_code` allowance.
#![allow(dead_code)]

use std::time::Duration;

/// Environment variable that scales every timed scenario (seconds, decimals allowed).
pub const SECS_VAR: &str = "MULTISEM_BENCH_SECS";

/// The duration of one timed scenario: `$MULTISEM_BENCH_SECS` seconds if set (and > 0),
/// else `default_secs`.
pub fn scenario_secs(default_secs: f64) -> Duration {
    let secs = std::env::var(SECS_VAR)
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .unwrap_or(default_secs);
    Duration::from_secs_f64(secs)
}

/// `$MULTISEM_BENCH_SECS` if it is set to a positive number.
pub fn secs_override() -> Option<f64> {
    std::env::var(SECS_VAR)
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
}

/// How the bench binary was invoked, decided like criterion decides it: `cargo bench`
/// passes `--bench`; `cargo test --benches` does not (test mode: run everything once,
/// briefly); `--list` lists and runs nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunMode {
    Bench,
    Test,
    List,
}

pub fn run_mode() -> RunMode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let has = |flag: &str| args.iter().any(|a| a == flag);
    if has("--list") {
        RunMode::List
    } else if has("--bench") && !has("--test") {
        RunMode::Bench
    } else {
        RunMode::Test
    }
}

/// A tiny seeded xorshift64 generator: deterministic sizes without a `rand` dependency.
#[derive(Debug, Clone)]
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> Self {
        // Spread small seeds over the word; xorshift must not start at 0.
        Self(seed.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform-ish in `lo..=hi` (modulo bias is irrelevant here).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }
}

/// The median of `values` (the upper one of an even count), sorting them.
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Nearest-rank percentile of an ascending slice (`p` in 0..=100); 0 if empty.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Nanoseconds as a short human string (`850 ns`, `12.3 us`, `4.56 ms`).
pub fn fmt_ns(ns: u64) -> String {
    if ns < 1_000 {
        format!("{ns} ns")
    } else if ns < 1_000_000 {
        format!("{:.1} us", ns as f64 / 1e3)
    } else if ns < 1_000_000_000 {
        format!("{:.2} ms", ns as f64 / 1e6)
    } else {
        format!("{:.2} s", ns as f64 / 1e9)
    }
}

/// A duration as whole nanoseconds, saturating.
pub fn as_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// `MultiSemaphore::new(capacity)`, which must choose the packed single-word layout for the
/// capacities the benches use; warns if it did not (the default `max_capacity()` is the packed
/// word's headroom, below `MAX_PERMITS`, only in that layout).
pub fn multisem_packed<const N: usize>(capacity: [u64; N]) -> multisem::MultiSemaphore<N> {
    warn_unless_packed(multisem::MultiSemaphore::new(capacity))
}

/// As [`multisem_packed`], with peak tracking off.
pub fn multisem_packed_no_peaks<const N: usize>(capacity: [u64; N]) -> multisem::MultiSemaphore<N> {
    warn_unless_packed(
        multisem::MultiSemaphore::builder(capacity)
            .track_peaks(false)
            .build(),
    )
}

fn warn_unless_packed<const N: usize>(
    sem: multisem::MultiSemaphore<N>,
) -> multisem::MultiSemaphore<N> {
    let max = multisem::MultiSemaphore::<N>::MAX_PERMITS;
    if sem.max_capacity().contains(&max) {
        eprintln!(
            "warning: capacity {:?} did not get the packed layout (max_capacity {:?})",
            sem.capacity(),
            sem.max_capacity()
        );
    }
    sem
}

/// The tiered layout (a packed front word, one word per dimension behind it), forced by a
/// `max_capacity` that cannot fit one word.
pub fn multisem_wide<const N: usize>(capacity: [u64; N]) -> multisem::MultiSemaphore<N> {
    multisem::MultiSemaphore::builder(capacity)
        .max_capacity([multisem::MultiSemaphore::<N>::MAX_PERMITS; N])
        .build()
}

/// The tiered layout with no fields in its front word (a hook for tests, hidden from the
/// docs), so that every permit lives in the per-dimension reserve: its worst case.
pub fn multisem_reserve_only<const N: usize>(capacity: [u64; N]) -> multisem::MultiSemaphore<N> {
    multisem::MultiSemaphore::builder(capacity)
        .max_capacity([multisem::MultiSemaphore::<N>::MAX_PERMITS; N])
        .front_bits([0; N])
        .build()
}

/// A semaphore on capacities that do not fit one word, as given: the tiered layout.
pub fn multisem_big<const N: usize>(capacity: [u64; N]) -> multisem::MultiSemaphore<N> {
    let sem = multisem::MultiSemaphore::new(capacity);
    assert!(
        !sem.is_single_word(),
        "{capacity:?} was meant not to fit one word"
    );
    sem
}
