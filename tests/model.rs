//! Proptest state machine: random operation sequences applied to the real
//! `MultiSemaphore` and to a plain sequential model, compared after every step.
//!
//! Operations: `try_acquire` (random vectors, zeros and over-capacity
//! included), blocking `acquire_blocking` (only where the model says it cannot wait),
//! `acquire_blocking_deadline` with a past deadline, `acquire_blocking_timeout` of 1 ms, async
//! acquires polled once and then kept queued, cancelled, or completed later,
//! dropping, splitting, merging, forgetting, growing (`try_grow`) and
//! partly releasing (`release`) permits, `close`,
//! `add_permits` and `set_capacity` (overflow included); all of it again on
//! semaphores built with `clamp_oversized(true)`, where a request above a
//! capacity is granted the capacity of the moment it is granted.
//!
//! After each step the queued futures are polled in arrival order; every result,
//! `available()`, `capacity()`, `waiters()`, `is_closed()`, `stats()` and the
//! amounts of every live permit must match the model. A future the model
//! completed must also have been woken (no lost wakeup).
//!
//! Sequential only: one thread, so every waiting operation is one that cannot
//! block forever (a watchdog aborts the run if one does).

// Per-dimension loops index several arrays at once; an index reads best.
#![allow(clippy::needless_range_loop)]

use std::array::from_fn;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use multisem::*;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

mod common;
use common::{CountingWaker, Layout, Watchdog, counting_waker, poll_with};

// ---------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum Op<const N: usize> {
    TryAcquire {
        amounts: [u64; N],
        owned: bool,
    },
    /// Blocking `acquire_blocking`; skipped when the model says it would wait.
    Acquire {
        amounts: [u64; N],
        owned: bool,
    },
    /// `acquire_blocking_deadline` with a deadline already past: one try.
    DeadlinePast {
        amounts: [u64; N],
        owned: bool,
    },
    /// `acquire_blocking_timeout` of 1 ms.
    ShortTimeout {
        amounts: [u64; N],
        owned: bool,
    },
    /// Async acquire polled once; if pending, kept queued or dropped at once.
    /// `timed`: made `with_timeout` on a timer that `Expire` fires.
    Async {
        amounts: [u64; N],
        owned: bool,
        keep: bool,
        timed: bool,
    },
    /// Fire the timer of queued future k (if it has one): it times out
    /// unless it ended first.
    Expire(usize),
    /// Drop queued future k (cancel).
    Cancel(usize),
    Drop(usize),
    Split {
        k: usize,
        amounts: [u64; N],
        half: bool,
    },
    Merge(usize, usize),
    Forget(usize),
    /// `try_grow` of permit k.
    Grow {
        k: usize,
        amounts: [u64; N],
    },
    /// `release` of part of permit k (`half`: half of what it holds).
    Release {
        k: usize,
        amounts: [u64; N],
        half: bool,
    },
    Close,
    /// `overflow`: make that dimension pass `max_capacity()`.
    AddPermits {
        amounts: [u64; N],
        overflow: Option<usize>,
    },
    SetCapacity {
        capacity: [u64; N],
        overflow: Option<usize>,
    },
    /// `first`, then drop queued future `cancel` before it is polled again:
    /// a future granted (or failed) by `first` is dropped undelivered.
    Then {
        first: Box<Op<N>>,
        cancel: usize,
    },
}

fn arr<const N: usize>(s: impl Strategy<Value = u64>) -> impl Strategy<Value = [u64; N]> {
    vec(s, N).prop_map(|v| <[u64; N]>::try_from(v).unwrap())
}

fn amount() -> impl Strategy<Value = u64> {
    prop_oneof![
        3 => Just(0u64),
        8 => 1..=6u64,
        1 => 7..=40u64,
    ]
}

fn capacities<const N: usize>() -> impl Strategy<Value = [u64; N]> {
    arr(prop_oneof![1 => Just(0u64), 12 => 1..=16u64])
}

fn op<const N: usize>() -> impl Strategy<Value = Op<N>> {
    prop_oneof![
        12 => base_op(),
        1 => (base_op(), 0..64usize).prop_map(|(first, cancel)| Op::Then {
            first: Box::new(first),
            cancel,
        }),
    ]
}

fn base_op<const N: usize>() -> impl Strategy<Value = Op<N>> {
    let idx = 0..64usize;
    prop_oneof![
        8 => (arr(amount()), any::<bool>())
            .prop_map(|(amounts, owned)| Op::TryAcquire { amounts, owned }),
        2 => (arr(amount()), any::<bool>())
            .prop_map(|(amounts, owned)| Op::Acquire { amounts, owned }),
        2 => (arr(amount()), any::<bool>())
            .prop_map(|(amounts, owned)| Op::DeadlinePast { amounts, owned }),
        1 => (arr(amount()), any::<bool>())
            .prop_map(|(amounts, owned)| Op::ShortTimeout { amounts, owned }),
        5 => (arr(amount()), any::<bool>(), prop::bool::weighted(0.7), any::<bool>())
            .prop_map(|(amounts, owned, keep, timed)| Op::Async { amounts, owned, keep, timed }),
        1 => idx.clone().prop_map(Op::Expire),
        2 => idx.clone().prop_map(Op::Cancel),
        6 => idx.clone().prop_map(Op::Drop),
        3 => (idx.clone(), arr(0..=4u64), any::<bool>())
            .prop_map(|(k, amounts, half)| Op::Split { k, amounts, half }),
        2 => (idx.clone(), idx.clone()).prop_map(|(j, k)| Op::Merge(j, k)),
        1 => idx.clone().prop_map(Op::Forget),
        3 => (idx.clone(), arr(amount())).prop_map(|(k, amounts)| Op::Grow { k, amounts }),
        3 => (idx.clone(), arr(0..=4u64), any::<bool>())
            .prop_map(|(k, amounts, half)| Op::Release { k, amounts, half }),
        1 => Just(Op::Close),
        2 => (arr(0..=6u64), prop::option::weighted(0.15, 0..N))
            .prop_map(|(amounts, overflow)| Op::AddPermits { amounts, overflow }),
        2 => (arr(0..=20u64), prop::option::weighted(0.15, 0..N))
            .prop_map(|(capacity, overflow)| Op::SetCapacity { capacity, overflow }),
    ]
}

