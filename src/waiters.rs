//! The FIFO queue of blocked and pending acquirers, kept under the
//! semaphore's lock.
//!
//! # Where a waiter lives
//!
//! Entries live in a slab of slots linked by index, so unlinking any entry is
//! O(1) without `unsafe`. A slot is owned by the acquirer that pushed it: it
//! stays put (queued, then done) until that acquirer collects the outcome or
//! cancels, and only then is it freed for reuse. Freed slots go on a free
//! list, so a queue that stays within its size allocates nothing.
//!
//! The slab is a row of chunks that double: chunk `c` holds `2^c` slots, so
//! `c` chunks hold `2^c - 1` and slot `i` lies in the chunk named by the
//! highest bit of `i + 1`. Growing adds a chunk and
//! never moves a slot, and the chunk is allocated by the acquirer that needs
//! it *outside* the lock (see `MultiSemaphore::enqueue`): the lock is never
//! held across an allocation or a copy of the table. The table holds at most
//! twice the slots in use at its peak, so a queued waiter costs at most two
//! slots plus its future.
//!
//! When the last slot in use is freed (the queue has drained and every
//! outcome is collected), the chunks beyond the first [`KEPT_CHUNKS`] are
//! retired: taken out under the lock, and freed by the lock's holder after it
//! unlocks (see [`QueueGuard`]). A peak's memory goes back once the queue
//! drains; the first 63 slots stay, so a queue that comes and goes within
//! them allocates nothing.
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
//!
//! # Waking in batches
//!
//! The notifiers a visit to the lock collects go in a [`WakeList`] of fixed
//! size on the stack, so a release allocates nothing however many it grants.
//! A visit stops granting when the list is full; the visitor wakes that batch
//! after unlocking, then visits again to go on serving (see
//! `MultiSemaphore::wake_and_serve`). Meanwhile `SLOW` stays set (the queue is
//! not empty), so no newcomer overtakes those still queued, and any other
//! visitor serves the queue from its head just the same.

use crate::sync::{Arc, AtomicBool, Mutex, MutexGuard, Ordering, Thread};
use std::any::Any;
use std::ops::{Deref, DerefMut};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::task::Waker;

/// The index that names no slot.
const NIL: u32 = u32::MAX;

/// Chunks kept when the queue drains: chunks 0 to 5 hold 63 slots.
const KEPT_CHUNKS: usize = 6;

/// Room for chunks: 31 of them hold `2^31 - 1` slots, indices below `NIL`;
/// a power of two, so that masking a chunk's number spares a bounds check.
const MAX_CHUNKS: usize = 32;

/// How to wake a waiter: a parked thread or an async task.
#[derive(Debug)]
pub(crate) enum Notify {
    Thread(Parked),
    Task(Waker),
}

/// A blocked thread, with the flag a grant raises so that the thread can
/// leave with its permits without taking the lock again (the thread's own,
/// reused from wait to wait: see `sync::grant_flag`).
#[derive(Debug, Clone)]
pub(crate) struct Parked {
    thread: Thread,
    granted: Arc<AtomicBool>,
}

