//! The stream admission adaptor (feature `futures`): order, back-pressure
//! on the source, bounds in flight on two executors (tokio's multi-thread
//! runtime and futures-executor's thread pool), refusals that give the item
//! back, FIFO with other acquirers, and cancel safety at every point.

use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures_util::stream::{self, FusedStream, StreamExt};
use multisem::stream::{Admit, Refused};
use multisem::{AcquireError, MultiSemaphore};

mod common;
use common::{Watchdog, counting_waker, poll_once};

/// A message: its sequence number and its size in bytes.
type Msg = (u64, u64);

fn weigh(msg: &Msg) -> [u64; 2] {
    [1, msg.1]
}

/// `count` messages of 1..=max_size bytes, sizes reproducible from `seed`.
fn messages(count: u64, max_size: u64, seed: u64) -> Vec<Msg> {
    let mut rng = common::Rng::new(seed);
    (0..count).map(|i| (i, 1 + rng.below(max_size))).collect()
}

/// What the senders themselves hold, counted as they start and before they
/// let go of the permit: it must never pass the budget. The peaks say how
/// close to it the load came.
#[derive(Default)]
struct Sending {
    count: AtomicU64,
    bytes: AtomicU64,
    peak: [AtomicU64; 2],
}

impl Sending {
    fn start(&self, msg: &Msg, cap: [u64; 2]) {
        let count = self.count.fetch_add(1, Ordering::SeqCst) + 1;
        let bytes = self.bytes.fetch_add(msg.1, Ordering::SeqCst) + msg.1;
        assert!(
            count <= cap[0] && bytes <= cap[1],
            "{count} sending, {bytes} bytes"
        );
        self.peak[0].fetch_max(count, Ordering::SeqCst);
        self.peak[1].fetch_max(bytes, Ordering::SeqCst);
    }

    fn end(&self, msg: &Msg) {
        self.count.fetch_sub(1, Ordering::SeqCst);
        self.bytes.fetch_sub(msg.1, Ordering::SeqCst);
    }

    fn peak(&self) -> [u64; 2] {
        [
            self.peak[0].load(Ordering::SeqCst),
            self.peak[1].load(Ordering::SeqCst),
        ]
    }
}

/// A source that counts how many items were pulled from it.
fn counted(items: Vec<Msg>, pulled: Arc<AtomicUsize>) -> impl futures_util::Stream<Item = Msg> {
    stream::iter(items).inspect(move |_| {
        pulled.fetch_add(1, Ordering::SeqCst);
    })
}

#[test]
fn yields_every_item_in_order_with_the_permit_of_its_weight() {
    let sem = Arc::new(MultiSemaphore::new([100, 1 << 20]));
    let msgs = messages(50, 1000, 1);
    let admitted: Vec<_> = futures_executor::block_on(
        Admit::new(stream::iter(msgs.clone()), Arc::clone(&sem), weigh).collect::<Vec<_>>(),
    );
    assert_eq!(admitted.len(), msgs.len());
    for (got, want) in admitted.iter().zip(&msgs) {
        let (msg, permit) = got.as_ref().unwrap();
        assert_eq!(msg, want);
        assert_eq!(permit.amounts(), weigh(want));
    }
    drop(admitted);
    assert_eq!(sem.available(), sem.capacity());
}

/// One poll of the adaptor with `waker` (it is `Unpin`: no pinning needed).
fn poll_next<S: futures_util::Stream + Unpin>(s: &mut S, waker: &Waker) -> Poll<Option<S::Item>> {
    s.poll_next_unpin(&mut Context::from_waker(waker))
}

