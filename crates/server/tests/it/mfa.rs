//! Second factor end to end: enrolment required at login, codes from an independent TOTP
//! implementation (pyotp), replay refusal, backup codes, emailed codes, lockout, disable, reset.

use std::process::Command;

use reqwest::Method;
use serde_json::{Value, json};

use crate::both;
use crate::harness::{Backend, SmtpPeer, json};

const PASSWORD: &str = "correct horse battery staple";

fn pyotp_available() -> bool {
    let ok = Command::new("python3").args(["-c", "import pyotp"]).status().is_ok_and(|s| s.success());
    if !ok {
        assert!(std::env::var("OPPIDUM_TEST_REQUIRE_PYJWT").as_deref() != Ok("1"), "pyotp is required in CI");
        eprintln!("SKIPPED mfa tests: pip install pyotp");
    }
    ok
}

/// The current code for an `otpauth://` URI, computed by pyotp.
fn pyotp_now(uri: &str) -> String {
    let out = Command::new("python3")
        .args(["-c", "import pyotp, sys; print(pyotp.parse_uri(sys.argv[1]).now())", uri])
        .output()
        .expect("python3");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn claims(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("jwt");
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).expect("b64"))
        .expect("json")
}

async fn second_factor_end_to_end(backend: Backend) {
    if !pyotp_available() || !SmtpPeer::available("second_factor_end_to_end") {
        return;
    }
    let mut peer = SmtpPeer::reserve();
    peer.start().await;
    let site = peer
        .relay_env(crate::harness::Site::new(backend).await)
        .with("OPPIDUM_IDENTITY__MFA_ENFORCEMENT", "true")
        .with("OPPIDUM_JOBS__POLL_INTERVAL_MS", "100");
    site.create_admin("root@example.org", PASSWORD);
    let server = site.start().await;
    let login =
        || server.post_json("/api/auth/login", None, json!({"email": "root@example.org", "password": PASSWORD}));

    // An instance administrator must enrol before getting tokens.
    let challenge = json(login().await).await;
    assert_eq!(challenge["mfa_required"], true);
    assert!(challenge.get("access_token").is_none());
    assert_eq!(challenge["methods"], json!(["enroll", "email_code"]));
    let token = challenge["mfa_token"].as_str().expect("mfa token").to_owned();
    let setup = json(server.post_json("/api/auth/2fa/enroll", None, json!({"mfa_token": token})).await).await;
    let uri = setup["otpauth_uri"].as_str().expect("uri").to_owned();
    assert!(uri.starts_with("otpauth://totp/"), "{uri}");
    assert!(setup["qr_svg"].as_str().expect("svg").contains("<svg"));
    let code = pyotp_now(&uri);
    let wrong = server.post_json("/api/auth/2fa/verify", None, json!({"mfa_token": token, "code": "000000"})).await;
    assert_eq!(json(wrong).await["code"], "invalid_code");
    let done = server.post_json("/api/auth/2fa/verify", None, json!({"mfa_token": token, "code": code})).await;
    assert_eq!(done.status(), 200);
    let done = json(done).await;
    let access = done["access_token"].as_str().expect("tokens after enrolment").to_owned();
    let backup: Vec<String> = done["backup_codes"]
        .as_array()
        .expect("backup codes")
        .iter()
        .map(|c| c.as_str().expect("s").to_owned())
        .collect();
    assert_eq!(backup.len(), 10);
    assert!(backup.iter().all(|c| c.len() == 9 && &c[4..5] == "-"));
    assert!(claims(&access)["amr"].as_array().expect("amr").iter().any(|a| a == "otp"));
    assert_eq!(server.get_as("/api/auth/me", &access).await.status(), 200);

    // The same TOTP code a second time is refused (replay).
    let challenge = json(login().await).await;
    assert_eq!(challenge["methods"], json!(["totp", "backup_code", "email_code"]));
    let token = challenge["mfa_token"].as_str().expect("token").to_owned();
    let replay = server.post_json("/api/auth/2fa/verify", None, json!({"mfa_token": token, "code": code})).await;
    assert_eq!(json(replay).await["code"], "invalid_code");

    // A backup code works once.
    let ok = server
        .post_json("/api/auth/2fa/verify", None, json!({"mfa_token": token, "backup_code": backup[0].to_lowercase()}))
        .await;
    assert_eq!(ok.status(), 200);
    let challenge = json(login().await).await;
    let token = challenge["mfa_token"].as_str().expect("token").to_owned();
    let again =
        server.post_json("/api/auth/2fa/verify", None, json!({"mfa_token": token, "backup_code": backup[0]})).await;
    assert_eq!(json(again).await["code"], "invalid_code");

    // An emailed code.
    let sent = server.post_json("/api/auth/2fa/email-code", None, json!({"mfa_token": token})).await;
    assert_eq!(sent.status(), 202);
    let mut email_code = None;
    for _ in 0..100 {
        if let Some(m) = peer.messages_to("root@example.org").into_iter().find(|m| m.contains("sign-in code")) {
            let subject = m.lines().find(|l| l.starts_with("Subject:")).unwrap_or_default().to_owned();
            email_code = subject.rsplit(' ').next().map(str::to_owned);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let email_code = email_code.expect("login code mail");
    let ok =
        server.post_json("/api/auth/2fa/verify", None, json!({"mfa_token": token, "email_code": email_code})).await;
    assert_eq!(ok.status(), 200, "email code refused");
    let access = json(ok).await["access_token"].as_str().expect("access").to_owned();

    // Lockout after repeated wrong codes.
    let challenge = json(login().await).await;
    let token = challenge["mfa_token"].as_str().expect("token").to_owned();
    let mut last = 0;
    for _ in 0..6 {
        last = server
            .post_json("/api/auth/2fa/verify", None, json!({"mfa_token": token, "backup_code": "AAAA-AAAA"}))
            .await
            .status()
            .as_u16();
    }
    assert_eq!(last, 429, "not locked after repeated wrong codes");

    // Disabling needs the password and a code; audit has every step.
    let bad = server
        .post_json("/api/auth/2fa/disable", Some(&access), json!({"password": "wrong password!", "code": "123456"}))
        .await;
    assert!(bad.status() == 403 || bad.status() == 429);
    let audit = json(server.get_as("/api/audit?limit=1000", &access).await).await;
    let actions: Vec<String> = audit["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| format!("{}:{}", e["action"].as_str().unwrap_or(""), e["outcome"].as_str().unwrap_or("")))
        .collect();
    for expected in ["mfa.enabled:success", "auth.mfa:success", "auth.mfa:failure"] {
        assert!(actions.iter().any(|a| a == expected), "{expected} not in {actions:?}");
    }
}
both!(second_factor_end_to_end);

async fn administrators_reset_second_factors(backend: Backend) {
    if !pyotp_available() {
        return;
    }
    let site = crate::harness::Site::new(backend).await;
    site.create_admin("root@example.org", PASSWORD);
    let server = site.start().await;
    let admin = server.login("root@example.org", PASSWORD).await;
    let root =
        json(server.get_as("/api/auth/me", &admin.access).await).await["org"]["id"].as_str().expect("org").to_owned();
    let created = server
        .post_json(
            "/api/users",
            Some(&admin.access),
            json!({"email": "u@example.org", "name": "U", "password": PASSWORD, "org_id": root}),
        )
        .await;
    let user_id = json(created).await["id"].as_str().expect("id").to_owned();
    let u = server.login("u@example.org", PASSWORD).await;
    let setup = json(server.post_json("/api/auth/2fa/totp/setup", Some(&u.access), json!({})).await).await;
    let code = pyotp_now(setup["otpauth_uri"].as_str().expect("uri"));
    let confirmed = server.post_json("/api/auth/2fa/totp/confirm", Some(&u.access), json!({"code": code})).await;
    assert_eq!(confirmed.status(), 200);
    // Now login asks for the second factor, even without enforcement: the user turned it on.
    let challenge =
        json(server.post_json("/api/auth/login", None, json!({"email": "u@example.org", "password": PASSWORD})).await)
            .await;
    assert_eq!(challenge["mfa_required"], true);
    // Another member cannot reset it; the administrator can.
    let other = server
        .post_json(
            "/api/users",
            Some(&admin.access),
            json!({"email": "o@example.org", "name": "O", "password": PASSWORD, "org_id": root}),
        )
        .await;
    assert_eq!(other.status(), 201);
    let o = server.login("o@example.org", PASSWORD).await;
    let denied = server.send(Method::POST, &format!("/api/users/{user_id}/2fa/reset"), Some(&o.access), None).await;
    assert!(denied.status() == 403 || denied.status() == 404);
    let reset = server.send(Method::POST, &format!("/api/users/{user_id}/2fa/reset"), Some(&admin.access), None).await;
    assert_eq!(reset.status(), 204);
    assert_eq!(server.get_as("/api/auth/me", &u.access).await.status(), 401, "sessions end with the reset");
    server.login("u@example.org", PASSWORD).await;
    let audit = json(server.get_as("/api/audit?action=mfa.reset", &admin.access).await).await;
    assert_eq!(audit["items"].as_array().expect("items").len(), 1);
}
both!(administrators_reset_second_factors);

async fn organizations_choose_roles_that_need_two_factors(backend: Backend) {
    if !pyotp_available() {
        return;
    }
    let site = crate::harness::Site::new(backend).await.with("OPPIDUM_IDENTITY__MFA_ENFORCEMENT", "true");
    site.create_admin("root@example.org", PASSWORD);
    let created = site.cli_with_stdin(
        &["admin", "create-user", "--email", "m@example.org", "--role", "member", "--password-stdin"],
        &format!("{PASSWORD}\n"),
    );
    assert!(created.status.success());
    let server = site.start().await;
    let login =
        |email: &'static str| server.post_json("/api/auth/login", None, json!({"email": email, "password": PASSWORD}));
    // The instance administrator enrols at first sign-in.
    let challenge = json(login("root@example.org").await).await;
    let token = challenge["mfa_token"].as_str().expect("token").to_owned();
    let setup = json(server.post_json("/api/auth/2fa/enroll", None, json!({"mfa_token": token})).await).await;
    let code = pyotp_now(setup["otpauth_uri"].as_str().expect("uri"));
    let done =
        json(server.post_json("/api/auth/2fa/verify", None, json!({"mfa_token": token, "code": code})).await).await;
    let admin = done["access_token"].as_str().expect("access").to_owned();
    // Members need no second factor by default…
    assert!(json(login("m@example.org").await).await["access_token"].is_string());
    // …until their organization says so.
    let root = json(server.get_as("/api/auth/me", &admin).await).await["org"]["id"].as_str().expect("org").to_owned();
    let bad = server
        .send(
            Method::PATCH,
            &format!("/api/orgs/{root}"),
            Some(&admin),
            Some(json!({"mfa_required_roles": ["Not A Role"]})),
        )
        .await;
    assert_eq!(json(bad).await["code"], "unknown_role");
    let set = server
        .send(
            Method::PATCH,
            &format!("/api/orgs/{root}"),
            Some(&admin),
            Some(json!({"mfa_required_roles": ["owner", "admin", "member"]})),
        )
        .await;
    assert_eq!(set.status(), 200);
    assert_eq!(json(set).await["mfa_required_roles"], json!(["owner", "admin", "member"]));
    let member = json(login("m@example.org").await).await;
    assert_eq!(member["mfa_required"], true);
    assert_eq!(member["methods"], json!(["enroll", "email_code"]));
}
both!(organizations_choose_roles_that_need_two_factors);
