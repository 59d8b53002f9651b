//! The practice's patients: imported from CSV or a FHIR R4 Bundle of Patient
//! resources, and kept current by later imports without duplicates.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    error::{Error, Result},
    model::PatientRef,
    record::identifiers::{BSN_OID, BSN_SYSTEM, patient_from_identifier},
};

/// A patient on the practice's roster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct RosterPatient {
    /// The HIS patient reference.
    pub reference: PatientRef,
    /// The name as the HIS has it.
    pub name: String,
    /// Date of birth, `YYYY-MM-DD`.
    pub birth_date: String,
    /// Whether the patient is enrolled in the practice.
    pub enrolled: bool,
}

fn check_date(date: &str) -> Result<()> {
    let bytes = date.as_bytes();
    let shaped = bytes.len() == 10
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && bytes
            .iter()
            .enumerate()
            .all(|(i, b)| i == 4 || i == 7 || b.is_ascii_digit());
    let month = date
        .get(5..7)
        .and_then(|m| m.parse::<u8>().ok())
        .unwrap_or(0);
    let day = date
        .get(8..10)
        .and_then(|d| d.parse::<u8>().ok())
        .unwrap_or(0);
    if !shaped || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return Err(Error::invalid(
            "birth_date",
            format!("{date:?} is not YYYY-MM-DD"),
        ));
    }
    Ok(())
}

fn patient(reference: &str, name: &str, birth_date: &str, enrolled: bool) -> Result<RosterPatient> {
    check_date(birth_date)?;
    if name.trim().is_empty() {
        return Err(Error::invalid("name", "empty"));
    }
    Ok(RosterPatient {
        reference: PatientRef::new(reference)?,
        name: name.trim().to_owned(),
        birth_date: birth_date.to_owned(),
        enrolled,
    })
}

/// The line (from 1) a person sees a record on that the reader places at
/// `byte`: the reader counts a record from the line break before it.
fn line_of(text: &str, byte: u64) -> usize {
    let byte = usize::try_from(byte).unwrap_or(usize::MAX).min(text.len());
    let rest = text.get(byte..).unwrap_or_default();
    let start = byte + rest.len() - rest.trim_start_matches(['\r', '\n']).len();
    1 + text.as_bytes()[..start]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
}

/// Reads a roster from CSV with the header `reference,name,birth_date,enrolled`
/// (`enrolled` is `yes`/`no`, `true`/`false` or `1`/`0`), as Dutch exports
/// write it: fields separated by `,` or by `;` (spreadsheets where the comma
/// is the decimal sign), with or without a UTF-8 byte-order mark, quoted
/// fields that may hold separators, quotes and line breaks. Any bad row fails
/// the whole import, naming its line.
pub fn roster_from_csv(text: &str) -> Result<Vec<RosterPatient>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let header = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .ok_or_else(|| Error::invalid("csv", "empty"))?;
    let delimiter = if header.contains(';') && !header.contains(',') {
        b';'
    } else {
        b','
    };
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        // Rows of the wrong length get our error, with the line.
        .flexible(true)
        .from_reader(text.as_bytes());
    let columns: Vec<String> = reader
        .headers()
        .map_err(|e| Error::invalid("csv", e.to_string()))?
        .iter()
        .map(|h| h.trim().to_lowercase())
        .collect();
    if columns != ["reference", "name", "birth_date", "enrolled"] {
        return Err(Error::invalid(
            "csv",
            "header must be reference,name,birth_date,enrolled",
        ));
    }
    let mut patients = Vec::new();
    let mut record = csv::StringRecord::new();
    while reader
        .read_record(&mut record)
        .map_err(|e| Error::invalid("csv", e.to_string()))?
    {
        if record.iter().all(|cell| cell.trim().is_empty()) {
            continue;
        }
        let line = line_of(text, record.position().map_or(0, |p| p.byte()));
        let at = |e: Error| match e {
            Error::Invalid { field, reason } => Error::Invalid {
                field,
                reason: format!("line {line}: {reason}"),
            },
            other => other,
        };
        let cells: Vec<&str> = record.iter().collect();
        let [reference, name, birth_date, enrolled] = cells.as_slice() else {
            return Err(at(Error::invalid("csv", "expected 4 fields")));
        };
        let enrolled = match enrolled.trim().to_lowercase().as_str() {
            "yes" | "true" | "1" => true,
            "no" | "false" | "0" => false,
            other => return Err(at(Error::invalid("enrolled", format!("{other:?}")))),
        };
        patients.push(patient(reference.trim(), name, birth_date.trim(), enrolled).map_err(at)?);
    }
    Ok(patients)
}

