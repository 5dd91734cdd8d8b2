//! The service with a stand-in directory: events of every change, sealed and hashed fields.

use std::collections::BTreeSet;
use std::sync::Arc;

use oppidum_core::principal::Credential;
use oppidum_core::{Directory, Error, OrgAccess, Principal};
use oppidum_store::{Db, EventBus};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::{DataApi, Keys};

#[derive(Debug)]
struct Members;

#[async_trait::async_trait]
impl Directory for Members {
    async fn org_access(&self, _: &Principal, _: Uuid, _: &str) -> Result<OrgAccess, Error> {
        Ok(OrgAccess::Hidden)
    }
    async fn user_by_email(&self, _: &str) -> Result<Option<Uuid>, Error> {
        Ok(None)
    }
    async fn hash_password(&self, password: &str) -> Result<String, Error> {
        Ok(format!("hashed:{}", password.len()))
    }
    async fn verify_password(&self, _: &str, _: &str) -> Result<bool, Error> {
        Ok(false)
    }
    async fn is_instance_org(&self, _: Uuid) -> Result<bool, Error> {
        Ok(true)
    }
}

fn principal(permissions: &[&str]) -> Principal {
    Principal {
        user_id: Uuid::now_v7(),
        org_id: Uuid::now_v7(),
        permissions: permissions.iter().map(|p| (*p).to_owned()).collect::<BTreeSet<_>>(),
        role: Some("member".into()),
        instance_admin: false,
        credential: Credential::Session { session_id: Uuid::now_v7() },
        impersonator: None,
        ip: None,
        user_agent: None,
    }
}

const SCHEMA: &str = r#"
tables:
  people:
    scope: owner
    soft_delete: true
    fields:
      id: { type: uuid, primary: true, auto: true }
      name: { type: string, max: 50, required: true }
      phone: { type: string, max: 30, encrypt: true }
      profile: { type: json, encrypt: true }
      pin: { type: string, max: 12, hash: true }
"#;

fn body(value: Value) -> Map<String, Value> {
    value.as_object().cloned().unwrap_or_default()
}

#[tokio::test]
async fn changes_are_published_and_sealed_fields_need_their_permission() {
    let dir = tempfile::tempdir().expect("dir");
    let db =
        Db::connect(&format!("sqlite://{}", dir.path().join("t.db").display()), &Default::default()).await.expect("db");
    let bus = EventBus::new(Uuid::now_v7(), None);
    let mut events = bus.subscribe();
    let keys = Keys { current: "k".repeat(32), previous: Vec::new() };
    let api = DataApi::open(db.clone(), dir.path().join("apps"), keys, Arc::new(Members), None, Some(bus)).await;
    assert!(api.apps().is_empty());
    let admin = principal(&["apps.manage"]);
    api.install(&admin, "crm", "name: crm\n".into(), SCHEMA.into(), None).await.expect("install");
    assert!(dir.path().join("apps/crm/schema.yaml").is_file(), "written back");

    let reader = principal(&["data.crm.people.decrypt"]);
    let row = api
        .create(
            &reader,
            "crm",
            "people",
            body(json!({"name": "Ada", "phone": "+33 6", "profile": {"a": 1}, "pin": "1234"})),
        )
        .await
        .expect("create");
    assert_eq!(row["phone"], "+33 6", "opened for a caller holding the permission");
    assert_eq!(row["profile"], json!({"a": 1}));
    assert!(row.get("pin").is_none(), "hashes are never returned");
    let id = row["id"].as_str().expect("id").to_owned();
    let (phone, pin): (String, String) =
        db.query("SELECT phone, pin FROM app_crm__people").fetch_one().await.expect("stored");
    assert!(phone.starts_with("v1.") && !phone.contains("+33"), "sealed at rest: {phone}");
    assert_eq!(pin, "hashed:4");

    // Another caller without the permission sees the row (same owner) without the sealed fields.
    let mut plain = principal(&[]);
    plain.user_id = reader.user_id;
    let row = api.get(&plain, "crm", "people", &id, false).await.expect("get");
    assert!(row.get("phone").is_none() && row.get("profile").is_none(), "{row:?}");

    api.update(&reader, "crm", "people", &id, body(json!({"name": "Ada L."})), None).await.expect("update");
    api.delete(&reader, "crm", "people", &id, Some("\"2\"")).await.expect("delete");
    api.restore(&reader, "crm", "people", &id).await.expect("restore");
    let mut topics = Vec::new();
    while let Ok(event) = events.try_recv() {
        if event.topic == super::APPS_CHANGED {
            assert_eq!(event.payload["app"], "crm");
            continue;
        }
        assert_eq!(event.payload["id"], id.as_str());
        topics.push(event.topic.clone());
    }
    assert_eq!(
        topics,
        ["data.crm.people.created", "data.crm.people.updated", "data.crm.people.deleted", "data.crm.people.restored"]
    );
    // A failed change publishes nothing.
    assert!(api.update(&reader, "crm", "people", &id, body(json!({"name": ""})), None).await.is_ok());
    assert!(api.update(&reader, "crm", "people", &id, body(json!({"nope": 1})), None).await.is_err());
    assert_eq!(events.try_recv().map(|e| e.topic.clone()).ok().as_deref(), Some("data.crm.people.updated"));
    assert!(events.try_recv().is_err());

    // Reopened from its files, the app is served again with the same key.
    let keys = Keys { current: "k".repeat(32), previous: Vec::new() };
    let again = DataApi::open(db, dir.path().join("apps"), keys, Arc::new(Members), None, None).await;
    let row = again.get(&reader, "crm", "people", &id, false).await.expect("get");
    assert_eq!(row["phone"], "+33 6");
}

