//! The one place that names atomics, locks and thread parking.
//!
//! Everything concurrent in the crate comes from here, so that under
//! `RUSTFLAGS="--cfg loom"` the same code runs on loom's model-checked
//! primitives. Outside loom the lock is `parking_lot`'s (no poisoning); under
//! loom a thin wrapper gives loom's mutex the same API.
//!
//! loom has no clock: a deadline can never pass under loom (see
//! [`deadline_passed`]), so a timed wait there ends only by grant or close,
//! and the models exercise the timeout path through the cancel path it shares
//! with dropping an async acquire.

pub(crate) use std::sync::Arc;
use std::time::Instant;

#[cfg(not(loom))]
mod imp {
    pub(crate) use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering, fence};
    pub(crate) use std::thread::{Thread, current as current_thread};

    pub(crate) type Mutex<T> = parking_lot::Mutex<T>;
    pub(crate) type MutexGuard<'a, T> = parking_lot::MutexGuard<'a, T>;

    /// Parks the current thread until unparked, or until `deadline` if given.
    /// May return spuriously; callers re-check their condition.
    pub(crate) fn park(deadline: Option<std::time::Instant>) {
        match deadline {
            Some(deadline) => {
                let now = std::time::Instant::now();
                if deadline > now {
                    std::thread::park_timeout(deadline - now);
                }
            }
            None => std::thread::park(),
        }
    }

    pub(crate) fn now() -> std::time::Instant {
        std::time::Instant::now()
    }

    /// A lowered flag for a parked thread's grant: this thread's own from
    /// its last wait, once nothing else holds it, so that blocking
    /// allocates nothing in steady state. A new one while the last grant's
    /// waker still holds the old (it may for a moment after the thread
    /// left), or while the thread-local is being torn down.
    pub(crate) fn grant_flag() -> super::Arc<AtomicBool> {
        use super::Arc;
        use std::cell::Cell;
        thread_local! {
            static FLAG: Cell<Option<Arc<AtomicBool>>> = const { Cell::new(None) };
        }
        FLAG.try_with(|cached| {
            let reused = cached.take().and_then(|mut flag| {
                // `get_mut` succeeds only if this is the last reference, and
                // synchronizes with the other holders' drops (Release, then
                // its Acquire): their uses of the flag happened before, so
                // lowering it races with nothing.
                *Arc::get_mut(&mut flag)?.get_mut() = false;
                Some(flag)
            });
            let flag = reused.unwrap_or_else(|| Arc::new(AtomicBool::new(false)));
            cached.set(Some(Arc::clone(&flag)));
            flag
        })
        .unwrap_or_else(|_| Arc::new(AtomicBool::new(false)))
    }

    /// A number for the calling thread, given in the order threads first
    /// ask (0 for one being torn down, whose thread-locals are gone).
    pub(crate) fn thread_index() -> usize {
        // Relaxed: only the numbers' uniqueness matters, which the RMW gives.
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        thread_local! {
            static INDEX: usize = NEXT.fetch_add(1, Ordering::Relaxed);
        }
        INDEX.try_with(|index| *index).unwrap_or(0)
    }

    /// Spins, then yields, a few microseconds in all, until `done()`;
    /// returns whether it is.
    pub(crate) fn spin_until(done: impl Fn() -> bool) -> bool {
        let backoff = crossbeam_utils::Backoff::new();
        while !backoff.is_completed() {
            if done() {
                return true;
            }
            backoff.snooze();
        }
        done()
    }
}

