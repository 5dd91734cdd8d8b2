//! Content-type sniffing: the media type of an upload comes from its first bytes, not from what
//! the client claims. The name only refines what the bytes cannot tell apart (text formats,
//! ZIP-based office documents). Types a browser would run (HTML, SVG, XML) are recognised so
//! that they are always served as downloads.

/// How many leading bytes the sniffer looks at.
pub const SNIFF_LEN: usize = 512;

fn extension(name: &str) -> String {
    name.rsplit_once('.').map(|(_, ext)| ext.to_ascii_lowercase()).unwrap_or_default()
}

fn starts_with_ci(head: &[u8], prefix: &[u8]) -> bool {
    head.len() >= prefix.len() && head[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// The media type of content starting with `head`, stored under `name`.
pub fn content_type(head: &[u8], name: &str) -> &'static str {
    let ext = extension(name);
    let magic: &[(&[u8], &str)] = &[
        (b"\x89PNG\r\n\x1a\n", "image/png"),
        (b"\xff\xd8\xff", "image/jpeg"),
        (b"GIF87a", "image/gif"),
        (b"GIF89a", "image/gif"),
        (b"%PDF-", "application/pdf"),
        (b"\x1f\x8b", "application/gzip"),
        (b"7z\xbc\xaf\x27\x1c", "application/x-7z-compressed"),
        (b"Rar!\x1a\x07", "application/vnd.rar"),
        (b"ID3", "audio/mpeg"),
        (b"OggS", "audio/ogg"),
        (b"fLaC", "audio/flac"),
        (b"\x7fELF", "application/octet-stream"),
        (b"MZ", "application/octet-stream"),
        (b"\x28\xb5\x2f\xfd", "application/zstd"),
        (b"BM", "image/bmp"),
        (b"II*\x00", "image/tiff"),
        (b"MM\x00*", "image/tiff"),
        (b"\x1aE\xdf\xa3", "video/webm"),
    ];
    for (prefix, kind) in magic {
        if head.starts_with(prefix) {
            return kind;
        }
    }
    if head.len() >= 12 && &head[..4] == b"RIFF" {
        match &head[8..12] {
            b"WEBP" => return "image/webp",
            b"WAVE" => return "audio/wav",
            b"AVI " => return "video/x-msvideo",
            _ => {}
        }
    }
    if head.len() >= 12 && &head[4..8] == b"ftyp" {
        return if head[8..12].starts_with(b"qt") { "video/quicktime" } else { "video/mp4" };
    }
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        return match ext.as_str() {
            "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            "pptx" => "application/vnd.openxmlformats-officedocument.presentationml.presentation",
            "odt" => "application/vnd.oasis.opendocument.text",
            "ods" => "application/vnd.oasis.opendocument.spreadsheet",
            "odp" => "application/vnd.oasis.opendocument.presentation",
            "epub" => "application/epub+zip",
            _ => "application/zip",
        };
    }
    let text = head.strip_prefix(b"\xef\xbb\xbf").unwrap_or(head);
    let trimmed = &text[text.iter().position(|c| !c.is_ascii_whitespace()).unwrap_or(text.len())..];
    if starts_with_ci(trimmed, b"<!doctype html")
        || starts_with_ci(trimmed, b"<html")
        || starts_with_ci(trimmed, b"<script")
    {
        return "text/html";
    }
    if starts_with_ci(trimmed, b"<svg") || (starts_with_ci(trimmed, b"<?xml") && contains_ci(trimmed, b"<svg")) {
        return "image/svg+xml";
    }
    if starts_with_ci(trimmed, b"<?xml") {
        return "application/xml";
    }
    // Text: no NUL byte and valid UTF-8 (a multi-byte character may be cut at the end).
    let looks_text = !text.contains(&0)
        && match std::str::from_utf8(text) {
            Ok(_) => true,
            Err(err) => err.error_len().is_none() && err.valid_up_to() + 4 > text.len(),
        };
    if looks_text {
        return match ext.as_str() {
            "md" | "markdown" => "text/markdown",
            "csv" => "text/csv",
            "json" => "application/json",
            "ics" => "text/calendar",
            "vcf" => "text/vcard",
            "css" => "text/css",
            _ => "text/plain",
        };
    }
    "application/octet-stream"
}

fn contains_ci(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w.eq_ignore_ascii_case(needle))
}

/// Whether a browser would render (and run scripts in) this type if served inline.
pub fn is_active(content_type: &str) -> bool {
    matches!(content_type, "text/html" | "image/svg+xml" | "application/xml" | "application/xhtml+xml")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffing_trusts_bytes_over_names() {
        assert_eq!(content_type(b"\x89PNG\r\n\x1a\n....", "photo.txt"), "image/png");
        assert_eq!(content_type(b"%PDF-1.7", "x"), "application/pdf");
        assert_eq!(content_type(b"  <!DOCTYPE html><p>", "innocent.png"), "text/html");
        assert_eq!(content_type(b"<?xml version='1.0'?><svg xmlns=", "logo"), "image/svg+xml");
        assert_eq!(content_type(b"MZ\x90\x00", "setup.pdf"), "application/octet-stream");
        assert_eq!(content_type(b"PK\x03\x04rest", "report.docx").rsplit('.').next(), Some("document"));
        assert_eq!(content_type("# Titre é".as_bytes(), "README.md"), "text/markdown");
        assert_eq!(content_type(b"a,b\n1,2", "data.csv"), "text/csv");
        assert_eq!(content_type(b"\x00\x01\x02", "data.csv"), "application/octet-stream");
        assert_eq!(content_type(b"", "empty.txt"), "text/plain");
        assert!(is_active("text/html") && !is_active("text/plain"));
    }

    #[test]
    fn sniffing_never_panics_on_random_heads() {
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        for len in 0..2000 {
            let head: Vec<u8> = (0..len % 600)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (x >> 56) as u8
                })
                .collect();
            let _ = content_type(&head, "f.bin");
        }
    }
}
