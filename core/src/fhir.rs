//! Helpers every FHIR builder here shares: times and stable UUIDs.

use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use crate::error::{Error, Result};

/// Milliseconds since the Unix epoch as a FHIR `dateTime` / `instant`.
pub fn rfc3339(ms: i64) -> Result<String> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .ok_or_else(|| Error::invalid("date", "out of range"))
}

/// A FHIR `dateTime` with a time zone, in milliseconds since the epoch.
pub(crate) fn from_rfc3339(text: &str) -> Result<i64> {
    let t = OffsetDateTime::parse(text, &Rfc3339)
        .map_err(|e| Error::invalid("dateTime", format!("{text:?}: {e}")))?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000)
        .map_err(|_| Error::invalid("dateTime", "out of range"))
}

/// A generated FHIR narrative (`text`) holding `text`, escaped for XHTML.
pub fn narrative(text: &str) -> serde_json::Value {
    let escaped = text
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\n', "<br/>");
    serde_json::json!({
        "status": "generated",
        "div": format!("<div xmlns=\"http://www.w3.org/1999/xhtml\">{escaped}</div>"),
    })
}

/// A UUID fixed by `seed` (the seed itself if it is one), for identifiers
/// and fullUrls that must be the same each time the same thing is written.
pub fn stable_uuid(seed: &str) -> String {
    if let Ok(u) = uuid::Uuid::parse_str(seed) {
        return u.to_string();
    }
    use sha2::Digest;
    let digest = sha2::Sha256::digest(seed.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_sha1_bytes(bytes)
        .into_uuid()
        .to_string()
}
