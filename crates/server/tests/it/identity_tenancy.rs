//! Tenancy and permissions across the organization tree: root > reseller > customer, with a
//! sibling reseller. An administrative role on an organization covers its subtree and nothing
//! else; a plain member's view stops at the organizations of its memberships; what is outside is
//! "not found"; nobody grants more than they hold.

use reqwest::Method;
use serde_json::{Value, json};

use crate::both;
use crate::harness::{Backend, Session, Site, TestServer, json};

const PASSWORD: &str = "correct horse battery staple";

struct Tree {
    root: String,
    reseller: String,
    customer: String,
    sibling: String,
    admin: Session,
}

async fn id_of(resp: reqwest::Response) -> String {
    let status = resp.status();
    let body = json(resp).await;
    assert!(status.is_success(), "{status}: {body}");
    body["id"].as_str().or(body["user_id"].as_str()).expect("id").to_owned()
}

async fn create_org(server: &TestServer, token: &str, parent: &str, name: &str, kind: &str) -> String {
    id_of(server.post_json("/api/orgs", Some(token), json!({"parent_id": parent, "name": name, "kind": kind})).await)
        .await
}

async fn create_user(server: &TestServer, token: &str, email: &str, org: &str, role: &str) -> Session {
    let resp = server
        .post_json(
            "/api/users",
            Some(token),
            json!({"email": email, "name": email, "password": PASSWORD, "org_id": org, "role": role}),
        )
        .await;
    id_of(resp).await;
    server.login(email, PASSWORD).await
}

async fn tree(server: &TestServer, site: &Site) -> Tree {
    site.create_admin("root@example.org", PASSWORD);
    let admin = server.login("root@example.org", PASSWORD).await;
    let me = json(server.get_as("/api/auth/me", &admin.access).await).await;
    let root = me["org"]["id"].as_str().expect("root").to_owned();
    let reseller = create_org(server, &admin.access, &root, "Reseller", "reseller").await;
    let sibling = create_org(server, &admin.access, &root, "Sibling", "reseller").await;
    let customer = create_org(server, &admin.access, &reseller, "Customer", "customer").await;
    Tree { root, reseller, customer, sibling, admin }
}

async fn status(server: &TestServer, method: Method, path: &str, token: &str, body: Option<Value>) -> u16 {
    server.send(method, path, Some(token), body).await.status().as_u16()
}

