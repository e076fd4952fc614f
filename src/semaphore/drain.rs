//! Waiting for the semaphore to drain: closed, and every permit back.
//!
//! # How a drain waiter is woken
//!
//! A waiter registers its notifier under the lock, apart from the queue
//! (`WaitQueue::drains`): it takes nothing and holds no one back. What it
//! waits for, closed with no permit out, stays true once true (nothing
//! is granted after `close`), so it is woken once and for all. The lock
//! holder's count of what is in flight is not monotone though: in the
//! tiered layout a take that began before `close` holds part of the
//! reserve for a moment before its commit fails on `CLOSED`, and is
//! counted meanwhile. So the first look that finds it drained is
//! remembered (`Drains::seen`), and later looks answer from it.
//!
//! While the semaphore is closed and someone waits to drain, `SLOW` stays
//! set (`publish`), so every permit that comes back visits the lock, and
//! every visit looks (`serve_drains`). The one that finds nothing in
//! flight wakes them. `SLOW` is set *before* a visitor reads what is in
//! flight, as a queueing acquirer does before it looks at the counters: a
//! return either landed before, and is counted by that read, or comes to
//! the lock after it. Before `close` a waiter is registered and nothing
//! else: the close's own visit sets `SLOW` and looks. So the lock-free
//! paths pay nothing until a closed semaphore has someone waiting to drain.

use super::MultiSemaphore;
use crate::sync;
use crate::waiters::{Notify, Parked, WaitQueue, WakeList};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