// ---------------------------------------------------------------------------
// The real side
// ---------------------------------------------------------------------------

enum Held<'a, const N: usize> {
    B(Permit<'a, N>),
    O(OwnedPermit<N>),
}

impl<const N: usize> Held<'_, N> {
    fn amounts(&self) -> [u64; N] {
        match self {
            Held::B(p) => p.amounts(),
            Held::O(p) => p.amounts(),
        }
    }
    fn split(&mut self, a: [u64; N]) -> Option<Self> {
        match self {
            Held::B(p) => p.split(a).map(Held::B),
            Held::O(p) => p.split(a).map(Held::O),
        }
    }
    fn forget(self) {
        match self {
            Held::B(p) => p.forget(),
            Held::O(p) => p.forget(),
        }
    }
    fn try_grow(&mut self, a: [u64; N]) -> Result<(), TryAcquireError> {
        match self {
            Held::B(p) => p.try_grow(a),
            Held::O(p) => p.try_grow(a),
        }
    }
    fn release(&mut self, a: [u64; N]) -> Result<(), ReleaseError> {
        match self {
            Held::B(p) => p.release(a),
            Held::O(p) => p.release(a),
        }
    }
    fn same_kind(&self, other: &Self) -> bool {
        matches!(
            (self, other),
            (Held::B(_), Held::B(_)) | (Held::O(_), Held::O(_))
        )
    }
    fn merge(&mut self, other: Self) {
        match (self, other) {
            (Held::B(p), Held::B(q)) => p.merge(q),
            (Held::O(p), Held::O(q)) => p.merge(q),
            _ => unreachable!("merge of different kinds is filtered out"),
        }
    }
}

type Fut<'a, const N: usize> =
    Pin<Box<dyn Future<Output = Result<Held<'a, N>, AcquireError>> + 'a>>;

struct Pending<'a, const N: usize> {
    fut: Fut<'a, N>,
    counter: Arc<CountingWaker>,
    waker: Waker,
    wakes_seen: usize,
    /// The timer of a `with_timeout` future.
    timer: Option<Timer>,
}

/// A timer that completes once fired (the model polls every step, so it
/// needs no waker).
#[derive(Clone, Default)]
struct Timer(Arc<AtomicBool>);

impl Future for Timer {
    type Output = ();
    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        if self.0.load(SeqCst) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl<'a, const N: usize> Pending<'a, N> {
    fn new(fut: Fut<'a, N>, timer: Option<Timer>) -> Self {
        let (counter, waker) = counting_waker();
        Self {
            fut,
            counter,
            waker,
            wakes_seen: 0,
            timer,
        }
    }

    fn poll(&mut self) -> Poll<Result<Held<'a, N>, AcquireError>> {
        self.wakes_seen = self.counter.wakes();
        poll_with(self.fut.as_mut(), &self.waker)
    }
}

// ---------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------

/// What the model expects of an acquire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    Ok,
    Exceeds,
    Closed,
    /// Short now (try_acquire: `Insufficient`; deadline/timeout: `Timeout`).
    Short,
    /// Short because someone is queued, though the counters may fit.
    Queued,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum WaitState {
    Queued,
    Granted,
    Failed(Expect),
}

#[derive(Debug)]
struct Waiting<const N: usize> {
    amounts: [u64; N],
    state: WaitState,
    /// Its timer has fired (`Expire`).
    expired: bool,
}

#[derive(Debug)]
struct Model<const N: usize> {
    cap: [u64; N],
    max: [u64; N],
    /// Sum of the amounts of live permits.
    in_flight: [u64; N],
    closed: bool,
    held: Vec<[u64; N]>,
    waiting: Vec<Waiting<N>>,
    stats: Stats<N>,
    /// Queued futures ended by `close()` and dropped before they were polled
    /// again: each must count once, as `closed_out` or as `cancelled`.
    closed_undelivered: u64,
    track_peaks: bool,
    track_amounts: bool,
    /// `Builder::clamp_oversized`: a request above a capacity is granted
    /// that capacity (the capacity at the time of the grant).
    clamp: bool,
    /// The single-word layout: a refusal names every short dimension; the
    /// tiered one, refused on its lock-free path, names only the first.
    single_word: bool,
}

