//! An exporter that records on a timer of its own: a thread.

use super::Exporter;
use std::fmt;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// An [`Exporter`] recording every interval on a thread of its own; see
/// [`Exporter::record_every`]. Dropping it stops the thread (after one last
/// record) and waits for it, blocking the dropping thread meanwhile;
/// [`stop`](Self::stop) does the same and gives the exporter back.
///
/// Keep it for as long as recording should go on: `let _ =
/// exporter.record_every(..)` drops it at once, which stops the recording
/// after two records (`#[must_use]` does not warn of `let _`).
#[must_use = "dropping a Recording stops it at once"]
pub struct Recording<const N: usize> {
    /// Dropped to stop the thread: its wait for the next tick then ends.
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<Exporter<N>>>,
}

impl<const N: usize> Exporter<N> {
    /// Records at once, then every `interval`, on a thread of its own, until
    /// the [`Recording`] it returns is dropped or
    /// [stopped](Recording::stop); then once more, so that what happened
    /// last is published too. For a program without a runtime's timer to
    /// call [`record`](Self::record) from; with one, a task does the same
    /// without a thread. The first record is the thread's: it may come just
    /// after this returns.
    ///
    /// The thread records to the global recorder
    /// ([`metrics::set_global_recorder`]): a recorder installed for the
    /// calling thread only is not the thread's. Ticks keep to the
    /// interval's schedule; after a record that overran a tick, the
    /// schedule starts afresh rather than catching up.
    ///
    /// ```
    /// use multisem::MultiSemaphore;
    /// use multisem::metrics::Exporter;
    /// use std::{sync::Arc, time::Duration};
    ///
    /// let sem = Arc::new(MultiSemaphore::new([1024, 100 << 20]));
    /// let exporter = Exporter::named(Arc::clone(&sem), "producer");
    /// exporter.describe();
    /// let recording = exporter.record_every(Duration::from_secs(10));
    /// // ... the producer runs ...
    /// let exporter = recording.stop(); // one last record, and the thread ends
    /// # let _ = exporter;
    /// ```
    ///
    /// # Panics
    ///
    /// If `interval` is zero (the thread would never rest), or if the
    /// operating system cannot start a thread. (The thread is named
    /// `msem-` and the exporter's name, cut to what Linux shows: 15 bytes.)
    #[track_caller]
    pub fn record_every(self, interval: Duration) -> Recording<N> {
        assert!(
            !interval.is_zero(),
            "Exporter::record_every: an interval of zero would record without rest"
        );
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = thread::Builder::new()
            .name(thread_name(self.name))
            .spawn(move || {
                let mut tick = Some(Instant::now());
                loop {
                    self.record();
                    let now = Instant::now();
                    tick = next_tick(tick, interval, now);
                    let stop = match tick {
                        Some(at) => stopped.recv_timeout(at.saturating_duration_since(now)),
                        // Past the clock's range: no tick until the stop.
                        None => stopped.recv().map_err(|_| RecvTimeoutError::Disconnected),
                    };
                    match stop {
                        Err(RecvTimeoutError::Timeout) => {}
                        // The `Recording` was dropped or stopped.
                        Ok(()) | Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
                self.record();
                self
            })
            .expect("Exporter::record_every: the operating system could not start a thread");
        Recording {
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

/// `msem-` and as much of `name` as a thread name shows on Linux (15
/// bytes, cut at a character boundary), without the NUL bytes a thread
/// name may not hold.
fn thread_name(name: &str) -> String {
    let mut thread = String::from("msem-");
    for c in name.chars().filter(|&c| c != '\0') {
        if thread.len() + c.len_utf8() > 15 {
            break;
        }
        thread.push(c);
    }
    thread
}

/// The tick after `tick`, one `interval` on; if a record overran that, one
/// `interval` from `now` (the ticks it missed are skipped, not caught up).
/// `None` past the clock's range.
fn next_tick(tick: Option<Instant>, interval: Duration, now: Instant) -> Option<Instant> {
    match tick?.checked_add(interval) {
        Some(next) if next >= now => Some(next),
        _ => now.checked_add(interval),
    }
}

impl<const N: usize> Recording<N> {
    /// Stops the thread after one last record, waits for it, and gives the
    /// exporter back.
    ///
    /// ```
    /// use multisem::MultiSemaphore;
    /// use multisem::metrics::Exporter;
    /// use std::{sync::Arc, time::Duration};
    ///
    /// let exporter = Exporter::named(Arc::new(MultiSemaphore::new([8])), "jobs");
    /// let exporter = exporter.record_every(Duration::from_secs(1)).stop();
    /// exporter.record(); // still usable
    /// ```
    ///
    /// # Panics
    ///
    /// If a record on the thread panicked (the recorder's panic, resumed
    /// here).
    pub fn stop(mut self) -> Exporter<N> {
        match self.join() {
            Ok(exporter) => exporter,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }

    /// Whether the thread has ended: only once stopped, or if a record
    /// panicked (then [`stop`](Self::stop) resumes that panic, and a drop
    /// swallows it). For a health check that recording still goes on.
    ///
    /// ```
    /// use multisem::MultiSemaphore;
    /// use multisem::metrics::Exporter;
    /// use std::{sync::Arc, time::Duration};
    ///
    /// let exporter = Exporter::named(Arc::new(MultiSemaphore::new([8])), "jobs");
    /// let recording = exporter.record_every(Duration::from_secs(1));
    /// assert!(!recording.is_finished());
    /// # drop(recording);
    /// ```
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(JoinHandle::is_finished)
    }

    fn join(&mut self) -> thread::Result<Exporter<N>> {
        drop(self.stop.take());
        self.thread
            .take()
            .expect("a Recording is joined once")
            .join()
    }
}

impl<const N: usize> Drop for Recording<N> {
    fn drop(&mut self) {
        if self.thread.is_some() {
            // A recorder's panic ended the thread; it must not unwind out
            // of a drop.
            let _ = self.join();
        }
    }
}

impl<const N: usize> fmt::Debug for Recording<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let thread = self.thread.as_ref().map(|t| t.thread().name());
        f.debug_struct("Recording")
            .field("thread", &thread)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::{next_tick, thread_name};
    use std::time::{Duration, Instant};

    #[test]
    fn the_next_tick_is_one_interval_on_unless_a_record_overran_it() {
        let (t0, s) = (Instant::now(), Duration::from_secs);
        // On time, or exactly at it: one interval after the last tick.
        assert_eq!(next_tick(Some(t0), s(10), t0 + s(3)), Some(t0 + s(10)));
        assert_eq!(next_tick(Some(t0), s(10), t0 + s(10)), Some(t0 + s(10)));
        // Overran: one interval from now, the missed ticks skipped.
        assert_eq!(next_tick(Some(t0), s(10), t0 + s(25)), Some(t0 + s(35)));
        // Past the clock's range already: no tick.
        assert_eq!(next_tick(None, s(10), t0), None);
    }

    #[test]
    fn a_thread_name_fits_what_linux_shows_and_holds_no_nul() {
        assert_eq!(thread_name("jobs"), "msem-jobs");
        assert_eq!(thread_name("producer-east-1"), "msem-producer-e");
        assert_eq!(thread_name("a\0b"), "msem-ab");
        // Cut at a character boundary: 'é' is 2 bytes and would make 16.
        assert_eq!(thread_name("abcdefghié"), "msem-abcdefghi");
        assert!(thread_name("ééééééééééé").len() <= 15);
    }
}
