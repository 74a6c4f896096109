//! EventBridge: event buses, rules and their Lambda targets, PutEvents and
//! TestEventPattern.
//!
//! Buses and rules are kept in SQLite (`events.db`) and in memory (rules
//! with their compiled patterns, so that PutEvents matches without a
//! query). PutEvents puts each entry in AWS's envelope, matches it against
//! the enabled rules of its bus (patterns from the shared `event-pattern`
//! crate), shapes what each target receives ([`transform`]) and hands it to
//! a [`Deliver`]: the target function's asynchronous queue, where retries,
//! event age, destinations and dead letters apply. A target is invoked only
//! if the [`Deliver`] finds that the function's resource policy lets
//! `events.amazonaws.com` invoke it for the rule's ARN.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;
use event_pattern::EventPattern;
use model::Scope;
use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

pub mod transform;

/// What failed, named for EventBridge's error it becomes.
#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    #[error("{0}")]
    Validation(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    InvalidPattern(String),
    #[error("the event store failed: {0}")]
    Store(String),
}

/// Why an event did not reach a target.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The function's resource policy does not let EventBridge invoke it.
    #[error("{0}")]
    NotPermitted(String),
    #[error("{0}")]
    Failed(String),
}

/// Where matched events go.
#[async_trait::async_trait]
pub trait Deliver: Send + Sync {
    /// Queues `payload` for `function_arn` on behalf of the rule
    /// `source_arn` (checked against the function's resource policy).
    async fn deliver(
        &self,
        scope: &Scope,
        function_arn: &str,
        source_arn: &str,
        payload: Bytes,
    ) -> Result<(), DeliveryError>;
}

/// Counters of event delivery.
#[derive(Debug, Default)]
pub struct EventsMetrics {
    pub events: AtomicU64,
    pub deliveries: AtomicU64,
    pub refused: AtomicU64,
}

pub const DEFAULT_BUS: &str = "default";
/// PutEvents' limit on the entries' total size.
pub const MAX_PUT_EVENTS_BYTES: usize = 256 * 1024;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Bus {
    name: String,
    description: Option<String>,
    created_ms: i64,
    modified_ms: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Rule {
    name: String,
    bus: String,
    event_pattern: Option<String>,
    schedule_expression: Option<String>,
    enabled: bool,
    description: Option<String>,
    role_arn: Option<String>,
    /// Targets as put (validated), in order.
    targets: Vec<Value>,
}

type BusKey = (String, String, String);
type RuleKey = (String, String, String, String);

#[derive(Default)]
struct State {
    buses: BTreeMap<BusKey, Bus>,
    rules: BTreeMap<RuleKey, Rule>,
    patterns: BTreeMap<RuleKey, EventPattern>,
}

pub struct EventBridge {
    db: Arc<Mutex<Connection>>,
    state: RwLock<State>,
    deliver: Arc<dyn Deliver>,
    metrics: EventsMetrics,
}

fn db_err(e: rusqlite::Error) -> EventsError {
    EventsError::Store(e.to_string())
}

fn validation(m: impl Into<String>) -> EventsError {
    EventsError::Validation(m.into())
}

fn now_ms() -> i64 {
    model::time_fmt::now_ms()
}

fn iso(ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

fn acct(scope: &Scope) -> (String, String) {
    (
        scope.account.as_str().to_owned(),
        scope.region.as_str().to_owned(),
    )
}

pub fn bus_arn(scope: &Scope, bus: &str) -> String {
    format!(
        "arn:{}:events:{}:{}:event-bus/{bus}",
        scope.partition(),
        scope.region.as_str(),
        scope.account.as_str()
    )
}

pub fn rule_arn(scope: &Scope, bus: &str, rule: &str) -> String {
    let path = if bus == DEFAULT_BUS {
        rule.to_owned()
    } else {
        format!("{bus}/{rule}")
    };
    format!(
        "arn:{}:events:{}:{}:rule/{path}",
        scope.partition(),
        scope.region.as_str(),
        scope.account.as_str()
    )
}

fn str_field<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str)
}

