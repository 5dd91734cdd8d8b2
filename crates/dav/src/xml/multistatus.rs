//! `207 Multi-Status` bodies (RFC 4918 §13, §14.16) written straight into one buffer: one
//! `<D:response>` per resource, properties found in a `200` propstat, missing ones in a `404`.

use super::{PropName, escape_attribute, escape_text};
use crate::NS_DAV;

/// A multistatus body being written.
pub struct Multistatus {
    out: String,
}

impl Default for Multistatus {
    fn default() -> Self {
        Self::with_capacity(1024)
    }
}

impl Multistatus {
    /// Starts a body; `capacity` is a guess of its final size in bytes.
    pub fn with_capacity(capacity: usize) -> Self {
        let mut out = String::with_capacity(capacity);
        out.push_str("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<D:multistatus xmlns:D=\"DAV:\">");
        Self { out }
    }

    /// Starts the response for the resource at `href` (already percent-encoded).
    pub fn response(&mut self, href: &str) -> ResponseWriter<'_> {
        self.out.push_str("<D:response><D:href>");
        escape_text(&mut self.out, href);
        self.out.push_str("</D:href>");
        ResponseWriter { out: &mut self.out, open: false }
    }

    /// A response with a status instead of properties (e.g. `404` for a missing member).
    pub fn status(&mut self, href: &str, status: u16) {
        self.out.push_str("<D:response><D:href>");
        escape_text(&mut self.out, href);
        self.out.push_str("</D:href>");
        push_status(&mut self.out, status);
        self.out.push_str("</D:response>");
    }

    /// The finished body.
    pub fn finish(mut self) -> Vec<u8> {
        self.out.push_str("</D:multistatus>\n");
        self.out.into_bytes()
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        403 => "Forbidden",
        404 => "Not Found",
        409 => "Conflict",
        424 => "Failed Dependency",
        507 => "Insufficient Storage",
        _ => "",
    }
}

fn push_status(out: &mut String, status: u16) {
    out.push_str("<D:status>HTTP/1.1 ");
    out.push_str(&status.to_string());
    out.push(' ');
    out.push_str(reason(status));
    out.push_str("</D:status>");
}

fn open_tag(out: &mut String, name: &PropName, empty: bool) {
    out.push('<');
    if name.namespace == NS_DAV {
        out.push_str("D:");
        out.push_str(&name.local);
    } else {
        out.push_str(&name.local);
        out.push_str(" xmlns=\"");
        escape_attribute(out, &name.namespace);
        out.push('"');
    }
    out.push_str(if empty { "/>" } else { ">" });
}

fn close_tag(out: &mut String, name: &PropName) {
    out.push_str("</");
    if name.namespace == NS_DAV {
        out.push_str("D:");
    }
    out.push_str(&name.local);
    out.push('>');
}

/// One `<D:response>`: found properties first (a `200` propstat opened by the first one), then
/// [`ResponseWriter::missing`] and [`ResponseWriter::end`].
pub struct ResponseWriter<'a> {
    out: &'a mut String,
    open: bool,
}

impl ResponseWriter<'_> {
    fn found(&mut self) -> &mut String {
        if !self.open {
            self.out.push_str("<D:propstat><D:prop>");
            self.open = true;
        }
        self.out
    }

    fn close_found(&mut self) {
        if self.open {
            self.out.push_str("</D:prop>");
            push_status(self.out, 200);
            self.out.push_str("</D:propstat>");
            self.open = false;
        }
    }

    /// A property whose value is text.
    pub fn text(&mut self, name: &PropName, text: &str) {
        let out = self.found();
        if text.is_empty() {
            open_tag(out, name, true);
        } else {
            open_tag(out, name, false);
            escape_text(out, text);
            close_tag(out, name);
        }
    }

    /// A property without a value (or only its name, for `propname`).
    pub fn empty(&mut self, name: &PropName) {
        open_tag(self.found(), name, true);
    }

    /// A property whose value is DAV elements, written by `inner` as markup (e.g.
    /// `<D:collection/>`). `inner` must write well-formed XML using only the `D` prefix or
    /// self-declared namespaces.
    pub fn markup(&mut self, name: &PropName, inner: impl FnOnce(&mut String)) {
        let out = self.found();
        open_tag(out, name, false);
        inner(out);
        close_tag(out, name);
    }

    /// A whole property element kept as XML (a dead property as it was stored). `element` must be
    /// one well-formed element declaring the namespaces it uses; an XML declaration in front of
    /// it is dropped.
    pub fn stored(&mut self, element: &str) {
        let element = without_declaration(element);
        self.found().push_str(element);
    }

    /// Properties that do not exist on this resource, in a `404` propstat.
    pub fn missing<'n>(&mut self, names: impl IntoIterator<Item = &'n PropName>) {
        self.with_status(404, names);
    }

    /// Properties answered with `status` (e.g. `403` for a protected property), as empty elements.
    pub fn with_status<'n>(&mut self, status: u16, names: impl IntoIterator<Item = &'n PropName>) {
        let mut names = names.into_iter().peekable();
        if names.peek().is_none() {
            return;
        }
        self.close_found();
        self.out.push_str("<D:propstat><D:prop>");
        for name in names {
            open_tag(self.out, name, true);
        }
        self.out.push_str("</D:prop>");
        push_status(self.out, status);
        self.out.push_str("</D:propstat>");
    }

    /// Ends the response.
    pub fn end(mut self) {
        self.close_found();
        self.out.push_str("</D:response>");
    }
}

