//! The durable outbox. A message is stored first, then a `mail.deliver` job (unique per message)
//! hands it to the relay; the relay's acceptance is recorded on the message before the job
//! completes, so a crash after acceptance never sends it twice. Without a relay, messages wait in
//! the outbox (and are printed to the log in development) until one is configured.

use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use lettre::message::Mailbox;
use oppidum_core::config::MailConfig;
use oppidum_core::time::Clock;
use oppidum_store::jobs::{JobQueue, NewJob};
use oppidum_store::{Db, StoreError};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::MailError;
use crate::templates::Templates;

/// The job kind that delivers one message.
pub const DELIVER_KIND: &str = "mail.deliver";

/// A message as stored.
#[derive(Debug, Clone, Serialize, oppidum_store::FromRow, ToSchema)]
pub struct OutboxMessage {
    pub id: Uuid,
    pub org_id: Option<Uuid>,
    pub to_addr: String,
    pub from_addr: String,
    pub subject: String,
    pub text_body: String,
    pub html_body: Option<String>,
    pub template: Option<String>,
    pub message_id: String,
    /// `queued`, `sent` or `dead`.
    pub status: String,
    pub attempts: i64,
    pub relay_response: Option<String>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
}

/// A message to send.
#[derive(Debug, Clone)]
pub struct NewMail {
    pub org: Option<Uuid>,
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
    pub template: Option<String>,
}

/// Queues mail; cheap to clone.
#[derive(Clone)]
pub struct Mailer {
    db: Db,
    queue: JobQueue,
    templates: Templates,
    config: Arc<MailConfig>,
    clock: Arc<dyn Clock>,
    /// Print messages that cannot be delivered (no relay) to the log.
    log_unsent: bool,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer").field("relay", &self.config.relay.is_some()).finish_non_exhaustive()
    }
}

/// Parses an address (`a@b.c` or `Name <a@b.c>`).
pub fn parse_mailbox(address: &str) -> Result<Mailbox, MailError> {
    Mailbox::from_str(address.trim())
        .map_err(|_| MailError::Invalid("invalid_email", format!("`{}` is not an email address.", address.trim())))
}

impl Mailer {
    pub fn new(db: Db, queue: JobQueue, config: MailConfig, clock: Arc<dyn Clock>, log_unsent: bool) -> Self {
        Self { templates: Templates::new(db.clone()), db, queue, config: Arc::new(config), clock, log_unsent }
    }

    pub fn templates(&self) -> &Templates {
        &self.templates
    }

    pub fn default_locale(&self) -> &str {
        &self.config.default_locale
    }

    /// Stores a message and schedules its delivery.
    pub async fn send(&self, mail: NewMail) -> Result<Uuid, MailError> {
        let to = parse_mailbox(&mail.to)?;
        let from = parse_mailbox(&self.config.from)?;
        if mail.subject.len() > 998 || mail.text.len() > 5_000_000 {
            return Err(MailError::Invalid("message_too_large", "The message is too large.".into()));
        }
        let now = self.clock.now();
        let id = Uuid::now_v7();
        let message_id = format!("<{}@{}>", id.simple(), from.email.domain());
        self.db
            .query(
                "INSERT INTO mail_outbox (id, org_id, to_addr, from_addr, subject, text_body, html_body, template, \
                 message_id, status, attempts, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'queued', 0, $10, $10)",
            )
            .bind(id)
            .bind(mail.org)
            .bind(to.to_string())
            .bind(from.to_string())
            .bind(mail.subject.as_str())
            .bind(mail.text.as_str())
            .bind(mail.html)
            .bind(mail.template)
            .bind(message_id)
            .bind(now)
            .execute()
            .await?;
        if self.config.relay.is_some() {
            self.schedule(id).await?;
        } else if self.log_unsent {
            tracing::info!(
                to = %to, subject = %mail.subject, id = %id,
                "no mail relay configured; the message stays in the outbox:\n{}", mail.text
            );
        }
        Ok(id)
    }

    /// Renders a template and sends it.
    pub async fn send_template(
        &self,
        org: Option<Uuid>,
        to: &str,
        name: &str,
        locale: Option<&str>,
        vars: &serde_json::Value,
    ) -> Result<Uuid, MailError> {
        let locale = locale.unwrap_or(&self.config.default_locale);
        let rendered = self.templates.render(org, name, locale, vars).await?;
        self.send(NewMail {
            org,
            to: to.to_owned(),
            subject: rendered.subject,
            text: rendered.text,
            html: Some(rendered.html),
            template: Some(name.to_owned()),
        })
        .await
    }