async fn reseller_admin_manages_subtree_only(backend: Backend) {
    let site = Site::new(backend).await;
    let server = site.start().await;
    let t = tree(&server, &site).await;
    let ra = create_user(&server, &t.admin.access, "ra@example.org", &t.reseller, "admin").await;
    let sibling_user = create_user(&server, &t.admin.access, "s@example.org", &t.sibling, "member").await;
    let customer_user = create_user(&server, &t.admin.access, "c@example.org", &t.customer, "member").await;

    // Sees its subtree: reseller and customer, not root or sibling.
    let orgs = json(server.get_as("/api/orgs", &ra.access).await).await;
    let ids: Vec<&str> = orgs.as_array().expect("list").iter().map(|o| o["id"].as_str().expect("id")).collect();
    assert_eq!(ids.len(), 2, "{orgs}");
    assert!(ids.contains(&t.reseller.as_str()) && ids.contains(&t.customer.as_str()));

    // Manages its customers.
    let sub = create_org(&server, &ra.access, &t.customer, "Customer site", "site").await;
    assert_eq!(
        status(
            &server,
            Method::PATCH,
            &format!("/api/orgs/{}", t.customer),
            &ra.access,
            Some(json!({"name": "Renamed"}))
        )
        .await,
        200
    );
    assert_eq!(status(&server, Method::DELETE, &format!("/api/orgs/{sub}"), &ra.access, None).await, 204);
    let c2 = create_user(&server, &ra.access, "c2@example.org", &t.customer, "member").await;
    assert_eq!(status(&server, Method::GET, &format!("/api/users/{}", c2.user_id), &ra.access, None).await, 200);

    // The parent and the sibling do not exist for it.
    for org in [&t.root, &t.sibling] {
        assert_eq!(status(&server, Method::GET, &format!("/api/orgs/{org}"), &ra.access, None).await, 404);
        assert_eq!(
            status(&server, Method::PATCH, &format!("/api/orgs/{org}"), &ra.access, Some(json!({"name": "x"}))).await,
            404
        );
        assert_eq!(status(&server, Method::DELETE, &format!("/api/orgs/{org}"), &ra.access, None).await, 404);
        assert_eq!(status(&server, Method::GET, &format!("/api/orgs/{org}/members"), &ra.access, None).await, 404);
        assert_eq!(status(&server, Method::GET, &format!("/api/orgs/{org}/roles"), &ra.access, None).await, 404);
        let child = server.post_json("/api/orgs", Some(&ra.access), json!({"parent_id": org, "name": "x"})).await;
        assert_eq!(child.status(), 404);
    }
    assert_eq!(
        status(&server, Method::GET, &format!("/api/users/{}", sibling_user.user_id), &ra.access, None).await,
        404
    );
    assert_eq!(
        status(
            &server,
            Method::PATCH,
            &format!("/api/users/{}", sibling_user.user_id),
            &ra.access,
            Some(json!({"disabled": true}))
        )
        .await,
        404
    );
    assert_eq!(
        status(&server, Method::DELETE, &format!("/api/users/{}", sibling_user.user_id), &ra.access, None).await,
        404
    );
    let into_sibling = server
        .post_json(
            "/api/users",
            Some(&ra.access),
            json!({"email": "x@example.org", "name": "X", "org_id": t.sibling, "role": "member"}),
        )
        .await;
    assert_eq!(into_sibling.status(), 404);
    let add = server
        .post_json(
            &format!("/api/orgs/{}/members", t.sibling),
            Some(&ra.access),
            json!({"user_id": ra.user_id, "role": "admin"}),
        )
        .await;
    assert_eq!(add.status(), 404);

    // The user list holds its subtree only.
    let users = json(server.get_as("/api/users", &ra.access).await).await;
    let emails: Vec<&str> =
        users["items"].as_array().expect("items").iter().map(|u| u["email"].as_str().expect("email")).collect();
    assert!(emails.contains(&"c@example.org") && emails.contains(&"ra@example.org"), "{emails:?}");
    assert!(!emails.contains(&"s@example.org") && !emails.contains(&"root@example.org"), "{emails:?}");

    // A plain member of the customer sees nothing of the sibling, and cannot administer.
    for path in [
        format!("/api/orgs/{}", t.sibling),
        format!("/api/orgs/{}/members", t.sibling),
        format!("/api/orgs/{}/roles", t.sibling),
        format!("/api/users/{}", sibling_user.user_id),
    ] {
        assert_eq!(status(&server, Method::GET, &path, &customer_user.access, None).await, 404, "{path}");
    }
    assert_eq!(status(&server, Method::GET, "/api/users", &customer_user.access, None).await, 200);
    let forbidden =
        server.post_json("/api/orgs", Some(&customer_user.access), json!({"parent_id": t.customer, "name": "x"})).await;
    assert_eq!(forbidden.status(), 403);
}
both!(reseller_admin_manages_subtree_only);

