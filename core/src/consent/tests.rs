use super::*;

const NOW: i64 = 1_780_000_000_000; // 2026-05-28

fn roster(n: usize) -> Vec<RosterPatient> {
    (0..n)
        .map(|i| RosterPatient {
            reference: PatientRef::new(&format!("his:{i:05}")).unwrap_or_else(|e| panic!("{e}")),
            name: format!("Patiënt {i}"),
            birth_date: "1950-01-01".into(),
            enrolled: true,
        })
        .collect()
}

fn change(patient: &str, status: ConsentStatus, at: i64, by: &str) -> ConsentChange {
    ConsentChange {
        id: format!("{patient}-{at}-{by}"),
        patient: PatientRef::new(patient).unwrap_or_else(|e| panic!("{e}")),
        kind: ConsentKind::LspSharing,
        status,
        method: ConsentMethod::InPerson,
        note: None,
        recorded_by: by.into(),
        role: "assistent".into(),
        recorded_at: at,
        withdrawal: false,
    }
}

#[test]
fn the_current_state_is_the_last_change_and_history_keeps_all() {
    let p = PatientRef::new("his:00001").unwrap_or_else(|e| panic!("{e}"));
    let mut history = Vec::new();
    assert_eq!(
        current_status(&history, &p, ConsentKind::LspSharing),
        ConsentStatus::NotAsked
    );
    history.push(change("his:00001", ConsentStatus::Refused, NOW - 3000, "a"));
    history.push(change("his:00001", ConsentStatus::Given, NOW - 2000, "b"));
    assert_eq!(
        current_status(&history, &p, ConsentKind::LspSharing),
        ConsentStatus::Given
    );
    // Another kind is separate.
    assert_eq!(
        current_status(&history, &p, ConsentKind::ECommunication),
        ConsentStatus::NotAsked
    );
    assert_eq!(history.len(), 2);
}

#[test]
fn withdrawal_turns_given_into_refused_and_only_given() -> Result<()> {
    let roster = roster(2);
    let mut history = vec![change("his:00000", ConsentStatus::Given, NOW - 5000, "a")];
    let mut withdraw = change("his:00000", ConsentStatus::Refused, NOW - 1000, "a");
    withdraw.withdrawal = true;
    validate(&withdraw, &roster, &history, NOW)?;
    history.push(withdraw.clone());
    let p = &roster[0].reference;
    assert_eq!(
        current_status(&history, p, ConsentKind::LspSharing),
        ConsentStatus::Refused
    );
    // Withdrawing again (nothing given) is refused.
    assert!(matches!(
        validate(&withdraw, &roster, &history, NOW),
        Err(Error::Invalid {
            field: "withdrawal",
            ..
        })
    ));
    Ok(())
}

#[test]
fn bad_changes_get_clear_errors() {
    let roster = roster(1);
    assert!(matches!(
        ConsentStatus::parse("maybe"),
        Err(Error::Invalid {
            field: "status",
            ..
        })
    ));
    let future = change("his:00000", ConsentStatus::Given, NOW + 10 * 60 * 1000, "a");
    assert!(matches!(
        validate(&future, &roster, &[], NOW),
        Err(Error::Invalid {
            field: "recorded_at",
            ..
        })
    ));
    let stranger = change("his:99999", ConsentStatus::Given, NOW, "a");
    assert!(matches!(
        validate(&stranger, &roster, &[], NOW),
        Err(Error::NotFound { .. })
    ));
    // A few minutes of clock skew is fine.
    let skewed = change("his:00000", ConsentStatus::Given, NOW + 60_000, "a");
    assert!(validate(&skewed, &roster, &[], NOW).is_ok());
}

#[test]
fn the_rate_with_no_patients_exactly_at_target_and_after_patients_leave() {
    let none = figures(&[], &[], ConsentKind::LspSharing, NOW);
    assert_eq!(
        (none.enrolled, none.rate, none.meets_target),
        (0, 0.0, false)
    );

    let mut roster = roster(4);
    let history: Vec<ConsentChange> = (0..3)
        .map(|i| {
            change(
                &format!("his:{i:05}"),
                ConsentStatus::Given,
                NOW - 1000,
                "a",
            )
        })
        .collect();
    let f = figures(&roster, &history, ConsentKind::LspSharing, NOW);
    assert_eq!((f.enrolled, f.given, f.refused, f.not_asked), (4, 3, 0, 1));
    assert_eq!(f.rate, 0.75);
    assert!(f.meets_target, "exactly 75 % meets the target");

    // Two of the consenting patients leave: 1 of 2 enrolled.
    roster[0].enrolled = false;
    roster[1].enrolled = false;
    let f = figures(&roster, &history, ConsentKind::LspSharing, NOW);
    assert_eq!((f.enrolled, f.given, f.not_asked), (2, 1, 1));
    assert!(!f.meets_target);
}

