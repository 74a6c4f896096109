//! The behaviour every [`Store`] backend must show. A backend runs it with
//! [`conformance_tests!`](crate::conformance_tests), which expands to one test per
//! check, each given a fresh, empty store.

// Test support: a failed step is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use model::function::{CodeInfo, FunctionState, LoggingSettings, UpdateStatus};
use model::{AccountId, FunctionConfig, FunctionName, FunctionRecord, PackageType, Region, Scope};

use crate::{Store, StoreError};

pub fn scope(account: &str, region: &str) -> Scope {
    Scope::new(
        AccountId::parse(account).expect("valid account"),
        Region::parse(region).expect("valid region"),
    )
}

/// A minimal, valid function record for tests.
pub fn sample_record(name: &str, digest: &str) -> FunctionRecord {
    let name = FunctionName::parse(name).expect("valid name");
    FunctionRecord {
        latest: FunctionConfig {
            logging: LoggingSettings::default_for(&name),
            name,
            version: "$LATEST".into(),
            package_type: PackageType::Zip,
            runtime: Some("provided.al2023".into()),
            handler: Some("bootstrap".into()),
            role: "arn:aws:iam::123456789012:role/r".into(),
            description: String::new(),
            timeout_s: 3,
            memory_mb: 128,
            ephemeral_mb: 512,
            environment: None,
            architectures: vec!["x86_64".into()],
            code: CodeInfo {
                sha256_b64: "c2hh".into(),
                digest_hex: digest.into(),
                size: 10,
                unzipped_size: 20,
            },
            layers: vec![],
            tracing_mode: "PassThrough".into(),
            dead_letter_target: None,
            kms_key_arn: None,
            vpc: None,
            file_systems: vec![],
            last_modified_ms: 1_700_000_000_000,
            revision_id: "00000000-0000-4000-8000-000000000000".into(),
            state: FunctionState::Active,
            last_update_status: UpdateStatus::Successful,
        },
        tags: BTreeMap::new(),
        reserved_concurrency: None,
        created_ms: 1_700_000_000_000,
        event_invoke_configs: Default::default(),
        versions: Default::default(),
        last_version: 0,
        last_published: None,
        aliases: Default::default(),
        policies: Default::default(),
        provisioned: Default::default(),
        urls: Default::default(),
    }
}

fn name(s: &str) -> FunctionName {
    FunctionName::parse(s).expect("valid name")
}

pub async fn create_then_get(store: &dyn Store) {
    let s = scope("111111111111", "us-east-1");
    let mut rec = sample_record("f", "aa");
    rec.tags.insert("team".into(), "a".into());
    rec.latest.environment = Some(BTreeMap::from([("K".into(), "V".into())]));
    store.create_function(&s, &rec).await.expect("create");
    let got = store
        .get_function(&s, &name("f"))
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(got.value, rec);
    assert!(
        store
            .get_function(&s, &name("g"))
            .await
            .expect("get")
            .is_none()
    );
}

pub async fn duplicate_create_fails(store: &dyn Store) {
    let s = scope("111111111111", "us-east-1");
    store
        .create_function(&s, &sample_record("f", "aa"))
        .await
        .expect("create");
    let err = store
        .create_function(&s, &sample_record("f", "bb"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists { .. }), "{err:?}");
    let got = store
        .get_function(&s, &name("f"))
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(
        got.value.latest.code.digest_hex, "aa",
        "the failed create changed nothing"
    );
}

pub async fn scopes_are_isolated(store: &dyn Store) {
    let a = scope("111111111111", "us-east-1");
    let b = scope("222222222222", "us-east-1");
    let a2 = scope("111111111111", "eu-west-1");
    store
        .create_function(&a, &sample_record("f", "aa"))
        .await
        .expect("create a");
    store
        .create_function(&b, &sample_record("f", "bb"))
        .await
        .expect("same name in b");
    assert!(
        store
            .get_function(&a2, &name("f"))
            .await
            .expect("get")
            .is_none()
    );
    assert_eq!(
        store
            .list_functions(&b, None, 50)
            .await
            .expect("list")
            .items
            .len(),
        1
    );
    assert_eq!(store.usage(&a2).await.expect("usage").function_count, 0);
    store
        .delete_function(&b, &name("f"))
        .await
        .expect("delete b");
    assert!(
        store
            .get_function(&a, &name("f"))
            .await
            .expect("get")
            .is_some()
    );
}

