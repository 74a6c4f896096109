use super::*;

fn scope() -> Scope {
    Scope::new(
        model::AccountId::parse("123456789012").unwrap(),
        model::Region::parse("us-east-1").unwrap(),
    )
}

fn event(name: &str, payload: &str, due_ms: i64) -> NewWork {
    NewWork {
        request_id: format!("req-{payload}"),
        recipient: Recipient::Function {
            scope: scope(),
            name: name.into(),
            qualifier: None,
            client_context: None,
        },
        payload: Bytes::from(payload.to_owned()),
        enqueued_ms: now_ms(),
        due_ms,
    }
}

async fn next(q: &Queue) -> Option<Claimed> {
    tokio::time::timeout(Duration::from_millis(300), q.next_due())
        .await
        .ok()
        .map(|r| r.unwrap())
}

#[tokio::test]
async fn enqueued_work_is_handed_out_once_and_removed_when_done() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::open(&dir.path().join("q.db")).unwrap();
    q.enqueue(vec![event("f", "1", 0), event("f", "2", 0)])
        .await
        .unwrap();
    let a = next(&q).await.unwrap();
    let b = next(&q).await.unwrap();
    assert_eq!((&a.payload[..], &b.payload[..]), (&b"1"[..], &b"2"[..]));
    assert_eq!(a.request_id, "req-1");
    assert!(next(&q).await.is_none(), "handed out twice");
    q.finish(a.id, Completion::Done { follow_up: vec![] })
        .await
        .unwrap();
    assert_eq!(q.len(), 1);
    drop(q);
    let q = Queue::open(&dir.path().join("q.db")).unwrap();
    assert_eq!(q.len(), 1, "finished work came back");
    assert_eq!(next(&q).await.unwrap().request_id, "req-2");
}

#[tokio::test]
async fn unfinished_work_survives_a_restart_with_its_request_id() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let q = Queue::open(&path).unwrap();
    q.enqueue(vec![event("f", "x", 0)]).await.unwrap();
    let c = next(&q).await.unwrap();
    q.finish(
        c.id,
        Completion::Retry {
            due_ms: 0,
            attempts: 1,
            throttles: 0,
            last_result: Some("{\"e\":1}".into()),
        },
    )
    .await
    .unwrap();
    let c = next(&q).await.unwrap();
    assert_eq!(c.attempts, 1);
    drop(q); // "crash" while it runs
    let q = Queue::open(&path).unwrap();
    let again = next(&q).await.unwrap();
    assert_eq!(again.request_id, "req-x");
    assert_eq!(again.attempts, 1);
    assert_eq!(again.last_result.as_deref(), Some("{\"e\":1}"));
}

#[tokio::test]
async fn retries_wait_for_their_due_time() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::open(&dir.path().join("q.db")).unwrap();
    q.enqueue(vec![event("f", "x", 0)]).await.unwrap();
    let c = next(&q).await.unwrap();
    let due = now_ms() + 400;
    q.finish(
        c.id,
        Completion::Retry {
            due_ms: due,
            attempts: 1,
            throttles: 0,
            last_result: None,
        },
    )
    .await
    .unwrap();
    // However long the commit (an fsync on a busy disk) took, the work comes
    // back no earlier than its due time, and it does come back.
    let c = tokio::time::timeout(Duration::from_secs(30), q.next_due())
        .await
        .unwrap()
        .unwrap();
    let handed_out = now_ms();
    assert!(
        handed_out >= due,
        "handed out {} ms before its due time",
        due - handed_out
    );
    assert_eq!(c.attempts, 1);
    assert!(next(&q).await.is_none(), "handed out twice");
}

#[tokio::test]
async fn a_waiting_consumer_wakes_on_enqueue() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::open(&dir.path().join("q.db")).unwrap();
    let q2 = q.clone();
    let waiter = tokio::spawn(async move { q2.next_due().await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    q.enqueue(vec![event("f", "w", 0)]).await.unwrap();
    let c = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(&c.payload[..], b"w");
}

#[tokio::test]
async fn done_adds_follow_up_work_in_the_same_step() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::open(&dir.path().join("q.db")).unwrap();
    q.enqueue(vec![event("f", "x", 0)]).await.unwrap();
    let c = next(&q).await.unwrap();
    let hook = NewWork {
        request_id: "d1".into(),
        recipient: Recipient::Http {
            url: "http://127.0.0.1:9/hook".into(),
            headers: vec![("x-a".into(), "1".into())],
        },
        payload: Bytes::from_static(b"{}"),
        enqueued_ms: now_ms(),
        due_ms: 0,
    };
    q.finish(
        c.id,
        Completion::Done {
            follow_up: vec![hook.clone(), event("g", "y", 0)],
        },
    )
    .await
    .unwrap();
    let stats = q.stats();
    assert_eq!(stats.deliveries, 1);
    assert_eq!(stats.functions.len(), 1);
    assert_eq!(stats.functions[0].name, "g");
    let first = next(&q).await.unwrap();
    assert_eq!(first.recipient, hook.recipient);
    assert_eq!(first.request_id, "d1");
}

#[tokio::test]
async fn stats_count_depth_and_oldest_per_function() {
    let dir = tempfile::tempdir().unwrap();
    let q = Queue::open(&dir.path().join("q.db")).unwrap();
    let mut a = event("a", "1", 0);
    a.enqueued_ms = 1000;
    let mut b = event("a", "2", 0);
    b.enqueued_ms = 500;
    q.enqueue(vec![a, b, event("b", "3", 0)]).await.unwrap();
    let s = q.stats();
    assert_eq!(s.functions.len(), 2);
    assert_eq!(
        (s.functions[0].depth, s.functions[0].oldest_enqueued_ms),
        (2, 500)
    );
    assert_eq!(s.functions[1].depth, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_enqueues_share_commits_and_all_land() {
    use std::future::Future;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.db");
    let q = Queue::open(&path).unwrap();
    // Another connection holds the write lock, so the writer's first
    // commit waits while every enqueue is handed over.
    let blocker = rusqlite::Connection::open(&path).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let mut pending: Vec<_> = (0..500)
        .map(|i| Box::pin(q.enqueue(vec![event("f", &i.to_string(), 0)])))
        .collect();
    // One poll each hands the work to the writer and waits for its ack.
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    for p in &mut pending {
        assert!(p.as_mut().poll(&mut cx).is_pending());
    }
    blocker.execute_batch("ROLLBACK").unwrap();
    for p in pending {
        p.await.unwrap();
    }
    // The first change may have been taken alone; the other 499 share a
    // commit. One commit each would be 500.
    let commits = q.commits();
    assert!(
        (1..=2).contains(&commits),
        "{commits} commits for 500 enqueues"
    );
    drop(q);
    let q = Queue::open(&path).unwrap();
    assert_eq!(q.len(), 500);
}
