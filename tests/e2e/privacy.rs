//! Receipts, the NEN 7513 audit trail, disappearing messages and the
//! patient's AVG rights, through the real server.

use std::time::Duration;

use pieper_core::{
    AuditQuery, ConsentKind, ConsentMethod, ConsentStatus, ConversationKind, Event, NewConsent,
    NewMessage, NewTask, PatientRef, RosterFormat,
    record::{Clinician, DocumentDraft, PractitionerId, SoepKind, SoepLine},
    tasks::Assignee,
};
use pieper_e2e::{
    Backend, BoxError, Server, TestClient, TestDatabase, TestResult, User, cli_login, create_user,
    current_step, escalations_meanwhile, eventually, pieper_ok, sign_in, totp_at, wait_for,
    with_fresh_totp,
};

/// A patient with a valid BSN (11-proof).
const BSN: &str = "999911120";

/// A roster with the two test patients (valid BSNs).
fn roster() -> String {
    format!(
        "reference,name,birth_date,enrolled\n\
         bsn:{BSN},Mw. E. Smit,1950-02-03,yes\n\
         bsn:999911132,Dhr. F. Visser,1962-04-05,yes\n"
    )
}

/// Opens the audit log to `client` with a fresh TOTP code.
pub(crate) async fn unlock(client: &TestClient, user: &User) -> Result<(), BoxError> {
    with_fresh_totp(user, |code| {
        let client = client.client.clone();
        async move {
            match client.privacy().unlock_audit(&code).await {
                Ok(_) => Ok(Some(())),
                Err(pieper_core::Error::Rejected { code, .. }) if code == "totp_reused" => Ok(None),
                Err(e) => Err(e.into()),
            }
        }
    })
    .await
}

