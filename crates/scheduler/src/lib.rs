//! EventBridge Scheduler: schedules and schedule groups, and the loop that
//! fires them.
//!
//! The operations ([`Scheduler::create_schedule`] ...) validate with AWS's
//! rules ([`spec`]) before they write, and keep everything in SQLite
//! ([`store`]). The firing loop ([`Scheduler::spawn`]) finds the schedules
//! due, hands each fire to a [`Deliver`] (the asynchronous queue, where
//! the function's retries, destinations and dead letters apply), and then
//! records the next fire ([`timing`]). A fire is recorded only after its
//! delivery is durable, so each due time fires at least once across
//! restarts; fires run one after another from one loop, so one server never
//! fires a due time twice. A fire missed while the server was down happens
//! once when it starts again, if the fire is younger than the target's
//! `MaximumEventAgeInSeconds`.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use model::Scope;
use serde_json::{Value, json};

pub mod spec;
pub mod store;
pub mod timing;

pub use spec::{ScheduleInput, Spec, TargetSpec};
use store::{Group, Key, Row, Store};
use timing::Plan;

/// What failed, named for AWS's error it becomes.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    /// 400 `ValidationException`.
    #[error("{0}")]
    Validation(String),
    /// 404 `ResourceNotFoundException`.
    #[error("{0}")]
    NotFound(String),
    /// 409 `ConflictException`.
    #[error("{0}")]
    Conflict(String),
    /// The schedule store failed (500 `InternalServerException`).
    #[error("the schedule store failed: {0}")]
    Store(String),
}

/// Why a fire did not reach its target.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// Worth another attempt (throttled, the queue's disk full ...).
    #[error("{0}")]
    Retryable(String),
    /// No attempt will succeed (no such function ...).
    #[error("{0}")]
    Permanent(String),
}

/// Where fires go: the target function's asynchronous queue.
#[async_trait::async_trait]
pub trait Deliver: Send + Sync {
    /// Queues `payload` for the function `function_arn` in `scope`; returns
    /// once it is durable.
    async fn deliver(
        &self,
        scope: &Scope,
        function_arn: &str,
        payload: Bytes,
    ) -> Result<(), DeliveryError>;
}

/// How the scheduler paces itself.
#[derive(Debug, Clone, Copy)]
pub struct SchedulerSettings {
    /// Real time per unit of schedule time: 1 runs schedules on the clock;
    /// tests compress it (0.01 makes a minute 0.6 s).
    pub time_scale: f64,
}

impl Default for SchedulerSettings {
    fn default() -> Self {
        Self { time_scale: 1.0 }
    }
}

/// Counters of the firing loop.
#[derive(Debug, Default)]
pub struct SchedulerMetrics {
    /// Fires delivered to their target.
    pub fires: AtomicU64,
    /// Delivery attempts that failed.
    pub failed_attempts: AtomicU64,
    /// Fires given up (retries or age exhausted, or a permanent failure).
    pub dropped: AtomicU64,
}

pub const DEFAULT_GROUP: &str = "default";

/// Most schedules or groups one listing page holds (the model's MaxResults).
const MAX_RESULTS: usize = 100;

fn now_ms() -> i64 {
    model::time_fmt::now_ms()
}

fn internal(e: tokio::task::JoinError) -> SchedulerError {
    SchedulerError::Store(format!("a schedule store task failed: {e}"))
}

pub struct Scheduler {
    store: Arc<Store>,
    deliver: Arc<dyn Deliver>,
    settings: SchedulerSettings,
    wake: tokio::sync::Notify,
    metrics: SchedulerMetrics,
}

/// One page of a listing and the token of the next.
pub struct Page {
    pub items: Vec<Value>,
    pub next_token: Option<String>,
}

fn schedule_arn(scope: &Scope, group: &str, name: &str) -> String {
    format!(
        "arn:{}:scheduler:{}:{}:schedule/{group}/{name}",
        scope.partition(),
        scope.region.as_str(),
        scope.account.as_str()
    )
}

