//! Authentication end to end: login, refresh rotation and reuse, logout, password change, sessions,
//! token validation, registration, rate limits, bootstrap, JWKS.

use reqwest::Method;
use serde_json::json;

use crate::both;
use crate::harness::{Backend, Site, json};

const ADMIN: &str = "admin@example.org";
const PASSWORD: &str = "correct horse battery staple";

async fn refresh_rotates_and_reuse_revokes_session(backend: Backend) {
    let site = Site::new(backend).await;
    site.create_admin(ADMIN, PASSWORD);
    let server = site.start().await;
    let first = server.login(ADMIN, PASSWORD).await;

    let me = json(server.get_as("/api/auth/me", &first.access).await).await;
    assert_eq!(me["user"]["email"], ADMIN);
    assert!(me["permissions"].as_array().expect("perms").iter().any(|p| p == "users.manage"));

    let rotated = server.post_json("/api/auth/refresh", None, json!({"refresh_token": first.refresh})).await;
    assert_eq!(rotated.status(), 200);
    let rotated = json(rotated).await;
    assert_ne!(rotated["refresh_token"], first.refresh.as_str());
    let second_refresh = rotated["refresh_token"].as_str().expect("refresh").to_owned();
    let second_access = rotated["access_token"].as_str().expect("access").to_owned();
    assert_eq!(server.get_as("/api/auth/me", &second_access).await.status(), 200);

    // The old refresh token comes back: reuse, the whole session dies.
    let reused = server.post_json("/api/auth/refresh", None, json!({"refresh_token": first.refresh})).await;
    assert_eq!(reused.status(), 401);
    assert_eq!(json(reused).await["code"], "refresh_token_reused");
    let after = server.post_json("/api/auth/refresh", None, json!({"refresh_token": second_refresh})).await;
    assert_eq!(json(after).await["code"], "invalid_refresh_token");
    let me = server.get_as("/api/auth/me", &second_access).await;
    assert_eq!(me.status(), 401);
    assert_eq!(json(me).await["code"], "invalid_token");
}
both!(refresh_rotates_and_reuse_revokes_session);

async fn logout_password_change_and_sessions(backend: Backend) {
    let site = Site::new(backend).await;
    site.create_admin(ADMIN, PASSWORD);
    let server = site.start().await;
    let laptop = server.login(ADMIN, PASSWORD).await;
    let phone = server.login(ADMIN, PASSWORD).await;
    let tablet = server.login(ADMIN, PASSWORD).await;

    let sessions = json(server.get_as("/api/auth/sessions", &laptop.access).await).await;
    assert_eq!(sessions.as_array().expect("list").len(), 3);

    // Log out the tablet.
    let out = server.post_json("/api/auth/logout", Some(&tablet.access), json!({})).await;
    assert_eq!(out.status(), 204);
    assert_eq!(server.get_as("/api/auth/me", &tablet.access).await.status(), 401);

    // Change the password from the laptop: the phone is signed out, the laptop gets new tokens.
    let changed = server
        .post_json(
            "/api/auth/password",
            Some(&laptop.access),
            json!({"current_password": PASSWORD, "new_password": "an even longer passphrase"}),
        )
        .await;
    assert_eq!(changed.status(), 200);
    let changed = json(changed).await;
    let new_access = changed["access_token"].as_str().expect("access");
    assert_eq!(server.get_as("/api/auth/me", new_access).await.status(), 200);
    assert_eq!(server.get_as("/api/auth/me", &laptop.access).await.status(), 401, "old version still accepted");
    assert_eq!(server.get_as("/api/auth/me", &phone.access).await.status(), 401, "other session survived");
    let phone_refresh = server.post_json("/api/auth/refresh", None, json!({"refresh_token": phone.refresh})).await;
    assert_eq!(phone_refresh.status(), 401);
    let wrong = server
        .post_json(
            "/api/auth/password",
            Some(new_access),
            json!({"current_password": "not it at all", "new_password": "whatever long enough"}),
        )
        .await;
    assert_eq!(json(wrong).await["code"], "wrong_password");
    assert_eq!(
        server.post_json("/api/auth/login", None, json!({"email": ADMIN, "password": PASSWORD})).await.status(),
        401
    );
    let relogged = server.login(ADMIN, "an even longer passphrase").await;

    // Sessions can be revoked one by one, but only one's own.
    let listed = json(server.get_as("/api/auth/sessions", &relogged.access).await).await;
    let ids: Vec<String> =
        listed.as_array().expect("list").iter().map(|s| s["id"].as_str().expect("id").to_owned()).collect();
    assert_eq!(ids.len(), 2);
    let unknown = server
        .send(Method::DELETE, &format!("/api/auth/sessions/{}", uuid::Uuid::now_v7()), Some(&relogged.access), None)
        .await;
    assert_eq!(unknown.status(), 404);
    let revoke =
        server.send(Method::DELETE, &format!("/api/auth/sessions/{}", ids[1]), Some(&relogged.access), None).await;
    assert_eq!(revoke.status(), 204);
}
both!(logout_password_change_and_sessions);