impl Parked {
    pub(crate) fn current() -> Self {
        Self {
            thread: crate::sync::current_thread(),
            granted: crate::sync::grant_flag(),
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
        next_free: u32,
    },
    Queued {
        amounts: [u64; N],
        notify: Option<Notify>,
        prev: u32,
        next: u32,
    },
    Done(Outcome<N>),
    /// In a retired chunk's first slot: the next retired chunk, so that a
    /// whole row of them is handed out of the lock as one value (and freed
    /// when it is dropped).
    Retired {
        _next: Option<Chunk<N>>,
    },
}

/// A run of slots, allocated at once.
#[derive(Debug, Default)]
pub(crate) struct Chunk<const N: usize>(Box<[Slot<N>]>);

/// A handle to a pushed entry; only its owner holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ticket(u32);

#[derive(Debug)]
pub(crate) struct WaitQueue<const N: usize> {
    /// `chunks[..chunk_count]` are allocated; the rest are empty.
    chunks: [Chunk<N>; MAX_CHUNKS],
    chunk_count: usize,
    /// Slots from here to the end of the table have not been used since the
    /// table was last empty: they are free without being on the free list.
    fresh: u32,
    free: u32,
    /// Slots queued or done: when it falls to 0, the table is reset.
    used: u32,
    head: u32,
    tail: u32,
    len: usize,
    /// The next queued entry `fail_oversized` has to check, or `NIL`:
    /// moved past an entry when it is unlinked.
    check_at: u32,
    /// Chunks retired under the lock, to be freed after it is released.
    retired: Option<Chunk<N>>,
    /// What the counters' `SLOW` flag was last set to. Only the lock holder
    /// changes that flag, so this mirror lets it skip a read-modify-write of
    /// the hot word when nothing changes.
    pub(crate) slow: bool,
    /// Who waits for the semaphore to drain (`MultiSemaphore::drained`).
    pub(crate) drains: Drains,
}

/// The chunk and offset of slot `index`: chunk `c` holds indices
/// `2^c - 1 .. 2^(c+1) - 1`. Branch-free: it runs on every slot access.
#[inline]
fn locate(index: u32) -> (usize, usize) {
    // Cannot overflow: indices stay below `2^31 - 1`.
    let position = index + 1;
    let chunk = (u32::BITS - 1 - position.leading_zeros()) as usize;
    (chunk, (position - (1 << chunk)) as usize)
}

/// How many slots `count` chunks hold.
fn slots_in(count: usize) -> u32 {
    (1 << count) - 1
}

impl<const N: usize> WaitQueue<N> {
    pub(crate) fn new() -> Self {
        Self {
            chunks: Default::default(),
            chunk_count: 0,
            fresh: 0,
            free: NIL,
            used: 0,
            head: NIL,
            tail: NIL,
            len: 0,
            check_at: NIL,
            retired: None,
            slow: false,
            drains: Drains::default(),
        }
    }

    /// Queued entries (done ones not yet collected do not count).
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    fn slot(&self, index: u32) -> &Slot<N> {
        let (chunk, offset) = locate(index);
        // The mask changes nothing (chunks stay below 31) and spares a
        // bounds check.
        &self.chunks[chunk % MAX_CHUNKS].0[offset]
    }

    #[inline]
    fn slot_mut(&mut self, index: u32) -> &mut Slot<N> {
        let (chunk, offset) = locate(index);
        &mut self.chunks[chunk % MAX_CHUNKS].0[offset]
    }

    /// Whether `push` has a slot to use, or the table must grow first.
    pub(crate) fn has_room(&self) -> bool {
        self.free != NIL || self.fresh < slots_in(self.chunk_count)
    }

    /// The size of the chunk that would grow the table now.
    ///
    /// # Panics
    ///
    /// With `2^31 - 1` slots in use, an amount of memory no process reaches.
    pub(crate) fn next_chunk_len(&self) -> usize {
        assert!(
            self.chunk_count < MAX_CHUNKS - 1,
            "MultiSemaphore: more than 2^31 - 1 waiters"
        );
        1 << self.chunk_count
    }

    /// A chunk of `len` free slots: made by the caller without the lock.
    pub(crate) fn new_chunk(len: usize) -> Chunk<N> {
        Chunk((0..len).map(|_| Slot::Free { next_free: NIL }).collect())
    }

    /// Grows the table by `chunk` if it is still full and `chunk` is the
    /// size it needs; otherwise (someone grew or emptied it meanwhile) gives
    /// `chunk` back, to be dropped outside the lock.
    pub(crate) fn add_chunk(&mut self, chunk: Chunk<N>) -> Option<Chunk<N>> {
        if self.has_room() || chunk.0.len() != self.next_chunk_len() {
            return Some(chunk);
        }
        self.chunks[self.chunk_count] = chunk;
        self.chunk_count += 1;
        None
    }

    /// Appends a request at the back. Call only when `has_room()`.
    pub(crate) fn push(&mut self, amounts: [u64; N], notify: Notify) -> Ticket {
        let (index, from_free_list) = if self.free != NIL {
            (self.free, true)
        } else {
            assert!(self.has_room(), "push without room");
            self.fresh += 1;
            (self.fresh - 1, false)
        };
        let queued = Slot::Queued {
            amounts,
            notify: Some(notify),
            prev: self.tail,
            next: NIL,
        };
        let old = std::mem::replace(self.slot_mut(index), queued);
        if from_free_list {
            let Slot::Free { next_free } = old else {
                unreachable!("the free list holds free slots only")
            };
            self.free = next_free;
        }
        match self.tail {
            NIL => self.head = index,
            tail => self.set_next(tail, index),
        }
        self.tail = index;
        self.len += 1;
        self.used += 1;
        Ticket(index)
    }