/// A plain member of the root organization (where open registration puts everyone) sees the
/// root's own directory and nothing of the customers below it: not their users, not their
/// organizations, not their shared drives.
async fn root_member_sees_no_customer(backend: Backend) {
    let site = Site::new(backend).await;
    let server = site.start().await;
    let t = tree(&server, &site).await;
    let member = create_user(&server, &t.admin.access, "m@example.org", &t.root, "member").await;
    let neighbour = create_user(&server, &t.admin.access, "n@example.org", &t.root, "member").await;
    let customer_user = create_user(&server, &t.admin.access, "c@example.org", &t.customer, "member").await;
    let ra = create_user(&server, &t.admin.access, "ra@example.org", &t.reseller, "admin").await;

    for id in [&customer_user.user_id, &ra.user_id] {
        assert_eq!(status(&server, Method::GET, &format!("/api/users/{id}"), &member.access, None).await, 404);
    }
    assert_eq!(
        status(&server, Method::GET, &format!("/api/users/{}", neighbour.user_id), &member.access, None).await,
        200
    );
    let listed = json(server.get_as("/api/users?limit=200", &member.access).await).await;
    let emails: Vec<&str> =
        listed["items"].as_array().expect("items").iter().map(|u| u["email"].as_str().expect("email")).collect();
    assert!(emails.contains(&"n@example.org") && emails.contains(&"m@example.org"), "{listed}");
    assert!(!emails.contains(&"c@example.org") && !emails.contains(&"ra@example.org"), "{listed}");
    let searched = json(server.get_as("/api/users?q=c%40example", &member.access).await).await;
    assert_eq!(searched["items"].as_array().expect("items").len(), 0, "{searched}");

    let orgs = json(server.get_as("/api/orgs", &member.access).await).await;
    let ids: Vec<&str> = orgs.as_array().expect("list").iter().map(|o| o["id"].as_str().expect("id")).collect();
    assert_eq!(ids, vec![t.root.as_str()], "{orgs}");
    for org in [&t.reseller, &t.customer, &t.sibling] {
        assert_eq!(status(&server, Method::GET, &format!("/api/orgs/{org}"), &member.access, None).await, 404);
        assert_eq!(status(&server, Method::GET, &format!("/api/orgs/{org}/members"), &member.access, None).await, 404);
        let drive = format!("/api/drive/files?drive=org:{org}");
        assert_eq!(status(&server, Method::GET, &drive, &member.access, None).await, 404, "{drive}");
        let switch = json!({"org_id": org});
        assert_eq!(status(&server, Method::POST, "/api/auth/switch-org", &member.access, Some(switch)).await, 404);
    }
    // Its own organization's shared drive stays open to it.
    let own = format!("/api/drive/files?drive=org:{}", t.root);
    assert_eq!(status(&server, Method::GET, &own, &member.access, None).await, 200);

    // The reseller's administrator still sees and manages its customer's users.
    assert_eq!(
        status(&server, Method::GET, &format!("/api/users/{}", customer_user.user_id), &ra.access, None).await,
        200
    );
    let listed = json(server.get_as("/api/users?limit=200", &ra.access).await).await;
    assert!(listed.to_string().contains("c@example.org"), "{listed}");
}
both!(root_member_sees_no_customer);