/// Signs arbitrary claims with the server's own key, read from its database and master key.
async fn forge(site: &Site, mutate: impl FnOnce(&mut oppidum_identity::tokens::Claims), base: &str) -> String {
    let db = oppidum_store::Db::connect(&site.effective_database_url(), &Default::default()).await.expect("db");
    let master = std::fs::read_to_string(site.data_dir().join("secrets/master.key")).expect("master key");
    let vault = oppidum_core::vault::Vault::from_master_key(master.trim());
    let keys = oppidum_identity::keys::Keys::new(db.clone(), vault);
    keys.ensure(chrono::Utc::now()).await.expect("keys");
    let payload = base.split('.').nth(1).expect("payload");
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).expect("b64");
    let mut claims: oppidum_identity::tokens::Claims = serde_json::from_slice(&bytes).expect("claims");
    mutate(&mut claims);
    let token = oppidum_identity::tokens::sign(&keys, &claims).expect("sign");
    db.close().await;
    token
}

async fn bad_tokens_are_refused(backend: Backend) {
    let site = Site::new(backend).await;
    site.create_admin(ADMIN, PASSWORD);
    let server = site.start().await;
    let session = server.login(ADMIN, PASSWORD).await;
    let good = session.access.clone();
    assert_eq!(server.get_as("/api/auth/me", &good).await.status(), 200);
    // Our own key, valid claims: accepted (so the forging works and the refusals below are real).
    let resigned = forge(&site, |_| {}, &good).await;
    assert_eq!(server.get_as("/api/auth/me", &resigned).await.status(), 200);

    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let parts: Vec<&str> = good.split('.').collect();
    let none_header = b64.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let hs_header = b64.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload: serde_json::Value = serde_json::from_slice(&b64.decode(parts[1]).expect("b64")).expect("json");
    let mut admin_payload = payload.clone();
    admin_payload["sub"] = json!(uuid::Uuid::now_v7());
    let tampered = b64.encode(serde_json::to_vec(&admin_payload).expect("json"));
    let other_key = {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7_u8; 32]);
        use ed25519_dalek::pkcs8::EncodePrivateKey;
        let der = key.to_pkcs8_der().expect("der");
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
        header.kid =
            serde_json::from_slice::<serde_json::Value>(&b64.decode(parts[0]).expect("b64")).expect("hdr")["kid"]
                .as_str()
                .map(str::to_owned);
        jsonwebtoken::encode(&header, &payload, &jsonwebtoken::EncodingKey::from_ed_der(der.as_bytes())).expect("sign")
    };
    let expired_other_key = {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7_u8; 32]);
        use ed25519_dalek::pkcs8::EncodePrivateKey;
        let der = key.to_pkcs8_der().expect("der");
        let mut expired = payload.clone();
        expired["exp"] = json!(chrono::Utc::now().timestamp() - 5);
        let header: jsonwebtoken::Header = serde_json::from_slice(&b64.decode(parts[0]).expect("b64")).expect("hdr");
        jsonwebtoken::encode(&header, &expired, &jsonwebtoken::EncodingKey::from_ed_der(der.as_bytes())).expect("sign")
    };
    let cases = vec![
        ("expired and signed by another key", expired_other_key),
        ("alg none", format!("{none_header}.{}.", parts[1])),
        ("alg HS256", format!("{hs_header}.{}.{}", parts[1], parts[2])),
        ("tampered payload", format!("{}.{tampered}.{}", parts[0], parts[2])),
        ("wrong key", other_key),
        ("expired", forge(&site, |c| c.exp = chrono::Utc::now().timestamp() - 5, &good).await),
        ("wrong audience", forge(&site, |c| c.aud = "someone-else".into(), &good).await),
        ("wrong issuer", forge(&site, |c| c.iss = "https://evil.example".into(), &good).await),
        ("garbage", "not.a.jwt".to_owned()),
    ];
    for (what, token) in cases {
        let resp = server.get_as("/api/auth/me", &token).await;
        assert_eq!(resp.status(), 401, "{what} accepted");
        let body = json(resp).await;
        assert_eq!(body["code"], "invalid_token", "{what}");
        if what.starts_with("expired") {
            assert!(body["message"].as_str().is_some_and(|m| m.contains("expired")), "{what}: {body}");
        }
    }
    let none = server.get("/api/auth/me").await;
    assert_eq!(json(none).await["code"], "unauthenticated");
}
both!(bad_tokens_are_refused);

