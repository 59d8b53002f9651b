//! Dutch identifiers as FHIR writes them: the BSN (with its 11-proof), the
//! HIS's own patient number, and practitioners and practices by AGB, UZI,
//! BIG or URA.

use crate::{
    error::{Error, Result},
    model::PatientRef,
};

/// The naming system of the BSN (burgerservicenummer).
pub const BSN_SYSTEM: &str = "http://fhir.nl/fhir/NamingSystem/bsn";
/// The BSN's OID form, accepted on input.
pub const BSN_OID: &str = "urn:oid:2.16.840.1.113883.2.4.6.3";
/// The naming system of the AGB code of a care provider.
pub const AGB_SYSTEM: &str = "http://fhir.nl/fhir/NamingSystem/agb-z";
/// The naming system of a person's UZI number.
pub const UZI_SYSTEM: &str = "http://fhir.nl/fhir/NamingSystem/uzi-nr-pers";
/// The naming system of the BIG register.
pub const BIG_SYSTEM: &str = "http://fhir.nl/fhir/NamingSystem/big";
/// The naming system of an organisation's URA number.
pub const URA_SYSTEM: &str = "http://fhir.nl/fhir/NamingSystem/ura";
/// The HIS's own patient numbers, where a patient has no BSN here.
pub const HIS_SYSTEM: &str = "https://pieper.nl/fhir/NamingSystem/his-patient";
/// A reference that is neither a BSN nor a HIS number, kept as it is.
pub const REFERENCE_SYSTEM: &str = "https://pieper.nl/fhir/NamingSystem/patient-reference";

/// Whether `bsn` is nine digits that pass the 11-proof
/// (9·d1 + 8·d2 + … + 2·d8 − 1·d9 is a multiple of 11, and not 0).
pub fn is_valid_bsn(bsn: &str) -> bool {
    let digits: Vec<i64> = bsn
        .chars()
        .map(|c| c.to_digit(10).map(i64::from))
        .collect::<Option<_>>()
        .unwrap_or_default();
    if digits.len() != 9 {
        return false;
    }
    let sum: i64 = digits
        .iter()
        .enumerate()
        .map(|(i, d)| if i == 8 { -d } else { (9 - i as i64) * d })
        .sum();
    sum != 0 && sum % 11 == 0
}

/// A patient reference from a FHIR identifier (system and value): a BSN
/// (URI or OID form, 11-proof checked) becomes `bsn:<digits>`, one of our
/// own references stays as it is, anything else is `his:<value>`. The
/// inverse of [`patient_identifier`]; every FHIR reader here uses it.
pub fn patient_from_identifier(system: &str, value: &str) -> Result<PatientRef> {
    let value = value.trim();
    match system {
        BSN_SYSTEM | BSN_OID => {
            if !is_valid_bsn(value) {
                return Err(Error::invalid(
                    "bsn",
                    "not nine digits passing the 11-proof",
                ));
            }
            PatientRef::new(&format!("bsn:{value}"))
        }
        REFERENCE_SYSTEM => PatientRef::new(value),
        _ => PatientRef::new(&format!("his:{value}")),
    }
}

/// The FHIR identifier (system, value) of a patient reference: `bsn:`
/// (11-proof checked) and `his:` as the roster import makes them, anything
/// else as it is. Every FHIR builder here uses it.
pub fn patient_identifier(patient: &PatientRef) -> Result<(&'static str, &str)> {
    let reference = patient.as_str();
    if let Some(bsn) = reference.strip_prefix("bsn:") {
        if !is_valid_bsn(bsn) {
            return Err(Error::invalid(
                "bsn",
                "not nine digits passing the 11-proof",
            ));
        }
        return Ok((BSN_SYSTEM, bsn));
    }
    Ok(match reference.strip_prefix("his:") {
        Some(his) => (HIS_SYSTEM, his),
        None => (REFERENCE_SYSTEM, reference),
    })
}

/// [`patient_identifier`] as a FHIR `Identifier`.
pub(crate) fn patient_identifier_json(patient: &PatientRef) -> Result<serde_json::Value> {
    let (system, value) = patient_identifier(patient)?;
    Ok(serde_json::json!({ "system": system, "value": value }))
}

/// How a practitioner is identified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PractitionerId {
    /// AGB-Z code (8 digits).
    Agb(String),
    /// UZI number of the person.
    Uzi(String),
    /// BIG registration number (11 digits).
    Big(String),
}

