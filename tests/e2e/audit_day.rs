//! A practice day as the test of the NEN 7513 trail: a huisarts, a POH (on
//! the CLI), an assistent working for the huisarts, the manager and the
//! HIS connector do every patient-linked action once or more; the test
//! keeps its own list of what happened and holds the practice's log, as
//! the manager's device exports it, to it: nothing missing, nothing
//! doubled, nothing invented, every field present.

use std::collections::BTreeMap;

use axum::{Json, Router, routing::post};
use pieper_core::{
    AccessAction, Assignee, AuditQuery, ConsentKind, ConsentMethod, ConsentStatus,
    ConversationKind, HisEndpoint, NewConsent, NewMessage, NewTask, PatientRef, RosterFormat,
    spoed::Triage,
};
use pieper_e2e::{
    Backend, BoxError, Server, TestDatabase, TestResult, cli_login, create_user, current_step,
    pieper_ok, sign_in, totp_at,
};
use serde_json::{Value, json};

use crate::{privacy::unlock, validator};

const ROSTER: &str = "reference,name,birth_date,enrolled\n\
                      his:3001,Mw. G. de Wit,1947-05-06,yes\n\
                      his:3002,Dhr. H. Mulder,1958-09-10,yes\n\
                      his:3003,Mw. I. Peters,1983-12-01,yes\n";