const TREE: &str = r#"
tables:
  nodes:
    scope: owner
    soft_delete: true
    cascade: true
    rules:
      update: "size <= 3"
    fields:
      id: { type: int, primary: true, auto: true }
      parent: { type: relation, foreign: nodes.id }
      size: { type: int, default: 1 }
      slug: { type: string, max: 20, unique: true }
"#;

async fn tree_api(dir: &std::path::Path) -> DataApi {
    let db = Db::connect(&format!("sqlite://{}", dir.join("t.db").display()), &Default::default()).await.expect("db");
    let keys = Keys { current: "k".repeat(32), previous: Vec::new() };
    let api = DataApi::open(db, dir.join("apps"), keys, Arc::new(Members), None, None).await;
    let mut operator = principal(&[]);
    operator.instance_admin = true;
    api.install(&operator, "tree", "name: tree\n".into(), TREE.into(), None).await.expect("install");
    api
}

#[tokio::test]
async fn cascades_end_on_loops_and_updates_cannot_leave_their_rule() {
    let dir = tempfile::tempdir().expect("dir");
    let api = tree_api(dir.path()).await;
    let me = principal(&[]);
    let root = api.create(&me, "tree", "nodes", body(json!({"slug": "root"}))).await.expect("root");
    let id = root["id"].to_string();
    // A row referring to itself, and a child.
    api.update(&me, "tree", "nodes", &id, body(json!({"parent": root["id"]})), None).await.expect("self");
    let child = api.create(&me, "tree", "nodes", body(json!({"parent": root["id"]}))).await.expect("child");
    api.delete(&me, "tree", "nodes", &id, None).await.expect("delete ends");
    let left = api.list(&me, "tree", "nodes", &Default::default()).await.expect("list");
    assert!(left.items.is_empty(), "{:?}", left.items);
    api.restore(&me, "tree", "nodes", &id).await.expect("restore ends");
    assert_eq!(api.list(&me, "tree", "nodes", &Default::default()).await.expect("list").items.len(), 2);
    let child_id = child["id"].to_string();

    // The update rule holds after the change too.
    let refused = api.update(&me, "tree", "nodes", &child_id, body(json!({"size": 9})), None).await.expect_err("rule");
    assert_eq!(refused.code(), "rule_denied");
    let row = api.get(&me, "tree", "nodes", &child_id, false).await.expect("get");
    assert_eq!(row["size"], 1, "nothing changed");
    // Weak tags never match If-Match.
    let stale = api.update(&me, "tree", "nodes", &child_id, body(json!({"size": 2})), Some("W/\"1\"")).await;
    assert_eq!(stale.expect_err("weak").code(), "etag_mismatch");

    // Unique values hold per owner: another user may use the same one.
    let other = principal(&[]);
    api.create(&other, "tree", "nodes", body(json!({"slug": "root"}))).await.expect("same slug, other owner");
    let taken = api.create(&me, "tree", "nodes", body(json!({"slug": "root"}))).await.expect_err("taken");
    assert_eq!(taken.code(), "unique_violation");
}

#[tokio::test]
async fn named_queries_and_databases_take_an_instance_administrator() {
    let dir = tempfile::tempdir().expect("dir");
    let api = tree_api(dir.path()).await;
    let manager = principal(&["apps.manage"]);
    let query = std::collections::BTreeMap::from([("all".to_owned(), "sql: SELECT * FROM users\n".to_owned())]);
    let refused = api.install(&manager, "tree", "name: tree\n".into(), TREE.into(), Some(query)).await;
    assert_eq!(refused.expect_err("queries").code(), "missing_permission");
    let elsewhere = format!("name: tree\ndatabase: sqlite://{}/other.db\n", dir.path().display());
    let refused = api.install(&manager, "tree", elsewhere, TREE.into(), None).await;
    assert_eq!(refused.expect_err("database").code(), "missing_permission");
    // The schema itself is theirs to change.
    let grown = TREE.replace("      size:", "      label: { type: text }\n      size:");
    api.install(&manager, "tree", "name: tree\n".into(), grown, None).await.expect("schema change");
    assert!(api.install(&principal(&[]), "tree", "name: tree\n".into(), TREE.into(), None).await.is_err());
}
