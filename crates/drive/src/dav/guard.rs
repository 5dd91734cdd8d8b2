//! Checks on requests that dav-server does not survive (found by the fuzz test in `tests.rs`):
//! its `If` tokenizer reads past the end of an unterminated `<…>` or `[…]` token, and it takes
//! the parent of a `Destination` naming the top of the drive, outside its prefix. Both panic;
//! such requests are refused here before they reach it.

use dav_server::davpath::DavPath;

/// Whether a `Destination` header names the top of the drive at `prefix` (nothing may be
/// copied or moved onto it).
pub(crate) fn destination_is_top(value: &[u8], prefix: &str) -> bool {
    let Ok(text) = std::str::from_utf8(value) else { return false };
    // An absolute URL: keep its path.
    let path = match text.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => text,
    };
    let Ok(path) = DavPath::new(path) else { return false };
    let decoded = String::from_utf8_lossy(path.as_bytes()).into_owned();
    decoded.trim_end_matches('/') == prefix.trim_end_matches('/')
}

fn is_space(c: u8) -> bool {
    b" \t\r\n".contains(&c)
}

/// Whether dav-server can tokenize this `If` header without reading out of bounds (it may
/// still reject it, with a proper error).
pub(crate) fn if_header_is_safe(value: &[u8]) -> bool {
    let mut rest = value;
    loop {
        while rest.first().is_some_and(|&c| is_space(c)) {
            rest = &rest[1..];
        }
        let Some(&first) = rest.first() else { return true };
        match first {
            b'(' | b')' => rest = &rest[1..],
            b'N' if rest.starts_with(b"Not") => rest = &rest[3..],
            b'<' | b'[' => {
                let close = if first == b'<' { b'>' } else { b']' };
                let mut quoted = false;
                let mut i = 1;
                loop {
                    let Some(&c) = rest.get(i) else { return false };
                    if !quoted && c == close {
                        break;
                    }
                    if is_space(c) {
                        // dav-server stops here with a parse error: safe.
                        return true;
                    }
                    if c == b'"' {
                        quoted = !quoted;
                    }
                    i += 1;
                }
                rest = &rest[i + 1..];
            }
            _ => {
                let end = rest.iter().position(|&c| is_space(c) || b"<>()[]".contains(&c) || c < 32);
                match end {
                    // An empty word: dav-server reports a parse error.
                    Some(0) => return true,
                    Some(n) => rest = &rest[n..],
                    None => return true,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{destination_is_top, if_header_is_safe};

    #[test]
    fn dav_destinations_on_the_drive_top_are_caught() {
        for top in ["/dav/files/u", "/dav/files/u/", "http://h:1/dav/files/u/", "/dav/files/u/a/.."] {
            assert!(destination_is_top(top.as_bytes(), "/dav/files/u"), "{top}");
        }
        for other in ["/dav/files/u/a", "http://h/dav/files/u/a/", "/dav/files/v/"] {
            assert!(!destination_is_top(other.as_bytes(), "/dav/files/u"), "{other}");
        }
    }

    #[test]
    fn dav_if_headers_that_would_crash_the_parser_are_caught() {
        assert!(if_header_is_safe(b"(<urn:uuid:1> [\"abc\"]) (Not <DAV:no-lock> [\"abc\"])"));
        assert!(if_header_is_safe(b"<http://x/a> (<urn:uuid:1>)"));
        for bad in [&b"(<urn:uuid:1> [\"ab"[..], b"(<urn:uuid", b"[\"x]\"", b"<", b"(Not <DAV:no-lock> [\"abc"] {
            assert!(!if_header_is_safe(bad), "{}", String::from_utf8_lossy(bad));
        }
    }
}
