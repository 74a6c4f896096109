//! Event source mappings: functions consume queues and streams.
//!
//! [`Esm`] answers the five mapping operations (with Lambda's rules in
//! [`validate`]), keeps every mapping in `esm.db` ([`db`]), and runs one
//! poller per enabled mapping. A poller takes a batch from its source,
//! invokes the function synchronously through [`invoke::Invoker`]
//! (`resolve`, then `execute`), and only then deletes, acknowledges or
//! checkpoints what the function took; a throttled invocation is retried
//! after a pause, never dropped. Pollers start again from the stored
//! mappings when the server starts.
//!
//! Nothing here speaks HTTP: [`EsmError`] names each refusal and the `api`
//! crate writes it in AWS's shape.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use invoke::{InvokeError, Invoker};
use model::{RefError, Scope};

pub mod db;
pub mod mapping;
mod metrics;
mod poller;
mod sqs;
pub mod validate;
pub mod wire;

pub use db::DbError;
pub use mapping::{Kind, Mapping, State};
pub use metrics::{Counters, MappingStats};
use wire::{MappingConfiguration, MappingInput, MappingList};

/// Why a mapping operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum EsmError {
    /// `ValidationException`: a member broke a modeled constraint.
    #[error("{0}")]
    Validation(String),
    /// `InvalidParameterValueException`: a member the source type does not
    /// take, or members that do not go together.
    #[error("{0}")]
    InvalidParameter(String),
    /// `ResourceNotFoundException`: no such mapping in the caller's scope.
    #[error("The resource you requested does not exist.")]
    NotFound,
    /// The function reference is malformed, elsewhere, or names nothing.
    #[error(transparent)]
    Function(#[from] RefError),
    /// `ResourceConflictException`: the same source and function are
    /// mapped already.
    #[error("{0}")]
    Conflict(String),
    /// `ResourceInUseException`: the mapping is being deleted.
    #[error("{0}")]
    InUse(String),
    /// The mapping store failed (`ServiceException`).
    #[error(transparent)]
    Store(#[from] DbError),
    /// The function store failed while the function was looked up.
    #[error("cannot look up the function: {0}")]
    Lookup(String),
}

impl From<InvokeError> for EsmError {
    fn from(e: InvokeError) -> Self {
        match e {
            InvokeError::Reference(r) => Self::Function(r),
            InvokeError::NotFound(nf) => Self::Function(RefError::NotFound(nf)),
            other => Self::Lookup(other.to_string()),
        }
    }
}

/// The largest page `ListEventSourceMappings` answers.
const MAX_ITEMS: usize = 10_000;

struct Entry {
    mapping: Mapping,
    counters: Arc<Counters>,
    runner: Option<poller::Runner>,
}

pub(crate) struct Inner {
    db: db::Db,
    invoker: Arc<Invoker>,
    entries: Mutex<HashMap<String, Entry>>,
    /// One control-plane change at a time: validation against the other
    /// mappings (duplicates) and the write that follows stay together.
    writes: tokio::sync::Mutex<()>,
    sources: sqs::Clients,
}

/// The event source mapping service.
#[derive(Clone)]
pub struct Esm(Arc<Inner>);

impl Esm {
    /// Opens `esm.db` in the data directory and loads the mappings; call
    /// [`Esm::resume`] inside the runtime to start their pollers.
    pub fn open(data_dir: &std::path::Path, invoker: Arc<Invoker>) -> Result<Self, DbError> {
        let db = db::Db::open(&data_dir.join("esm.db"))?;
        let mut entries = HashMap::new();
        for m in db.load_all()? {
            entries.insert(
                m.uuid.clone(),
                Entry {
                    mapping: m,
                    counters: Arc::default(),
                    runner: None,
                },
            );
        }
        Ok(Self(Arc::new(Inner {
            db,
            invoker,
            entries: Mutex::new(entries),
            writes: tokio::sync::Mutex::new(()),
            sources: sqs::Clients::default(),
        })))
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.0.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts the pollers of the stored mappings, finishing what a stopped
    /// server left half done (a mapping being deleted is deleted).
    pub async fn resume(&self) {
        let _w = self.0.writes.lock().await;
        let stored: Vec<Mapping> = self.entries().values().map(|e| e.mapping.clone()).collect();
        for mut m in stored {
            if m.state == State::Deleting {
                if let Err(e) = self.0.db.delete(&m.uuid).await {
                    tracing::error!(uuid = %m.uuid, error = %e, "cannot finish deleting an event source mapping");
                    continue;
                }
                self.entries().remove(&m.uuid);
                continue;
            }
            let settled = if m.enabled {
                State::Enabled
            } else {
                State::Disabled
            };
            if m.state != settled {
                m.state = settled;
                if let Err(e) = self.0.db.put(&m).await {
                    tracing::error!(uuid = %m.uuid, error = %e, "cannot store an event source mapping's state");
                }
            }
            self.install(m);
        }
        let n = self.entries().len();
        if n > 0 {
            tracing::info!(mappings = n, "event source mappings resumed");
        }
    }

    /// Puts `m` in the table and starts its poller if it is enabled (after
    /// stopping none: callers stop the old poller first).
    fn install(&self, m: Mapping) {
        let mut entries = self.entries();
        let counters = entries
            .get(&m.uuid)
            .map(|e| e.counters.clone())
            .unwrap_or_default();
        let runner = if m.enabled {
            Some(poller::start(self.0.clone(), m.clone(), counters.clone()))
        } else {
            None
        };
        entries.insert(
            m.uuid.clone(),
            Entry {
                mapping: m,
                counters,
                runner,
            },
        );
    }

    /// Stops a mapping's poller and waits until its in-flight batch is done.
    async fn stop_runner(&self, uuid: &str) {
        let runner = self.entries().get_mut(uuid).and_then(|e| e.runner.take());
        if let Some(r) = runner {
            r.stop().await;
        }
    }

    fn find(&self, scope: &Scope, uuid: &str) -> Result<Mapping, EsmError> {
        self.entries()
            .get(uuid)
            .map(|e| &e.mapping)
            .filter(|m| &m.scope == scope)
            .cloned()
            .ok_or(EsmError::NotFound)
    }

    /// Resolves `FunctionName` to the ARN a mapping stores (qualified as
    /// given); the function, version or alias must exist.
    async fn function_arn(&self, scope: &Scope, name: &str) -> Result<String, EsmError> {
        let given = model::resolve_ref(scope, name)?;
        match self.0.invoker.resolve(scope, name, None).await {
            Ok(target) => Ok(target.invoked_arn().to_string()),
            // Invoke names an unqualified function `:$LATEST`; a mapping
            // names it as given.
            Err(InvokeError::NotFound(mut nf)) if given.qualifier.is_none() => {
                nf.qualifier = None;
                Err(RefError::NotFound(nf).into())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// `CreateEventSourceMapping`.
    pub async fn create(
        &self,
        scope: &Scope,
        input: MappingInput,
    ) -> Result<MappingConfiguration, EsmError> {
        validate::check_model(&input, true)?;
        let function_arn = self
            .function_arn(scope, input.function_name.as_deref().unwrap_or_default())
            .await?;
        let kind = validate::classify(&input)?;
        validate::check_members(kind, &input, true)?;
        let uuid = uuid::Uuid::new_v4().to_string();
        let m = Mapping {
            uuid,
            scope: scope.clone(),
            kind,
            event_source_arn: input.event_source_arn.clone(),
            function_arn,
            enabled: input.enabled.unwrap_or(true),
            state: State::Creating,
            state_reason: kind.user_reason().to_owned(),
            batch_size: input.batch_size.unwrap_or(kind.default_batch_size()),
            batching_window_s: input.maximum_batching_window_in_seconds,
            parallelization_factor: input.parallelization_factor,
            starting_position: input.starting_position.clone(),
            starting_position_timestamp: input.starting_position_timestamp,
            filter_criteria: input.filter_criteria.clone(),
            destination_config: input.destination_config.clone(),
            maximum_record_age_s: input.maximum_record_age_in_seconds,
            bisect_on_error: input.bisect_batch_on_function_error,
            maximum_retry_attempts: input.maximum_retry_attempts,
            tumbling_window_s: input.tumbling_window_in_seconds,
            topics: input.topics.clone(),
            queues: input.queues.clone(),
            source_access: input.source_access_configurations.clone(),
            self_managed: input.self_managed_event_source.clone(),
            response_types: input.function_response_types.clone().unwrap_or_default(),
            scaling: input.scaling_config.clone(),
            kafka_config: input.self_managed_kafka_event_source_config.clone(),
            tags: input.tags.clone().unwrap_or_default(),
            last_modified_ms: model::time_fmt::now_ms(),
            last_processing_result: None,
        };
        validate::check_combined(&m)?;
        poller::check_supported(&m)?;
        let _w = self.0.writes.lock().await;
        self.check_duplicate(&m)?;
        self.0.db.put(&m).await?;
        let answer = m.to_wire();
        let mut settled = m;
        settled.state = if settled.enabled {
            State::Enabled
        } else {
            State::Disabled
        };
        self.0.db.put(&settled).await?;
        self.install(settled);
        Ok(answer)
    }

    /// Refuses a second mapping of the same source to the same function.
    fn check_duplicate(&self, m: &Mapping) -> Result<(), EsmError> {
        let entries = self.entries();
        let same = entries.values().map(|e| &e.mapping).find(|o| {
            o.scope == m.scope
                && o.function_arn == m.function_arn
                && o.event_source_arn == m.event_source_arn
                && o.queues == m.queues
                && o.topics == m.topics
                && o.self_managed == m.self_managed
        });
        let Some(o) = same else { return Ok(()) };
        let function = m
            .function_arn
            .split(":function:")
            .nth(1)
            .unwrap_or(&m.function_arn);
        let source = m.event_source_arn.as_deref().unwrap_or_default();
        Err(EsmError::Conflict(match m.kind {
            Kind::Sqs { .. } => format!(
                "An event source mapping with SQS arn (\" {source} \") and function (\" {function} \") already exists. Please update or delete the existing mapping with UUID {}",
                o.uuid
            ),
            _ => format!(
                "The event source arn (\" {source} \") and function (\" {function} \") provided mapping already exists. Please update or delete the existing mapping with UUID {}",
                o.uuid
            ),
        }))
    }

    /// `GetEventSourceMapping`.
    pub fn get(&self, scope: &Scope, uuid: &str) -> Result<MappingConfiguration, EsmError> {
        Ok(self.find(scope, uuid)?.to_wire())
    }

    /// `UpdateEventSourceMapping`.
    pub async fn update(
        &self,
        scope: &Scope,
        uuid: &str,
        input: MappingInput,
    ) -> Result<MappingConfiguration, EsmError> {
        validate::check_model(&input, false)?;
        let _w = self.0.writes.lock().await;
        let old = self.find(scope, uuid)?;
        if old.state == State::Deleting {
            return Err(EsmError::InUse(format!(
                "Cannot update the event source mapping {uuid} because it is being deleted."
            )));
        }
        validate::check_members(old.kind, &input, false)?;
        let mut m = old.clone();
        if let Some(f) = &input.function_name {
            m.function_arn = self.function_arn(scope, f).await?;
        }
        let set = |slot: &mut Option<i64>, v: Option<i64>| {
            if v.is_some() {
                *slot = v;
            }
        };
        if let Some(b) = input.batch_size {
            m.batch_size = b;
        }
        set(
            &mut m.batching_window_s,
            input.maximum_batching_window_in_seconds,
        );
        set(&mut m.parallelization_factor, input.parallelization_factor);
        set(
            &mut m.maximum_record_age_s,
            input.maximum_record_age_in_seconds,
        );
        set(&mut m.maximum_retry_attempts, input.maximum_retry_attempts);
        set(&mut m.tumbling_window_s, input.tumbling_window_in_seconds);
        if let Some(b) = input.bisect_batch_on_function_error {
            m.bisect_on_error = Some(b);
        }
        if let Some(fc) = input.filter_criteria {
            // An empty filter list removes the filters.
            m.filter_criteria = (!fc.filters.is_empty()).then_some(fc);
        }
        if let Some(d) = input.destination_config {
            m.destination_config = Some(d);
        }
        if let Some(sac) = input.source_access_configurations {
            m.source_access = Some(sac);
        }
        if let Some(t) = input.function_response_types {
            m.response_types = t;
        }
        if let Some(s) = input.scaling_config {
            m.scaling = s.maximum_concurrency.is_some().then_some(s);
        }
        if let Some(k) = input.self_managed_kafka_event_source_config {
            m.kafka_config = Some(k);
        }
        if let Some(e) = input.enabled {
            m.enabled = e;
        }
        validate::check_combined(&m)?;
        m.state = match (old.enabled, m.enabled) {
            (false, true) => State::Enabling,
            (true, false) => State::Disabling,
            _ => State::Updating,
        };
        m.state_reason = m.kind.user_reason().to_owned();
        m.last_modified_ms = model::time_fmt::now_ms();
        self.0.db.put(&m).await?;
        let answer = m.to_wire();
        self.stop_runner(uuid).await;
        m.state = if m.enabled {
            State::Enabled
        } else {
            State::Disabled
        };
        // The poller may have recorded a processing result meanwhile.
        if let Some(e) = self.entries().get(uuid) {
            m.last_processing_result = e.mapping.last_processing_result.clone();
        }
        self.0.db.put(&m).await?;
        self.install(m);
        Ok(answer)
    }

    /// `DeleteEventSourceMapping`: answers with the mapping in `Deleting`;
    /// the poller stops (its in-flight batch finishes) and the mapping goes.
    pub async fn delete(
        &self,
        scope: &Scope,
        uuid: &str,
    ) -> Result<MappingConfiguration, EsmError> {
        let w = self.0.writes.lock().await;
        let mut m = self.find(scope, uuid)?;
        if m.state == State::Deleting {
            return Err(EsmError::InUse(format!(
                "The event source mapping {uuid} is being deleted already."
            )));
        }
        m.state = State::Deleting;
        m.state_reason = m.kind.user_reason().to_owned();
        self.0.db.put(&m).await?;
        if let Some(e) = self.entries().get_mut(uuid) {
            e.mapping.state = State::Deleting;
        }
        drop(w);
        let answer = m.to_wire();
        let this = self.clone();
        let uuid = uuid.to_owned();
        tokio::spawn(async move {
            this.stop_runner(&uuid).await;
            let _w = this.0.writes.lock().await;
            match this.0.db.delete(&uuid).await {
                Ok(()) => {
                    this.entries().remove(&uuid);
                }
                Err(e) => {
                    tracing::error!(%uuid, error = %e, "cannot delete an event source mapping; it is deleted when the server starts again");
                }
            }
        });
        Ok(answer)
    }

    /// `ListEventSourceMappings`, optionally for one source and/or one
    /// function, a page after `marker`.
    pub async fn list(
        &self,
        scope: &Scope,
        event_source_arn: Option<&str>,
        function_name: Option<&str>,
        marker: Option<&str>,
        max_items: Option<&str>,
    ) -> Result<MappingList, EsmError> {
        let max = match max_items {
            None => 100,
            Some(s) => {
                let n: i64 = s.parse().map_err(|_| {
                    EsmError::InvalidParameter(format!("Invalid MaxItems value: {s}"))
                })?;
                let mut v = model::names::ValidationErrors::new();
                if n < 1 {
                    v.push(
                        "maxItems",
                        s,
                        "Member must have value greater than or equal to 1",
                    );
                } else if n > MAX_ITEMS as i64 {
                    v.push(
                        "maxItems",
                        s,
                        format!("Member must have value less than or equal to {MAX_ITEMS}"),
                    );
                }
                v.into_result().map_err(EsmError::Validation)?;
                n as usize
            }
        };
        let function = match function_name {
            Some(f) => {
                let r = model::resolve_ref(scope, f)?;
                Some((r.name, r.qualifier))
            }
            None => None,
        };
        let mut all: Vec<Mapping> = self
            .entries()
            .values()
            .map(|e| &e.mapping)
            .filter(|m| &m.scope == scope)
            .filter(|m| event_source_arn.is_none_or(|a| m.event_source_arn.as_deref() == Some(a)))
            .filter(|m| {
                function.as_ref().is_none_or(|(name, q)| {
                    let arn = scope.function_arn(name);
                    match q {
                        Some(q) => m.function_arn == arn.qualified(q.clone()).to_string(),
                        None => {
                            let base = arn.to_string();
                            m.function_arn == base
                                || m.function_arn
                                    .strip_prefix(&base)
                                    .is_some_and(|rest| rest.starts_with(':'))
                        }
                    }
                })
            })
            .cloned()
            .collect();
        all.sort_by(|a, b| a.uuid.cmp(&b.uuid));
        let start = match marker {
            Some(mk) => all.partition_point(|m| m.uuid.as_str() <= mk),
            None => 0,
        };
        let page: Vec<MappingConfiguration> = all
            .iter()
            .skip(start)
            .take(max)
            .map(Mapping::to_wire)
            .collect();
        let next_marker = (start + page.len() < all.len())
            .then(|| page.last().map(|m| m.uuid.clone()))
            .flatten();
        Ok(MappingList {
            next_marker,
            event_source_mappings: page,
        })
    }

    /// Every mapping's state and counters, for the metrics and the status.
    pub fn stats(&self) -> Vec<MappingStats> {
        let mut out: Vec<MappingStats> = self
            .entries()
            .values()
            .map(|e| MappingStats::of(&e.mapping, &e.counters))
            .collect();
        out.sort_by(|a, b| a.uuid.cmp(&b.uuid));
        out
    }

    /// Stops every poller (each finishes its in-flight batch).
    pub async fn shutdown(&self) {
        let runners: Vec<poller::Runner> = self
            .entries()
            .values_mut()
            .filter_map(|e| e.runner.take())
            .collect();
        for r in runners {
            r.stop().await;
        }
    }
}

impl Inner {
    /// Records a poller's outcome in the mapping (`LastProcessingResult`).
    pub(crate) fn processing_result(&self, uuid: &str, result: &str) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = entries.get_mut(uuid)
            && e.mapping.last_processing_result.as_deref() != Some(result)
        {
            e.mapping.last_processing_result = Some(result.to_owned());
        }
    }
}
