//! Named queries (`queries/<name>.yaml`): SQL written by the app's author, with `:name`
//! placeholders bound from the request (`params`, typed and checked like fields) and from the
//! caller (`:auth.id`, `:auth.org`, `:auth.role`), and `{{table}}` for the app's tables. The SQL
//! is rewritten once, when the app loads, into numbered parameters: request values are always
//! bound, never spliced. Read-only unless the file says `write: true`.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::schema::{Field, Problem, SchemaFile, valid_identifier};

/// Most named queries per app, and the largest file.
pub const MAX_QUERIES: usize = 100;
pub const MAX_FILE: usize = 64 * 1024;

/// A `queries/<name>.yaml` file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryFile {
    #[serde(default)]
    pub description: String,
    pub sql: String,
    /// Request parameters, typed like fields (`type`, `required`, `default`, `min`, `max`, …).
    #[serde(default)]
    pub params: IndexMap<String, Field>,
    /// Roles allowed to run it; empty: every caller of the app.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Whether it changes data (then it is run with POST, in a transaction).
    #[serde(default)]
    pub write: bool,
}

/// What a placeholder is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Binding {
    AuthId,
    AuthOrg,
    AuthRole,
    Param(String),
}

/// A checked query, its SQL rewritten with `$1`, `$2`, … and real table names.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedQuery {
    pub name: String,
    pub file: QueryFile,
    pub sql: String,
    /// What `$1`, `$2`, … are.
    pub bindings: Vec<Binding>,
}

fn problem(file: &str, reason: impl Into<String>) -> Problem {
    Problem { file: file.to_owned(), table: None, field: None, reason: reason.into() }
}

