//! Delivery through the configured SMTP relay (lettre over rustls), as the `mail.deliver` job.

use std::time::Duration;

use async_trait::async_trait;
use lettre::message::{Message, MultiPart, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use oppidum_core::config::{RelayConfig, SmtpTls};
use oppidum_store::jobs::{Job, JobError, JobHandler};
use uuid::Uuid;

use crate::outbox::{Mailer, OutboxMessage, parse_mailbox};

/// A connection pool to the relay.
#[derive(Clone)]
pub struct Relay {
    transport: AsyncSmtpTransport<Tokio1Executor>,
}

impl Relay {
    pub fn new(config: &RelayConfig) -> Result<Self, String> {
        let builder = match config.tls {
            SmtpTls::None => {
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host).port(config.port.unwrap_or(25))
            }
            SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&config.host)
                .map_err(|e| e.to_string())?
                .port(config.port.unwrap_or(587)),
            SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&config.host)
                .map_err(|e| e.to_string())?
                .port(config.port.unwrap_or(465)),
        };
        let builder = builder.timeout(Some(Duration::from_secs(config.timeout_secs.max(1))));
        let builder = match (&config.user, &config.password) {
            (Some(user), Some(password)) => {
                builder.credentials(Credentials::new(user.clone(), password.expose().to_owned()))
            }
            _ => builder,
        };
        Ok(Self { transport: builder.build() })
    }
}

fn build(message: &OutboxMessage) -> Result<Message, String> {
    let from = parse_mailbox(&message.from_addr).map_err(|e| e.to_string())?;
    let to = parse_mailbox(&message.to_addr).map_err(|e| e.to_string())?;
    let builder = Message::builder()
        .from(from)
        .to(to)
        .subject(message.subject.clone())
        .message_id(Some(message.message_id.clone()));
    let built = match &message.html_body {
        Some(html) => builder.multipart(MultiPart::alternative_plain_html(message.text_body.clone(), html.clone())),
        None => builder.header(ContentType::TEXT_PLAIN).body(message.text_body.clone()),
    };
    built.map_err(|e| e.to_string())
}

/// Delivers one outbox message.
pub struct Deliver {
    pub mailer: Mailer,
    pub relay: Relay,
}

#[async_trait]
impl JobHandler for Deliver {
    async fn run(&self, job: &Job) -> Result<(), JobError> {
        let id: Uuid = job
            .payload
            .0
            .get("id")
            .and_then(|v| v.as_str())
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| JobError::Permanent("mail.deliver: payload has no message id".into()))?;
        let message = self
            .mailer
            .get(id)
            .await
            .map_err(|e| JobError::Retry(e.to_string()))?
            .ok_or_else(|| JobError::Permanent(format!("mail.deliver: no message {id}")))?;
        if message.status != "queued" {
            // Already accepted by the relay (or given up): never send twice.
            return Ok(());
        }
        let email = match build(&message) {
            Ok(email) => email,
            Err(err) => {
                let _ = self.mailer.mark_failed(id, &err, true).await;
                return Err(JobError::Permanent(err));
            }
        };
        match self.relay.transport.send(email).await {
            Ok(response) => {
                let text = format!("{} {}", response.code(), response.message().collect::<Vec<_>>().join(" "));
                // Recorded before the job completes: a crash from here on does not resend.
                self.mailer.mark_sent(id, &text).await.map_err(|e| JobError::Retry(e.to_string()))?;
                tracing::info!(%id, to = %message.to_addr, relay = %text, "mail delivered to the relay");
                Ok(())
            }
            Err(err) => {
                let permanent = err.is_permanent();
                let last = job.attempts >= job.max_attempts;
                let _ = self.mailer.mark_failed(id, &err.to_string(), permanent || last).await;
                if permanent {
                    Err(JobError::Permanent(format!("the relay refused the message: {err}")))
                } else {
                    Err(JobError::Retry(format!("the relay is unavailable: {err}")))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use oppidum_core::config::MailConfig;
    use oppidum_core::time::SystemClock;
    use oppidum_store::jobs::JobQueue;
    use oppidum_store::{Db, EventBus};

    use super::*;
    use crate::outbox::NewMail;

    /// A relay nobody listens on: any attempt to send fails.
    fn dead_relay() -> Relay {
        let port =
            std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(9);
        let config = RelayConfig {
            host: "127.0.0.1".into(),
            port: Some(port),
            tls: SmtpTls::None,
            timeout_secs: 2,
            ..RelayConfig::default()
        };
        Relay::new(&config).expect("relay")
    }

    #[tokio::test]
    async fn relay_never_resends_an_accepted_message() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::connect(&format!("sqlite://{}", dir.path().join("t.db").display()), &Default::default())
            .await
            .expect("db");
        db.migrate().await.expect("migrate");
        let clock: Arc<dyn oppidum_core::time::Clock> = Arc::new(SystemClock);
        let queue = JobQueue::new(db.clone(), clock.clone(), EventBus::new(Uuid::now_v7(), None), 3);
        let mailer = Mailer::new(db.clone(), queue.clone(), MailConfig::default(), clock, false);
        let id = mailer
            .send(NewMail {
                org: None,
                to: "a@x.example".into(),
                subject: "s".into(),
                text: "t".into(),
                html: None,
                template: None,
            })
            .await
            .expect("queued");
        // The relay accepted it, then the process died before completing the job.
        mailer.mark_sent(id, "250 OK").await.expect("mark");
        let job = queue
            .enqueue(oppidum_store::jobs::NewJob::new(crate::outbox::DELIVER_KIND, serde_json::json!({ "id": id })))
            .await
            .expect("enqueue")
            .expect("id");
        let job = queue.get(job).await.expect("get").expect("job");
        let deliver = Deliver { mailer: mailer.clone(), relay: dead_relay() };
        // Succeeds without touching the (dead) relay.
        deliver.run(&job).await.expect("no second send");
        assert_eq!(mailer.get(id).await.expect("get").expect("message").relay_response.as_deref(), Some("250 OK"));

        // A queued message with the relay down: retried, not lost.
        let id = mailer
            .send(NewMail {
                org: None,
                to: "b@x.example".into(),
                subject: "s".into(),
                text: "t".into(),
                html: None,
                template: None,
            })
            .await
            .expect("queued");
        let job = queue
            .enqueue(oppidum_store::jobs::NewJob::new(crate::outbox::DELIVER_KIND, serde_json::json!({ "id": id })))
            .await
            .expect("enqueue")
            .expect("id");
        let job = queue.get(job).await.expect("get").expect("job");
        assert!(matches!(deliver.run(&job).await, Err(JobError::Retry(_))));
        let message = mailer.get(id).await.expect("get").expect("message");
        assert_eq!(message.status, "queued");
        assert!(message.last_error.is_some());
    }
}
