//! The data API end to end, on SQLite and PostgreSQL: the Prokov task manager defined in YAML,
//! installed through the API; per-user and per-organization isolation, rules, validation,
//! filters (and injection attempts), sorting and cursors, `If-Match`, soft delete with cascade,
//! restore, purge, batches, and app management.

use reqwest::Method;
use serde_json::{Value, json};

use crate::both;
use crate::harness::{Backend, Session, Site, TestServer, json};

const PASSWORD: &str = "correct horse battery staple";
const PROKOV: &str = include_str!("data/prokov.yaml");
const APP: &str = "name: prokov\ndescription: Tasks and projects\n";

struct World {
    _site: Site,
    server: TestServer,
    admin: Session,
    /// a and b: members of Acme; boss: admin of Acme; c: member of Other.
    a: Session,
    b: Session,
    boss: Session,
    c: Session,
    acme: String,
}

async fn world(backend: Backend) -> World {
    let site = Site::new(backend).await;
    site.create_admin("root@example.org", PASSWORD);
    let server = site.start().await;
    let admin = server.login("root@example.org", PASSWORD).await;
    let root = server.current_org(&admin.access).await;
    let mut orgs = Vec::new();
    for name in ["Acme", "Other"] {
        orgs.push(server.create_org(&admin.access, &root, name, "company").await);
    }
    for (email, org, role) in [
        ("a@x.org", &orgs[0], "member"),
        ("b@x.org", &orgs[0], "member"),
        ("boss@x.org", &orgs[0], "admin"),
        ("c@x.org", &orgs[1], "member"),
    ] {
        server.create_user(&admin.access, email, PASSWORD, org, role).await;
    }
    let resp = put_app(&server, &admin.access, APP, PROKOV).await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap_or_default());
    World {
        a: server.login("a@x.org", PASSWORD).await,
        b: server.login("b@x.org", PASSWORD).await,
        boss: server.login("boss@x.org", PASSWORD).await,
        c: server.login("c@x.org", PASSWORD).await,
        acme: orgs[0].clone(),
        admin,
        server,
        _site: site,
    }
}

async fn put_app(server: &TestServer, token: &str, app: &str, schema: &str) -> reqwest::Response {
    let body = json!({"app_yaml": app, "schema_yaml": schema});
    server.send(Method::PUT, "/api/apps/prokov", Some(token), Some(body)).await
}

impl World {
    async fn create(&self, who: &Session, table: &str, body: Value) -> Value {
        let resp = self.server.post_json(&format!("/api/apps/prokov/{table}"), Some(&who.access), body).await;
        assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap_or_default());
        json(resp).await
    }

    async fn list(&self, who: &Session, table: &str, query: &str) -> reqwest::Response {
        self.server.get_as(&format!("/api/apps/prokov/{table}?{query}"), &who.access).await
    }

    async fn items(&self, who: &Session, table: &str, query: &str) -> Vec<Value> {
        let resp = self.list(who, table, query).await;
        assert_eq!(resp.status(), 200, "{query}: {}", resp.text().await.unwrap_or_default());
        json(resp).await["items"].as_array().cloned().unwrap_or_default()
    }

    async fn titles(&self, who: &Session, query: &str) -> Vec<String> {
        self.items(who, "tasks", query).await.iter().map(|t| t["title"].as_str().unwrap_or("").to_owned()).collect()
    }

    async fn send(&self, who: &Session, method: Method, path: &str, body: Option<Value>) -> reqwest::Response {
        self.server.send(method, &format!("/api/apps/prokov/{path}"), Some(&who.access), body).await
    }
}