/// Rewrites `sql`: placeholders to numbered parameters, `{{table}}` to quoted table names.
/// String literals, quoted identifiers, comments and `::` casts are left as they are.
pub fn rewrite(
    sql: &str,
    params: &IndexMap<String, Field>,
    schema: &SchemaFile,
    prefix: &str,
) -> Result<(String, Vec<Binding>), String> {
    let chars: Vec<char> = sql.chars().collect();
    let mut out = String::with_capacity(sql.len());
    let mut bindings: Vec<Binding> = Vec::new();
    let mut i = 0;
    let copy_until = |out: &mut String, i: &mut usize, end: &str| -> Result<(), String> {
        let end: Vec<char> = end.chars().collect();
        while *i < chars.len() {
            if chars[*i..].starts_with(&end) {
                out.extend(&end);
                *i += end.len();
                return Ok(());
            }
            out.push(chars[*i]);
            *i += 1;
        }
        Err("unterminated quote or comment".into())
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\'' | '"' => {
                out.push(c);
                i += 1;
                copy_until(&mut out, &mut i, &c.to_string())?;
            }
            '-' if chars.get(i + 1) == Some(&'-') => {
                out.push_str("--");
                i += 2;
                while i < chars.len() && chars[i] != '\n' {
                    out.push(chars[i]);
                    i += 1;
                }
            }
            '/' if chars.get(i + 1) == Some(&'*') => {
                out.push_str("/*");
                i += 2;
                copy_until(&mut out, &mut i, "*/")?;
            }
            ':' if chars.get(i + 1) == Some(&':') => {
                out.push_str("::");
                i += 2;
            }
            ':' if chars.get(i + 1).is_some_and(|c| c.is_ascii_lowercase()) => {
                let start = i + 1;
                let mut end = start;
                while end < chars.len()
                    && (chars[end].is_ascii_alphanumeric() || chars[end] == '_' || chars[end] == '.')
                {
                    end += 1;
                }
                let name: String = chars[start..end].iter().collect();
                let name = name.trim_end_matches('.').to_owned();
                let binding = match name.as_str() {
                    "auth.id" => Binding::AuthId,
                    "auth.org" => Binding::AuthOrg,
                    "auth.role" => Binding::AuthRole,
                    other if params.contains_key(other) => Binding::Param(other.to_owned()),
                    other => return Err(format!("`:{other}` is neither a declared param nor auth.id/org/role")),
                };
                let n = match bindings.iter().position(|b| *b == binding) {
                    Some(k) => k + 1,
                    None => {
                        bindings.push(binding);
                        bindings.len()
                    }
                };
                out.push_str(&format!("${n}"));
                i = start + name.chars().count();
            }
            '{' if chars.get(i + 1) == Some(&'{') => {
                let rest: String = chars[i + 2..].iter().collect();
                let Some(close) = rest.find("}}") else { return Err("`{{` without `}}`".into()) };
                let table = rest[..close].trim();
                if !schema.tables.contains_key(table) {
                    return Err(format!("`{{{{{table}}}}}` is not a table of the app"));
                }
                out.push_str(&format!("\"{prefix}{table}\""));
                i += 2 + rest[..close].chars().count() + 2;
            }
            '$' | '?' => return Err("use `:name` placeholders, not `$n` or `?`".into()),
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    Ok((out, bindings))
}

/// Checks one query file and prepares it.
pub fn load_query(name: &str, text: &str, schema: &SchemaFile, prefix: &str) -> Result<NamedQuery, Vec<Problem>> {
    let file_name = format!("queries/{name}.yaml");
    if !valid_identifier(name) {
        return Err(vec![problem(&file_name, "query names are lowercase letters, digits and `_`")]);
    }
    if text.len() > MAX_FILE {
        return Err(vec![problem(&file_name, format!("larger than {MAX_FILE} bytes"))]);
    }
    let file: QueryFile = serde_norway::from_str(text).map_err(|e| vec![problem(&file_name, e.to_string())])?;
    let mut problems = Vec::new();
    let body = file.sql.trim().trim_end_matches(';').trim();
    if body.contains(';') {
        problems.push(problem(&file_name, "one statement only (no `;` inside)"));
    }
    let head = body.split_whitespace().next().unwrap_or_default().to_ascii_lowercase();
    if !file.write && !matches!(head.as_str(), "select" | "with") {
        problems
            .push(problem(&file_name, "a read-only query starts with SELECT or WITH (add `write: true` otherwise)"));
    }
    for (param, field) in &file.params {
        if !valid_identifier(param) {
            problems.push(problem(&file_name, format!("param `{param}`: lowercase letters, digits and `_`")));
        }
        if field.primary || field.auto || field.unique || field.encrypt || field.hash || field.foreign.is_some() {
            problems.push(problem(
                &file_name,
                format!("param `{param}`: only type, required, default, min, max, pattern, values"),
            ));
        }
    }
    let rewritten = rewrite(body, &file.params, schema, prefix);
    match (rewritten, problems.is_empty()) {
        (Ok((sql, bindings)), true) => Ok(NamedQuery { name: name.to_owned(), file, sql, bindings }),
        (Ok(_), false) => Err(problems),
        (Err(reason), _) => {
            problems.push(problem(&file_name, reason));
            Err(problems)
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::schema::load;

    fn schema() -> SchemaFile {
        load("name: t\n", "tables:\n  tasks:\n    fields:\n      id: { type: int, primary: true, auto: true }\n")
            .expect("schema")
            .schema
    }

    #[test]
    fn placeholders_become_parameters_and_literals_stay() {
        let text = "sql: |\n  SELECT id, ':not' AS \"x:y\", created_at::text -- :comment\n  FROM {{tasks}} WHERE owner_id = :auth.id AND id > :from AND id <> :from /* :x */\nparams:\n  from: { type: int, default: 0 }\n";
        let query = load_query("recent", text, &schema(), "app_t__").expect("valid");
        assert_eq!(
            query.sql,
            "SELECT id, ':not' AS \"x:y\", created_at::text -- :comment\nFROM \"app_t__tasks\" WHERE owner_id = $1 AND id > $2 AND id <> $2 /* :x */"
        );
        assert_eq!(query.bindings, [Binding::AuthId, Binding::Param("from".into())]);
    }

    #[test]
    fn bad_queries_are_refused_with_a_reason() {
        for (text, reason) in [
            ("sql: DELETE FROM {{tasks}}\n", "starts with SELECT"),
            ("sql: SELECT 1; DROP TABLE x\n", "one statement"),
            ("sql: SELECT * FROM {{users}}\n", "not a table"),
            ("sql: SELECT :nope\n", "neither a declared param"),
            ("sql: SELECT $1\n", "not `$n`"),
            ("sql: SELECT 'open\n", "unterminated"),
            ("sql: SELECT 1\ncolour: red\n", "unknown field"),
        ] {
            let problems = load_query("q", text, &schema(), "").expect_err(text);
            assert!(problems.iter().any(|p| p.reason.contains(reason)), "{text}: {problems:?}");
        }
    }

    proptest! {
        /// Whatever the SQL, rewriting never panics, and accepted SQL holds only numbered
        /// parameters for the declared names.
        #[test]
        fn rewriting_never_panics(sql in "[a-z :'\"{}$?;*/\\-\n.]{0,80}") {
            let params: IndexMap<String, Field> = IndexMap::new();
            if let Ok((out, bindings)) = rewrite(&sql, &params, &schema(), "") {
                prop_assert!(bindings.iter().all(|b| !matches!(b, Binding::Param(_))));
                // `{{` survives only inside quotes or comments, which are copied as written.
                let plain = !["'", "\"", "--", "/*"].iter().any(|q| sql.contains(q));
                prop_assert!(!plain || !out.contains("{{"));
            }
        }
    }
}
