//! `try_acquire` + drop as a caller's crate sees it, against the single-word floor in the
//! same run.
//!
//! This crate depends on multisem as any user would, so only what multisem marks for
//! inlining crosses the crate boundary; the wrapper below carries no inline attribute of its
//! own. Run from `benches/caller/`:
//!
//! ```text
//! cargo bench                                      # the default release profile
//! CARGO_PROFILE_BENCH_CODEGEN_UNITS=1 cargo bench  # one codegen unit
//! ```
//!
//! Each round times every contender in turn on one thread (`ITERS` take-and-drop pairs
//! each). A contender's ratio is the median over the rounds of its time divided by its
//! floor's in the same round (`try_acquire_owned`'s floor holds an `Arc` clone, as its permit
//! does), and beside it the ratio of the fastest rounds: on a busy
//! machine, the steadier figures. `MULTISEM_CALLER_ROUNDS` (default 301) and
//! `MULTISEM_CALLER_ITERS` (default 20000) set them; `cargo test --benches` runs each
//! contender briefly and checks that nothing was refused.
//!
//! To see what was inlined: `objdump -d --no-show-raw-insn -C` on the binary that
//! `cargo bench --no-run` names, at `caller::run::<...>`, one function per contender.
//!
//! A second table times a refusal: `try_acquire([1, 80])` on `[4, 100]` with 30 bytes held,
//! on a semaphore that clamps oversized requests against one that does not. A clamping
//! semaphore's short take goes to the internal lock before it refuses (a request short as
//! asked may fit once clamped); the other refuses on its lock-free path.
//!
//! The figures, and how they moved with each change, are in the README ("From a caller's
//! crate") and docs/performance.md. In the default profile the wrapper below is
//! inlined into `run` only because what `try_acquire` inlines is small: LLVM's threshold for
//! it is 250, and
//! the wrapper is inlined down to a threshold of about 220.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use multisem::{MultiSemaphore, OwnedPermit, Permit};

const MIB: u64 = 1 << 20;
const CAPACITY: [u64; 2] = [1024, 100 * MIB];
const REQUEST: [u64; 2] = [1, 1500];
const TIERED_CAPACITY: [u64; 2] = [1 << 40, 1 << 50];
/// The refusal table's semaphores, with `REFUSAL_HELD` held: `REFUSED` misses by 10 bytes.
const REFUSAL_CAPACITY: [u64; 2] = [4, 100];
const REFUSAL_HELD: [u64; 2] = [0, 30];
const REFUSED: [u64; 2] = [1, 80];

/// What a caller would write around a semaphore: take all of `amounts` or nothing, `None`
/// when refused.
trait TryTake<const N: usize> {
    type Held<'a>
    where
        Self: 'a;
    fn try_take(&self, amounts: [u64; N]) -> Option<Self::Held<'_>>;
}

impl<const N: usize> TryTake<N> for MultiSemaphore<N> {
    type Held<'a> = Permit<'a, N>;

    fn try_take(&self, amounts: [u64; N]) -> Option<Permit<'_, N>> {
        self.try_acquire(amounts).ok()
    }
}

/// `try_acquire_owned`: the permit holds a clone of the `Arc`.
struct Owned<const N: usize>(Arc<MultiSemaphore<N>>);

impl<const N: usize> TryTake<N> for Owned<N> {
    type Held<'a> = OwnedPermit<N>;

    fn try_take(&self, amounts: [u64; N]) -> Option<OwnedPermit<N>> {
        self.0.try_acquire_owned(amounts).ok()
    }
}

/// The floor: both dimensions in one `AtomicU64` (count in the top 24 bits, bytes in the low
/// 40), one CAS with a fits check to take, one `fetch_add` to return. As in
/// `benches/try_acquire.rs`, and written in this crate, so nothing stops its inlining.
struct Floor(AtomicU64);

const SHIFT: u32 = 40;
const LOW: u64 = (1 << SHIFT) - 1;

impl Floor {
    fn new([count, bytes]: [u64; 2]) -> Self {
        Self(AtomicU64::new((count << SHIFT) | bytes))
    }

