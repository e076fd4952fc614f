//! The non-blocking path: `try_acquire` + drop, beside its floors and its peers, in one run.
//!
//! Run: `cargo bench --bench try_acquire` (about 2 minutes). Defaults: criterion warm-up
//! 1 s and measurement 2 s per benchmark, no plots, rollback probe 1 s per implementation.
//! `MULTISEM_BENCH_SECS=S` sets the measurement time and the probe's duration to S seconds
//! (warm-up min(S/2, 1)); criterion options after `--` win, e.g.
//! `-- --warm-up-time 1 --measurement-time 2`, or a filter such as `-- uncontended/n2`.
//! `MULTISEM_PAIRED_ROUNDS=R` sets the rounds of the paired table below (default 25).
//! `cargo test --benches` runs each benchmark once and the probe for 50 ms.
//! With one codegen unit for multisem and this bench (the dependencies keep theirs):
//! `cargo bench --bench try_acquire --config 'profile.bench.package.multisem.codegen-units=1'`.
//! What a user's crate sees, under both profiles, is `benches/caller/`'s to measure.
//!
//! Benchmark IDs (`group/function`):
//! - `uncontended/n1/{multisem_packed, floor_rmw}`
//! - `uncontended/n2/{multisem_packed, multisem_packed_no_peaks, multisem_wide,
//!   multisem_wide_big, multisem_reserve_only, floor_rmw, floor_single_word,
//!   floor_single_word_backoff, tokio_two_semaphores, mutex, per_dim_cas}`:
//!   `multisem_wide` is the tiered layout forced on `[1024, 100 MiB]` by reserving room up to
//!   `MAX_PERMITS`; `multisem_wide_big` gets it on `[2^40, 2^50]`, which cannot fit one word;
//!   `multisem_reserve_only` is its worst case, with no front fields (every take and return
//!   through the per-dimension reserve, as when the front has run dry).
//! - `uncontended/n4/{multisem_packed, multisem_wide, multisem_wide_big_request, floor_rmw}`:
//!   the third takes `[1, 64 KiB, 1, 1]` of `[2^40; 4]`, more than its 13-bit front field.
//! - `contended/n2/{...same names as uncontended/n2...}`: two threads, each looping
//!   `try_acquire([1, 1000])` + drop on one shared semaphore; time per op as one thread sees it.
//!
//! Floors: `floor_rmw` is N plain `fetch_sub` then N `fetch_add`, no checks at all;
//! `floor_single_word` (N = 2) packs both dimensions in one `AtomicU64`: one CAS loop with a
//! fits check to take, one `fetch_add` to return; `floor_single_word_backoff` is the same with
//! multisem's pause after a lost CAS race, so that the contended figures show what that pause
//! buys apart from the rest. Peers: two `tokio::sync::Semaphore`s taken
//! in sequence (count, then bytes), a `parking_lot::Mutex<[u64; 2]>`, and a per-dimension CAS
//! with rollback (written below).
//!
//! After criterion come three printed tables: paired runs of the N = 2 contenders (each
//! implementation timed in turn, round after round, with medians of per-round ratios to the
//! single-word floor: on a busy machine these are the steadier ratios, as criterion's benchmarks
//! run a minute apart), the rollback probe of issue 2 section 7 (spurious-failure rates; then
//! the same probe with its dimensions swapped, for multisem and the per-dimension CAS), the
//! adversarial probe of issue 12 (a victim whose request always fits, beside two takes that race
//! for the dimension a reserve takes last and so give back a part they held; in both dimension
//! orders), and ratios read from criterion's estimates of this run.

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion};
use multisem::{MultiSemaphore, Permit};

mod common;
use common::{
    RunMode, multisem_big, multisem_packed, multisem_packed_no_peaks, multisem_reserve_only,
    multisem_wide,
};

const MIB: u64 = 1 << 20;

/// The one interface every contender is measured through: take all of `amounts` or nothing;
/// dropping the returned value gives it back. Every implementation (and drop) is
/// `#[inline(always)]`, so that the harness adds no call of its own: what each contender's own
/// code inlines into a caller's loop is what is timed.
trait TrySem<const N: usize>: Sync {
    type Held<'a>
    where
        Self: 'a;
    fn try_take(&self, amounts: [u64; N]) -> Option<Self::Held<'_>>;
}

impl<const N: usize> TrySem<N> for MultiSemaphore<N> {
    type Held<'a> = Permit<'a, N>;

    #[inline(always)]
    fn try_take(&self, amounts: [u64; N]) -> Option<Permit<'_, N>> {
        self.try_acquire(amounts).ok()
    }
}

// ---------------------------------------------------------------------------------------------
// Floors

/// N plain atomic read-modify-writes to take, N to return; no check of any kind.
struct FloorRmw<const N: usize>([AtomicU64; N]);