/// `element` without an XML declaration in front of it.
pub fn without_declaration(element: &str) -> &str {
    let trimmed = element.trim_start();
    match trimmed.strip_prefix("<?xml").and_then(|rest| rest.find("?>").map(|end| &rest[end + 2..])) {
        Some(rest) => rest.trim_start(),
        None => trimmed,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use quick_xml::events::Event;
    use quick_xml::reader::NsReader;

    use super::*;

    fn sample() -> String {
        let mut body = Multistatus::default();
        let mut response = body.response("/dav/files/a%20b/");
        response.markup(&PropName::dav("resourcetype"), |out| out.push_str("<D:collection/>"));
        response.text(&PropName::dav("getetag"), "\"abc\"");
        response.stored("<?xml version=\"1.0\" encoding=\"utf-8\"?><x:color xmlns:x=\"urn:x\">red</x:color>");
        response.missing([&PropName::new("urn:y", "size"), &PropName::new("", "plain")]);
        response.end();
        body.status("/dav/files/gone", 404);
        String::from_utf8(body.finish()).unwrap_or_default()
    }

    #[test]
    fn responses_group_found_and_missing_properties() {
        let xml = sample();
        assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<D:multistatus xmlns:D=\"DAV:\">"));
        assert!(xml.contains(
            "<D:response><D:href>/dav/files/a%20b/</D:href><D:propstat><D:prop><D:resourcetype><D:collection/>\
             </D:resourcetype><D:getetag>\"abc\"</D:getetag><x:color xmlns:x=\"urn:x\">red</x:color></D:prop>\
             <D:status>HTTP/1.1 200 OK</D:status></D:propstat><D:propstat><D:prop><size xmlns=\"urn:y\"/>\
             <plain xmlns=\"\"/></D:prop><D:status>HTTP/1.1 404 Not Found</D:status></D:propstat></D:response>"
        ));
        assert!(xml.contains(
            "<D:response><D:href>/dav/files/gone</D:href><D:status>HTTP/1.1 404 Not Found</D:status></D:response>"
        ));
        assert!(xml.ends_with("</D:multistatus>\n"));
    }

    /// Every text written comes back from a parser as it went in.
    fn texts_of(xml: &str) -> Vec<String> {
        let mut reader = NsReader::from_reader(xml.as_bytes());
        let mut texts = Vec::new();
        let mut current = String::new();
        loop {
            match reader.read_event() {
                Ok(Event::Text(t)) => current.push_str(&t.decode().unwrap_or_default()),
                Ok(Event::GeneralRef(r)) => {
                    let name = r.decode().unwrap_or_default();
                    match name.as_ref() {
                        "amp" => current.push('&'),
                        "lt" => current.push('<'),
                        "gt" => current.push('>'),
                        "quot" => current.push('"'),
                        other => {
                            if let Some(code) = other.strip_prefix('#').and_then(|n| n.parse::<u32>().ok()) {
                                current.extend(char::from_u32(code));
                            }
                        }
                    }
                }
                Ok(Event::Start(_)) => current.clear(),
                Ok(Event::End(_)) => texts.push(std::mem::take(&mut current)),
                Ok(Event::Eof) => return texts,
                Ok(_) => {}
                Err(err) => panic!("not well-formed: {err} in {xml}"),
            }
        }
    }

    proptest! {
        #[test]
        fn any_text_and_href_stay_well_formed(href in "\\PC{0,30}", text in "\\PC{0,60}", ns in "[a-z:/.\"&<]{0,20}") {
            let mut body = Multistatus::default();
            let mut response = body.response(&href);
            response.text(&PropName::new(&ns, "value"), &text);
            response.end();
            let xml = String::from_utf8(body.finish()).unwrap_or_default();
            let texts = texts_of(&xml);
            prop_assert!(texts.contains(&href));
            prop_assert!(texts.contains(&text));
        }
    }
}