    /// Takes both or nothing; returns what to give back.
    fn take(&self, [count, bytes]: [u64; 2]) -> Option<u64> {
        let packed = (count << SHIFT) | bytes;
        let mut word = self.0.load(Ordering::Relaxed);
        loop {
            if word >> SHIFT < count || word & LOW < bytes {
                return None;
            }
            match self.0.compare_exchange_weak(
                word,
                word - packed,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(packed),
                Err(now) => word = now,
            }
        }
    }

    fn give(&self, packed: u64) {
        self.0.fetch_add(packed, Ordering::Release);
    }
}

struct FloorHeld<'a>(&'a Floor, u64);

impl TryTake<2> for Floor {
    type Held<'a> = FloorHeld<'a>;

    fn try_take(&self, amounts: [u64; 2]) -> Option<FloorHeld<'_>> {
        self.take(amounts).map(|packed| FloorHeld(self, packed))
    }
}

impl Drop for FloorHeld<'_> {
    fn drop(&mut self) {
        self.0.give(self.1);
    }
}

/// The floor of an owned permit: the same, with the `Arc` clone that a permit which keeps its
/// semaphore alive holds (two more atomic read-modify-writes).
struct OwnedFloor(Arc<Floor>);

struct OwnedFloorHeld(Arc<Floor>, u64);

impl TryTake<2> for OwnedFloor {
    type Held<'a> = OwnedFloorHeld;

    fn try_take(&self, amounts: [u64; 2]) -> Option<OwnedFloorHeld> {
        let packed = self.0.take(amounts)?;
        Some(OwnedFloorHeld(Arc::clone(&self.0), packed))
    }
}

impl Drop for OwnedFloorHeld {
    fn drop(&mut self) {
        self.0.give(self.1);
    }
}

/// The small generic wrapper a caller's code goes through.
fn take<S: TryTake<N>, const N: usize>(sem: &S, amounts: [u64; N]) -> Option<S::Held<'_>> {
    sem.try_take(amounts)
}

/// The measured loop, out of line so that it can be found in the binary. Returns how many
/// takes were refused (none should be).
#[inline(never)]
fn run<S: TryTake<2>>(sem: &S, iters: u64) -> u64 {
    let mut refused = 0;
    for _ in 0..iters {
        match take(sem, black_box(REQUEST)) {
            Some(held) => drop(black_box(held)),
            None => refused += 1,
        }
    }
    refused
}

/// The refusal loop, out of line as `run` is. Returns how many takes were refused (all
/// should be).
#[inline(never)]
fn refuse(sem: &MultiSemaphore<2>, iters: u64) -> u64 {
    let mut refused = 0;
    for _ in 0..iters {
        match sem.try_acquire(black_box(REFUSED)) {
            Ok(held) => drop(black_box(held)),
            Err(error) => {
                black_box(error);
                refused += 1;
            }
        }
    }
    refused
}

/// Times a refused `try_acquire` on a semaphore that does not clamp and on one that does,
/// in turn, `rounds` times; prints the medians and the median ratio (in bench mode).
fn refusals(rounds: u64, iters: u64, bench: bool) {
    let plain = MultiSemaphore::new(REFUSAL_CAPACITY);
    let clamping = MultiSemaphore::builder(REFUSAL_CAPACITY)
        .clamp_oversized(true)
        .build();
    let _held = (
        plain.try_acquire(REFUSAL_HELD).unwrap(),
        clamping.try_acquire(REFUSAL_HELD).unwrap(),
    );
    let (mut plain_ns, mut clamping_ns, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let time = |sem: &MultiSemaphore<2>| {
            let start = Instant::now();
            assert_eq!(
                refuse(sem, iters),
                iters,
                "a take that cannot fit was granted"
            );
            start.elapsed().as_secs_f64() * 1e9 / iters as f64
        };
        let (p, c) = (time(&plain), time(&clamping));
        plain_ns.push(p);
        clamping_ns.push(c);
        ratio.push(c / p);
    }
    if bench {
        println!(
            "\nrefused try_acquire({REFUSED:?}) on {REFUSAL_CAPACITY:?} with {REFUSAL_HELD:?} held; \
             {rounds} rounds of {iters}; medians"
        );
        println!(
            "{:<44} {:>8.2} ns\n{:<44} {:>8.2} ns, {:.2}x the other",
            "a semaphore that does not clamp",
            median(&mut plain_ns),
            "clamp_oversized(true): refused under the lock",
            median(&mut clamping_ns),
            median(&mut ratio)
        );
    }
}