impl<const N: usize> FloorRmw<N> {
    fn new(capacity: [u64; N]) -> Self {
        Self(capacity.map(AtomicU64::new))
    }
}

struct RmwHeld<'a, const N: usize>(&'a FloorRmw<N>, [u64; N]);

impl<const N: usize> TrySem<N> for FloorRmw<N> {
    type Held<'a> = RmwHeld<'a, N>;

    #[inline(always)]
    fn try_take(&self, amounts: [u64; N]) -> Option<RmwHeld<'_, N>> {
        for (a, n) in self.0.iter().zip(amounts) {
            a.fetch_sub(n, Ordering::Acquire);
        }
        Some(RmwHeld(self, amounts))
    }
}

impl<const N: usize> Drop for RmwHeld<'_, N> {
    #[inline(always)]
    fn drop(&mut self) {
        for (a, n) in self.0.0.iter().zip(self.1) {
            a.fetch_add(n, Ordering::Release);
        }
    }
}

/// Both dimensions in one word: count in the top 24 bits, bytes in the low 40.
/// One CAS (with a fits check) to take, one `fetch_add` to return. With `BACKOFF`, a lost CAS
/// race pauses before the next try as multisem's fast take does (8 spin-loop hints, doubling
/// to 64), so that the contended table can tell that policy from the rest of multisem's cost.
struct FloorSingleWord<const BACKOFF: bool>(AtomicU64);

const SW_SHIFT: u32 = 40;
const SW_LOW: u64 = (1 << SW_SHIFT) - 1;

impl<const BACKOFF: bool> FloorSingleWord<BACKOFF> {
    fn new([count, bytes]: [u64; 2]) -> Self {
        assert!(count < 1 << (64 - SW_SHIFT) && bytes <= SW_LOW);
        Self(AtomicU64::new((count << SW_SHIFT) | bytes))
    }
}

struct SingleWordHeld<'a>(&'a AtomicU64, u64);

impl<const BACKOFF: bool> TrySem<2> for FloorSingleWord<BACKOFF> {
    type Held<'a> = SingleWordHeld<'a>;

    #[inline(always)]
    fn try_take(&self, [count, bytes]: [u64; 2]) -> Option<SingleWordHeld<'_>> {
        let packed = (count << SW_SHIFT) | bytes;
        let mut pauses = 8;
        let mut cur = self.0.load(Ordering::Relaxed);
        loop {
            if cur >> SW_SHIFT < count || cur & SW_LOW < bytes {
                return None;
            }
            match self.0.compare_exchange_weak(
                cur,
                cur - packed,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(SingleWordHeld(&self.0, packed)),
                Err(now) if !BACKOFF => cur = now,
                Err(_) => {
                    for _ in 0..pauses {
                        std::hint::spin_loop();
                    }
                    pauses = (pauses * 2).min(64);
                    cur = self.0.load(Ordering::Relaxed);
                }
            }
        }
    }
}

impl Drop for SingleWordHeld<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        self.0.fetch_add(self.1, Ordering::Release);
    }
}

// ---------------------------------------------------------------------------------------------
// Peers

/// Two tokio semaphores taken in sequence, count then bytes (bytes as u32, as tokio wants).
struct TokioPair {
    count: tokio::sync::Semaphore,
    bytes: tokio::sync::Semaphore,
}

impl TokioPair {
    fn new([count, bytes]: [u64; 2]) -> Self {
        let cap = |n: u64| usize::try_from(n).expect("capacity fits usize");
        Self {
            count: tokio::sync::Semaphore::new(cap(count)),
            bytes: tokio::sync::Semaphore::new(cap(bytes)),
        }
    }
}

impl TrySem<2> for TokioPair {
    type Held<'a> = (
        tokio::sync::SemaphorePermit<'a>,
        tokio::sync::SemaphorePermit<'a>,
    );

    #[inline(always)]
    fn try_take(&self, [count, bytes]: [u64; 2]) -> Option<Self::Held<'_>> {
        let c = self
            .count
            .try_acquire_many(u32::try_from(count).ok()?)
            .ok()?;
        // On failure `c` drops here and gives the count back: the RAII rollback.
        let b = self
            .bytes
            .try_acquire_many(u32::try_from(bytes).ok()?)
            .ok()?;
        Some((c, b))
    }
}

/// A plain lock around the counters.
struct MutexPeer<const N: usize>(parking_lot::Mutex<[u64; N]>);

struct MutexHeld<'a, const N: usize>(&'a parking_lot::Mutex<[u64; N]>, [u64; N]);

impl<const N: usize> TrySem<N> for MutexPeer<N> {
    type Held<'a> = MutexHeld<'a, N>;

