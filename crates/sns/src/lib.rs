//! SNS topics and subscriptions: the operations of the SNS API as typed
//! calls (no HTTP), validated with SNS's codes and messages ([`SnsError`]),
//! kept in memory for publishing and written through to `sns.db` before
//! any change is acknowledged.
//!
//! [`Topics::publish`] does not deliver: it answers the [`Delivery`] list a
//! message fans out to (after each subscription's filter policy), and the
//! caller hands each to the asynchronous layer (a Lambda event through the
//! durable queue, an HTTP POST through the webhook queue), after checking
//! that the function's resource policy lets SNS invoke it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use event_pattern::sns::{Attribute, FilterPolicy, Scope as FilterScope};
use model::Scope;
use sha2::Digest as _;

mod db;
pub mod message;
pub mod types;
mod validate;

#[cfg(test)]
mod tests;

pub use message::{Attributes, MessageAttribute};
pub use types::{Protocol, SnsError, Subscription, Topic, TopicArn};

use db::Db;
use message::{Notification, Signer};

/// Most topics or subscriptions one listing page holds.
pub const PAGE_SIZE: usize = 100;
/// The largest message, attributes included.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;
/// Most entries in a `PublishBatch`.
pub const MAX_BATCH_ENTRIES: usize = 10;
/// How long a FIFO topic remembers a deduplication id.
const DEDUP_WINDOW_MS: i64 = 5 * 60 * 1000;

/// Counters named as SNS's CloudWatch metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    pub messages_published: AtomicU64,
    pub notifications_delivered: AtomicU64,
    pub notifications_failed: AtomicU64,
    pub notifications_filtered_out: AtomicU64,
}

/// What one subscription receives for one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Invoke `function_arn` asynchronously with `event` (SNS's Lambda
    /// event), if its resource policy lets `sns.amazonaws.com` invoke it
    /// for `topic_arn`.
    Lambda {
        subscription_arn: String,
        topic_arn: String,
        topic_account: String,
        function_arn: String,
        event: Vec<u8>,
    },
    /// POST `body` to `url` with SNS's headers.
    Http {
        subscription_arn: Option<String>,
        url: String,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
}

/// A message to publish, as the API received it.
#[derive(Debug, Clone, Default)]
pub struct PublishInput {
    pub topic_arn: Option<String>,
    pub target_arn: Option<String>,
    pub phone_number: Option<String>,
    pub message: Option<String>,
    pub subject: Option<String>,
    pub message_structure: Option<String>,
    pub attributes: Attributes,
    pub message_group_id: Option<String>,
    pub message_deduplication_id: Option<String>,
}

/// One entry of a `PublishBatch`.
#[derive(Debug, Clone, Default)]
pub struct BatchEntry {
    pub id: String,
    pub message: Option<String>,
    pub subject: Option<String>,
    pub message_structure: Option<String>,
    pub attributes: Attributes,
    pub message_group_id: Option<String>,
    pub message_deduplication_id: Option<String>,
}

/// A published message and where it goes.
#[derive(Debug, Clone)]
pub struct Published {
    pub message_id: String,
    pub sequence_number: Option<String>,
    pub deliveries: Vec<Delivery>,
}

#[derive(Debug, Clone)]
pub struct BatchSuccess {
    pub id: String,
    pub message_id: String,
    pub sequence_number: Option<String>,
}

#[derive(Debug, Clone)]
pub struct BatchFailure {
    pub id: String,
    pub code: &'static str,
    pub message: String,
    pub sender_fault: bool,
}

#[derive(Debug, Clone, Default)]
pub struct BatchPublished {
    pub successful: Vec<BatchSuccess>,
    pub failed: Vec<BatchFailure>,
    pub deliveries: Vec<Delivery>,
}

/// What `Subscribe` answers, and the confirmation request an HTTP endpoint
/// must be sent.
#[derive(Debug, Clone)]
pub struct Subscribed {
    pub subscription_arn: String,
    pub confirmation: Option<Delivery>,
}

/// A page of a listing.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_token: Option<String>,
}

struct Live {
    sub: Subscription,
    filter: Filter,
}

enum Filter {
    None,
    Policy(Arc<FilterPolicy>),
    /// A stored policy that no longer parses: nothing matches.
    Unreadable,
}

impl Filter {
    fn from(policy: Option<Arc<FilterPolicy>>) -> Self {
        policy.map_or(Filter::None, Filter::Policy)
    }
}

#[derive(Default)]
struct State {
    topics: BTreeMap<String, Topic>,
    subs: BTreeMap<String, Live>,
    by_topic: HashMap<String, BTreeSet<String>>,
}

impl State {
    fn insert_sub(&mut self, live: Live) {
        self.by_topic
            .entry(live.sub.topic_arn.clone())
            .or_default()
            .insert(live.sub.arn.clone());
        self.subs.insert(live.sub.arn.clone(), live);
    }

