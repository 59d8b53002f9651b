//! A SOEP entry (S: subjective, O: objective, E: evaluation, P: plan) as
//! the Nictiz zib2020 profiles write it: an `nl-core-SOAPReport`
//! Composition (type SNOMED 11591000146107, one section per line) with
//! `nl-core-SOAPReport.SOAPLine` Observations, the `nl-core-Patient` it is
//! about and the clinician (`nl-core-HealthProfessional-Practitioner` and
//! `-PractitionerRole`) who confirmed it.
//!
//! The transaction Bundle creates each resource conditionally on a stable
//! identifier, so delivering the same entry twice writes it once.

use serde_json::{Value, json};

use super::identifiers::{PractitionerId, patient_identifier};
use crate::{
    consent::RosterPatient,
    error::{Error, Result},
    fhir::{narrative, rfc3339, stable_uuid},
};

const SNOMED: &str = "http://snomed.info/sct";
const ICPC: &str = "http://hl7.org/fhir/sid/icpc-1-nl";
const NICTIZ: &str = "http://nictiz.nl/fhir/StructureDefinition/";
const URI_SYSTEM: &str = "urn:ietf:rfc:3986";

/// A SOEP line's kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
pub enum SoepKind {
    /// Subjectief: what the patient tells.
    S,
    /// Objectief: what was found.
    O,
    /// Evaluatie: the assessment (patients read it online).
    E,
    /// Plan / beleid (patients read it online).
    P,
}

impl SoepKind {
    /// The SNOMED CT code and display the profile requires.
    fn snomed(self) -> (&'static str, &'static str) {
        match self {
            Self::S => ("255362007", "Subjective"),
            Self::O => ("260224007", "Objective"),
            Self::E => ("129265001", "Evaluatie"),
            Self::P => ("129271007", "Beleid"),
        }
    }

    /// Whether the patient reads this line in their online record.
    pub fn patient_visible(self) -> bool {
        matches!(self, Self::E | Self::P)
    }

    fn letter(self) -> &'static str {
        match self {
            Self::S => "S",
            Self::O => "O",
            Self::E => "E",
            Self::P => "P",
        }
    }
}

/// An ICPC-1-NL code (e.g. `R05` Hoesten).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct Icpc {
    /// The code: a chapter letter and two digits, optionally `.nn`.
    pub code: String,
    /// Its Dutch name.
    pub display: String,
}

/// One line of the entry.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct SoepLine {
    /// S, O, E or P.
    pub kind: SoepKind,
    /// The text.
    pub text: String,
    /// An ICPC code (S and E lines only).
    pub icpc: Option<Icpc>,
}

/// The clinician who confirms the entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Clinician {
    /// The name as shown.
    pub name: String,
    /// AGB, UZI and/or BIG numbers (at least one).
    pub ids: Vec<PractitionerId>,
}

/// A SOEP entry about one problem, ready to go into the record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SoepEntry {
    /// Its stable id (the same entry is written once).
    pub id: String,
    /// The problem it is about (the Composition's title).
    pub title: String,
    /// Its lines, at most one of each kind.
    pub lines: Vec<SoepLine>,
    /// The patient, from the roster.
    pub patient: RosterPatient,
    /// Who confirms it.
    pub author: Clinician,
    /// When (ms since the Unix epoch).
    pub date: i64,
}

const MAX_LINE: usize = 10_000;

fn check_icpc(code: &str) -> bool {
    let b = code.as_bytes();
    let base =
        b.len() >= 3 && b[0].is_ascii_uppercase() && b[1].is_ascii_digit() && b[2].is_ascii_digit();
    let suffix = &code[3.min(code.len())..];
    base && (suffix.is_empty()
        || (suffix.len() == 3
            && suffix.starts_with('.')
            && suffix[1..].chars().all(|c| c.is_ascii_digit())))
}

impl SoepEntry {
    /// Whether a line goes to the patient's online record (E and P do):
    /// the app says so before the clinician confirms.
    pub fn patient_visible(&self) -> bool {
        self.lines.iter().any(|l| l.kind.patient_visible())
    }

