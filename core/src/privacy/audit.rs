//! The device's part of the NEN 7513 audit trail: accesses to patient data
//! that happen here (every [`AccessAction`]) are noted by the core itself,
//! wait in the store and are reported with the patient as a pseudonym; the practice's
//! log comes back with pseudonyms, which this device turns into the patients
//! it knows; and it exports as CSV and as FHIR R4 `AuditEvent`s.

use rusqlite::{Connection, params};
use serde_json::{Value, json};

use super::pseudonym::PracticeKey;
use crate::{
    error::Result,
    fhir::{rfc3339, stable_uuid},
    model::PatientRef,
    store::{StoreError, queries},
};

/// Most accesses reported in one request (the server takes 500).
const REPORT_BATCH: usize = 500;

pub use pieper_wire::AccessAction;

/// Notes an access for the audit trail (reported at the next sync);
/// returns its id, under which the server records it once.
pub(crate) fn record(
    conn: &Connection,
    action: AccessAction,
    patient: Option<&PatientRef>,
    detail: &str,
) -> Result<String> {
    record_as(conn, action, true, patient, detail)
}

/// [`record`], for an access that succeeded or failed (the HIS refused).
pub(crate) fn record_as(
    conn: &Connection,
    action: AccessAction,
    success: bool,
    patient: Option<&PatientRef>,
    detail: &str,
) -> Result<String> {
    let id = uuid::Uuid::new_v4().to_string();
    conn.execute(
        "INSERT INTO audit_outbox (id, action, at, outcome, patient, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            &id,
            action.as_str(),
            queries::now_ms(),
            if success { "success" } else { "failure" },
            patient.map(PatientRef::as_str),
            (!detail.is_empty()).then_some(detail)
        ],
    )
    .map_err(StoreError::from)?;
    Ok(id)
}

/// The accesses waiting to be reported, with pseudonyms under `key`.
pub(crate) fn pending(
    conn: &Connection,
    key: &PracticeKey,
) -> Result<Vec<pieper_wire::ReportedAccess>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT id, action, at, outcome, patient, detail FROM audit_outbox
             ORDER BY at, id LIMIT ?1",
        )
        .map_err(StoreError::from)?;
    let rows = stmt
        .query_map([REPORT_BATCH as i64], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, Option<String>>(5)?,
            ))
        })
        .map_err(StoreError::from)?;
    let mut out = Vec::new();
    for row in rows {
        let (id, action, at, outcome, patient, detail) = row.map_err(StoreError::from)?;
        let patient = patient
            .map(|p| PatientRef::new(&p).map(|p| key.pseudonym(&p)))
            .transpose()?;
        out.push(pieper_wire::ReportedAccess {
            id,
            action,
            at,
            outcome,
            patient,
            detail,
        });
    }
    Ok(out)
}

/// The server recorded these.
pub(crate) fn reported(conn: &Connection, ids: &[String]) -> Result<()> {
    let mut stmt = conn
        .prepare_cached("DELETE FROM audit_outbox WHERE id = ?1")
        .map_err(StoreError::from)?;
    for id in ids {
        stmt.execute([id]).map_err(StoreError::from)?;
    }
    Ok(())
}

/// Every patient this device knows of (conversations, consent, roster), to
/// turn pseudonyms back into patients.
pub(crate) fn known_patients(conn: &Connection) -> Result<Vec<PatientRef>> {
    let mut stmt = conn
        .prepare(
            "SELECT patient_ref FROM conversations WHERE patient_ref IS NOT NULL
             UNION SELECT patient FROM consent_changes
             UNION SELECT reference FROM roster_changes",
        )
        .map_err(StoreError::from)?;
    let rows = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .map_err(StoreError::from)?;
    let mut out = Vec::new();
    for row in rows {
        if let Ok(p) = PatientRef::new(&row.map_err(StoreError::from)?) {
            out.push(p);
        }
    }
    Ok(out)
}

/// One event of the practice's audit log, with the patient as this device
/// knows them (`None`: no patient, or one this device does not know).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    /// The event as the server keeps it (patient as a pseudonym).
    pub event: pieper_wire::AuditEvent,
    /// The patient, when this device knows who the pseudonym is.
    pub patient: Option<PatientRef>,
}

/// The log as CSV (RFC 4180), with the patient's reference where known:
/// the columns of the server's export.
pub fn to_csv(entries: &[AuditEntry]) -> String {
    pieper_wire::audit_csv(
        entries
            .iter()
            .map(|e| (&e.event, e.patient.as_ref().map(PatientRef::as_str))),
    )
}

/// DICOM's audit event ids (the type of a FHIR `AuditEvent`).
const DCM: &str = "http://dicom.nema.org/resources/ontology/DCM";
const URI_SYSTEM: &str = "urn:ietf:rfc:3986";

