//! Who a device is: practice, user and device, as named in its MLS
//! credential, and the certificate that binds them to the device's
//! signature key.
//!
//! A certified credential is an MLS basic credential whose identity is the
//! device's X.509 certificate (DER), issued by the practice's authority at
//! enrolment. Basic rather than the X.509 credential type: every existing
//! group lists only basic credentials in its members' capabilities, and the
//! authentication service is ours to run either way (RFC 9420, 5.3.1).

use std::fmt;

use ed25519_dalek::{Signature, VerifyingKey};
use pieper_wire::{ApprovalKind, Role, certificate as names};
use x509_parser::prelude::*;

use crate::error::{Error, Result};

/// The OID of Ed25519 (RFC 8410), the only signature algorithm accepted.
const ED25519: &str = "1.3.101.112";
/// How far ahead of this device's clock a certificate may start.
const CLOCK_SLACK_SECS: i64 = 5 * 60;

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

    /// Who a credential names, without checking it: for group state this
    /// device checked when the member joined. A certificate or, from
    /// earlier versions, the member URI itself.
    pub(crate) fn from_credential_bytes(bytes: &[u8]) -> Result<Self> {
        if bytes.starts_with(PREFIX.as_bytes()) {
            return Self::from_uri(bytes);
        }
        let (_, cert) = X509Certificate::from_der(bytes)
            .map_err(|_| Error::invalid("credential", "neither a certificate nor a member id"))?;
        let (member, _) = names_in(&cert)?;
        Ok(member)
    }

    /// Reads a member URI, `pieper:v1:<practice>/<user>/<device>`.
    fn from_uri(bytes: &[u8]) -> Result<Self> {
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

/// A member as its certificate says, checked against the practice's
/// authority.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Certified {
    /// Practice, user and device.
    pub id: MemberId,
    /// The user's roles when the certificate was issued.
    pub roles: Vec<Role>,
    /// The user's professional registrations (AGB, BIG, UZI) as the
    /// practice manager entered them when the certificate was issued.
    pub registrations: pieper_wire::Registrations,
    /// When the certificate stops being valid (ms since the Unix epoch).
    pub not_after: i64,
}

impl Certified {
    /// Whether the member holds `role`.
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

/// Whether roles decide for the practice: a huisarts or the practice
/// manager. They erase a patient's chat on request (AVG art. 17) and set
/// the duty roster.
pub(crate) fn decides_for_practice(roles: &[Role]) -> bool {
    roles.contains(&Role::Huisarts) || roles.contains(&Role::Manager)
}

/// A practice's certificate authority, as this device pinned it at
/// enrolment: the key every member's certificate must be signed with.
#[derive(Clone)]
pub(crate) struct Authority {
    practice: String,
    subject: Vec<u8>,
    key: VerifyingKey,
}

impl Authority {
    /// Reads and checks the authority certificate of `practice`: an
    /// Ed25519 CA certificate, signed by itself, for that practice.
    pub(crate) fn from_der(der: &[u8], practice: &str) -> Result<Self> {
        let cert = parse(der)?;
        let key = ed25519_key(&cert)?;
        check_signature(&cert, &key)?;
        if !cert.is_ca() {
            return Err(untrusted("the authority certificate is not a CA"));
        }
        let named = uris(&cert)?
            .iter()
            .any(|u| u.strip_prefix(names::PRACTICE_PREFIX) == Some(practice));
        if !named {
            return Err(untrusted("the authority is not this practice's"));
        }
        Ok(Self {
            practice: practice.to_owned(),
            subject: cert.subject().as_raw().to_vec(),
            key,
        })
    }

    /// Checks the head of the practice's audit chain as the server signed
    /// it with this authority.
    pub(crate) fn check_audit_head(&self, head: &pieper_wire::AuditHead) -> Result<()> {
        if head.practice_id != self.practice {
            return Err(untrusted("another practice's audit head"));
        }
        let signature = Signature::from_slice(&head.signature.0)
            .map_err(|_| untrusted("the audit head's signature is not one"))?;
        let signed =
            pieper_wire::AuditHead::signed_bytes(&head.practice_id, head.seq, &head.hash, head.at);
        self.key
            .verify_strict(&signed, &signature)
            .map_err(|_| untrusted("the audit head is not signed by the practice's authority"))
    }

    /// Checks a member's certificate: signed by this authority, valid at
    /// `now_ms`, for this practice, and for `signature_key`, the key the
    /// member's MLS leaf signs with.
    pub(crate) fn verify(
        &self,
        certificate: &[u8],
        signature_key: &[u8],
        now_ms: i64,
    ) -> Result<Certified> {
        let cert = parse(certificate)?;
        if cert.issuer().as_raw() != self.subject.as_slice() {
            return Err(untrusted("issued by another authority"));
        }
        check_signature(&cert, &self.key)?;
        let now = now_ms / 1000;
        let validity = cert.validity();
        if validity.not_before.timestamp() > now + CLOCK_SLACK_SECS {
            return Err(untrusted("the certificate is not valid yet"));
        }
        if validity.not_after.timestamp() < now {
            return Err(untrusted("the certificate has expired"));
        }
        if ed25519_key(&cert)?.as_bytes().as_slice() != signature_key {
            return Err(untrusted("the certificate is for another signature key"));
        }
        let (id, roles) = names_in(&cert)?;
        if id.practice != self.practice {
            return Err(untrusted("a member of another practice"));
        }
        let registrations = pieper_wire::Registrations::from_uris(uris(&cert)?.iter().copied());
        Ok(Certified {
            id,
            roles,
            registrations,
            not_after: validity.not_after.timestamp() * 1000,
        })
    }
}

fn untrusted(reason: &str) -> Error {
    Error::Untrusted {
        reason: reason.to_owned(),
    }
}

fn parse(der: &[u8]) -> Result<X509Certificate<'_>> {
    match X509Certificate::from_der(der) {
        Ok(([], cert)) => Ok(cert),
        _ => Err(untrusted("not a certificate")),
    }
}

