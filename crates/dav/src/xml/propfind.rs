//! `PROPFIND` request bodies (RFC 4918 §9.1, §14.20): `allprop` (with `include`), `propname`,
//! or `prop` naming properties. An empty body means `allprop`.

use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;

use super::{MAX_DEPTH, MAX_NAMES, PropName, XmlError, is_xml_name};
use crate::NS_DAV;

/// What a `PROPFIND` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Propfind {
    /// Every live property a server lists by default and every dead one, plus `include`.
    AllProp { include: Vec<PropName> },
    /// The names of the properties, without values.
    PropName,
    /// These properties.
    Prop(Vec<PropName>),
}

fn name_of(resolved: &ResolveResult<'_>, start: &BytesStart<'_>) -> Result<PropName, XmlError> {
    let namespace = match resolved {
        ResolveResult::Bound(ns) => {
            std::str::from_utf8(ns.as_ref()).map_err(|_| XmlError::Invalid("a namespace is not UTF-8"))?.to_owned()
        }
        ResolveResult::Unbound => String::new(),
        ResolveResult::Unknown(_) => return Err(XmlError::Invalid("an element uses an undeclared namespace prefix")),
    };
    let local = start.local_name();
    let local = std::str::from_utf8(local.as_ref()).map_err(|_| XmlError::Invalid("an element name is not UTF-8"))?;
    if !is_xml_name(local) {
        return Err(XmlError::Invalid("an element name is not a valid XML name"));
    }
    Ok(PropName { namespace, local: local.to_owned() })
}

/// Where the parser is inside `<D:propfind>`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Inside {
    /// Directly inside `<D:propfind>`.
    Propfind,
    /// Inside `<D:prop>` or `<D:include>`: children are property names.
    Names,
    /// Anything else (a property's own content, unknown elements): skipped.
    Other,
}