#[test]
fn pulls_the_next_item_only_once_the_current_one_is_admitted() {
    let sem = Arc::new(MultiSemaphore::new([2, 1000]));
    let pulled = Arc::new(AtomicUsize::new(0));
    let source = counted(
        vec![(0, 600), (1, 300), (2, 500), (3, 10)],
        Arc::clone(&pulled),
    );
    let mut admit = Admit::new(source, Arc::clone(&sem), weigh);
    let (wakes, waker) = counting_waker();

    let Poll::Ready(Some(Ok((_, first)))) = poll_next(&mut admit, &waker) else {
        panic!("the first item fits")
    };
    let Poll::Ready(Some(Ok((_, second)))) = poll_next(&mut admit, &waker) else {
        panic!("the second item fits")
    };
    // The third (500 bytes) does not fit beside 900: it waits, and the
    // source is not pulled again, however often the adaptor is polled.
    for _ in 0..3 {
        assert!(poll_next(&mut admit, &waker).is_pending());
    }
    assert_eq!(pulled.load(Ordering::SeqCst), 3);
    assert!(admit.is_waiting());
    assert_eq!(sem.waiters(), 1);
    assert_eq!(futures_util::Stream::size_hint(&admit), (2, Some(2)));

    drop(first);
    assert_eq!(wakes.wakes(), 1, "the waiting item is woken by the release");
    let Poll::Ready(Some(Ok((third, permit)))) = poll_next(&mut admit, &waker) else {
        panic!("the third item was granted")
    };
    assert_eq!((third, permit.amounts()), ((2, 500), [1, 500]));
    assert_eq!(pulled.load(Ordering::SeqCst), 3);
    drop((second, permit));
    let rest: Vec<_> = futures_executor::block_on((&mut admit).collect::<Vec<_>>());
    assert_eq!(rest.len(), 1);
    assert!(admit.is_terminated());
    assert!(matches!(poll_next(&mut admit, &waker), Poll::Ready(None)));
    drop(rest);
    assert_eq!(sem.available(), sem.capacity());
}

#[test]
fn an_oversized_item_is_refused_with_the_item_and_the_stream_goes_on() {
    let sem = Arc::new(MultiSemaphore::new([4, 1000]));
    let out: Vec<_> = futures_executor::block_on(
        Admit::new(
            stream::iter(vec![(0, 10), (1, 1001), (2, 20)]),
            Arc::clone(&sem),
            weigh,
        )
        .collect::<Vec<_>>(),
    );
    assert!(matches!(&out[0], Ok(((0, 10), _))));
    let Err(refused) = &out[1] else {
        panic!("1001 bytes exceed the capacity")
    };
    assert_eq!(refused.item, (1, 1001));
    assert_eq!(
        refused.error,
        common::Exceeds {
            dim: 1,
            requested: 1001,
            capacity: 1000
        }
    );
    assert_eq!(refused.to_string(), "item refused");
    assert_eq!(
        std::error::Error::source(refused).unwrap().to_string(),
        "request exceeds capacity in dimension 1: requested 1001, capacity 1000"
    );
    assert!(matches!(&out[2], Ok(((2, 20), _))));
}

/// An error reporter that walks `source()` prints a refusal's reason once
/// (it printed "item refused: semaphore closed: semaphore closed").
#[test]
fn a_refusal_s_error_chain_names_its_reason_once() {
    let sem = Arc::new(MultiSemaphore::new([8, 1024]));
    sem.close();
    let mut admit = Admit::new(stream::iter(vec![(0, 1)]), sem, weigh);
    let refused = futures_executor::block_on(admit.next())
        .unwrap()
        .unwrap_err();
    let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(refused);
    let mut chain = vec![boxed.to_string()];
    let mut next = boxed.source();
    while let Some(err) = next {
        chain.push(err.to_string());
        next = err.source();
    }
    assert_eq!(chain, ["item refused", "semaphore closed"]);
}