async fn roles_cannot_escalate_and_custom_roles_apply(backend: Backend) {
    let site = Site::new(backend).await;
    let server = site.start().await;
    let t = tree(&server, &site).await;
    let ra = create_user(&server, &t.admin.access, "ra@example.org", &t.reseller, "admin").await;
    let c = create_user(&server, &ra.access, "c@example.org", &t.customer, "guest").await;

    // An admin cannot hand out owner (which has permissions admins lack).
    let escalate = server
        .send(
            Method::PATCH,
            &format!("/api/orgs/{}/members/{}", t.customer, c.user_id),
            Some(&ra.access),
            Some(json!({"role": "owner"})),
        )
        .await;
    assert_eq!(escalate.status(), 403);
    assert_eq!(json(escalate).await["code"], "privilege_escalation");
    let role_too_big = server
        .post_json(
            &format!("/api/orgs/{}/roles", t.reseller),
            Some(&ra.access),
            json!({"name": "imp", "permissions": ["users.impersonate"]}),
        )
        .await;
    assert_eq!(json(role_too_big).await["code"], "privilege_escalation");
    let unknown = server
        .post_json(
            &format!("/api/orgs/{}/roles", t.reseller),
            Some(&ra.access),
            json!({"name": "x", "permissions": ["make.coffee"]}),
        )
        .await;
    assert_eq!(json(unknown).await["code"], "unknown_permission");

    // A custom role defined on the reseller applies in its customers.
    let created = server
        .post_json(
            &format!("/api/orgs/{}/roles", t.reseller),
            Some(&ra.access),
            json!({"name": "helpdesk", "description": "Reads users", "permissions": ["users.read", "orgs.read"]}),
        )
        .await;
    assert_eq!(created.status(), 201);
    let roles = json(server.get_as(&format!("/api/orgs/{}/roles", t.customer), &ra.access).await).await;
    assert!(roles.as_array().expect("roles").iter().any(|r| r["name"] == "helpdesk"));
    let set = server
        .send(
            Method::PATCH,
            &format!("/api/orgs/{}/members/{}", t.customer, c.user_id),
            Some(&ra.access),
            Some(json!({"role": "helpdesk"})),
        )
        .await;
    assert_eq!(set.status(), 200);
    let c_again = server.login("c@example.org", PASSWORD).await;
    let me = json(server.get_as("/api/auth/me", &c_again.access).await).await;
    let perms: Vec<&str> =
        me["permissions"].as_array().expect("perms").iter().map(|p| p.as_str().expect("str")).collect();
    assert_eq!(perms, vec!["orgs.read", "users.read"]);
    let in_use =
        server.send(Method::DELETE, &format!("/api/orgs/{}/roles/helpdesk", t.reseller), Some(&ra.access), None).await;
    assert_eq!(json(in_use).await["code"], "role_in_use");
    let builtin = server
        .send(
            Method::PATCH,
            &format!("/api/orgs/{}/roles/admin", t.reseller),
            Some(&ra.access),
            Some(json!({"description": "x"})),
        )
        .await;
    assert_eq!(json(builtin).await["code"], "builtin_role");
    // The sibling's admin cannot touch the reseller's role.
    let sa = create_user(&server, &t.admin.access, "sa@example.org", &t.sibling, "admin").await;
    let foreign =
        server.send(Method::DELETE, &format!("/api/orgs/{}/roles/helpdesk", t.reseller), Some(&sa.access), None).await;
    assert_eq!(foreign.status(), 404);
}
both!(roles_cannot_escalate_and_custom_roles_apply);

async fn disabled_user_is_locked_out_at_once(backend: Backend) {
    let site = Site::new(backend).await;
    let server = site.start().await;
    let t = tree(&server, &site).await;
    let u = create_user(&server, &t.admin.access, "u@example.org", &t.customer, "member").await;
    assert_eq!(server.get_as("/api/auth/me", &u.access).await.status(), 200);
    let disabled = server
        .send(
            Method::PATCH,
            &format!("/api/users/{}", u.user_id),
            Some(&t.admin.access),
            Some(json!({"disabled": true})),
        )
        .await;
    assert_eq!(disabled.status(), 200);
    assert_eq!(json(disabled).await["disabled"], true);
    assert_eq!(server.get_as("/api/auth/me", &u.access).await.status(), 401);
    let refresh = server.post_json("/api/auth/refresh", None, json!({"refresh_token": u.refresh})).await;
    assert_eq!(refresh.status(), 401);
    let login =
        server.post_json("/api/auth/login", None, json!({"email": "u@example.org", "password": PASSWORD})).await;
    assert_eq!(json(login).await["code"], "account_disabled");
    // Enabled again, the user signs in; deleted, they are gone.
    let enabled = server
        .send(
            Method::PATCH,
            &format!("/api/users/{}", u.user_id),
            Some(&t.admin.access),
            Some(json!({"disabled": false})),
        )
        .await;
    assert_eq!(enabled.status(), 200);
    server.login("u@example.org", PASSWORD).await;
    assert_eq!(status(&server, Method::DELETE, &format!("/api/users/{}", u.user_id), &t.admin.access, None).await, 204);
    assert_eq!(status(&server, Method::GET, &format!("/api/users/{}", u.user_id), &t.admin.access, None).await, 404);
}
both!(disabled_user_is_locked_out_at_once);