    /// The oldest queued request.
    pub(crate) fn front(&self) -> Option<(Ticket, [u64; N])> {
        self.entry(self.head)
    }

    /// The queued requests behind the oldest, oldest first.
    pub(crate) fn behind_front(&self) -> impl Iterator<Item = [u64; N]> + '_ {
        std::iter::successors(self.front(), |&(ticket, _)| {
            self.entry(self.next_of(ticket))
        })
        .skip(1)
        .map(|(_, amounts)| amounts)
    }

    /// The entry queued after `ticket` (which must be queued), or `NIL`.
    fn next_of(&self, ticket: Ticket) -> u32 {
        match self.slot(ticket.0) {
            &Slot::Queued { next, .. } => next,
            _ => unreachable!("only queued slots are linked"),
        }
    }

    /// Restarts the walk of `fail_oversized` at the head.
    pub(crate) fn start_check(&mut self) {
        self.check_at = self.head;
    }

    /// The entry the walk of `fail_oversized` checks next.
    pub(crate) fn checking(&self) -> Option<(Ticket, [u64; N])> {
        self.entry(self.check_at)
    }

    /// The walk moves past `ticket` (which must be queued).
    pub(crate) fn checked(&mut self, ticket: Ticket) {
        self.check_at = self.next_of(ticket);
    }

    fn entry(&self, index: u32) -> Option<(Ticket, [u64; N])> {
        match index {
            NIL => None,
            _ => match self.slot(index) {
                Slot::Queued { amounts, .. } => Some((Ticket(index), *amounts)),
                _ => unreachable!("only queued slots are linked"),
            },
        }
    }

    /// Ends a queued request: unlinks it and records `outcome` for its owner.
    /// Returns who to wake once the lock is released.
    ///
    /// A parked thread that is granted its whole request learns it from its
    /// flag instead: its slot is freed at once, and it leaves without taking
    /// the lock again. One granted less (clamped) collects the amounts from
    /// its slot.
    pub(crate) fn complete(&mut self, ticket: Ticket, outcome: Outcome<N>) -> Option<Notify> {
        let (notify, requested) = self.unlink(ticket.0, Slot::Done(outcome));
        if let (Some(Notify::Thread(parked)), Outcome::Granted(granted)) = (&notify, outcome) {
            if granted == requested {
                // Release: pairs with the Acquire in `Parked::granted`.
                parked.granted.store(true, Ordering::Release);
                self.release_slot(ticket.0);
            }
        }
        notify
    }

    /// The owner collects its outcome: `None` while still queued; otherwise
    /// the slot is freed.
    pub(crate) fn collect(&mut self, ticket: Ticket) -> Option<Outcome<N>> {
        let free = Slot::Free {
            next_free: self.free,
        };
        let slot = self.slot_mut(ticket.0);
        match *slot {
            Slot::Done(outcome) => {
                *slot = free;
                self.freed(ticket.0);
                Some(outcome)
            }
            Slot::Queued { .. } => None,
            _ => unreachable!("a ticket outlived its slot"),
        }
    }

    /// The owner gives up: a queued request is unlinked (`Ok` with its
    /// notifier, to drop outside the lock), a done one yields its outcome.
    /// The slot is freed either way.
    pub(crate) fn cancel(&mut self, ticket: Ticket) -> Result<Option<Notify>, Outcome<N>> {
        let free = Slot::Free {
            next_free: self.free,
        };
        let result = match *self.slot(ticket.0) {
            Slot::Done(outcome) => {
                *self.slot_mut(ticket.0) = free;
                Err(outcome)
            }
            Slot::Queued { .. } => Ok(self.unlink(ticket.0, free).0),
            _ => unreachable!("a ticket outlived its slot"),
        };
        self.freed(ticket.0);
        result
    }

    /// Replaces a queued request's notifier; returns the old one (to drop
    /// outside the lock), or gives the new one back if the request is done.
    pub(crate) fn renotify(&mut self, ticket: Ticket, new: Notify) -> Option<Notify> {
        match self.slot_mut(ticket.0) {
            Slot::Queued { notify, .. } => notify.replace(new),
            _ => Some(new),
        }
    }