/// Parses a `PROPFIND` body.
pub fn parse_propfind(body: &[u8]) -> Result<Propfind, XmlError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Propfind::AllProp { include: Vec::new() });
    }
    let mut reader = NsReader::from_reader(body);
    reader.config_mut().trim_text(true);
    let mut stack: Vec<Inside> = Vec::new();
    let mut seen_root = false;
    let (mut allprop, mut propname, mut prop, mut include) = (false, false, None::<Vec<PropName>>, Vec::new());
    // Which list the names being read go to: `prop` (true) or `include` (false).
    let mut into_prop = false;
    let mut names = 0usize;
    loop {
        let (resolved, event) = reader.read_resolved_event().map_err(|e| XmlError::Malformed(e.to_string()))?;
        let (start, empty) = match &event {
            Event::Start(start) => (Some(start.clone()), false),
            Event::Empty(start) => (Some(start.clone()), true),
            Event::End(_) => {
                stack.pop();
                continue;
            }
            Event::Eof => break,
            Event::DocType(_) => return Err(XmlError::DocType),
            Event::Text(_) | Event::CData(_) | Event::GeneralRef(_) if stack.is_empty() => {
                return Err(XmlError::Malformed("text outside the root element".into()));
            }
            _ => continue,
        };
        let Some(start) = start else { continue };
        let name = name_of(&resolved, &start)?;
        let here = match stack.last() {
            None => {
                if seen_root {
                    return Err(XmlError::Malformed("more than one root element".into()));
                }
                seen_root = true;
                if !name.is_dav("propfind") {
                    return Err(XmlError::UnexpectedRoot("propfind"));
                }
                Inside::Propfind
            }
            Some(Inside::Propfind) if name.namespace == NS_DAV => match name.local.as_str() {
                "allprop" => {
                    allprop = true;
                    Inside::Other
                }
                "propname" => {
                    propname = true;
                    Inside::Other
                }
                "prop" => {
                    into_prop = true;
                    prop.get_or_insert_with(Vec::new);
                    Inside::Names
                }
                "include" => {
                    into_prop = false;
                    Inside::Names
                }
                _ => Inside::Other,
            },
            Some(Inside::Names) => {
                names += 1;
                if names > MAX_NAMES {
                    return Err(XmlError::TooManyNames);
                }
                let list = if into_prop { prop.get_or_insert_with(Vec::new) } else { &mut include };
                if !list.contains(&name) {
                    list.push(name);
                }
                Inside::Other
            }
            Some(_) => Inside::Other,
        };
        if !empty {
            if stack.len() >= MAX_DEPTH {
                return Err(XmlError::TooDeep);
            }
            stack.push(here);
        }
    }
    if !seen_root {
        return Err(XmlError::Malformed("no root element".into()));
    }
    if !stack.is_empty() {
        return Err(XmlError::Malformed("unclosed elements at the end of the body".into()));
    }
    match (allprop, propname, prop) {
        (true, false, None) => Ok(Propfind::AllProp { include }),
        (false, true, None) => Ok(Propfind::PropName),
        (false, false, Some(names)) => Ok(Propfind::Prop(names)),
        (false, false, None) => Err(XmlError::Invalid("propfind names none of allprop, propname or prop")),
        _ => Err(XmlError::Invalid("propfind names more than one of allprop, propname and prop")),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn an_empty_body_is_allprop() {
        assert_eq!(parse_propfind(b""), Ok(Propfind::AllProp { include: vec![] }));
        assert_eq!(parse_propfind(b" \r\n"), Ok(Propfind::AllProp { include: vec![] }));
    }

    #[test]
    fn prop_names_keep_their_namespaces() {
        let body = br#"<?xml version="1.0" encoding="utf-8"?>
            <propfind xmlns="DAV:" xmlns:x="http://example.com/ns">
              <prop><getetag/><x:color/><plain xmlns=""/><getetag/></prop>
            </propfind>"#;
        assert_eq!(
            parse_propfind(body),
            Ok(Propfind::Prop(vec![
                PropName::dav("getetag"),
                PropName::new("http://example.com/ns", "color"),
                PropName::new("", "plain"),
            ]))
        );
    }

    #[test]
    fn allprop_takes_include_and_propname_stands_alone() {
        let body =
            br#"<D:propfind xmlns:D="DAV:"><D:allprop/><D:include><D:quota-used-bytes/></D:include></D:propfind>"#;
        assert_eq!(parse_propfind(body), Ok(Propfind::AllProp { include: vec![PropName::dav("quota-used-bytes")] }));
        assert_eq!(parse_propfind(br#"<propfind xmlns="DAV:"><propname/></propfind>"#), Ok(Propfind::PropName));
    }

    #[test]
    fn property_content_is_skipped() {
        let body = br#"<propfind xmlns="DAV:"><prop><resourcetype><collection/></resourcetype></prop></propfind>"#;
        assert_eq!(parse_propfind(body), Ok(Propfind::Prop(vec![PropName::dav("resourcetype")])));
    }

    #[test]
    fn bad_bodies_are_refused() {
        for (body, why) in [
            (&br#"<propfind xmlns="DAV:"><prop>"#[..], "unclosed"),
            (br#"<propfind><prop/></propfind>"#, "root not in DAV:"),
            (br#"<D:propfind xmlns:D="DAV:"><x:prop/></D:propfind>"#, "undeclared prefix"),
            (br#"<propfind xmlns="DAV:"/>"#, "nothing asked"),
            (br#"<propfind xmlns="DAV:"><allprop/><propname/></propfind>"#, "two kinds"),
            (br#"<!DOCTYPE x [<!ENTITY a "b">]><propfind xmlns="DAV:"><allprop/></propfind>"#, "doctype"),
            (br#"<propfind xmlns="DAV:"><allprop/></propfind><propfind xmlns="DAV:"/>"#, "two roots"),
            (br#"<propfind xmlns="DAV:"><prop><a></b></prop></propfind>"#, "mismatched end"),
        ] {
            assert!(parse_propfind(body).is_err(), "{why} accepted");
        }
    }

    #[test]
    fn nesting_and_name_counts_are_bounded() {
        let deep = format!(
            "<propfind xmlns=\"DAV:\"><prop><a>{}</a></prop></propfind>",
            "<b>".repeat(40) + &"</b>".repeat(40)
        );
        assert_eq!(parse_propfind(deep.as_bytes()), Err(XmlError::TooDeep));
        let many: String = (0..600).map(|i| format!("<p{i}/>")).collect();
        let body = format!("<propfind xmlns=\"DAV:\"><prop>{many}</prop></propfind>");
        assert_eq!(parse_propfind(body.as_bytes()), Err(XmlError::TooManyNames));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_propfind(&body);
        }

        #[test]
        fn mangled_requests_never_panic(cut in 0usize..120, junk in "[<>/=\"a-z: ]{0,12}") {
            let body = r#"<D:propfind xmlns:D="DAV:" xmlns:x="urn:x"><D:prop><D:getetag/><x:a>t</x:a></D:prop></D:propfind>"#;
            let cut = cut.min(body.len());
            let mangled = format!("{}{junk}{}", &body[..cut], &body[cut..]);
            let _ = parse_propfind(mangled.as_bytes());
        }
    }
}