#[test]
fn closing_refuses_the_waiting_item_and_every_later_one() {
    let sem = Arc::new(MultiSemaphore::new([1, 100]));
    let held = sem.try_acquire_owned([1, 0]).unwrap();
    let mut admit = Admit::new(stream::iter(vec![(0, 1), (1, 1)]), Arc::clone(&sem), weigh);
    assert!(poll_once(pin!(admit.next())).is_pending());
    sem.close();
    let rest: Vec<_> = futures_executor::block_on(admit.collect::<Vec<_>>());
    let errors: Vec<_> = rest
        .into_iter()
        .map(|r| r.map(|_| ()).unwrap_err())
        .collect();
    assert_eq!(
        errors,
        [
            Refused {
                item: (0, 1),
                error: AcquireError::Closed
            },
            Refused {
                item: (1, 1),
                error: AcquireError::Closed
            }
        ]
    );
    drop(held);
    assert_eq!(sem.available(), [1, 100]);
}

#[test]
fn a_waiting_item_does_not_overtake_an_earlier_waiter_nor_is_overtaken() {
    let sem = Arc::new(MultiSemaphore::new([4, 100]));
    let held = sem.try_acquire_owned([0, 95]).unwrap();
    // An earlier waiter for 60 bytes, then the adaptor's item of 30.
    let mut earlier = pin!(sem.acquire_owned([1, 60]));
    assert!(poll_once(earlier.as_mut()).is_pending());
    let mut admit = Admit::new(stream::iter(vec![(0, 30)]), Arc::clone(&sem), weigh);
    assert!(poll_once(pin!(admit.next())).is_pending());
    assert_eq!(sem.waiters(), 2);
    // A newcomer that the 5 free bytes could serve must not overtake them.
    assert!(sem.try_acquire([1, 5]).unwrap_err().is_insufficient());
    drop(held);
    // The release serves both, in arrival order.
    let earlier = match poll_once(earlier.as_mut()) {
        Poll::Ready(result) => result.unwrap(),
        Poll::Pending => panic!("the earlier waiter was granted"),
    };
    let Poll::Ready(Some(Ok((_, item)))) = poll_once(pin!(admit.next())) else {
        panic!("then the item")
    };
    assert_eq!((earlier.amounts(), item.amounts()), ([1, 60], [1, 30]));
    assert_eq!(sem.available(), [2, 10]);
}

#[test]
fn dropping_the_adaptor_while_an_item_waits_leaks_nothing() {
    let sem = Arc::new(MultiSemaphore::new([2, 100]));
    let held = sem.try_acquire_owned([0, 90]).unwrap();
    let pulled = Arc::new(AtomicUsize::new(0));
    let mut admit = Admit::new(
        counted(vec![(0, 50), (1, 1)], Arc::clone(&pulled)),
        Arc::clone(&sem),
        weigh,
    );
    assert!(poll_once(pin!(admit.next())).is_pending());
    assert_eq!(sem.waiters(), 1);
    drop(admit);
    assert_eq!(sem.waiters(), 0);
    assert_eq!(pulled.load(Ordering::SeqCst), 1);
    assert_eq!(sem.stats().cancelled, 1);
    drop(held);
    assert_eq!(sem.available(), [2, 100]);
}

#[test]
fn dropping_the_adaptor_after_a_grant_it_never_collected_returns_the_grant() {
    let sem = Arc::new(MultiSemaphore::new([2, 100]));
    let held = sem.try_acquire_owned([0, 90]).unwrap();
    let mut admit = Admit::new(stream::iter(vec![(0, 50)]), Arc::clone(&sem), weigh);
    assert!(poll_once(pin!(admit.next())).is_pending());
    // The release grants the waiting item's permit on its behalf...
    drop(held);
    assert_eq!(sem.waiters(), 0);
    // ...and the adaptor is dropped before it is polled again.
    drop(admit);
    assert_eq!(sem.available(), [2, 100]);
}

