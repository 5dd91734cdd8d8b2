//! `PROPFIND` with `Depth: 0` or `1` (what clients send), answered from the listing's queries —
//! the resource, its children with their dead properties, and locks or quota only when asked —
//! and written straight into one buffer by `oppidum-dav`. Other depths go to dav-server.

use std::sync::LazyLock;

use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Datelike, Timelike, Utc};
use dav_server::davpath::DavPath;
use dav_server::ls::DavLock;
use http::{HeaderValue, StatusCode, header};
use oppidum_core::Error;
use oppidum_core::error::ProtocolResponse;
use oppidum_dav::NS_DAV;
use oppidum_dav::href::push_segment;
use oppidum_dav::xml::{Multistatus, PropName, Propfind, ResponseWriter, parse_propfind};

use super::fs::DriveFs;
use super::locks::{DbLocks, covers, owner_to_xml};
use crate::files::{DeadProperty, Node};

/// Longest `PROPFIND` body read (512 property names fit many times over).
const MAX_BODY: usize = 64 * 1024;

const NS_MS: &str = "urn:schemas-microsoft-com:";

fn names(list: &[(&str, &str)]) -> Vec<PropName> {
    list.iter().map(|(ns, local)| PropName::new(ns, local)).collect()
}

/// Live properties listed by `allprop` (RFC 4918 §9.1: those it defines, less the dead-only
/// `displayname` and `getcontentlanguage`, which come with the dead properties).
static ALLPROP: LazyLock<Vec<PropName>> = LazyLock::new(|| {
    names(&[
        (NS_DAV, "creationdate"),
        (NS_DAV, "getcontentlength"),
        (NS_DAV, "getcontenttype"),
        (NS_DAV, "getetag"),
        (NS_DAV, "getlastmodified"),
        (NS_DAV, "lockdiscovery"),
        (NS_DAV, "resourcetype"),
        (NS_DAV, "supportedlock"),
    ])
});

/// What Windows' WebDAV redirector expects with `allprop`.
static MS_ALLPROP: LazyLock<Vec<PropName>> = LazyLock::new(|| {
    names(&[(NS_MS, "Win32CreationTime"), (NS_MS, "Win32FileAttributes"), (NS_MS, "Win32LastModifiedTime")])
});

/// Live properties named by `propname`.
static PROPNAME: LazyLock<Vec<PropName>> = LazyLock::new(|| {
    let mut all = ALLPROP.clone();
    all.extend(names(&[(NS_DAV, "quota-available-bytes"), (NS_DAV, "quota-used-bytes")]));
    all
});

/// True for the requests this module answers.
pub(super) fn handles(req: &Request) -> bool {
    req.method().as_str() == "PROPFIND"
        && req.headers().get("depth").is_some_and(|d| d.as_bytes() == b"0" || d.as_bytes() == b"1")
}

/// One resource of the answer.
struct Entry<'a> {
    href: String,
    /// `None`: the top of the drive.
    node: Option<&'a Node>,
    dead: &'a [DeadProperty],
    /// The decoded path inside the drive (`/a/b`), for lock discovery (empty when no lock is in
    /// force on the drive).
    path: String,
}

impl Entry<'_> {
    fn is_dir(&self) -> bool {
        self.node.is_none_or(|n| n.kind == "folder")
    }
}

/// What every entry's properties are computed from.
struct Context {
    principal: String,
    /// The drive's prefix as written in hrefs (`/dav/files/a%40b.org`).
    prefix_href: String,
    locks: Vec<DavLock>,
    /// (bytes used by the drive, its quota if any), read only when a quota property is asked.
    quota: Option<(u64, Option<u64>)>,
    now: DateTime<Utc>,
}

