//! A practice's certificate authority. At enrolment, after password and
//! TOTP, it certifies the device's MLS signature key for practice, user,
//! device and role as an X.509 certificate; every member device checks a
//! member's certificate against the authority before it trusts what that
//! member's device adds or says.
//!
//! Ed25519 throughout (the MLS ciphersuite's signature scheme). The names
//! sit in subject alternative names of type URI (see
//! [`pieper_wire::certificate`]).

use pieper_wire::{Role, certificate};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ED25519, PublicKeyData, SanType, SerialNumber,
};
use time::{Duration, OffsetDateTime};

/// Why a certificate could not be made.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The key to certify is not an Ed25519 public key.
    #[error("signature_key must be an Ed25519 public key (32 bytes)")]
    NotEd25519,
    /// The certificate library failed (a stored key that does not load).
    #[error("certificate: {0}")]
    Certificate(String),
}

/// What this crate returns.
pub type Result<T> = std::result::Result<T, Error>;

/// How long a device certificate is valid. Devices renew theirs in its
/// last month (`POST /devices/me/certificate`).
const DEVICE_VALIDITY: Duration = Duration::days(365);
/// How long a practice's authority is valid.
const AUTHORITY_VALIDITY: Duration = Duration::days(20 * 365);

/// A practice's authority: its key (PKCS#8 DER) and self-signed certificate.
#[derive(Clone)]
pub struct Authority {
    /// The practice.
    pub practice: String,
    /// The signing key, PKCS#8 DER.
    pub key_der: Vec<u8>,
    /// The self-signed certificate, DER.
    pub certificate: Vec<u8>,
}

/// What a device certificate certifies.
pub struct Subject<'a> {
    /// The practice.
    pub practice: &'a str,
    /// The user.
    pub user: &'a str,
    /// The device.
    pub device: &'a str,
    /// The user's role.
    pub role: Role,
    /// The user's professional registrations.
    pub registrations: &'a pieper_wire::Registrations,
}

impl Authority {
    /// A new authority for `practice`.
    pub fn generate(practice: &str) -> Result<Self> {
        let key = KeyPair::generate_for(&PKCS_ED25519).map_err(internal)?;
        let certificate = authority_params(practice)?
            .self_signed(&key)
            .map_err(internal)?;
        Ok(Self {
            practice: practice.to_owned(),
            key_der: key.serialize_der(),
            certificate: certificate.der().to_vec(),
        })
    }

    /// Certifies a device's Ed25519 signature key for `subject`.
    pub fn certify(&self, subject: &Subject<'_>, signature_key: &[u8]) -> Result<Vec<u8>> {
        if signature_key.len() != 32 {
            return Err(Error::NotEd25519);
        }
        let key = KeyPair::try_from(self.key_der.as_slice()).map_err(internal)?;
        let issuer = Issuer::new(authority_params(&self.practice)?, key);
        let member = certificate::member_uri(subject.practice, subject.user, subject.device);
        let role = format!("{}{}", certificate::ROLE_PREFIX, subject.role.as_str());
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, member.clone());
        params
            .distinguished_name
            .push(DnType::OrganizationName, subject.practice);
        params.subject_alt_names = vec![uri(&member)?, uri(&role)?];
        for registration in subject.registrations.uris() {
            params.subject_alt_names.push(uri(&registration)?);
        }
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.serial_number = Some(serial());
        let now = OffsetDateTime::now_utc();
        // A little slack for devices whose clock runs behind.
        params.not_before = now - Duration::minutes(5);
        params.not_after = now + DEVICE_VALIDITY;
        let certificate = params
            .signed_by(&DeviceKey(signature_key), &issuer)
            .map_err(internal)?;
        Ok(certificate.der().to_vec())
    }
}

impl Authority {
    /// Signs the head of the practice's audit chain, so that what the server
    /// showed as its log at a time can be held against it later.
    pub fn sign_audit_head(&self, seq: u64, hash: &str, at: i64) -> Result<Vec<u8>> {
        use rcgen::SigningKey as _;
        let key = KeyPair::try_from(self.key_der.as_slice()).map_err(internal)?;
        key.sign(&pieper_wire::AuditHead::signed_bytes(
            &self.practice,
            seq,
            hash,
            at,
        ))
        .map_err(internal)
    }
}

/// A device's Ed25519 public key, as the subject key of its certificate.
struct DeviceKey<'a>(&'a [u8]);

impl PublicKeyData for DeviceKey<'_> {
    fn der_bytes(&self) -> &[u8] {
        self.0
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &PKCS_ED25519
    }
}

/// The authority's own certificate parameters; rebuilt the same way to sign,
/// so the issuer name in a device certificate matches its subject.
fn authority_params(practice: &str) -> Result<CertificateParams> {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, format!("Pieper authority {practice}"));
    params
        .distinguished_name
        .push(DnType::OrganizationName, practice);
    params.subject_alt_names = vec![uri(&format!("{}{practice}", certificate::PRACTICE_PREFIX))?];
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::minutes(5);
    params.not_after = now + AUTHORITY_VALIDITY;
    Ok(params)
}

fn uri(value: &str) -> Result<SanType> {
    Ok(SanType::URI(value.try_into().map_err(internal)?))
}

/// A random positive serial number (RFC 5280: at most 20 octets).
fn serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] &= 0x7f;
    SerialNumber::from_slice(&bytes)
}

fn internal(e: impl std::fmt::Display) -> Error {
    Error::Certificate(e.to_string())
}

#[cfg(test)]
mod tests {
    use x509_parser::prelude::*;

    use super::*;

    #[test]
    fn a_device_certificate_names_the_account_and_is_signed_by_the_authority() -> Result<()> {
        let authority = Authority::generate("linde")?;
        let key = [7u8; 32];
        let registrations = pieper_wire::Registrations {
            agb: Some("01999999".into()),
            ..pieper_wire::Registrations::default()
        };
        let der = authority.certify(
            &Subject {
                practice: "linde",
                user: "u1",
                device: "d1",
                role: Role::Poh,
                registrations: &registrations,
            },
            &key,
        )?;
        let (_, cert) = parse_x509_certificate(&der).expect("parses");
        let (_, ca) = parse_x509_certificate(&authority.certificate).expect("parses");
        assert_eq!(cert.issuer(), ca.subject());
        assert_eq!(cert.public_key().subject_public_key.data.as_ref(), &key);
        cert.verify_signature(Some(ca.public_key()))
            .expect("signed by the authority");
        let uris: Vec<String> = cert
            .subject_alternative_name()
            .expect("extension")
            .expect("present")
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                GeneralName::URI(u) => Some((*u).to_owned()),
                _ => None,
            })
            .collect();
        assert_eq!(
            uris,
            [
                "pieper:v1:linde/u1/d1",
                "urn:pieper:role:poh",
                "urn:pieper:registration:agb:01999999"
            ]
        );
        assert!(
            authority
                .certify(
                    &Subject {
                        practice: "linde",
                        user: "u1",
                        device: "d1",
                        role: Role::Poh,
                        registrations: &registrations,
                    },
                    &[1; 31]
                )
                .is_err()
        );
        Ok(())
    }
}