fn id(value: &Value) -> String {
    match &value["id"] {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

async fn outcome(resp: reqwest::Response) -> (u16, String, Value) {
    let status = resp.status().as_u16();
    let body = json(resp).await;
    (status, body["code"].as_str().unwrap_or("").to_owned(), body)
}

both!(data_rows_belong_to_their_owner_and_are_validated);
async fn data_rows_belong_to_their_owner_and_are_validated(backend: Backend) {
    let w = world(backend).await;
    let project = w.create(&w.a, "projects", json!({"name": "Launch", "budget": 1250.5})).await;
    assert_eq!(project["archived"], false, "defaults apply");
    assert_eq!(project["budget"], 1250.5);
    assert_eq!(project["owner_id"], w.a.user_id.as_str());
    let task = w
        .create(
            &w.a,
            "tasks",
            json!({"project_id": id(&project), "title": "Write", "due": "2026-12-24",
            "meta": {"tags": ["x"]}, "notes": "secret plan"}),
        )
        .await;
    assert_eq!(task["priority"], 3);
    assert_eq!(task["done"], false);
    assert_eq!(task["meta"], json!({"tags": ["x"]}));
    assert_eq!(task["due"], "2026-12-24");
    assert!(task.get("notes").is_none(), "sealed fields need data.prokov.tasks.decrypt: {task}");
    assert_eq!(task["row_version"], 1);

    // b (same organization) and c (another) see nothing of a's and cannot touch it.
    for other in [&w.b, &w.c] {
        assert!(w.items(other, "tasks", "").await.is_empty());
        assert!(w.items(other, "projects", "").await.is_empty());
        let path = format!("tasks/{}", id(&task));
        assert_eq!(w.send(other, Method::GET, &path, None).await.status(), 404);
        assert_eq!(w.send(other, Method::PATCH, &path, Some(json!({"title": "Mine"}))).await.status(), 404);
        assert_eq!(w.send(other, Method::DELETE, &path, None).await.status(), 404);
        assert_eq!(w.send(other, Method::POST, &format!("{path}/restore"), None).await.status(), 404);
        // Pointing at a's project is refused as if it did not exist.
        let resp =
            w.send(other, Method::POST, "tasks", Some(json!({"project_id": id(&project), "title": "Sneak"}))).await;
        let (status, code, body) = outcome(resp).await;
        assert_eq!((status, code.as_str()), (400, "validation_failed"), "{body}");
        assert_eq!(body["details"]["fields"][0]["field"], "project_id");
    }
    assert_eq!(w.titles(&w.a, "").await, ["Write"]);
    // A batch touching another user's row fails as if the row did not exist, and keeps nothing.
    let ops = json!({"operations": [
        {"op": "create", "table": "tags", "data": {"label": "mine"}},
        {"op": "update", "table": "tasks", "id": id(&task), "data": {"title": "Mine"}},
    ]});
    let (status, _, body) = outcome(w.server.post_json("/api/apps/prokov/batch", Some(&w.b.access), ops).await).await;
    assert_eq!((status, &body["details"]["index"]), (404, &json!(1)), "{body}");
    assert!(w.items(&w.b, "tags", "").await.is_empty());

    // File fields point to drive files the caller can read.
    let upload = |who: &Session| {
        let req = w
            .server
            .client
            .put(w.server.url("/api/drive/upload?name=brief.txt"))
            .bearer_auth(&who.access)
            .body("brief");
        async move { json(req.send().await.expect("upload")).await["id"].as_str().expect("file id").to_owned() }
    };
    let file = upload(&w.a).await;
    let attached =
        w.create(&w.a, "tasks", json!({"project_id": id(&project), "title": "Read", "attachment": file})).await;
    assert_eq!(attached["attachment"], file.as_str());
    let theirs = w.create(&w.b, "projects", json!({"name": "B"})).await;
    let body = json!({"project_id": id(&theirs), "title": "Steal", "attachment": file});
    let (status, _, body) = outcome(w.send(&w.b, Method::POST, "tasks", Some(body)).await).await;
    assert_eq!((status, &body["details"]["fields"][0]["field"]), (400, &json!("attachment")), "{body}");

    // Read rules hide rows from lists and from direct reads.
    let hidden = w.create(&w.a, "statuses", json!({"name": "Archive", "position": 150})).await;
    w.create(&w.a, "statuses", json!({"name": "Todo", "position": 1})).await;
    let names: Vec<Value> = w.items(&w.a, "statuses", "").await.iter().map(|s| s["name"].clone()).collect();
    assert_eq!(names, ["Todo"]);
    assert_eq!(w.send(&w.a, Method::GET, &format!("statuses/{}", id(&hidden)), None).await.status(), 404);
    assert_eq!(
        w.send(&w.a, Method::PATCH, &format!("statuses/{}", id(&hidden)), Some(json!({"position": 2}))).await.status(),
        404
    );

    // Every invalid field is listed.
    let bad = json!({"project_id": "not-a-uuid", "title": "", "priority": 9, "done": "yes", "due": "24/12/2026",
        "colour": "red", "owner_id": w.b.user_id});
    let (status, code, body) = outcome(w.send(&w.a, Method::POST, "tasks", Some(bad)).await).await;
    assert_eq!((status, code.as_str()), (400, "validation_failed"));
    let fields: Vec<&str> =
        body["details"]["fields"].as_array().expect("fields").iter().filter_map(|f| f["field"].as_str()).collect();
    for field in ["project_id", "title", "priority", "done", "due", "colour", "owner_id"] {
        assert!(fields.contains(&field), "{field} not reported: {body}");
    }
    let (status, _, body) =
        outcome(w.send(&w.a, Method::POST, "tags", Some(json!({"label": "Not Valid!"}))).await).await;
    assert_eq!(status, 400, "{body}");
    assert!(w.create(&w.a, "tags", json!({"label": "urgent"})).await["id"].is_i64(), "integer keys are generated");
    // Unknown apps and tables.
    assert_eq!(outcome(w.send(&w.a, Method::GET, "nope", None).await).await.1, "unknown_table");
    let resp = w.server.get_as("/api/apps/other/tasks", &w.a.access).await;
    assert_eq!(outcome(resp).await.1, "unknown_app");
    // Purge needs its permission, and confirming.
    let path = format!("tasks/{}/purge", id(&task));
    assert_eq!(outcome(w.send(&w.a, Method::DELETE, &path, None).await).await.1, "missing_permission");
}

both!(data_lists_filter_sort_and_page);
async fn data_lists_filter_sort_and_page(backend: Backend) {
    let w = world(backend).await;
    let project = w.create(&w.a, "projects", json!({"name": "Alpha", "description": "The first one"})).await;
    w.create(&w.a, "projects", json!({"name": "Beta"})).await;
    let status = w.create(&w.a, "statuses", json!({"name": "Doing"})).await;
    for (title, priority, done) in [
        ("One", 1, false),
        ("Two", 5, false),
        ("Three", 4, true),
        ("Four", 4, false),
        ("Five", 2, false),
        ("Six", 5, true),
    ] {
        let body = json!({"project_id": id(&project), "status_id": id(&status), "title": title, "priority": priority, "done": done});
        w.create(&w.a, "tasks", body).await;
    }
    w.create(&w.b, "projects", json!({"name": "B's"})).await;
    let q =
        |s: &str| s.replace(' ', "%20").replace('"', "%22").replace('&', "%26").replace('=', "%3D").replace('|', "%7C");
    assert_eq!(w.titles(&w.a, &format!("filter={}", q("priority >= 4 && !done"))).await, ["Two", "Four"]);
    assert_eq!(w.titles(&w.a, "named=urgent").await, ["Two", "Four"]);
    assert_eq!(w.titles(&w.a, &format!("filter={}", q("title in [\"One\", \"Six\"]"))).await, ["Six", "One"]);
    assert_eq!(w.titles(&w.a, "search=iv&sort=title").await, ["Five"]);
    let names: Vec<Value> = w.items(&w.a, "projects", "search=first").await.iter().map(|p| p["name"].clone()).collect();
    assert_eq!(names, ["Alpha"]);
    assert_eq!(w.titles(&w.a, "sort=title").await, ["Five", "Four", "One", "Six", "Three", "Two"]);

    // Cursor pages cover everything once, in order, with the total on request.
    let mut seen = Vec::new();
    let mut query = "sort=-priority,title&limit=4&count=true".to_owned();
    loop {
        let page = json(w.list(&w.a, "tasks", &query).await).await;
        assert_eq!(page["total"], 6);
        seen.extend(
            page["items"].as_array().expect("items").iter().map(|t| t["title"].as_str().unwrap_or("").to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(cursor) => query = format!("sort=-priority,title&limit=4&count=true&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, ["Six", "Two", "Four", "Three", "Five", "One"]);
    let resp = w.list(&w.a, "tasks", "sort=title&cursor=eyJzIjoieCIsInYiOltdfQ").await;
    assert_eq!(outcome(resp).await.1, "invalid_cursor");

    // Field selection and related rows.
    let items = w.items(&w.a, "tasks", "fields=title&include=project_id,status_id&limit=1").await;
    let keys: Vec<&String> = items[0].as_object().expect("row").keys().collect();
    assert!(keys.contains(&&"title".to_owned()) && !keys.iter().any(|k| *k == "done"), "{keys:?}");
    assert_eq!(items[0]["_include"]["project_id"]["name"], "Alpha", "{}", items[0]);
    assert_eq!(items[0]["_include"]["status_id"]["name"], "Doing");

    // Filters that try to inject SQL, or do not type-check, are 400s that never reach the database.
    for bad in [
        "title == '' OR 1=1",
        "title == 'x'; DROP TABLE app_prokov__tasks; --",
        "1; DELETE FROM users",
        "priority == 'high'",
        "owner_id != auth.id",
        "(((((",
        "notes == 'secret'",
        "password == 1",
        "title ~ ",
    ] {
        let (status, code, body) = outcome(w.list(&w.a, "tasks", &format!("filter={}", q(bad))).await).await;
        if bad == "owner_id != auth.id" {
            assert_eq!(status, 200, "{bad}: {body}");
            assert!(body["items"].as_array().expect("items").is_empty(), "scoping still applies: {body}");
            continue;
        }
        assert_eq!((status, code.as_str()), (400, "invalid_filter"), "{bad}: {body}");
    }
    let quoted = w.titles(&w.a, &format!("filter={}", q("title == \"x'); DROP TABLE app_prokov__tasks; --\""))).await;
    assert!(quoted.is_empty());
    assert_eq!(w.titles(&w.a, "").await.len(), 6, "the table is intact");
    for (query, expected) in [
        ("sort=notes", "invalid_sort"),
        ("limit=0", "invalid_limit"),
        ("fields=nope", "invalid_fields"),
        ("include=title", "invalid_include"),
        ("named=nope", "invalid_filter"),
    ] {
        assert_eq!(outcome(w.list(&w.a, "tasks", query).await).await.1, expected, "{query}");
    }
}

both!(data_changes_follow_versions_rules_and_soft_deletion);
async fn data_changes_follow_versions_rules_and_soft_deletion(backend: Backend) {
    let w = world(backend).await;
    let project = w.create(&w.a, "projects", json!({"name": "Home"})).await;
    let task = w.create(&w.a, "tasks", json!({"project_id": id(&project), "title": "Paint"})).await;
    let done = w.create(&w.a, "tasks", json!({"project_id": id(&project), "title": "Clean", "done": true})).await;
    let path = format!("tasks/{}", id(&task));

    // If-Match on the row version.
    let resp = w.send(&w.a, Method::GET, &path, None).await;
    let etag = resp.headers()["etag"].to_str().expect("etag").to_owned();
    assert_eq!(etag, "\"1\"");
    let patch = |tag: &str| {
        w.server
            .client
            .patch(w.server.url(&format!("/api/apps/prokov/{path}")))
            .bearer_auth(&w.a.access)
            .header("if-match", tag)
    };
    let resp = patch(&etag).json(&json!({"priority": 5})).send().await.expect("patch");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["etag"], "\"2\"");
    let resp = patch(&etag).json(&json!({"priority": 1})).send().await.expect("patch");
    assert_eq!(outcome(resp).await.1, "etag_mismatch");
    assert_eq!(
        json(w.send(&w.a, Method::GET, &path, None).await).await["priority"],
        5,
        "the stale update changed nothing"
    );
    let (status, code_, _) = outcome(w.send(&w.a, Method::PATCH, &path, Some(json!({"id": "x"}))).await).await;
    assert_eq!((status, code_.as_str()), (400, "validation_failed"));

    // Rules: archived projects are read-only; done tasks are deleted by purgers only.
    let archived = w.create(&w.a, "projects", json!({"name": "Old", "archived": true})).await;
    let resp = w.send(&w.a, Method::PATCH, &format!("projects/{}", id(&archived)), Some(json!({"name": "New"}))).await;
    assert_eq!(outcome(resp).await.1, "rule_denied");
    let resp = w.send(&w.a, Method::DELETE, &format!("tasks/{}", id(&done)), None).await;
    assert_eq!(outcome(resp).await.1, "rule_denied");

    // Soft delete cascades to the project's tasks; restore brings them back.
    assert_eq!(w.send(&w.a, Method::DELETE, &format!("projects/{}", id(&project)), None).await.status(), 204);
    assert!(w.titles(&w.a, "").await.is_empty(), "tasks of a deleted project are deleted");
    assert_eq!(w.send(&w.a, Method::GET, &path, None).await.status(), 404);
    // Deleted rows are listed when the caller may restore them: not the done task (the rule).
    let deleted = w.items(&w.a, "tasks", "include_deleted=true").await;
    assert_eq!(deleted.len(), 1);
    assert!(deleted.iter().all(|t| t["deleted_at"].is_string()));
    assert_eq!(w.send(&w.a, Method::GET, &format!("{path}?include_deleted=true"), None).await.status(), 200);
    let resp = w.send(&w.a, Method::POST, &format!("projects/{}/restore", id(&project)), None).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(w.titles(&w.a, "sort=title").await, ["Clean", "Paint"], "restored with their project");
    let resp = w.send(&w.a, Method::POST, &format!("projects/{}/restore", id(&project)), None).await;
    assert_eq!(outcome(resp).await.1, "not_deleted");

    // A task deleted on its own stays deleted when its project comes back from a later deletion.
    assert_eq!(w.send(&w.a, Method::DELETE, &path, None).await.status(), 204);
    assert_eq!(w.send(&w.a, Method::DELETE, &format!("projects/{}", id(&project)), None).await.status(), 204);
    w.send(&w.a, Method::POST, &format!("projects/{}/restore", id(&project)), None).await;
    assert_eq!(w.titles(&w.a, "").await, ["Clean"]);

    // Purge: a custom role holding data.prokov.purge, confirmed with force=true.
    let role = json!({"name": "purger", "permissions": ["data.prokov.purge"]});
    let resp = w.server.post_json(&format!("/api/orgs/{}/roles", w.acme), Some(&w.admin.access), role).await;
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap_or_default());
    let member = format!("/api/orgs/{}/members/{}", w.acme, w.a.user_id);
    let resp = w.server.send(Method::PATCH, &member, Some(&w.admin.access), Some(json!({"role": "purger"}))).await;
    assert!(resp.status().is_success(), "{}", resp.text().await.unwrap_or_default());
    let purge = format!("{path}/purge");
    assert_eq!(outcome(w.send(&w.a, Method::DELETE, &purge, None).await).await.1, "confirmation_required");
    assert_eq!(w.send(&w.a, Method::DELETE, &format!("{purge}?force=true"), None).await.status(), 204);
    assert_eq!(w.send(&w.a, Method::GET, &format!("{path}?include_deleted=true"), None).await.status(), 404);
    // The purger role may delete done tasks.
    assert_eq!(w.send(&w.a, Method::DELETE, &format!("tasks/{}", id(&done)), None).await.status(), 204);

    // Batches: all or nothing.
    let ops = json!({"operations": [
        {"op": "create", "table": "tags", "data": {"label": "one"}},
        {"op": "create", "table": "tags", "data": {"label": "two"}},
        {"op": "update", "table": "projects", "id": id(&project), "data": {"name": "Renamed"}, "if_match": "*"},
    ]});
    let resp = w.server.post_json("/api/apps/prokov/batch", Some(&w.a.access), ops).await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap_or_default());
    let results = json(resp).await;
    assert_eq!(results["results"][2]["row"]["name"], "Renamed");
    let ops = json!({"operations": [
        {"op": "create", "table": "tags", "data": {"label": "three"}},
        {"op": "create", "table": "tags", "data": {"label": "NOT OK"}},
    ]});
    let (status, code_, body) =
        outcome(w.server.post_json("/api/apps/prokov/batch", Some(&w.a.access), ops).await).await;
    assert_eq!((status, code_.as_str()), (400, "validation_failed"));
    assert_eq!(body["details"]["index"], 1);
    assert_eq!(w.items(&w.a, "tags", "").await.len(), 2, "the failed batch changed nothing");
}

both!(data_org_tables_are_shared_within_an_organization_only);
async fn data_org_tables_are_shared_within_an_organization_only(backend: Backend) {
    let w = world(backend).await;
    let note = w.create(&w.boss, "announcements", json!({"body": "Friday off"})).await;
    assert_eq!(note["org_id"], w.acme.as_str());
    let bodies = |items: Vec<Value>| items.iter().map(|n| n["body"].clone()).collect::<Vec<_>>();
    assert_eq!(bodies(w.items(&w.a, "announcements", "").await), ["Friday off"]);
    assert_eq!(bodies(w.items(&w.b, "announcements", "").await), ["Friday off"]);
    assert!(w.items(&w.c, "announcements", "").await.is_empty(), "another organization sees nothing");
    let path = format!("announcements/{}", id(&note));
    assert_eq!(w.send(&w.c, Method::GET, &path, None).await.status(), 404);
    // Members read; only admins write (the rules).
    let resp = w.send(&w.a, Method::POST, "announcements", Some(json!({"body": "Party"}))).await;
    assert_eq!(outcome(resp).await.1, "rule_denied");
    assert_eq!(w.items(&w.a, "announcements", "").await.len(), 1, "the refused row was not kept");
    assert_eq!(outcome(w.send(&w.a, Method::PATCH, &path, Some(json!({"pinned": true}))).await).await.1, "rule_denied");
    assert_eq!(outcome(w.send(&w.c, Method::DELETE, &path, None).await).await.0, 404);
    let resp = w.send(&w.boss, Method::PATCH, &path, Some(json!({"pinned": true}))).await;
    assert_eq!(json(resp).await["pinned"], true);
    assert_eq!(w.send(&w.boss, Method::DELETE, &path, None).await.status(), 204);
    assert!(w.items(&w.a, "announcements", "").await.is_empty());
}

both!(data_apps_are_managed_through_the_api);
async fn data_apps_are_managed_through_the_api(backend: Backend) {
    let w = world(backend).await;
    // Members cannot manage apps.
    assert_eq!(outcome(put_app(&w.server, &w.a.access, APP, PROKOV).await).await.1, "missing_permission");
    assert_eq!(outcome(w.server.get_as("/api/apps/prokov", &w.a.access).await).await.1, "missing_permission");
    // A broken schema is refused with every problem, and the running version keeps serving.
    let broken = "tables:\n  tasks:\n    fields:\n      title: { type: string }\n      due: { type: when }\n  Bad: { fields: {} }\n";
    let (status, code_, body) = outcome(put_app(&w.server, &w.admin.access, APP, broken).await).await;
    assert_eq!((status, code_.as_str()), (422, "invalid_schema"), "{body}");
    let broken = PROKOV.replace("archived == false", "archived == 'no'").replace("priority >= 4", "nothing >= 4");
    let (status, _, body) = outcome(put_app(&w.server, &w.admin.access, APP, &broken).await).await;
    assert_eq!(status, 422);
    assert_eq!(body["details"]["problems"].as_array().map(Vec::len), Some(2), "{body}");
    let project = w.create(&w.a, "projects", json!({"name": "Still here"})).await;
    // An additive change: a new field and a new table, applied without a restart.
    let grown = format!("{PROKOV}  notes_board:\n    scope: owner\n    fields:\n      id: {{ type: int, primary: true, auto: true }}\n      text: {{ type: text }}\n")
        .replace("      budget: { type: decimal }", "      budget: { type: decimal }\n      colour: { type: string, max: 20 }");
    let resp = put_app(&w.server, &w.admin.access, APP, &grown).await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap_or_default());
    let resp =
        w.send(&w.a, Method::PATCH, &format!("projects/{}", id(&project)), Some(json!({"colour": "teal"}))).await;
    assert_eq!(json(resp).await["colour"], "teal");
    w.create(&w.a, "notes_board", json!({"text": "hello"})).await;
    // The files on disk are the source of truth.
    let files = json(w.server.get_as("/api/apps/prokov", &w.admin.access).await).await;
    assert!(files["schema_yaml"].as_str().expect("yaml").contains("notes_board"));
    // Edited on disk, an app is reloaded on request; a broken edit leaves the running version.
    let schema_file = w._site.data_dir().join("apps/prokov/schema.yaml");
    let reload = |who: &Session| {
        let token = who.access.clone();
        let server = &w.server;
        async move { server.post_json("/api/apps/prokov/reload", Some(&token), json!({})).await }
    };
    std::fs::write(&schema_file, "tables: [not, a, map]\n").expect("write");
    let (status, code, body) = outcome(reload(&w.admin).await).await;
    assert_eq!((status, code.as_str()), (422, "invalid_schema"), "{body}");
    assert_eq!(w.items(&w.a, "notes_board", "").await.len(), 1, "still serving");
    std::fs::write(
        &schema_file,
        grown.replace(
            "      text: { type: text }",
            "      text: { type: text }\n      done: { type: bool, default: false }",
        ),
    )
    .expect("write");
    assert_eq!(outcome(reload(&w.boss).await).await.1, "missing_permission");
    assert_eq!(reload(&w.admin).await.status(), 200);
    assert_eq!(w.items(&w.a, "notes_board", "").await[0]["done"], Value::Null, "the new column, empty for old rows");
    assert_eq!(
        outcome(w.server.post_json("/api/apps/nope/reload", Some(&w.admin.access), json!({})).await).await.1,
        "unknown_app"
    );
    // The data dictionary.
    let dictionary = json(w.server.get_as("/api/apps/prokov/_schema", &w.a.access).await).await;
    let tasks = &dictionary["tables"]["tasks"];
    assert_eq!(tasks["scope"], "owner");
    let project_field = tasks["fields"].as_array().expect("fields").iter().find(|f| f["name"] == "project_id").cloned();
    assert_eq!(
        project_field.expect("project_id")["relation"],
        json!({"table": "projects", "field": "id", "on_delete": "cascade"})
    );
    assert!(tasks["routes"].as_array().expect("routes").iter().any(|r| r["method"] == "PATCH"));
    let one = json(w.server.get_as("/api/apps/prokov/_schema/projects", &w.a.access).await).await;
    assert_eq!(one["referenced_by"], json!([{"table": "tasks", "field": "project_id"}]));
    let apps = json(w.server.get_as("/api/apps", &w.c.access).await).await;
    assert_eq!(apps[0]["name"], "prokov");
    // The app's own OpenAPI document follows its running schema.
    let doc = json(w.server.get_as("/api/apps/prokov/openapi.json", &w.a.access).await).await;
    assert!(doc["paths"]["/api/apps/prokov/notes_board/{id}"]["patch"].is_object(), "{}", doc["paths"]);
    assert!(doc["paths"]["/api/apps/prokov/tasks/{id}/restore"]["post"].is_object());
    assert_eq!(doc["components"]["schemas"]["tasks_input"]["required"], json!(["project_id", "title"]));
    assert_eq!(doc["components"]["schemas"]["projects"]["properties"]["colour"]["maxLength"], 20);
    let parsed: Result<utoipa::openapi::OpenApi, _> = serde_json::from_value(doc);
    assert!(parsed.as_ref().err().is_none(), "not an OpenAPI document: {:?}", parsed.err());
}

const OPEN_BY_PROJECT: &str = r#"
description: Open tasks per project of the caller
sql: |
  SELECT p.name AS project, COUNT(t.id) AS open
  FROM {{projects}} p JOIN {{tasks}} t ON t.project_id = p.id
  WHERE p.owner_id = :auth.id AND t.done = :done AND t.deleted_at IS NULL AND t.priority >= :min_priority
  GROUP BY p.name ORDER BY p.name
params:
  done: { type: bool, default: false }
  min_priority: { type: int, default: 1, min: 1, max: 5 }
"#;

const RESET_PRIORITY: &str = r#"
sql: UPDATE {{tasks}} SET priority = :priority WHERE owner_id = :auth.id AND done = true
params:
  priority: { type: int, required: true, min: 1, max: 5 }
write: true
"#;

const ORG_NOTES: &str = r#"
sql: "SELECT COUNT(*) AS n FROM {{announcements}} WHERE org_id = :auth.org"
roles: [admin]
"#;

both!(data_named_queries_and_app_roles);
async fn data_named_queries_and_app_roles(backend: Backend) {
    let w = world(backend).await;
    let queries = json!({"open_by_project": OPEN_BY_PROJECT, "reset_priority": RESET_PRIORITY, "org_notes": ORG_NOTES});
    let body = json!({"app_yaml": APP, "schema_yaml": PROKOV, "queries": queries});
    let resp = w.server.send(Method::PUT, "/api/apps/prokov", Some(&w.admin.access), Some(body)).await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap_or_default());
    // An organization's admin manages its own data, not the instance's apps.
    assert_eq!(outcome(put_app(&w.server, &w.boss.access, APP, PROKOV).await).await.1, "missing_permission");

    let alpha = w.create(&w.a, "projects", json!({"name": "Alpha"})).await;
    for (priority, done) in [(2, false), (5, false), (3, true)] {
        let body = json!({"project_id": id(&alpha), "title": "t", "priority": priority, "done": done});
        w.create(&w.a, "tasks", body).await;
    }
    let beta = w.create(&w.b, "projects", json!({"name": "Beta"})).await;
    w.create(&w.b, "tasks", json!({"project_id": id(&beta), "title": "b's"})).await;
    let run = |who: &Session, query: &str| {
        let path = format!("/api/apps/prokov/queries/{query}");
        let token = who.access.clone();
        let server = &w.server;
        async move { server.get_as(&path, &token).await }
    };
    let rows = json(run(&w.a, "open_by_project").await).await;
    assert_eq!(rows["rows"], json!([{"project": "Alpha", "open": 2}]), "{rows}");
    assert_eq!(rows["truncated"], false);
    let rows = json(run(&w.a, "open_by_project?min_priority=4").await).await;
    assert_eq!(rows["rows"][0]["open"], 1);
    assert_eq!(json(run(&w.b, "open_by_project").await).await["rows"], json!([{"project": "Beta", "open": 1}]));
    assert_eq!(json(run(&w.c, "open_by_project").await).await["rows"], json!([]));
    for bad in ["min_priority=9", "min_priority=1;DROP%20TABLE%20x", "done=maybe", "colour=red"] {
        let (status, code, body) = outcome(run(&w.a, &format!("open_by_project?{bad}")).await).await;
        assert_eq!((status, code.as_str()), (400, "validation_failed"), "{bad}: {body}");
    }
    assert_eq!(outcome(run(&w.a, "nope").await).await.1, "unknown_query");
    // Write queries take POST and change only what their SQL allows.
    assert_eq!(outcome(run(&w.a, "reset_priority").await).await.0, 405);
    let resp =
        w.server.post_json("/api/apps/prokov/queries/reset_priority", Some(&w.a.access), json!({"priority": 1})).await;
    assert_eq!(json(resp).await["changed"], 1);
    let resp = w.server.post_json("/api/apps/prokov/queries/reset_priority", Some(&w.a.access), json!({})).await;
    assert_eq!(outcome(resp).await.1, "validation_failed");
    assert_eq!(w.titles(&w.a, "filter=priority%20%3D%3D%201").await.len(), 1);
    // Queries for a role.
    assert_eq!(outcome(run(&w.a, "org_notes").await).await.1, "query_forbidden");
    w.create(&w.boss, "announcements", json!({"body": "Hello"})).await;
    assert_eq!(json(run(&w.boss, "org_notes").await).await["rows"], json!([{"n": 1}]));
    // A broken query is refused with the rest of the app's problems.
    let body = json!({"app_yaml": APP, "schema_yaml": PROKOV, "queries": {"bad": "sql: DELETE FROM {{tasks}}\n"}});
    let (status, code, body) =
        outcome(w.server.send(Method::PUT, "/api/apps/prokov", Some(&w.admin.access), Some(body)).await).await;
    assert_eq!((status, code.as_str()), (422, "invalid_schema"), "{body}");
    // Replacing the app without `queries` keeps them.
    assert_eq!(put_app(&w.server, &w.admin.access, APP, PROKOV).await.status(), 200);
    let files = json(w.server.get_as("/api/apps/prokov", &w.admin.access).await).await;
    assert_eq!(files["queries"].as_object().map(|q| q.len()), Some(3), "{files}");

    // An app for some roles only.
    let hr = json!({"app_yaml": "name: hr\nroles: [admin]\n",
        "schema_yaml": "tables:\n  reviews:\n    scope: org\n    fields:\n      id: { type: int, primary: true, auto: true }\n      text: { type: text }\n"});
    let resp = w.server.send(Method::PUT, "/api/apps/hr", Some(&w.admin.access), Some(hr)).await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap_or_default());
    for path in ["/api/apps/hr/reviews", "/api/apps/hr/_schema", "/api/apps/hr/openapi.json", "/api/apps/hr/queries/x"]
    {
        assert_eq!(outcome(w.server.get_as(path, &w.a.access).await).await.1, "app_forbidden", "{path}");
    }
    assert_eq!(w.server.get_as("/api/apps/hr/reviews", &w.boss.access).await.status(), 200);
    let names = |apps: Value| apps.as_array().map(|a| a.iter().map(|x| x["name"].clone()).collect::<Vec<_>>());
    assert_eq!(names(json(w.server.get_as("/api/apps", &w.a.access).await).await), Some(vec![json!("prokov")]));
    assert_eq!(
        names(json(w.server.get_as("/api/apps", &w.boss.access).await).await),
        Some(vec![json!("hr"), json!("prokov")])
    );
}
