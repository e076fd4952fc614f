//! The FIFO queue of blocked and pending acquirers, kept under the
//! semaphore's lock.
//!
//! Entries live in a slab (a `Vec` of slots linked by index), so queueing
//! allocates only when the queue grows past its previous peak, and unlinking
//! any entry is O(1) without `unsafe`. A slot is owned by the acquirer that
//! pushed it: it stays put (queued, then done) until that acquirer collects
//! the outcome or cancels, and only then is it freed for reuse.
//!
//! # A waiter's life
//!
//! ```text
//!            push                complete(Granted | Closed | ExceedsCapacity)
//!   (none) -------> Queued ---------------------------------------> Done
//!                     |                                               |
//!                     | cancel: unlinked, freed,                      | collect / cancel:
//!                     v         nothing was taken                     v  freed, the acquirer
//!                  (free)                                          (free)  gets the outcome
//! ```
//!
//! Every arrow runs under the lock, so grant, timeout, drop and close are
//! serialized: a waiter that cancels finds either `Queued` (it took nothing)
//! or `Done(Granted)` (it holds the permits and must keep or return them).
//! The notifier is returned by `complete` so the caller wakes it after
//! unlocking: a waker never runs under the lock.

use crate::sync::{Arc, AtomicBool, Ordering, Thread};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::task::Waker;

const NIL: usize = usize::MAX;

/// How to wake a waiter: a parked thread or an async task.
#[derive(Debug)]
pub(crate) enum Notify {
    Thread(Parked),
    Task(Waker),
}

/// A blocked thread, with the flag a grant raises so that the thread can
/// leave with its permits without taking the lock again.
#[derive(Debug, Clone)]
pub(crate) struct Parked {
    thread: Thread,
    granted: Arc<AtomicBool>,
}

impl Parked {
    pub(crate) fn current() -> Self {
        Self {
            thread: crate::sync::current_thread(),
            granted: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Whether the request was granted. Once `true`, its slot is gone: the
    /// owner must not touch its ticket again.
    pub(crate) fn granted(&self) -> bool {
        // Acquire: pairs with the Release in `complete`, so the permits taken
        // on our behalf (and what their last holder wrote) are ours to see.
        self.granted.load(Ordering::Acquire)
    }
}

impl Notify {
    pub(crate) fn wake(self) {
        match self {
            Self::Thread(parked) => parked.thread.unpark(),
            Self::Task(waker) => waker.wake(),
        }
    }
}

/// How a queued request ended, decided under the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome<const N: usize> {
    /// These permits were taken on the waiter's behalf: it holds them now.
    /// They are the request, or less where the semaphore clamps requests
    /// above a capacity (to that capacity at the time of the grant).
    Granted([u64; N]),
    Closed,
    /// `set_capacity` shrank dimension `dim` below the request.
    ExceedsCapacity {
        dim: usize,
        capacity: u64,
    },
}

#[derive(Debug)]
enum Slot<const N: usize> {
    Free {
        next_free: usize,
    },
    Queued {
        amounts: [u64; N],
        notify: Option<Notify>,
        prev: usize,
        next: usize,
    },
    Done(Outcome<N>),
}

/// A handle to a pushed entry; only its owner holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ticket(usize);

#[derive(Debug)]
pub(crate) struct WaitQueue<const N: usize> {
    slots: Vec<Slot<N>>,
    head: usize,
    tail: usize,
    free: usize,
    len: usize,
    /// What the counters' `SLOW` flag was last set to. Only the lock holder
    /// changes that flag, so this mirror lets it skip a read-modify-write of
    /// the hot word when nothing changes.
    pub(crate) slow: bool,
}

impl<const N: usize> WaitQueue<N> {
    pub(crate) const fn new() -> Self {
        Self {
            slots: Vec::new(),
            head: NIL,
            tail: NIL,
            free: NIL,
            len: 0,
            slow: false,
        }
    }

    /// Queued entries (done ones not yet collected do not count).
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends a request at the back.
    pub(crate) fn push(&mut self, amounts: [u64; N], notify: Notify) -> Ticket {
        let slot = Slot::Queued {
            amounts,
            notify: Some(notify),
            prev: self.tail,
            next: NIL,
        };
        let index = if self.free == NIL {
            self.slots.push(slot);
            self.slots.len() - 1
        } else {
            let index = self.free;
            let Slot::Free { next_free } = self.slots[index] else {
                unreachable!("the free list holds free slots only")
            };
            self.free = next_free;
            self.slots[index] = slot;
            index
        };
        match self.tail {
            NIL => self.head = index,
            tail => self.set_next(tail, index),
        }
        self.tail = index;
        self.len += 1;
        Ticket(index)
    }

    /// The oldest queued request.
    pub(crate) fn front(&self) -> Option<(Ticket, [u64; N])> {
        match self.slots.get(self.head) {
            Some(Slot::Queued { amounts, .. }) => Some((Ticket(self.head), *amounts)),
            _ => None,
        }
    }

    /// Every queued request, oldest first.
    pub(crate) fn queued(&self) -> impl Iterator<Item = (Ticket, [u64; N])> + '_ {
        let mut at = self.head;
        std::iter::from_fn(move || match self.slots.get(at) {
            Some(&Slot::Queued { amounts, next, .. }) => {
                let item = (Ticket(at), amounts);
                at = next;
                Some(item)
            }
            _ => None,
        })
    }