    fn remove_sub(&mut self, arn: &str) -> Option<Live> {
        let live = self.subs.remove(arn)?;
        if let Some(set) = self.by_topic.get_mut(&live.sub.topic_arn) {
            set.remove(arn);
        }
        Some(live)
    }
}

#[derive(Default)]
struct Fifo {
    /// Deduplication id -> (seen at, message id, sequence number).
    seen: HashMap<String, (i64, String, String)>,
    sequence: u64,
}

/// Every topic and subscription of the server.
pub struct Topics {
    db: Db,
    state: RwLock<State>,
    /// Serialises changes: each validates, writes to disk, then to memory.
    write: tokio::sync::Mutex<()>,
    fifo: Mutex<HashMap<String, Fifo>>,
    signer: Signer,
    metrics: Metrics,
}

fn now_ms() -> i64 {
    model::time_fmt::now_ms()
}

fn compile_filter(
    sub: &Subscription,
    on_subscribe: bool,
) -> Result<Option<Arc<FilterPolicy>>, SnsError> {
    let Some(text) = &sub.filter_policy else {
        return Ok(None);
    };
    let scope = match sub.filter_policy_scope.as_deref() {
        Some("MessageBody") => FilterScope::MessageBody,
        _ => FilterScope::MessageAttributes,
    };
    FilterPolicy::parse(text, scope)
        .map(|p| Some(Arc::new(p)))
        .map_err(|e| SnsError::InvalidParameter(e.message(on_subscribe)))
}

impl Topics {
    /// Opens (or creates) `sns.db` at `path` and loads it.
    pub fn open(path: &Path) -> Result<Self, SnsError> {
        Self::with_db(Db::open(path)?)
    }

    /// A store that lives in memory only (tests).
    pub fn in_memory() -> Result<Self, SnsError> {
        Self::with_db(Db::open_in_memory()?)
    }

    fn with_db(db: Db) -> Result<Self, SnsError> {
        let (topics, subs) = db.load()?;
        let mut state = State::default();
        for t in topics {
            state.topics.insert(t.arn.clone(), t);
        }
        for sub in subs {
            // A stored policy was valid when stored; if it no longer parses,
            // the subscription matches nothing rather than everything.
            let filter = match compile_filter(&sub, false) {
                Ok(Some(p)) => Filter::Policy(p),
                Ok(None) => Filter::None,
                Err(e) => {
                    tracing::error!(subscription = %sub.arn, error = %e, "stored filter policy no longer parses");
                    Filter::Unreadable
                }
            };
            state.insert_sub(Live { sub, filter });
        }
        let signer = Signer::new(db.signing_key()?);
        Ok(Topics {
            db,
            state: RwLock::new(state),
            write: tokio::sync::Mutex::new(()),
            fifo: Mutex::new(HashMap::new()),
            signer,
            metrics: Metrics::default(),
        })
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    fn read(&self) -> Result<std::sync::RwLockReadGuard<'_, State>, SnsError> {
        self.state
            .read()
            .map_err(|_| SnsError::Store("topic state lock poisoned".into()))
    }