#[test]
fn concurrent_changes_converge_and_both_stay_in_history() {
    // Two devices record for the same patient at the same time; the server's
    // log orders them, and both devices fold that same log.
    let at_desk = change("his:00000", ConsentStatus::Given, NOW - 10, "desk");
    let at_poh = change("his:00000", ConsentStatus::Refused, NOW - 10, "poh");
    let log = vec![at_desk.clone(), at_poh.clone()];
    let device_a = log.clone();
    let device_b = log.clone();
    let p = PatientRef::new("his:00000").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        current_status(&device_a, &p, ConsentKind::LspSharing),
        current_status(&device_b, &p, ConsentKind::LspSharing)
    );
    assert_eq!(
        current_status(&device_a, &p, ConsentKind::LspSharing),
        ConsentStatus::Refused
    );
    assert!(device_a.contains(&at_desk) && device_a.contains(&at_poh));
}

#[test]
fn monthly_figures_show_the_development() {
    let roster = roster(2);
    // 2026-01-15 and 2026-03-10.
    let history = vec![
        change("his:00000", ConsentStatus::Given, 1_768_435_200_000, "a"),
        change("his:00001", ConsentStatus::Given, 1_773_100_800_000, "a"),
    ];
    let months = monthly(
        &roster,
        &history,
        ConsentKind::LspSharing,
        1_773_187_200_000,
    );
    let summary: Vec<(&str, u32)> = months.iter().map(|(m, f)| (m.as_str(), f.given)).collect();
    assert_eq!(summary, [("2026-01", 1), ("2026-02", 1), ("2026-03", 2)]);
    assert!(monthly(&roster, &[], ConsentKind::LspSharing, NOW).is_empty());
}

#[test]
fn the_worklist_puts_open_conversations_first_then_the_oldest() {
    let roster = roster(5);
    let mut history = vec![
        change("his:00000", ConsentStatus::Given, NOW - 100, "a"), // done: not on the list
        change("his:00001", ConsentStatus::NotAsked, NOW - 50, "a"), // touched recently
        change("his:00002", ConsentStatus::NotAsked, NOW - 90, "a"), // touched long ago
    ];
    history.push(change("his:00003", ConsentStatus::Refused, NOW - 10, "a")); // done
    let open: HashSet<PatientRef> =
        [PatientRef::new("his:00001").unwrap_or_else(|e| panic!("{e}"))].into();
    let list = worklist(&roster, &history, ConsentKind::LspSharing, &open);
    let refs: Vec<&str> = list.iter().map(|p| p.reference.as_str()).collect();
    // his:00004 was never changed: oldest of the rest.
    assert_eq!(refs, ["his:00001", "his:00004", "his:00002"]);
    let csv = worklist_csv(&list);
    assert!(
        csv.starts_with("reference,name,birth_date\r\nhis:00001,Patiënt 1,1950-01-01\r\n"),
        "{csv}"
    );
}

#[test]
fn csv_import_and_merge_without_duplicates() -> Result<()> {
    let csv = "reference,name,birth_date,enrolled\n\
               his:1,\"Jansen, P.\",1950-02-03,yes\n\
               bsn:123456782,Smit,1961-12-31,no\n";
    let imported = roster_from_csv(csv)?;
    assert_eq!(imported[0].name, "Jansen, P.");
    assert!(!imported[1].enrolled);

    let mut roster = Vec::new();
    let first = merge_roster(&mut roster, imported, true)?;
    assert_eq!(first.added.len(), 2);
    // A later full import: one changed, one new, one missing (left).
    let later = roster_from_csv(
        "reference,name,birth_date,enrolled\nhis:1,Jansen-de Vries,1950-02-03,yes\nhis:2,Bakker,1970-07-07,yes\n",
    )?;
    let second = merge_roster(&mut roster, later, true)?;
    assert_eq!(second.changed.len(), 1);
    assert_eq!(second.added.len(), 1);
    assert!(
        second.left.is_empty(),
        "bsn:123456782 was not enrolled anyway"
    );
    assert_eq!(roster.len(), 3);
    let third = merge_roster(
        &mut roster,
        roster_from_csv("reference,name,birth_date,enrolled\nhis:2,Bakker,1970-07-07,yes\n")?,
        true,
    )?;
    assert_eq!(third.left.len(), 1);
    assert_eq!(roster.iter().filter(|p| p.enrolled).count(), 1);
    Ok(())
}