/// Whether any file under `dir` holds `needle`.
fn files_contain(dir: &std::path::Path, needle: &[u8]) -> Result<bool, BoxError> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let found = if path.is_dir() {
            files_contain(&path, needle)?
        } else {
            std::fs::read(&path)?
                .windows(needle.len())
                .any(|w| w == needle)
        };
        if found {
            return Ok(true);
        }
    }
    Ok(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_show_who_read_and_a_read_stops_the_escalation() -> TestResult {
    let db = TestDatabase::new(Backend::Sqlite).await?;
    let a = create_user(&db, "linde", "jansen", "huisarts")?;
    let b = create_user(&db, "linde", "bakker", "assistent")?;
    let c = create_user(&db, "linde", "devries", "poh")?;
    let server = Server::start(&db, &["--urgent-escalation-secs", "1"])?;
    let sender = sign_in(&server, &a, "phone").await?;
    let reader = sign_in(&server, &b, "tablet").await?;
    let other = sign_in(&server, &c, "desktop").await?;
    let conversation = sender
        .conversations()
        .create(
            "Terugbelverzoek",
            ConversationKind::Group,
            None,
            &[b.id.clone(), c.id.clone()],
        )
        .await?;
    // The third member is live: it hears of escalations (the sender's
    // devices do not).
    let mut events = other.events();
    let _live = other.start_live();
    wait_for(&mut events, Duration::from_secs(10), |e| {
        matches!(e, Event::Connection(pieper_core::ConnectionState::Online)).then_some(())
    })
    .await?;
    let sent = sender
        .conversations()
        .send(&conversation.id, NewMessage::urgent("Bel mw. Smit terug"))
        .await?;
    // Both receive it; their delivered receipts go back end-to-end.
    reader.sync().await?;
    // Escalation runs while nobody has read it.
    let first = wait_for(&mut events, Duration::from_secs(10), |e| match e {
        Event::Escalated {
            id, escalations, ..
        } if *id == sent => Some(*escalations),
        _ => None,
    })
    .await?;
    assert!(first >= 1);
    other.sync().await?;

    reader
        .conversations()
        .mark_read(&conversation.id, &sent)
        .await?;
    reader.sync().await?;
    other.sync().await?;
    sender.sync().await?;
    let receipts = sender.privacy().receipts(&sent).await?;
    let by_user: Vec<(&str, bool, bool)> = receipts
        .iter()
        .map(|r| {
            (
                r.user.as_str(),
                r.delivered_at.is_some(),
                r.read_at.is_some(),
            )
        })
        .collect();
    let mut expected = vec![(b.id.as_str(), true, true), (c.id.as_str(), true, false)];
    expected.sort();
    assert_eq!(by_user, expected);
    // The other members see the same receipts (they travel in the group).
    other.sync().await?;
    assert_eq!(other.privacy().receipts(&sent).await?.len(), 2);

    // After the read no escalation follows: an urgent message sent after
    // it, and read by nobody, is escalated twice meanwhile (the server
    // escalates every second), the read one never again.
    while events.try_recv().is_ok() {}
    let marker = sender
        .conversations()
        .send(&conversation.id, NewMessage::urgent("Nog niemand gelezen"))
        .await?;
    let later = escalations_meanwhile(&mut events, &sent, &marker, 2).await?;
    assert!(later.is_empty(), "escalated after the read: {later:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_are_audited_under_a_pseudonym_the_server_cannot_reverse() -> TestResult {
    let db = TestDatabase::new(Backend::Sqlite).await?;
    let a = create_user(&db, "linde", "jansen", "huisarts")?;
    let b = create_user(&db, "linde", "devries", "poh")?;
    let m = create_user(&db, "linde", "mulder", "manager")?;
    let server = Server::start(&db, &[])?;
    let huisarts = sign_in(&server, &a, "phone").await?;
    let poh_phone = sign_in(&server, &b, "phone").await?;
    let poh_desktop = sign_in(&server, &b, "desktop").await?;
    let manager = sign_in(&server, &m, "desktop").await?;
    // The practice group carries the pseudonym key (and the roster) to
    // every device.
    huisarts
        .consent()
        .import_roster(roster(), RosterFormat::Csv, true)
        .await?;
    assert!(huisarts.consent().sync_practice().await?);
    for device in [&poh_phone, &poh_desktop, &manager, &huisarts] {
        device.sync().await?;
    }
    let patient = PatientRef::new(&format!("bsn:{BSN}"))?;
    let key_of = |c: &TestClient| c.privacy().pseudonym(&patient);
    let pseudonym = key_of(&huisarts)?.ok_or("no practice key")?;
    for device in [&poh_phone, &poh_desktop, &manager] {
        assert_eq!(key_of(device)?.as_deref(), Some(pseudonym.as_str()));
    }

    let conversation = huisarts
        .conversations()
        .create(
            "Controle INR",
            ConversationKind::Group,
            Some(patient.clone()),
            std::slice::from_ref(&b.id),
        )
        .await?;
    let sent = huisarts
        .conversations()
        .send(
            &conversation.id,
            NewMessage::text("INR 3,2: dosering gelijk"),
        )
        .await?;
    for device in [&poh_phone, &poh_desktop] {
        device.sync().await?;
        device
            .conversations()
            .mark_read(&conversation.id, &sent)
            .await?;
        device.sync().await?;
    }
    // Documenting (here by hand) is an access too.
    huisarts
        .record()
        .document_by_hand(
            &conversation.id,
            DocumentDraft {
                title: "Antistolling".into(),
                lines: vec![SoepLine {
                    kind: SoepKind::P,
                    text: "Dosering gelijk.".into(),
                    icpc: None,
                }],
                messages: vec![sent.clone()],
                author: Clinician {
                    name: "H.A. Jansen".into(),
                    ids: vec![PractitionerId::Agb("01999999".into())],
                },
                patient_visible_confirmed: true,
            },
        )
        .await?;
    huisarts.sync().await?;

    unlock(&manager, &m).await?;
    let log = manager
        .privacy()
        .audit_log(&AuditQuery {
            patient: Some(patient.clone()),
            ..AuditQuery::default()
        })
        .await?;
    let reads: Vec<&str> = log
        .iter()
        .filter(|e| e.event.action == "message.read")
        .filter_map(|e| e.event.device_id.as_deref())
        .collect();
    let mut expected = vec![
        poh_phone.id().device.as_str(),
        poh_desktop.id().device.as_str(),
    ];
    expected.sort();
    let mut reads = reads;
    reads.sort();
    assert_eq!(reads, expected);
    let send = log
        .iter()
        .find(|e| e.event.action == "message.send")
        .ok_or("no send event")?;
    let documented = log
        .iter()
        .find(|e| e.event.action == "record.document")
        .ok_or("no documentation event")?;
    assert_eq!(
        documented.event.device_id.as_deref(),
        Some(huisarts.id().device.as_str())
    );
    assert_eq!(send.event.user_id.as_deref(), Some(a.id.as_str()));
    assert_eq!(send.event.role.as_deref(), Some("huisarts"));
    assert!(log.iter().all(|e| e.patient.as_ref() == Some(&patient)));
    assert!(
        log.iter()
            .all(|e| e.event.patient.as_deref() == Some(pseudonym.as_str()))
    );

    // For a breach: which patients the POH's phone accessed.
    let breach = manager
        .privacy()
        .breach_report(Some(&poh_phone.id().device), None, 0, i64::MAX)
        .await?;
    assert_eq!(breach.len(), 1);
    assert_eq!(breach[0].patient.as_ref(), Some(&patient));

    // CSV and FHIR AuditEvent exports; the FHIR one validates.
    let (csv, fhir) = manager
        .privacy()
        .export_audit(&AuditQuery {
            patient: Some(patient.clone()),
            ..AuditQuery::default()
        })
        .await?;
    assert!(csv.starts_with("id,recorded,occurred,practice,user,role,on_behalf_of,device,action"));
    assert!(csv.contains(&format!("bsn:{BSN}")));
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("audit.json");
    std::fs::write(&file, &fhir)?;
    let (_, report) = crate::validator::validate("none", &[&file]).map_err(|e| e.to_string())?;
    let errors = crate::validator::errors(&report, &file);
    assert!(errors.is_empty(), "{errors:#?}\n{fhir}");

    // The server's database and logs never hold the patient in the clear.
    let server_text = db.dump_server_text()?;
    assert!(server_text.contains(&pseudonym));
    assert!(!server_text.contains(BSN), "the BSN is on the server");
    db.admin(&["audit-verify"])?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disappearing_message_goes_everywhere_also_from_a_device_that_was_off() -> TestResult {
    let db = TestDatabase::new(Backend::Sqlite).await?;
    let a = create_user(&db, "linde", "jansen", "huisarts")?;
    let b = create_user(&db, "linde", "devries", "poh")?;
    let c = create_user(&db, "linde", "bakker", "assistent")?;
    let server = Server::start(&db, &["--collect-interval-secs", "1"])?;
    let sender = sign_in(&server, &a, "phone").await?;
    let online = sign_in(&server, &b, "desktop").await?;
    let offline = sign_in(&server, &c, "tablet").await?;
    let conversation = sender
        .conversations()
        .create(
            "Uitslag",
            ConversationKind::Group,
            None,
            &[b.id.clone(), c.id.clone()],
        )
        .await?;
    let _live = [sender.start_live(), online.start_live()];

    let ttl = 10;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let attachment = sender
        .conversations()
        .attach(
            &conversation.id,
            "uitslag.txt",
            "text/plain",
            b"kaliumwaarde vluchtig".to_vec(),
            Some(now_ms + ttl * 1000),
        )
        .await?;
    let mut message = NewMessage::text("vluchtigbericht kalium 5,9").disappearing(ttl as u64);
    message.attachments = vec![attachment.clone()];
    let sent = sender
        .conversations()
        .send(&conversation.id, message)
        .await?;
    let shown = sender.conversations().message(&sent)?;
    assert!(
        shown
            .expires_at
            .is_some_and(|at| at <= now_ms + ttl * 1000 + 1000)
    );

    offline.sync().await?;
    assert_eq!(
        offline.conversations().message(&sent)?.body,
        "vluchtigbericht kalium 5,9"
    );
    eventually(Duration::from_secs(10), || async {
        Ok(online.conversations().message(&sent).is_ok())
    })
    .await?;
    assert_eq!(
        online.conversations().open_attachment(&attachment).await?,
        b"kaliumwaarde vluchtig"
    );
    let attachment_file = online
        .dir
        .path()
        .join("attachments")
        .join(&attachment.blob_id);
    assert!(attachment_file.exists());
    // The tablet goes off before the message expires.
    let offline_dir = offline.dir.path().to_owned();
    let offline = {
        let TestClient { client, dir, user } = offline;
        drop(client);
        (dir, user)
    };

    // Gone from both online devices, their search index and attachment files.
    for device in [&sender, &online] {
        eventually(Duration::from_secs(25), || async {
            Ok(device.conversations().message(&sent)?.expired)
        })
        .await?;
        let marker = device.conversations().message(&sent)?;
        assert_eq!((marker.body.as_str(), marker.attachments.len()), ("", 0));
        assert_eq!(marker.sender.user, a.id, "the marker keeps who sent it");
        assert!(
            device
                .conversations()
                .search("vluchtigbericht", 10)?
                .is_empty()
        );
    }
    assert!(!attachment_file.exists(), "the attachment file stayed");
    assert!(
        !sender
            .dir
            .path()
            .join("attachments")
            .join(&attachment.blob_id)
            .exists()
    );
    // Gone from the server: the envelope (its id is nowhere in the
    // server's files any more) and the blob (it cannot be fetched).
    eventually(Duration::from_secs(15), || async {
        Ok(!db.dump_server_text()?.contains(&sent))
    })
    .await
    .map_err(|e| format!("the server kept the envelope: {e}"))?;
    match online.conversations().open_attachment(&attachment).await {
        Err(pieper_core::Error::Rejected { code, .. }) if code == "not_found" => {}
        other => return Err(format!("the blob is still served: {other:?}").into()),
    }

    // The device that was off purges it when it starts, before anything shows.
    let (dir, user) = offline;
    let keystore = pieper_e2e::keystore_in(dir.path())?;
    let reopened = pieper_core::Client::open(&offline_dir, keystore).await?;
    let marker = reopened.conversations().message(&sent)?;
    assert!(marker.expired && marker.body.is_empty());
    assert!(
        reopened
            .conversations()
            .search("vluchtigbericht", 10)?
            .is_empty()
    );
    let report = reopened.privacy().housekeeping().await?;
    assert_eq!(report.expired_total, 1);
    drop((reopened, dir, user));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inzage_exports_one_patient_and_erasure_removes_them_everywhere() -> TestResult {
    let db = TestDatabase::new(Backend::Sqlite).await?;
    let a = create_user(&db, "linde", "jansen", "huisarts")?;
    let b = create_user(&db, "linde", "devries", "poh")?;
    let server = Server::start(&db, &[])?;
    let huisarts = sign_in(&server, &a, "desktop").await?;
    let poh = sign_in(&server, &b, "phone").await?;
    huisarts
        .consent()
        .import_roster(roster(), RosterFormat::Csv, true)
        .await?;
    assert!(huisarts.consent().sync_practice().await?);
    poh.sync().await?;
    huisarts.sync().await?;

    let patient = PatientRef::new(&format!("bsn:{BSN}"))?;
    let other = PatientRef::new("bsn:999911132")?;
    for p in [&patient, &other] {
        huisarts
            .consent()
            .record(NewConsent {
                patient: p.clone(),
                kind: ConsentKind::LspSharing,
                status: ConsentStatus::Given,
                method: ConsentMethod::InPerson,
                note: None,
                obtained_at: None,
            })
            .await?;
    }
    let about = huisarts
        .conversations()
        .create(
            "Wondcontrole",
            ConversationKind::Group,
            Some(patient.clone()),
            std::slice::from_ref(&b.id),
        )
        .await?;
    let elsewhere = huisarts
        .conversations()
        .create(
            "Griepprik",
            ConversationKind::Group,
            Some(other.clone()),
            std::slice::from_ref(&b.id),
        )
        .await?;
    let photo = huisarts
        .conversations()
        .attach(
            &about.id,
            "wond.txt",
            "text/plain",
            b"wondfoto-merkteken".to_vec(),
            None,
        )
        .await?;
    let mut first = NewMessage::text("wondmerkteken: roodheid rond de hechting");
    first.attachments = vec![photo];
    huisarts.conversations().send(&about.id, first).await?;
    huisarts
        .tasks()
        .create(
            &about.id,
            NewTask {
                what: "wondmerkteken controle over een week".into(),
                assignee: Assignee::Role("poh".into()),
                due: None,
                from_message: None,
                follow_up: None,
            },
        )
        .await?;
    huisarts
        .conversations()
        .send(
            &elsewhere.id,
            NewMessage::text("andermerkteken: griepprik gegeven"),
        )
        .await?;
    poh.sync().await?;
    poh.conversations()
        .send(
            &about.id,
            NewMessage::text("wondmerkteken: gezien, ziet er rustig uit"),
        )
        .await?;
    huisarts.sync().await?;

    // Inzage: exactly this patient's data, as PDF and FHIR.
    unlock(&huisarts, &a).await?;
    let export = huisarts.privacy().export_patient(&patient).await?;
    assert_eq!(
        (
            export.conversations,
            export.messages,
            export.attachments,
            export.tasks,
            export.consent_changes
        ),
        (1, 2, 1, 1, 1)
    );
    assert!(export.access_events > 0);
    assert!(export.fhir_bundle.contains("wondmerkteken"));
    assert!(!export.fhir_bundle.contains("andermerkteken"));
    assert!(!export.fhir_bundle.contains("999911132"));
    assert!(export.pdf.starts_with(b"%PDF-"));
    let pdf_text = String::from_utf8_lossy(&export.pdf);
    assert!(pdf_text.contains("wondmerkteken") && !pdf_text.contains("andermerkteken"));
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("inzage.json");
    std::fs::write(&file, &export.fhir_bundle)?;
    let (_, report) = crate::validator::validate("none", &[&file]).map_err(|e| e.to_string())?;
    let errors = crate::validator::errors(&report, &file);
    assert!(errors.is_empty(), "{errors:#?}");

    // Erasure: gone from both devices and the server; kept things named.
    let erased = huisarts.privacy().erase_patient(&patient).await?;
    assert_eq!(
        (erased.conversations, erased.messages, erased.tasks),
        (1, 2, 1)
    );
    assert!(erased.kept.iter().any(|k| k.what.contains("HIS")));
    assert!(erased.his_task.is_some());
    poh.sync().await?;
    for device in [&huisarts, &poh] {
        assert!(
            device
                .conversations()
                .search("wondmerkteken", 10)?
                .is_empty()
        );
        assert!(device.conversations().messages(&about.id, 100)?.is_empty());
        assert_eq!(
            device.conversations().messages(&elsewhere.id, 100)?.len(),
            1
        );
        let files = std::fs::read_dir(device.dir.path().join("attachments"))
            .map(|d| d.count())
            .unwrap_or(0);
        assert_eq!(files, 0, "attachment files stayed");
        let task = device
            .tasks()
            .of_conversation(&device.consent().practice_group_id()?)?
            .into_iter()
            .find(|t| t.what.contains("AVG-verzoek"));
        assert!(task.is_some(), "no task for the huisarts");
    }
    let server_text = db.dump_server_text()?;
    assert!(!server_text.contains("wondmerkteken") && !server_text.contains(BSN));
    // Every file of both devices (the store is encrypted, so this alone
    // proves little: the queries above are the proof that it is gone).
    for device in [&huisarts, &poh] {
        assert!(!files_contain(device.dir.path(), b"wondmerkteken")?);
    }
    let log = huisarts
        .privacy()
        .audit_log(&AuditQuery {
            patient: Some(patient.clone()),
            ..AuditQuery::default()
        })
        .await?;
    // One erasure, one record: the server's and the device's report are
    // the same event.
    let erasures: Vec<_> = log
        .iter()
        .filter(|e| e.event.action == "patient.erase")
        .collect();
    assert_eq!(erasures.len(), 1, "{erasures:?}");
    assert!(
        erasures[0]
            .event
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("server copy erased")),
        "{erasures:?}"
    );
    assert!(log.iter().any(|e| e.event.action == "patient.export"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_shows_receipts_exports_and_erases() -> TestResult {
    let db = TestDatabase::new(Backend::Sqlite).await?;
    let a = create_user(&db, "linde", "jansen", "huisarts")?;
    let b = create_user(&db, "linde", "devries", "poh")?;
    let server = Server::start(&db, &[])?;
    let poh = sign_in(&server, &b, "phone").await?;
    let dir = tempfile::tempdir()?;
    // The login takes this step's code; the audit the next step's.
    let step = current_step();
    let login = totp_at(&a, step)?;
    cli_login(dir.path(), &server, &a, &login, "desktop")?;
    let roster_file = dir.path().join("roster.csv");
    std::fs::write(&roster_file, roster())?;
    pieper_ok(
        dir.path(),
        &[
            "consent",
            "import-roster",
            roster_file.to_str().ok_or("path")?,
        ],
    )?;
    let patient = format!("bsn:{BSN}");
    let conv = pieper_ok(
        dir.path(),
        &[
            "create",
            "--title",
            "Wond",
            "--patient",
            &patient,
            "--with",
            "devries",
        ],
    )?
    .trim()
    .to_owned();
    let sent = pieper_ok(dir.path(), &["send", &conv, "cliwondmerk: controle"])?;
    let sent = sent.split('\t').next().ok_or("no id")?.to_owned();
    poh.sync().await?;
    poh.conversations().mark_read(&conv, &sent).await?;
    poh.sync().await?;
    let receipts = pieper_ok(dir.path(), &["privacy", "receipts", &sent])?;
    assert!(
        receipts.contains(&b.id) && receipts.contains("read=1"),
        "{receipts}"
    );

    let (pdf, fhir) = (
        dir.path().join("inzage.pdf"),
        dir.path().join("inzage.json"),
    );
    let next = totp_at(&a, step + 1)?;
    let out = pieper_ok(
        dir.path(),
        &[
            "privacy",
            "inzage",
            "--totp",
            &next,
            "--patient",
            &patient,
            "--pdf",
            pdf.to_str().ok_or("path")?,
            "--fhir",
            fhir.to_str().ok_or("path")?,
        ],
    )?;
    assert!(out.contains("1 conversations, 1 messages"), "{out}");
    assert!(std::fs::read(&pdf)?.starts_with(b"%PDF-"));
    assert!(std::fs::read_to_string(&fhir)?.contains("cliwondmerk"));

    let out = pieper_ok(dir.path(), &["privacy", "erase", "--patient", &patient])?;
    assert!(out.contains("erased: 1 conversations, 1 messages"), "{out}");
    assert!(out.contains("kept:") && out.contains("WGBO"), "{out}");
    poh.sync().await?;
    assert!(poh.conversations().search("cliwondmerk", 10)?.is_empty());
    let housekeeping = pieper_ok(dir.path(), &["privacy", "housekeeping"])?;
    assert!(
        housekeeping.contains("1 erased on request"),
        "{housekeeping}"
    );
    Ok(())
}