async fn memberships_and_switching_org(backend: Backend) {
    let site = Site::new(backend).await;
    let server = site.start().await;
    let t = tree(&server, &site).await;
    let u = create_user(&server, &t.admin.access, "u@example.org", &t.customer, "member").await;
    // Not a member of the sibling yet: switching there is "not found".
    let denied = server.post_json("/api/auth/switch-org", Some(&u.access), json!({"org_id": t.sibling})).await;
    assert_eq!(denied.status(), 404);
    let added = server
        .post_json(
            &format!("/api/orgs/{}/members", t.sibling),
            Some(&t.admin.access),
            json!({"email": "u@example.org", "role": "guest"}),
        )
        .await;
    assert_eq!(added.status(), 201);
    let members = json(server.get_as(&format!("/api/orgs/{}/members", t.sibling), &t.admin.access).await).await;
    assert!(members.as_array().expect("members").iter().any(|m| m["email"] == "u@example.org" && m["role"] == "guest"));
    let switched = server.post_json("/api/auth/switch-org", Some(&u.access), json!({"org_id": t.sibling})).await;
    assert_eq!(switched.status(), 200);
    let token = json(switched).await["access_token"].as_str().expect("token").to_owned();
    let me = json(server.get_as("/api/auth/me", &token).await).await;
    assert_eq!(me["org"]["id"], t.sibling.as_str());
    assert!(!me["permissions"].as_array().expect("perms").iter().any(|p| p == "drive.write"), "guest perms");
    // Removing the membership ends access to that organization.
    let removed = server
        .send(Method::DELETE, &format!("/api/orgs/{}/members/{}", t.sibling, u.user_id), Some(&t.admin.access), None)
        .await;
    assert_eq!(removed.status(), 204);
    assert_eq!(server.get_as("/api/auth/me", &token).await.status(), 401);
    let home = server
        .send(Method::DELETE, &format!("/api/orgs/{}/members/{}", t.customer, u.user_id), Some(&t.admin.access), None)
        .await;
    assert_eq!(json(home).await["code"], "home_membership");
    // The root cannot be deleted; a non-empty organization neither.
    let root = server.send(Method::DELETE, &format!("/api/orgs/{}", t.root), Some(&t.admin.access), None).await;
    assert_eq!(json(root).await["code"], "root_org");
    let busy = server.send(Method::DELETE, &format!("/api/orgs/{}", t.reseller), Some(&t.admin.access), None).await;
    assert_eq!(json(busy).await["code"], "org_not_empty");
}
both!(memberships_and_switching_org);

#[tokio::test]
async fn users_list_paginates_and_searches() {
    let site = Site::new(Backend::Sqlite).await;
    let server = site.start().await;
    let t = tree(&server, &site).await;
    for i in 0..7 {
        let resp = server
            .post_json(
                "/api/users",
                Some(&t.admin.access),
                json!({"email": format!("p{i}@example.org"), "name": format!("Person {i}"), "org_id": t.customer}),
            )
            .await;
        assert_eq!(resp.status(), 201);
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/users?limit=3&q=person&cursor={c}"),
            None => "/api/users?limit=3&q=person".to_owned(),
        };
        let page = json(server.get_as(&path, &t.admin.access).await).await;
        for user in page["items"].as_array().expect("items") {
            seen.push(user["email"].as_str().expect("email").to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 7, "{seen:?}");
    let bad = server.get_as("/api/users?cursor=nope", &t.admin.access).await;
    assert_eq!(json(bad).await["code"], "invalid_cursor");
}
