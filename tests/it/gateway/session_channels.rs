//! The vendored rmcp's session channels (`rmcp::boxed_mpsc`, flume-backed,
//! `vendor/rmcp/PATCHES.md`) keep tokio's mpsc meaning: order, a bound that
//! makes a send wait, `None` once every sender is gone and the queue is
//! drained, and errors that hand the value back. rmcp's own tests do not run
//! in this workspace, so these do.
use rmcp::boxed_mpsc::{SendError, TryRecvError, TrySendError, channel};

#[tokio::test]
async fn values_arrive_in_order_and_recv_ends_once_senders_are_gone() {
    let (tx, mut rx) = channel(2);
    tx.send(1).await.unwrap();
    tx.try_send(2).unwrap();
    assert!(matches!(tx.try_send(3), Err(TrySendError::Full(3))));
    assert_eq!(tx.capacity(), 0);
    assert_eq!(rx.recv().await, Some(1));
    assert_eq!(tx.capacity(), 1);
    drop(tx);
    assert!(rx.is_closed());
    assert_eq!(rx.recv().await, Some(2));
    assert_eq!(rx.recv().await, None);
}

#[tokio::test]
async fn a_send_waits_for_room_and_fails_once_the_receiver_is_gone() {
    let (tx, mut rx) = channel(1);
    tx.send("a").await.unwrap();
    let waiting = tokio::spawn({
        let tx = tx.clone();
        async move { tx.send("b").await }
    });
    assert_eq!(rx.recv().await, Some("a"));
    waiting.await.unwrap().unwrap();
    assert_eq!(rx.try_recv().unwrap(), "b");
    drop(rx);
    assert!(tx.is_closed());
    assert!(matches!(tx.send("c").await, Err(SendError("c"))));
    assert!(matches!(tx.try_send("d"), Err(TrySendError::Closed("d"))));
}

#[tokio::test]
async fn an_empty_channel_says_so_and_a_zero_bound_holds_one() {
    let (tx, mut rx) = channel::<u8>(4);
    assert!(matches!(rx.try_recv(), Err(TryRecvError::Empty)));
    assert_eq!((tx.capacity(), tx.max_capacity()), (4, 4));
    assert!(rx.is_empty());
    drop(tx);
    assert!(matches!(rx.try_recv(), Err(TryRecvError::Disconnected)));
    let (tx, _rx) = channel::<u8>(0);
    assert_eq!(tx.max_capacity(), 1);
}

#[tokio::test]
async fn a_waiting_receiver_wakes_for_a_value_and_for_the_last_sender_leaving() {
    let (tx, mut rx) = channel::<u32>(1);
    let receiving = tokio::spawn(async move {
        let first = rx.recv().await;
        let second = rx.recv().await;
        (first, second)
    });
    tokio::task::yield_now().await;
    tx.send(7).await.unwrap();
    drop(tx);
    assert_eq!(receiving.await.unwrap(), (Some(7), None));
}

#[tokio::test]
async fn a_full_channel_hands_each_freed_slot_on_even_when_a_woken_send_gives_up() {
    use std::future::Future;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Context, Poll, Wake, Waker};

    #[derive(Default)]
    struct Wakes(AtomicUsize);
    impl Wake for Wakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let (first_wakes, second_wakes) = (Arc::new(Wakes::default()), Arc::new(Wakes::default()));
    let first_waker = Waker::from(first_wakes.clone());
    let second_waker = Waker::from(second_wakes.clone());

    let (tx, mut rx) = channel::<u32>(1);
    tx.send(0).await.unwrap();
    // Two sends wait for room, oldest first.
    let mut first = Box::pin(tx.send(1));
    let mut second = Box::pin(tx.send(2));
    assert!(
        first
            .as_mut()
            .poll(&mut Context::from_waker(&first_waker))
            .is_pending()
    );
    assert!(
        second
            .as_mut()
            .poll(&mut Context::from_waker(&second_waker))
            .is_pending()
    );
    // A slot frees: only the oldest is woken for it.
    assert_eq!(rx.try_recv().unwrap(), 0);
    assert_eq!(first_wakes.0.load(Ordering::SeqCst), 1);
    assert_eq!(second_wakes.0.load(Ordering::SeqCst), 0);
    // It gives up: the slot goes to the next, which is woken and sends.
    drop(first);
    assert_eq!(second_wakes.0.load(Ordering::SeqCst), 1);
    let polled = second
        .as_mut()
        .poll(&mut Context::from_waker(&second_waker));
    assert!(matches!(polled, Poll::Ready(Ok(()))));
    assert_eq!(rx.try_recv().unwrap(), 2);
    assert!(matches!(rx.try_recv(), Err(TryRecvError::Empty)));
}

#[tokio::test]
async fn a_send_waiting_for_room_fails_when_the_receiver_leaves() {
    let (tx, rx) = channel::<u32>(1);
    tx.send(1).await.unwrap();
    let waiting = tokio::spawn({
        let tx = tx.clone();
        async move { tx.send(2).await }
    });
    tokio::task::yield_now().await;
    drop(rx);
    assert!(matches!(waiting.await.unwrap(), Err(SendError(2))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_senders_on_threads_deliver_every_value_once_in_each_senders_order() {
    const SENDERS: u32 = 8;
    const EACH: u32 = 2_000;
    let (tx, mut rx) = channel::<(u32, u32)>(4);
    let sending: Vec<_> = (0..SENDERS)
        .map(|sender| {
            let tx = tx.clone();
            tokio::spawn(async move {
                for n in 0..EACH {
                    tx.send((sender, n)).await.unwrap();
                }
            })
        })
        .collect();
    drop(tx);
    let mut next = vec![0; SENDERS as usize];
    while let Some((sender, n)) = rx.recv().await {
        assert_eq!(next[sender as usize], n, "sender {sender} out of order");
        next[sender as usize] += 1;
        assert!(rx.len() <= 4, "the bound holds");
    }
    assert!(next.iter().all(|&count| count == EACH), "{next:?}");
    for task in sending {
        task.await.unwrap();
    }
}
