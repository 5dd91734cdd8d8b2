//! Mail templates: MiniJinja with strict undefined variables; every template has a subject, a
//! plain-text and an HTML part (auto-escaped), in English and French. Organizations may override
//! any of them (stored in `mail_templates`); otherwise the built-in ones apply. Locale: the
//! requested one when it exists, else English.

use minijinja::{Environment, UndefinedBehavior};
use oppidum_store::Db;
use uuid::Uuid;

use crate::error::MailError;

/// Locales with built-in templates.
pub const LOCALES: [&str; 2] = ["en", "fr"];

macro_rules! builtin {
    ($($name:literal),* $(,)?) => {
        /// Names of the built-in templates.
        pub const NAMES: &[&str] = &[$($name),*];

        fn builtin_source(locale: &str, name: &str, part: &str) -> Option<&'static str> {
            match (locale, name, part) {
                $(
                    ("en", $name, "subject") => Some(include_str!(concat!("../templates/en/", $name, ".subject.txt"))),
                    ("en", $name, "txt") => Some(include_str!(concat!("../templates/en/", $name, ".txt"))),
                    ("en", $name, "html") => Some(include_str!(concat!("../templates/en/", $name, ".html"))),
                    ("fr", $name, "subject") => Some(include_str!(concat!("../templates/fr/", $name, ".subject.txt"))),
                    ("fr", $name, "txt") => Some(include_str!(concat!("../templates/fr/", $name, ".txt"))),
                    ("fr", $name, "html") => Some(include_str!(concat!("../templates/fr/", $name, ".html"))),
                )*
                _ => None,
            }
        }
    };
}

builtin!(
    "verify_email",
    "password_reset",
    "password_changed",
    "welcome",
    "invitation",
    "email_change",
    "login_code",
    "new_device",
);

/// A rendered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Renders templates; cheap to clone.
#[derive(Debug, Clone)]
pub struct Templates {
    db: Db,
}

#[derive(oppidum_store::FromRow)]
struct Override {
    subject: String,
    text_body: String,
    html_body: String,
}

fn render_parts(
    name: &str,
    subject: &str,
    text: &str,
    html: &str,
    vars: &serde_json::Value,
) -> Result<Rendered, MailError> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    let fail = |e: minijinja::Error| MailError::Render { name: name.to_owned(), reason: e.to_string() };
    // The `.html` suffix turns auto-escaping on for that part only.
    env.add_template_owned("subject.txt", subject.to_owned()).map_err(fail)?;
    env.add_template_owned("body.txt", text.to_owned()).map_err(fail)?;
    env.add_template_owned("body.html", html.to_owned()).map_err(fail)?;
    let ctx = minijinja::Value::from(minijinja::value::Serde(vars));
    let render = |t: &str| env.get_template(t).and_then(|t| t.render(&ctx)).map_err(fail);
    let subject = render("subject.txt")?;
    Ok(Rendered {
        // A subject is one line, whatever a variable holds.
        subject: subject.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" "),
        text: render("body.txt")?,
        html: render("body.html")?,
    })
}

impl Templates {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Renders `name` in `locale` for `org` (its override when it has one) with `vars`.
    pub async fn render(
        &self,
        org: Option<Uuid>,
        name: &str,
        locale: &str,
        vars: &serde_json::Value,
    ) -> Result<Rendered, MailError> {
        if !NAMES.contains(&name) {
            return Err(MailError::UnknownTemplate(name.to_owned()));
        }
        let locale = if LOCALES.contains(&locale) { locale } else { "en" };
        if let Some(org) = org {
            let found: Option<Override> = self
                .db
                .query("SELECT subject, text_body, html_body FROM mail_templates WHERE org_id = $1 AND name = $2 AND locale = $3")
                .bind(org)
                .bind(name)
                .bind(locale)
                .fetch_optional()
                .await?;
            if let Some(o) = found {
                return render_parts(name, &o.subject, &o.text_body, &o.html_body, vars);
            }
        }
        let part = |p: &str| builtin_source(locale, name, p).ok_or_else(|| MailError::UnknownTemplate(name.to_owned()));
        render_parts(name, part("subject")?, part("txt")?, part("html")?, vars)
    }

    /// Stores an organization's version of a template, checked by rendering it with `sample`.
    pub async fn set_override(
        &self,
        org: Uuid,
        name: &str,
        locale: &str,
        parts: (&str, &str, &str),
        sample: &serde_json::Value,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), MailError> {
        if !NAMES.contains(&name) {
            return Err(MailError::UnknownTemplate(name.to_owned()));
        }
        if !LOCALES.contains(&locale) {
            return Err(MailError::Invalid("unknown_locale", "Locales: en, fr.".into()));
        }
        render_parts(name, parts.0, parts.1, parts.2, sample)?;
        self.db
            .query(
                "INSERT INTO mail_templates (org_id, name, locale, subject, text_body, html_body, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (org_id, name, locale) DO UPDATE SET \
                 subject = excluded.subject, text_body = excluded.text_body, html_body = excluded.html_body, \
                 updated_at = excluded.updated_at",
            )
            .bind(org)
            .bind(name)
            .bind(locale)
            .bind(parts.0)
            .bind(parts.1)
            .bind(parts.2)
            .bind(now)
            .execute()
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> serde_json::Value {
        serde_json::json!({
            "name": "Zoé <script>", "link": "https://x.example/a?b=1&c=2", "org_name": "Acme", "inviter": "Ann",
            "role": "admin", "new_email": "n@x.example", "code": "123456", "ip": "127.0.0.1", "user_agent": "curl",
            "at": "2026-11-22 10:00 UTC",
        })
    }

    #[test]
    fn templates_every_builtin_renders_in_both_locales() {
        for name in NAMES {
            for locale in LOCALES {
                let part = |p: &str| builtin_source(locale, name, p).expect("exists");
                let out = render_parts(name, part("subject"), part("txt"), part("html"), &vars()).expect("renders");
                assert!(!out.subject.is_empty() && !out.subject.contains('\n'), "{name}/{locale}");
                assert!(!out.text.is_empty() && !out.html.is_empty());
                // Escaped in HTML, verbatim in text.
                if out.text.contains("Zoé") {
                    assert!(out.html.contains("Zoé &lt;script&gt;"), "{name}/{locale}: {}", out.html);
                    assert!(out.text.contains("Zoé <script>"));
                }
            }
        }
    }

    #[test]
    fn templates_undefined_variables_fail() {
        let err = render_parts("x", "Hi {{ name }}", "{{ missing }}", "", &serde_json::json!({"name": "a"}));
        assert!(matches!(err, Err(MailError::Render { .. })));
    }
}
