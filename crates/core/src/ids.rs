//! Identifiers: UUIDv7 (time-ordered) newtypes, so a `JobId` can never be passed where a `UserId`
//! is expected, and the request id format shared by logs and error bodies.

use std::fmt;

/// Declares a UUIDv7 newtype id with parsing, display and serde as a plain UUID string.
#[macro_export]
macro_rules! uuid_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub uuid::Uuid);

        impl $name {
            /// A new time-ordered id.
            pub fn new() -> Self {
                Self(uuid::Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                uuid::Uuid::parse_str(s).map(Self)
            }
        }

        impl From<uuid::Uuid> for $name {
            fn from(id: uuid::Uuid) -> Self {
                Self(id)
            }
        }

        impl From<$name> for uuid::Uuid {
            fn from(id: $name) -> Self {
                id.0
            }
        }
    };
}

/// The id of one HTTP request: `X-Request-Id` in and out, and `trace_id` in error bodies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(String);

impl RequestId {
    /// Longest client-supplied id we keep; longer ones are replaced.
    pub const MAX_LEN: usize = 128;

    /// A fresh id, `req_` followed by a UUIDv7 in simple form.
    pub fn generate() -> Self {
        Self(format!("req_{}", uuid::Uuid::now_v7().simple()))
    }

    /// Accepts a client-supplied id when it is short and made of visible ASCII without spaces, so
    /// it is safe to echo in headers and logs.
    pub fn from_client(value: &str) -> Option<Self> {
        let ok = !value.is_empty()
            && value.len() <= Self::MAX_LEN
            && value.bytes().all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\');
        ok.then(|| Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A new opaque secret: `prefix` (telling what it is, e.g. `ort_`) and 256 random bits, base64url.
pub fn random_token(prefix: &str) -> String {
    use base64::Engine;
    format!("{prefix}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>()))
}

/// SHA-256 of a token, hex: what is stored. Tokens carry 256 random bits, so a fast hash is right.
pub fn hash_token(token: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    uuid_id!(
        /// An id used only in this test.
        SampleId
    );

    #[test]
    fn ids_are_time_ordered_and_parse_back() {
        let a = SampleId::new();
        let b = SampleId::new();
        assert!(a < b);
        assert_eq!(a.to_string().parse::<SampleId>().expect("parses"), a);
    }

    #[test]
    fn request_id_rejects_unsafe_client_values() {
        assert!(RequestId::from_client("abc-123").is_some());
        assert!(RequestId::from_client("").is_none());
        assert!(RequestId::from_client("has space").is_none());
        assert!(RequestId::from_client("quote\"").is_none());
        assert!(RequestId::from_client(&"x".repeat(129)).is_none());
        assert!(RequestId::generate().as_str().starts_with("req_"));
    }
}
