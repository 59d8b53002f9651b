//! Who a device is: practice, user and device, as named in its MLS credential.

use std::fmt;

use crate::error::{Error, Result};

/// The identity of one device of one user in one practice.
///
/// It is the content of the device's MLS basic credential, so every member of a
/// conversation sees, authenticated by MLS, which practice, user and device
/// sent a message.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MemberId {
    /// The practice (tenant) the user belongs to.
    pub practice: String,
    /// The user (a staff member).
    pub user: String,
    /// One of the user's devices (phone, tablet, desktop).
    pub device: String,
}

const SEPARATOR: char = '/';
const PREFIX: &str = "pieper:v1:";

impl MemberId {
    /// Makes a member id after checking that each part is a plain identifier.
    pub fn new(practice: &str, user: &str, device: &str) -> Result<Self> {
        check_part("practice", practice)?;
        check_part("user", user)?;
        check_part("device", device)?;
        Ok(Self {
            practice: practice.to_owned(),
            user: user.to_owned(),
            device: device.to_owned(),
        })
    }

    /// The bytes put in the MLS credential.
    pub(crate) fn to_credential_bytes(&self) -> Vec<u8> {
        self.to_string().into_bytes()
    }

    /// Reads a credential written by [`MemberId::to_credential_bytes`].
    pub(crate) fn from_credential_bytes(bytes: &[u8]) -> Result<Self> {
        let text =
            std::str::from_utf8(bytes).map_err(|_| Error::invalid("credential", "not UTF-8"))?;
        let rest = text
            .strip_prefix(PREFIX)
            .ok_or_else(|| Error::invalid("credential", "unknown credential format"))?;
        let mut parts = rest.split(SEPARATOR);
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(p), Some(u), Some(d), None) => Self::new(p, u, d),
            _ => Err(Error::invalid(
                "credential",
                "expected practice/user/device",
            )),
        }
    }
}

impl fmt::Display for MemberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PREFIX}{}/{}/{}", self.practice, self.user, self.device)
    }
}

fn check_part(field: &'static str, value: &str) -> Result<()> {
    if value.is_empty() || value.len() > 64 {
        return Err(Error::invalid(field, "must be 1 to 64 characters"));
    }
    if !value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(Error::invalid(
            field,
            "only letters, digits, '-', '_' and '.'",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_round_trip() -> Result<()> {
        let id = MemberId::new("praktijk-de-linde", "dr.jansen", "phone-1")?;
        let bytes = id.to_credential_bytes();
        assert_eq!(bytes, b"pieper:v1:praktijk-de-linde/dr.jansen/phone-1");
        assert_eq!(MemberId::from_credential_bytes(&bytes)?, id);
        Ok(())
    }

    #[test]
    fn rejects_separators_and_empty_parts() {
        assert!(matches!(
            MemberId::new("a/b", "u", "d"),
            Err(Error::Invalid {
                field: "practice",
                ..
            })
        ));
        assert!(matches!(
            MemberId::new("p", "", "d"),
            Err(Error::Invalid { field: "user", .. })
        ));
        assert!(MemberId::from_credential_bytes(b"pieper:v1:p/u/d/x").is_err());
        assert!(MemberId::from_credential_bytes(b"alice").is_err());
    }
}