fn group_arn(scope: &Scope, name: &str) -> String {
    format!(
        "arn:{}:scheduler:{}:{}:schedule-group/{name}",
        scope.partition(),
        scope.region.as_str(),
        scope.account.as_str()
    )
}

fn group_not_found(name: &str) -> SchedulerError {
    SchedulerError::NotFound(format!("Schedule group {name} does not exist."))
}

fn schedule_not_found(name: &str) -> SchedulerError {
    SchedulerError::NotFound(format!("Schedule {name} does not exist."))
}

fn check_names(group: &str, name: Option<&str>) -> Result<(), SchedulerError> {
    let mut errors = model::names::ValidationErrors::new();
    if let Some(n) = name {
        spec::check_name(&mut errors, "name", n);
    }
    spec::check_name(&mut errors, "groupName", group);
    errors.into_result().map_err(SchedulerError::Validation)
}

/// Applies a listing's `MaxResults` and `NextToken` (the last key given).
fn page<T>(
    mut items: Vec<(String, T)>,
    max_results: Option<i64>,
    next_token: Option<&str>,
) -> Result<(Vec<T>, Option<String>), SchedulerError> {
    let max = match max_results {
        None => MAX_RESULTS,
        Some(m) if (1..=MAX_RESULTS as i64).contains(&m) => m as usize,
        Some(m) => {
            let mut e = model::names::ValidationErrors::new();
            e.push(
                "maxResults",
                &m.to_string(),
                if m < 1 {
                    "Member must have value greater than or equal to 1"
                } else {
                    "Member must have value less than or equal to 100"
                },
            );
            return Err(SchedulerError::Validation(
                e.into_result().err().unwrap_or_default(),
            ));
        }
    };
    if let Some(t) = next_token {
        items.retain(|(k, _)| k.as_str() > t);
    }
    let more = items.len() > max;
    items.truncate(max);
    let next = if more {
        items.last().map(|(k, _)| k.clone())
    } else {
        None
    };
    Ok((items.into_iter().map(|(_, v)| v).collect(), next))
}

/// ListSchedules' filters.
#[derive(Debug, Default, Clone)]
pub struct ListSchedules {
    pub group: Option<String>,
    pub name_prefix: Option<String>,
    pub state: Option<String>,
    pub max_results: Option<i64>,
    pub next_token: Option<String>,
}

impl Scheduler {
    /// Opens (or creates) the schedule store at `path`.
    pub fn open(
        path: &Path,
        deliver: Arc<dyn Deliver>,
        settings: SchedulerSettings,
    ) -> Result<Arc<Self>, SchedulerError> {
        let store = Store::open(path)?;
        Ok(Arc::new(Self {
            store: Arc::new(store),
            deliver,
            settings: SchedulerSettings {
                time_scale: if settings.time_scale > 0.0 {
                    settings.time_scale
                } else {
                    1.0
                },
            },
            wake: tokio::sync::Notify::new(),
            metrics: SchedulerMetrics::default(),
        }))
    }

    pub fn metrics(&self) -> &SchedulerMetrics {
        &self.metrics
    }