    /// Whether the queued request's notifier is a waker that wakes `waker`'s task.
    pub(crate) fn will_wake(&self, ticket: Ticket, waker: &Waker) -> bool {
        matches!(
            self.slot(ticket.0),
            Slot::Queued { notify: Some(Notify::Task(current)), .. } if current.will_wake(waker)
        )
    }

    /// Chunks retired since the last call: the caller drops them once it has
    /// released the lock.
    fn take_retired(&mut self) -> Option<Chunk<N>> {
        self.retired.take()
    }

    /// Unlinks queued slot `index`, leaving `then` in its place; returns
    /// its notifier and request. One lookup of the slot itself, on a hot
    /// path.
    fn unlink(&mut self, index: u32, then: Slot<N>) -> (Option<Notify>, [u64; N]) {
        let Slot::Queued {
            amounts,
            notify,
            prev,
            next,
        } = std::mem::replace(self.slot_mut(index), then)
        else {
            unreachable!("only queued slots are linked")
        };
        match prev {
            NIL => self.head = next,
            prev => self.set_next(prev, next),
        }
        match next {
            NIL => self.tail = prev,
            next => self.set_prev(next, prev),
        }
        if self.check_at == index {
            self.check_at = next;
        }
        self.len -= 1;
        (notify, amounts)
    }

    fn release_slot(&mut self, index: u32) {
        *self.slot_mut(index) = Slot::Free {
            next_free: self.free,
        };
        self.freed(index);
    }

    /// Slot `index` was just made free, linked to the free list's old head.
    fn freed(&mut self, index: u32) {
        self.free = index;
        self.used -= 1;
        if self.used == 0 {
            self.reset();
        }
    }

    /// Every slot is free: forget the free list (all slots count as fresh
    /// again, so the next pushes use the lowest ones) and retire the chunks
    /// beyond the kept ones, chained through their first slots.
    fn reset(&mut self) {
        self.free = NIL;
        self.fresh = 0;
        let mut chain = self.retired.take();
        while self.chunk_count > KEPT_CHUNKS {
            self.chunk_count -= 1;
            let mut chunk = std::mem::take(&mut self.chunks[self.chunk_count]);
            chunk.0[0] = Slot::Retired { _next: chain };
            chain = Some(chunk);
        }
        self.retired = chain;
    }

    fn set_next(&mut self, index: u32, to: u32) {
        if let Slot::Queued { next, .. } = self.slot_mut(index) {
            *next = to;
        }
    }

    fn set_prev(&mut self, index: u32, to: u32) {
        if let Slot::Queued { prev, .. } = self.slot_mut(index) {
            *prev = to;
        }
    }
}

/// The queue, locked. On drop it releases the lock and only then frees the
/// chunks retired meanwhile, so that no visit holds the lock across a free.
pub(crate) struct QueueGuard<'a, const N: usize> {
    /// `Some` until dropped.
    guard: Option<MutexGuard<'a, WaitQueue<N>>>,
}

impl<'a, const N: usize> QueueGuard<'a, N> {
    pub(crate) fn lock(queue: &'a Mutex<WaitQueue<N>>) -> Self {
        Self {
            guard: Some(queue.lock()),
        }
    }
}

impl<const N: usize> Deref for QueueGuard<'_, N> {
    type Target = WaitQueue<N>;

    fn deref(&self) -> &WaitQueue<N> {
        self.guard.as_ref().expect("locked until dropped")
    }
}

impl<const N: usize> DerefMut for QueueGuard<'_, N> {
    fn deref_mut(&mut self) -> &mut WaitQueue<N> {
        self.guard.as_mut().expect("locked until dropped")
    }
}

impl<const N: usize> Drop for QueueGuard<'_, N> {
    fn drop(&mut self) {
        let retired = self.guard.as_mut().and_then(|queue| queue.take_retired());
        drop(self.guard.take());
        drop(retired);
    }
}

/// Those who wait for the semaphore to drain (closed, nothing in flight):
/// each under an id its future keeps, all woken once it has drained. Apart
/// from the queue: they take nothing, and the condition they wait for,
/// once true, stays true (nothing is granted after `close`). A `Vec`
/// that grows under the lock: one entry per waiting `drained` future or
/// thread, at shutdown, never on the paths that acquire.
#[derive(Debug, Default)]
pub(crate) struct Drains {
    waiting: Vec<(u64, Notify)>,
    next_id: u64,
    /// A look under the lock found the semaphore drained: it stays so (no
    /// grant after `close`), whatever a later look reads while a take that
    /// began before the close holds part of the tiered reserve for a moment.
    pub(crate) seen: bool,
}

