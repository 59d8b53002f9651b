//! The SOEP entry's FHIR resources against the Nictiz zib2020 profiles,
//! checked by the independent HAPI validator in `../shared/fhir`.

#[path = "support/validator.rs"]
mod validator;

use pieper_core::{
    Error, PatientRef, RosterPatient,
    record::{Clinician, Icpc, PractitionerId, SoepEntry, SoepKind, SoepLine},
};
use validator::TestResult;

fn entry() -> Result<SoepEntry, Box<dyn std::error::Error>> {
    Ok(SoepEntry {
        id: "4f9e2c1a-7b3d-4e8f-9a0b-1c2d3e4f5a6b".into(),
        title: "Hoesten bij ACE-remmer".into(),
        lines: vec![
            SoepLine {
                kind: SoepKind::S,
                text: "Sinds 2 maanden droge hoest, begonnen na start enalapril.".into(),
                icpc: Some(Icpc {
                    code: "R05".into(),
                    display: "Hoesten".into(),
                }),
            },
            SoepLine {
                kind: SoepKind::O,
                text: "Longen: VAG, geen bijgeluiden. <geen koorts>".into(),
                icpc: None,
            },
            SoepLine {
                kind: SoepKind::E,
                text: "Prikkelhoest als bijwerking van enalapril.".into(),
                icpc: Some(Icpc {
                    code: "A85".into(),
                    display: "Bijwerking geneesmiddel".into(),
                }),
            },
            SoepLine {
                kind: SoepKind::P,
                text: "Enalapril gestopt, start losartan 50 mg. Controle 4 weken.".into(),
                icpc: None,
            },
        ],
        patient: RosterPatient {
            reference: PatientRef::new("bsn:999911120")?,
            name: "Mw. J. de Vries".into(),
            birth_date: "1951-04-12".into(),
            enrolled: true,
        },
        author: Clinician {
            name: "H.A. Janszens".into(),
            ids: vec![PractitionerId::Agb("01999999".into())],
        },
        date: 1_795_000_000_000,
    })
}