    /// Ends a queued request: unlinks it and records `outcome` for its owner.
    /// Returns who to wake once the lock is released.
    ///
    /// A parked thread that is granted its whole request learns it from its
    /// flag instead: its slot is freed at once, and it leaves without taking
    /// the lock again. One granted less (clamped) collects the amounts from
    /// its slot.
    pub(crate) fn complete(&mut self, ticket: Ticket, outcome: Outcome<N>) -> Option<Notify> {
        let requested = match self.slots[ticket.0] {
            Slot::Queued { amounts, .. } => amounts,
            _ => unreachable!("only queued requests complete"),
        };
        let notify = self.unlink(ticket.0);
        match (&notify, outcome) {
            (Some(Notify::Thread(parked)), Outcome::Granted(granted)) if granted == requested => {
                // Release: pairs with the Acquire in `Parked::granted`.
                parked.granted.store(true, Ordering::Release);
                self.release_slot(ticket.0);
            }
            _ => self.slots[ticket.0] = Slot::Done(outcome),
        }
        notify
    }

    /// The owner collects its outcome: `None` while still queued; otherwise
    /// the slot is freed.
    pub(crate) fn collect(&mut self, ticket: Ticket) -> Option<Outcome<N>> {
        match self.slots[ticket.0] {
            Slot::Done(outcome) => {
                self.release_slot(ticket.0);
                Some(outcome)
            }
            Slot::Queued { .. } => None,
            Slot::Free { .. } => unreachable!("a ticket outlived its slot"),
        }
    }

    /// The owner gives up: a queued request is unlinked (`Ok` with its
    /// notifier, to drop outside the lock), a done one yields its outcome.
    /// The slot is freed either way.
    pub(crate) fn cancel(&mut self, ticket: Ticket) -> Result<Option<Notify>, Outcome<N>> {
        let result = match self.slots[ticket.0] {
            Slot::Done(outcome) => Err(outcome),
            Slot::Queued { .. } => Ok(self.unlink(ticket.0)),
            Slot::Free { .. } => unreachable!("a ticket outlived its slot"),
        };
        self.release_slot(ticket.0);
        result
    }

    /// Replaces a queued request's notifier; returns the old one (to drop
    /// outside the lock), or gives the new one back if the request is done.
    pub(crate) fn renotify(&mut self, ticket: Ticket, new: Notify) -> Option<Notify> {
        match &mut self.slots[ticket.0] {
            Slot::Queued { notify, .. } => notify.replace(new),
            _ => Some(new),
        }
    }

    /// Whether the queued request's notifier is a waker that wakes `waker`'s task.
    pub(crate) fn will_wake(&self, ticket: Ticket, waker: &Waker) -> bool {
        matches!(
            &self.slots[ticket.0],
            Slot::Queued { notify: Some(Notify::Task(current)), .. } if current.will_wake(waker)
        )
    }

    fn unlink(&mut self, index: usize) -> Option<Notify> {
        let Slot::Queued {
            notify, prev, next, ..
        } = &mut self.slots[index]
        else {
            unreachable!("only queued slots are linked")
        };
        let (prev, next, notify) = (*prev, *next, notify.take());
        match prev {
            NIL => self.head = next,
            prev => self.set_next(prev, next),
        }
        match next {
            NIL => self.tail = prev,
            next => self.set_prev(next, prev),
        }
        self.len -= 1;
        notify
    }

    fn release_slot(&mut self, index: usize) {
        self.slots[index] = Slot::Free {
            next_free: self.free,
        };
        self.free = index;
    }

    fn set_next(&mut self, index: usize, to: usize) {
        if let Slot::Queued { next, .. } = &mut self.slots[index] {
            *next = to;
        }
    }

    fn set_prev(&mut self, index: usize, to: usize) {
        if let Slot::Queued { prev, .. } = &mut self.slots[index] {
            *prev = to;
        }
    }
}

/// Notifiers collected under the lock, woken after it is released. The
/// first few are kept inline: a release that wakes a waiter or two (the usual
/// case) allocates nothing.
#[derive(Debug, Default)]
pub(crate) struct WakeList {
    inline: [Option<Notify>; 4],
    more: Vec<Notify>,
}

impl WakeList {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn push(&mut self, notify: Option<Notify>) {
        let Some(notify) = notify else { return };
        match self.inline.iter_mut().find(|slot| slot.is_none()) {
            Some(slot) => *slot = Some(notify),
            None => self.more.push(notify),
        }
    }

    /// Wakes everyone. Call only with the lock released.
    ///
    /// A waker may panic. Every waiter on the list already holds its outcome
    /// (its permits, or `Closed`), so each must still be woken: a panic is
    /// caught, the rest are woken, and then the first panic is re-raised to
    /// the caller (the release, resize or close that woke them). If this
    /// thread is already unwinding (a permit dropped during a panic), the
    /// waker's panic is swallowed instead: raising it there would abort the
    /// process, and the panic already under way reports the failure.
    pub(crate) fn wake_all(self) {
        let mut first_panic = None;
        for notify in self.inline.into_iter().flatten().chain(self.more) {
            if let Err(panic) = catch_unwind(AssertUnwindSafe(|| notify.wake())) {
                first_panic.get_or_insert(panic);
            }
        }
        if let Some(panic) = first_panic {
            if !std::thread::panicking() {
                resume_unwind(panic);
            }
        }
    }
}
