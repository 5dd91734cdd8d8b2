//! Outbound mail: a durable outbox in the database drained by `mail.deliver` jobs through an SMTP
//! relay, and the templates (HTML + text, English and French, per-organization overrides) every
//! domain uses to write to people. Inbound mail, IMAP and submission come with the mail server.

pub mod error;
pub mod http;
pub mod outbox;
pub mod relay;
pub mod templates;

pub use error::MailError;
pub use outbox::{Mailer, NewMail, OutboxMessage};
pub use templates::{Rendered, Templates};