impl Drains {
    pub(crate) fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// Waits under `id` (a new one where `None`), to be woken by `notify`.
    /// Returns the notifier it replaces, for the caller to drop once it has
    /// released the lock (dropping a waker may run user code).
    pub(crate) fn register(&mut self, id: &mut Option<u64>, notify: Notify) -> Option<Notify> {
        if let Some(id) = *id {
            if let Some((_, old)) = self.waiting.iter_mut().find(|(at, _)| *at == id) {
                return Some(std::mem::replace(old, notify));
            }
        }
        let new = *id.get_or_insert_with(|| {
            self.next_id += 1;
            self.next_id
        });
        self.waiting.push((new, notify));
        None
    }

    /// Stops waiting under `id`; returns its notifier, to drop once the lock
    /// is released.
    pub(crate) fn remove(&mut self, id: u64) -> Option<Notify> {
        let at = self.waiting.iter().position(|(at, _)| *at == id)?;
        Some(self.waiting.swap_remove(at).1)
    }

    /// One waiter to wake, now that the semaphore has drained.
    pub(crate) fn pop(&mut self) -> Option<Notify> {
        self.waiting.pop().map(|(_, notify)| notify)
    }
}

/// How many notifiers one visit to the lock collects at most.
const WAKE_BATCH: usize = 8;

/// Notifiers collected under the lock, woken after it is released: a batch
/// of fixed size, so collecting them never allocates under the lock. A visit
/// that fills it stops serving; its caller wakes the batch and visits again.
#[derive(Debug, Default)]
pub(crate) struct WakeList {
    batch: [Option<Notify>; WAKE_BATCH],
    len: usize,
    /// The first panic of a waker, raised once everyone is woken.
    first_panic: Option<Box<dyn Any + Send>>,
}

impl WakeList {
    #[inline]
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Whether the batch is full: a visit must stop granting.
    pub(crate) fn is_full(&self) -> bool {
        self.len == WAKE_BATCH
    }

    /// Adds a notifier. Call only when not `is_full()`: a visit checks
    /// before it grants.
    pub(crate) fn push(&mut self, notify: Option<Notify>) {
        let Some(notify) = notify else { return };
        self.batch[self.len] = Some(notify);
        self.len += 1;
    }

    /// Wakes the batch and empties it. Call only with the lock released.
    ///
    /// A waker may panic. Every waiter in the batch already holds its
    /// outcome (its permits, or `Closed`), so each must still be woken: a
    /// panic is caught, kept if it is the first, and the rest are woken.
    pub(crate) fn wake_batch(&mut self) {
        for notify in self.batch[..self.len].iter_mut().filter_map(Option::take) {
            if let Err(panic) = catch_unwind(AssertUnwindSafe(|| notify.wake())) {
                self.first_panic.get_or_insert(panic);
            }
        }
        self.len = 0;
    }

    /// Wakes the rest, then re-raises the first panic of a waker, to the
    /// caller (the release, resize or close that woke them). If this thread
    /// is already unwinding (a permit dropped during a panic), the waker's
    /// panic is swallowed instead: raising it there would abort the process,
    /// and the panic already under way reports the failure.
    pub(crate) fn finish(&mut self) {
        self.wake_batch();
        if let Some(panic) = self.first_panic.take() {
            if !std::thread::panicking() {
                resume_unwind(panic);
            }
        }
    }

    /// Wakes the rest, and discards the first panic of a waker: for a
    /// caller that holds a result of its own (its permits taken, or its
    /// place in the queue) that unwinding would lose. The panic hook has
    /// reported the panic when it happened.
    pub(crate) fn finish_quietly(&mut self) {
        self.wake_batch();
        self.first_panic = None;
    }
}

/// Drops what holds a waker (a clone the semaphore did not use, a cancelled
/// waiter's) outside the lock, catching a panic of the waker's drop: the
/// caller holds a result that unwinding would lose. The panic hook has
/// reported the panic when it happened.
pub(crate) fn drop_quietly<T>(value: T) {
    // Nothing is observed after the panic but the value's absence.
    let _ = catch_unwind(AssertUnwindSafe(move || drop(value)));
}