async fn registration_and_credentials(backend: Backend) {
    let closed = Site::new(backend).await;
    let server = closed.start().await;
    let resp = server
        .post_json(
            "/api/auth/register",
            None,
            json!({"email": "a@example.org", "password": "long enough pw", "name": "A"}),
        )
        .await;
    assert_eq!(resp.status(), 403);
    assert_eq!(json(resp).await["code"], "registration_closed");
    drop(server);

    let open = Site::new(backend).await.with("OPPIDUM_IDENTITY__REGISTRATION", "open");
    let server = open.start().await;
    let created = server
        .post_json(
            "/api/auth/register",
            None,
            json!({"email": "Bea@Example.org", "password": "long enough pw", "name": "Bea"}),
        )
        .await;
    assert_eq!(created.status(), 201);
    let created = json(created).await;
    assert_eq!(created["user"]["email"], "bea@example.org");
    assert!(created["user"].get("password_hash").is_none());
    assert_eq!(created["token_type"], "Bearer");
    assert_eq!(created["expires_in"], 900);
    let again = server
        .post_json(
            "/api/auth/register",
            None,
            json!({"email": "bea@example.org", "password": "long enough pw", "name": "B"}),
        )
        .await;
    assert_eq!(json(again).await["code"], "email_taken");
    let weak = server
        .post_json("/api/auth/register", None, json!({"email": "c@example.org", "password": "short", "name": "C"}))
        .await;
    assert_eq!(json(weak).await["code"], "weak_password");

    // Unknown email and wrong password look exactly the same.
    let unknown = json(
        server
            .post_json("/api/auth/login", None, json!({"email": "nobody@example.org", "password": "long enough pw"}))
            .await,
    )
    .await;
    let wrong = json(
        server
            .post_json("/api/auth/login", None, json!({"email": "bea@example.org", "password": "wrong password!"}))
            .await,
    )
    .await;
    assert_eq!(unknown["code"], "invalid_credentials");
    assert_eq!(unknown["code"], wrong["code"]);
    assert_eq!(unknown["message"], wrong["message"]);
}
both!(registration_and_credentials);