struct Contender<'a> {
    name: &'static str,
    run: &'a dyn Fn(u64) -> u64,
    /// The contender its ratio is to: the floor, or the owned floor.
    floor: usize,
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .filter(|&v| v > 0)
        .unwrap_or(default)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not.
    let bench = std::env::args().any(|a| a == "--bench");
    let (rounds, iters) = if bench {
        (
            env_u64("MULTISEM_CALLER_ROUNDS", 301),
            env_u64("MULTISEM_CALLER_ITERS", 20_000),
        )
    } else {
        (1, 1000)
    };

    let floor = Floor::new(CAPACITY);
    let packed = MultiSemaphore::new(CAPACITY);
    let no_peaks = MultiSemaphore::builder(CAPACITY).track_peaks(false).build();
    let owned = Owned(Arc::new(MultiSemaphore::new(CAPACITY)));
    let owned_floor = OwnedFloor(Arc::new(Floor::new(CAPACITY)));
    // The tiered layout, on capacities too large to share one word.
    let tiered = MultiSemaphore::new(TIERED_CAPACITY);
    assert!(!tiered.is_single_word());
    assert!(packed.is_single_word());
    let contenders = [
        Contender {
            name: "floor: one word, CAS + fetch_add",
            run: &|n| run(&floor, n),
            floor: 0,
        },
        Contender {
            name: "multisem try_acquire (peaks tracked)",
            run: &|n| run(&packed, n),
            floor: 0,
        },
        Contender {
            name: "multisem try_acquire, track_peaks(false)",
            run: &|n| run(&no_peaks, n),
            floor: 0,
        },
        Contender {
            name: "multisem try_acquire, tiered [2^40, 2^50]",
            run: &|n| run(&tiered, n),
            floor: 0,
        },
        Contender {
            name: "floor with an Arc clone held (owned)",
            run: &|n| run(&owned_floor, n),
            floor: 0,
        },
        Contender {
            name: "multisem try_acquire_owned",
            run: &|n| run(&owned, n),
            floor: 4,
        },
    ];

    // Warm up each once.
    for c in &contenders {
        assert_eq!((c.run)(iters), 0, "{}: a take was refused", c.name);
    }
    let mut ns: Vec<Vec<f64>> = vec![Vec::new(); contenders.len()];
    let mut ratio: Vec<Vec<f64>> = vec![Vec::new(); contenders.len()];
    for _ in 0..rounds {
        let mut this_round = Vec::with_capacity(contenders.len());
        for c in &contenders {
            let start = Instant::now();
            let refused = (c.run)(iters);
            let elapsed = start.elapsed();
            assert_eq!(refused, 0, "{}: a take was refused", c.name);
            this_round.push(elapsed.as_secs_f64() * 1e9 / iters as f64);
        }
        for (i, &t) in this_round.iter().enumerate() {
            ns[i].push(t);
            ratio[i].push(t / this_round[contenders[i].floor]);
        }
    }
    assert_eq!(packed.available(), CAPACITY);
    assert_eq!(packed.stats().peak_in_flight, REQUEST);

    if !bench {
        refusals(rounds, iters, bench);
        println!("caller: every contender ran once (test mode)");
        return;
    }
    println!(
        "try_acquire({REQUEST:?}) + drop from a caller's crate, capacity {CAPACITY:?}, \
         one thread; {rounds} rounds of {iters}; medians"
    );
    println!(
        "{:<44} {:>8} {:>8} {:>9} {:>9}",
        "", "ns/op", "to floor", "best ns", "to floor"
    );
    let best: Vec<f64> = ns
        .iter()
        .map(|t| t.iter().copied().fold(f64::INFINITY, f64::min))
        .collect();
    for (i, c) in contenders.iter().enumerate() {
        println!(
            "{:<44} {:>8.2} {:>7.2}x {:>9.2} {:>8.2}x",
            c.name,
            median(&mut ns[i]),
            median(&mut ratio[i]),
            best[i],
            best[i] / best[c.floor]
        );
    }
    refusals(rounds, iters, bench);
}
