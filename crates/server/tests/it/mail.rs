//! Transactional mail through a real SMTP server: the API queues, the outbox delivers exactly
//! once, a relay that is down delays mail without losing or duplicating it.

use std::time::Duration;

use serde_json::json;

use crate::both;
use crate::harness::{Backend, Site, SmtpPeer, eventually, json};

const PASSWORD: &str = "correct horse battery staple";

async fn mail_api_delivers_through_the_relay(backend: Backend) {
    if !SmtpPeer::available("mail_api_delivers_through_the_relay") {
        return;
    }
    let mut peer = SmtpPeer::reserve();
    peer.start().await;
    let site = peer.relay_env(Site::new(backend).await).with("OPPIDUM_MAIL__FROM", "Acme <noreply@acme.example>");
    site.create_admin("root@example.org", PASSWORD);
    let server = site.start().await;
    let admin = server.login("root@example.org", PASSWORD).await;

    let sent = server
        .post_json(
            "/api/mail/send",
            Some(&admin.access),
            json!({"to": ["a@x.example", "B <b@x.example>"], "subject": "Quarterly report", "text": "See attached."}),
        )
        .await;
    assert_eq!(sent.status(), 202);
    assert_eq!(json(sent).await["ids"].as_array().expect("ids").len(), 2);
    let templated = server
        .post_json(
            "/api/mail/send",
            Some(&admin.access),
            json!({"to": ["c@x.example"], "template": "welcome", "locale": "fr", "variables": {"name": "Zoé", "link": "https://acme.example/set?t=1&u=2", "org_name": "Acme"}}),
        )
        .await;
    assert_eq!(templated.status(), 202);

    let messages = eventually(Duration::from_secs(20), || async {
        let m = peer.messages();
        (m.len() == 3).then_some(m)
    })
    .await
    .unwrap_or_else(|| panic!("mail not delivered: {:?}\n{}", peer.messages(), server.log()));
    let all = messages.join("\n----\n");
    assert!(all.contains("Subject: Quarterly report"), "{all}");
    assert!(all.contains("From: Acme <noreply@acme.example>"), "{all}");
    assert!(all.contains("To: B <b@x.example>"), "{all}");
    assert!(all.contains("Bienvenue dans Acme"), "French subject: {all}");
    assert!(all.contains("Content-Type: text/html"), "{all}");
    assert!(all.contains("multipart/alternative"), "{all}");

    let outbox = site.cli(&["mail", "outbox", "--status", "sent"]);
    assert_eq!(String::from_utf8_lossy(&outbox.stdout).lines().count(), 3);

    // All or nothing on bad input; permission needed.
    let bad = server
        .post_json(
            "/api/mail/send",
            Some(&admin.access),
            json!({"to": ["ok@x.example", "not an address"], "subject": "s", "text": "t"}),
        )
        .await;
    assert_eq!(json(bad).await["code"], "invalid_email");
    let unknown = server
        .post_json("/api/mail/send", Some(&admin.access), json!({"to": ["ok@x.example"], "template": "nope"}))
        .await;
    assert_eq!(json(unknown).await["code"], "unknown_template");
    let missing_var = server
        .post_json(
            "/api/mail/send",
            Some(&admin.access),
            json!({"to": ["ok@x.example"], "template": "welcome", "variables": {"name": "x"}}),
        )
        .await;
    assert_eq!(json(missing_var).await["code"], "template_error");
    let root =
        json(server.get_as("/api/auth/me", &admin.access).await).await["org"]["id"].as_str().expect("org").to_owned();
    let guest = server
        .post_json(
            "/api/users",
            Some(&admin.access),
            json!({"email": "g@example.org", "name": "G", "password": PASSWORD, "org_id": root, "role": "guest"}),
        )
        .await;
    assert_eq!(guest.status(), 201);
    let g = server.login("g@example.org", PASSWORD).await;
    let denied = server
        .post_json("/api/mail/send", Some(&g.access), json!({"to": ["a@x.example"], "subject": "s", "text": "t"}))
        .await;
    assert_eq!(denied.status(), 403);
    let outbox = String::from_utf8_lossy(&site.cli(&["mail", "outbox"]).stdout).to_string();
    // The guest's welcome mail aside.
    let api_mail = outbox.lines().filter(|l| !l.contains("\"Welcome to")).count();
    assert_eq!(api_mail, 3, "nothing extra queued:\n{outbox}");
}
both!(mail_api_delivers_through_the_relay);

async fn mail_waits_for_a_relay_that_is_down(backend: Backend) {
    if !SmtpPeer::available("mail_waits_for_a_relay_that_is_down") {
        return;
    }
    let mut peer = SmtpPeer::reserve();
    let site = peer.relay_env(Site::new(backend).await).with("OPPIDUM_JOBS__POLL_INTERVAL_MS", "200");
    site.create_admin("root@example.org", PASSWORD);
    let server = site.start().await;
    let admin = server.login("root@example.org", PASSWORD).await;
    let sent = server
        .post_json(
            "/api/mail/send",
            Some(&admin.access),
            json!({"to": ["a@x.example"], "subject": "Patience", "text": "It will arrive."}),
        )
        .await;
    assert_eq!(sent.status(), 202);
    // The relay is down: the first attempt fails and is retried later.
    let failed = eventually(Duration::from_secs(10), || async {
        let out = String::from_utf8_lossy(&site.cli(&["mail", "outbox"]).stdout).to_string();
        out.contains("last error").then_some(out)
    })
    .await
    .expect("a failed attempt is recorded");
    assert!(failed.contains("queued"), "{failed}");
    peer.start().await;
    let delivered = eventually(Duration::from_secs(40), || async { (peer.messages().len() == 1).then_some(()) }).await;
    assert!(delivered.is_some(), "not delivered after the relay came back\n{}", server.log());
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(peer.messages().len(), 1, "delivered twice");
    let out = String::from_utf8_lossy(&site.cli(&["mail", "outbox", "--status", "sent"]).stdout).to_string();
    assert_eq!(out.lines().count(), 1, "{out}");
}
both!(mail_waits_for_a_relay_that_is_down);

#[tokio::test]
async fn mail_without_relay_stays_in_outbox_until_one_is_configured() {
    if !SmtpPeer::available("mail_without_relay_stays_in_outbox_until_one_is_configured") {
        return;
    }
    let site = Site::new(Backend::Sqlite).await;
    site.create_admin("root@example.org", PASSWORD);
    let mut server = site.start().await;
    let admin = server.login("root@example.org", PASSWORD).await;
    let sent = server
        .post_json(
            "/api/mail/send",
            Some(&admin.access),
            json!({"to": ["a@x.example"], "subject": "Held", "text": "No relay yet."}),
        )
        .await;
    assert_eq!(sent.status(), 202);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let out = String::from_utf8_lossy(&site.cli(&["mail", "outbox", "--status", "queued"]).stdout).to_string();
    assert!(out.contains("\"Held\""), "{out}");
    assert!(server.log().contains("No relay yet."), "development mode logs held mail");
    server.terminate();
    server.wait_exit(Duration::from_secs(5)).await;

    let mut peer = SmtpPeer::reserve();
    peer.start().await;
    let site = peer.relay_env(site);
    let _server = site.start().await;
    let delivered = eventually(Duration::from_secs(20), || async { (peer.messages().len() == 1).then_some(()) }).await;
    assert!(delivered.is_some(), "held mail was not delivered once a relay was configured");
}
