//! Account flows through real mail: the test reads the message the relay received, follows the
//! token in it, and completes the flow.

use reqwest::Method;
use serde_json::json;

use crate::both;
use crate::harness::{Backend, Site, SmtpPeer, TestServer, json};

const PASSWORD: &str = "correct horse battery staple";

async fn setup(
    backend: Backend,
    test: &str,
    extra: &[(&str, &str)],
) -> Option<(SmtpPeer, Site, TestServer, String, String)> {
    if !SmtpPeer::available(test) {
        return None;
    }
    let mut peer = SmtpPeer::reserve();
    peer.start().await;
    let mut site = peer.relay_env(Site::new(backend).await).with("OPPIDUM_JOBS__POLL_INTERVAL_MS", "100");
    for (k, v) in extra {
        site = site.with(k, v);
    }
    site.create_admin("root@example.org", PASSWORD);
    let server = site.start().await;
    let admin = server.login("root@example.org", PASSWORD).await;
    let root =
        json(server.get_as("/api/auth/me", &admin.access).await).await["org"]["id"].as_str().expect("org").to_owned();
    Some((peer, site, server, admin.access, root))
}

async fn password_reset_by_mail(backend: Backend) {
    let Some((peer, site, server, admin, root)) = setup(backend, "password_reset_by_mail", &[]).await else { return };
    let created = server
        .post_json(
            "/api/users",
            Some(&admin),
            json!({"email": "u@example.org", "name": "U", "password": PASSWORD, "org_id": root}),
        )
        .await;
    assert_eq!(created.status(), 201);
    peer.token_for("u@example.org", 0).await; // the welcome mail has arrived
    let before = peer.messages_to("u@example.org").len();
    let session = server.login("u@example.org", PASSWORD).await;

    for email in ["u@example.org", "nobody@example.org"] {
        let resp = server.post_json("/api/auth/password/forgot", None, json!({"email": email})).await;
        assert_eq!(resp.status(), 202, "{email}");
    }
    let token = peer.token_for("u@example.org", before).await;
    let weak =
        server.post_json("/api/auth/password/reset", None, json!({"token": token, "new_password": "short"})).await;
    assert_eq!(json(weak).await["code"], "weak_password");
    let reset = server
        .post_json("/api/auth/password/reset", None, json!({"token": token, "new_password": "a brand new passphrase"}))
        .await;
    assert_eq!(reset.status(), 204);
    let again = server
        .post_json("/api/auth/password/reset", None, json!({"token": token, "new_password": "another passphrase!"}))
        .await;
    assert_eq!(json(again).await["code"], "invalid_token", "a reset token works once");
    assert_eq!(server.get_as("/api/auth/me", &session.access).await.status(), 401, "sessions revoked");
    assert_eq!(
        server
            .post_json("/api/auth/login", None, json!({"email": "u@example.org", "password": PASSWORD}))
            .await
            .status(),
        401
    );
    server.login("u@example.org", "a brand new passphrase").await;
    assert!(peer.messages().iter().all(|m| !m.contains("nobody@example.org")), "mail to an unknown address");
    // The user is told.
    for _ in 0..100 {
        if peer.messages_to("u@example.org").iter().any(|m| m.contains("Your password was changed")) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        peer.messages_to("u@example.org").iter().any(|m| m.contains("Your password was changed")),
        "{}\n{}",
        String::from_utf8_lossy(&site.cli(&["mail", "outbox"]).stdout),
        server.log()
    );
    let audit = json(server.get_as("/api/audit?action=auth.password_reset", &admin).await).await;
    assert_eq!(audit["items"].as_array().expect("items").len(), 1);

    // A sign-in from a device the account has not used before is reported.
    let from_new_device = server
        .client
        .post(server.url("/api/auth/login"))
        .header("user-agent", "Thunderbird/140")
        .json(&json!({"email": "u@example.org", "password": "a brand new passphrase"}))
        .send()
        .await
        .expect("login");
    assert_eq!(from_new_device.status(), 200);
    let mut noticed = false;
    for _ in 0..100 {
        noticed = peer
            .messages_to("u@example.org")
            .iter()
            .any(|m| m.contains("New sign-in") && m.contains("Thunderbird/140"));
        if noticed {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(noticed, "no new-device notice");
}
both!(password_reset_by_mail);

async fn welcome_and_invitations_by_mail(backend: Backend) {
    // Links point at the front end named by identity.app_url.
    let app = [("OPPIDUM_IDENTITY__APP_URL", "https://app.example.org/")];
    let Some((peer, _site, server, admin, root)) = setup(backend, "welcome_and_invitations_by_mail", &app).await else {
        return;
    };
    // An administrator creates an account: the user chooses their password from the welcome mail.
    let created = server
        .post_json("/api/users", Some(&admin), json!({"email": "w@example.org", "name": "W", "org_id": root}))
        .await;
    assert_eq!(created.status(), 201);
    let token = peer.token_for("w@example.org", 0).await;
    assert!(!peer.messages_to("w@example.org")[0].contains(PASSWORD));
    let welcome = peer.messages_to("w@example.org")[0].replace("=\r\n", "").replace("=\n", "").replace("=3D", "=");
    assert!(welcome.contains(&format!("https://app.example.org/auth/set-password?token={token}")), "{welcome}");
    let set = server
        .post_json("/api/auth/password/reset", None, json!({"token": token, "new_password": "chosen by w myself"}))
        .await;
    assert_eq!(set.status(), 204);
    let w = server.login("w@example.org", "chosen by w myself").await;
    let me = json(server.get_as("/api/auth/me", &w.access).await).await;
    assert!(me["user"]["email_verified_at"].is_string(), "the link verified the address");

    // Invite a new address.
    let team = json(server.post_json("/api/orgs", Some(&admin), json!({"parent_id": root, "name": "Team"})).await)
        .await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let invited = server
        .post_json(
            &format!("/api/orgs/{team}/invitations"),
            Some(&admin),
            json!({"email": "n@example.org", "role": "member"}),
        )
        .await;
    assert_eq!(invited.status(), 201);
    let token = peer.token_for("n@example.org", 0).await;
    let incomplete = server.post_json("/api/auth/invitations/accept", None, json!({"token": token})).await;
    assert_eq!(json(incomplete).await["code"], "invalid_request_body");
    // The failed attempt used the token up: ask again.
    let invited = server
        .post_json(
            &format!("/api/orgs/{team}/invitations"),
            Some(&admin),
            json!({"email": "n@example.org", "role": "member"}),
        )
        .await;
    assert_eq!(invited.status(), 201);
    let token = peer.token_for("n@example.org", 1).await;
    let accepted = server
        .post_json(
            "/api/auth/invitations/accept",
            None,
            json!({"token": token, "name": "New", "password": "a new member's pass"}),
        )
        .await;
    assert_eq!(accepted.status(), 200);
    let n = server.login("n@example.org", "a new member's pass").await;
    assert_eq!(json(server.get_as("/api/auth/me", &n.access).await).await["org"]["id"], team.as_str());

    // Invite an existing user: they join.
    let before = peer.messages_to("w@example.org").len();
    let invited = server
        .post_json(
            &format!("/api/orgs/{team}/invitations"),
            Some(&admin),
            json!({"email": "w@example.org", "role": "guest"}),
        )
        .await;
    assert_eq!(invited.status(), 201);
    let token = peer.token_for("w@example.org", before).await;
    let accepted = server.post_json("/api/auth/invitations/accept", None, json!({"token": token})).await;
    assert_eq!(accepted.status(), 200);
    let members = json(server.get_as(&format!("/api/orgs/{team}/members"), &admin).await).await;
    assert!(members.as_array().expect("members").iter().any(|m| m["email"] == "w@example.org" && m["role"] == "guest"));
    // A member without members.manage cannot invite; an outsider's org is not found.
    let denied = server
        .post_json(
            &format!("/api/orgs/{team}/invitations"),
            Some(&n.access),
            json!({"email": "x@example.org", "role": "member"}),
        )
        .await;
    assert_eq!(denied.status(), 403);
}
both!(welcome_and_invitations_by_mail);

async fn verification_policy_and_email_change(backend: Backend) {
    let extra = [("OPPIDUM_IDENTITY__REGISTRATION", "open")];
    let Some((peer, _site, server, admin, root)) = setup(backend, "verification_policy_and_email_change", &extra).await
    else {
        return;
    };
    let policy = server
        .send(Method::PATCH, &format!("/api/orgs/{root}"), Some(&admin), Some(json!({"require_verified_email": true})))
        .await;
    assert_eq!(policy.status(), 200);
    let registered = server
        .post_json("/api/auth/register", None, json!({"email": "v@example.org", "password": PASSWORD, "name": "V"}))
        .await;
    assert_eq!(json(registered).await["code"], "email_not_verified");
    let login =
        server.post_json("/api/auth/login", None, json!({"email": "v@example.org", "password": PASSWORD})).await;
    assert_eq!(json(login).await["code"], "email_not_verified");
    let token = peer.token_for("v@example.org", 0).await;
    assert_eq!(server.post_json("/api/auth/verify-email", None, json!({"token": token})).await.status(), 204);
    let v = server.login("v@example.org", PASSWORD).await;
    let resend = server.post_json("/api/auth/verify-email/resend", Some(&v.access), json!({})).await;
    assert_eq!(json(resend).await["code"], "already_verified");

    // Email change: confirmed at the new address.
    let wrong = server
        .post_json(
            "/api/auth/email",
            Some(&v.access),
            json!({"new_email": "v2@example.org", "password": "wrong password!"}),
        )
        .await;
    assert_eq!(json(wrong).await["code"], "wrong_password");
    let taken = server
        .post_json("/api/auth/email", Some(&v.access), json!({"new_email": "root@example.org", "password": PASSWORD}))
        .await;
    assert_eq!(json(taken).await["code"], "email_taken");
    let asked = server
        .post_json("/api/auth/email", Some(&v.access), json!({"new_email": "v2@example.org", "password": PASSWORD}))
        .await;
    assert_eq!(asked.status(), 202);
    let token = peer.token_for("v2@example.org", 0).await;
    let confirmed = server.post_json("/api/auth/email/confirm", None, json!({"token": token})).await;
    assert_eq!(confirmed.status(), 200);
    assert_eq!(json(confirmed).await["email"], "v2@example.org");
    server.login("v2@example.org", PASSWORD).await;
    let audit = json(server.get_as("/api/audit?action=user.email_changed", &admin).await).await;
    assert_eq!(audit["items"].as_array().expect("items").len(), 1);
}
both!(verification_policy_and_email_change);

async fn organizations_override_mail_templates(backend: Backend) {
    let Some((peer, _site, server, admin, root)) = setup(backend, "organizations_override_mail_templates", &[]).await
    else {
        return;
    };
    let custom = json!({"subject": "Bienvenue chez {{ org_name }}, {{ name }}", "text": "Set it: {{ link }}", "html": "<p>{{ name }}</p><a href=\"{{ link }}\">go</a>"});
    let put = server.send(Method::PUT, "/api/mail/templates/welcome/en", Some(&admin), Some(custom)).await;
    assert_eq!(put.status(), 204);
    let bad = server
        .send(
            Method::PUT,
            "/api/mail/templates/welcome/en",
            Some(&admin),
            Some(json!({"subject": "{{ nope }}", "text": "t", "html": "h"})),
        )
        .await;
    assert_eq!(json(bad).await["code"], "template_error");
    for (path, code) in
        [("/api/mail/templates/nope/en", "unknown_template"), ("/api/mail/templates/welcome/de", "unknown_locale")]
    {
        let r =
            server.send(Method::PUT, path, Some(&admin), Some(json!({"subject": "s", "text": "t", "html": "h"}))).await;
        assert_eq!(json(r).await["code"], code, "{path}");
    }
    let created = server
        .post_json("/api/users", Some(&admin), json!({"email": "t@example.org", "name": "Tess", "org_id": root}))
        .await;
    assert_eq!(created.status(), 201);
    peer.token_for("t@example.org", 0).await;
    let message = peer.messages_to("t@example.org").pop().expect("welcome");
    assert!(message.contains("Tess"), "{message}");
    assert!(message.contains("Subject: =?utf-8?") || message.contains("Bienvenue chez Root"), "{message}");
    // Without orgs.manage: refused.
    let member = server
        .post_json(
            "/api/users",
            Some(&admin),
            json!({"email": "m@example.org", "name": "M", "password": PASSWORD, "org_id": root}),
        )
        .await;
    assert_eq!(member.status(), 201);
    let m = server.login("m@example.org", PASSWORD).await;
    let denied = server
        .send(
            Method::PUT,
            "/api/mail/templates/welcome/en",
            Some(&m.access),
            Some(json!({"subject": "s", "text": "t", "html": "h"})),
        )
        .await;
    assert_eq!(denied.status(), 403);
}
both!(organizations_override_mail_templates);