    #[inline(always)]
    fn try_take(&self, amounts: [u64; N]) -> Option<MutexHeld<'_, N>> {
        let mut avail = self.0.lock();
        if avail.iter().zip(amounts).any(|(a, n)| *a < n) {
            return None;
        }
        for (a, n) in avail.iter_mut().zip(amounts) {
            *a -= n;
        }
        Some(MutexHeld(&self.0, amounts))
    }
}

impl<const N: usize> Drop for MutexHeld<'_, N> {
    #[inline(always)]
    fn drop(&mut self) {
        let mut avail = self.0.lock();
        for (a, n) in avail.iter_mut().zip(self.1) {
            *a += n;
        }
    }
}

/// The straightforward lock-free attempt: CAS each dimension in turn, and give back the
/// dimensions already taken when a later one is short.
struct PerDimCas<const N: usize>([AtomicU64; N]);

impl<const N: usize> PerDimCas<N> {
    fn new(capacity: [u64; N]) -> Self {
        Self(capacity.map(AtomicU64::new))
    }

    fn give_back(&self, amounts: &[u64]) {
        for (a, &n) in self.0.iter().zip(amounts) {
            a.fetch_add(n, Ordering::Release);
        }
    }
}

struct PerDimHeld<'a, const N: usize>(&'a PerDimCas<N>, [u64; N]);

impl<const N: usize> TrySem<N> for PerDimCas<N> {
    type Held<'a> = PerDimHeld<'a, N>;

    #[inline(always)]
    fn try_take(&self, amounts: [u64; N]) -> Option<PerDimHeld<'_, N>> {
        for (d, (a, n)) in self.0.iter().zip(amounts).enumerate() {
            let mut cur = a.load(Ordering::Relaxed);
            loop {
                if cur < n {
                    self.give_back(&amounts[..d]);
                    return None;
                }
                match a.compare_exchange_weak(cur, cur - n, Ordering::Acquire, Ordering::Relaxed) {
                    Ok(_) => break,
                    Err(now) => cur = now,
                }
            }
        }
        Some(PerDimHeld(self, amounts))
    }
}

impl<const N: usize> Drop for PerDimHeld<'_, N> {
    #[inline(always)]
    fn drop(&mut self) {
        self.0.give_back(&self.1);
    }
}

// ---------------------------------------------------------------------------------------------
// Criterion benches

#[cold]
#[inline(never)]
fn unexpected_failure(name: &str) -> ! {
    panic!("{name}: try_acquire failed where it must succeed")
}

fn bench_uncontended<const N: usize, S: TrySem<N>>(
    g: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    sem: &S,
    req: [u64; N],
) {
    g.bench_function(name, |b| {
        b.iter(|| {
            let held = sem.try_take(black_box(req));
            if held.is_none() {
                unexpected_failure(name);
            }
            drop(held);
        })
    });
}

/// Two threads loop take + drop on `sem` for `iters` each, started together; the reported
/// time is the mean of the two threads' elapsed times, so criterion divides it into time per
/// op as one thread sees it.
fn bench_contended<S: TrySem<2>>(
    g: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    sem: &S,
    req: [u64; 2],
) {
    g.bench_function(name, |b| {
        b.iter_custom(|iters| two_threads(name, sem, req, iters))
    });
}

/// `ops` take + drop pairs on this thread; the elapsed time.
fn one_thread<S: TrySem<2>>(name: &str, sem: &S, req: [u64; 2], ops: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..ops {
        let held = sem.try_take(black_box(req));
        if held.is_none() {
            unexpected_failure(name);
        }
        drop(held);
    }
    start.elapsed()
}

/// `ops` take + drop pairs on each of two threads started together; the mean elapsed time.
fn two_threads<S: TrySem<2>>(name: &str, sem: &S, req: [u64; 2], ops: u64) -> Duration {
    let barrier = Barrier::new(2);
    let run = || {
        barrier.wait();
        one_thread(name, sem, req, ops)
    };
    std::thread::scope(|s| {
        let other = s.spawn(run);
        let mine = run();
        let theirs = other.join().expect("contending thread panicked");
        (mine + theirs) / 2
    })
}

const CAP1: [u64; 1] = [1024];
const CAP2: [u64; 2] = [1024, 100 * MIB];
/// Capacities too large for one word even without room to grow (41 + 51 bits): the tiered
/// layout, with 2^27 - 1 of each dimension in its front word and the rest behind.
const BIG2: [u64; 2] = [1 << 40, 1 << 50];
// 10 + 20 + 7 + 12 bits (+ a guard bit each): small enough for the packed layout.
const CAP4: [u64; 4] = [1000, 1_000_000, 64, 4000];
const REQ1: [u64; 1] = [1];
const REQ2: [u64; 2] = [1, 1000];
const REQ4: [u64; 4] = [1, 1000, 1, 64];
const BIG4: [u64; 4] = [1 << 40; 4];
const BIG_REQ4: [u64; 4] = [1, 64 << 10, 1, 1];