#[test]
fn csv_as_dutch_exports_write_it() -> Result<()> {
    // A spreadsheet's export: a byte-order mark, `;` between fields, CRLF,
    // a name holding a `;`, a quote and a line break.
    let csv = "\u{feff}Reference;Name;Birth_date;Enrolled\r\n\
               his:1;\"Jansen; P. \"\"Piet\"\"\r\nde Vries\";1950-02-03;ja-nee-1\r\n";
    assert!(
        matches!(roster_from_csv(csv), Err(Error::Invalid { field: "enrolled", ref reason }) if reason.starts_with("line 2")),
        "the bad value is named with its line: {:?}",
        roster_from_csv(csv)
    );
    let csv = csv.replace("ja-nee-1", "1");
    let imported = roster_from_csv(&csv)?;
    assert_eq!(imported.len(), 1);
    assert_eq!(imported[0].name, "Jansen; P. \"Piet\"\r\nde Vries");
    assert!(imported[0].enrolled);
    // Comma-separated with a BOM and a blank line at the end works too.
    let comma = "\u{feff}reference,name,birth_date,enrolled\nhis:2,Smit,1961-12-31,no\n\n";
    assert_eq!(roster_from_csv(comma)?[0].reference.as_str(), "his:2");
    Ok(())
}

#[test]
fn the_worklist_csv_reads_back() -> Result<()> {
    let patients = roster_from_csv(
        "reference,name,birth_date,enrolled\nhis:1,\"Jansen, P.\",1950-02-03,yes\n",
    )?;
    let list: Vec<&RosterPatient> = patients.iter().collect();
    let csv = crate::consent::worklist_csv(&list);
    assert_eq!(
        csv,
        "reference,name,birth_date\r\nhis:1,\"Jansen, P.\",1950-02-03\r\n"
    );
    Ok(())
}

#[test]
fn a_malformed_import_changes_nothing() -> Result<()> {
    let mut roster =
        roster_from_csv("reference,name,birth_date,enrolled\nhis:1,A,1950-01-01,yes\n")?;
    let before = roster.clone();
    for bad in [
        "name,reference\n",
        "reference,name,birth_date,enrolled\nhis:2,B,1950-13-01,yes\n",
        "reference,name,birth_date,enrolled\nhis:2,B,1950-01-01,perhaps\n",
        "reference,name,birth_date,enrolled\nhis:2,\"B,1950-01-01,yes\n",
        "reference,name,birth_date,enrolled\nhis:2,B,1950-01-01\n",
    ] {
        assert!(
            matches!(roster_from_csv(bad), Err(Error::Invalid { .. })),
            "{bad:?}"
        );
    }
    let twice = vec![before[0].clone(), before[0].clone()];
    assert!(merge_roster(&mut roster, twice, true).is_err());
    assert_eq!(roster, before);
    assert!(roster_from_fhir_bundle("{\"resourceType\":\"Patient\"}").is_err());
    assert!(roster_from_fhir_bundle("not json").is_err());
    Ok(())
}

#[test]
fn fhir_bundle_import() -> Result<()> {
    let bundle = r#"{
      "resourceType": "Bundle", "type": "collection",
      "entry": [
        {"resource": {"resourceType": "Patient",
          "identifier": [{"system": "http://fhir.nl/fhir/NamingSystem/bsn", "value": "999911120"}],
          "name": [{"family": "Jansen", "given": ["Pieter", "Jan"]}],
          "birthDate": "1950-02-03", "active": true}},
        {"resource": {"resourceType": "Patient",
          "identifier": [{"system": "urn:oid:2.16.840.1.113883.2.4.6.3", "value": "999911132"}],
          "name": [{"text": "mw. Smit"}], "birthDate": "1961-12-31", "active": false}},
        {"resource": {"resourceType": "Patient",
          "identifier": [{"system": "https://his.example/patients", "value": "48213"}],
          "name": [{"family": "Bakker"}], "birthDate": "1970-07-07"}},
        {"resource": {"resourceType": "Practitioner", "id": "ignored"}}
      ]}"#;
    let roster = roster_from_fhir_bundle(bundle)?;
    let summary: Vec<(&str, &str, bool)> = roster
        .iter()
        .map(|p| (p.reference.as_str(), p.name.as_str(), p.enrolled))
        .collect();
    assert_eq!(
        summary,
        [
            ("bsn:999911120", "Pieter Jan Jansen", true),
            ("bsn:999911132", "mw. Smit", false),
            ("his:48213", "Bakker", true)
        ]
    );
    Ok(())
}