fn push_two(out: &mut String, value: u32) {
    out.push(char::from(b'0' + (value / 10 % 10) as u8));
    out.push(char::from(b'0' + (value % 10) as u8));
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` (RFC 9110 §5.6.7), written in place by `httpdate` (a listing
/// writes two dates per entry).
fn push_http_date(out: &mut String, time: DateTime<Utc>) {
    use std::fmt::Write;
    let _ = write!(out, "{}", httpdate::HttpDate::from(std::time::SystemTime::from(time)));
}

/// `1996-12-19T16:39:57Z` (RFC 3339, whole seconds), written in place.
fn push_rfc3339(out: &mut String, time: DateTime<Utc>) {
    let year = time.year().clamp(0, 9999) as u32;
    push_two(out, year / 100);
    push_two(out, year % 100);
    out.push('-');
    push_two(out, time.month());
    out.push('-');
    push_two(out, time.day());
    out.push('T');
    push_two(out, time.hour());
    out.push(':');
    push_two(out, time.minute());
    out.push(':');
    push_two(out, time.second());
    out.push('Z');
}

/// The media type a name's extension suggests (what dav-server's GET answers).
fn media_type(name: &str) -> &'static str {
    name.rsplit_once('.')
        .and_then(|(_, ext)| mime_guess::from_ext(ext).first_raw())
        .unwrap_or("application/octet-stream")
}

fn write_lock(out: &mut String, lock: &DavLock, prefix_href: &str) {
    out.push_str("<D:activelock><D:lockscope>");
    out.push_str(if lock.shared { "<D:shared/>" } else { "<D:exclusive/>" });
    out.push_str("</D:lockscope><D:locktype><D:write/></D:locktype><D:depth>");
    out.push_str(if lock.deep { "Infinity" } else { "0" });
    out.push_str("</D:depth><D:timeout>");
    match lock.timeout {
        None => out.push_str("Infinite"),
        Some(timeout) => out.push_str(&format!("Second-{}", timeout.as_secs())),
    }
    out.push_str("</D:timeout><D:locktoken><D:href>");
    oppidum_dav::xml::escape_text(out, &lock.token);
    out.push_str("</D:href></D:locktoken><D:lockroot><D:href>");
    oppidum_dav::xml::escape_text(out, prefix_href);
    oppidum_dav::xml::escape_text(out, &lock.path.as_url_string());
    out.push_str("</D:href></D:lockroot>");
    if let Some(owner) = lock.owner.as_deref().and_then(owner_to_xml) {
        out.push_str(oppidum_dav::xml::without_declaration(&owner));
    }
    out.push_str("</D:activelock>");
}

/// Writes a live property of `entry` (with its value, or only its name when `content` is false);
/// false when the entry has no such property.
fn live(name: &PropName, entry: &Entry<'_>, context: &Context, out: &mut ResponseWriter<'_>, content: bool) -> bool {
    let text = |out: &mut ResponseWriter<'_>, value: &str| {
        if content { out.text(name, value) } else { out.empty(name) }
    };
    // Dates hold no markup: written straight into the body.
    let date = |out: &mut ResponseWriter<'_>, time: DateTime<Utc>, push: fn(&mut String, DateTime<Utc>)| {
        if content { out.markup(name, |xml| push(xml, time)) } else { out.empty(name) }
    };
    let created = entry.node.map_or(context.now, |n| n.created_at);
    let modified = entry.node.map_or(context.now, |n| n.updated_at);
    match (name.namespace.as_str(), name.local.as_str()) {
        (NS_DAV, "creationdate") => date(out, created, push_rfc3339),
        (NS_DAV, "getlastmodified") => date(out, modified, push_http_date),
        (NS_DAV, "getcontentlength") => match entry.node {
            Some(node) if node.kind == "file" => text(out, &node.size.to_string()),
            _ => return false,
        },
        (NS_DAV, "getcontenttype") => match entry.node {
            Some(node) if node.kind == "file" => text(out, media_type(&node.name)),
            _ => text(out, "httpd/unix-directory"),
        },
        (NS_DAV, "getetag") => match entry.node {
            Some(node) => text(out, &node.etag()),
            None => return false,
        },
        (NS_DAV, "resourcetype") => {
            if entry.is_dir() && content {
                out.markup(name, |xml| xml.push_str("<D:collection/>"));
            } else {
                out.empty(name);
            }
        }
        (NS_DAV, "supportedlock") if content => out.markup(name, |xml| {
            for scope in ["exclusive", "shared"] {
                xml.push_str("<D:lockentry><D:lockscope><D:");
                xml.push_str(scope);
                xml.push_str("/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockentry>");
            }
        }),
        (NS_DAV, "lockdiscovery") if content => {
            let target: Vec<&[u8]> = entry.path.split('/').filter(|s| !s.is_empty()).map(str::as_bytes).collect();
            let held: Vec<&DavLock> = context.locks.iter().filter(|l| covers(l, &target)).collect();
            if held.is_empty() {
                out.empty(name);
            } else {
                out.markup(name, |xml| held.iter().for_each(|l| write_lock(xml, l, &context.prefix_href)));
            }
        }
        (NS_DAV, "supportedlock" | "lockdiscovery") => out.empty(name),
        (NS_DAV, "quota-used-bytes" | "quota-available-bytes") => {
            let Some((drive_used, total)) = context.quota else { return false };
            let used = if entry.node.is_none() { drive_used } else { entry.node.map_or(0, |n| n.size.max(0) as u64) };
            if name.local == "quota-used-bytes" {
                text(out, &used.to_string());
            } else {
                let Some(total) = total else { return false };
                text(out, &total.saturating_sub(used).to_string());
            }
        }
        (NS_DAV, "current-user-principal") if content => {
            out.markup(name, |xml| {
                xml.push_str("<D:href>");
                oppidum_dav::xml::escape_text(xml, &context.principal);
                xml.push_str("</D:href>");
            });
        }
        (NS_DAV, "current-user-principal") => out.empty(name),
        (NS_MS, "Win32CreationTime") => date(out, created, push_http_date),
        (NS_MS, "Win32LastModifiedTime") => date(out, modified, push_http_date),
        (NS_MS, "Win32FileAttributes") => {
            let hidden = entry.node.is_some_and(|n| n.name.starts_with('.'));
            let attributes = if entry.is_dir() { 0x10 } else { 0x20 } | if hidden { 0x02 } else { 0 };
            text(out, &format!("{attributes:08x}"));
        }
        _ => return false,
    }
    true
}

fn dead_value(out: &mut ResponseWriter<'_>, property: &DeadProperty) {
    match property.xml.as_deref().map(std::str::from_utf8) {
        Some(Ok(xml)) => out.stored(xml),
        _ => out.empty(&PropName::new(&property.namespace, &property.name)),
    }
}

fn write_entry(body: &mut Multistatus, request: &Propfind, entry: &Entry<'_>, context: &Context, microsoft: bool) {
    let mut out = body.response(&entry.href);
    match request {
        Propfind::AllProp { include } => {
            let extra = if microsoft { MS_ALLPROP.as_slice() } else { &[] };
            for name in ALLPROP.iter().chain(extra) {
                live(name, entry, context, &mut out, true);
            }
            let mut missing = Vec::new();
            for name in include.iter().filter(|n| !ALLPROP.contains(n) && !extra.contains(n)) {
                let stored = entry.dead.iter().any(|p| p.namespace == name.namespace && p.name == name.local);
                if !stored && !live(name, entry, context, &mut out, true) {
                    missing.push(name);
                }
            }
            entry.dead.iter().for_each(|p| dead_value(&mut out, p));
            out.missing(missing);
        }
        Propfind::PropName => {
            for name in PROPNAME.iter() {
                live(name, entry, context, &mut out, false);
            }
            for property in entry.dead {
                out.empty(&PropName::new(&property.namespace, &property.name));
            }
        }
        Propfind::Prop(names) => {
            let mut missing = Vec::new();
            for name in names {
                if live(name, entry, context, &mut out, true) {
                    continue;
                }
                match entry.dead.iter().find(|p| p.namespace == name.namespace && p.name == name.local) {
                    Some(property) => dead_value(&mut out, property),
                    None => missing.push(name),
                }
            }
            out.missing(missing);
        }
    }
    out.end();
}

fn asks(request: &Propfind, wanted: impl Fn(&PropName) -> bool) -> bool {
    match request {
        Propfind::AllProp { include } => ALLPROP.iter().chain(include).any(wanted),
        Propfind::PropName => false,
        Propfind::Prop(names) => names.iter().any(wanted),
    }
}

/// Answers a `PROPFIND` of depth 0 or 1 on the drive of `fs`; `prefix` is the drive's decoded
/// path prefix (`/dav/files/{owner}`).
pub(super) async fn propfind(fs: &DriveFs, locks: &DbLocks, principal: &str, prefix: &str, req: Request) -> Response {
    match answer(fs, locks, principal, prefix, req).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
}

async fn answer(fs: &DriveFs, locks: &DbLocks, principal: &str, prefix: &str, req: Request) -> Result<Response, Error> {
    let depth_one = req.headers().get("depth").is_some_and(|d| d.as_bytes() == b"1");
    let microsoft =
        req.headers().get(header::USER_AGENT).is_some_and(|ua| ua.to_str().unwrap_or("").contains("Microsoft"));
    let mut path = DavPath::new(req.uri().path())
        .map_err(|_| Error::invalid("invalid_path", "The path is not a valid WebDAV path."))?;
    path.set_prefix(prefix).map_err(|_| Error::not_found("No such WebDAV resource."))?;
    let body = axum::body::to_bytes(req.into_body(), MAX_BODY).await.map_err(|_| {
        Error::new(oppidum_core::ErrorKind::TooLarge, "payload_too_large", "A PROPFIND body is at most 64 KiB.")
    })?;
    let request = parse_propfind(&body).map_err(|e| Error::invalid("invalid_propfind", e.to_string()))?;

    let target = fs.node(&path).await.map_err(|_| Error::not_found("No such WebDAV resource."))?;
    if path.as_bytes() != b"/" && target.is_none() {
        return Err(Error::not_found("No such WebDAV resource."));
    }
    let drive = fs.drive();
    let scope = fs.scope();
    // Dead properties may be in the DAV: namespace too (`displayname`, `getcontentlanguage`).
    let target_dead = match &target {
        Some(node) => drive.properties(node.id).await.map_err(Error::from)?,
        None => Vec::new(),
    };
    let is_dir = target.as_ref().is_none_or(|n| n.kind == "folder");
    let (children, mut children_dead) = if depth_one && is_dir {
        drive.list_with_properties(scope, target.as_ref().map(|n| n.id)).await.map_err(Error::from)?
    } else {
        Default::default()
    };
    let locks = if asks(&request, |n| n.is_dav("lockdiscovery")) {
        locks.live().await.map_err(Error::internal)?
    } else {
        Vec::new()
    };
    let quota = if asks(&request, |n| n.is_dav("quota-used-bytes") || n.is_dav("quota-available-bytes")) {
        Some(fs.quota().await.map_err(|e| Error::internal(format!("the drive's usage could not be read: {e:?}")))?)
    } else {
        None
    };

    let full_href = path.with_prefix().as_url_string();
    let relative_href = path.as_url_string();
    let prefix_href = full_href.strip_suffix(relative_href.as_str()).unwrap_or("").to_owned();
    let relative = String::from_utf8_lossy(path.as_bytes()).trim_end_matches('/').to_owned();
    let mut base = full_href.clone();
    if is_dir && !base.ends_with('/') {
        base.push('/');
    }
    let context = Context { principal: principal.to_owned(), prefix_href, locks, quota, now: Utc::now() };
    let mut body = Multistatus::with_capacity(1024 + children.len() * 768);
    let top = Entry { href: base.clone(), node: target.as_ref(), dead: &target_dead, path: relative.clone() };
    write_entry(&mut body, &request, &top, &context, microsoft);
    let none = Vec::new();
    for child in &children {
        let mut href = base.clone();
        push_segment(&mut href, &child.name);
        if child.kind == "folder" {
            href.push('/');
        }
        let dead = children_dead.remove(&child.id);
        let entry = Entry {
            href,
            node: Some(child),
            dead: dead.as_ref().unwrap_or(&none),
            path: if context.locks.is_empty() { String::new() } else { format!("{relative}/{}", child.name) },
        };
        write_entry(&mut body, &request, &entry, &context, microsoft);
    }

    let mut response = Response::new(Body::from(body.finish()));
    *response.status_mut() = StatusCode::MULTI_STATUS;
    response.extensions_mut().insert(ProtocolResponse);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/xml; charset=utf-8"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if is_dir
        && !full_href.ends_with('/')
        && let Ok(location) = HeaderValue::from_str(&base)
    {
        headers.insert(header::CONTENT_LOCATION, location);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn dates_are_written_as_the_formats_define_them() {
        for secs in [0_i64, 784_111_777, 1_796_291_288, 4_102_444_799] {
            let time = Utc.timestamp_opt(secs, 0).single().unwrap_or_default();
            let (mut http, mut iso) = (String::new(), String::new());
            push_http_date(&mut http, time);
            push_rfc3339(&mut iso, time);
            assert_eq!(http, time.format("%a, %d %b %Y %H:%M:%S GMT").to_string());
            assert_eq!(iso, time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        }
    }
}