/// The certificate's subject key, which must be Ed25519.
fn ed25519_key(cert: &X509Certificate<'_>) -> Result<VerifyingKey> {
    let spki = cert.public_key();
    if spki.algorithm.algorithm.to_id_string() != ED25519 {
        return Err(untrusted("not an Ed25519 key"));
    }
    let bytes: [u8; 32] = spki
        .subject_public_key
        .data
        .as_ref()
        .try_into()
        .map_err(|_| untrusted("not an Ed25519 key"))?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| untrusted("not an Ed25519 key"))
}

/// Checks the certificate's Ed25519 signature over its signed part.
fn check_signature(cert: &X509Certificate<'_>, key: &VerifyingKey) -> Result<()> {
    if cert.signature_algorithm.algorithm.to_id_string() != ED25519 {
        return Err(untrusted("not signed with Ed25519"));
    }
    let signature = Signature::from_slice(cert.signature_value.data.as_ref())
        .map_err(|_| untrusted("a malformed signature"))?;
    key.verify_strict(cert.tbs_certificate.as_ref(), &signature)
        .map_err(|_| untrusted("the certificate's signature does not verify"))
}

/// The URIs among the certificate's subject alternative names.
fn uris<'a>(cert: &'a X509Certificate<'_>) -> Result<Vec<&'a str>> {
    let san = cert
        .subject_alternative_name()
        .map_err(|_| untrusted("malformed alternative names"))?
        .ok_or_else(|| untrusted("the certificate names nobody"))?;
    Ok(san
        .value
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::URI(u) => Some(*u),
            _ => None,
        })
        .collect())
}

/// The label of an approval signature (RFC 9420 SignWithLabel): each kind
/// its own, so one is never read as another.
fn approval_label(kind: ApprovalKind) -> &'static str {
    match kind {
        ApprovalKind::Own => "pieper device approval",
        ApprovalKind::Recovery => "pieper recovery approval",
        ApprovalKind::Reset => "pieper identity reset",
    }
}

/// What a voucher signs for a new device: RFC 9420's SignContent (5.1.2)
/// with the kind's label over the new device's certificate.
pub(crate) fn approval_content(kind: ApprovalKind, certificate: &[u8]) -> Result<Vec<u8>> {
    use openmls::prelude::tls_codec::{Serialize as _, VLBytes};
    let label = VLBytes::new(format!("MLS 1.0 {}", approval_label(kind)).into_bytes());
    let content = VLBytes::new(certificate.to_vec());
    let mut out = label
        .tls_serialize_detached()
        .map_err(|e| Error::internal("approval", e))?;
    out.extend(
        content
            .tls_serialize_detached()
            .map_err(|e| Error::internal("approval", e))?,
    );
    Ok(out)
}

/// Checks an approval of `kind`: `signature` by `approver_key` over
/// `certificate`.
pub(crate) fn check_approval(
    kind: ApprovalKind,
    certificate: &[u8],
    signature: &[u8],
    approver_key: &[u8],
) -> Result<()> {
    let key: [u8; 32] = approver_key
        .try_into()
        .map_err(|_| untrusted("the approving key is not Ed25519"))?;
    let key = VerifyingKey::from_bytes(&key)
        .map_err(|_| untrusted("the approving key is not Ed25519"))?;
    let signature =
        Signature::from_slice(signature).map_err(|_| untrusted("a malformed approval"))?;
    key.verify_strict(&approval_content(kind, certificate)?, &signature)
        .map_err(|_| untrusted("the approval's signature does not verify"))
}

/// The signature key a certificate certifies (read without checking).
pub(crate) fn certified_key(certificate: &[u8]) -> Result<Vec<u8>> {
    Ok(ed25519_key(&parse(certificate)?)?.as_bytes().to_vec())
}

/// The code a person compares on both devices before approving: six digits
/// from the new device's signature key, so a device the server slipped in
/// (another key) shows another code.
pub fn approval_code(signature_key: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new()
        .chain_update(b"pieper approval code v1")
        .chain_update(signature_key)
        .finalize();
    let n = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) % 1_000_000;
    format!("{:03} {:03}", n / 1000, n % 1000)
}

/// When a certificate stops being valid (ms), read without checking.
pub(crate) fn not_after(certificate: &[u8]) -> Option<i64> {
    parse(certificate)
        .ok()
        .map(|cert| cert.validity().not_after.timestamp() * 1000)
}

/// The roles this device's own certificate names (read without checking:
/// it is this device's own, checked at enrolment).
pub(crate) fn own_roles(certificate: &[u8]) -> Vec<Role> {
    parse(certificate)
        .and_then(|cert| names_in(&cert))
        .map(|(_, roles)| roles)
        .unwrap_or_default()
}

/// The one member and the roles a certificate names. A role this version
/// does not know is left out (a newer server may add roles).
fn names_in(cert: &X509Certificate<'_>) -> Result<(MemberId, Vec<Role>)> {
    let uris = uris(cert)?;
    let mut members = uris.iter().filter(|u| u.starts_with(names::MEMBER_PREFIX));
    let (Some(member), None) = (members.next(), members.next()) else {
        return Err(untrusted("the certificate must name exactly one member"));
    };
    let id = MemberId::from_uri(member.as_bytes())?;
    let roles = uris
        .iter()
        .filter_map(|u| u.strip_prefix(names::ROLE_PREFIX))
        .filter_map(Role::parse)
        .collect();
    Ok((id, roles))
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
