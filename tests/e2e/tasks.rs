//! Tasks between devices through the real server.

use pieper_core::{Assignee, ConversationKind, Error, NewTask, PatientRef, TaskState};
use pieper_e2e::{TestResult, pair};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_changed_on_two_devices_at_once_converges() -> TestResult {
    let p = pair("INR-controle", "phone", "desktop").await?;
    let (a, b) = (&p.a, &p.b);
    let made = a
        .tasks()
        .create(
            &p.conversation.id,
            NewTask {
                what: "INR over een week herhalen".into(),
                assignee: Assignee::Role("poh".into()),
                due: Some("2026-12-04".into()),
                from_message: None,
                follow_up: None,
            },
        )
        .await?;
    b.sync().await?;
    assert_eq!(b.tasks().get(&made.id)?.what, "INR over een week herhalen");
    // The POH has it in their list; the huisarts who asked does not.
    assert_eq!(b.tasks().my_open()?.len(), 1);
    assert!(a.tasks().my_open()?.is_empty());

    // One takes it on while the other cancels it, neither having seen the other.
    let (at_b, at_a) = (b.tasks(), a.tasks());
    let (accepted, cancelled) = tokio::join!(at_b.accept(&made.id), at_a.cancel(&made.id));
    let (accepted, cancelled) = (accepted?, cancelled?);
    assert_eq!(accepted.state, TaskState::Accepted);
    assert_eq!(cancelled.state, TaskState::Cancelled);
    for _ in 0..2 {
        a.sync().await?;
        b.sync().await?;
    }
    let on_a = a.tasks().get(&made.id)?;
    let on_b = b.tasks().get(&made.id)?;
    assert_eq!(on_a, on_b, "both devices fold the same log");
    assert_eq!(on_a.history.len(), 3, "both changes stay in the history");
    // In either server order it ends cancelled: accept then cancel both
    // apply; cancel then accept keeps the accept in the history, not applied.
    assert_eq!(on_a.state, TaskState::Cancelled);
    let late = on_a.history.iter().filter(|s| !s.applied).count();
    match on_a.history[1].state {
        TaskState::Cancelled => assert_eq!(late, 1),
        TaskState::Accepted => assert_eq!(late, 0),
        other => panic!("unexpected step {other:?}"),
    }
    // A finished task cannot move again.
    assert!(matches!(
        a.tasks().complete(&made.id).await,
        Err(Error::Invalid { field: "state", .. })
    ));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follow_up_becomes_an_assistants_task_for_the_patient() -> TestResult {
    let db = pieper_e2e::TestDatabase::new(pieper_e2e::Backend::Sqlite).await?;
    let huisarts = pieper_e2e::create_user(&db, "linde", "jansen", "huisarts")?;
    let assistent = pieper_e2e::create_user(&db, "linde", "bakker", "assistent")?;
    let server = pieper_e2e::Server::start(&db, &[])?;
    let arts = pieper_e2e::sign_in(&server, &huisarts, "desktop").await?;
    let balie = pieper_e2e::sign_in(&server, &assistent, "balie").await?;
    let patient = PatientRef::new("bsn:999911120")?;
    let conversation = arts
        .conversations()
        .create(
            "Mw. De Vries",
            ConversationKind::Group,
            Some(patient.clone()),
            std::slice::from_ref(&assistent.id),
        )
        .await?;
    let message = arts
        .conversations()
        .send(
            &conversation.id,
            pieper_core::NewMessage::text("Graag over 2 weken controle afspreken"),
        )
        .await?;
    let task = arts
        .tasks()
        .create(
            &conversation.id,
            NewTask {
                from_message: Some(message.clone()),
                ..NewTask::appointment(
                    "Controle-afspraak over 2 weken plannen",
                    Some("huisarts".into()),
                    Some("2026-12-11".into()),
                )
            },
        )
        .await?;
    balie.sync().await?;
    let open = balie.tasks().my_open()?;
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].patient.as_ref(), Some(&patient));
    assert_eq!(open[0].from_message.as_deref(), Some(message.as_str()));
    assert_eq!(open[0].assignee, Assignee::Role("assistent".into()));
    // For the HIS agenda it is a ServiceRequest for the patient.
    let request = open[0].to_fhir_request()?.ok_or("no request")?;
    assert_eq!(request["resourceType"], "ServiceRequest");
    assert_eq!(request["subject"]["identifier"]["value"], "999911120");
    let done = balie.tasks().complete(&task.id).await?;
    assert_eq!(done.state, TaskState::Completed);
    arts.sync().await?;
    let seen = arts.tasks().get(&task.id)?;
    assert_eq!(seen.state, TaskState::Completed);
    assert_eq!(seen.history[1].by, assistent.id);
    assert!(balie.tasks().my_open()?.is_empty());
    // Bad input is refused before anything is sent.
    assert!(matches!(
        arts.tasks()
            .create(
                &conversation.id,
                NewTask {
                    what: "x".into(),
                    assignee: Assignee::Role("assistent".into()),
                    due: Some("11-12-2026".into()),
                    from_message: None,
                    follow_up: None,
                }
            )
            .await,
        Err(Error::Invalid { field: "due", .. })
    ));
    // The server saw no task text.
    let stored = db.dump_server_text()?;
    assert!(!stored.contains("Controle-afspraak") && !stored.contains("999911120"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_work_note_stays_on_its_authors_devices() -> TestResult {
    let db = pieper_e2e::TestDatabase::new(pieper_e2e::Backend::Sqlite).await?;
    let huisarts = pieper_e2e::create_user(&db, "linde", "jansen", "huisarts")?;
    let poh = pieper_e2e::create_user(&db, "linde", "devries", "poh")?;
    let server = pieper_e2e::Server::start(&db, &[])?;
    let desktop = pieper_e2e::sign_in(&server, &huisarts, "desktop").await?;
    let phone = pieper_e2e::sign_in(&server, &huisarts, "phone").await?;
    pieper_e2e::approve(&desktop, &phone).await?;
    let colleague = pieper_e2e::sign_in(&server, &poh, "laptop").await?;
    let conversation = desktop
        .conversations()
        .create(
            "Dhr. Bos",
            ConversationKind::Group,
            Some(PatientRef::new("his:1002")?),
            std::slice::from_ref(&poh.id),
        )
        .await?;
    phone.sync().await?;
    colleague.sync().await?;

    // Discussion and documentation go to everyone, with their kind.
    let record = desktop
        .conversations()
        .send(
            &conversation.id,
            pieper_core::NewMessage::for_record("RR 150/95, herhalen over 2 weken"),
        )
        .await?;
    // A work note goes to the author's other devices only.
    const MARKER: &str = "WERKNOTITIE-7Q2 twijfel aan therapietrouw";
    let note = desktop
        .conversations()
        .send(&conversation.id, pieper_core::NewMessage::note(MARKER))
        .await?;
    assert_eq!(
        desktop.conversations().message(&note)?.kind,
        pieper_core::MessageKind::Werkaantekening
    );
    phone.sync().await?;
    colleague.sync().await?;
    let on_phone = phone.conversations().message(&note)?;
    assert_eq!(on_phone.body, MARKER);
    assert_eq!(on_phone.conversation, conversation.id);
    assert_eq!(on_phone.kind, pieper_core::MessageKind::Werkaantekening);
    assert!(matches!(
        colleague.conversations().message(&note),
        Err(Error::NotFound { .. })
    ));
    assert!(
        colleague
            .conversations()
            .search("therapietrouw", 10)?
            .is_empty()
    );
    assert_eq!(
        colleague.conversations().message(&record)?.kind,
        pieper_core::MessageKind::Documenteer
    );
    // The personal group is no conversation of its own.
    assert_eq!(phone.conversations().list()?.len(), 1);
    // The server has only ciphertext of it, in its files and its log.
    assert!(!db.dump_server_text()?.contains("WERKNOTITIE-7Q2"));
    assert!(!server.log_text().contains("WERKNOTITIE-7Q2"));
    Ok(())
}