#[tokio::test]
async fn login_is_rate_limited_per_account() {
    let site = Site::new(Backend::Sqlite).await;
    site.create_admin(ADMIN, PASSWORD);
    let server = site.start().await;
    for _ in 0..5 {
        let resp =
            server.post_json("/api/auth/login", None, json!({"email": ADMIN, "password": "wrong guess!!"})).await;
        assert_eq!(resp.status(), 401);
    }
    let limited = server.post_json("/api/auth/login", None, json!({"email": ADMIN, "password": PASSWORD})).await;
    assert_eq!(limited.status(), 429);
    let retry: u64 = limited.headers()["retry-after"].to_str().expect("ascii").parse().expect("seconds");
    assert!((1..=60).contains(&retry));
    assert_eq!(json(limited).await["code"], "rate_limited");
}

#[tokio::test]
async fn bootstrap_creates_the_first_admin_once() {
    let site = Site::new(Backend::Sqlite).await;
    let server = site.start().await;
    let log = server.log();
    let token = log
        .split('"')
        .find(|s| s.starts_with("obt_"))
        .unwrap_or_else(|| panic!("no bootstrap token printed:\n{log}"))
        .to_owned();
    let body = json!({"token": token, "email": "first@example.org", "name": "First", "password": PASSWORD});
    let bad = server
        .post_json(
            "/api/auth/bootstrap",
            None,
            json!({"token": "obt_wrong", "email": "x@example.org", "name": "X", "password": PASSWORD}),
        )
        .await;
    assert_eq!(json(bad).await["code"], "invalid_bootstrap_token");
    assert_eq!(server.post_json("/api/auth/bootstrap", None, body.clone()).await.status(), 201);
    let again = server.post_json("/api/auth/bootstrap", None, body).await;
    assert_eq!(json(again).await["code"], "already_bootstrapped");
    let session = server.login("first@example.org", PASSWORD).await;
    let me = json(server.get_as("/api/auth/me", &session.access).await).await;
    assert_eq!(me["user"]["instance_admin"], true);
}

/// A third-party JWT library (PyJWT) verifies our access tokens with nothing but the JWKS.
#[tokio::test]
async fn access_tokens_verify_with_pyjwt_from_jwks() {
    let has_pyjwt = std::process::Command::new("python3")
        .args(["-c", "import jwt, cryptography"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_pyjwt {
        assert!(std::env::var("OPPIDUM_TEST_REQUIRE_PYJWT").as_deref() != Ok("1"), "PyJWT is required in CI");
        eprintln!("SKIPPED access_tokens_verify_with_pyjwt_from_jwks: pip install pyjwt cryptography");
        return;
    }
    let site = Site::new(Backend::Sqlite).await;
    site.create_admin(ADMIN, PASSWORD);
    let server = site.start().await;
    let session = server.login(ADMIN, PASSWORD).await;
    let script = r#"
import json, sys, urllib.request, jwt
base, token = sys.argv[1], sys.argv[2]
keys = json.load(urllib.request.urlopen(base + "/.well-known/jwks.json"))["keys"]
kid = jwt.get_unverified_header(token)["kid"]
key = jwt.PyJWK(next(k for k in keys if k["kid"] == kid))
claims = jwt.decode(token, key=key, algorithms=["EdDSA"], audience="oppidum", issuer="oppidum")
print(json.dumps(claims))
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script, &server.base, &session.access])
        .output()
        .expect("python");
    assert!(out.status.success(), "PyJWT refused the token: {}", String::from_utf8_lossy(&out.stderr));
    let claims: serde_json::Value = serde_json::from_slice(&out.stdout).expect("claims");
    assert_eq!(claims["sub"], session.user_id.as_str());
    for claim in ["iss", "aud", "sub", "sid", "org", "ver", "iat", "exp", "jti"] {
        assert!(claims.get(claim).is_some(), "missing {claim}");
    }
}

