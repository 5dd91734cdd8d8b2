//! Recording and reading the audit log through the service: events carry the principal's identity
//! and client; reading needs `audit.read` and sees only the subtrees where it is held.

use oppidum_core::Principal;

use super::Identity;
use crate::audit::{self, Entry, Event, Filter, Outcome, Verification};
use crate::error::{IdentityError, Result};
use crate::model::{ClientInfo, Org, Page};
use crate::permissions::AUDIT_READ;

impl Identity {
    /// Appends an event; a failure to record is logged, never hides the action's own outcome.
    pub async fn record(&self, event: Event) {
        let action = event.action;
        // Appends take their turn here first: the log is one hash chain, so appenders wait for
        // each other anyway, and waiting here holds no database connection (on PostgreSQL, eight
        // concurrent sign-ins otherwise held the whole pool waiting on the chain's lock, and every
        // other request waited for a connection).
        let _turn = self.audit_turn.lock().await;
        if let Err(err) = audit::append(&self.db, event, self.now()).await {
            tracing::error!(error = %err, action, "could not write the audit log");
        }
    }

    /// Ties an event to a user (its target) and to the user's home organization.
    pub(crate) async fn about_user(&self, mut event: Event, user: uuid::Uuid) -> Event {
        event.target = Some(("user", user.to_string()));
        if let Ok(Some(user)) = crate::repo::get_user(&self.db, user).await
            && let Ok(Some(org)) = crate::repo::get_org(&self.db, user.home_org_id).await
        {
            event.org = Some((org.id, org.path));
        }
        event
    }

    /// An event done by `principal`.
    pub fn event_by(principal: &Principal, action: &'static str, outcome: Outcome) -> Event {
        let mut event = Event::new(action, outcome);
        event.actor_id = Some(principal.user_id);
        event.impersonator_id = principal.impersonator;
        event.ip = principal.ip.clone();
        event.user_agent = principal.user_agent.clone();
        event
    }

    /// An event from an unauthenticated client.
    pub fn event_from(client: &ClientInfo, action: &'static str, outcome: Outcome) -> Event {
        let mut event = Event::new(action, outcome);
        event.ip = client.ip.clone();
        event.user_agent = client.user_agent.clone();
        event
    }

    /// The subtrees whose entries `principal` may read; `None` for all.
    async fn audit_scope(&self, principal: &Principal) -> Result<Option<Vec<String>>> {
        let access = self.access_of(principal).await?;
        if access.instance_admin {
            return Ok(None);
        }
        let roots = access.subtrees_with(Some(AUDIT_READ));
        if roots.is_empty() {
            return Err(IdentityError::Forbidden("forbidden", "You need the `audit.read` permission.".into()));
        }
        Ok(Some(roots))
    }

    /// A page of entries, newest first.
    pub async fn list_audit(&self, principal: &Principal, filter: &Filter) -> Result<Page<Entry>> {
        let scope = self.audit_scope(principal).await?;
        let limit = filter.limit.unwrap_or(100).clamp(1, 1_000);
        let mut items = audit::list(&self.db, scope.as_deref(), filter, limit + 1).await?;
        let next_cursor = if items.len() as i64 > limit {
            items.truncate(usize::try_from(limit).unwrap_or(100));
            items.last().map(|e| e.seq.to_string())
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }

    /// Every matching entry, newest first, fetched a page at a time (for the JSON Lines export).
    pub async fn audit_pages(&self, principal: &Principal, filter: Filter) -> Result<AuditPages> {
        let scope = self.audit_scope(principal).await?;
        Ok(AuditPages { identity: self.clone(), scope, filter, done: false })
    }

    /// Checks the whole chain.
    pub async fn verify_audit(&self) -> Result<Verification> {
        Ok(audit::verify(&self.db).await?)
    }
}

/// An export in progress.
pub struct AuditPages {
    identity: Identity,
    scope: Option<Vec<String>>,
    filter: Filter,
    done: bool,
}

impl AuditPages {
    /// The next page, or `None` at the end.
    pub async fn next_page(&mut self) -> Result<Option<Vec<Entry>>> {
        if self.done {
            return Ok(None);
        }
        let page = audit::list(&self.identity.db, self.scope.as_deref(), &self.filter, 500).await?;
        match page.last() {
            Some(last) if page.len() == 500 => self.filter.cursor = Some(last.seq),
            _ => self.done = true,
        }
        Ok(if page.is_empty() { None } else { Some(page) })
    }
}

/// Ties an event to an organization.
pub fn in_org(mut event: Event, org: &Org) -> Event {
    event.org = Some((org.id, org.path.clone()));
    event
}