    /// Checks what the profile and the practice require.
    pub fn validate(&self) -> Result<()> {
        if self.title.trim().is_empty() || self.title.len() > 200 {
            return Err(Error::invalid(
                "title",
                "the problem must be 1 to 200 characters",
            ));
        }
        if self.lines.is_empty() {
            return Err(Error::invalid(
                "lines",
                "a SOEP entry needs at least one line",
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for line in &self.lines {
            if !seen.insert(line.kind) {
                return Err(Error::invalid(
                    "lines",
                    format!("two {} lines: write them as one", line.kind.letter()),
                ));
            }
            if line.text.trim().is_empty() || line.text.len() > MAX_LINE {
                return Err(Error::invalid(
                    "text",
                    "a line must be 1 to 10,000 characters",
                ));
            }
            if let Some(icpc) = &line.icpc {
                if !matches!(line.kind, SoepKind::S | SoepKind::E) {
                    return Err(Error::invalid(
                        "icpc",
                        "only S and E lines take an ICPC code",
                    ));
                }
                if !check_icpc(&icpc.code) || icpc.display.trim().is_empty() {
                    return Err(Error::invalid(
                        "icpc",
                        format!("{:?} is not an ICPC-1-NL code", icpc.code),
                    ));
                }
            }
        }
        if self.author.name.trim().is_empty() || self.author.ids.is_empty() {
            return Err(Error::invalid(
                "author",
                "the clinician needs a name and an AGB, UZI or BIG number",
            ));
        }
        for id in &self.author.ids {
            id.check()?;
        }
        patient_identifier(&self.patient.reference)?;
        Ok(())
    }

    fn uuid(&self, part: &str) -> String {
        stable_uuid(&format!("{}/{part}", self.id))
    }

    fn practitioner_uuid(&self) -> String {
        let (system, value) = self.author.ids[0].identifier();
        stable_uuid(&format!("practitioner {system}|{value}"))
    }

    /// The resources: Composition, its Observations, the Patient, the
    /// Practitioner and PractitionerRole, each with its fullUrl
    /// (`urn:uuid:…`) and the identifier it is created on.
    pub fn resources(&self) -> Result<Vec<(String, Value, String)>> {
        self.validate()?;
        let (patient_system, patient_value) = patient_identifier(&self.patient.reference)?;
        let patient_url = format!(
            "urn:uuid:{}",
            stable_uuid(&format!("patient {patient_system}|{patient_value}"))
        );
        let practitioner_url = format!("urn:uuid:{}", self.practitioner_uuid());
        let role_id = stable_uuid(&format!("role {}", self.practitioner_uuid()));
        let role_url = format!("urn:uuid:{role_id}");
        let date = rfc3339(self.date)?;
        let name = &self.author.name;

        let mut patient = json!({
            "resourceType": "Patient",
            "text": narrative(&format!("{} ({patient_value})", self.patient.name)),
            "meta": { "profile": [format!("{NICTIZ}nl-core-Patient")] },
            "identifier": [{ "system": patient_system, "value": patient_value }],
            "name": [{ "use": "official", "text": self.patient.name }],
        });
        if !self.patient.birth_date.is_empty() {
            patient["birthDate"] = json!(self.patient.birth_date);
        }
        let practitioner = json!({
            "resourceType": "Practitioner",
            "text": narrative(name),
            "meta": { "profile": [format!("{NICTIZ}nl-core-HealthProfessional-Practitioner")] },
            "identifier": self.author.ids.iter().map(|id| {
                let (system, value) = id.identifier();
                json!({ "system": system, "value": value })
            }).collect::<Vec<_>>(),
            "name": [{ "use": "official", "text": name }],
        });
        let role = json!({
            "resourceType": "PractitionerRole",
            "text": narrative(name),
            "meta": { "profile": [format!("{NICTIZ}nl-core-HealthProfessional-PractitionerRole")] },
            "identifier": [{ "system": URI_SYSTEM, "value": role_url }],
            "practitioner": { "reference": practitioner_url, "type": "Practitioner", "display": name },
        });

        let mut resources = Vec::new();
        let mut sections = Vec::new();
        for line in &self.lines {
            let (code, display) = line.kind.snomed();
            let url = format!("urn:uuid:{}", self.uuid(line.kind.letter()));
            let mut observation = json!({
                "resourceType": "Observation",
                "text": narrative(&format!("{}: {}", line.kind.letter(), line.text)),
                "meta": { "profile": [format!("{NICTIZ}nl-core-SOAPReport.SOAPLine")] },
                "identifier": [{ "system": URI_SYSTEM, "value": url }],
                "status": "final",
                "code": { "coding": [{ "system": SNOMED, "code": code, "display": display }] },
                "subject": { "reference": patient_url, "type": "Patient" },
                "effectiveDateTime": date,
                "performer": [{ "reference": role_url, "type": "PractitionerRole" }],
                "valueString": line.text,
            });
            if let Some(icpc) = &line.icpc {
                observation["extension"] = json!([{
                    "url": format!("{NICTIZ}ext-SOAPReport.SOAPLineCode"),
                    "valueCodeableConcept": { "coding": [{ "system": ICPC, "code": icpc.code, "display": icpc.display }] },
                }]);
            }
            sections.push(json!({
                "code": { "coding": [{ "system": SNOMED, "code": code, "display": display }] },
                "text": narrative(&line.text),
                "entry": [{ "reference": url, "type": "Observation" }],
            }));
            resources.push((url.clone(), observation, url));
        }
        let composition_url = format!("urn:uuid:{}", self.uuid("composition"));
        let composition = json!({
            "resourceType": "Composition",
            "text": narrative(&self.as_text()),
            "meta": { "profile": [format!("{NICTIZ}nl-core-SOAPReport")] },
            "identifier": { "system": URI_SYSTEM, "value": composition_url },
            "status": "final",
            "type": { "coding": [{ "system": SNOMED, "code": "11591000146107", "display": "patiëntcontactverslag" }] },
            "subject": { "reference": patient_url, "type": "Patient" },
            "date": date,
            "author": [{ "reference": role_url, "type": "PractitionerRole", "display": name }],
            "title": self.title.trim(),
            "section": sections,
        });
        let mut all = vec![
            (composition_url.clone(), composition, composition_url),
            (
                patient_url.clone(),
                patient,
                format!("{patient_system}|{patient_value}"),
            ),
            (practitioner_url.clone(), practitioner, {
                let (system, value) = self.author.ids[0].identifier();
                format!("{system}|{value}")
            }),
            (role_url.clone(), role, role_url),
        ];
        all.append(&mut resources);
        Ok(all)
    }

    /// A FHIR R4 transaction Bundle that creates every resource only if
    /// none with its identifier exists (`ifNoneExist`).
    pub fn transaction_bundle(&self) -> Result<Value> {
        let entries: Vec<Value> = self
            .resources()?
            .into_iter()
            .map(|(url, resource, identifier)| {
                let kind = resource["resourceType"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                let search = if identifier.starts_with("urn:uuid:") {
                    format!("identifier={URI_SYSTEM}|{identifier}")
                } else {
                    format!("identifier={identifier}")
                };
                json!({
                    "fullUrl": url,
                    "resource": resource,
                    "request": { "method": "POST", "url": kind, "ifNoneExist": search },
                })
            })
            .collect();
        Ok(json!({ "resourceType": "Bundle", "type": "transaction", "entry": entries }))
    }

    /// The entry as plain text, for a HIS that takes neither push nor pull
    /// (the user copies it in).
    pub fn as_text(&self) -> String {
        let mut out = format!("{}\n", self.title.trim());
        for line in &self.lines {
            out.push_str(line.kind.letter());
            out.push_str(": ");
            out.push_str(line.text.trim());
            if let Some(icpc) = &line.icpc {
                out.push_str(&format!(" ({} {})", icpc.code, icpc.display));
            }
            out.push('\n');
        }
        out
    }
}