#[test]
fn entries_are_checked_before_they_are_built() -> TestResult {
    let good = entry()?;
    assert!(good.patient_visible());
    let bundle = good.transaction_bundle()?;
    assert_eq!(bundle["entry"].as_array().map(Vec::len), Some(8));
    // Built twice, the same: identifiers and fullUrls are stable.
    assert_eq!(bundle, good.transaction_bundle()?);
    let composition = &bundle["entry"][0];
    assert_eq!(composition["request"]["method"], "POST");
    assert!(
        composition["request"]["ifNoneExist"]
            .as_str()
            .is_some_and(|s| s.starts_with("identifier=urn:ietf:rfc:3986|urn:uuid:"))
    );

    let mut icpc_on_o = entry()?;
    icpc_on_o.lines[1].icpc = Some(Icpc {
        code: "R05".into(),
        display: "Hoesten".into(),
    });
    let mut twice_s = entry()?;
    twice_s.lines[1].kind = SoepKind::S;
    let mut bad_bsn = entry()?;
    bad_bsn.patient.reference = PatientRef::new("bsn:999911121")?;
    let mut no_author_id = entry()?;
    no_author_id.author.ids.clear();
    let mut bad_code = entry()?;
    bad_code.lines[0].icpc = Some(Icpc {
        code: "hoest".into(),
        display: "Hoesten".into(),
    });
    for (bad, field) in [
        (icpc_on_o, "icpc"),
        (twice_s, "lines"),
        (bad_bsn, "bsn"),
        (no_author_id, "author"),
        (bad_code, "icpc"),
    ] {
        match bad.transaction_bundle() {
            Err(Error::Invalid { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{field}: {other:?}"),
        }
    }
    Ok(())
}

/// Every resource validates against its Nictiz profile without errors; a
/// copy with an ICPC code on the O line fails (zib-SOAPReport-1), so the
/// validator really applied the profile.
#[test]
fn the_soep_entry_meets_the_nictiz_profiles() -> TestResult {
    let dir = tempfile::tempdir()?;
    let bundle = entry()?.transaction_bundle()?;
    let good = dir.path().join("soep.json");
    std::fs::write(&good, serde_json::to_string_pretty(&bundle)?)?;
    let composition = dir.path().join("composition.json");
    std::fs::write(
        &composition,
        serde_json::to_string(&bundle["entry"][0]["resource"])?,
    )?;

    let mut broken = bundle.clone();
    let o_line = broken["entry"]
        .as_array_mut()
        .and_then(|e| {
            e.iter_mut()
                .find(|e| e["resource"]["code"]["coding"][0]["code"] == "260224007")
        })
        .ok_or("no O line")?;
    o_line["resource"]["extension"] = bundle["entry"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["resource"]["extension"].is_array()))
        .map(|e| e["resource"]["extension"].clone())
        .ok_or("no coded line")?;
    let bad = dir.path().join("soep-icpc-on-o.json");
    std::fs::write(&bad, serde_json::to_string(&broken)?)?;

    let (_, report) = validator::validate("none", &[&good, &bad])?;
    assert!(validator::errors(&report, &good).is_empty(), "{report}");
    assert!(
        validator::errors(&report, &bad)
            .iter()
            .any(|l| l.contains("zib-SOAPReport-1")),
        "{report}"
    );
    // The Composition alone, checked against nl-core-SOAPReport by URL.
    let (code, report) = validator::validate(
        "http://nictiz.nl/fhir/StructureDefinition/nl-core-SOAPReport",
        &[&composition],
    )?;
    assert!(
        validator::errors(&report, &composition).is_empty(),
        "{report}"
    );
    assert_eq!(code, Some(0), "{report}");
    Ok(())
}

/// A task exports as a base R4 `Task`, and a follow-up as a
/// `ServiceRequest` or `CommunicationRequest`, that validate without errors.
#[test]
fn a_task_exports_as_a_valid_fhir_task() -> TestResult {
    use pieper_core::{Assignee, Task, TaskState, TaskStep};
    let task = Task {
        id: "9d0c7b6a-5e4f-4a3b-8c2d-1e0f9a8b7c6d".into(),
        conversation: "c".into(),
        what: "Controle-afspraak over 2 weken plannen".into(),
        patient: Some(PatientRef::new("bsn:999911120")?),
        assignee: Assignee::Role("assistent".into()),
        due: Some("2026-12-11".into()),
        from_message: None,
        follow_up: None,
        state: TaskState::Accepted,
        requested_by: "u-jansen".into(),
        history: vec![
            TaskStep {
                state: TaskState::Requested,
                by: "u-jansen".into(),
                at: 1_795_000_000_000,
                applied: true,
            },
            TaskStep {
                state: TaskState::Accepted,
                by: "u-bakker".into(),
                at: 1_795_000_600_000,
                applied: true,
            },
        ],
    };
    let fhir = task.to_fhir()?;
    assert_eq!(fhir["status"], "accepted");
    assert_eq!(fhir["for"]["identifier"]["value"], "999911120");
    assert!(
        task.to_fhir_request()?.is_none(),
        "no follow-up, no request"
    );
    // The same task as agenda follow-ups: an appointment to plan, and a
    // call-back.
    let appointment = Task {
        follow_up: Some(pieper_core::tasks::FollowUp::Appointment {
            with: Some("POH".into()),
        }),
        ..task.clone()
    };
    let call_back = Task {
        follow_up: Some(pieper_core::tasks::FollowUp::CallBack),
        ..task.clone()
    };
    let service = appointment.to_fhir_request()?.ok_or("no ServiceRequest")?;
    assert_eq!(service["resourceType"], "ServiceRequest");
    assert_eq!(service["status"], "active");
    assert_eq!(service["occurrencePeriod"]["end"], "2026-12-11");
    let communication = call_back
        .to_fhir_request()?
        .ok_or("no CommunicationRequest")?;
    assert_eq!(communication["resourceType"], "CommunicationRequest");

    let dir = tempfile::tempdir()?;
    let files: Vec<std::path::PathBuf> = [
        ("task", &fhir),
        ("service", &service),
        ("call", &communication),
    ]
    .iter()
    .map(|(name, value)| {
        let file = dir.path().join(format!("{name}.json"));
        std::fs::write(&file, serde_json::to_string_pretty(value)?)?;
        Ok::<_, Box<dyn std::error::Error>>(file)
    })
    .collect::<Result<_, _>>()?;
    let paths: Vec<&std::path::Path> = files.iter().map(|f| f.as_path()).collect();
    let (code, report) = validator::validate("none", &paths)?;
    for file in &paths {
        assert!(validator::errors(&report, file).is_empty(), "{report}");
    }
    assert_eq!(code, Some(0), "{report}");
    Ok(())
}