    fn write_state(&self) -> Result<std::sync::RwLockWriteGuard<'_, State>, SnsError> {
        self.state
            .write()
            .map_err(|_| SnsError::Store("topic state lock poisoned".into()))
    }

    async fn persist(
        &self,
        f: impl FnOnce(&Db) -> Result<(), SnsError> + Send + 'static,
    ) -> Result<(), SnsError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(|e| SnsError::Store(e.to_string()))?
    }

    /// The topic `arn` names, in the caller's scope.
    fn topic(&self, scope: &Scope, arn: &str, param: &str) -> Result<Topic, SnsError> {
        let parsed = TopicArn::parse(arn).ok_or_else(|| SnsError::invalid(param))?;
        if !parsed.in_scope(scope) {
            return Err(SnsError::topic_not_found());
        }
        self.read()?
            .topics
            .get(arn)
            .cloned()
            .ok_or_else(SnsError::topic_not_found)
    }

    // ---- topics ---------------------------------------------------------

    /// `CreateTopic`: creates the topic, or answers the existing one when
    /// the attributes match.
    pub async fn create_topic(
        &self,
        scope: &Scope,
        name: Option<&str>,
        attributes: &BTreeMap<String, String>,
        tags: &[(String, String)],
    ) -> Result<String, SnsError> {
        let name = name.ok_or_else(|| {
            SnsError::Validation(
                "1 validation error detected: Value null at 'name' failed to satisfy constraint: Member must not be null".into(),
            )
        })?;
        let fifo = validate::topic_name(name, attributes)?;
        let mut candidate = Topic {
            arn: types::topic_arn(scope, name),
            scope: scope.clone(),
            name: name.to_owned(),
            fifo,
            attributes: BTreeMap::new(),
            tags: BTreeMap::new(),
            created_ms: now_ms(),
            subscriptions_deleted: 0,
        };
        for (k, v) in attributes {
            validate::topic_attribute(&mut candidate, k, v, true)?;
        }
        validate::tags(tags)?;
        let _w = self.write.lock().await;
        if let Some(existing) = self.read()?.topics.get(&candidate.arn) {
            let mut merged = existing.clone();
            for (k, v) in attributes {
                validate::topic_attribute(&mut merged, k, v, true)?;
            }
            if merged.attributes != existing.attributes {
                return Err(SnsError::invalid(
                    "Attributes Reason: Topic already exists with different attributes",
                ));
            }
            if tags
                .iter()
                .any(|(k, v)| existing.tags.get(k).is_none_or(|e| e != v))
            {
                return Err(SnsError::invalid(
                    "Tags Reason: Topic already exists with different tags",
                ));
            }
            return Ok(existing.arn.clone());
        }
        candidate.tags = tags.iter().cloned().collect();
        let stored = candidate.clone();
        self.persist(move |db| db.put_topic(&stored)).await?;
        self.write_state()?
            .topics
            .insert(candidate.arn.clone(), candidate.clone());
        Ok(candidate.arn)
    }

    /// `DeleteTopic`: idempotent; removes the topic's subscriptions too.
    pub async fn delete_topic(&self, scope: &Scope, arn: Option<&str>) -> Result<(), SnsError> {
        let arn = required(arn, "topicArn")?;
        let parsed = TopicArn::parse(arn).ok_or_else(|| SnsError::invalid("TopicArn"))?;
        let _w = self.write.lock().await;
        if !parsed.in_scope(scope) || !self.read()?.topics.contains_key(arn) {
            return Ok(());
        }
        let owned = arn.to_owned();
        self.persist(move |db| db.delete_topic(&owned)).await?;
        let mut state = self.write_state()?;
        state.topics.remove(arn);
        let subs = state.by_topic.remove(arn).unwrap_or_default();
        for s in subs {
            state.subs.remove(&s);
        }
        drop(state);
        if let Ok(mut fifo) = self.fifo.lock() {
            fifo.remove(arn);
        }
        Ok(())
    }

    /// `ListTopics`.
    pub fn list_topics(
        &self,
        scope: &Scope,
        next_token: Option<&str>,
    ) -> Result<Page<String>, SnsError> {
        let state = self.read()?;
        let all: Vec<&String> = state
            .topics
            .values()
            .filter(|t| &t.scope == scope)
            .map(|t| &t.arn)
            .collect();
        page(all.into_iter().cloned().collect(), next_token)
    }

    /// `GetTopicAttributes`.
    pub fn topic_attributes(
        &self,
        scope: &Scope,
        arn: Option<&str>,
    ) -> Result<BTreeMap<String, String>, SnsError> {
        let arn = required(arn, "topicArn")?;
        let topic = self.topic(scope, arn, "TopicArn")?;
        let state = self.read()?;
        let (mut confirmed, mut pending) = (0u64, 0u64);
        for s in state.by_topic.get(arn).into_iter().flatten() {
            if let Some(l) = state.subs.get(s) {
                if l.sub.confirmed {
                    confirmed += 1;
                } else {
                    pending += 1;
                }
            }
        }
        let mut out = BTreeMap::new();
        out.insert("TopicArn".to_owned(), topic.arn.clone());
        out.insert("Owner".to_owned(), topic.scope.account.to_string());
        out.insert(
            "Policy".to_owned(),
            topic
                .attributes
                .get("Policy")
                .cloned()
                .unwrap_or_else(|| validate::default_topic_policy(&topic)),
        );
        out.insert(
            "DisplayName".to_owned(),
            topic
                .attributes
                .get("DisplayName")
                .cloned()
                .unwrap_or_default(),
        );
        out.insert("SubscriptionsConfirmed".to_owned(), confirmed.to_string());
        out.insert("SubscriptionsPending".to_owned(), pending.to_string());
        out.insert(
            "SubscriptionsDeleted".to_owned(),
            topic.subscriptions_deleted.to_string(),
        );
        out.insert(
            "EffectiveDeliveryPolicy".to_owned(),
            validate::DEFAULT_EFFECTIVE_DELIVERY_POLICY.to_owned(),
        );
        if topic.fifo {
            out.insert("FifoTopic".to_owned(), "true".to_owned());
            out.insert(
                "ContentBasedDeduplication".to_owned(),
                topic
                    .attributes
                    .get("ContentBasedDeduplication")
                    .cloned()
                    .unwrap_or_else(|| "false".to_owned()),
            );
        }
        for (k, v) in &topic.attributes {
            out.entry(k.clone()).or_insert_with(|| v.clone());
        }
        Ok(out)
    }

    /// `SetTopicAttributes`.
    pub async fn set_topic_attribute(
        &self,
        scope: &Scope,
        arn: Option<&str>,
        name: Option<&str>,
        value: Option<&str>,
    ) -> Result<(), SnsError> {
        let arn = required(arn, "topicArn")?;
        let name = required(name, "attributeName")?;
        let _w = self.write.lock().await;
        let mut topic = self.topic(scope, arn, "TopicArn")?;
        validate::topic_attribute(&mut topic, name, value.unwrap_or(""), false)?;
        let stored = topic.clone();
        self.persist(move |db| db.put_topic(&stored)).await?;
        self.write_state()?.topics.insert(topic.arn.clone(), topic);
        Ok(())
    }

    fn tagged_topic(&self, scope: &Scope, arn: Option<&str>) -> Result<Topic, SnsError> {
        let arn = required(arn, "resourceArn")?;
        match self.topic(scope, arn, "ResourceArn") {
            Ok(t) => Ok(t),
            Err(SnsError::Store(e)) => Err(SnsError::Store(e)),
            Err(_) => Err(SnsError::ResourceNotFound),
        }
    }

    /// `ListTagsForResource`.
    pub fn list_tags(
        &self,
        scope: &Scope,
        arn: Option<&str>,
    ) -> Result<Vec<(String, String)>, SnsError> {
        Ok(self.tagged_topic(scope, arn)?.tags.into_iter().collect())
    }

    /// `TagResource`: adds or replaces tags, at most 50 per topic.
    pub async fn tag(
        &self,
        scope: &Scope,
        arn: Option<&str>,
        tags: &[(String, String)],
    ) -> Result<(), SnsError> {
        validate::tags(tags)?;
        let _w = self.write.lock().await;
        let mut topic = self.tagged_topic(scope, arn)?;
        topic.tags.extend(tags.iter().cloned());
        if topic.tags.len() > validate::MAX_TAGS {
            return Err(SnsError::TagLimitExceeded);
        }
        let stored = topic.clone();
        self.persist(move |db| db.put_topic(&stored)).await?;
        self.write_state()?.topics.insert(topic.arn.clone(), topic);
        Ok(())
    }

    /// `UntagResource`.
    pub async fn untag(
        &self,
        scope: &Scope,
        arn: Option<&str>,
        keys: &[String],
    ) -> Result<(), SnsError> {
        let _w = self.write.lock().await;
        let mut topic = self.tagged_topic(scope, arn)?;
        for k in keys {
            topic.tags.remove(k);
        }
        let stored = topic.clone();
        self.persist(move |db| db.put_topic(&stored)).await?;
        self.write_state()?.topics.insert(topic.arn.clone(), topic);
        Ok(())
    }

    // ---- subscriptions --------------------------------------------------

    /// `Subscribe`. `base_url` is this server as the caller reached it.
    #[allow(clippy::too_many_arguments)]
    pub async fn subscribe(
        &self,
        scope: &Scope,
        topic_arn: Option<&str>,
        protocol: Option<&str>,
        endpoint: Option<&str>,
        attributes: &BTreeMap<String, String>,
        return_subscription_arn: bool,
        base_url: &str,
    ) -> Result<Subscribed, SnsError> {
        let topic_arn = required(topic_arn, "topicArn")?;
        let protocol_text = required(protocol, "protocol")?;
        let topic = self.topic(scope, topic_arn, "TopicArn")?;
        let protocol = validate::protocol(protocol_text, topic.fifo)?;
        let endpoint = validate::endpoint(protocol, endpoint)?;
        let mut sub = Subscription {
            arn: format!("{}:{}", topic.arn, uuid::Uuid::new_v4()),
            topic_arn: topic.arn.clone(),
            owner: scope.account.to_string(),
            protocol,
            endpoint,
            raw_message_delivery: false,
            filter_policy: None,
            filter_policy_scope: None,
            delivery_policy: None,
            redrive_policy: None,
            subscription_role_arn: None,
            confirmed: protocol == Protocol::Lambda,
            token: random_token(),
            confirmation_was_authenticated: protocol == Protocol::Lambda,
            base_url: base_url.to_owned(),
            created_ms: now_ms(),
        };
        // FilterPolicyScope first: the policy is read in its scope.
        let mut ordered: Vec<(&String, &String)> = attributes.iter().collect();
        ordered.sort_by_key(|(k, _)| *k != "FilterPolicyScope");
        for (k, v) in ordered {
            validate::subscription_attribute(&mut sub, k, v, true)?;
        }
        let filter = compile_filter(&sub, true)?;
        let _w = self.write.lock().await;
        {
            let state = self.read()?;
            if !state.topics.contains_key(&topic.arn) {
                return Err(SnsError::topic_not_found());
            }
            let existing = state
                .by_topic
                .get(&topic.arn)
                .into_iter()
                .flatten()
                .filter_map(|a| state.subs.get(a))
                .find(|l| l.sub.protocol == sub.protocol && l.sub.endpoint == sub.endpoint);
            if let Some(l) = existing {
                let same = l.sub.raw_message_delivery == sub.raw_message_delivery
                    && l.sub.filter_policy == sub.filter_policy
                    && l.sub.filter_policy_scope == sub.filter_policy_scope
                    && (attributes.is_empty()
                        || (l.sub.delivery_policy == sub.delivery_policy
                            && l.sub.redrive_policy == sub.redrive_policy));
                if !same && !attributes.is_empty() {
                    return Err(SnsError::invalid(
                        "Attributes Reason: Subscription already exists with different attributes",
                    ));
                }
                let arn = if l.sub.confirmed || return_subscription_arn {
                    l.sub.arn.clone()
                } else {
                    "pending confirmation".to_owned()
                };
                // A pending HTTP endpoint is sent its confirmation again.
                return Ok(Subscribed {
                    subscription_arn: arn,
                    confirmation: (!l.sub.confirmed).then(|| self.confirmation(&topic, &l.sub)),
                });
            }
        }
        let stored = sub.clone();
        self.persist(move |db| db.put_subscription(&stored, None))
            .await?;
        let confirmation = (!sub.confirmed).then(|| self.confirmation(&topic, &sub));
        let answer = if sub.confirmed || return_subscription_arn {
            sub.arn.clone()
        } else {
            "pending confirmation".to_owned()
        };
        self.write_state()?.insert_sub(Live {
            sub,
            filter: Filter::from(filter),
        });
        Ok(Subscribed {
            subscription_arn: answer,
            confirmation,
        })
    }

    fn confirmation(&self, topic: &Topic, sub: &Subscription) -> Delivery {
        let message_id = uuid::Uuid::new_v4().to_string();
        let body = message::confirmation(
            &self.signer,
            signature_version(topic),
            &sub.base_url,
            &message_id,
            &topic.arn,
            &sub.token,
            &model::time_fmt::iso_millis_z(now_ms()),
        );
        Delivery::Http {
            subscription_arn: None,
            url: sub.endpoint.clone(),
            headers: message::http_headers(
                "SubscriptionConfirmation",
                &message_id,
                &topic.arn,
                None,
                false,
            ),
            body: body.to_string().into_bytes(),
        }
    }

    /// `ConfirmSubscription`. `scope` is `None` when the subscriber follows
    /// the unsigned `SubscribeURL`.
    pub async fn confirm_subscription(
        &self,
        scope: Option<&Scope>,
        topic_arn: Option<&str>,
        token: Option<&str>,
        authenticate_on_unsubscribe: bool,
    ) -> Result<String, SnsError> {
        let topic_arn = required(topic_arn, "topicArn")?;
        let token = required(token, "token")?;
        let parsed = TopicArn::parse(topic_arn).ok_or_else(|| SnsError::invalid("TopicArn"))?;
        if let Some(s) = scope
            && !parsed.in_scope(s)
        {
            return Err(SnsError::topic_not_found());
        }
        let _w = self.write.lock().await;
        let mut sub = {
            let state = self.read()?;
            if !state.topics.contains_key(topic_arn) {
                return Err(SnsError::topic_not_found());
            }
            state
                .by_topic
                .get(topic_arn)
                .into_iter()
                .flatten()
                .filter_map(|a| state.subs.get(a))
                .find(|l| constant_time_eq(l.sub.token.as_bytes(), token.as_bytes()))
                .map(|l| l.sub.clone())
                .ok_or_else(|| SnsError::invalid("Token"))?
        };
        if sub.confirmed {
            return Ok(sub.arn);
        }
        sub.confirmed = true;
        sub.confirmation_was_authenticated = scope.is_some() && authenticate_on_unsubscribe;
        let stored = sub.clone();
        self.persist(move |db| db.put_subscription(&stored, None))
            .await?;
        let mut state = self.write_state()?;
        if let Some(l) = state.subs.get_mut(&sub.arn) {
            l.sub = sub.clone();
        }
        Ok(sub.arn)
    }

    /// `Unsubscribe`. `scope` is `None` for the unsigned `UnsubscribeURL`,
    /// refused when the subscription was confirmed with
    /// `AuthenticateOnUnsubscribe`.
    pub async fn unsubscribe(
        &self,
        scope: Option<&Scope>,
        arn: Option<&str>,
    ) -> Result<(), SnsError> {
        let arn = required(arn, "subscriptionArn")?;
        let topic_arn = types::topic_of_subscription(arn)
            .ok_or_else(|| SnsError::invalid("SubscriptionArn"))?;
        let parsed =
            TopicArn::parse(topic_arn).ok_or_else(|| SnsError::invalid("SubscriptionArn"))?;
        if let Some(s) = scope
            && !parsed.in_scope(s)
        {
            return Err(SnsError::subscription_not_found());
        }
        let _w = self.write.lock().await;
        let (sub, mut topic) = {
            let state = self.read()?;
            let sub = state
                .subs
                .get(arn)
                .map(|l| l.sub.clone())
                .ok_or_else(SnsError::subscription_not_found)?;
            let topic = state
                .topics
                .get(&sub.topic_arn)
                .cloned()
                .ok_or_else(SnsError::subscription_not_found)?;
            (sub, topic)
        };
        if scope.is_none() && sub.confirmation_was_authenticated {
            return Err(SnsError::invalid(
                "Unsubscribe Reason: this subscription requires a signed Unsubscribe",
            ));
        }
        topic.subscriptions_deleted += 1;
        let (owned, stored_topic) = (arn.to_owned(), topic.clone());
        self.persist(move |db| db.delete_subscription(&owned, &stored_topic))
            .await?;
        let mut state = self.write_state()?;
        state.remove_sub(arn);
        state.topics.insert(topic.arn.clone(), topic);
        Ok(())
    }

    /// `ListSubscriptions` (all of the caller's) or
    /// `ListSubscriptionsByTopic`.
    pub fn list_subscriptions(
        &self,
        scope: &Scope,
        topic_arn: Option<&str>,
        next_token: Option<&str>,
    ) -> Result<Page<BTreeMap<&'static str, String>>, SnsError> {
        if let Some(t) = topic_arn {
            self.topic(scope, t, "TopicArn")?;
        }
        let state = self.read()?;
        let rows: Vec<BTreeMap<&'static str, String>> = state
            .subs
            .values()
            .filter(|l| match topic_arn {
                Some(t) => l.sub.topic_arn == t,
                None => state
                    .topics
                    .get(&l.sub.topic_arn)
                    .is_some_and(|t| &t.scope == scope),
            })
            .map(|l| {
                let s = &l.sub;
                BTreeMap::from([
                    (
                        "SubscriptionArn",
                        if s.confirmed {
                            s.arn.clone()
                        } else {
                            "PendingConfirmation".to_owned()
                        },
                    ),
                    ("Owner", s.owner.clone()),
                    ("Protocol", s.protocol.as_str().to_owned()),
                    ("Endpoint", s.endpoint.clone()),
                    ("TopicArn", s.topic_arn.clone()),
                ])
            })
            .collect();
        page(rows, next_token)
    }

    fn subscription(&self, scope: &Scope, arn: &str) -> Result<Subscription, SnsError> {
        let topic_arn = types::topic_of_subscription(arn)
            .ok_or_else(|| SnsError::invalid("SubscriptionArn"))?;
        let parsed =
            TopicArn::parse(topic_arn).ok_or_else(|| SnsError::invalid("SubscriptionArn"))?;
        if !parsed.in_scope(scope) {
            return Err(SnsError::subscription_not_found());
        }
        self.read()?
            .subs
            .get(arn)
            .map(|l| l.sub.clone())
            .ok_or_else(SnsError::subscription_not_found)
    }

    /// `GetSubscriptionAttributes`.
    pub fn subscription_attributes(
        &self,
        scope: &Scope,
        arn: Option<&str>,
    ) -> Result<BTreeMap<String, String>, SnsError> {
        let arn = required(arn, "subscriptionArn")?;
        let s = self.subscription(scope, arn)?;
        let mut out = BTreeMap::new();
        out.insert("SubscriptionArn".to_owned(), s.arn.clone());
        out.insert("TopicArn".to_owned(), s.topic_arn.clone());
        out.insert("Owner".to_owned(), s.owner.clone());
        out.insert(
            "SubscriptionPrincipal".to_owned(),
            format!("arn:{}:iam::{}:root", scope.partition(), s.owner),
        );
        out.insert("Protocol".to_owned(), s.protocol.as_str().to_owned());
        out.insert("Endpoint".to_owned(), s.endpoint.clone());
        out.insert(
            "ConfirmationWasAuthenticated".to_owned(),
            s.confirmation_was_authenticated.to_string(),
        );
        out.insert("PendingConfirmation".to_owned(), (!s.confirmed).to_string());
        out.insert(
            "RawMessageDelivery".to_owned(),
            s.raw_message_delivery.to_string(),
        );
        if s.protocol != Protocol::Lambda {
            out.insert(
                "EffectiveDeliveryPolicy".to_owned(),
                validate::DEFAULT_EFFECTIVE_DELIVERY_POLICY.to_owned(),
            );
        }
        if let Some(p) = &s.filter_policy {
            out.insert("FilterPolicy".to_owned(), p.clone());
            out.insert(
                "FilterPolicyScope".to_owned(),
                s.filter_policy_scope
                    .clone()
                    .unwrap_or_else(|| "MessageAttributes".to_owned()),
            );
        }
        for (k, v) in [
            ("DeliveryPolicy", &s.delivery_policy),
            ("RedrivePolicy", &s.redrive_policy),
            ("SubscriptionRoleArn", &s.subscription_role_arn),
        ] {
            if let Some(v) = v {
                out.insert(k.to_owned(), v.clone());
            }
        }
        Ok(out)
    }

    /// `SetSubscriptionAttributes`.
    pub async fn set_subscription_attribute(
        &self,
        scope: &Scope,
        arn: Option<&str>,
        name: Option<&str>,
        value: Option<&str>,
    ) -> Result<(), SnsError> {
        let arn = required(arn, "subscriptionArn")?;
        let name = required(name, "attributeName")?;
        let _w = self.write.lock().await;
        let mut sub = self.subscription(scope, arn)?;
        validate::subscription_attribute(&mut sub, name, value.unwrap_or(""), false)?;
        let filter = compile_filter(&sub, false)?;
        let stored = sub.clone();
        self.persist(move |db| db.put_subscription(&stored, None))
            .await?;
        let mut state = self.write_state()?;
        if let Some(l) = state.subs.get_mut(arn) {
            l.sub = sub;
            l.filter = Filter::from(filter);
        }
        Ok(())
    }

    // ---- publishing -----------------------------------------------------

    /// `Publish`: validates the message and answers where it goes.
    pub fn publish(
        &self,
        scope: &Scope,
        input: PublishInput,
        base_url: &str,
    ) -> Result<Published, SnsError> {
        if input.phone_number.is_some() && input.topic_arn.is_none() && input.target_arn.is_none() {
            return Err(SnsError::invalid(
                "PhoneNumber Reason: SMS delivery is not available on this server",
            ));
        }
        let arn = match (&input.topic_arn, &input.target_arn) {
            (Some(t), _) => t.as_str(),
            (None, Some(t)) => t.as_str(),
            (None, None) => {
                return Err(SnsError::invalid(
                    "TopicArn or TargetArn Reason: no value for required parameter",
                ));
            }
        };
        let param = if input.topic_arn.is_some() {
            "TopicArn"
        } else {
            "TargetArn"
        };
        let message = validate::message(
            input.message.as_deref(),
            input.subject.as_deref(),
            input.message_structure.as_deref(),
            &input.attributes,
        )?;
        let topic = self.topic(scope, arn, param)?;
        validate::fifo_fields(
            &topic,
            input.message_group_id.as_deref(),
            input.message_deduplication_id.as_deref(),
        )?;
        let published = self.fan_out(
            &topic,
            &message,
            input.subject.as_deref(),
            &input.attributes,
            input.message_deduplication_id.as_deref(),
            base_url,
        )?;
        Ok(published)
    }

    /// `PublishBatch`: entry by entry, each succeeding or failing alone.
    pub fn publish_batch(
        &self,
        scope: &Scope,
        topic_arn: Option<&str>,
        entries: Vec<BatchEntry>,
        base_url: &str,
    ) -> Result<BatchPublished, SnsError> {
        let arn = required(topic_arn, "topicArn")?;
        if entries.is_empty() {
            return Err(SnsError::EmptyBatchRequest);
        }
        if entries.len() > MAX_BATCH_ENTRIES {
            return Err(SnsError::TooManyEntriesInBatchRequest);
        }
        let mut ids = BTreeSet::new();
        for e in &entries {
            if e.id.is_empty()
                || e.id.len() > 80
                || !e
                    .id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(SnsError::InvalidBatchEntryId);
            }
            if !ids.insert(e.id.as_str()) {
                return Err(SnsError::BatchEntryIdsNotDistinct);
            }
        }
        let total: usize = entries
            .iter()
            .map(|e| {
                e.message.as_deref().map_or(0, str::len) + validate::attributes_size(&e.attributes)
            })
            .sum();
        if total > MAX_MESSAGE_BYTES {
            return Err(SnsError::BatchRequestTooLong);
        }
        let topic = self.topic(scope, arn, "TopicArn")?;
        let mut out = BatchPublished::default();
        for e in entries {
            let result = validate::message(
                e.message.as_deref(),
                e.subject.as_deref(),
                e.message_structure.as_deref(),
                &e.attributes,
            )
            .and_then(|message| {
                validate::fifo_fields(
                    &topic,
                    e.message_group_id.as_deref(),
                    e.message_deduplication_id.as_deref(),
                )?;
                self.fan_out(
                    &topic,
                    &message,
                    e.subject.as_deref(),
                    &e.attributes,
                    e.message_deduplication_id.as_deref(),
                    base_url,
                )
            });
            match result {
                Ok(p) => {
                    out.deliveries.extend(p.deliveries);
                    out.successful.push(BatchSuccess {
                        id: e.id,
                        message_id: p.message_id,
                        sequence_number: p.sequence_number,
                    });
                }
                Err(SnsError::Store(detail)) => return Err(SnsError::Store(detail)),
                Err(err) => out.failed.push(BatchFailure {
                    id: e.id,
                    code: err.code(),
                    message: err.to_string(),
                    sender_fault: true,
                }),
            }
        }
        Ok(out)
    }

    /// The message id (deduplicated on FIFO topics) and the deliveries.
    fn fan_out(
        &self,
        topic: &Topic,
        message: &validate::Message,
        subject: Option<&str>,
        attributes: &Attributes,
        dedup_id: Option<&str>,
        base_url: &str,
    ) -> Result<Published, SnsError> {
        let now = now_ms();
        let message_id = uuid::Uuid::new_v4().to_string();
        let mut sequence_number = None;
        if topic.fifo {
            let key = match dedup_id {
                Some(d) => d.to_owned(),
                None => hex(&sha2::Sha256::digest(message.default.as_bytes())),
            };
            let mut fifo = self
                .fifo
                .lock()
                .map_err(|_| SnsError::Store("FIFO state lock poisoned".into()))?;
            let state = fifo.entry(topic.arn.clone()).or_default();
            state
                .seen
                .retain(|_, (at, _, _)| now - *at < DEDUP_WINDOW_MS);
            if let Some((_, id, seq)) = state.seen.get(&key) {
                // A duplicate within the window: accepted, not delivered again.
                return Ok(Published {
                    message_id: id.clone(),
                    sequence_number: Some(seq.clone()),
                    deliveries: Vec::new(),
                });
            }
            state.sequence += 1;
            let seq = format!(
                "{:020}",
                (now as u64).saturating_mul(1000) + state.sequence % 1000
            );
            state
                .seen
                .insert(key, (now, message_id.clone(), seq.clone()));
            sequence_number = Some(seq);
        }
        let timestamp = model::time_fmt::iso_millis_z(now);
        let state = self.read()?;
        let mut deliveries = Vec::new();
        for sub_arn in state.by_topic.get(&topic.arn).into_iter().flatten() {
            let Some(live) = state.subs.get(sub_arn) else {
                continue;
            };
            let sub = &live.sub;
            if !sub.confirmed {
                continue;
            }
            let text = message.for_protocol(sub.protocol);
            let policy = match &live.filter {
                Filter::None => None,
                Filter::Policy(p) => Some(p),
                Filter::Unreadable => {
                    self.metrics
                        .notifications_filtered_out
                        .fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            };
            if let Some(filter) = policy {
                let attrs = attributes.iter().map(|(name, a)| {
                    (
                        name.as_str(),
                        Attribute {
                            data_type: a.data_type.as_str(),
                            value: a.string_value.as_deref(),
                        },
                    )
                });
                if !filter.matches(attrs, text) {
                    self.metrics
                        .notifications_filtered_out
                        .fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            }
            let unsubscribe = message::unsubscribe_url(&sub.base_url, &sub.arn);
            let n = Notification {
                message_id: &message_id,
                topic_arn: &topic.arn,
                subject,
                message: text,
                timestamp: &timestamp,
                attributes,
                unsubscribe_url: &unsubscribe,
            };
            let version = signature_version(topic);
            let base = if sub.base_url.is_empty() {
                base_url
            } else {
                &sub.base_url
            };
            deliveries.push(match sub.protocol {
                Protocol::Lambda => Delivery::Lambda {
                    subscription_arn: sub.arn.clone(),
                    topic_arn: topic.arn.clone(),
                    topic_account: topic.scope.account.to_string(),
                    function_arn: sub.endpoint.clone(),
                    event: message::lambda_event(&self.signer, version, base, &sub.arn, &n)
                        .to_string()
                        .into_bytes(),
                },
                Protocol::Http | Protocol::Https => Delivery::Http {
                    subscription_arn: Some(sub.arn.clone()),
                    url: sub.endpoint.clone(),
                    headers: message::http_headers(
                        "Notification",
                        &message_id,
                        &topic.arn,
                        Some(&sub.arn),
                        sub.raw_message_delivery,
                    ),
                    body: if sub.raw_message_delivery {
                        text.as_bytes().to_vec()
                    } else {
                        message::http_notification(&self.signer, version, base, &n)
                            .to_string()
                            .into_bytes()
                    },
                },
            });
        }
        self.metrics
            .messages_published
            .fetch_add(1, Ordering::Relaxed);
        Ok(Published {
            message_id,
            sequence_number,
            deliveries,
        })
    }
}

fn signature_version(topic: &Topic) -> &str {
    topic
        .attributes
        .get("SignatureVersion")
        .map(String::as_str)
        .unwrap_or("1")
}

fn required<'a>(v: Option<&'a str>, member: &str) -> Result<&'a str, SnsError> {
    v.ok_or_else(|| {
        SnsError::Validation(format!(
            "1 validation error detected: Value null at '{member}' failed to satisfy constraint: Member must not be null"
        ))
    })
}

fn page<T>(items: Vec<T>, next_token: Option<&str>) -> Result<Page<T>, SnsError> {
    let start = match next_token {
        None | Some("") => 0,
        Some(t) => t
            .parse::<usize>()
            .ok()
            .filter(|n| *n <= items.len())
            .ok_or_else(|| SnsError::invalid("NextToken"))?,
    };
    let end = (start + PAGE_SIZE).min(items.len());
    let next_token = (end < items.len()).then(|| end.to_string());
    let items = items.into_iter().skip(start).take(end - start).collect();
    Ok(Page { items, next_token })
}

fn random_token() -> String {
    let mut s = String::new();
    for _ in 0..4 {
        s.push_str(&uuid::Uuid::new_v4().simple().to_string());
    }
    s
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