/// A HIS that takes every transaction Bundle (its real wire format: a
/// FHIR transaction answered with a transaction-response).
async fn start_his() -> Result<String, BoxError> {
    let app = Router::new().route(
        "/fhir",
        post(|Json(bundle): Json<Value>| async move {
            let entries = bundle["entry"].as_array().map_or(0, Vec::len);
            Json(json!({
                "resourceType": "Bundle",
                "type": "transaction-response",
                "entry": (0..entries).map(|_| json!({ "response": { "status": "201 Created" } })).collect::<Vec<_>>(),
            }))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}/fhir", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(base)
}

/// What the test saw happen: who did what, about whom (the reference).
type Did = (String, &'static str, Option<String>);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_practice_day_is_in_the_log_once_each_with_every_field() -> TestResult {
    let db = TestDatabase::new(Backend::Sqlite).await?;
    let arts = create_user(&db, "linde", "jansen", "huisarts")?;
    let poh = create_user(&db, "linde", "devries", "poh")?;
    let balie = create_user(&db, "linde", "bakker", "assistent")?;
    let beheer = create_user(&db, "linde", "mulder", "manager")?;
    let his_user = create_user(&db, "linde", "his", "connector")?;
    let server = Server::start(&db, &[])?;
    let huisarts = sign_in(&server, &arts, "phone").await?;
    let assistent = sign_in(&server, &balie, "balie").await?;
    let manager = sign_in(&server, &beheer, "desktop").await?;
    let connector = sign_in(&server, &his_user, "his-connector").await?;
    let poh_dir = tempfile::tempdir()?;
    cli_login(
        poh_dir.path(),
        &server,
        &poh,
        &totp_at(&poh, current_step())?,
        "desktop",
    )?;
    let cli = |args: &[&str]| pieper_ok(poh_dir.path(), args);
    let his = HisEndpoint::new(&start_his().await?)?;
    let [p1, p2, p3] = ["his:3001", "his:3002", "his:3003"].map(PatientRef::new);
    let (p1, p2, p3) = (p1?, p2?, p3?);
    let mut did: Vec<Did> = Vec::new();
    let mut note = |user: &str, action: &'static str, patient: Option<&PatientRef>| {
        did.push((
            user.to_owned(),
            action,
            patient.map(|p| p.as_str().to_owned()),
        ));
    };

    // The assistent works for the huisarts.
    manager
        .accounts()
        .set_on_behalf_of(&balie.id, Some(&arts.id))
        .await?;

    // Morning: the roster comes in, everyone's devices get the practice
    // group (and with it the pseudonym key).
    assistent
        .consent()
        .import_roster(ROSTER.into(), RosterFormat::Csv, true)
        .await?;
    for p in [&p1, &p2, &p3] {
        note(&balie.id, "roster.import", Some(p));
    }
    assert!(assistent.consent().sync_practice().await?);
    for device in [&huisarts, &manager, &connector] {
        device.sync().await?;
    }
    cli(&["sync"])?;
    assert_eq!(assistent.consent().roster()?.len(), 3);
    note(&balie.id, "roster.view", None);
    assistent
        .consent()
        .record(NewConsent {
            patient: p1.clone(),
            kind: ConsentKind::LspSharing,
            status: ConsentStatus::Given,
            method: ConsentMethod::InPerson,
            note: None,
            obtained_at: None,
        })
        .await?;
    note(&balie.id, "consent.record", Some(&p1));

    // The huisarts checks consent and asks the POH about the patient.
    huisarts.sync().await?;
    huisarts.consent().of_patient(&p1)?;
    note(&arts.id, "consent.view", Some(&p1));
    let conversation = huisarts
        .conversations()
        .create(
            "Controle INR",
            ConversationKind::Group,
            Some(p1.clone()),
            &[poh.id.clone(), balie.id.clone()],
        )
        .await?
        .id;
    let sent = huisarts
        .conversations()
        .send(&conversation, NewMessage::text("INR 3,2: dosering gelijk?"))
        .await?;
    note(&arts.id, "message.send", Some(&p1));
    // On the assistent's phone it arrives as a push: the preview on the
    // screen is an access.
    let push = std::collections::HashMap::from([
        ("conversation".to_owned(), conversation.clone()),
        ("message".to_owned(), sent.clone()),
    ]);
    let shown = assistent
        .push()
        .notification(&push, std::time::Duration::from_secs(10))
        .await?;
    assert!(
        shown.decrypted && shown.preview.contains("INR"),
        "{shown:?}"
    );
    note(&balie.id, "conversation.open", Some(&p1));
    let lab = b"%PDF-1.4 INR 3,2".to_vec();
    let with_file = huisarts
        .conversations()
        .send_with_attachment(
            &conversation,
            NewMessage::text("De uitslag"),
            "inr.pdf",
            "application/pdf",
            lab.clone(),
        )
        .await?;
    note(&arts.id, "attachment.upload", Some(&p1));
    note(&arts.id, "message.send", Some(&p1));

    // The assistent opens the file twice: fetched once, opened twice.
    assistent.sync().await?;
    for _ in 0..2 {
        let file = assistent
            .conversations()
            .attachment_of(&with_file, 0)
            .await?;
        assert_eq!(file, lab);
        note(&balie.id, "attachment.open", Some(&p1));
    }

    // The POH, on the CLI: opens it (consent shown, messages shown and
    // read), opens it again, searches, writes a work note.
    let opened = cli(&["open", &conversation])?;
    assert!(opened.contains("INR 3,2"), "{opened}");
    for action in ["consent.view", "conversation.open", "message.read"] {
        note(&poh.id, action, Some(&p1));
    }
    cli(&["open", &conversation])?;
    for action in ["consent.view", "conversation.open"] {
        note(&poh.id, action, Some(&p1));
    }
    assert!(cli(&["search", "INR"])?.contains(&conversation));
    note(&poh.id, "message.search", Some(&p1));
    cli(&[
        "send",
        &conversation,
        "Bel patiënt morgen",
        "--kind",
        "werkaantekening",
    ])?;
    note(&poh.id, "note.write", Some(&p1));

    // A U2 message goes to the conversation and, as a post, to the spoed
    // channel: two groups of people see it, two sends about the patient.
    huisarts
        .conversations()
        .send(
            &conversation,
            NewMessage::triaged("Pijn op de borst, graag bellen", Triage::parse("U2")?),
        )
        .await?;
    note(&arts.id, "message.send", Some(&p1));
    note(&arts.id, "message.send", Some(&p1));
    // The manager is in the spoed channel, not in the conversation: the
    // post she sees is an access to the same patient.
    manager.sync().await?;
    let channel = manager.spoed().channel_id()?;
    let posts = manager.conversations().messages(&channel, 20)?;
    assert!(posts.iter().any(|m| m.body.contains("Pijn op de borst")));
    note(&beheer.id, "conversation.open", Some(&p1));

    // A task for the assistent, taken on and done.
    let task = huisarts
        .tasks()
        .create(
            &conversation,
            NewTask {
                what: "Nieuwe INR-afspraak maken".into(),
                assignee: Assignee::Role("assistent".into()),
                due: None,
                from_message: Some(sent.clone()),
                follow_up: None,
            },
        )
        .await?;
    note(&arts.id, "task.change", Some(&p1));
    assistent.sync().await?;
    let open_tasks = assistent.tasks().my_open()?;
    assert_eq!(open_tasks.len(), 1);
    note(&balie.id, "task.view", Some(&p1));
    // Her opening screen shows the task and the unread U2 message (and its
    // spoed post): one record for the task list, one for the messages.
    let dashboard = assistent.dashboard()?;
    assert_eq!(dashboard.tasks.len(), 1);
    assert!(!dashboard.urgent.is_empty() || !dashboard.spoed.is_empty());
    note(&balie.id, "task.view", Some(&p1));
    note(&balie.id, "conversation.open", Some(&p1));
    assistent.tasks().accept(&task.id).await?;
    assistent.tasks().complete(&task.id).await?;
    note(&balie.id, "task.change", Some(&p1));
    note(&balie.id, "task.change", Some(&p1));

    // Documented into the HIS by the connector.
    huisarts
        .record()
        .document(
            &conversation,
            crate::record::draft("Antistolling", "INR 3,2.", vec![sent.clone()]),
        )
        .await?;
    note(&arts.id, "record.document", Some(&p1));
    let delivered = connector.record().deliver(&his).await?;
    assert_eq!(delivered.documented, 1, "{delivered:?}");
    note(&his_user.id, "record.deliver", Some(&p1));

    // Afternoon: the manager handles an inzage and her own export; the
    // huisarts an erasure request.
    unlock(&manager, &beheer).await?;
    manager.privacy().export_patient(&p2).await?;
    note(&beheer.id, "patient.export", Some(&p2));
    manager
        .privacy()
        .export_audit(&AuditQuery {
            patient: Some(p2.clone()),
            ..AuditQuery::default()
        })
        .await?;
    note(&beheer.id, "audit.export", Some(&p2));
    manager.privacy().export_my_account().await?;
    note(&beheer.id, "account.export", None);
    huisarts.privacy().erase_patient(&p3).await?;
    note(&arts.id, "patient.erase", Some(&p3));

    // Evening: every device reports what waited.
    for device in [&huisarts, &assistent, &connector, &manager] {
        device.sync().await?;
    }
    cli(&["sync"])?;

    // Every action on the one list happened today: a new feature's action
    // must join the day.
    for action in AccessAction::ALL {
        assert!(
            did.iter().any(|(_, a, _)| *a == action.as_str()),
            "{} is not part of the practice day",
            action.as_str()
        );
    }

    unlock(&manager, &beheer).await?;
    let log = manager.privacy().audit_log(&AuditQuery::default()).await?;
    // Patient accesses: every device-reported action, a person's message,
    // and whatever else names a patient — but for the server's delivery of
    // ciphertext to a device (`message.fetch`, `attachment.fetch`), which
    // is no reading: the device logs the reading.
    let accesses: Vec<_> = log
        .iter()
        .filter(|e| {
            let action = e.event.action.as_str();
            AccessAction::ALL.iter().any(|a| a.as_str() == action)
                || action == "message.send"
                || (e.event.patient.is_some()
                    && !matches!(action, "message.fetch" | "attachment.fetch"))
        })
        .collect();
    let count = |list: Vec<Did>| {
        let mut counts: BTreeMap<Did, usize> = BTreeMap::new();
        for d in list {
            *counts.entry(d).or_default() += 1;
        }
        counts
    };
    let logged: Vec<Did> = accesses
        .iter()
        .map(|e| {
            let action = AccessAction::ALL
                .iter()
                .map(|a| a.as_str())
                .chain(["message.send", "attachment.upload"])
                .find(|a| *a == e.event.action)
                .unwrap_or("invented");
            (
                e.event.user_id.clone().unwrap_or_default(),
                action,
                e.patient.as_ref().map(|p| p.as_str().to_owned()),
            )
        })
        .collect();
    assert_eq!(
        count(logged),
        count(did.clone()),
        "the log and the day differ"
    );

    // Every field: user, role, on whose behalf, the patient (decoded here,
    // a pseudonym on the server), the action, both times, the device.
    let roles = BTreeMap::from([
        (arts.id.as_str(), "huisarts"),
        (poh.id.as_str(), "poh"),
        (balie.id.as_str(), "assistent"),
        (beheer.id.as_str(), "manager"),
        (his_user.id.as_str(), "connector"),
    ]);
    let devices = BTreeMap::from([
        (arts.id.as_str(), huisarts.id().device.clone()),
        (balie.id.as_str(), assistent.id().device.clone()),
        (beheer.id.as_str(), manager.id().device.clone()),
        (his_user.id.as_str(), connector.id().device.clone()),
    ]);
    let practice = "practice:linde".to_owned();
    for entry in &accesses {
        let e = &entry.event;
        let user = e.user_id.as_deref().ok_or("no user")?;
        assert_eq!(e.role.as_deref(), roles.get(user).copied(), "{e:?}");
        let behalf = if user == balie.id {
            Some(&arts.id)
        } else if user == his_user.id {
            Some(&practice)
        } else {
            None
        };
        assert_eq!(e.on_behalf_of.as_ref(), behalf, "{e:?}");
        let device = e.device_id.as_deref().ok_or("no device")?;
        if let Some(known) = devices.get(user) {
            assert_eq!(device, known, "{e:?}");
        }
        assert_eq!(e.outcome, "success", "{e:?}");
        assert!(e.at > 0, "{e:?}");
        // The device's own time, where the device reported it (the server
        // records sending, erasing and exports as they pass through it).
        let by_server = [
            "message.send",
            "attachment.upload",
            "patient.erase",
            "patient.export",
            "audit.export",
        ];
        if !by_server.contains(&e.action.as_str()) {
            assert!(e.reported_at.is_some_and(|t| t > 0), "{e:?}");
        }
        assert_eq!(e.patient.is_some(), entry.patient.is_some(), "{e:?}");
    }
    // Machine traffic is there as what it is, never about a patient.
    let machine: Vec<_> = log
        .iter()
        .filter(|e| matches!(e.event.action.as_str(), "message.system" | "group.change"))
        .collect();
    assert!(!machine.is_empty());
    assert!(machine.iter().all(|e| e.event.patient.is_none()));

    // Both exports carry the same columns; the FHIR one names the
    // assistent's huisarts as a second agent.
    let (csv, fhir) = manager
        .privacy()
        .export_audit(&AuditQuery::default())
        .await?;
    let server_csv = db.admin(&["audit-export", "--practice", "linde"])?;
    let header = |text: &str| text.lines().next().map(str::to_owned);
    assert_eq!(header(&csv), header(&server_csv));
    assert!(csv.contains(&format!(",assistent,{},", arts.id)), "{csv}");
    let bundle: Value = serde_json::from_str(&fhir)?;
    let on_behalf = bundle["entry"]
        .as_array()
        .ok_or("no entries")?
        .iter()
        .filter(|e| {
            e["resource"]["agent"]
                .as_array()
                .is_some_and(|a| a.len() == 2)
        })
        .count();
    assert!(on_behalf >= 1, "{fhir}");
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("audit.json");
    std::fs::write(&file, &fhir)?;
    let (_, report) = validator::validate("none", &[&file]).map_err(|e| e.to_string())?;
    let errors = validator::errors(&report, &file);
    assert!(errors.is_empty(), "{errors:#?}");
    Ok(())
}

/// Rewrites a practice's audit chain from the record with `detail_like` in
/// it onwards, as whoever controls the server's database could: the record
/// names another user, and every hash after it is recomputed, the head too.
async fn rewrite_chain(db: &TestDatabase, detail_like: &str) -> Result<(), BoxError> {
    let mut conn = db.connect().await?;
    sqlx::query("DROP TRIGGER audit_no_update")
        .execute(&mut conn)
        .await?;
    let from: i64 = sqlx::query_scalar(
        "SELECT MIN(chain_seq) FROM audit_events WHERE practice_id = 'linde' AND detail LIKE $1",
    )
    .bind(detail_like)
    .fetch_one(&mut conn)
    .await?;
    sqlx::query("UPDATE audit_events SET user_id = 'iemand-anders' WHERE chain_seq = $1")
        .bind(from)
        .execute(&mut conn)
        .await?;
    let mut prev: String = sqlx::query_scalar(
        "SELECT prev_hash FROM audit_events WHERE practice_id = 'linde' AND chain_seq = $1",
    )
    .bind(from)
    .fetch_one(&mut conn)
    .await?;
    let rows = sqlx::query(
        "SELECT chain_seq, at, user_id, role, device_id, action, outcome, patient, source, detail,
                client_event, reported_at, on_behalf_of
         FROM audit_events WHERE practice_id = 'linde' AND chain_seq >= $1 ORDER BY chain_seq",
    )
    .bind(from)
    .fetch_all(&mut conn)
    .await?;
    for row in rows {
        use sqlx::Row as _;
        let seq: i64 = row.try_get("chain_seq")?;
        let record = pieper_wire::ChainRecord {
            chain_seq: seq,
            prev_hash: prev.clone(),
            hash: String::new(),
            at: row.try_get("at")?,
            practice_id: "linde".into(),
            user_id: row.try_get("user_id")?,
            role: row.try_get("role")?,
            device_id: row.try_get("device_id")?,
            action: row.try_get("action")?,
            outcome: row.try_get("outcome")?,
            patient: row.try_get("patient")?,
            source: row.try_get("source")?,
            detail: row.try_get("detail")?,
            client_event: row.try_get("client_event")?,
            reported_at: row.try_get("reported_at")?,
            on_behalf_of: row.try_get("on_behalf_of")?,
        };
        let hash = record.computed_hash();
        sqlx::query(
            "UPDATE audit_events SET prev_hash = $1, hash = $2
             WHERE practice_id = 'linde' AND chain_seq = $3",
        )
        .bind(&prev)
        .bind(&hash)
        .bind(seq)
        .execute(&mut conn)
        .await?;
        prev = hash;
    }
    sqlx::query("UPDATE audit_heads SET hash = $1 WHERE practice_id = 'linde'")
        .bind(&prev)
        .execute(&mut conn)
        .await?;
    Ok(())
}

/// The server alone cannot notice a chain rewritten with its hashes redone;
/// the anchors a manager's device sent into the practice group can. An
/// anchor from someone who is no manager is refused by every device.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rewritten_audit_chain_is_caught_by_the_anchors_in_the_practice_group() -> TestResult {
    let db = TestDatabase::new(Backend::Sqlite).await?;
    let arts = create_user(&db, "linde", "jansen", "huisarts")?;
    let beheer = create_user(&db, "linde", "mulder", "manager")?;
    let server = Server::start(&db, &[])?;
    let huisarts = sign_in(&server, &arts, "phone").await?;
    let manager = sign_in(&server, &beheer, "desktop").await?;
    huisarts
        .consent()
        .import_roster(ROSTER.into(), RosterFormat::Csv, true)
        .await?;
    assert!(huisarts.consent().sync_practice().await?);
    manager.sync().await?;
    let p1 = PatientRef::new("his:3001")?;
    let conversation = huisarts
        .conversations()
        .create(
            "INR",
            ConversationKind::Group,
            Some(p1),
            std::slice::from_ref(&beheer.id),
        )
        .await?
        .id;
    huisarts
        .conversations()
        .send(&conversation, NewMessage::text("INR 3,2"))
        .await?;

    // The manager's device anchors the head; every device keeps it.
    let anchored = manager.privacy().anchor_audit().await?;
    assert!(anchored > 0);
    huisarts.sync().await?;
    // Someone who is no manager cannot plant an anchor of their own.
    let practice_group = huisarts.consent().practice_group_id()?;
    huisarts
        .send_raw_content(
            &practice_group,
            r#"{"type":"audit_anchor","seq":1,"hash":"00","at":1,"signature":"00"}"#,
        )
        .await?;
    manager.sync().await?;
    let refusals = manager.refusals()?;
    assert!(refusals.iter().any(|r| r.kind == "role"), "{refusals:?}");

    // More happens; the log extends the anchor.
    huisarts
        .conversations()
        .send(&conversation, NewMessage::text("Dosering gelijk"))
        .await?;
    manager.sync().await?;
    manager.conversations().messages(&conversation, 10)?;
    manager.sync().await?;
    unlock(&manager, &beheer).await?;
    let check = manager.privacy().verify_audit().await?;
    assert!(check.problems.is_empty(), "{check:?}");
    assert!(check.anchors >= 1 && check.records > 0, "{check:?}");

    // Whoever holds the database rewrites who sent the first envelope (a
    // record before the anchor) and redoes every hash after it: the
    // server's own check finds nothing...
    rewrite_chain(&db, "%kind=application%").await?;
    db.admin(&["audit-verify", "--practice", "linde"])?;
    // ...the anchor does.
    unlock(&manager, &beheer).await?;
    let check = manager.privacy().verify_audit().await?;
    assert!(
        check.problems.iter().any(|p| p.contains("rewritten")),
        "{check:?}"
    );
    Ok(())
}
