//! The sequential model of `tests/model.rs` at real sizes: capacities from 0
//! to `MAX_PERMITS` (there, up to 16), the packed layout and the tiered one
//! with its *default* front widths (there, fronts of 2 bits or none), and
//! N = 1, 2, 3, 4 and 8. Amounts include 0, 1, the capacity and one past it,
//! `MAX_PERMITS` and `u64::MAX`; semaphores with and without a raised
//! `max_capacity`, with and without `clamp_oversized`.
//!
//! Operations: `try_acquire`, drop, `split`, `merge`, `release`, `try_grow`,
//! `forget`, `set_capacity`, `set_capacity_of` and `add_permits` (shrinks
//! below what is in flight and overflows included). After every step:
//! `capacity()`, `available()`, `in_flight()`, the peaks, the counts of
//! grants, clamps, refusals and oversized requests by dimension, each error's
//! details, and every live permit's amounts must match the model.
//!
//! And `stats().acquired` stays exact past the fast path's take tally, which
//! wraps every 64 takes (the model's runs stop before).

// Per-dimension loops index several arrays at once; an index reads best.
#![allow(clippy::needless_range_loop)]

use multisem::{MultiSemaphore, Permit, TryAcquireError};
use proptest::collection::vec;
use proptest::prelude::*;

const MAXP: u64 = MultiSemaphore::<1>::MAX_PERMITS;

#[derive(Debug, Clone)]
enum Op<const N: usize> {
    Try([u64; N]),
    Drop(usize),
    Split(usize, [u64; N]),
    Merge(usize, usize),
    Release(usize, [u64; N]),
    Grow(usize, [u64; N]),
    Forget(usize),
    SetCap([u64; N]),
    SetCapOf(usize, u64),
    Add([u64; N]),
}

/// An amount relative to a scale: edge values and fractions.
fn amt() -> impl Strategy<Value = (u8, u64)> {
    (0u8..10, any::<u64>())
}

fn to_amount(scale: u64, (kind, r): (u8, u64)) -> u64 {
    match kind {
        0 => 0,
        1 => 1,
        2 => scale,
        3 => scale.saturating_add(1),
        4 => u64::MAX,
        5 => MAXP,
        _ => {
            if scale == 0 {
                r % 3
            } else {
                r % (scale / 4 + 1)
            }
        }
    }
}

fn cap_value() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(1u64),
        1..=100u64,
        Just(1u64 << 27),
        1..=100_000u64,
        1..=100_000u64,
        Just((1u64 << 27) - 1),
        Just(1u64 << 40),
        Just(1u64 << 50),
        Just(MAXP),
        Just(MAXP - 1),
        (1u64 << 30)..(1u64 << 60),
    ]
}

#[derive(Debug, Clone)]
struct RawOp {
    kind: u8,
    i: usize,
    j: usize,
    a: Vec<(u8, u64)>,
}

fn raw_op(n: usize) -> impl Strategy<Value = RawOp> {
    (0u8..22, 0..16usize, 0..16usize, vec(amt(), n)).prop_map(|(kind, i, j, a)| RawOp {
        kind,
        i,
        j,
        a,
    })
}

struct Model<const N: usize> {
    cap: [u64; N],
    max: [u64; N],
    held: Vec<[u64; N]>,
    peak: [u64; N],
}

impl<const N: usize> Model<N> {
    fn in_flight(&self) -> [u64; N] {
        std::array::from_fn(|d| self.held.iter().map(|h| h[d]).sum())
    }
    fn available(&self) -> [u64; N] {
        let f = self.in_flight();
        std::array::from_fn(|d| self.cap[d].saturating_sub(f[d]))
    }
    fn bump_peak(&mut self) {
        let f = self.in_flight();
        for d in 0..N {
            self.peak[d] = self.peak[d].max(f[d]);
        }
    }
}

