//! The FHIR R4 Consent export, checked by an independent validator (HAPI
//! FHIR's, from `../shared/fhir/validator`), and read back without loss.

#[path = "support/validator.rs"]
mod validator;

use pieper_core::{
    ConsentChange, ConsentKind, ConsentMethod, ConsentStatus, PatientRef,
    consent::{consent_from_fhir, consent_to_fhir_bundle},
};

use validator::TestResult;

fn change(
    id: &str,
    patient: &str,
    kind: ConsentKind,
    status: ConsentStatus,
    at: i64,
) -> Result<ConsentChange, Box<dyn std::error::Error>> {
    Ok(ConsentChange {
        id: id.into(),
        patient: PatientRef::new(patient)?,
        kind,
        status,
        method: ConsentMethod::PaperForm,
        note: None,
        recorded_by: "u-bakker".into(),
        role: "assistent".into(),
        recorded_at: at,
        withdrawal: false,
    })
}

fn history() -> Result<Vec<ConsentChange>, Box<dyn std::error::Error>> {
    let t = 1_795_000_000_000; // 2026-11-18
    let mut withdrawn = change(
        "6f1c2a4e-8d0b-4f4e-9a61-3b1f0c2d7e55",
        "bsn:999911120",
        ConsentKind::LspSharing,
        ConsentStatus::Refused,
        t + 60_000,
    )?;
    withdrawn.withdrawal = true;
    withdrawn.method = ConsentMethod::InPerson;
    withdrawn.note = Some("Wil \"toch niet\" <delen> & bellen".into());
    Ok(vec![
        change(
            "0b8e7c36-55a1-4c1e-bb0e-5f2d4a9c1e01",
            "bsn:999911120",
            ConsentKind::LspSharing,
            ConsentStatus::Given,
            t,
        )?,
        withdrawn,
        change(
            "a3d4e5f6-0718-4293-a4b5-c6d7e8f90a1b",
            "his:1002",
            ConsentKind::ECommunication,
            ConsentStatus::Given,
            t + 120_000,
        )?,
        change(
            "imported-legacy-17",
            "P-77",
            ConsentKind::LspSharing,
            ConsentStatus::NotAsked,
            t + 180_123,
        )?,
    ])
}

#[test]
fn export_reads_back_without_loss() -> TestResult {
    let history = history()?;
    let json = consent_to_fhir_bundle(&history)?;
    for secret_free in ["\"resourceType\": \"Consent\"", "\"patient-privacy\""] {
        assert!(json.contains(secret_free), "{secret_free} missing");
    }
    let back = consent_from_fhir(&json, "someone-else", "poh")?;
    assert_eq!(back, history);
    // A malformed import is a clear error.
    let broken = json.replacen("\"dateTime\": \"", "\"dateTime\": \"yesterday ", 1);
    assert!(matches!(
        consent_from_fhir(&broken, "u", "poh"),
        Err(pieper_core::Error::Invalid {
            field: "dateTime",
            ..
        })
    ));
    assert!(consent_from_fhir("{\"resourceType\":\"Patient\"}", "u", "poh").is_err());
    Ok(())
}

/// Runs the HAPI validator on our export and on a copy without the
/// required `status`: ours has no errors, the broken one does (so the
/// validator really looked).
#[test]
fn export_passes_the_hapi_fhir_validator() -> TestResult {
    let dir = tempfile::tempdir()?;
    let json = consent_to_fhir_bundle(&history()?)?;
    let good = dir.path().join("consent.json");
    std::fs::write(&good, &json)?;
    let mut value: serde_json::Value = serde_json::from_str(&json)?;
    if let Some(resource) = value["entry"][0]["resource"].as_object_mut() {
        resource.remove("status");
    }
    let bad = dir.path().join("consent-without-status.json");
    std::fs::write(&bad, serde_json::to_string(&value)?)?;
    let (code, report) = validator::validate("none", &[&good, &bad])?;
    let errors = |file: &std::path::Path| validator::errors(&report, file);
    assert!(errors(&good).is_empty(), "{report}");
    assert!(
        !errors(&bad).is_empty(),
        "a Consent without status passed: {report}"
    );
    // Exit 1: some file had errors (the broken one).
    assert_eq!(code, Some(1), "{report}");
    Ok(())
}