/// Every N = 2 contender on `CAP2`, built once, visited in table order (the single-word floor
/// first: the paired table divides by it).
struct ContendersN2 {
    single: FloorSingleWord<false>,
    single_backoff: FloorSingleWord<true>,
    packed: MultiSemaphore<2>,
    no_peaks: MultiSemaphore<2>,
    wide: MultiSemaphore<2>,
    wide_big: MultiSemaphore<2>,
    reserve_only: MultiSemaphore<2>,
    rmw: FloorRmw<2>,
    tokio: TokioPair,
    mutex: MutexPeer<2>,
    cas: PerDimCas<2>,
}

/// What is done with each contender.
trait VisitN2<'a> {
    fn visit<S: TrySem<2>>(&mut self, name: &'static str, sem: &'a S);
}

impl ContendersN2 {
    fn new() -> Self {
        Self {
            single: FloorSingleWord::new(CAP2),
            single_backoff: FloorSingleWord::new(CAP2),
            packed: multisem_packed(CAP2),
            no_peaks: multisem_packed_no_peaks(CAP2),
            wide: multisem_wide(CAP2),
            wide_big: multisem_big(BIG2),
            reserve_only: multisem_reserve_only(CAP2),
            rmw: FloorRmw::new(CAP2),
            tokio: TokioPair::new(CAP2),
            mutex: MutexPeer(parking_lot::Mutex::new(CAP2)),
            cas: PerDimCas::new(CAP2),
        }
    }

    fn each<'a>(&'a self, v: &mut impl VisitN2<'a>) {
        v.visit("floor_single_word", &self.single);
        v.visit("multisem_packed", &self.packed);
        v.visit("multisem_packed_no_peaks", &self.no_peaks);
        v.visit("multisem_wide", &self.wide);
        v.visit("multisem_wide_big", &self.wide_big);
        v.visit("multisem_reserve_only", &self.reserve_only);
        v.visit("floor_rmw", &self.rmw);
        v.visit("floor_single_word_backoff", &self.single_backoff);
        v.visit("tokio_two_semaphores", &self.tokio);
        v.visit("mutex", &self.mutex);
        v.visit("per_dim_cas", &self.cas);
    }
}

/// Benchmarks each contender into a criterion group, alone or with two threads.
struct Benchmark<'g, 'c> {
    group: &'g mut BenchmarkGroup<'c, WallTime>,
    contended: bool,
}

impl VisitN2<'_> for Benchmark<'_, '_> {
    fn visit<S: TrySem<2>>(&mut self, name: &'static str, sem: &S) {
        if self.contended {
            bench_contended(self.group, name, sem, REQ2);
        } else {
            bench_uncontended(self.group, name, sem, REQ2);
        }
    }
}

fn uncontended(c: &mut Criterion) {
    {
        let mut g = c.benchmark_group("uncontended/n1");
        bench_uncontended(&mut g, "multisem_packed", &multisem_packed(CAP1), REQ1);
        bench_uncontended(&mut g, "floor_rmw", &FloorRmw::new(CAP1), REQ1);
        g.finish();
    }
    {
        let mut group = c.benchmark_group("uncontended/n2");
        ContendersN2::new().each(&mut Benchmark {
            group: &mut group,
            contended: false,
        });
        group.finish();
    }
    {
        let mut g = c.benchmark_group("uncontended/n4");
        bench_uncontended(&mut g, "multisem_packed", &multisem_packed(CAP4), REQ4);
        bench_uncontended(&mut g, "multisem_wide", &multisem_wide(CAP4), REQ4);
        // Four dimensions of 2^40 leave 13-bit front fields: a 64 KiB request is larger than
        // its field, so every take and return also goes through that dimension's reserve word.
        bench_uncontended(
            &mut g,
            "multisem_wide_big_request",
            &multisem_big(BIG4),
            BIG_REQ4,
        );
        bench_uncontended(&mut g, "floor_rmw", &FloorRmw::new(CAP4), REQ4);
        g.finish();
    }
}

fn contended(c: &mut Criterion) {
    let mut group = c.benchmark_group("contended/n2");
    ContendersN2::new().each(&mut Benchmark {
        group: &mut group,
        contended: true,
    });
    group.finish();
}

// ---------------------------------------------------------------------------------------------
// Paired runs: the N = 2 contenders interleaved, so load from elsewhere hits all alike

/// Rounds of the paired runs (`$MULTISEM_PAIRED_ROUNDS` if set: more rounds, steadier
/// medians on a busy machine), and take + drop pairs per thread in each slice.
const PAIRED_ROUNDS: usize = 25;
const PAIRED_ROUNDS_VAR: &str = "MULTISEM_PAIRED_ROUNDS";
const PAIRED_OPS: u64 = 200_000;