    /// Runs `f` on the store from a blocking thread (SQLite waits on disk).
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, SchedulerError> + Send + 'static,
    ) -> Result<T, SchedulerError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(internal)?
    }

    async fn require_group(&self, scope: &Scope, group: &str) -> Result<Group, SchedulerError> {
        let (s, g) = (scope.clone(), group.to_owned());
        self.blocking(move |st| {
            st.ensure_default(&s, now_ms())?;
            st.group(&s, &g)?.ok_or_else(|| group_not_found(&g))
        })
        .await
    }

    fn plan_for(&self, spec: &Spec, now: i64) -> Option<Plan> {
        if !spec.enabled {
            return None;
        }
        timing::first(spec, now, self.settings.time_scale, fastrand::f64())
    }

    pub async fn create_schedule(
        &self,
        scope: &Scope,
        name: &str,
        input: ScheduleInput,
    ) -> Result<Value, SchedulerError> {
        let group = input
            .group_name
            .clone()
            .unwrap_or_else(|| DEFAULT_GROUP.into());
        check_names(&group, Some(name))?;
        let now = now_ms();
        let spec = spec::validate(&input, now, now)?;
        self.require_group(scope, &group).await?;
        let plan = self.plan_for(&spec, now);
        let key = Key::new(scope, &group, name);
        let created = self
            .blocking(move |st| st.insert(&key, &spec, plan))
            .await?;
        if !created {
            return Err(SchedulerError::Conflict(format!(
                "Schedule {name} already exists."
            )));
        }
        self.wake.notify_one();
        Ok(json!({ "ScheduleArn": schedule_arn(scope, &group, name) }))
    }

    pub async fn update_schedule(
        &self,
        scope: &Scope,
        name: &str,
        input: ScheduleInput,
    ) -> Result<Value, SchedulerError> {
        let group = input
            .group_name
            .clone()
            .unwrap_or_else(|| DEFAULT_GROUP.into());
        check_names(&group, Some(name))?;
        let now = now_ms();
        // The model's constraints first, as AWS checks them.
        spec::validate(&input, now, now)?;
        self.require_group(scope, &group).await?;
        let key = Key::new(scope, &group, name);
        let k = key.clone();
        let existing = self
            .blocking(move |st| st.get(&k))
            .await?
            .ok_or_else(|| schedule_not_found(name))?;
        let spec = spec::validate(&input, now, existing.spec.created_ms)?;
        let plan = self.plan_for(&spec, now);
        let found = self
            .blocking(move |st| st.replace(&key, &spec, plan))
            .await?;
        if !found {
            return Err(schedule_not_found(name));
        }
        self.wake.notify_one();
        Ok(json!({ "ScheduleArn": schedule_arn(scope, &group, name) }))
    }

    pub async fn get_schedule(
        &self,
        scope: &Scope,
        name: &str,
        group: Option<&str>,
    ) -> Result<Value, SchedulerError> {
        let group = group.unwrap_or(DEFAULT_GROUP).to_owned();
        check_names(&group, Some(name))?;
        self.require_group(scope, &group).await?;
        let key = Key::new(scope, &group, name);
        let row = self
            .blocking(move |st| st.get(&key))
            .await?
            .ok_or_else(|| schedule_not_found(name))?;
        Ok(row
            .spec
            .to_json(&schedule_arn(scope, &group, name), &group, name))
    }

    pub async fn delete_schedule(
        &self,
        scope: &Scope,
        name: &str,
        group: Option<&str>,
    ) -> Result<Value, SchedulerError> {
        let group = group.unwrap_or(DEFAULT_GROUP).to_owned();
        check_names(&group, Some(name))?;
        self.require_group(scope, &group).await?;
        let key = Key::new(scope, &group, name);
        if !self.blocking(move |st| st.delete(&key)).await? {
            return Err(schedule_not_found(name));
        }
        Ok(json!({}))
    }

    pub async fn list_schedules(
        &self,
        scope: &Scope,
        q: ListSchedules,
    ) -> Result<Page, SchedulerError> {
        let mut errors = model::names::ValidationErrors::new();
        if let Some(g) = &q.group {
            spec::check_name(&mut errors, "groupName", g);
        }
        if let Some(p) = &q.name_prefix {
            spec::check_name(&mut errors, "namePrefix", p);
        }
        if let Some(s) = &q.state
            && s != "ENABLED"
            && s != "DISABLED"
        {
            errors.push(
                "state",
                s,
                "Member must satisfy enum value set: [ENABLED, DISABLED]",
            );
        }
        errors.into_result().map_err(SchedulerError::Validation)?;
        if let Some(g) = &q.group {
            self.require_group(scope, g).await?;
        }
        let (s, g) = (scope.clone(), q.group.clone());
        let rows = self.blocking(move |st| st.list(&s, g.as_deref())).await?;
        let items = rows
            .into_iter()
            .filter(|r| {
                q.name_prefix
                    .as_deref()
                    .is_none_or(|p| r.key.name.starts_with(p))
                    && q.state.as_deref().is_none_or(|s| r.spec.state() == s)
            })
            .map(|r| {
                let summary = json!({
                    "Arn": schedule_arn(scope, &r.key.group, &r.key.name),
                    "Name": r.key.name,
                    "GroupName": r.key.group,
                    "State": r.spec.state(),
                    "CreationDate": spec::seconds(r.spec.created_ms),
                    "LastModificationDate": spec::seconds(r.spec.modified_ms),
                    "Target": {"Arn": r.spec.target.arn},
                });
                (format!("{}/{}", r.key.group, r.key.name), summary)
            })
            .collect();
        let (items, next_token) = page(items, q.max_results, q.next_token.as_deref())?;
        Ok(Page { items, next_token })
    }

    fn group_json(scope: &Scope, g: &Group) -> Value {
        json!({
            "Arn": group_arn(scope, &g.name),
            "Name": g.name,
            "State": "ACTIVE",
            "CreationDate": spec::seconds(g.created_ms),
            "LastModificationDate": spec::seconds(g.modified_ms),
        })
    }

    pub async fn create_group(
        &self,
        scope: &Scope,
        name: &str,
        tags: Vec<(String, String)>,
    ) -> Result<Value, SchedulerError> {
        check_names(name, None)?;
        check_tags(&tags)?;
        let now = now_ms();
        let (s, n) = (scope.clone(), name.to_owned());
        let created = self
            .blocking(move |st| {
                st.ensure_default(&s, now)?;
                st.create_group(
                    &s,
                    &Group {
                        name: n,
                        created_ms: now,
                        modified_ms: now,
                        tags,
                    },
                )
            })
            .await?;
        if !created {
            return Err(SchedulerError::Conflict(format!(
                "Schedule group {name} already exists."
            )));
        }
        Ok(json!({ "ScheduleGroupArn": group_arn(scope, name) }))
    }

    pub async fn get_group(&self, scope: &Scope, name: &str) -> Result<Value, SchedulerError> {
        check_names(name, None)?;
        let g = self.require_group(scope, name).await?;
        Ok(Self::group_json(scope, &g))
    }

    pub async fn delete_group(&self, scope: &Scope, name: &str) -> Result<Value, SchedulerError> {
        check_names(name, None)?;
        if name == DEFAULT_GROUP {
            return Err(SchedulerError::Validation(
                "This operation cannot be performed on schedule group default.".into(),
            ));
        }
        let (s, n) = (scope.clone(), name.to_owned());
        if !self.blocking(move |st| st.delete_group(&s, &n)).await? {
            return Err(group_not_found(name));
        }
        self.wake.notify_one();
        Ok(json!({}))
    }

    pub async fn list_groups(
        &self,
        scope: &Scope,
        name_prefix: Option<&str>,
        max_results: Option<i64>,
        next_token: Option<&str>,
    ) -> Result<Page, SchedulerError> {
        if let Some(p) = name_prefix {
            let mut e = model::names::ValidationErrors::new();
            spec::check_name(&mut e, "namePrefix", p);
            e.into_result().map_err(SchedulerError::Validation)?;
        }
        let s = scope.clone();
        let groups = self
            .blocking(move |st| {
                st.ensure_default(&s, now_ms())?;
                st.groups(&s)
            })
            .await?;
        let items = groups
            .iter()
            .filter(|g| name_prefix.is_none_or(|p| g.name.starts_with(p)))
            .map(|g| (g.name.clone(), Self::group_json(scope, g)))
            .collect();
        let (items, next_token) = page(items, max_results, next_token)?;
        Ok(Page { items, next_token })
    }

    /// The group a schedule-group ARN of this scope names.
    fn group_of_arn(scope: &Scope, arn: &str) -> Result<String, SchedulerError> {
        let prefix = group_arn(scope, "");
        arn.strip_prefix(&prefix)
            .filter(|n| !n.is_empty() && !n.contains('/'))
            .map(str::to_owned)
            .ok_or_else(|| {
                SchedulerError::NotFound(format!("Schedule group {arn} does not exist."))
            })
    }

    pub async fn list_tags(&self, scope: &Scope, arn: &str) -> Result<Value, SchedulerError> {
        let name = Self::group_of_arn(scope, arn)?;
        let g = self.require_group(scope, &name).await?;
        let tags: Vec<Value> = g
            .tags
            .iter()
            .map(|(k, v)| json!({"Key": k, "Value": v}))
            .collect();
        Ok(json!({ "Tags": tags }))
    }

    pub async fn tag(
        &self,
        scope: &Scope,
        arn: &str,
        add: Vec<(String, String)>,
    ) -> Result<Value, SchedulerError> {
        check_tags(&add)?;
        self.retag(scope, arn, move |tags| {
            for (k, v) in add {
                match tags.iter_mut().find(|(key, _)| *key == k) {
                    Some(t) => t.1 = v,
                    None => tags.push((k, v)),
                }
            }
        })
        .await
    }

    pub async fn untag(
        &self,
        scope: &Scope,
        arn: &str,
        keys: Vec<String>,
    ) -> Result<Value, SchedulerError> {
        self.retag(scope, arn, move |tags| {
            tags.retain(|(k, _)| !keys.contains(k))
        })
        .await
    }

    async fn retag(
        &self,
        scope: &Scope,
        arn: &str,
        change: impl FnOnce(&mut Vec<(String, String)>) + Send + 'static,
    ) -> Result<Value, SchedulerError> {
        let name = Self::group_of_arn(scope, arn)?;
        let mut g = self.require_group(scope, &name).await?;
        change(&mut g.tags);
        if g.tags.len() > 200 {
            return Err(SchedulerError::Validation(
                "The number of tags on the resource would exceed 200.".into(),
            ));
        }
        let s = scope.clone();
        self.blocking(move |st| st.set_group_tags(&s, &name, &g.tags))
            .await?;
        Ok(json!({}))
    }

    /// Starts the firing loop on the current runtime.
    pub fn spawn(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.clone().run())
    }

    async fn run(self: Arc<Self>) {
        loop {
            let now = now_ms();
            let due = match self.blocking(move |st| st.due(now, 64)).await {
                Ok(d) => d,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the schedules due");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            if !due.is_empty() {
                for row in due {
                    self.fire(row).await;
                }
                continue;
            }
            let next = self.blocking(|st| st.earliest_due()).await.unwrap_or(None);
            let wait_ms = next.map_or(60_000, |d| (d - now_ms()).clamp(0, 60_000));
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(wait_ms as u64)) => {}
                _ = self.wake.notified() => {}
            }
        }
    }

    /// The payload of one attempt: the target's Input (or `{}`) with the
    /// context attributes filled in.
    fn payload(&self, row: &Row, plan: Plan, attempt: u32, scope: &Scope) -> Bytes {
        let input = row.spec.target.input.as_deref().unwrap_or("{}");
        if !input.contains("<aws.scheduler.") {
            return Bytes::copy_from_slice(input.as_bytes());
        }
        let scheduled = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(plan.expr_ms)
            .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
            .unwrap_or_default();
        let execution_id = format!("{:016x}", fastrand::u64(..));
        let text = input
            .replace(
                "<aws.scheduler.schedule-arn>",
                &schedule_arn(scope, &row.key.group, &row.key.name),
            )
            .replace("<aws.scheduler.scheduled-time>", &scheduled)
            .replace("<aws.scheduler.execution-id>", &execution_id)
            .replace("<aws.scheduler.attempt-number>", &attempt.to_string());
        Bytes::from(text)
    }

    async fn fire(&self, row: Row) {
        let Some(plan) = row.plan else { return };
        let Ok(scope) = (|| {
            Ok::<_, model::NameError>(Scope::new(
                model::AccountId::parse(&row.key.account)?,
                model::Region::parse(&row.key.region)?,
            ))
        })() else {
            tracing::error!(key = ?row.key, "a stored schedule names an invalid scope");
            return;
        };
        let scale = self.settings.time_scale;
        let now = now_ms();
        let arn = schedule_arn(&scope, &row.key.group, &row.key.name);
        let max_age_ms = (f64::from(row.spec.target.max_event_age_s) * 1000.0 * scale) as i64;
        let age_ms = now - plan.real_ms;
        let outcome = if age_ms > max_age_ms {
            Err(DeliveryError::Permanent(format!(
                "the fire is older than the target's MaximumEventAgeInSeconds ({} s)",
                row.spec.target.max_event_age_s
            )))
        } else {
            let payload = self.payload(&row, plan, row.attempts + 1, &scope);
            self.deliver
                .deliver(&scope, &row.spec.target.arn, payload)
                .await
        };
        let key = row.key.clone();
        let revision = row.revision;
        match outcome {
            Ok(()) => {
                self.metrics.fires.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(schedule = %arn, "schedule fired");
            }
            Err(DeliveryError::Retryable(e))
                if row.attempts < row.spec.target.max_retries && age_ms <= max_age_ms =>
            {
                self.metrics.failed_attempts.fetch_add(1, Ordering::Relaxed);
                // Backoff doubling from one second, at most five minutes, in
                // schedule time.
                let backoff_s = (1u64 << row.attempts.min(9)).min(300) as f64;
                let due = now + (backoff_s * 1000.0 * scale) as i64;
                tracing::warn!(schedule = %arn, error = %e, attempt = row.attempts + 1,
                    "a schedule's target did not take its fire; retrying");
                let attempts = row.attempts + 1;
                if let Err(e) = self
                    .blocking(move |st| st.record_retry(&key, revision, due, attempts))
                    .await
                {
                    tracing::error!(schedule = %arn, error = %e, "cannot record a retry");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                return;
            }
            Err(e) => {
                self.metrics.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(schedule = %arn, error = %e, dead_letter = ?row.spec.target.dead_letter_arn,
                    "a schedule's fire is given up");
            }
        }
        let next = timing::after_fire(&row.spec, plan, now_ms(), scale, fastrand::f64());
        let delete = row.spec.delete_after_completion;
        // The fire is durable at its target: record it. A failure here
        // means the fire may run again after a restart (at least once),
        // never twice from this loop: keep trying.
        let mut wait = Duration::from_millis(100);
        loop {
            let k = key.clone();
            match self
                .blocking(move |st| st.record_fired(&k, revision, next, delete))
                .await
            {
                Ok(_) => break,
                Err(e) => {
                    tracing::error!(schedule = %arn, error = %e, "cannot record a fire; retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(10));
                }
            }
        }
    }
}

fn check_tags(tags: &[(String, String)]) -> Result<(), SchedulerError> {
    let mut e = model::names::ValidationErrors::new();
    if tags.len() > 200 {
        e.push(
            "tags",
            &format!("{} tags", tags.len()),
            "Member must have length less than or equal to 200",
        );
    }
    for (i, (k, v)) in tags.iter().enumerate() {
        if k.is_empty() || k.chars().count() > 128 {
            e.push(
                &format!("tags.{}.member.key", i + 1),
                k,
                "Member must have length less than or equal to 128",
            );
        }
        if v.chars().count() > 256 {
            e.push(
                &format!("tags.{}.member.value", i + 1),
                v,
                "Member must have length less than or equal to 256",
            );
        }
    }
    e.into_result().map_err(SchedulerError::Validation)
}

#[cfg(test)]
mod tests;