fn check_name(field: &str, value: &str, max: usize, bus: bool) -> Result<(), EventsError> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || "._-".contains(c) || (bus && c == '/');
    let mut e = model::names::ValidationErrors::new();
    if value.is_empty() || value.len() > max {
        e.push(
            field,
            value,
            format!("Member must have length less than or equal to {max}"),
        );
    } else if !value.chars().all(ok_char) {
        let pattern = if bus {
            "[/\\.\\-_A-Za-z0-9]+"
        } else {
            "[\\.\\-_A-Za-z0-9]+"
        };
        e.push(
            field,
            value,
            format!("Member must satisfy regular expression pattern: {pattern}"),
        );
    }
    e.into_result().map_err(EventsError::Validation)
}

impl EventBridge {
    pub fn open(path: &Path, deliver: Arc<dyn Deliver>) -> Result<Arc<Self>, EventsError> {
        let conn = Connection::open(path).map_err(db_err)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;
             CREATE TABLE IF NOT EXISTS buses (account TEXT NOT NULL, region TEXT NOT NULL, name TEXT NOT NULL, doc TEXT NOT NULL, PRIMARY KEY (account, region, name));
             CREATE TABLE IF NOT EXISTS rules (account TEXT NOT NULL, region TEXT NOT NULL, bus TEXT NOT NULL, name TEXT NOT NULL, doc TEXT NOT NULL, PRIMARY KEY (account, region, bus, name));",
        )
        .map_err(db_err)?;
        let mut state = State::default();
        {
            let mut st = conn
                .prepare("SELECT account, region, name, doc FROM buses")
                .map_err(db_err)?;
            let rows = st
                .query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                    ))
                })
                .map_err(db_err)?;
            for r in rows {
                let (a, rg, n, doc) = r.map_err(db_err)?;
                let bus: Bus =
                    serde_json::from_str(&doc).map_err(|e| EventsError::Store(e.to_string()))?;
                state.buses.insert((a, rg, n), bus);
            }
            let mut st = conn
                .prepare("SELECT account, region, bus, name, doc FROM rules")
                .map_err(db_err)?;
            let rows = st
                .query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, String>(4)?,
                    ))
                })
                .map_err(db_err)?;
            for r in rows {
                let (a, rg, b, n, doc) = r.map_err(db_err)?;
                let rule: Rule =
                    serde_json::from_str(&doc).map_err(|e| EventsError::Store(e.to_string()))?;
                let key = (a, rg, b, n);
                if let Some(p) = &rule.event_pattern
                    && let Ok(p) = EventPattern::parse(p)
                {
                    state.patterns.insert(key.clone(), p);
                }
                state.rules.insert(key, rule);
            }
        }
        Ok(Arc::new(Self {
            db: Arc::new(Mutex::new(conn)),
            state: RwLock::new(state),
            deliver,
            metrics: EventsMetrics::default(),
        }))
    }

    pub fn metrics(&self) -> &EventsMetrics {
        &self.metrics
    }

    /// Runs one write on a blocking thread.
    async fn write(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<()> + Send + 'static,
    ) -> Result<(), EventsError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let c = db
                .lock()
                .map_err(|_| EventsError::Store("the event store's lock is poisoned".into()))?;
            f(&c).map_err(db_err)
        })
        .await
        .map_err(|e| EventsError::Store(e.to_string()))?
    }

    fn read(&self) -> Result<std::sync::RwLockReadGuard<'_, State>, EventsError> {
        self.state
            .read()
            .map_err(|_| EventsError::Store("the event state's lock is poisoned".into()))
    }

    fn modify(&self) -> Result<std::sync::RwLockWriteGuard<'_, State>, EventsError> {
        self.state
            .write()
            .map_err(|_| EventsError::Store("the event state's lock is poisoned".into()))
    }

    /// The bus a request names (a name or an ARN; absent: the default).
    fn bus_name(&self, scope: &Scope, given: Option<&str>) -> Result<String, EventsError> {
        let Some(g) = given else {
            return Ok(DEFAULT_BUS.into());
        };
        let name = match g.strip_prefix("arn:") {
            Some(_) => g
                .strip_prefix(&bus_arn(scope, ""))
                .ok_or_else(|| EventsError::NotFound(format!("Event bus {g} does not exist.")))?,
            None => g,
        };
        check_name("eventBusName", name, 256, true)?;
        if name != DEFAULT_BUS {
            let (a, r) = acct(scope);
            if !self.read()?.buses.contains_key(&(a, r, name.to_owned())) {
                return Err(EventsError::NotFound(format!(
                    "Event bus {name} does not exist."
                )));
            }
        }
        Ok(name.to_owned())
    }

    fn rule_not_found(rule: &str, bus: &str) -> EventsError {
        EventsError::NotFound(format!("Rule {rule} does not exist on EventBus {bus}."))
    }

    async fn save_rule(&self, scope: &Scope, rule: Rule) -> Result<(), EventsError> {
        let (a, r) = acct(scope);
        let doc = serde_json::to_string(&rule).map_err(|e| EventsError::Store(e.to_string()))?;
        let (a2, r2, b, n) = (a.clone(), r.clone(), rule.bus.clone(), rule.name.clone());
        self.write(move |c| {
            c.execute(
                "INSERT OR REPLACE INTO rules (account, region, bus, name, doc) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![a2, r2, b, n, doc],
            )
            .map(|_| ())
        })
        .await?;
        let key = (a, r, rule.bus.clone(), rule.name.clone());
        let mut st = self.modify()?;
        match rule.event_pattern.as_deref().map(EventPattern::parse) {
            Some(Ok(p)) => {
                st.patterns.insert(key.clone(), p);
            }
            _ => {
                st.patterns.remove(&key);
            }
        }
        st.rules.insert(key, rule);
        Ok(())
    }

    fn rule(&self, scope: &Scope, bus: &str, name: &str) -> Result<Rule, EventsError> {
        let (a, r) = acct(scope);
        self.read()?
            .rules
            .get(&(a, r, bus.to_owned(), name.to_owned()))
            .cloned()
            .ok_or_else(|| Self::rule_not_found(name, bus))
    }

    pub async fn create_event_bus(&self, scope: &Scope, req: &Value) -> Result<Value, EventsError> {
        let name = str_field(req, "Name").unwrap_or_default().to_owned();
        check_name("name", &name, 256, true)?;
        if name == DEFAULT_BUS || name.contains('/') {
            return Err(validation(format!("Event bus name {name} is not valid.")));
        }
        let (a, r) = acct(scope);
        let key = (a.clone(), r.clone(), name.clone());
        if self.read()?.buses.contains_key(&key) {
            return Err(EventsError::AlreadyExists(format!(
                "Event bus {name} already exists."
            )));
        }
        let now = now_ms();
        let bus = Bus {
            name: name.clone(),
            description: str_field(req, "Description").map(str::to_owned),
            created_ms: now,
            modified_ms: now,
        };
        let doc = serde_json::to_string(&bus).map_err(|e| EventsError::Store(e.to_string()))?;
        let n = name.clone();
        self.write(move |c| {
            c.execute(
                "INSERT OR REPLACE INTO buses (account, region, name, doc) VALUES (?1, ?2, ?3, ?4)",
                params![a, r, n, doc],
            )
            .map(|_| ())
        })
        .await?;
        self.modify()?.buses.insert(key, bus);
        Ok(json!({ "EventBusArn": bus_arn(scope, &name) }))
    }

    fn bus_json(scope: &Scope, name: &str, bus: Option<&Bus>) -> Value {
        let mut v = json!({"Name": name, "Arn": bus_arn(scope, name)});
        if let Some(b) = bus {
            if let Some(d) = &b.description {
                v["Description"] = json!(d);
            }
            v["CreationTime"] = json!(b.created_ms as f64 / 1000.0);
            v["LastModifiedTime"] = json!(b.modified_ms as f64 / 1000.0);
        }
        v
    }

    pub fn describe_event_bus(&self, scope: &Scope, req: &Value) -> Result<Value, EventsError> {
        let name = self.bus_name(scope, str_field(req, "Name"))?;
        let (a, r) = acct(scope);
        let st = self.read()?;
        Ok(Self::bus_json(
            scope,
            &name,
            st.buses.get(&(a, r, name.clone())),
        ))
    }

    pub fn list_event_buses(&self, scope: &Scope, req: &Value) -> Result<Value, EventsError> {
        let prefix = str_field(req, "NamePrefix").unwrap_or("");
        let (a, r) = acct(scope);
        let st = self.read()?;
        let mut out = vec![];
        if DEFAULT_BUS.starts_with(prefix) {
            out.push(Self::bus_json(scope, DEFAULT_BUS, None));
        }
        for ((ba, br, name), bus) in &st.buses {
            if *ba == a && *br == r && name.starts_with(prefix) {
                out.push(Self::bus_json(scope, name, Some(bus)));
            }
        }
        Ok(json!({ "EventBuses": out }))
    }

    pub async fn delete_event_bus(&self, scope: &Scope, req: &Value) -> Result<Value, EventsError> {
        let name = str_field(req, "Name").unwrap_or_default().to_owned();
        check_name("name", &name, 256, true)?;
        if name == DEFAULT_BUS {
            return Err(validation("Cannot delete event bus default."));
        }
        let (a, r) = acct(scope);
        let (a2, r2, n) = (a.clone(), r.clone(), name.clone());
        self.write(move |c| {
            c.execute(
                "DELETE FROM rules WHERE account = ?1 AND region = ?2 AND bus = ?3",
                params![a2, r2, n],
            )?;
            c.execute(
                "DELETE FROM buses WHERE account = ?1 AND region = ?2 AND name = ?3",
                params![a2, r2, n],
            )
            .map(|_| ())
        })
        .await?;
        let mut st = self.modify()?;
        st.buses.remove(&(a.clone(), r.clone(), name.clone()));
        let gone: Vec<RuleKey> = st
            .rules
            .keys()
            .filter(|k| k.0 == a && k.1 == r && k.2 == name)
            .cloned()
            .collect();
        for k in gone {
            st.rules.remove(&k);
            st.patterns.remove(&k);
        }
        Ok(json!({}))
    }

    pub async fn put_rule(&self, scope: &Scope, req: &Value) -> Result<Value, EventsError> {
        let name = str_field(req, "Name").unwrap_or_default().to_owned();
        check_name("name", &name, 64, false)?;
        let bus = self.bus_name(scope, str_field(req, "EventBusName"))?;
        let pattern = str_field(req, "EventPattern").map(str::to_owned);
        let schedule = str_field(req, "ScheduleExpression")
            .filter(|s| !s.is_empty())
            .map(str::to_owned);
        if pattern.is_none() && schedule.is_none() {
            return Err(validation(
                "Parameter(s) EventPattern or ScheduleExpression must be specified.",
            ));
        }
        if let Some(p) = &pattern {
            EventPattern::parse(p)
                .map_err(|e| EventsError::InvalidPattern(e.event_bridge_message()))?;
        }
        if let Some(s) = &schedule {
            if bus != DEFAULT_BUS {
                return Err(validation(
                    "ScheduleExpression is supported only on the default event bus.",
                ));
            }
            schedule::Expression::parse(s, schedule::Dialect::Rules)
                .map_err(|_| validation("Parameter ScheduleExpression is not valid."))?;
        }
        let enabled = match str_field(req, "State") {
            None | Some("ENABLED") => true,
            Some("DISABLED") => false,
            Some(s) => {
                return Err(validation(format!(
                    "1 validation error detected: Value '{s}' at 'state' failed to satisfy constraint: Member must satisfy enum value set: [ENABLED, DISABLED, ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS]"
                )));
            }
        };
        let targets = self
            .rule(scope, &bus, &name)
            .map(|r| r.targets)
            .unwrap_or_default();
        self.save_rule(
            scope,
            Rule {
                name: name.clone(),
                bus: bus.clone(),
                event_pattern: pattern,
                schedule_expression: schedule,
                enabled,
                description: str_field(req, "Description").map(str::to_owned),
                role_arn: str_field(req, "RoleArn").map(str::to_owned),
                targets,
            },
        )
        .await?;
        Ok(json!({ "RuleArn": rule_arn(scope, &bus, &name) }))
    }

    fn rule_json(scope: &Scope, r: &Rule) -> Value {
        let mut v = json!({
            "Name": r.name,
            "Arn": rule_arn(scope, &r.bus, &r.name),
            "State": if r.enabled { "ENABLED" } else { "DISABLED" },
            "EventBusName": r.bus,
        });
        for (k, f) in [
            ("EventPattern", &r.event_pattern),
            ("ScheduleExpression", &r.schedule_expression),
            ("Description", &r.description),
            ("RoleArn", &r.role_arn),
        ] {
            if let Some(x) = f {
                v[k] = json!(x);
            }
        }
        v
    }

    pub fn describe_rule(&self, scope: &Scope, req: &Value) -> Result<Value, EventsError> {
        let bus = self.bus_name(scope, str_field(req, "EventBusName"))?;
        let name = str_field(req, "Name").unwrap_or_default();
        check_name("name", name, 64, false)?;
        let r = self.rule(scope, &bus, name)?;
        let mut v = Self::rule_json(scope, &r);
        v["CreatedBy"] = json!(scope.account.as_str());
        Ok(v)
    }

    pub fn list_rules(&self, scope: &Scope, req: &Value) -> Result<Value, EventsError> {
        let bus = self.bus_name(scope, str_field(req, "EventBusName"))?;
        let prefix = str_field(req, "NamePrefix").unwrap_or("");
        let limit = req
            .get("Limit")
            .and_then(Value::as_u64)
            .unwrap_or(100)
            .clamp(1, 100) as usize;
        let token = str_field(req, "NextToken");
        let (a, r) = acct(scope);
        let st = self.read()?;
        let mut rules: Vec<&Rule> = st
            .rules
            .iter()
            .filter(|(k, rule)| {
                k.0 == a
                    && k.1 == r
                    && k.2 == bus
                    && rule.name.starts_with(prefix)
                    && token.is_none_or(|t| rule.name.as_str() > t)
            })
            .map(|(_, r)| r)
            .collect();
        let more = rules.len() > limit;
        rules.truncate(limit);
        let mut v =
            json!({ "Rules": rules.iter().map(|r| Self::rule_json(scope, r)).collect::<Vec<_>>() });
        if more && let Some(last) = rules.last() {
            v["NextToken"] = json!(last.name);
        }
        Ok(v)
    }

    pub async fn set_rule_state(
        &self,
        scope: &Scope,
        req: &Value,
        enabled: bool,
    ) -> Result<Value, EventsError> {
        let bus = self.bus_name(scope, str_field(req, "EventBusName"))?;
        let name = str_field(req, "Name").unwrap_or_default();
        check_name("name", name, 64, false)?;
        let mut r = self.rule(scope, &bus, name)?;
        r.enabled = enabled;
        self.save_rule(scope, r).await?;
        Ok(json!({}))
    }

    pub async fn delete_rule(&self, scope: &Scope, req: &Value) -> Result<Value, EventsError> {
        let bus = self.bus_name(scope, str_field(req, "EventBusName"))?;
        let name = str_field(req, "Name").unwrap_or_default().to_owned();
        check_name("name", &name, 64, false)?;
        let Ok(r) = self.rule(scope, &bus, &name) else {
            // Deleting a rule that does not exist succeeds.
            return Ok(json!({}));
        };
        if !r.targets.is_empty() {
            return Err(validation("Rule can't be deleted since it has targets."));
        }
        let (a, rg) = acct(scope);
        let (a2, r2, b2, n2) = (a.clone(), rg.clone(), bus.clone(), name.clone());
        self.write(move |c| {
            c.execute(
                "DELETE FROM rules WHERE account = ?1 AND region = ?2 AND bus = ?3 AND name = ?4",
                params![a2, r2, b2, n2],
            )
            .map(|_| ())
        })
        .await?;
        let key = (a, rg, bus, name);
        let mut st = self.modify()?;
        st.rules.remove(&key);
        st.patterns.remove(&key);
        Ok(json!({}))
    }

    pub async fn put_targets(&self, scope: &Scope, req: &Value) -> Result<Value, EventsError> {
        let bus = self.bus_name(scope, str_field(req, "EventBusName"))?;
        let name = str_field(req, "Rule").unwrap_or_default();
        check_name("rule", name, 64, false)?;
        let targets = req
            .get("Targets")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if targets.is_empty() || targets.len() > 100 {
            return Err(validation(format!(
                "1 validation error detected: Value at 'targets' failed to satisfy constraint: Member must have length {}",
                if targets.is_empty() {
                    "greater than or equal to 1"
                } else {
                    "less than or equal to 100"
                }
            )));
        }
        let mut rule = self.rule(scope, &bus, name)?;
        let mut failed = vec![];
        for t in targets {
            let id = str_field(&t, "Id").unwrap_or_default().to_owned();
            check_name("targets.member.id", &id, 64, false)?;
            if let Err(m) = check_target(&t) {
                failed.push(
                    json!({"TargetId": id, "ErrorCode": "ValidationException", "ErrorMessage": m}),
                );
                continue;
            }
            match rule
                .targets
                .iter_mut()
                .find(|x| str_field(x, "Id") == Some(id.as_str()))
            {
                Some(x) => *x = t,
                None => {
                    if rule.targets.len() >= 5 {
                        failed.push(json!({"TargetId": id, "ErrorCode": "LimitExceededException",
                            "ErrorMessage": "The requested resource exceeds the maximum number allowed."}));
                        continue;
                    }
                    rule.targets.push(t)
                }
            }
        }
        self.save_rule(scope, rule).await?;
        Ok(json!({"FailedEntryCount": failed.len(), "FailedEntries": failed}))
    }

    pub async fn remove_targets(&self, scope: &Scope, req: &Value) -> Result<Value, EventsError> {
        let bus = self.bus_name(scope, str_field(req, "EventBusName"))?;
        let name = str_field(req, "Rule").unwrap_or_default();
        check_name("rule", name, 64, false)?;
        let ids: Vec<String> = req
            .get("Ids")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let mut rule = self.rule(scope, &bus, name)?;
        rule.targets
            .retain(|t| !ids.iter().any(|i| str_field(t, "Id") == Some(i.as_str())));
        self.save_rule(scope, rule).await?;
        Ok(json!({"FailedEntryCount": 0, "FailedEntries": []}))
    }

    pub fn list_targets(&self, scope: &Scope, req: &Value) -> Result<Value, EventsError> {
        let bus = self.bus_name(scope, str_field(req, "EventBusName"))?;
        let name = str_field(req, "Rule").unwrap_or_default();
        check_name("rule", name, 64, false)?;
        let rule = self.rule(scope, &bus, name)?;
        Ok(json!({ "Targets": rule.targets }))
    }

    pub fn test_event_pattern(&self, req: &Value) -> Result<Value, EventsError> {
        let pattern = str_field(req, "EventPattern").unwrap_or_default();
        let p = EventPattern::parse(pattern)
            .map_err(|e| EventsError::InvalidPattern(e.event_bridge_message()))?;
        let event: Value = str_field(req, "Event")
            .and_then(|e| serde_json::from_str(e).ok())
            .filter(|e: &Value| {
                ["id", "account", "source", "time", "region", "detail-type"]
                    .iter()
                    .all(|k| e.get(*k).is_some())
            })
            .ok_or_else(|| validation("Parameter Event is not valid."))?;
        Ok(json!({ "Result": p.matches(&event) }))
    }

    /// PutEvents: one result per entry, in order.
    pub async fn put_events(&self, scope: &Scope, req: &Value) -> Result<Value, EventsError> {
        let entries = req
            .get("Entries")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if entries.is_empty() || entries.len() > 10 {
            return Err(validation(format!(
                "1 validation error detected: Value '{}' at 'entries' failed to satisfy constraint: Member must have length {}",
                Value::Array(entries.clone()),
                if entries.is_empty() {
                    "greater than or equal to 1"
                } else {
                    "less than or equal to 10"
                }
            )));
        }
        let size: usize = entries.iter().map(entry_size).sum();
        if size > MAX_PUT_EVENTS_BYTES {
            return Err(validation(
                "Total size of the entries in the request is over the limit.",
            ));
        }
        let now = now_ms();
        let mut results = Vec::with_capacity(entries.len());
        let mut failed = 0;
        for e in &entries {
            match self.put_one(scope, e, now).await {
                Ok(id) => results.push(json!({ "EventId": id })),
                Err((code, message)) => {
                    failed += 1;
                    results.push(json!({"ErrorCode": code, "ErrorMessage": message}));
                }
            }
        }
        Ok(json!({"FailedEntryCount": failed, "Entries": results}))
    }

    async fn put_one(
        &self,
        scope: &Scope,
        e: &Value,
        now: i64,
    ) -> Result<String, (&'static str, String)> {
        let required = |k: &str, wire: &str| -> Result<String, (&'static str, String)> {
            match str_field(e, k) {
                Some(v) if !v.is_empty() => Ok(v.to_owned()),
                _ => Err((
                    "InvalidArgument",
                    format!(
                        "Parameter {wire} is not valid. Reason: {wire} is a required argument."
                    ),
                )),
            }
        };
        let source = required("Source", "Source")?;
        let detail_type = required("DetailType", "DetailType")?;
        let detail_text = required("Detail", "Detail")?;
        let detail: Value = serde_json::from_str(&detail_text)
            .ok()
            .filter(Value::is_object)
            .ok_or(("MalformedDetail", "Detail is malformed.".to_owned()))?;
        let bus = self
            .bus_name(scope, str_field(e, "EventBusName"))
            .map_err(|err| ("ResourceNotFoundException", err.to_string()))?;
        let time = e
            .get("Time")
            .and_then(Value::as_f64)
            .map(|s| iso((s * 1000.0) as i64))
            .unwrap_or_else(|| iso(now));
        let id = uuid::Uuid::new_v4().to_string();
        let event = json!({
            "version": "0",
            "id": id,
            "detail-type": detail_type,
            "source": source,
            "account": scope.account.as_str(),
            "time": time,
            "region": scope.region.as_str(),
            "resources": e.get("Resources").cloned().unwrap_or(json!([])),
            "detail": detail,
        });
        self.metrics.events.fetch_add(1, Ordering::Relaxed);
        self.route(scope, &bus, &event, &iso(now)).await;
        Ok(id)
    }

    /// Sends `event` to the targets of every enabled rule of `bus` whose
    /// pattern matches it.
    async fn route(&self, scope: &Scope, bus: &str, event: &Value, ingestion: &str) {
        let (a, r) = acct(scope);
        let matched: Vec<Rule> = match self.read() {
            Ok(st) => st
                .rules
                .iter()
                .filter(|(k, rule)| {
                    k.0 == a
                        && k.1 == r
                        && k.2 == bus
                        && rule.enabled
                        && st.patterns.get(*k).is_some_and(|p| p.matches(event))
                })
                .map(|(_, rule)| rule.clone())
                .collect(),
            Err(_) => return,
        };
        for rule in matched {
            self.send(scope, &rule, event, ingestion).await;
        }
    }

    async fn send(&self, scope: &Scope, rule: &Rule, event: &Value, ingestion: &str) {
        let arn = rule_arn(scope, &rule.bus, &rule.name);
        for t in &rule.targets {
            let Some(target_arn) = str_field(t, "Arn") else {
                continue;
            };
            let payload = shape(
                t,
                event,
                &transform::RuleContext {
                    rule_arn: &arn,
                    rule_name: &rule.name,
                    ingestion_time: ingestion,
                },
            );
            match self
                .deliver
                .deliver(scope, target_arn, &arn, Bytes::from(payload))
                .await
            {
                Ok(()) => {
                    self.metrics.deliveries.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    self.metrics.refused.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(rule = %arn, target = %target_arn, error = %e,
                        "an event was not delivered to a rule's target");
                }
            }
        }
    }
}