/// The FHIR `AuditEvent.action` and DICOM event type of an action.
fn fhir_action(action: &str) -> (&'static str, &'static str, &'static str) {
    match action {
        "message.send" | "attachment.upload" => ("C", "110106", "Export"),
        "message.read" | "message.fetch" | "attachment.fetch" => ("R", "110110", "Patient Record"),
        "record.document" => ("C", "110106", "Export"),
        "patient.export" | "audit.export" | "account.export" => ("E", "110106", "Export"),
        "patient.erase" => ("D", "110110", "Patient Record"),
        "login" | "device.enrol" | "audit.unlock" => ("E", "110114", "User Authentication"),
        _ => ("E", "110100", "Application Activity"),
    }
}

/// The party the user acted for (a huisarts, or the practice for its
/// connector): a second agent, the responsible party, not the requestor.
fn on_behalf_of_agent(party: &str) -> Value {
    let who = match party.strip_prefix("practice:") {
        Some(practice) => json!({
            "identifier": { "system": URI_SYSTEM, "value": format!("urn:uuid:{}", stable_uuid(&format!("practice {practice}"))) },
            "display": practice,
        }),
        None => json!({
            "identifier": { "system": URI_SYSTEM, "value": format!("urn:uuid:{}", stable_uuid(&format!("user {party}"))) },
            "display": party,
        }),
    };
    json!({
        "type": { "coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
            "code": "RESP",
            "display": "responsible party"
        }] },
        "who": who,
        "requestor": false,
    })
}

/// One event as a FHIR R4 `AuditEvent`.
pub fn to_fhir(entry: &AuditEntry) -> Result<Value> {
    let e = &entry.event;
    let (action, code, display) = fhir_action(&e.action);
    // The practice's connector is an application; everyone else a person.
    let agent_type = if e.role.as_deref() == Some("connector") {
        json!({ "coding": [{ "system": DCM, "code": "110150", "display": "Application" }] })
    } else {
        json!({ "coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/extra-security-role-type",
            "code": "humanuser",
            "display": "human user"
        }] })
    };
    let mut agent = json!({ "type": agent_type, "requestor": true });
    if let Some(user) = &e.user_id {
        agent["who"] = json!({
            "identifier": { "system": URI_SYSTEM, "value": format!("urn:uuid:{}", stable_uuid(&format!("user {user}"))) },
            "display": user,
        });
    }
    if let Some(role) = &e.role {
        agent["role"] = json!([{ "text": role }]);
    }
    if let Some(source) = &e.source {
        agent["network"] = json!({ "address": source, "type": "2" });
    }
    let mut agents = vec![agent];
    if let Some(party) = &e.on_behalf_of {
        agents.push(on_behalf_of_agent(party));
    }
    let mut event = json!({
        "resourceType": "AuditEvent",
        "id": stable_uuid(&format!("audit {} {}", e.practice_id, e.id)),
        "type": { "system": DCM, "code": code, "display": display },
        "subtype": [{ "system": "https://pieper.nl/fhir/CodeSystem/audit-action", "code": e.action }],
        "action": action,
        "recorded": rfc3339(e.at)?,
        "outcome": if e.outcome == "success" { "0" } else { "4" },
        "agent": agents,
        "source": {
            "site": e.practice_id,
            "observer": {
                "identifier": { "system": URI_SYSTEM, "value": format!("urn:uuid:{}", stable_uuid(&format!("device {}", e.device_id.as_deref().unwrap_or("server")))) },
                "display": e.device_id.as_deref().unwrap_or("pieper-server"),
            },
            "type": [{
                "system": "http://terminology.hl7.org/CodeSystem/security-source-type",
                "code": "4",
                "display": "Application Server"
            }]
        },
    });
    if let Some(detail) = e.detail.as_ref().filter(|d| !d.is_empty()) {
        event["outcomeDesc"] = json!(detail);
    }
    if let Some(pseudonym) = &e.patient {
        let what = match &entry.patient {
            Some(patient) => {
                let (system, value) = crate::record::patient_identifier(patient)
                    .unwrap_or((URI_SYSTEM, pseudonym.as_str()));
                json!({ "identifier": { "system": system, "value": value } })
            }
            None => json!({ "identifier": {
                "system": "https://pieper.nl/fhir/NamingSystem/patient-pseudonym",
                "value": pseudonym
            } }),
        };
        event["entity"] = json!([{
            "what": what,
            "type": { "system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "1", "display": "Person" },
            "role": { "system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "1", "display": "Patient" },
        }]);
    }
    Ok(event)
}

/// The events as a FHIR R4 `Bundle` (collection) of `AuditEvent`s.
pub fn to_fhir_bundle(entries: &[AuditEntry], at: i64) -> Result<Value> {
    let resources = entries
        .iter()
        .map(|e| {
            let resource = to_fhir(e)?;
            Ok(json!({
                "fullUrl": format!("urn:uuid:{}", resource["id"].as_str().unwrap_or_default()),
                "resource": resource,
            }))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(json!({
        "resourceType": "Bundle",
        "id": uuid::Uuid::new_v4().to_string(),
        "type": "collection",
        "timestamp": rfc3339(at)?,
        "entry": resources,
    }))
}
