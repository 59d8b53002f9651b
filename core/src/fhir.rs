//! Helpers every FHIR builder here shares: times and stable UUIDs.

use crate::error::{Error, Result};

/// Milliseconds since the Unix epoch as a FHIR `dateTime` / `instant`.
pub fn rfc3339(ms: i64) -> Result<String> {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .map_err(|_| Error::invalid("date", "out of range"))
}

/// A FHIR `dateTime` with a time zone, in milliseconds since the epoch.
pub(crate) fn from_rfc3339(text: &str) -> Result<i64> {
    // RFC 3339 only: a date and time with an offset, no zone names.
    if text.contains('[') {
        return Err(Error::invalid(
            "dateTime",
            format!("{text:?}: not RFC 3339"),
        ));
    }
    text.parse::<jiff::Timestamp>()
        .map(|t| t.as_millisecond())
        .map_err(|e| Error::invalid("dateTime", format!("{text:?}: {e}")))
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
/// and fullUrls that must be the same each time the same thing is written:
/// the first 16 bytes of SHA-256 of the seed, as a version 8 ("custom")
/// UUID (RFC 9562), which is what it is — not a version 5, which would mean
/// SHA-1 under a namespace.
pub fn stable_uuid(seed: &str) -> String {
    if let Ok(u) = uuid::Uuid::parse_str(seed) {
        return u.to_string();
    }
    use sha2::Digest;
    let digest = sha2::Sha256::digest(seed.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes)
        .into_uuid()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stable_uuid_is_a_version_8_uuid_fixed_by_its_seed() -> std::result::Result<(), uuid::Error>
    {
        let first = stable_uuid("Patient/his:1");
        let parsed = uuid::Uuid::parse_str(&first)?;
        assert_eq!(parsed.get_version_num(), 8);
        assert_eq!(parsed.get_variant(), uuid::Variant::RFC4122);
        assert_eq!(stable_uuid("Patient/his:1"), first);
        assert_ne!(stable_uuid("Patient/his:2"), first);
        // A seed that is a UUID already stays itself.
        let given = "0b0f3a4e-2c1d-4e5f-8a9b-0c1d2e3f4a5b";
        assert_eq!(stable_uuid(given), given);
        Ok(())
    }
}