impl PractitionerId {
    /// Checks the shape of the number.
    pub fn check(&self) -> Result<()> {
        let (field, value, digits) = match self {
            Self::Agb(v) => ("agb", v, Some(8)),
            Self::Uzi(v) => ("uzi", v, None),
            Self::Big(v) => ("big", v, Some(11)),
        };
        let all_digits = !value.is_empty() && value.chars().all(|c| c.is_ascii_digit());
        if !all_digits || digits.is_some_and(|n| value.len() != n) || value.len() > 20 {
            return Err(Error::invalid(
                field,
                format!("{value:?} is not a valid number"),
            ));
        }
        Ok(())
    }

    /// From a FHIR identifier.
    pub fn from_identifier(system: &str, value: &str) -> Result<Self> {
        let id = match system {
            AGB_SYSTEM => Self::Agb(value.to_owned()),
            UZI_SYSTEM => Self::Uzi(value.to_owned()),
            BIG_SYSTEM => Self::Big(value.to_owned()),
            other => {
                return Err(Error::invalid(
                    "system",
                    format!("{other:?} names no practitioner"),
                ));
            }
        };
        id.check()?;
        Ok(id)
    }

    /// (system, value) for FHIR.
    pub fn identifier(&self) -> (&'static str, &str) {
        match self {
            Self::Agb(v) => (AGB_SYSTEM, v),
            Self::Uzi(v) => (UZI_SYSTEM, v),
            Self::Big(v) => (BIG_SYSTEM, v),
        }
    }
}

/// Opens a launch link from the HIS or the CLI:
/// `pieper://patient/<reference>`, where the reference is `bsn:<BSN>`,
/// `his:<number>` or a bare number (the HIS's own). Percent-escapes are
/// decoded.
pub fn parse_launch_link(link: &str) -> Result<PatientRef> {
    let rest = link
        .trim()
        .strip_prefix("pieper://patient/")
        .ok_or_else(|| Error::invalid("link", "not a pieper://patient/ link"))?;
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let decoded = percent_decode(rest)?;
    if let Some(bsn) = decoded.strip_prefix("bsn:") {
        return patient_from_identifier(BSN_SYSTEM, bsn);
    }
    if decoded.starts_with("his:") {
        return PatientRef::new(&decoded);
    }
    patient_from_identifier(HIS_SYSTEM, &decoded)
}

fn percent_decode(text: &str) -> Result<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| Error::invalid("link", "bad percent escape"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| Error::invalid("link", "not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bsn_eleven_proof() {
        // Test BSNs as published for software testing.
        for good in ["999911120", "999990019", "111222333"] {
            assert!(is_valid_bsn(good), "{good}");
        }
        for bad in [
            "999911121",
            "12345678",
            "1234567890",
            "00000000a",
            "000000000",
        ] {
            assert!(!is_valid_bsn(bad), "{bad}");
        }
    }

    #[test]
    fn identifiers_and_links() -> Result<()> {
        assert_eq!(
            patient_from_identifier(BSN_OID, "999911120")?.as_str(),
            "bsn:999911120"
        );
        assert!(patient_from_identifier(BSN_SYSTEM, "999911121").is_err());
        assert_eq!(
            parse_launch_link("pieper://patient/bsn%3A999911120")?.as_str(),
            "bsn:999911120"
        );
        assert_eq!(
            parse_launch_link("pieper://patient/48213")?.as_str(),
            "his:48213"
        );
        assert_eq!(
            parse_launch_link("pieper://patient/his:patient%2F48213?x=1")?.as_str(),
            "his:patient/48213"
        );
        assert!(parse_launch_link("https://example.org/patient/1").is_err());
        assert!(parse_launch_link("pieper://patient/bsn:123").is_err());
        // One mapping both ways, for every kind of reference.
        for reference in ["bsn:999911120", "his:48213", "dossier-7"] {
            let p = PatientRef::new(reference)?;
            let (system, value) = patient_identifier(&p)?;
            assert_eq!(patient_from_identifier(system, value)?, p, "{reference}");
        }
        assert_eq!(
            patient_identifier(&PatientRef::new("his:48213")?)?,
            (HIS_SYSTEM, "48213")
        );
        assert!(patient_identifier(&PatientRef::new("bsn:999911121")?).is_err());
        assert!(PractitionerId::Agb("0199999".into()).check().is_err());
        assert!(PractitionerId::Agb("01999999".into()).check().is_ok());
        assert!(PractitionerId::Big("1234567890".into()).check().is_err());
        Ok(())
    }
}