pub async fn list_pages_in_name_order(store: &dyn Store) {
    let s = scope("111111111111", "us-east-1");
    let names = ["delta", "alpha", "charlie", "bravo", "echo"];
    for n in names {
        store
            .create_function(&s, &sample_record(n, "aa"))
            .await
            .expect("create");
    }
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = store
            .list_functions(&s, after.as_deref(), 2)
            .await
            .expect("list");
        pages += 1;
        assert!(page.items.len() <= 2);
        seen.extend(page.items.iter().map(|r| r.latest.name.to_string()));
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(seen, ["alpha", "bravo", "charlie", "delta", "echo"]);
    assert_eq!(pages, 3);
    let usage = store.usage(&s).await.expect("usage");
    assert_eq!(usage.function_count, 5);
    assert_eq!(usage.total_code_size, 50);
    let exact = store.list_functions(&s, None, 5).await.expect("list");
    assert_eq!(exact.items.len(), 5);
    assert_eq!(exact.next, None, "a full last page has no next marker");
}

pub async fn update_uses_etag(store: &dyn Store) {
    let s = scope("111111111111", "us-east-1");
    let etag = store
        .create_function(&s, &sample_record("f", "aa"))
        .await
        .expect("create");
    let mut rec = store
        .get_function(&s, &name("f"))
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(rec.etag, etag);
    rec.value.latest.memory_mb = 256;
    let etag2 = store
        .update_function(&s, &rec.value, rec.etag)
        .await
        .expect("update");
    assert_ne!(etag2, etag);
    rec.value.latest.memory_mb = 512;
    let err = store
        .update_function(&s, &rec.value, etag)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
    let got = store
        .get_function(&s, &name("f"))
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(got.value.latest.memory_mb, 256);
    assert_eq!(got.etag, etag2);
    let missing = sample_record("nope", "aa");
    let err = store.update_function(&s, &missing, 1).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
}

pub async fn usage_sums_code_and_reservations(store: &dyn Store) {
    let s = scope("111111111111", "us-east-1");
    assert_eq!(
        store.usage(&s).await.expect("usage"),
        crate::Usage::default()
    );
    let mut a = sample_record("a", "aa");
    a.latest.code.size = 1000;
    a.reserved_concurrency = Some(7);
    let mut b = sample_record("b", "bb");
    b.latest.code.size = 24;
    // A published version's package counts too; provisioned concurrency of a
    // function without a reservation comes out of the unreserved pool.
    let mut v1 = b.latest.clone();
    v1.version = "1".into();
    v1.code.size = 100;
    b.versions.insert(1, v1);
    b.provisioned.insert(
        "1".into(),
        model::ProvisionedConfig {
            requested: 3,
            last_modified_ms: 0,
        },
    );
    a.provisioned.insert(
        "1".into(),
        model::ProvisionedConfig {
            requested: 5,
            last_modified_ms: 0,
        },
    );
    store.create_function(&s, &a).await.expect("create");
    store.create_function(&s, &b).await.expect("create");
    let u = store.usage(&s).await.expect("usage");
    assert_eq!(
        u,
        crate::Usage {
            function_count: 2,
            total_code_size: 1124,
            reserved_concurrency: 7,
            provisioned_unreserved: 3,
        }
    );
}

pub async fn account_code_size_spans_regions(store: &dyn Store) {
    let east = scope("111111111111", "us-east-1");
    let west = scope("111111111111", "eu-west-1");
    let other = scope("222222222222", "us-east-1");
    let account = east.account.clone();
    assert_eq!(store.account_code_size(&account).await.unwrap(), 0);
    let mut a = sample_record("a", "aa");
    a.latest.code.size = 1000;
    let mut v1 = a.latest.clone();
    v1.version = "1".into();
    v1.code.size = 400;
    a.versions.insert(1, v1);
    let mut b = sample_record("b", "bb");
    b.latest.code.size = 20;
    let mut c = sample_record("c", "cc");
    c.latest.code.size = 7_000;
    store.create_function(&east, &a).await.unwrap();
    store.create_function(&west, &b).await.unwrap();
    store.create_function(&other, &c).await.unwrap();
    let mut layer = model::LayerRecord {
        name: "lib".into(),
        versions: Default::default(),
        last_version: 1,
    };
    layer.versions.insert(
        1,
        model::LayerVersion {
            version: 1,
            description: String::new(),
            compatible_runtimes: None,
            compatible_architectures: None,
            license_info: None,
            code: CodeInfo {
                sha256_b64: "bGli".into(),
                digest_hex: "dd".into(),
                size: 3,
                unzipped_size: 3,
            },
            created_ms: 0,
            policy: Default::default(),
        },
    );
    store.put_layer(&west, &layer, None).await.unwrap();
    assert_eq!(store.account_code_size(&account).await.unwrap(), 1423);
    assert_eq!(
        store.account_code_size(&other.account).await.unwrap(),
        7_000
    );
}

pub async fn delete_removes(store: &dyn Store) {
    let s = scope("111111111111", "us-east-1");
    store
        .create_function(&s, &sample_record("f", "aa"))
        .await
        .expect("create");
    store.delete_function(&s, &name("f")).await.expect("delete");
    assert!(
        store
            .get_function(&s, &name("f"))
            .await
            .expect("get")
            .is_none()
    );
    let err = store.delete_function(&s, &name("f")).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    store
        .create_function(&s, &sample_record("f", "bb"))
        .await
        .expect("re-create after delete");
}

