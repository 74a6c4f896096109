#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Mutex;
use std::sync::atomic::AtomicU32;

use super::*;

/// Records every delivery; fails the first `fail_first` with a retryable
/// error.
#[derive(Default)]
struct Recorder {
    got: Mutex<Vec<(String, String, String)>>,
    fail_first: AtomicU32,
}

#[async_trait::async_trait]
impl Deliver for Recorder {
    async fn deliver(
        &self,
        scope: &Scope,
        function_arn: &str,
        payload: Bytes,
    ) -> Result<(), DeliveryError> {
        if self
            .fail_first
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(DeliveryError::Retryable("throttled".into()));
        }
        self.got.lock().unwrap().push((
            scope.account.as_str().to_owned(),
            function_arn.to_owned(),
            String::from_utf8(payload.to_vec()).unwrap(),
        ));
        Ok(())
    }
}

impl Recorder {
    fn count(&self) -> usize {
        self.got.lock().unwrap().len()
    }
}

fn scope(account: &str) -> Scope {
    Scope::new(
        model::AccountId::parse(account).unwrap(),
        model::Region::parse("us-east-1").unwrap(),
    )
}

fn scale() -> f64 {
    std::env::var("LAMBENT_TEST_TIMEOUT_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0)
}

/// Waits (generously) until `cond` holds.
async fn until(what: &str, cond: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs_f64(30.0 * scale());
    while !cond() {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const FN: &str = "arn:aws:lambda:us-east-1:111111111111:function:tick";

fn input(expr: &str, extra: Value) -> ScheduleInput {
    let mut v = json!({
        "ScheduleExpression": expr,
        "FlexibleTimeWindow": {"Mode": "OFF"},
        "Target": {
            "Arn": FN,
            "RoleArn": "arn:aws:iam::111111111111:role/scheduler",
            "Input": "{ \"kept\" :  \"verbatim\" }"
        }
    });
    for (k, val) in extra.as_object().unwrap() {
        v[k] = val.clone();
    }
    serde_json::from_value(v).unwrap()
}

fn at_in(seconds: i64) -> String {
    let t = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(now_ms()).unwrap()
        + chrono::Duration::seconds(seconds);
    format!("at({})", t.format("%Y-%m-%dT%H:%M:%S"))
}

fn open(dir: &Path, rec: &Arc<Recorder>, time_scale: f64) -> Arc<Scheduler> {
    Scheduler::open(
        &dir.join("scheduler.db"),
        rec.clone(),
        SchedulerSettings { time_scale },
    )
    .unwrap()
}

#[tokio::test]
async fn a_one_time_schedule_fires_once_with_its_input_verbatim() {
    let dir = tempfile::tempdir().unwrap();
    let rec = Arc::new(Recorder::default());
    // One minute of schedule time is 0.6 s.
    let s = open(dir.path(), &rec, 0.01);
    s.spawn();
    let a = scope("111111111111");
    s.create_schedule(&a, "once", input(&at_in(60), json!({})))
        .await
        .unwrap();
    until("the one-time fire", || rec.count() == 1).await;
    // Nothing more comes: wait as long as five more minutes of schedule time.
    tokio::time::sleep(Duration::from_millis(3_000)).await;
    assert_eq!(rec.count(), 1);
    let got = rec.got.lock().unwrap()[0].clone();
    assert_eq!(
        got,
        (
            "111111111111".into(),
            FN.into(),
            "{ \"kept\" :  \"verbatim\" }".into()
        )
    );
    // ActionAfterCompletion NONE keeps it.
    s.get_schedule(&a, "once", None).await.unwrap();
}

#[tokio::test]
async fn a_rate_schedule_fires_on_time_and_stops_when_disabled() {
    let dir = tempfile::tempdir().unwrap();
    let rec = Arc::new(Recorder::default());
    let s = open(dir.path(), &rec, 0.01);
    s.spawn();
    let a = scope("111111111111");
    let started = std::time::Instant::now();
    s.create_schedule(&a, "tick", input("rate(1 minute)", json!({})))
        .await
        .unwrap();
    // Fires at once, then every 0.6 s: four fires take 1.8 s at least.
    until("four fires", || rec.count() >= 4).await;
    assert!(
        started.elapsed() >= Duration::from_millis(1_700),
        "{:?}",
        started.elapsed()
    );
    s.update_schedule(
        &a,
        "tick",
        input("rate(1 minute)", json!({"State": "DISABLED"})),
    )
    .await
    .unwrap();
    let stopped_at = rec.count();
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    // At most one fire that was already being delivered.
    assert!(rec.count() <= stopped_at + 1);
    let got = s.get_schedule(&a, "tick", None).await.unwrap();
    assert_eq!(got["State"], "DISABLED");
}

#[tokio::test]
async fn a_fire_missed_while_down_happens_once_on_start() {
    let dir = tempfile::tempdir().unwrap();
    let rec = Arc::new(Recorder::default());
    let a = scope("111111111111");
    {
        // Not running: the schedule's first fires fall due while "down".
        let s = open(dir.path(), &rec, 0.01);
        s.create_schedule(&a, "tick", input("rate(1 minute)", json!({})))
            .await
            .unwrap();
        s.create_schedule(&a, "once", input(&at_in(60), json!({})))
            .await
            .unwrap();
    }
    // Ten minutes of schedule time pass.
    tokio::time::sleep(Duration::from_millis(6_000)).await;
    let s = open(dir.path(), &rec, 0.01);
    s.spawn();
    until("the missed fires", || rec.count() >= 2).await;
    // Each missed schedule fires once; the rate schedule then goes on from
    // now (its next fire at most 0.6 s away), not with ten catch-up fires
    // in a burst.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(rec.count() <= 3, "catch-up fires: {}", rec.count());
    let once = s.get_schedule(&a, "once", None).await.unwrap();
    assert_eq!(once["State"], "ENABLED");
}

#[tokio::test]
async fn retryable_failures_are_retried_and_delete_after_completion_removes() {
    let dir = tempfile::tempdir().unwrap();
    let rec = Arc::new(Recorder::default());
    rec.fail_first.store(2, Ordering::SeqCst);
    let s = open(dir.path(), &rec, 0.01);
    s.spawn();
    let a = scope("111111111111");
    s.create_schedule(
        &a,
        "once",
        input(&at_in(30), json!({"ActionAfterCompletion": "DELETE"})),
    )
    .await
    .unwrap();
    until("the fire after two failures", || rec.count() == 1).await;
    assert_eq!(s.metrics().failed_attempts.load(Ordering::Relaxed), 2);
    let mut gone = false;
    for _ in 0..200 {
        if matches!(
            s.get_schedule(&a, "once", None).await,
            Err(SchedulerError::NotFound(_))
        ) {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(gone, "ActionAfterCompletion DELETE removes the schedule");
}

#[tokio::test]
async fn operations_answer_aws_errors_and_stay_in_their_account() {
    let dir = tempfile::tempdir().unwrap();
    let rec = Arc::new(Recorder::default());
    let s = open(dir.path(), &rec, 1.0);
    let a = scope("111111111111");
    let b = scope("222222222222");
    s.create_schedule(&a, "nightly", input("cron(0 2 * * ? *)", json!({})))
        .await
        .unwrap();
    assert!(matches!(
        s.create_schedule(&a, "nightly", input("cron(0 2 * * ? *)", json!({}))).await,
        Err(SchedulerError::Conflict(m)) if m == "Schedule nightly already exists."
    ));
    assert!(matches!(
        s.get_schedule(&b, "nightly", None).await,
        Err(SchedulerError::NotFound(m)) if m == "Schedule nightly does not exist."
    ));
    assert!(matches!(
        s.create_schedule(&a, "x", input("rate(1 minute)", json!({"GroupName": "nope"}))).await,
        Err(SchedulerError::NotFound(m)) if m == "Schedule group nope does not exist."
    ));
    assert!(matches!(
        s.create_schedule(&a, "bad name!", input("rate(1 minute)", json!({}))).await,
        Err(SchedulerError::Validation(m)) if m.contains("[0-9a-zA-Z-_.]+")
    ));
    // Groups: the default exists, a new one lists beside it, deleting it
    // deletes its schedules.
    s.create_group(&a, "team", vec![("k".into(), "v".into())])
        .await
        .unwrap();
    s.create_schedule(
        &a,
        "nightly",
        input("cron(0 2 * * ? *)", json!({"GroupName": "team"})),
    )
    .await
    .unwrap();
    let groups = s.list_groups(&a, None, None, None).await.unwrap();
    let names: Vec<&str> = groups
        .items
        .iter()
        .map(|g| g["Name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["default", "team"]);
    let listed = s
        .list_schedules(&a, ListSchedules::default())
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 2);
    let paged = s
        .list_schedules(
            &a,
            ListSchedules {
                max_results: Some(1),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(paged.items.len(), 1);
    let rest = s
        .list_schedules(
            &a,
            ListSchedules {
                next_token: paged.next_token.clone(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 1);
    assert_ne!(paged.items[0]["Arn"], rest.items[0]["Arn"]);
    assert!(
        s.list_schedules(&b, ListSchedules::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let arn = "arn:aws:scheduler:us-east-1:111111111111:schedule-group/team";
    assert_eq!(
        s.list_tags(&a, arn).await.unwrap(),
        json!({"Tags": [{"Key": "k", "Value": "v"}]})
    );
    s.delete_group(&a, "team").await.unwrap();
    assert!(matches!(
        s.get_schedule(&a, "nightly", Some("team")).await,
        Err(SchedulerError::NotFound(_))
    ));
    assert!(matches!(
        s.delete_group(&a, "default").await,
        Err(SchedulerError::Validation(_))
    ));
    assert!(matches!(
        s.create_group(&a, "default", vec![]).await,
        Err(SchedulerError::Conflict(_))
    ));
    // A refused update changes nothing.
    let before = s.get_schedule(&a, "nightly", None).await.unwrap();
    assert!(
        s.update_schedule(&a, "nightly", input("cron(0 25 * * ? *)", json!({})))
            .await
            .is_err()
    );
    assert_eq!(s.get_schedule(&a, "nightly", None).await.unwrap(), before);
}