/// A producer on a multi-thread tokio runtime: the adaptor admits a stream of
/// messages and spawns one send per message, which holds the permit until it
/// finishes. Messages and bytes in flight stay within the capacity, every
/// message is sent once, and everything comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_producer_stays_within_both_budgets() {
    let _wd = Watchdog::this_test(Duration::from_secs(60));
    let cap = [8, 4096];
    let sem = Arc::new(MultiSemaphore::new(cap));
    let msgs = messages(400, 1024, 7);
    let total: u64 = msgs.iter().map(|m| m.1).sum();
    let sent_bytes = Arc::new(AtomicU64::new(0));
    let sending = Arc::new(Sending::default());
    let mut admit = Admit::new(stream::iter(msgs), Arc::clone(&sem), weigh);
    let mut sends = Vec::new();
    while let Some(next) = admit.next().await {
        let (msg, permit) = next.unwrap();
        let sent_bytes = Arc::clone(&sent_bytes);
        let sending = Arc::clone(&sending);
        sending.start(&msg, cap);
        sends.push(tokio::spawn(async move {
            tokio::task::yield_now().await;
            sent_bytes.fetch_add(msg.1, Ordering::SeqCst);
            sending.end(&msg);
            drop(permit);
        }));
    }
    for send in sends {
        tokio::time::timeout(Duration::from_secs(10), send)
            .await
            .expect("a send finished")
            .unwrap();
    }
    assert_eq!(sent_bytes.load(Ordering::SeqCst), total);
    // The budget bound what was sent: the senders came to one of its two
    // limits, 8 messages (of up to 1 KiB) or over half of its 4 KiB.
    let peak = sending.peak();
    assert!(
        peak[0] == cap[0] || peak[1] > cap[1] / 2,
        "senders' peak {peak:?}"
    );
    assert_eq!(sem.stats().peak_in_flight.map(|p| p > 0), [true; 2]);
    assert_eq!(sem.available(), cap);
}

/// The same producer on futures-executor's thread pool: no tokio anywhere.
#[test]
fn thread_pool_producer_stays_within_both_budgets() {
    let _wd = Watchdog::this_test(Duration::from_secs(60));
    let cap = [4, 2048];
    let sem = Arc::new(MultiSemaphore::new(cap));
    let pool = futures_executor::ThreadPool::builder()
        .pool_size(2)
        .create()
        .unwrap();
    let msgs = messages(300, 1024, 11);
    let count = msgs.len();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let sending = Arc::new(Sending::default());
    let producer = {
        let sem = Arc::clone(&sem);
        let pool = pool.clone();
        let sending = Arc::clone(&sending);
        async move {
            let mut admit = Admit::new(stream::iter(msgs), sem, weigh);
            while let Some(next) = admit.next().await {
                let (msg, permit) = next.unwrap();
                let done_tx = done_tx.clone();
                let sending = Arc::clone(&sending);
                sending.start(&msg, cap);
                pool.spawn_ok(async move {
                    sending.end(&msg);
                    drop(permit);
                    done_tx.send(msg.0).unwrap();
                });
            }
        }
    };
    pool.spawn_ok(producer);
    let mut seen: Vec<u64> = (0..count)
        .map(|_| done_rx.recv_timeout(Duration::from_secs(10)).unwrap())
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..count as u64).collect::<Vec<_>>());
    let peak = sending.peak();
    assert!(peak[0] >= 1 && peak[1] >= 1, "senders' peak {peak:?}");
    let held = sem.stats().peak_in_flight;
    assert!(
        held[0] <= cap[0] && held[1] <= cap[1],
        "permits' peak {held:?}"
    );
    // The last sends may still be dropping their permits.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while sem.available() != cap {
        assert!(std::time::Instant::now() < deadline, "permits came back");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn a_source_that_is_not_unpin_is_accepted() {
    let sem = Arc::new(MultiSemaphore::new([2, 100]));
    // `unfold` with an async block is !Unpin: the adaptor boxes it once.
    let source = stream::unfold(0u64, |n| async move { (n < 3).then_some(((n, 10), n + 1)) });
    let out: Vec<_> = futures_executor::block_on(
        Admit::new(source, Arc::clone(&sem), weigh)
            .map(|r| r.unwrap().0)
            .collect::<Vec<_>>(),
    );
    assert_eq!(out, [(0, 10), (1, 10), (2, 10)]);
}