pub async fn blob_references(store: &dyn Store) {
    let s = scope("111111111111", "us-east-1");
    assert!(store.scopes().await.expect("scopes").is_empty());
    assert!(!store.blob_in_use("aa").await.expect("query"));
    store
        .create_function(&s, &sample_record("f", "aa"))
        .await
        .expect("create");
    assert!(store.blob_in_use("aa").await.expect("query"));
    assert!(!store.blob_in_use("bb").await.expect("query"));
    assert_eq!(store.scopes().await.expect("scopes"), vec![s.clone()]);
    store.delete_function(&s, &name("f")).await.expect("delete");
    assert!(!store.blob_in_use("aa").await.expect("query"));
}

pub async fn published_versions_keep_their_code_referenced(store: &dyn Store) {
    let s = scope("111111111111", "us-east-1");
    let etag = store
        .create_function(&s, &sample_record("f", "v1"))
        .await
        .expect("create");
    let mut rec = store
        .get_function(&s, &name("f"))
        .await
        .expect("get")
        .expect("exists")
        .value;
    let mut v1 = rec.latest.clone();
    v1.version = "1".into();
    rec.versions.insert(1, v1);
    rec.last_version = 1;
    rec.latest.code.digest_hex = "v2".into();
    store.update_function(&s, &rec, etag).await.expect("update");
    assert!(
        store.blob_in_use("v1").await.expect("query"),
        "version 1's code"
    );
    assert!(
        store.blob_in_use("v2").await.expect("query"),
        "$LATEST's code"
    );
    let got = store
        .get_function(&s, &name("f"))
        .await
        .expect("get")
        .expect("exists")
        .value;
    assert_eq!(got, rec);
}

pub async fn layers_round_trip_with_etags_and_references(store: &dyn Store) {
    use model::{LayerRecord, LayerVersion, Policy};
    let s = scope("111111111111", "us-east-1");
    let other = scope("222222222222", "us-east-1");
    let version = |n: u64, digest: &str| LayerVersion {
        version: n,
        description: String::new(),
        compatible_runtimes: Some(vec!["python3.11".into()]),
        compatible_architectures: None,
        license_info: None,
        code: sample_record("x", digest).latest.code,
        created_ms: 1,
        policy: Policy::default(),
    };
    let mut rec = LayerRecord {
        name: "lib".into(),
        versions: [(1, version(1, "l1"))].into(),
        last_version: 1,
    };
    let etag = store.put_layer(&s, &rec, None).await.expect("create");
    assert!(matches!(
        store.put_layer(&s, &rec, None).await,
        Err(StoreError::AlreadyExists { .. })
    ));
    assert!(store.get_layer(&other, "lib").await.expect("get").is_none());
    assert!(store.blob_in_use("l1").await.expect("query"));
    rec.versions.insert(2, version(2, "l2"));
    rec.versions.remove(&1);
    rec.last_version = 2;
    let etag2 = store.put_layer(&s, &rec, Some(etag)).await.expect("update");
    assert!(matches!(
        store.put_layer(&s, &rec, Some(etag)).await,
        Err(StoreError::Conflict { .. })
    ));
    assert!(!store.blob_in_use("l1").await.expect("query"));
    assert!(store.blob_in_use("l2").await.expect("query"));
    let got = store
        .get_layer(&s, "lib")
        .await
        .expect("get")
        .expect("exists");
    assert_eq!((got.value, got.etag), (rec.clone(), etag2));
    let mut b = rec.clone();
    b.name = "another".into();
    store.put_layer(&s, &b, None).await.expect("create");
    let page = store.list_layers(&s, None, 1).await.expect("list");
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].name, "another");
    let page = store
        .list_layers(&s, page.next.as_deref(), 5)
        .await
        .expect("list");
    assert_eq!(
        (page.items.len(), page.items[0].name.as_str(), page.next),
        (1, "lib", None)
    );
}

/// Expands to one `#[tokio::test]` per conformance check. `$make` is an async
/// expression that yields a fresh store (anything that derefs to `dyn Store`).
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::conformance_tests!(@each $make;
            create_then_get, duplicate_create_fails, scopes_are_isolated,
            list_pages_in_name_order, update_uses_etag, usage_sums_code_and_reservations, account_code_size_spans_regions, delete_removes, blob_references,
            published_versions_keep_their_code_referenced, layers_round_trip_with_etags_and_references);
    };
    (@each $make:expr; $($check:ident),*) => {
        $(
            #[tokio::test]
            async fn $check() {
                let store = $make;
                $crate::conformance::$check(&*store).await;
            }
        )*
    };
}