/// What a target receives for `event`.
fn shape(t: &Value, event: &Value, ctx: &transform::RuleContext<'_>) -> String {
    if let Some(input) = str_field(t, "Input") {
        return input.to_owned();
    }
    if let Some(path) = str_field(t, "InputPath") {
        return transform::select(event, path)
            .map(Value::to_string)
            .unwrap_or_else(|| "null".into());
    }
    if let Some(tr) = t.get("InputTransformer") {
        let vars: Vec<(String, Option<Value>)> = tr
            .get("InputPathsMap")
            .and_then(Value::as_object)
            .map(|m: &Map<String, Value>| {
                m.iter()
                    .map(|(k, p)| {
                        (
                            k.clone(),
                            p.as_str()
                                .and_then(|p| transform::select(event, p))
                                .cloned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let template = str_field(tr, "InputTemplate").unwrap_or_default();
        return transform::fill(template, &vars, event, ctx);
    }
    event.to_string()
}

/// A target this server can deliver to, with a valid input shape.
fn check_target(t: &Value) -> Result<(), String> {
    let arn = str_field(t, "Arn").unwrap_or_default();
    let is_lambda = model::FunctionRef::parse(arn)
        .is_ok_and(|r| r.account.is_some() && r.region.is_some())
        && arn.starts_with("arn:");
    if !is_lambda {
        return Err(format!(
            "Target {arn} is not supported on this server: targets are Lambda functions."
        ));
    }
    let given = ["Input", "InputPath", "InputTransformer"]
        .iter()
        .filter(|k| t.get(**k).is_some())
        .count();
    if given > 1 {
        return Err("Only one of Input, InputPath, or InputTransformer must be provided.".into());
    }
    if let Some(i) = str_field(t, "Input")
        && serde_json::from_str::<Value>(i).is_err()
    {
        return Err("Input is not a valid JSON text.".into());
    }
    if let Some(p) = str_field(t, "InputPath") {
        transform::check_path(p).map_err(|e| e.to_string())?;
    }
    if let Some(tr) = t.get("InputTransformer") {
        if str_field(tr, "InputTemplate").is_none_or(str::is_empty) {
            return Err("InputTemplate is a required argument.".into());
        }
        if let Some(m) = tr.get("InputPathsMap").and_then(Value::as_object) {
            if m.len() > 100 {
                return Err("InputPathsMap has more than 100 entries.".into());
            }
            for (k, p) in m {
                if k.starts_with("aws.events.") {
                    return Err(format!("InputPathsMap key {k} is reserved."));
                }
                let p = p.as_str().unwrap_or_default();
                transform::check_path(p).map_err(|e| e.to_string())?;
            }
        }
    }
    Ok(())
}

/// An entry's size as AWS counts it toward PutEvents' limit.
fn entry_size(e: &Value) -> usize {
    let s = |k| str_field(e, k).map_or(0, str::len);
    let resources: usize = e.get("Resources").and_then(Value::as_array).map_or(0, |r| {
        r.iter().filter_map(Value::as_str).map(str::len).sum()
    });
    14 * usize::from(e.get("Time").is_some())
        + s("Source")
        + s("DetailType")
        + s("Detail")
        + resources
}

#[cfg(test)]
mod tests;