async fn imported_bcrypt_hash_is_upgraded_at_login(backend: Backend) {
    let site = Site::new(backend).await;
    site.create_admin(ADMIN, PASSWORD);
    let server = site.start().await;
    let admin = server.login(ADMIN, PASSWORD).await;
    let root =
        json(server.get_as("/api/auth/me", &admin.access).await).await["org"]["id"].as_str().expect("org").to_owned();
    let created = server
        .post_json(
            "/api/users",
            Some(&admin.access),
            json!({"email": "legacy@example.org", "name": "Legacy", "org_id": root}),
        )
        .await;
    let id: uuid::Uuid = json(created).await["id"].as_str().expect("id").parse().expect("uuid");
    // As imported from another system.
    let db = oppidum_store::Db::connect(&site.effective_database_url(), &Default::default()).await.expect("db");
    let bcrypt_hash = bcrypt::hash("legacy password 1", 4).expect("bcrypt");
    db.query("UPDATE users SET password_hash = $2 WHERE id = $1")
        .bind(id)
        .bind(bcrypt_hash)
        .execute()
        .await
        .expect("update");
    server.login("legacy@example.org", "legacy password 1").await;
    let (stored,): (Option<String>,) =
        db.query("SELECT password_hash FROM users WHERE id = $1").bind(id).fetch_one().await.expect("select");
    assert!(stored.expect("hash").starts_with("$argon2id$"), "bcrypt hash not upgraded");
    server.login("legacy@example.org", "legacy password 1").await;
    db.close().await;
}
both!(imported_bcrypt_hash_is_upgraded_at_login);

/// Two nodes on one PostgreSQL, each caching verified tokens. A session signed out on node A is
/// refused by node B: at once through the event bus (node B caches for a minute, so only the
/// announcement can end its entry), and within the cache's 1 s time to live when node B's
/// LISTEN connection is killed over and over so that the announcement is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_reaches_other_nodes_within_a_second() {
    use std::time::{Duration, Instant};
    if oppidum_store::testing::postgres_admin_url("revocation_reaches_other_nodes_within_a_second").is_none() {
        return;
    }
    let mut site = Site::new(Backend::Postgres).await;
    site.create_admin(ADMIN, PASSWORD);
    let a = site.start().await;
    site.env.push(("OPPIDUM_IDENTITY__AUTH_CACHE_TTL_MS".into(), "60000".into()));
    let b = site.start().await;
    site.env.pop();
    let c = site.start().await;

    // Through the bus.
    let session = a.login(ADMIN, PASSWORD).await;
    assert_eq!(b.get_as("/api/auth/me", &session.access).await.status(), 200);
    assert_eq!(b.get_as("/api/auth/me", &session.access).await.status(), 200, "served from node B's cache");
    let logout = a.send(Method::POST, "/api/auth/logout", Some(&session.access), None).await;
    assert_eq!(logout.status(), 204);
    let signed_out = Instant::now();
    assert_eq!(a.get_as("/api/auth/me", &session.access).await.status(), 401, "node A refuses at once");
    let mut refused_after = None;
    while signed_out.elapsed() < Duration::from_secs(5) {
        if b.get_as("/api/auth/me", &session.access).await.status() == 401 {
            refused_after = Some(signed_out.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let refused_after = refused_after.expect("node B still accepts a signed-out session after 5 s");
    eprintln!("node B refused the signed-out session {} ms after the sign-out", refused_after.as_millis());

    // Without the bus: node C's listener is killed every 20 ms while the session is signed out.
    let db = oppidum_store::Db::connect(&site.effective_database_url(), &Default::default()).await.expect("db");
    let killer = tokio::spawn(async move {
        loop {
            let _ = db
                .query(
                    "SELECT CAST(COUNT(pg_terminate_backend(pid)) AS BIGINT) FROM pg_stat_activity \
                     WHERE datname = current_database() AND query ILIKE 'LISTEN%' AND pid <> pg_backend_pid()",
                )
                .fetch_one::<(i64,)>()
                .await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let session = a.login(ADMIN, PASSWORD).await;
    assert_eq!(c.get_as("/api/auth/me", &session.access).await.status(), 200);
    let logout = a.send(Method::POST, "/api/auth/logout", Some(&session.access), None).await;
    assert_eq!(logout.status(), 204);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(c.get_as("/api/auth/me", &session.access).await.status(), 401, "the 1 s bound did not hold");
    killer.abort();
}
