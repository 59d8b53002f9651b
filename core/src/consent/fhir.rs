//! Consent as FHIR R4 Consent resources: the history exports as a Bundle of
//! type `collection`, one Consent per change (the last of each patient and
//! kind `active`, earlier ones `inactive`), and imports back from such a
//! Bundle or a single Consent.
//!
//! Mapping: given → `provision.type = permit`, refused → `deny`, not asked →
//! no provision. The kind is a category coding in Pieper's code system; how
//! it was obtained, who recorded it, a note and a withdrawal ride in
//! extensions, so a round trip loses nothing.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::{ConsentChange, ConsentKind, ConsentMethod, ConsentStatus};
use crate::{
    error::{Error, Result},
    fhir::{from_rfc3339, narrative, rfc3339, stable_uuid},
    model::PatientRef,
    record::identifiers,
};

const KIND_SYSTEM: &str = "https://pieper.nl/fhir/CodeSystem/consent-kind";
const EXT: &str = "https://pieper.nl/fhir/StructureDefinition/consent-";
const CHANGE_ID_SYSTEM: &str = "https://pieper.nl/fhir/NamingSystem/consent-change";
/// The policies consented to: the LSP opt-in, and the practice's rules for
/// electronic communication.
const LSP_POLICY: &str = "https://www.volgjezorg.nl/toestemming";
const E_COMMUNICATION_POLICY: &str = "https://pieper.nl/fhir/policy/e-communication";

fn policy(kind: ConsentKind) -> &'static str {
    match kind {
        ConsentKind::LspSharing => LSP_POLICY,
        ConsentKind::ECommunication => E_COMMUNICATION_POLICY,
    }
}

fn patient_from_fhir(identifier: &Value) -> Result<PatientRef> {
    let value = identifier["value"]
        .as_str()
        .ok_or_else(|| Error::invalid("patient", "a Consent without a patient identifier"))?;
    identifiers::patient_from_identifier(identifier["system"].as_str().unwrap_or_default(), value)
}

fn one_consent(change: &ConsentChange, current: bool) -> Result<Value> {
    let status = match (current, change.status) {
        (false, _) => "inactive",
        (true, ConsentStatus::NotAsked) => "proposed",
        (true, _) => "active",
    };
    let mut extension = vec![
        json!({ "url": format!("{EXT}method"), "valueCode": change.method.as_str() }),
        json!({ "url": format!("{EXT}recorded-by"), "valueString": change.recorded_by }),
        json!({ "url": format!("{EXT}recorder-role"), "valueCode": change.role }),
    ];
    if let Some(note) = &change.note {
        extension.push(json!({ "url": format!("{EXT}note"), "valueString": note }));
    }
    if change.withdrawal {
        extension.push(json!({ "url": format!("{EXT}withdrawal"), "valueBoolean": true }));
    }
    let summary = format!(
        "{} {}: {}",
        change.kind.as_str(),
        change.status.as_str(),
        change.method.as_str()
    );
    let mut consent = json!({
        "resourceType": "Consent",
        "id": change.id,
        "text": narrative(&summary),
        "extension": extension,
        "identifier": [{ "system": CHANGE_ID_SYSTEM, "value": change.id }],
        "status": status,
        "scope": { "coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/consentscope",
            "code": "patient-privacy",
        }]},
        "category": [
            { "coding": [{ "system": "http://loinc.org", "code": "59284-0", "display": "Patient Consent" }] },
            { "coding": [{ "system": KIND_SYSTEM, "code": change.kind.as_str() }] },
        ],
        "patient": { "identifier": identifiers::patient_identifier_json(&change.patient)? },
        "dateTime": rfc3339(change.recorded_at)?,
        "policy": [{ "uri": policy(change.kind) }],
    });
    let provision = match change.status {
        ConsentStatus::Given => Some("permit"),
        ConsentStatus::Refused => Some("deny"),
        ConsentStatus::NotAsked => None,
    };
    if let Some(kind) = provision {
        consent["provision"] = json!({ "type": kind });
    }
    Ok(consent)
}

/// The history (in log order) as a FHIR R4 Bundle of Consent resources.
pub fn consent_to_fhir_bundle(history: &[ConsentChange]) -> Result<String> {
    let mut last: HashMap<(&PatientRef, ConsentKind), &str> = HashMap::new();
    for c in history {
        last.insert((&c.patient, c.kind), &c.id);
    }
    let entries = history
        .iter()
        .map(|c| {
            let current = last.get(&(&c.patient, c.kind)) == Some(&c.id.as_str());
            Ok(json!({
                "fullUrl": format!("urn:uuid:{}", stable_uuid(&c.id)),
                "resource": one_consent(c, current)?,
            }))
        })
        .collect::<Result<Vec<_>>>()?;
    let bundle = json!({
        "resourceType": "Bundle",
        "type": "collection",
        "entry": entries,
    });
    serde_json::to_string_pretty(&bundle).map_err(|e| Error::invalid("bundle", e.to_string()))
}