    async fn schedule(&self, id: Uuid) -> Result<(), StoreError> {
        let mut job = NewJob::new(DELIVER_KIND, serde_json::json!({ "id": id }));
        job.unique_key = Some(format!("mail:{id}"));
        job.max_attempts = Some(self.config.max_attempts.max(1));
        self.queue.enqueue(job).await?;
        Ok(())
    }

    /// Schedules delivery of every queued message that has no job yet (after a relay is
    /// configured, or a crash between storing and scheduling). Returns how many.
    pub async fn schedule_pending(&self) -> Result<usize, MailError> {
        if self.config.relay.is_none() {
            return Ok(0);
        }
        let ids: Vec<(Uuid,)> =
            self.db.query("SELECT id FROM mail_outbox WHERE status = 'queued' ORDER BY created_at").fetch_all().await?;
        for (id,) in &ids {
            self.schedule(*id).await?;
        }
        Ok(ids.len())
    }

    pub async fn get(&self, id: Uuid) -> Result<Option<OutboxMessage>, MailError> {
        Ok(self
            .db
            .query(
                "SELECT id, org_id, to_addr, from_addr, subject, text_body, html_body, template, message_id, status, \
                 attempts, relay_response, last_error, created_at, updated_at, sent_at FROM mail_outbox WHERE id = $1",
            )
            .bind(id)
            .fetch_optional()
            .await?)
    }

    /// The newest messages, optionally of one status.
    pub async fn list(&self, status: Option<&str>, limit: i64) -> Result<Vec<OutboxMessage>, MailError> {
        Ok(self
            .db
            .query(
                "SELECT id, org_id, to_addr, from_addr, subject, text_body, html_body, template, message_id, status, \
                 attempts, relay_response, last_error, created_at, updated_at, sent_at FROM mail_outbox \
                 WHERE ($1 IS NULL OR status = $1) ORDER BY created_at DESC, id DESC LIMIT $2",
            )
            .bind(status)
            .bind(limit.clamp(1, 1_000))
            .fetch_all()
            .await?)
    }

    /// Records the relay's acceptance: from now on the message is never sent again.
    pub(crate) async fn mark_sent(&self, id: Uuid, response: &str) -> Result<(), StoreError> {
        let now = self.clock.now();
        self.db
            .query(
                "UPDATE mail_outbox SET status = 'sent', relay_response = $2, sent_at = $3, updated_at = $3, \
                 attempts = attempts + 1, last_error = NULL WHERE id = $1",
            )
            .bind(id)
            .bind(response)
            .bind(now)
            .execute()
            .await?;
        Ok(())
    }

    pub(crate) async fn mark_failed(&self, id: Uuid, error: &str, dead: bool) -> Result<(), StoreError> {
        let now = self.clock.now();
        self.db
            .query(
                "UPDATE mail_outbox SET status = CASE WHEN $3 THEN 'dead' ELSE status END, last_error = $2, \
                 attempts = attempts + 1, updated_at = $4 WHERE id = $1 AND status = 'queued'",
            )
            .bind(id)
            .bind(error)
            .bind(dead)
            .bind(now)
            .execute()
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::parse_mailbox;
    use oppidum_core::email;
    use proptest::prelude::*;

    proptest! {
        /// An address the server accepts at sign-up or in an invitation can always be written to.
        #[test]
        fn every_accepted_address_is_a_mailbox(
            address in r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,80}@[A-Za-z0-9.-]{1,40}",
        ) {
            if email::is_valid(&address) {
                prop_assert!(parse_mailbox(&address).is_ok(), "{address}");
            }
        }
    }

    #[test]
    fn addresses_found_by_schemathesis_are_refused_or_sent() {
        let local = "`0oj*^.a.9c31bu6o0g'8_&&nd!k?scip0`k|.a!.}0z";
        for address in [format!("{local}@ffqbd.a.3"), format!("{}@ffqbd.a.3", local.repeat(3))] {
            assert_eq!(email::is_valid(&address), parse_mailbox(&address).is_ok(), "{address}");
        }
    }
}