/// The README's example ("Producers"), as written there.
#[test]
fn readme_example() {
    // 64 messages and 1 MiB in flight; a message above 1 MiB is sent alone.
    let sem = Arc::new(
        MultiSemaphore::builder([64, 1 << 20])
            .clamp_oversized(true)
            .build(),
    );
    let encoded = futures_util::stream::iter(vec![vec![0u8; 4096], vec![1; 3 << 20]]);
    let mut admitted = Admit::new(encoded, Arc::clone(&sem), |m: &Vec<u8>| [1, m.len() as u64]);
    futures_executor::block_on(async {
        while let Some(next) = admitted.next().await {
            let (message, mut permit) = next.expect("clamped, never refused");
            let compressed_len = message.len() as u64 / 2; // say
            permit.shrink_to([1, compressed_len]); // give the difference back now
            // ... send, and drop the permit in the completion callback
            drop(permit);
        }
    });
    assert_eq!(sem.stats().clamped, 1);
}

/// Yields 1, then `None`, then 2, then `None` forever: a source that is not
/// fused, under an adaptor that is.
struct Resurrecting {
    polls: Arc<AtomicUsize>,
}

impl futures_util::Stream for Resurrecting {
    type Item = u64;
    fn poll_next(self: std::pin::Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<u64>> {
        let n = self.polls.fetch_add(1, Ordering::SeqCst);
        Poll::Ready(match n {
            0 => Some(1),
            2 => Some(2),
            _ => None,
        })
    }
}

#[test]
fn the_adaptor_is_fused_over_a_source_that_is_not() {
    let sem = Arc::new(MultiSemaphore::new([4]));
    let polls = Arc::new(AtomicUsize::new(0));
    let mut admit = Admit::new(
        Resurrecting {
            polls: Arc::clone(&polls),
        },
        Arc::clone(&sem),
        |_: &u64| [1],
    );
    assert!(matches!(
        poll_next(&mut admit, Waker::noop()),
        Poll::Ready(Some(Ok((1, _))))
    ));
    assert!(matches!(
        poll_next(&mut admit, Waker::noop()),
        Poll::Ready(None)
    ));
    assert!(admit.is_terminated());
    for _ in 0..3 {
        assert!(matches!(
            poll_next(&mut admit, Waker::noop()),
            Poll::Ready(None)
        ));
    }
    assert_eq!(
        polls.load(Ordering::SeqCst),
        2,
        "the source is not polled after its end"
    );
    assert_eq!(futures_util::Stream::size_hint(&admit), (0, Some(0)));
    assert_eq!(sem.available(), [4]);
}

#[test]
fn a_waiting_item_refused_when_the_capacity_shrinks_below_it_and_the_next_goes_on() {
    let sem = Arc::new(MultiSemaphore::new([10]));
    let held = sem.try_acquire_owned([5]).unwrap();
    let mut admit = Admit::new(
        futures_util::stream::iter([8u64, 2]),
        Arc::clone(&sem),
        |w: &u64| [*w],
    );
    assert!(poll_next(&mut admit, Waker::noop()).is_pending());
    assert!(admit.is_waiting());
    sem.set_capacity([6]).unwrap();
    match poll_next(&mut admit, Waker::noop()) {
        Poll::Ready(Some(Err(refused))) => {
            assert_eq!(refused.item, 8);
            assert!(matches!(
                refused.error,
                AcquireError::ExceedsCapacity { .. }
            ));
        }
        other => panic!("{:?}", other.map(|o| o.map(|r| r.map(|(i, _)| i)))),
    }
    // The next item fits (5 held of 6, 2 asked: waits), then is admitted.
    assert!(poll_next(&mut admit, Waker::noop()).is_pending());
    drop(held);
    let Poll::Ready(Some(Ok((2, permit)))) = poll_next(&mut admit, Waker::noop()) else {
        panic!("the second item is admitted once the first permit is back")
    };
    drop(permit);
    assert!(matches!(
        poll_next(&mut admit, Waker::noop()),
        Poll::Ready(None)
    ));
    assert_eq!(sem.available(), [6]);
}

/// `is_waiting` while an item waits for its permits, and only then;
/// `is_terminated` once the source has ended and no item waits, not before;
/// a refusal's `source` is the semaphore's error; `Debug` says the state.
#[test]
fn the_adaptor_reports_its_state() {
    use std::error::Error;

    let sem = Arc::new(MultiSemaphore::new([4]));
    let held = sem.try_acquire_owned([4]).unwrap();
    let mut admit = Admit::new(stream::iter([1u64, 9]), Arc::clone(&sem), |w: &u64| [*w]);
    assert!(!admit.is_waiting() && !admit.is_terminated());
    assert!(poll_next(&mut admit, Waker::noop()).is_pending());
    assert!(admit.is_waiting() && !admit.is_terminated());
    assert!(format!("{admit:?}").contains("waiting: true, source_done: false"));
    drop(held);
    let Poll::Ready(Some(Ok((1, permit)))) = poll_next(&mut admit, Waker::noop()) else {
        panic!("the first item is admitted once the permits are back")
    };
    assert!(!admit.is_waiting());
    drop(permit);
    // The last item is refused: its weight is above the capacity.
    let Poll::Ready(Some(Err(refused))) = poll_next(&mut admit, Waker::noop()) else {
        panic!("the oversized item is refused")
    };
    let source = refused.source().expect("the semaphore's error");
    assert_eq!(source.to_string(), refused.error.to_string());
    assert!(
        !admit.is_terminated(),
        "the source has not said it ended yet"
    );
    assert!(matches!(
        poll_next(&mut admit, Waker::noop()),
        Poll::Ready(None)
    ));
    assert!(admit.is_terminated() && !admit.is_waiting());
    assert!(format!("{admit:?}").contains("waiting: false, source_done: true"));
}

/// `take_waiting` gives back the item that waits, even after its permit was
/// granted and not yet collected: that grant goes back to the semaphore,
/// and the adaptor goes on with the next item. `into_inner` gives back the
/// rest of the source with it.
#[test]
fn take_waiting_gives_back_the_item_and_its_raced_grant() {
    let sem = Arc::new(MultiSemaphore::new([1, 1000]));
    let held = sem.try_acquire_owned([1, 0]).unwrap();
    let mut admitted = Admit::new(
        stream::iter([100u64, 200, 300]),
        Arc::clone(&sem),
        |&n: &u64| [1, n],
    );
    assert!(poll_once(pin!(admitted.next())).is_pending());
    assert_eq!(sem.waiters(), 1);
    // Granted by the release, not yet collected.
    drop(held);
    assert_eq!(sem.available(), [0, 900]);
    assert_eq!(admitted.take_waiting(), Some(100));
    assert_eq!(admitted.take_waiting(), None);
    assert_eq!(sem.available(), sem.capacity());
    assert_eq!(sem.stats().cancelled, 1);
    let Poll::Ready(Some(Ok((item, permit)))) = poll_once(pin!(admitted.next())) else {
        panic!("the next item fits");
    };
    assert_eq!((item, permit.amounts()), (200, [1, 200]));
    // With the permit held, 300 waits; what is left comes back whole.
    assert!(poll_once(pin!(admitted.next())).is_pending());
    let (rest, waiting) = admitted.into_inner();
    assert_eq!(waiting, Some(300));
    assert_eq!(futures_executor::block_on(rest.collect::<Vec<_>>()), []);
    assert_eq!(sem.waiters(), 0);
    drop(permit);
    assert_eq!(sem.available(), sem.capacity());
}
