//! Hrefs in answers: path segments percent-encoded so that any name survives the round trip
//! through a client (RFC 3986 `pchar`, with `&` encoded too since hrefs also travel in XML).

/// Appends `segment` to `out`, percent-encoding every byte that is not unreserved or one of the
/// sub-delimiters safe in a path segment.
pub fn push_segment(out: &mut String, segment: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &byte in segment.as_bytes() {
        let keep = byte.is_ascii_alphanumeric()
            || matches!(
                byte,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
                    | b':'
                    | b'@'
            );
        if keep {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
    }
}

/// Decodes `%XX` escapes; `None` when an escape is malformed or the result is not UTF-8.
pub fn decode(encoded: &str) -> Option<String> {
    let bytes = encoded.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let text = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(text, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn segments_keep_safe_characters_and_encode_the_rest() {
        let mut out = String::new();
        push_segment(&mut out, "report (v2)+final.pdf");
        assert_eq!(out, "report%20(v2)+final.pdf");
        out.clear();
        push_segment(&mut out, "a/b&c?d#e%f");
        assert_eq!(out, "a%2Fb%26c%3Fd%23e%25f");
        out.clear();
        push_segment(&mut out, "été");
        assert_eq!(out, "%C3%A9t%C3%A9");
    }

    #[test]
    fn malformed_escapes_do_not_decode() {
        assert_eq!(decode("a%2"), None);
        assert_eq!(decode("a%zz"), None);
        assert_eq!(decode("%FF"), None);
        assert_eq!(decode("a%20b").as_deref(), Some("a b"));
    }

    proptest! {
        #[test]
        fn any_name_round_trips(name in "\\PC{0,40}") {
            let mut out = String::new();
            push_segment(&mut out, &name);
            prop_assert!(!out.contains('/') && !out.contains('&') && !out.contains('<'));
            prop_assert_eq!(decode(&out), Some(name));
        }
    }
}