impl<const N: usize> Model<N> {
    fn available(&self) -> [u64; N] {
        from_fn(|d| self.cap[d].saturating_sub(self.in_flight[d]))
    }
    fn exceeds(&self, a: [u64; N]) -> bool {
        (0..N).any(|d| a[d] > self.cap[d])
    }
    fn fits(&self, a: [u64; N]) -> bool {
        let av = self.available();
        (0..N).all(|d| a[d] <= av[d])
    }
    /// The oldest queued request.
    fn head(&self) -> Option<[u64; N]> {
        self.waiting
            .iter()
            .find(|w| w.state == WaitState::Queued)
            .map(|w| w.amounts)
    }
    /// The dimension that holds `a` back now, as `Stats` documents it: the
    /// first where `a` is short, else the first the queue's head lacks.
    /// Requests are judged on what they would be granted (their clamp).
    fn held_back(&self, a: [u64; N]) -> usize {
        let av = self.available();
        let short = |x: [u64; N]| (0..N).find(|&d| self.grant_of(x)[d] > av[d]);
        short(a)
            .or_else(|| self.head().and_then(short))
            .unwrap_or_else(|| (0..N).find(|&d| a[d] > 0).unwrap_or(0))
    }
    /// A waiting acquire of `a` timed out now.
    fn time_out(&mut self, a: [u64; N]) {
        let d = self.held_back(a);
        self.stats.timed_out += 1;
        self.stats.timed_out_by[d] += 1;
    }
    fn queued(&self) -> usize {
        self.waiting
            .iter()
            .filter(|w| w.state == WaitState::Queued)
            .count()
    }
    /// What a request of `a` is granted: `a`, or its clamp (never to a
    /// capacity of 0: such a request keeps its size, and waits).
    fn grant_of(&self, a: [u64; N]) -> [u64; N] {
        if self.clamp {
            from_fn(|d| match self.cap[d] {
                0 => a[d],
                cap => a[d].min(cap),
            })
        } else {
            a
        }
    }
    /// What a permit holding `held` would hold after a grow of `a`, in the
    /// dimensions it grows in (0 elsewhere: no reason to refuse it).
    fn grown(held: [u64; N], a: [u64; N]) -> [u64; N] {
        from_fn(|d| match a[d] {
            0 => 0,
            more => held[d].saturating_add(more),
        })
    }
    /// `expect` for a grow of `a` to `after` (`grown`), which never
    /// clamps: refused for its size where the permit could never hold it.
    fn expect_grow(&self, after: [u64; N], a: [u64; N]) -> Expect {
        if self.exceeds(after) {
            Expect::Exceeds
        } else {
            self.expect(a)
        }
    }
    fn expect(&self, a: [u64; N]) -> Expect {
        if self.exceeds(a) && !self.clamp {
            Expect::Exceeds
        } else if self.closed {
            Expect::Closed
        } else if a.iter().all(|&x| x == 0) {
            Expect::Ok
        } else if self.queued() > 0 {
            Expect::Queued
        } else if self.fits(self.grant_of(a)) {
            Expect::Ok
        } else {
            Expect::Short
        }
    }
    fn take(&mut self, a: [u64; N]) {
        for d in 0..N {
            self.in_flight[d] += a[d];
            if self.track_peaks {
                let p = &mut self.stats.peak_in_flight[d];
                *p = (*p).max(self.in_flight[d]);
            }
        }
    }
    /// Queued waiters whose request can never fit fail; then grant in FIFO
    /// order while the head fits (Go x/sync style: no waiter holds a part).
    /// A clamped waiter is granted its clamp at the capacity of that moment,
    /// never failed; `amounts` then records what it was granted.
    fn serve(&mut self) {
        for i in 0..self.waiting.len() {
            let a = self.waiting[i].amounts;
            if self.waiting[i].state == WaitState::Queued && !self.clamp && self.exceeds(a) {
                self.waiting[i].state = WaitState::Failed(Expect::Exceeds);
                let d = (0..N).find(|&d| a[d] > self.cap[d]).unwrap();
                self.stats.exceeded[d] += 1;
                self.stats.exceeded_while_waiting += 1;
            }
        }
        for i in 0..self.waiting.len() {
            if self.waiting[i].state != WaitState::Queued {
                continue;
            }
            let a = self.waiting[i].amounts;
            let g = self.grant_of(a);
            if !self.fits(g) {
                break;
            }
            self.take(g);
            if g != a {
                self.stats.clamped += 1;
            }
            self.waiting[i].amounts = g;
            self.waiting[i].state = WaitState::Granted;
        }
    }
    fn release(&mut self, a: [u64; N]) {
        for d in 0..N {
            self.in_flight[d] -= a[d];
        }
        self.serve();
    }
    fn forget(&mut self, a: [u64; N]) {
        for d in 0..N {
            // The part that pays down an over-capacity shrink does not shrink
            // capacity further.
            let over = self.in_flight[d].saturating_sub(self.cap[d]);
            let paid = a[d].min(over);
            self.cap[d] -= a[d] - paid;
            self.in_flight[d] -= a[d];
        }
        self.serve();
    }
    /// A grant of `a` delivered to its caller.
    fn deliver(&mut self, a: [u64; N]) {
        self.stats.acquired += 1;
        if self.track_amounts {
            for d in 0..N {
                self.stats.acquired_amounts[d] += a[d];
            }
        }
    }
    fn close(&mut self) {
        self.closed = true;
        for w in &mut self.waiting {
            if w.state == WaitState::Queued {
                w.state = WaitState::Failed(Expect::Closed);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Checking results
// ---------------------------------------------------------------------------

/// A grant of `a` by `call`: the model must expect it, and books it.
fn granted<const N: usize>(
    m: &mut Model<N>,
    call: &str,
    a: [u64; N],
    exp: Expect,
    amounts: [u64; N],
) -> Result<bool, TestCaseError> {
    prop_assert_eq!(exp, Expect::Ok, "{}({:?}) succeeded", call, a);
    let g = m.grant_of(a);
    prop_assert_eq!(amounts, g);
    m.take(g);
    m.deliver(g);
    if g != a {
        m.stats.clamped += 1;
    }
    Ok(true)
}

/// `ExceedsCapacity { dim, requested, capacity }` from `call`: the model must
/// expect it, and the fields must name the first dimension whose capacity is
/// short. Books it.
fn exceeded<const N: usize>(
    m: &mut Model<N>,
    call: &str,
    a: [u64; N],
    exp: Expect,
    (dim, requested, capacity): (usize, u64, u64),
) -> Result<(), TestCaseError> {
    prop_assert_eq!(exp, Expect::Exceeds, "{}({:?})", call, a);
    prop_assert_eq!(
        Some(dim),
        (0..N).find(|&d| a[d] > m.cap[d]),
        "{}({:?}): ExceedsCapacity names dim {}",
        call,
        a,
        dim
    );
    prop_assert_eq!(requested, a[dim]);
    prop_assert_eq!(capacity, m.cap[dim]);
    m.stats.exceeded[dim] += 1;
    Ok(())
}

/// `Closed` from `call`: the model must expect it, and books it.
fn closed_out<const N: usize>(
    m: &mut Model<N>,
    call: &str,
    a: [u64; N],
    exp: Expect,
) -> Result<bool, TestCaseError> {
    prop_assert_eq!(exp, Expect::Closed, "{}({:?}) Closed", call, a);
    m.stats.closed_out += 1;
    Ok(false)
}

/// `clamps`: the call clamps an oversized request (`try_acquire` on a
/// clamping semaphore; `try_grow` never does).
fn check_try<const N: usize>(
    m: &mut Model<N>,
    a: [u64; N],
    exp: Expect,
    got: Result<[u64; N], TryAcquireError>,
    clamps: bool,
) -> Result<bool, TestCaseError> {
    let av = m.available();
    match got {
        Ok(amounts) => granted(m, "try_acquire", a, exp, amounts),
        Err(TryAcquireError::ExceedsCapacity {
            dim,
            requested,
            capacity,
            ..
        }) => {
            exceeded(m, "try_acquire", a, exp, (dim, requested, capacity))?;
            m.stats.refused[dim] += 1;
            Ok(false)
        }
        Err(TryAcquireError::Closed) => closed_out(m, "try_acquire", a, exp),
        Err(TryAcquireError::Insufficient {
            dim,
            requested,
            available,
            queued_ahead,
            short,
            ..
        }) => {
            // The lock-free path refused it: nobody queued, no debt, and a
            // call that does not clamp (a clamping `try_acquire` refuses
            // only under the lock). A request above a capacity never gets
            // there: it is refused as too large, or clamped.
            let lock_free =
                !clamps && m.head().is_none() && (0..N).all(|d| m.in_flight[d] <= m.cap[d]);
            // The error names the request as it would be granted: clamped.
            let a = m.grant_of(a);
            // Every dimension the request lacks; where it lacks none, it is
            // refused for the queue's head, and names what the head lacks
            // (of its clamp). The tiered layout's lock-free refusal names
            // the first it lacks alone.
            let lacking =
                |x: [u64; N]| -> Vec<usize> { (0..N).filter(|&d| x[d] > av[d]).collect() };
            let own = lacking(a);
            let want_short = match m.head() {
                Some(head) if own.is_empty() => lacking(m.grant_of(head)),
                _ if lock_free && !m.single_word => own[..1].to_vec(),
                _ => own.clone(),
            };
            prop_assert_eq!(
                queued_ahead,
                own.is_empty(),
                "try_acquire({:?}): queued_ahead",
                a
            );
            prop_assert_eq!(
                short.iter().collect::<Vec<_>>(),
                want_short,
                "try_acquire({:?}): short",
                a
            );
            prop_assert!(
                exp == Expect::Short || exp == Expect::Queued,
                "try_acquire({:?}): Insufficient, model expects {:?}",
                a,
                exp
            );
            // The first dimension short, or else the first the head lacks.
            prop_assert_eq!(
                dim,
                m.held_back(a),
                "try_acquire({:?}): Insufficient names dim {}; available {:?}, waiting {:?}",
                a,
                dim,
                av,
                m.waiting
            );
            prop_assert_eq!(requested, a[dim]);
            prop_assert_eq!(available, av[dim]);
            m.stats.refused[dim] += 1;
            Ok(false)
        }
        Err(other) => Err(TestCaseError::fail(format!("unknown error {other:?}"))),
    }
}

/// For blocking, timed and async acquires. `waited`: the model's `Short` and
/// `Queued` become `Timeout`.
fn check_acquire<const N: usize>(
    m: &mut Model<N>,
    a: [u64; N],
    exp: Expect,
    got: Result<[u64; N], AcquireError>,
) -> Result<bool, TestCaseError> {
    match got {
        Ok(amounts) => granted(m, "acquire", a, exp, amounts),
        Err(AcquireError::ExceedsCapacity {
            dim,
            requested,
            capacity,
            ..
        }) => {
            exceeded(m, "acquire", a, exp, (dim, requested, capacity))?;
            Ok(false)
        }
        Err(AcquireError::Closed) => closed_out(m, "acquire", a, exp),
        Err(AcquireError::Timeout) => {
            prop_assert!(
                exp == Expect::Short || exp == Expect::Queued,
                "acquire({:?}): Timeout, model expects {:?}",
                a,
                exp
            );
            // It waited (or, its deadline past, would have), then timed out,
            // held back by the same dimension throughout.
            let d = m.held_back(a);
            m.stats.waited[d] += 1;
            m.time_out(a);
            Ok(false)
        }
        Err(other) => Err(TestCaseError::fail(format!("unknown error {other:?}"))),
    }
}

/// `stats()` equals the model's, except that each future ended by `close()`
/// and dropped unpolled may count as `closed_out` or as `cancelled`.
fn check_stats<const N: usize>(
    real: Stats<N>,
    m: &Model<N>,
    step: usize,
) -> Result<(), TestCaseError> {
    let extra_closed = real.closed_out.checked_sub(m.stats.closed_out);
    let extra_cancelled = real.cancelled.checked_sub(m.stats.cancelled);
    let ok = match (extra_closed, extra_cancelled) {
        (Some(a), Some(b)) => a + b == m.closed_undelivered,
        _ => false,
    };
    prop_assert!(
        ok,
        "step {}: closed_out {} / cancelled {}; model {} / {} plus {} closed and dropped unpolled \
         (each must count once, in one of the two)",
        step,
        real.closed_out,
        real.cancelled,
        m.stats.closed_out,
        m.stats.cancelled,
        m.closed_undelivered
    );
    // A wait that close() ended counts as closed out while waiting too.
    prop_assert_eq!(
        real.closed_out_while_waiting
            .checked_sub(m.stats.closed_out_while_waiting),
        extra_closed,
        "step {}: closed_out_while_waiting {} against closed_out {}",
        step,
        real.closed_out_while_waiting,
        real.closed_out
    );
    let mut same = real;
    same.closed_out = m.stats.closed_out;
    same.closed_out_while_waiting = m.stats.closed_out_while_waiting;
    same.cancelled = m.stats.cancelled;
    prop_assert_eq!(same, m.stats, "step {}: stats", step);
    Ok(())
}

// ---------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------

/// The amounts a split or release takes from a permit holding `held`:
/// half of it, or the drawn `amounts` (which may be more than held).
fn part_of<const N: usize>(held: [u64; N], amounts: [u64; N], half: bool) -> [u64; N] {
    if half { held.map(|x| x / 2) } else { amounts }
}

/// What the semaphore keeps besides its counters, and its oversized policy.
#[derive(Clone, Copy, Debug)]
struct Tracking {
    peaks: bool,
    amounts: bool,
    clamp: bool,
}

fn tracking() -> impl Strategy<Value = Tracking> {
    any::<(bool, bool)>().prop_map(|(peaks, amounts)| Tracking {
        peaks,
        amounts,
        clamp: false,
    })
}

/// `tracking()` on a semaphore built with `clamp_oversized(true)`.
fn clamping() -> impl Strategy<Value = Tracking> {
    tracking().prop_map(|track| Tracking {
        clamp: true,
        ..track
    })
}

fn make<const N: usize>(layout: Layout, cap: [u64; N], track: Tracking) -> MultiSemaphore<N> {
    layout
        .builder(cap)
        .track_peaks(track.peaks)
        .track_amounts(track.amounts)
        .clamp_oversized(track.clamp)
        .build()
}

fn run<const N: usize>(
    layout: Layout,
    cap: [u64; N],
    track: Tracking,
    ops: Vec<Op<N>>,
) -> Result<(), TestCaseError> {
    let _wd = Watchdog::new("a model run", Duration::from_secs(60));
    let sem = Arc::new(make(layout, cap, track));
    let max = sem.max_capacity();
    if layout != Layout::Packed {
        prop_assert_eq!(max, [MultiSemaphore::<N>::MAX_PERMITS; N]);
    }
    for d in 0..N {
        prop_assert!(max[d] >= cap[d] && max[d] <= MultiSemaphore::<N>::MAX_PERMITS);
    }
    let mut m = Model {
        cap,
        max,
        in_flight: [0; N],
        closed: false,
        held: Vec::new(),
        waiting: Vec::new(),
        stats: Stats::default(),
        closed_undelivered: 0,
        track_peaks: track.peaks,
        track_amounts: track.amounts,
        clamp: track.clamp,
        single_word: sem.is_single_word(),
    };
    m.stats.amounts_tracked = track.amounts;
    m.stats.peaks_tracked = track.peaks;
    let mut held: Vec<Held<'_, N>> = Vec::new();
    let mut pending: Vec<Pending<'_, N>> = Vec::new();

    for (step, op) in ops.into_iter().enumerate() {
        let (op, cancel_after) = match op {
            Op::Then { first, cancel } => (*first, Some(cancel)),
            op => (op, None),
        };
        match op {
            Op::TryAcquire { amounts, owned } => {
                let exp = m.expect(amounts);
                let got = if owned {
                    sem.try_acquire_owned(amounts).map(Held::O)
                } else {
                    sem.try_acquire(amounts).map(Held::B)
                };
                let summary = got.as_ref().map(Held::amounts).map_err(Clone::clone);
                let clamps = m.clamp;
                if check_try(&mut m, amounts, exp, summary, clamps)? {
                    held.push(got.unwrap());
                    m.held.push(m.grant_of(amounts));
                }
            }
            Op::Acquire { amounts, owned } => {
                let exp = m.expect(amounts);
                if matches!(exp, Expect::Short | Expect::Queued) {
                    continue; // would wait forever in a single thread
                }
                let got = if owned {
                    sem.acquire_owned_blocking(amounts).map(Held::O)
                } else {
                    sem.acquire_blocking(amounts).map(Held::B)
                };
                let summary = got.as_ref().map(Held::amounts).map_err(Clone::clone);
                if check_acquire(&mut m, amounts, exp, summary)? {
                    held.push(got.unwrap());
                    m.held.push(m.grant_of(amounts));
                }
            }
            Op::DeadlinePast { amounts, owned } => {
                let exp = m.expect(amounts);
                let past = Instant::now() - Duration::from_millis(10);
                let got = if owned {
                    sem.acquire_owned_blocking_deadline(amounts, past)
                        .map(Held::O)
                } else {
                    sem.acquire_blocking_deadline(amounts, past).map(Held::B)
                };
                let summary = got.as_ref().map(Held::amounts).map_err(Clone::clone);
                if check_acquire(&mut m, amounts, exp, summary)? {
                    held.push(got.unwrap());
                    m.held.push(m.grant_of(amounts));
                }
            }
            Op::ShortTimeout { amounts, owned } => {
                let exp = m.expect(amounts);
                let t = Duration::from_millis(1);
                let got = if owned {
                    sem.acquire_owned_blocking_timeout(amounts, t).map(Held::O)
                } else {
                    sem.acquire_blocking_timeout(amounts, t).map(Held::B)
                };
                let summary = got.as_ref().map(Held::amounts).map_err(Clone::clone);
                if check_acquire(&mut m, amounts, exp, summary)? {
                    held.push(got.unwrap());
                    m.held.push(m.grant_of(amounts));
                }
            }
            Op::Async {
                amounts,
                owned,
                keep,
                timed,
            } => {
                let exp = m.expect(amounts);
                let timer = timed.then(Timer::default);
                let fut: Fut<'_, N> = match (owned, timer.clone()) {
                    (true, None) => {
                        let f = sem.acquire_owned(amounts);
                        Box::pin(async move { f.await.map(Held::O) })
                    }
                    (true, Some(t)) => {
                        let f = sem.acquire_owned(amounts).with_timeout(t);
                        Box::pin(async move { f.await.map(Held::O) })
                    }
                    (false, None) => {
                        let f = sem.acquire(amounts);
                        Box::pin(async move { f.await.map(Held::B) })
                    }
                    (false, Some(t)) => {
                        let f = sem.acquire(amounts).with_timeout(t);
                        Box::pin(async move { f.await.map(Held::B) })
                    }
                };
                let mut p = Pending::new(fut, timer);
                match p.poll() {
                    Poll::Ready(got) => {
                        let summary = got.as_ref().map(Held::amounts).map_err(Clone::clone);
                        prop_assert!(
                            !matches!(exp, Expect::Short | Expect::Queued),
                            "async acquire({:?}) ready at once, model expects it to wait",
                            amounts
                        );
                        if check_acquire(&mut m, amounts, exp, summary)? {
                            held.push(got.unwrap());
                            m.held.push(m.grant_of(amounts));
                        }
                    }
                    Poll::Pending => {
                        prop_assert!(
                            matches!(exp, Expect::Short | Expect::Queued),
                            "async acquire({:?}) pending, model expects {:?}",
                            amounts,
                            exp
                        );
                        let d = m.held_back(amounts);
                        m.stats.waited[d] += 1;
                        if keep {
                            pending.push(p);
                            m.waiting.push(Waiting {
                                amounts,
                                state: WaitState::Queued,
                                expired: false,
                            });
                        } else {
                            drop(p);
                            m.stats.cancelled += 1;
                            m.serve();
                        }
                    }
                }
            }
            Op::Expire(k) => {
                if pending.is_empty() {
                    continue;
                }
                let k = k % pending.len();
                if let Some(timer) = &pending[k].timer {
                    timer.0.store(true, SeqCst);
                    m.waiting[k].expired = true;
                }
            }
            Op::Cancel(k) => {
                if pending.is_empty() {
                    continue;
                }
                let k = k % pending.len();
                drop(pending.remove(k));
                let w = m.waiting.remove(k);
                prop_assert_eq!(w.state, WaitState::Queued);
                m.stats.cancelled += 1;
                m.serve();
            }
            Op::Drop(k) => {
                if held.is_empty() {
                    continue;
                }
                let k = k % held.len();
                drop(held.swap_remove(k));
                let a = m.held.swap_remove(k);
                m.release(a);
            }
            Op::Split { k, amounts, half } => {
                if held.is_empty() {
                    continue;
                }
                let k = k % held.len();
                let a = part_of(m.held[k], amounts, half);
                let fits = (0..N).all(|d| a[d] <= m.held[k][d]);
                match held[k].split(a) {
                    Some(part) => {
                        prop_assert!(fits, "split({:?}) of {:?} succeeded", a, m.held[k]);
                        prop_assert_eq!(part.amounts(), a);
                        for d in 0..N {
                            m.held[k][d] -= a[d];
                        }
                        held.push(part);
                        m.held.push(a);
                    }
                    None => {
                        prop_assert!(!fits, "split({:?}) of {:?} refused", a, m.held[k]);
                    }
                }
            }
            Op::Merge(j, k) => {
                if held.len() < 2 {
                    continue;
                }
                let (j, k) = (j % held.len(), k % held.len());
                if j == k || !held[j].same_kind(&held[k]) {
                    continue;
                }
                let other = held.swap_remove(k);
                let b = m.held.swap_remove(k);
                // swap_remove moved the last element into slot k.
                let j = if j == held.len() { k } else { j };
                held[j].merge(other);
                for d in 0..N {
                    m.held[j][d] += b[d];
                }
            }
            Op::Forget(k) => {
                if held.is_empty() {
                    continue;
                }
                let k = k % held.len();
                held.swap_remove(k).forget();
                let a = m.held.swap_remove(k);
                m.forget(a);
            }
            Op::Grow { k, amounts } => {
                if held.is_empty() {
                    continue;
                }
                let k = k % held.len();
                let after = Model::grown(m.held[k], amounts);
                let exp = m.expect_grow(after, amounts);
                let got = held[k].try_grow(amounts).map(|()| amounts);
                let before = m.held[k];
                // `ExceedsCapacity` names what the permit would hold.
                let judged = if exp == Expect::Exceeds {
                    after
                } else {
                    amounts
                };
                if check_try(&mut m, judged, exp, got, false)? {
                    for d in 0..N {
                        m.held[k][d] += amounts[d];
                    }
                }
                prop_assert_eq!(
                    held[k].amounts(),
                    m.held[k],
                    "grow({:?}) of {:?}",
                    amounts,
                    before
                );
            }
            Op::Release { k, amounts, half } => {
                if held.is_empty() {
                    continue;
                }
                let k = k % held.len();
                let a = part_of(m.held[k], amounts, half);
                let short = (0..N).find(|&d| a[d] > m.held[k][d]);
                match (held[k].release(a), short) {
                    (Ok(()), None) => {
                        for d in 0..N {
                            m.held[k][d] -= a[d];
                        }
                        m.release(a);
                    }
                    (
                        Err(ReleaseError::ExceedsHeld {
                            dim,
                            requested,
                            held: h,
                            ..
                        }),
                        Some(d),
                    ) => {
                        prop_assert_eq!((dim, requested, h), (d, a[d], m.held[k][d]));
                    }
                    (got, _) => {
                        return Err(TestCaseError::fail(format!(
                            "release({a:?}) of {:?} gave {got:?}",
                            m.held[k]
                        )));
                    }
                }
                prop_assert_eq!(held[k].amounts(), m.held[k]);
            }
            Op::Close => {
                sem.close();
                m.close();
            }
            Op::Then { .. } => unreachable!("unwrapped above"),
            Op::AddPermits { amounts, overflow } => {
                let mut a = amounts;
                if let Some(d) = overflow {
                    a[d] = m.max[d] - m.cap[d] + 1 + amounts[d];
                }
                let over: Vec<usize> = (0..N).filter(|&d| m.cap[d] + a[d] > m.max[d]).collect();
                match sem.add_permits(a) {
                    Ok(()) => {
                        prop_assert!(over.is_empty(), "add_permits({:?}) passed max", a);
                        for d in 0..N {
                            m.cap[d] += a[d];
                        }
                        m.serve();
                    }
                    Err(CapacityError::Overflow {
                        dim,
                        requested,
                        max,
                        ..
                    }) => {
                        prop_assert!(over.contains(&dim), "Overflow on dim {} for {:?}", dim, a);
                        prop_assert_eq!(requested, m.cap[dim] + a[dim]);
                        prop_assert_eq!(max, m.max[dim]);
                    }
                    Err(other) => return Err(TestCaseError::fail(format!("{other:?}"))),
                }
            }
            Op::SetCapacity { capacity, overflow } => {
                let mut c = capacity;
                if let Some(d) = overflow {
                    c[d] = m.max[d] + 1 + capacity[d];
                }
                let over: Vec<usize> = (0..N).filter(|&d| c[d] > m.max[d]).collect();
                match sem.set_capacity(c) {
                    Ok(()) => {
                        prop_assert!(over.is_empty(), "set_capacity({:?}) passed max", c);
                        m.cap = c;
                        m.serve();
                    }
                    Err(CapacityError::Overflow {
                        dim,
                        requested,
                        max,
                        ..
                    }) => {
                        prop_assert!(over.contains(&dim), "Overflow on dim {} for {:?}", dim, c);
                        prop_assert_eq!(requested, c[dim]);
                        prop_assert_eq!(max, m.max[dim]);
                    }
                    Err(other) => return Err(TestCaseError::fail(format!("{other:?}"))),
                }
            }
        }

        if let Some(j) = cancel_after.filter(|_| !pending.is_empty()) {
            let j = j % pending.len();
            drop(pending.remove(j));
            let w = m.waiting.remove(j);
            match w.state {
                WaitState::Queued => {
                    m.stats.cancelled += 1;
                    m.serve();
                }
                // Granted but never delivered: the permits go back, and the
                // acquire counts as cancelled, not acquired.
                WaitState::Granted => {
                    m.stats.cancelled += 1;
                    m.release(w.amounts);
                }
                // Closed but never delivered: nothing was taken; it counts
                // once, as closed out or as cancelled (the library's choice).
                WaitState::Failed(Expect::Closed) => m.closed_undelivered += 1,
                // No longer fits, never delivered: nothing taken or counted.
                WaitState::Failed(_) => {}
            }
        }

        // Poll every queued future in arrival order and deliver what the model
        // completed.
        let mut i = 0;
        while i < pending.len() {
            let state = m.waiting[i].state.clone();
            let woken = pending[i].counter.wakes() > pending[i].wakes_seen;
            let amounts = m.waiting[i].amounts;
            if state == WaitState::Queued && m.waiting[i].expired {
                // Its timer fired while it was still queued: it times out,
                // held back by what it (or the head) lacks now.
                let got = pending[i].poll();
                let summary = match &got {
                    Poll::Ready(r) => Some(r.as_ref().map(Held::amounts).map_err(Clone::clone)),
                    Poll::Pending => None,
                };
                prop_assert_eq!(
                    summary,
                    Some(Err(AcquireError::Timeout)),
                    "step {}: expired future {} for {:?}",
                    step,
                    i,
                    amounts
                );
                m.time_out(amounts);
                pending.remove(i);
                m.waiting.remove(i);
                // Its leaving may let those before it be served: poll all
                // again.
                m.serve();
                i = 0;
                continue;
            }
            match pending[i].poll() {
                Poll::Pending => {
                    prop_assert_eq!(
                        &state,
                        &WaitState::Queued,
                        "step {}: queued future {} for {:?} still pending (capacity now {:?}, \
                         available {:?})",
                        step,
                        i,
                        amounts,
                        m.cap,
                        m.available()
                    );
                    i += 1;
                }
                Poll::Ready(got) => {
                    prop_assert!(
                        state != WaitState::Queued,
                        "step {}: queued future {} ({:?}) completed with {:?}; model: still queued",
                        step,
                        i,
                        amounts,
                        got.as_ref().map(Held::amounts)
                    );
                    prop_assert!(
                        woken,
                        "step {}: future {} completed but never woken",
                        step,
                        i
                    );
                    let summary = got.as_ref().map(Held::amounts).map_err(Clone::clone);
                    match state {
                        WaitState::Granted => {
                            prop_assert_eq!(summary, Ok(amounts));
                            m.deliver(amounts);
                            m.stats.acquired_after_wait += 1;
                            held.push(got.unwrap());
                            m.held.push(amounts);
                        }
                        WaitState::Failed(Expect::Closed) => {
                            prop_assert_eq!(summary, Err(AcquireError::Closed));
                            m.stats.closed_out += 1;
                            m.stats.closed_out_while_waiting += 1;
                        }
                        WaitState::Failed(_) => match summary {
                            Err(AcquireError::ExceedsCapacity {
                                dim,
                                requested,
                                capacity,
                                ..
                            }) => {
                                // The first dimension whose capacity is too
                                // small (the error's contract), not any.
                                prop_assert_eq!(
                                    Some(dim),
                                    (0..N).find(|&d| amounts[d] > m.cap[d]),
                                    "step {}: future for {:?} failed naming dim {}",
                                    step,
                                    amounts,
                                    dim
                                );
                                prop_assert_eq!(requested, amounts[dim]);
                                prop_assert_eq!(capacity, m.cap[dim]);
                            }
                            other => {
                                return Err(TestCaseError::fail(format!(
                                    "step {step}: future for {amounts:?} gave {other:?}, \
                                     expected ExceedsCapacity"
                                )));
                            }
                        },
                        WaitState::Queued => unreachable!(),
                    }
                    pending.remove(i);
                    m.waiting.remove(i);
                }
            }
        }

        // Compare everything observable.
        prop_assert_eq!(sem.capacity(), m.cap, "step {}: capacity", step);
        prop_assert_eq!(sem.available(), m.available(), "step {}: available", step);
        prop_assert_eq!(sem.waiters(), m.waiting.len(), "step {}: waiters", step);
        prop_assert_eq!(sem.is_closed(), m.closed, "step {}: is_closed", step);
        prop_assert_eq!(sem.max_capacity(), m.max, "step {}: max_capacity", step);
        prop_assert_eq!(sem.in_flight(), m.in_flight, "step {}: in_flight", step);
        let head = m.head();
        prop_assert_eq!(sem.head_request(), head, "step {}: head_request", step);
        let av = m.available();
        // What the head lacks of what it would be granted (its clamp).
        let shortfall = head.map(|h| from_fn(|d| m.grant_of(h)[d].saturating_sub(av[d])));
        prop_assert_eq!(
            sem.head_shortfall(),
            shortfall,
            "step {}: head_shortfall",
            step
        );
        // Queued behind the head, each fitting on its own (by its clamp).
        let behind = m
            .waiting
            .iter()
            .filter(|w| w.state == WaitState::Queued)
            .skip(1)
            .filter(|w| (0..N).all(|d| m.grant_of(w.amounts)[d] <= av[d]))
            .count();
        prop_assert_eq!(
            sem.waiters_blocked_behind_head(),
            behind,
            "step {}: waiters_blocked_behind_head",
            step
        );
        check_stats(sem.stats(), &m, step)?;
        prop_assert_eq!(held.len(), m.held.len());
        for (h, a) in held.iter().zip(&m.held) {
            prop_assert_eq!(h.amounts(), *a, "step {}: permit amounts", step);
        }
        let sum: [u64; N] = from_fn(|d| m.held.iter().map(|a| a[d]).sum());
        prop_assert_eq!(sum, m.in_flight);
    }

    // Quiescence: everything back, nobody queued.
    // Cancel from the tail, so that no departure lets a follower be granted.
    while let Some(p) = pending.pop() {
        drop(p);
        m.stats.cancelled += 1;
    }
    m.waiting.clear();
    held.clear();
    prop_assert_eq!(sem.waiters(), 0);
    prop_assert_eq!(sem.available(), sem.capacity());
    prop_assert_eq!(sem.capacity(), m.cap);
    check_stats(sem.stats(), &m, usize::MAX)?;
    let stats = sem.stats();
    prop_assert_eq!(stats.waits_in_progress(), 0, "at quiescence: {:?}", stats);
    Ok(())
}

proptest! {
    // 256 cases unless PROPTEST_CASES says otherwise.
    #![proptest_config(ProptestConfig {
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/model.txt",
        ))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn model_n1_packed(cap in capacities::<1>(), track in tracking(), ops in vec(op::<1>(), 1..64)) {
        run(Layout::Packed, cap, track, ops)?;
    }

    #[test]
    fn model_n2_packed(cap in capacities::<2>(), track in tracking(), ops in vec(op::<2>(), 1..64)) {
        run(Layout::Packed, cap, track, ops)?;
    }

    #[test]
    fn model_n2_per_dim(cap in capacities::<2>(), track in tracking(), ops in vec(op::<2>(), 1..64)) {
        run(Layout::PerDim, cap, track, ops)?;
    }

    #[test]
    fn model_n2_reserve_only(cap in capacities::<2>(), track in tracking(), ops in vec(op::<2>(), 1..64)) {
        run(Layout::ReserveOnly, cap, track, ops)?;
    }

    #[test]
    fn model_n3_packed(cap in capacities::<3>(), track in tracking(), ops in vec(op::<3>(), 1..64)) {
        run(Layout::Packed, cap, track, ops)?;
    }

    #[test]
    fn model_n2_clamp_packed(cap in capacities::<2>(), track in clamping(), ops in vec(op::<2>(), 1..64)) {
        run(Layout::Packed, cap, track, ops)?;
    }

    #[test]
    fn model_n2_clamp_per_dim(cap in capacities::<2>(), track in clamping(), ops in vec(op::<2>(), 1..64)) {
        run(Layout::PerDim, cap, track, ops)?;
    }

    #[test]
    fn model_n3_per_dim(cap in capacities::<3>(), track in tracking(), ops in vec(op::<3>(), 1..64)) {
        run(Layout::PerDim, cap, track, ops)?;
    }
}

/// The sequences the random search may take long to find, written out.
#[test]
fn model_fixed_scenarios() {
    use Op::*;
    let scenarios: Vec<(Layout, [u64; 2], Vec<Op<2>>)> = vec![
        // A future granted by a release and dropped before it is polled: the
        // permits go back (all of them can be taken at once afterwards).
        (
            Layout::Packed,
            [2, 20],
            vec![
                TryAcquire {
                    amounts: [2, 20],
                    owned: false,
                },
                Async {
                    amounts: [1, 10],
                    owned: true,
                    keep: true,
                    timed: false,
                },
                Async {
                    amounts: [1, 10],
                    owned: false,
                    keep: true,
                    timed: false,
                },
                Then {
                    first: Box::new(Drop(0)),
                    cancel: 0,
                },
                TryAcquire {
                    amounts: [1, 10],
                    owned: true,
                },
            ],
        ),
        // Closed while queued and dropped before it is polled.
        (
            Layout::PerDim,
            [2, 20],
            vec![
                TryAcquire {
                    amounts: [2, 20],
                    owned: true,
                },
                Async {
                    amounts: [1, 10],
                    owned: false,
                    keep: true,
                    timed: false,
                },
                Then {
                    first: Box::new(Close),
                    cancel: 0,
                },
                Drop(0),
            ],
        ),
        // Head cancelled: the follower that fits is served with no release.
        (
            Layout::Packed,
            [4, 100],
            vec![
                TryAcquire {
                    amounts: [2, 50],
                    owned: false,
                },
                Async {
                    amounts: [4, 100],
                    owned: true,
                    keep: true,
                    timed: false,
                },
                Async {
                    amounts: [1, 10],
                    owned: false,
                    keep: true,
                    timed: false,
                },
                Cancel(0),
            ],
        ),
        // Shrink below in flight, a queued waiter that no longer fits, forget
        // paying down the over part, then growth serving the rest.
        (
            Layout::PerDim,
            [8, 80],
            vec![
                TryAcquire {
                    amounts: [6, 60],
                    owned: true,
                },
                Async {
                    amounts: [8, 10],
                    owned: false,
                    keep: true,
                    timed: false,
                },
                Async {
                    amounts: [2, 10],
                    owned: true,
                    keep: true,
                    timed: false,
                },
                SetCapacity {
                    capacity: [4, 40],
                    overflow: None,
                },
                Forget(0),
                AddPermits {
                    amounts: [2, 10],
                    overflow: None,
                },
                Close,
            ],
        ),
        // Overflow changes nothing, then a queued waiter is closed out.
        (
            Layout::Packed,
            [1, 1],
            vec![
                TryAcquire {
                    amounts: [1, 1],
                    owned: false,
                },
                AddPermits {
                    amounts: [1, 0],
                    overflow: Some(1),
                },
                SetCapacity {
                    capacity: [0, 0],
                    overflow: Some(0),
                },
                Async {
                    amounts: [1, 1],
                    owned: false,
                    keep: true,
                    timed: false,
                },
                TryAcquire {
                    amounts: [0, 0],
                    owned: true,
                },
                DeadlinePast {
                    amounts: [1, 0],
                    owned: false,
                },
                ShortTimeout {
                    amounts: [0, 1],
                    owned: true,
                },
                Close,
                Drop(0),
            ],
        ),
    ];
    for (layout, cap, ops) in scenarios {
        for (peaks, amounts) in [(true, false), (false, true)] {
            let track = Tracking {
                peaks,
                amounts,
                clamp: false,
            };
            if let Err(e) = run(layout, cap, track, ops.clone()) {
                panic!("{layout:?} {cap:?} {ops:?}: {e}");
            }
        }
    }
}