/// Reads a roster from a FHIR R4 Bundle of Patient resources. The reference
/// is `bsn:<BSN>` where a BSN identifier is present, else `his:<value>` of
/// the first identifier; `active: false` means the patient left.
pub fn roster_from_fhir_bundle(json: &str) -> Result<Vec<RosterPatient>> {
    let bundle: Value =
        serde_json::from_str(json).map_err(|e| Error::invalid("bundle", e.to_string()))?;
    if bundle["resourceType"] != "Bundle" {
        return Err(Error::invalid("bundle", "not a FHIR Bundle"));
    }
    let entries = bundle["entry"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    entries
        .iter()
        .map(|entry| &entry["resource"])
        .filter(|r| r["resourceType"] == "Patient")
        .map(|p| {
            let identifiers = p["identifier"].as_array().map(Vec::as_slice).unwrap_or(&[]);
            // The BSN where there is one, else the first identifier.
            let identifier = identifiers
                .iter()
                .find(|i| i["system"] == BSN_SYSTEM || i["system"] == BSN_OID)
                .or_else(|| identifiers.first());
            let reference = identifier
                .and_then(|i| {
                    Some((
                        i["system"].as_str().unwrap_or_default(),
                        i["value"].as_str()?,
                    ))
                })
                .map(|(system, value)| patient_from_identifier(system, value))
                .transpose()?
                .map(|p| p.as_str().to_owned())
                .ok_or_else(|| Error::invalid("identifier", "a Patient without an identifier"))?;
            let name = p["name"]
                .as_array()
                .and_then(|names| names.first())
                .map(|n| {
                    n["text"].as_str().map(str::to_owned).unwrap_or_else(|| {
                        let given: Vec<&str> = n["given"]
                            .as_array()
                            .map(|g| g.iter().filter_map(Value::as_str).collect())
                            .unwrap_or_default();
                        let family = n["family"].as_str().unwrap_or_default();
                        format!("{} {family}", given.join(" ")).trim().to_owned()
                    })
                })
                .unwrap_or_default();
            let birth_date = p["birthDate"].as_str().unwrap_or_default();
            let enrolled = p["active"].as_bool().unwrap_or(true);
            patient(&reference, &name, birth_date, enrolled)
        })
        .collect()
}

/// What an import changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct RosterChanges {
    /// New patients.
    pub added: Vec<PatientRef>,
    /// Patients whose name, birth date or enrolment changed.
    pub changed: Vec<PatientRef>,
    /// Enrolled patients missing from a full import: they left the practice.
    pub left: Vec<PatientRef>,
}

/// Merges an import into the roster without duplicates. With `full`, the
/// import is the whole practice: enrolled patients it lacks are marked as
/// left (kept, for their consent history).
pub fn merge_roster(
    roster: &mut Vec<RosterPatient>,
    import: Vec<RosterPatient>,
    full: bool,
) -> Result<RosterChanges> {
    let mut seen = std::collections::HashSet::new();
    for p in &import {
        if !seen.insert(p.reference.clone()) {
            return Err(Error::invalid(
                "roster",
                format!("{} appears twice in the import", p.reference.as_str()),
            ));
        }
    }
    let mut changes = RosterChanges::default();
    let mut index: std::collections::HashMap<PatientRef, usize> = roster
        .iter()
        .enumerate()
        .map(|(i, p)| (p.reference.clone(), i))
        .collect();
    for incoming in import {
        match index.get(&incoming.reference) {
            Some(&i) if roster[i] != incoming => {
                changes.changed.push(incoming.reference.clone());
                roster[i] = incoming;
            }
            Some(_) => {}
            None => {
                changes.added.push(incoming.reference.clone());
                index.insert(incoming.reference.clone(), roster.len());
                roster.push(incoming);
            }
        }
    }
    if full {
        for p in roster
            .iter_mut()
            .filter(|p| p.enrolled && !seen.contains(&p.reference))
        {
            p.enrolled = false;
            changes.left.push(p.reference.clone());
        }
    }
    Ok(changes)
}