/// Every N = 2 contender, measured in turn, round after round; per contender the median time
/// per op and the median over rounds of its ratio to `floor_single_word` in the same round.
/// On a busy machine criterion's benchmarks run minutes apart and see different loads; these
/// ratios compare neighbours in time.
fn run_paired(rounds: usize, ops: u64) {
    type Slice<'a> = Box<dyn Fn(bool) -> Duration + 'a>;
    /// Collects, per contender, a closure timing `ops` take + drop pairs alone or contended.
    struct Slices<'a> {
        ops: u64,
        all: Vec<(&'static str, Slice<'a>)>,
    }
    impl<'a> VisitN2<'a> for Slices<'a> {
        fn visit<S: TrySem<2>>(&mut self, name: &'static str, sem: &'a S) {
            let ops = self.ops;
            let slice: Slice<'a> = Box::new(move |contended| {
                if contended {
                    two_threads(name, sem, REQ2, ops)
                } else {
                    one_thread(name, sem, REQ2, ops)
                }
            });
            self.all.push((name, slice));
        }
    }
    let set = ContendersN2::new();
    let mut slices = Slices {
        ops,
        all: Vec::new(),
    };
    set.each(&mut slices);
    // The floor comes first: every ratio divides by it.
    let contenders = slices.all;
    println!();
    println!(
        "paired runs, N = 2, try_acquire({REQ2:?}) + drop: {rounds} rounds, each timing every \
         implementation in turn for {ops} ops per thread; medians over the rounds"
    );
    println!(
        "{:<12} {:<26} {:>10} {:>20}",
        "mode", "implementation", "ns/op", "vs floor_single_word"
    );
    for contended in [false, true] {
        let mut ns = vec![Vec::with_capacity(rounds); contenders.len()];
        for _ in 0..rounds {
            for ((_, run), times) in contenders.iter().zip(&mut ns) {
                times.push(run(contended).as_nanos() as f64 / ops as f64);
            }
        }
        let median = |mut v: Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let mode = if contended {
            "contended"
        } else {
            "uncontended"
        };
        let per_round = |a: usize, b: usize| -> Vec<f64> {
            ns[a].iter().zip(&ns[b]).map(|(x, y)| x / y).collect()
        };
        for (i, (name, _)) in contenders.iter().enumerate() {
            println!(
                "{mode:<12} {name:<26} {:>10.2} {:>19.2}x",
                median(ns[i].clone()),
                median(per_round(i, 0))
            );
        }
        let at = |name: &str| {
            contenders
                .iter()
                .position(|(n, _)| *n == name)
                .expect("a contender of that name")
        };
        // Statistics cost (issue 5: at most 10%): multisem_packed against its twin without
        // peak tracking, round by round.
        println!(
            "{mode:<12} peak tracking costs {:+.1}% (multisem_packed / multisem_packed_no_peaks)",
            100.0
                * (median(per_round(
                    at("multisem_packed"),
                    at("multisem_packed_no_peaks")
                )) - 1.0)
        );
        // multisem against the floor with its own backoff after a lost race: what the rest
        // of multisem costs.
        println!(
            "{mode:<12} multisem_packed / floor_single_word_backoff: {:.2}x",
            median(per_round(
                at("multisem_packed"),
                at("floor_single_word_backoff")
            ))
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Rollback probe (issue 2, section 7)

/// One probe's numbers: `main_hold` is held for the run, three threads keep one `take` and take
/// another (their demand fits exactly), and one loops on `never_fits`.
#[derive(Clone, Copy)]
struct ProbeShape {
    cap: [u64; 2],
    main_hold: [u64; 2],
    take: [u64; 2],
    never_fits: [u64; 2],
}

/// Issue 2's probe: the request that never fits is short in dimension 1 (bytes).
const PROBE: ProbeShape = ProbeShape {
    cap: [8, 12_000],
    main_hold: [2, 3_000],
    take: [1, 1_500],
    never_fits: [1, 9_001],
};

impl ProbeShape {
    /// The same probe with the dimensions swapped: the request that never fits is short in
    /// dimension 0, the one the per-dimension layout takes last (and checks through a shadow).
    fn swapped(self) -> Self {
        let swap = |[a, b]: [u64; 2]| [b, a];
        Self {
            cap: swap(self.cap),
            main_hold: swap(self.main_hold),
            take: swap(self.take),
            never_fits: swap(self.never_fits),
        }
    }
}

struct ProbeResult {
    attempts: u64,
    failures: u64,
    never_fit_tries: u64,
    /// `never_fits` granted: impossible with `main_hold` held; a bug if nonzero.
    impossible_grants: u64,
}

/// Take `amounts`, retrying briefly: at set-up nobody else is racing, so a refusal is only
/// tolerated for a moment.
fn take_at_setup<S: TrySem<2>>(sem: &S, amounts: [u64; 2]) -> S::Held<'_> {
    let give_up = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(held) = sem.try_take(amounts) {
            return held;
        }
        assert!(
            Instant::now() < give_up,
            "probe set-up could not take {amounts:?}"
        );
        std::thread::yield_now();
    }
}