fn extension<'a>(resource: &'a Value, name: &str) -> Option<&'a Value> {
    let url = format!("{EXT}{name}");
    resource["extension"]
        .as_array()?
        .iter()
        .find(|e| e["url"].as_str() == Some(url.as_str()))
}

fn consent_kind(resource: &Value) -> Result<ConsentKind> {
    let categories = resource["category"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    for coding in categories
        .iter()
        .filter_map(|c| c["coding"].as_array())
        .flatten()
    {
        if coding["system"].as_str() == Some(KIND_SYSTEM) {
            return ConsentKind::parse(coding["code"].as_str().unwrap_or_default());
        }
    }
    let policies = resource["policy"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    for uri in policies.iter().filter_map(|p| p["uri"].as_str()) {
        match uri {
            LSP_POLICY => return Ok(ConsentKind::LspSharing),
            E_COMMUNICATION_POLICY => return Ok(ConsentKind::ECommunication),
            _ => {}
        }
    }
    Err(Error::invalid(
        "category",
        "a Consent that is neither LSP sharing nor electronic communication",
    ))
}

fn change_from_resource(
    resource: &Value,
    recorded_by: &str,
    role: &str,
) -> Result<Option<ConsentChange>> {
    if resource["resourceType"] != "Consent" {
        return Err(Error::invalid("resourceType", "not a Consent"));
    }
    let status = resource["status"]
        .as_str()
        .ok_or_else(|| Error::invalid("status", "a Consent without a status"))?;
    if status == "entered-in-error" {
        return Ok(None);
    }
    let id = resource["identifier"]
        .as_array()
        .and_then(|ids| {
            ids.iter()
                .find(|i| i["system"].as_str() == Some(CHANGE_ID_SYSTEM))
        })
        .and_then(|i| i["value"].as_str())
        .map(str::to_owned)
        .or_else(|| resource["id"].as_str().map(|id| format!("fhir:{id}")))
        .ok_or_else(|| Error::invalid("id", "a Consent without an id"))?;
    let patient = patient_from_fhir(&resource["patient"]["identifier"])?;
    let consent_status = match resource["provision"]["type"].as_str() {
        Some("permit") => ConsentStatus::Given,
        Some("deny") => ConsentStatus::Refused,
        Some(other) => {
            return Err(Error::invalid(
                "provision",
                format!("unknown provision type {other:?}"),
            ));
        }
        None => ConsentStatus::NotAsked,
    };
    let recorded_at = from_rfc3339(
        resource["dateTime"]
            .as_str()
            .ok_or_else(|| Error::invalid("dateTime", "a Consent without a date"))?,
    )?;
    let text = |name: &str, key: &str| {
        extension(resource, name)
            .and_then(|e| e[key].as_str())
            .map(str::to_owned)
    };
    let method = match text("method", "valueCode") {
        Some(m) => ConsentMethod::parse(&m)?,
        // A record that came in electronically.
        None => ConsentMethod::Digital,
    };
    let change = ConsentChange {
        id,
        patient,
        kind: consent_kind(resource)?,
        status: consent_status,
        method,
        note: text("note", "valueString"),
        recorded_by: text("recorded-by", "valueString").unwrap_or_else(|| recorded_by.to_owned()),
        role: text("recorder-role", "valueCode").unwrap_or_else(|| role.to_owned()),
        recorded_at,
        withdrawal: extension(resource, "withdrawal")
            .and_then(|e| e["valueBoolean"].as_bool())
            .unwrap_or(false),
    };
    super::check_change(&change)?;
    Ok(Some(change))
}

/// Reads consent changes from a FHIR R4 Bundle of Consent resources or a
/// single Consent, in the order given. Who recorded a change defaults to
/// `recorded_by` in `role` (the importing user) when the resource does not
/// say. Any malformed resource fails the whole import.
pub fn consent_from_fhir(json: &str, recorded_by: &str, role: &str) -> Result<Vec<ConsentChange>> {
    let value: Value =
        serde_json::from_str(json).map_err(|e| Error::invalid("fhir", e.to_string()))?;
    let resources: Vec<&Value> = match value["resourceType"].as_str() {
        Some("Bundle") => value["entry"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or(&[])
            .iter()
            .map(|e| &e["resource"])
            .collect(),
        Some("Consent") => vec![&value],
        _ => return Err(Error::invalid("fhir", "neither a Bundle nor a Consent")),
    };
    let mut changes = Vec::new();
    for (i, resource) in resources.into_iter().enumerate() {
        let change = change_from_resource(resource, recorded_by, role).map_err(|e| match e {
            Error::Invalid { field, reason } => Error::Invalid {
                field,
                reason: format!("entry {i}: {reason}"),
            },
            other => other,
        })?;
        changes.extend(change);
    }
    Ok(changes)
}
