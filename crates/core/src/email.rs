//! The syntax of the email addresses Oppidum accepts for accounts, invitations and recipients: a
//! dot-atom local part (RFC 5322 §3.4.1 without quoted strings or comments) of at most 64 bytes
//! (RFC 5321 §4.5.3.1.1) and a domain of letter, digit and hyphen labels (RFC 1035), at most 254
//! bytes in all. Every mail library and relay
//! accepts these, so an address taken at sign-up can always be written to; the OpenAPI document
//! states the same rule as a pattern ([`PATTERN`]).

/// [`is_valid`] as a regular expression, for the OpenAPI document. The local-part limit is a
/// negative lookahead (ECMA-262 regular expressions have them; test generators skip them and
/// check the whole pattern afterwards).
pub const PATTERN: &str = r"^(?![^@]{65})[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$";

/// An address in a request (the OpenAPI shape): [`PATTERN`], with the surrounding whitespace that
/// the server trims.
pub struct EmailAddress;

impl utoipa::PartialSchema for EmailAddress {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        let inner = PATTERN.trim_start_matches('^').trim_end_matches('$');
        crate::schema::string(Some(&format!(r"^\s*{inner}\s*$")), None, Some(MAX_LEN))
    }
}

impl utoipa::ToSchema for EmailAddress {}

/// Longest local part, in bytes (RFC 5321 §4.5.3.1.1).
pub const MAX_LOCAL_LEN: usize = 64;

/// Longest address, in bytes (RFC 5321 §4.5.3.1.3 path limit less the angle brackets).
pub const MAX_LEN: usize = 254;

/// Whether `address` has the accepted syntax.
pub fn is_valid(address: &str) -> bool {
    let Some((local, domain)) = address.split_once('@') else { return false };
    address.len() <= MAX_LEN && local.len() <= MAX_LOCAL_LEN && is_dot_atom(local) && is_domain(domain)
}

fn is_atext(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+/=?^_`{|}~-".contains(&b)
}

fn is_dot_atom(local: &str) -> bool {
    !local.is_empty() && local.split('.').all(|atom| !atom.is_empty() && atom.bytes().all(is_atext))
}

fn is_domain(domain: &str) -> bool {
    let labels: Vec<&str> = domain.split('.').collect();
    labels.len() >= 2
        && labels.iter().all(|label| {
            let bytes = label.as_bytes();
            (1..=63).contains(&bytes.len())
                && bytes.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-')
                && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
                && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_syntax_is_the_plain_one() {
        for good in ["a@example.org", "first.last+tag@mail.example.co", "x_y-z@a-b.c0", "o'neil@ex.io"] {
            assert!(is_valid(good), "{good}");
        }
        for bad in [
            "",
            "a",
            "@example.org",
            "a@",
            "a@example",
            "a..b@example.org",
            ".a@example.org",
            "a b@example.org",
            "a\"b@example.org",
            "a@-x.org",
            "a@x-.org",
            "a@x..org",
            "é@example.org",
            "a@exämple.org",
            "a@b@example.org",
        ] {
            assert!(!is_valid(bad), "{bad}");
        }
        let long_label = format!("a@{}.org", "x".repeat(64));
        assert!(!is_valid(&long_label));
        let long = format!("{}@example.org", "a".repeat(250));
        assert!(!is_valid(&long));
        let longest_local = "a.".repeat(31) + "bc";
        assert!(is_valid(&format!("{longest_local}@example.org")));
        assert!(!is_valid(&format!("{longest_local}d@example.org")));
    }
}