/// With `shape.main_hold` held by this thread for the run, three threads each keep one earlier
/// `shape.take` and loop "take a new one, then drop the older", so their demand always fits
/// exactly and each of their failures is spurious; a fourth loops on `shape.never_fits`.
fn rollback_probe<S: TrySem<2>>(sem: &S, shape: ProbeShape, run_for: Duration) -> ProbeResult {
    let main_hold = take_at_setup(sem, shape.main_hold);
    let stop = AtomicBool::new(false);
    let start = Barrier::new(5);
    let result = std::thread::scope(|s| {
        let takers: Vec<_> = (0..3)
            .map(|_| {
                s.spawn(|| {
                    let mut older = take_at_setup(sem, shape.take);
                    start.wait();
                    let (mut attempts, mut failures) = (0u64, 0u64);
                    while !stop.load(Ordering::Relaxed) {
                        attempts += 1;
                        match sem.try_take(black_box(shape.take)) {
                            Some(newer) => drop(std::mem::replace(&mut older, newer)),
                            None => failures += 1,
                        }
                    }
                    drop(older);
                    (attempts, failures)
                })
            })
            .collect();
        let never_fits = s.spawn(|| {
            start.wait();
            let (mut tries, mut granted) = (0u64, 0u64);
            while !stop.load(Ordering::Relaxed) {
                tries += 1;
                if sem.try_take(black_box(shape.never_fits)).is_some() {
                    granted += 1;
                }
            }
            (tries, granted)
        });
        start.wait();
        std::thread::sleep(run_for);
        stop.store(true, Ordering::Relaxed);
        let mut r = ProbeResult {
            attempts: 0,
            failures: 0,
            never_fit_tries: 0,
            impossible_grants: 0,
        };
        for t in takers {
            let (a, f) = t.join().expect("probe taker panicked");
            r.attempts += a;
            r.failures += f;
        }
        (r.never_fit_tries, r.impossible_grants) =
            never_fits.join().expect("probe thread panicked");
        r
    });
    drop(main_hold);
    result
}

fn run_probes(run_for: Duration) {
    probe_table(PROBE, run_for, true);
    probe_table(PROBE.swapped(), run_for, false);
}

/// One probe shape for multisem's two layouts, and, with `peers`, for the floor and the peers.
fn probe_table(shape: ProbeShape, run_for: Duration, peers: bool) {
    let ProbeShape {
        cap,
        main_hold,
        take,
        never_fits,
    } = shape;
    println!();
    println!(
        "rollback probe: capacity {cap:?}, {main_hold:?} held, three threads keep one {take:?} and \
         take another (always fits), one loops try {never_fits:?} (never fits); {:.2} s each",
        run_for.as_secs_f64()
    );
    println!(
        "{:<26} {:>12} {:>12} {:>11} {:>16}",
        "implementation", "attempts", "failures", "spurious %", "never-fit tries"
    );
    let row = |name: &str, r: ProbeResult| {
        let pct = if r.attempts == 0 {
            0.0
        } else {
            100.0 * r.failures as f64 / r.attempts as f64
        };
        println!(
            "{:<26} {:>12} {:>12} {:>10.3}% {:>16}",
            name, r.attempts, r.failures, pct, r.never_fit_tries
        );
        if r.impossible_grants > 0 {
            println!(
                "  BUG: {name} granted {never_fits:?} {} times although it cannot fit",
                r.impossible_grants
            );
        }
    };

    each_multisem_layout(cap, |name, sem| {
        row(name, rollback_probe(sem, shape, run_for))
    });
    row(
        "per_dim_cas",
        rollback_probe(&PerDimCas::new(cap), shape, run_for),
    );
    if !peers {
        return;
    }
    row(
        "floor_single_word",
        rollback_probe(&FloorSingleWord::<false>::new(cap), shape, run_for),
    );
    row(
        "tokio_two_semaphores",
        rollback_probe(&TokioPair::new(cap), shape, run_for),
    );
    row(
        "mutex",
        rollback_probe(&MutexPeer(parking_lot::Mutex::new(cap)), shape, run_for),
    );
}

