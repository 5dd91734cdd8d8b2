//! Text and attribute values escaped for XML 1.0; characters XML cannot carry become U+FFFD.

fn allowed(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..)
}

fn escape_into(out: &mut String, text: &str, quotes: bool) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' if quotes => out.push_str("&quot;"),
            '\r' => out.push_str("&#13;"),
            c if allowed(c) => out.push(c),
            _ => out.push('\u{fffd}'),
        }
    }
}

/// Appends `text` as element content.
pub fn escape_text(out: &mut String, text: &str) {
    if text.bytes().all(|b| b >= 0x20 && !matches!(b, b'&' | b'<' | b'>')) {
        out.push_str(text);
    } else {
        escape_into(out, text, false);
    }
}

/// Appends `text` as the value of a double-quoted attribute.
pub fn escape_attribute(out: &mut String, text: &str) {
    escape_into(out, text, true);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_and_forbidden_characters_are_escaped() {
        let mut out = String::new();
        escape_text(&mut out, "a<b>&c\u{1}d\re");
        assert_eq!(out, "a&lt;b&gt;&amp;c\u{fffd}d&#13;e");
        out.clear();
        escape_attribute(&mut out, "say \"hi\"");
        assert_eq!(out, "say &quot;hi&quot;");
    }
}