impl<const N: usize> MultiSemaphore<N> {
    /// Waits until the semaphore is [closed](Self::close) and every permit
    /// has come back: what a producer's shutdown waits for, having stopped
    /// admitting. Before `close` it waits for `close` too.
    ///
    /// Nothing is granted after `close`, so once drained the semaphore
    /// stays drained: a resize or a permit's `forget` changes nothing here.
    /// ([`in_flight`](Self::in_flight) is a snapshot: a `try_acquire` that
    /// began before `close` and fails on it may show there for a moment.)
    /// A grant that a future or thread has not collected yet is in flight
    /// until it is collected and its permit dropped (a granted future that
    /// is dropped instead gives it back). A permit leaked with
    /// `std::mem::forget` never comes back: give the wait a deadline, with
    /// [`drained_blocking_timeout`](Self::drained_blocking_timeout) or a
    /// runtime's timeout around this future.
    ///
    /// The future takes nothing and holds no one back; it can be dropped
    /// at any point. Waiting costs the semaphore nothing on its lock-free
    /// paths until it is closed; from then on, each permit that comes back
    /// looks under the internal lock whether it was the last.
    ///
    /// ```
    /// use multisem::MultiSemaphore;
    /// use std::{sync::Arc, thread, time::Duration};
    ///
    /// let sem = Arc::new(MultiSemaphore::new([4, 1000]));
    /// let in_flight = sem.try_acquire_owned([1, 300]).unwrap();
    /// let sender = thread::spawn(move || {
    ///     thread::sleep(Duration::from_millis(10)); // the broker answers
    ///     drop(in_flight);
    /// });
    /// sem.close(); // stop admitting
    /// futures_executor::block_on(sem.drained()); // wait for what is in flight
    /// assert_eq!(sem.in_flight(), [0, 0]);
    /// # sender.join().unwrap();
    /// ```
    pub fn drained(&self) -> Drained<'_, N> {
        Drained {
            sem: self,
            id: None,
        }
    }

    /// [`drained`](Self::drained), blocking the thread.
    ///
    /// ```
    /// use multisem::MultiSemaphore;
    ///
    /// let sem = MultiSemaphore::new([4, 1000]);
    /// let permit = sem.try_acquire([1, 300]).unwrap();
    /// sem.close();
    /// drop(permit);
    /// sem.drained_blocking();
    /// ```
    pub fn drained_blocking(&self) {
        let drained = self.wait_drained(None);
        debug_assert!(drained, "no deadline to pass");
    }

    /// [`drained`](Self::drained), blocking the thread for at most
    /// `timeout`: whether it drained.
    ///
    /// ```
    /// use multisem::MultiSemaphore;
    /// use std::time::Duration;
    ///
    /// let sem = MultiSemaphore::new([4, 1000]);
    /// let permit = sem.try_acquire([1, 300]).unwrap();
    /// sem.close();
    /// assert!(!sem.drained_blocking_timeout(Duration::from_millis(1))); // still out
    /// drop(permit);
    /// assert!(sem.drained_blocking_timeout(Duration::ZERO));
    /// ```
    pub fn drained_blocking_timeout(&self, timeout: Duration) -> bool {
        self.wait_drained(sync::now().checked_add(timeout))
    }

    /// [`drained`](Self::drained), blocking the thread until `deadline` at
    /// most: whether it drained. A deadline already past makes it a look.
    pub fn drained_blocking_deadline(&self, deadline: Instant) -> bool {
        self.wait_drained(Some(deadline))
    }

    /// Blocks until drained, or until `deadline`: whether it drained.
    fn wait_drained(&self, deadline: Option<Instant>) -> bool {
        let mut id = None;
        let parked = Parked::current();
        loop {
            if self.poll_drained(&mut id, Notify::Thread(parked.clone())) {
                return true;
            }
            if deadline.is_some_and(sync::deadline_passed) {
                // Unless it drained just now, and so is no longer waiting.
                return self.stop_draining(id);
            }
            sync::park(deadline);
        }
    }

    /// Whether the semaphore has drained; if not, waits under `id` to be
    /// woken through `notify` (made before the lock is taken, and dropped
    /// after it is released, as in `enqueue`).
    fn poll_drained(&self, id: &mut Option<u64>, notify: Notify) -> bool {
        let mut queue = self.lock();
        if self.is_closed() {
            // Before the look (see the module docs).
            self.set_slow(&mut queue, true);
        }
        let drained = self.has_drained(&mut queue);
        let unused = if drained {
            // Woken, or about to be by the visit that found it drained.
            let left = id.take().and_then(|id| queue.drains.remove(id));
            [left, Some(notify)]
        } else {
            [queue.drains.register(id, notify), None]
        };
        // `SLOW` stays set while closed with someone waiting (or queued, or
        // in debt), else it is cleared.
        self.publish(&mut queue);
        drop(queue);
        drop(unused);
        drained
    }

    /// Stops waiting under `id`: whether the semaphore has drained
    /// meanwhile.
    fn stop_draining(&self, id: Option<u64>) -> bool {
        let Some(id) = id else {
            return false;
        };
        let mut queue = self.lock();
        let left = queue.drains.remove(id);
        self.publish(&mut queue);
        let drained = self.has_drained(&mut queue);
        drop(queue);
        crate::waiters::drop_quietly(left);
        drained
    }

    /// Closed with nothing in flight. Under the lock, with `SLOW` set
    /// before, where the answer is to be waited on (see the module docs).
    ///
    /// Sticky: once a look finds it drained, it stays so. In the tiered
    /// layout a take that began before `close` may hold part of the reserve
    /// for a moment before its commit fails on `CLOSED`; `in_flight_locked`
    /// counts that part, though no permit holds it.
    fn has_drained(&self, queue: &mut WaitQueue<N>) -> bool {
        if !queue.drains.seen {
            queue.drains.seen = self.is_closed() && self.in_flight_locked() == [0; N];
        }
        queue.drains.seen
    }

    /// Part of every visit to the lock (`settle_and_serve`): once closed,
    /// with someone waiting to drain, sets `SLOW` for good and wakes them
    /// if nothing is in flight, until the wake batch is full.
    pub(super) fn serve_drains(&self, queue: &mut WaitQueue<N>, wake: &mut WakeList) {
        if queue.drains.is_empty() || !self.is_closed() {
            return;
        }
        // Before the look: a return from now on visits after us.
        self.set_slow(queue, true);
        if !self.has_drained(queue) {
            return;
        }
        while !wake.is_full() {
            match queue.drains.pop() {
                Some(notify) => wake.push(Some(notify)),
                None => break,
            }
        }
    }
}

/// The future of [`MultiSemaphore::drained`]: ready once the semaphore is
/// closed and every permit has come back.
///
/// # Cancel safety
///
/// It takes nothing: dropped at any point, it only stops waiting.
#[must_use = "futures do nothing unless polled"]
pub struct Drained<'a, const N: usize> {
    sem: &'a MultiSemaphore<N>,
    /// Its registration among the drain waiters, once polled.
    id: Option<u64>,
}

impl<const N: usize> Future for Drained<'_, N> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        let notify = Notify::Task(cx.waker().clone());
        // Drained, it is no longer registered (`id` is `None` again).
        if this.sem.poll_drained(&mut this.id, notify) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl<const N: usize> Drop for Drained<'_, N> {
    fn drop(&mut self) {
        if self.id.is_some() {
            self.sem.stop_draining(self.id.take());
        }
    }
}

impl<const N: usize> fmt::Debug for Drained<'_, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Drained")
            .field("waiting", &self.id.is_some())
            .finish_non_exhaustive()
    }
}