/// Runs `probe` on multisem in each layout on `cap` (single-word; tiered, forced by room to
/// grow; tiered with no front fields, every take and return through the per-dimension
/// reserve), then checks that the probe left it quiescent.
fn each_multisem_layout(cap: [u64; 2], mut probe: impl FnMut(&'static str, &MultiSemaphore<2>)) {
    for (name, sem) in [
        ("multisem_packed", multisem_packed(cap)),
        ("multisem_wide", multisem_wide(cap)),
        ("multisem_reserve_only", multisem_reserve_only(cap)),
    ] {
        probe(name, &sem);
        check_quiescent(name, &sem);
    }
}

fn check_quiescent(name: &str, sem: &MultiSemaphore<2>) {
    if sem.available() != sem.capacity() {
        println!(
            "  BUG: {name}: available() = {:?} != capacity() = {:?} with no permit out",
            sem.available(),
            sem.capacity()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Adversarial probe (issue 12, item 5)

/// Two adversaries whose requests overlap in the dimension the reserve takes last race for it:
/// one often passes the reserve's check on every dimension, takes its first one and then loses
/// the second, and gives the first back. A victim loops on a request that fits beside anything
/// the adversaries' *granted* permits hold at once, so each of its failures is spurious: it met
/// a part that a losing take held for a moment.
#[derive(Clone, Copy)]
struct AdversaryShape {
    cap: [u64; 2],
    adversaries: [[u64; 2]; 2],
    victim: [u64; 2],
}

/// `[9, 10]` and `[1, 1]` cannot both be granted (dimension 1 holds 10), and `[1, 0]` fits beside
/// either. `[9, 10]` takes its 9 of dimension 0 first, and loses dimension 1 whenever `[1, 1]`
/// took one in between: then dimension 0 held 10 for a moment, and the victim fails.
const ADVERSARIES: AdversaryShape = AdversaryShape {
    cap: [10, 10],
    adversaries: [[9, 10], [1, 1]],
    victim: [1, 0],
};

impl AdversaryShape {
    /// The same race with the dimensions swapped: the contested dimension is now the one the
    /// reserve takes first, so a losing take has taken nothing when it loses.
    fn swapped(self) -> Self {
        let swap = |[a, b]: [u64; 2]| [b, a];
        Self {
            cap: swap(self.cap),
            adversaries: self.adversaries.map(swap),
            victim: swap(self.victim),
        }
    }
}

struct VictimResult {
    attempts: u64,
    failures: u64,
    adversary_grants: [u64; 2],
}

/// Two threads loop on the adversaries' requests (dropping each grant at once) and a third on
/// the victim's, for `run_for`.
fn adversary_probe<S: TrySem<2>>(
    sem: &S,
    shape: AdversaryShape,
    run_for: Duration,
) -> VictimResult {
    let stop = AtomicBool::new(false);
    let start = Barrier::new(4);
    std::thread::scope(|s| {
        let adversaries = shape.adversaries.map(|request| {
            let (stop, start) = (&stop, &start);
            s.spawn(move || {
                start.wait();
                let mut granted = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    if let Some(held) = sem.try_take(black_box(request)) {
                        granted += 1;
                        drop(held);
                    }
                }
                granted
            })
        });
        let victim = s.spawn(|| {
            start.wait();
            let (mut attempts, mut failures) = (0u64, 0u64);
            while !stop.load(Ordering::Relaxed) {
                attempts += 1;
                match sem.try_take(black_box(shape.victim)) {
                    Some(held) => drop(held),
                    None => failures += 1,
                }
            }
            (attempts, failures)
        });
        start.wait();
        std::thread::sleep(run_for);
        stop.store(true, Ordering::Relaxed);
        let (attempts, failures) = victim.join().expect("victim panicked");
        VictimResult {
            attempts,
            failures,
            adversary_grants: adversaries.map(|t| t.join().expect("adversary panicked")),
        }
    })
}

fn run_adversary_probes(run_for: Duration) {
    adversary_table(ADVERSARIES, run_for);
    adversary_table(ADVERSARIES.swapped(), run_for);
}

/// The adversarial probe for multisem's layouts (the reserve-only one forces every take
/// through the per-dimension reserve) and the per-dimension CAS with rollback.
fn adversary_table(shape: AdversaryShape, run_for: Duration) {
    let AdversaryShape {
        cap,
        adversaries,
        victim,
    } = shape;
    println!();
    println!(
        "adversarial probe: capacity {cap:?}, two threads loop try {:?} and {:?} (never both \
         granted), one loops try {victim:?} (always fits beside them); {:.2} s each",
        adversaries[0],
        adversaries[1],
        run_for.as_secs_f64()
    );
    println!(
        "{:<26} {:>12} {:>12} {:>11} {:>24}",
        "implementation", "victim tries", "failures", "spurious %", "adversary grants"
    );
    let row = |name: &str, r: VictimResult| {
        let pct = if r.attempts == 0 {
            0.0
        } else {
            100.0 * r.failures as f64 / r.attempts as f64
        };
        println!(
            "{:<26} {:>12} {:>12} {:>10.4}% {:>11} {:>12}",
            name, r.attempts, r.failures, pct, r.adversary_grants[0], r.adversary_grants[1]
        );
    };
    each_multisem_layout(cap, |name, sem| {
        row(name, adversary_probe(sem, shape, run_for))
    });
    row(
        "per_dim_cas",
        adversary_probe(&PerDimCas::new(cap), shape, run_for),
    );
}

// ---------------------------------------------------------------------------------------------
// Ratio table from criterion's estimates

/// Where criterion writes its results, decided as criterion decides it (without running
/// `cargo metadata`: the bench executable lives in `<target>/<profile>/deps/`).
fn criterion_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(target).join("criterion");
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.ancestors().nth(3).map(|t| t.join("criterion")))
        .unwrap_or_else(|| PathBuf::from("target/criterion"))
}

/// The typical time (ns) criterion estimated for `group/function` in this run: the slope
/// if there is one, else the mean. `None` if missing or older than `since` (filtered out).
fn estimate_ns(group: &str, function: &str, since: SystemTime) -> Option<f64> {
    let safe = |s: &str| s.replace(['?', '"', '/', '\\', '*', '<', '>', ':', '|', '^'], "_");
    let path = criterion_dir()
        .join(safe(group))
        .join(safe(function))
        .join("new")
        .join("estimates.json");
    if std::fs::metadata(&path).ok()?.modified().ok()? < since {
        return None;
    }
    let json = std::fs::read_to_string(path).ok()?;
    let point = |key: &str| -> Option<f64> {
        let at = json.find(&format!("\"{key}\":{{"))?;
        let rest = &json[at..];
        let p = rest.find("\"point_estimate\":")? + "\"point_estimate\":".len();
        let num: String = rest[p..]
            .chars()
            .take_while(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '-' | '+'))
            .collect();
        num.parse().ok()
    };
    point("slope").or_else(|| point("mean"))
}

