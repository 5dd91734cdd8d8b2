//! Hrefs in answers: path segments percent-encoded so that any name survives the round trip
//! through a client (RFC 3986 `pchar`, with `&` encoded too since hrefs also travel in XML).

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// Bytes left as they are in a segment: unreserved characters and the sub-delimiters safe in a
/// path segment, less `&` (hrefs travel in XML too).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'!')
    .remove(b'$')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')')
    .remove(b'*')
    .remove(b'+')
    .remove(b',')
    .remove(b';')
    .remove(b'=')
    .remove(b':')
    .remove(b'@');

/// Appends `segment` to `out`, percent-encoding every other byte.
pub fn push_segment(out: &mut String, segment: &str) {
    out.extend(utf8_percent_encode(segment, SEGMENT));
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn decode(encoded: &str) -> Option<String> {
        percent_encoding::percent_decode_str(encoded).decode_utf8().ok().map(|s| s.into_owned())
    }

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
