//! Patient consent shared between the practice's devices through the real
//! server, end-to-end encrypted in the practice group.

use pieper_core::{
    ConsentKind, ConsentMethod, ConsentStatus, ConversationKind, Error, NewConsent, PatientRef,
    RosterFormat,
};
use pieper_e2e::{Backend, Server, TestDatabase, TestResult, create_user, sign_in};

const ROSTER: &str = "reference,name,birth_date,enrolled\n\
                      his:1001,Mw. A. de Vries,1948-03-02,yes\n\
                      his:1002,Dhr. B. Jansen,1961-11-20,yes\n\
                      his:1003,Mw. C. Bakker,1990-07-14,yes\n\
                      his:1004,Dhr. D. Smit,2001-01-09,yes\n";

fn consent(patient: &PatientRef, status: ConsentStatus) -> NewConsent {
    NewConsent {
        patient: patient.clone(),
        kind: ConsentKind::LspSharing,
        status,
        method: ConsentMethod::InPerson,
        note: None,
        obtained_at: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consent_travels_encrypted_and_concurrent_edits_converge() -> TestResult {
    let db = TestDatabase::new(Backend::Sqlite).await?;
    let assistent = create_user(&db, "linde", "bakker", "assistent")?;
    let huisarts = create_user(&db, "linde", "jansen", "huisarts")?;
    let server = Server::start(&db, &[])?;
    let balie = sign_in(&server, &assistent, "balie-tablet").await?;
    let phone = sign_in(&server, &huisarts, "phone").await?;

    // The front desk imports the roster; it makes the practice group and
    // adds every staff device.
    let imported = balie
        .consent()
        .import_roster(ROSTER.into(), RosterFormat::Csv, true)
        .await?;
    assert_eq!(imported.added.len(), 4);
    assert!(balie.consent().in_practice_group()?);
    // The practice group is no chat: it is not listed with the conversations
    // (the spoed channel, made with it, is).
    let listed: Vec<ConversationKind> = balie
        .conversations()
        .list()?
        .iter()
        .map(|c| c.kind)
        .collect();
    assert_eq!(listed, [ConversationKind::Spoed]);

    // The phone was added and reads the roster from the group.
    phone.sync().await?;
    assert!(phone.consent().in_practice_group()?);
    assert_eq!(phone.consent().roster()?.len(), 4);

    let p1 = PatientRef::new("his:1001")?;
    let p2 = PatientRef::new("his:1002")?;
    balie
        .consent()
        .record(consent(&p2, ConsentStatus::Given))
        .await?;
    // Both devices record for the same patient at once.
    let (at_balie, at_phone) = (balie.consent(), phone.consent());
    let (given, refused) = tokio::join!(
        at_balie.record(consent(&p1, ConsentStatus::Given)),
        at_phone.record(consent(&p1, ConsentStatus::Refused)),
    );
    let (given, refused) = (given?, refused?);
    for _ in 0..2 {
        balie.sync().await?;
        phone.sync().await?;
    }
    let on_balie = balie.consent().history(Some(&p1))?;
    let on_phone = phone.consent().history(Some(&p1))?;
    assert_eq!(on_balie, on_phone, "both devices fold the same log");
    let ids: Vec<&str> = on_balie.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids.len(), 2, "both changes stay in the history");
    assert!(ids.contains(&given.id.as_str()) && ids.contains(&refused.id.as_str()));
    let state = balie.consent().of_patient(&p1)?.lsp_sharing;
    assert_eq!(state, phone.consent().of_patient(&p1)?.lsp_sharing);
    assert_eq!(state, on_balie[1].status, "the last in server order wins");
    assert_eq!(on_balie[0].recorded_by, {
        if on_balie[0].id == given.id {
            assistent.id.clone()
        } else {
            huisarts.id.clone()
        }
    });

    // Figures agree on both devices: 4 enrolled, p2 given, p1 either way.
    let figures = phone.consent().figures(ConsentKind::LspSharing)?;
    assert_eq!(figures, balie.consent().figures(ConsentKind::LspSharing)?);
    assert_eq!(figures.enrolled, 4);
    assert_eq!(figures.given + figures.refused, 2);

    // A conversation about a patient shows their consent; sharing outside
    // the practice needs it given.
    let p3 = PatientRef::new("his:1003")?;
    let about = phone
        .conversations()
        .create("Mw. Bakker", ConversationKind::Group, Some(p3.clone()), &[])
        .await?;
    let shown = phone.consent().of_conversation(&about.id)?;
    assert_eq!(shown.map(|c| c.lsp_sharing), Some(ConsentStatus::NotAsked));
    assert!(matches!(
        phone.consent().require_lsp(&p3),
        Err(Error::ConsentRequired {
            kind: ConsentKind::LspSharing
        })
    ));
    phone.consent().require_lsp(&p2)?;

    // The worklist puts the patient with an open conversation first.
    let worklist = phone.consent().worklist(ConsentKind::LspSharing)?;
    let refs: Vec<&str> = worklist.iter().map(|p| p.reference.as_str()).collect();
    assert_eq!(refs, ["his:1003", "his:1004"]);

    // Withdrawal travels too.
    phone
        .consent()
        .withdraw(
            p2.clone(),
            ConsentKind::LspSharing,
            ConsentMethod::PaperForm,
            None,
        )
        .await?;
    balie.sync().await?;
    let p2_history = balie.consent().history(Some(&p2))?;
    assert_eq!(p2_history.len(), 2);
    assert!(p2_history[1].withdrawal);
    assert!(matches!(
        balie.consent().require_lsp(&p2),
        Err(Error::ConsentRequired { .. })
    ));

    // The server holds ciphertext only: no name, reference or consent word.
    let stored = db.dump_server_text()?;
    for secret in ["de Vries", "his:1001", "Bakker", "lsp_sharing", "given"] {
        assert!(!stored.contains(secret), "{secret:?} reached the server");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_that_joins_later_gets_the_practice_history() -> TestResult {
    let db = TestDatabase::new(Backend::Sqlite).await?;
    let assistent = create_user(&db, "linde", "bakker", "assistent")?;
    let poh = create_user(&db, "linde", "devries", "poh")?;
    let server = Server::start(&db, &[])?;
    let balie = sign_in(&server, &assistent, "balie-tablet").await?;
    balie
        .consent()
        .import_roster(ROSTER.into(), RosterFormat::Csv, true)
        .await?;
    let p4 = PatientRef::new("his:1004")?;
    balie
        .consent()
        .record(consent(&p4, ConsentStatus::Given))
        .await?;
    balie
        .consent()
        .record(consent(&p4, ConsentStatus::Refused))
        .await?;

    // A device enrols later: not in the group yet, it cannot make a second
    // one (the server has the practice's), and waits to be added.
    let laptop = sign_in(&server, &poh, "laptop").await?;
    assert!(!laptop.consent().sync_practice().await?);
    assert!(!laptop.consent().in_practice_group()?);
    // It may record offline from the group: its change waits.
    assert!(
        matches!(
            laptop
                .device()
                .record_consent(consent(&p4, ConsentStatus::Given)),
            Err(Error::NotFound { .. })
        ),
        "its roster is empty until it joins"
    );

    // A member's check adds it and sends what it missed.
    assert!(balie.consent().sync_practice().await?);
    laptop.sync().await?;
    assert!(laptop.consent().in_practice_group()?);
    assert_eq!(laptop.consent().roster()?, balie.consent().roster()?);
    assert_eq!(
        laptop.consent().history(None)?,
        balie.consent().history(None)?
    );
    assert_eq!(
        laptop.consent().of_patient(&p4)?.lsp_sharing,
        ConsentStatus::Refused
    );
    Ok(())
}