fn print_ratios(since: SystemTime) {
    /// The N = 2 contenders' names, in table order, less the floor they are divided by.
    struct Names(Vec<&'static str>);
    impl VisitN2<'_> for Names {
        fn visit<S: TrySem<2>>(&mut self, name: &'static str, _: &S) {
            if name != "floor_single_word" {
                self.0.push(name);
            }
        }
    }
    let mut n2 = Names(Vec::new());
    ContendersN2::new().each(&mut n2);
    let groups: [(&str, &str, &[&str]); 5] = [
        ("uncontended/n1", "floor_rmw", &["multisem_packed"]),
        ("uncontended/n2", "floor_single_word", &n2.0),
        (
            "uncontended/n4",
            "floor_rmw",
            &[
                "multisem_packed",
                "multisem_wide",
                "multisem_wide_big_request",
            ],
        ),
        ("contended/n2", "floor_single_word", &n2.0),
        (
            "contended/n2",
            "floor_rmw",
            &["multisem_packed", "multisem_wide"],
        ),
    ];
    println!();
    println!("ratios against the floor, from criterion's estimates of this run:");
    println!(
        "{:<16} {:<26} {:>11} {:>18} {:>8}",
        "group", "function", "time", "floor", "ratio"
    );
    for (group, floor, functions) in groups {
        let Some(floor_ns) = estimate_ns(group, floor, since) else {
            println!("{group:<16} (no estimate for {floor} in this run)");
            continue;
        };
        for function in functions {
            match estimate_ns(group, function, since) {
                Some(ns) => println!(
                    "{group:<16} {function:<26} {:>8.2} ns {floor:>18} {:>7.2}x",
                    ns,
                    ns / floor_ns
                ),
                None => println!("{group:<16} {function:<26} {:>11}", "n/a"),
            }
        }
    }
}

fn main() {
    let mode = common::run_mode();
    let started = SystemTime::now();
    // No plots: plotters costs more time than the measurements on 2 cores.
    let mut c = Criterion::default()
        .without_plots()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(common::scenario_secs(2.0));
    if let Some(secs) = common::secs_override() {
        c = c.warm_up_time(Duration::from_secs_f64((secs / 2.0).min(1.0)));
    }
    // Command-line options (--warm-up-time, --measurement-time, filters, --test) win.
    let mut c = c.configure_from_args();

    uncontended(&mut c);
    contended(&mut c);
    c.final_summary();

    match mode {
        RunMode::List => {}
        RunMode::Test => {
            run_paired(2, 1_000);
            run_probes(Duration::from_millis(50));
            run_adversary_probes(Duration::from_millis(50));
        }
        RunMode::Bench => {
            let rounds = std::env::var(PAIRED_ROUNDS_VAR)
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .filter(|&r: &usize| r > 0)
                .unwrap_or(PAIRED_ROUNDS);
            run_paired(rounds, PAIRED_OPS);
            run_probes(common::scenario_secs(1.0));
            run_adversary_probes(common::scenario_secs(1.0));
            print_ratios(started);
        }
    }
}