fn run<const N: usize>(
    cap: [u64; N],
    reserve_max: bool,
    clamp: bool,
    raw: Vec<RawOp>,
) -> Result<(), TestCaseError> {
    let mut b = MultiSemaphore::builder(cap).clamp_oversized(clamp);
    let (mut acquired, mut clamped, mut refused, mut exceeded) = (0u64, 0u64, [0u64; N], [0u64; N]);
    if reserve_max {
        b = b.max_capacity([MAXP; N]);
    }
    let sem = b.build();
    let mut m = Model {
        cap,
        max: sem.max_capacity(),
        held: Vec::new(),
        peak: [0; N],
    };
    let mut permits: Vec<Permit<'_, N>> = Vec::new();
    for (step, r) in raw.into_iter().enumerate() {
        let scale = |d: usize| m.cap[d].max(1);
        let a: [u64; N] = std::array::from_fn(|d| to_amount(scale(d), r.a[d]));
        let op = match r.kind {
            0..=5 => Op::Try(a),
            6..=7 => Op::Drop(r.i),
            8 => Op::Split(r.i, a),
            9 => Op::Merge(r.i, r.j),
            10..=11 => Op::Release(r.i, a),
            12..=13 => Op::Grow(r.i, a),
            14 => Op::Forget(r.i),
            15..=16 => Op::SetCap(std::array::from_fn(|d| {
                to_amount(m.max[d].min(m.cap[d].saturating_mul(2).max(4)), r.a[d])
            })),
            17..=18 => Op::Add(a),
            _ => {
                let d = r.i % N;
                Op::SetCapOf(
                    d,
                    to_amount(m.max[d].min(m.cap[d].saturating_mul(2).max(4)), r.a[d]),
                )
            }
        };
        let ctx = format!("step {step}: {op:?} cap {:?} held {:?}", m.cap, m.held);
        match op {
            Op::Try(a) => {
                let got = sem.try_acquire(a);
                let avail = m.available();
                // Clamped, but never to a capacity of 0 (that waits).
                let grant: [u64; N] = if clamp {
                    std::array::from_fn(|d| match m.cap[d] {
                        0 => a[d],
                        cap => a[d].min(cap),
                    })
                } else {
                    a
                };
                // Too large: above the capacity; where clamped, only some of
                // a dimension that can never leave 0 (its max is 0).
                let too_large = |d: usize| {
                    if clamp {
                        a[d] > 0 && m.max[d] == 0
                    } else {
                        a[d] > m.cap[d]
                    }
                };
                if let Some(d) = (0..N).find(|&d| too_large(d)) {
                    match got {
                        Err(TryAcquireError::ExceedsCapacity {
                            dim,
                            requested,
                            capacity,
                            ..
                        }) => {
                            prop_assert_eq!(
                                (dim, requested, capacity),
                                (d, a[d], m.cap[d]),
                                "{}",
                                ctx
                            )
                        }
                        other => prop_assert!(false, "{}: expected exceeds, got {:?}", ctx, other),
                    }
                    refused[d] += 1;
                    exceeded[d] += 1;
                } else if let Some(d) = (0..N).find(|&d| grant[d] > avail[d]) {
                    match got {
                        Err(TryAcquireError::Insufficient {
                            dim,
                            requested,
                            available,
                            queued_ahead,
                            short,
                            ..
                        }) => {
                            prop_assert_eq!(
                                (dim, requested, available, queued_ahead),
                                (d, grant[d], avail[d], false),
                                "{}",
                                ctx
                            );
                            let mut want: Vec<usize> =
                                (0..N).filter(|&d| grant[d] > avail[d]).collect();
                            // The tiered layout, refused on its lock-free
                            // path (no debt, a semaphore that does not
                            // clamp), names the first alone.
                            let f = m.in_flight();
                            let lock_free = !clamp && (0..N).all(|d| f[d] <= m.cap[d]);
                            if !sem.is_single_word() && lock_free {
                                want.truncate(1);
                            }
                            prop_assert_eq!(short.iter().collect::<Vec<_>>(), want, "{}", ctx);
                        }
                        other => {
                            prop_assert!(false, "{}: expected insufficient, got {:?}", ctx, other)
                        }
                    }
                    refused[d] += 1;
                } else {
                    let p = got.map_err(|e| TestCaseError::fail(format!("{ctx}: {e:?}")))?;
                    prop_assert_eq!(p.amounts(), grant);
                    permits.push(p);
                    m.held.push(grant);
                    m.bump_peak();
                    acquired += 1;
                    if grant != a {
                        clamped += 1;
                    }
                }
            }
            Op::Drop(i) => {
                if i < permits.len() {
                    drop(permits.swap_remove(i));
                    m.held.swap_remove(i);
                }
            }
            Op::Split(i, a) => {
                if i < permits.len() {
                    let h = m.held[i];
                    let got = permits[i].split(a);
                    if (0..N).all(|d| a[d] <= h[d]) {
                        let p = got.expect("split fits");
                        prop_assert_eq!(p.amounts(), a);
                        m.held[i] = std::array::from_fn(|d| h[d] - a[d]);
                        permits.push(p);
                        m.held.push(a);
                    } else {
                        prop_assert!(got.is_none());
                    }
                }
            }
            Op::Merge(i, j) => {
                if i < permits.len() && j < permits.len() && i != j {
                    let (hi, lo) = if i > j { (i, j) } else { (j, i) };
                    let p = permits.swap_remove(hi);
                    let h = m.held.swap_remove(hi);
                    permits[lo].merge(p);
                    for d in 0..N {
                        m.held[lo][d] += h[d];
                    }
                }
            }
            Op::Release(i, a) => {
                if i < permits.len() {
                    let h = m.held[i];
                    let got = permits[i].release(a);
                    if (0..N).all(|d| a[d] <= h[d]) {
                        prop_assert!(got.is_ok(), "{}", ctx);
                        m.held[i] = std::array::from_fn(|d| h[d] - a[d]);
                    } else {
                        prop_assert!(got.is_err(), "{}", ctx);
                    }
                }
            }
            Op::Grow(i, a) => {
                if i < permits.len() {
                    let avail = m.available();
                    let got = permits[i].try_grow(a);
                    // Refused for its size where the permit could never
                    // hold what it would hold after (in the dimensions it
                    // grows in).
                    let held = m.held[i];
                    if let Some(d) =
                        (0..N).find(|&d| a[d] > 0 && held[d].saturating_add(a[d]) > m.cap[d])
                    {
                        prop_assert!(
                            matches!(got, Err(TryAcquireError::ExceedsCapacity { .. })),
                            "{}: {:?}",
                            ctx,
                            got
                        );
                        refused[d] += 1;
                        exceeded[d] += 1;
                    } else if let Some(d) = (0..N).find(|&d| a[d] > avail[d]) {
                        prop_assert!(
                            matches!(got, Err(TryAcquireError::Insufficient { .. })),
                            "{}: {:?}",
                            ctx,
                            got
                        );
                        refused[d] += 1;
                    } else {
                        prop_assert!(got.is_ok(), "{}: {:?}", ctx, got);
                        acquired += 1;
                        for d in 0..N {
                            m.held[i][d] += a[d];
                        }
                        m.bump_peak();
                    }
                    prop_assert_eq!(permits[i].amounts(), m.held[i], "{}", ctx);
                }
            }
            Op::Forget(i) => {
                if i < permits.len() {
                    let f = m.in_flight();
                    let h = m.held.swap_remove(i);
                    permits.swap_remove(i).forget();
                    for d in 0..N {
                        let debt = f[d].saturating_sub(m.cap[d]);
                        let paid = debt.min(h[d]);
                        m.cap[d] -= h[d] - paid;
                    }
                }
            }
            Op::SetCap(c) => {
                let got = sem.set_capacity(c);
                if (0..N).any(|d| c[d] > m.max[d]) {
                    prop_assert!(got.is_err(), "{}", ctx);
                } else {
                    prop_assert!(got.is_ok(), "{}: {:?}", ctx, got);
                    m.cap = c;
                }
            }
            Op::SetCapOf(d, c) => {
                let got = sem.set_capacity_of(d, c);
                if c > m.max[d] {
                    prop_assert!(got.is_err(), "{}", ctx);
                } else {
                    prop_assert!(got.is_ok(), "{}: {:?}", ctx, got);
                    m.cap[d] = c;
                }
            }
            Op::Add(a) => {
                let got = sem.add_permits(a);
                let over = (0..N).any(|d| m.cap[d].checked_add(a[d]).is_none_or(|c| c > m.max[d]));
                if over {
                    prop_assert!(got.is_err(), "{}", ctx);
                } else {
                    prop_assert!(got.is_ok(), "{}: {:?}", ctx, got);
                    for d in 0..N {
                        m.cap[d] += a[d];
                    }
                }
            }
        }
        prop_assert_eq!(sem.capacity(), m.cap, "capacity after {}", ctx);
        prop_assert_eq!(sem.available(), m.available(), "available after {}", ctx);
        prop_assert_eq!(sem.in_flight(), m.in_flight(), "in_flight after {}", ctx);
        let st = sem.stats();
        prop_assert_eq!(st.peak_in_flight, m.peak, "peaks after {}", ctx);
        prop_assert_eq!(
            (st.acquired, st.clamped, st.refused, st.exceeded),
            (acquired, clamped, refused, exceeded),
            "stats after {}",
            ctx
        );
        for (p, h) in permits.iter().zip(&m.held) {
            prop_assert_eq!(p.amounts(), *h);
        }
    }
    drop(permits);
    prop_assert_eq!(sem.available(), m.cap);
    prop_assert_eq!(sem.in_flight(), [0; N]);
    Ok(())
}