#[cfg(loom)]
mod imp {
    pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering, fence};
    pub(crate) use loom::thread::{Thread, current as current_thread};

    /// loom's mutex behind parking_lot's API (`lock()` without poisoning).
    #[derive(Debug)]
    pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

    pub(crate) type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Self {
            Self(loom::sync::Mutex::new(value))
        }

        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            // A panic while holding the lock already fails the model.
            self.0.lock().unwrap()
        }
    }

    /// A new flag each time: a cached one would outlive loom's execution.
    pub(crate) fn grant_flag() -> super::Arc<AtomicBool> {
        super::Arc::new(AtomicBool::new(false))
    }

    /// loom has no clock and no `park_timeout`: wait for an unpark.
    pub(crate) fn park(_deadline: Option<std::time::Instant>) {
        loom::thread::park();
    }

    /// No spinning under loom: `Backoff` yields through std, which loom
    /// cannot see, and a spin changes no outcome, only how soon it is seen.
    pub(crate) fn spin_until(done: impl Fn() -> bool) -> bool {
        done()
    }

    /// A number for the calling thread, as outside loom, from loom's own
    /// statics and thread-locals (new in each execution), so that models
    /// see threads take different numbers.
    pub(crate) fn thread_index() -> usize {
        loom::lazy_static! {
            static ref NEXT: AtomicUsize = AtomicUsize::new(0);
        }
        loom::thread_local! {
            static INDEX: usize = NEXT.fetch_add(1, Ordering::Relaxed);
        }
        INDEX.with(|index| *index)
    }

    /// A fixed instant: no modelled path depends on it (see `deadline_passed`).
    pub(crate) fn now() -> std::time::Instant {
        use std::sync::OnceLock;
        static EPOCH: OnceLock<std::time::Instant> = OnceLock::new();
        *EPOCH.get_or_init(std::time::Instant::now)
    }
}

pub(crate) use imp::*;

/// `times` spin-loop hints: a pause of a few nanoseconds each. None under
/// loom, where a pause changes no outcome, only how soon it is seen.
#[inline]
pub(crate) fn pause(times: u32) {
    if !cfg!(loom) {
        for _ in 0..times {
            std::hint::spin_loop();
        }
    }
}

/// Whether `deadline` has passed. Always `false` under loom, which has no
/// clock: a model that wants a timeout drops the acquire instead, which runs
/// the same cancel path.
pub(crate) fn deadline_passed(deadline: Instant) -> bool {
    if cfg!(loom) { false } else { now() >= deadline }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::{Arc, Ordering, grant_flag, spin_until, thread_index};
    use std::cell::Cell;

    #[test]
    fn each_thread_keeps_a_number_of_its_own() {
        let mine = thread_index();
        assert_eq!(thread_index(), mine, "the same number at every call");
        let theirs = std::thread::spawn(thread_index).join().unwrap();
        assert_ne!(theirs, mine);
    }

    #[test]
    fn a_spin_looks_until_done_or_given_up() {
        assert!(spin_until(|| true));
        assert!(!spin_until(|| false));
        // Done at the third look: the spin sees it.
        let looks = Cell::new(0);
        assert!(spin_until(|| {
            looks.set(looks.get() + 1);
            looks.get() >= 3
        }));
        assert_eq!(looks.get(), 3);
    }

    #[test]
    fn a_grant_flag_is_reused_only_once_nothing_else_holds_it() {
        let first = grant_flag();
        assert!(!first.load(Ordering::Relaxed));
        first.store(true, Ordering::Relaxed);
        // A waker still holds the last one: a new flag, lowered.
        let held_by_waker = Arc::clone(&first);
        drop(first);
        let second = grant_flag();
        assert!(!Arc::ptr_eq(&second, &held_by_waker));
        assert!(!second.load(Ordering::Relaxed));
        assert!(
            held_by_waker.load(Ordering::Relaxed),
            "the old one untouched"
        );
        // Nothing else holds it once dropped: the same one, lowered.
        second.store(true, Ordering::Relaxed);
        let address = Arc::as_ptr(&second);
        drop(second);
        let third = grant_flag();
        assert_eq!(Arc::as_ptr(&third), address);
        assert!(!third.load(Ordering::Relaxed));
        // Each thread has its own.
        let other = std::thread::spawn(|| Arc::as_ptr(&grant_flag()) as usize)
            .join()
            .unwrap();
        assert_ne!(other, address as usize);
        drop(held_by_waker);
    }
}