fn caps<const N: usize>() -> impl Strategy<Value = [u64; N]> {
    vec(cap_value(), N).prop_map(|v| <[u64; N]>::try_from(v).unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn large_model_n1(cap in caps::<1>(), r in any::<bool>(), c in any::<bool>(), ops in vec(raw_op(1), 1..40)) {
        run(cap, r, c, ops)?;
    }
    #[test]
    fn large_model_n2(cap in caps::<2>(), r in any::<bool>(), c in any::<bool>(), ops in vec(raw_op(2), 1..40)) {
        run(cap, r, c, ops)?;
    }
    #[test]
    fn large_model_n3(cap in caps::<3>(), r in any::<bool>(), c in any::<bool>(), ops in vec(raw_op(3), 1..40)) {
        run(cap, r, c, ops)?;
    }
    #[test]
    fn large_model_n4(cap in caps::<4>(), r in any::<bool>(), c in any::<bool>(), ops in vec(raw_op(4), 1..40)) {
        run(cap, r, c, ops)?;
    }
    #[test]
    fn large_model_n8(cap in caps::<8>(), r in any::<bool>(), c in any::<bool>(), ops in vec(raw_op(8), 1..40)) {
        run(cap, r, c, ops)?;
    }
}

/// The fast path's tally wraps every 64 takes: `acquired` stays exact over
/// many takes in every path (packed, tiered front, tiered split).
#[test]
fn acquired_is_exact_across_tally_wraps() {
    fn check<const N: usize>(sem: MultiSemaphore<N>, a: [u64; N], rounds: u64) {
        for _ in 0..rounds {
            let p = sem.try_acquire(a).unwrap();
            drop(p);
        }
        assert_eq!(sem.stats().acquired, rounds, "{sem:?}");
        assert_eq!(sem.available(), sem.capacity());
    }
    check(MultiSemaphore::new([63u64; 8]), [63; 8], 1000);
    check(MultiSemaphore::new([1024, 100 << 20]), [1, 4096], 1000);
    check(MultiSemaphore::new([1 << 40, 1 << 50]), [1, 1], 1000);
    check(
        MultiSemaphore::new([1 << 40, 1 << 50]),
        [1 << 39, 1 << 49],
        1000,
    );
    check(
        MultiSemaphore::builder([1 << 40, 1 << 50])
            .track_peaks(false)
            .build(),
        [1 << 39, 1 << 49],
        1000,
    );
    check(
        MultiSemaphore::builder([1 << 40, 1 << 50])
            .track_amounts(true)
            .build(),
        [1 << 39, 1],
        1000,
    );
    let full = MultiSemaphore::new([63u64; 8]);
    full.set_capacity(full.max_capacity()).unwrap();
    check(full, [63; 8], 1000);
}
