//! Conversations between users and devices through the real server.

use std::time::Duration;

use pieper_core::{ConversationKind, Event, MessageState, NewMessage, PatientRef, Priority};
use pieper_e2e::{Backend, Server, TestDatabase, TestResult, create_user, sign_in, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_users_on_four_devices_talk_about_a_patient() -> TestResult {
    let db = TestDatabase::new(Backend::Sqlite).await?;
    let huisarts = create_user(&db, "linde", "jansen", "huisarts")?;
    let assistent = create_user(&db, "linde", "bakker", "assistent")?;
    let poh = create_user(&db, "linde", "devries", "poh")?;
    let server = Server::start(&db, &[])?;

    let phone = sign_in(&server, &huisarts, "phone").await?;
    let desktop = sign_in(&server, &huisarts, "desktop").await?;
    // The huisarts approves the desktop on the phone (the code on both).
    pieper_e2e::approve(&phone, &desktop).await?;
    let tablet = sign_in(&server, &assistent, "balie-tablet").await?;
    let poh_desktop = sign_in(&server, &poh, "desktop").await?;

    let mut tablet_events = tablet.events();
    let _live = [
        desktop.start_live(),
        tablet.start_live(),
        poh_desktop.start_live(),
    ];

    let patient = PatientRef::new("his:patient/48213")?;
    let conversation = phone
        .conversations()
        .create(
            "Mw. Smit — INR",
            ConversationKind::Group,
            Some(patient.clone()),
            &[assistent.id.clone(), poh.id.clone()],
        )
        .await?;
    // Four devices: the huisarts's phone and desktop, the tablet, the POH's desktop.
    assert_eq!(phone.conversations().members(&conversation.id)?.len(), 4);

    let sent = phone
        .conversations()
        .send(
            &conversation.id,
            NewMessage::urgent("INR 4,1 — bel mw. Smit vandaag"),
        )
        .await?;
    assert_eq!(
        phone.conversations().message(&sent)?.state,
        MessageState::Sent
    );

    let urgent = wait_for(&mut tablet_events, Duration::from_secs(10), |e| match e {
        Event::UrgentMessage(m) => Some(m.clone()),
        _ => None,
    })
    .await?;
    assert_eq!(urgent.body, "INR 4,1 — bel mw. Smit vandaag");
    assert_eq!(urgent.sender.user, huisarts.id);
    assert_eq!(urgent.priority, Priority::Urgent);
    let seen = tablet.conversations().get(&conversation.id)?;
    assert_eq!(
        (seen.title.as_str(), seen.patient.as_ref()),
        ("Mw. Smit — INR", Some(&patient))
    );

    // Replies from the tablet and the POH reach everyone, including the
    // huisarts's other device.
    tablet
        .conversations()
        .send(
            &conversation.id,
            NewMessage::text("Teruggebeld, komt morgen"),
        )
        .await?;
    poh_desktop
        .conversations()
        .send(&conversation.id, NewMessage::text("Ik pas de dosering aan"))
        .await?;
    phone.sync().await?;
    let expected = [
        "INR 4,1 — bel mw. Smit vandaag",
        "Teruggebeld, komt morgen",
        "Ik pas de dosering aan",
    ];
    for device in [&phone, &desktop, &tablet, &poh_desktop] {
        let bodies = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let bodies: Vec<String> = device
                    .conversations()
                    .messages(&conversation.id, 10)?
                    .into_iter()
                    .map(|m| m.body)
                    .collect();
                if bodies.len() == expected.len() {
                    return Ok::<_, pieper_core::Error>(bodies);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await??;
        let mut sorted = bodies.clone();
        sorted.sort();
        let mut want: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
        want.sort();
        assert_eq!(sorted, want, "device {}", device.user.username);
    }
    assert_eq!(desktop.conversations().search("dosering", 5)?.len(), 1);
    Ok(())
}

/// Apps in the field lag behind: content of a kind (or with a value) an
/// older app does not know is shown as "update the app", the conversation
/// goes on, and nothing is refused as tampered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_from_a_newer_app_shows_as_a_placeholder() -> TestResult {
    let (_db, _server, newer, older) = pieper_e2e::colleagues().await?;
    let conv = newer
        .conversations()
        .create(
            "Overleg",
            ConversationKind::Group,
            None,
            std::slice::from_ref(&older.user.id),
        )
        .await?;
    older.sync().await?;

    newer
        .send_raw_content(
            &conv.id,
            r#"{"type":"poll","id":"p-1","question":"Griepprik zaterdag?","sent_at":1790000000000}"#,
        )
        .await?;
    newer
        .conversations()
        .send(&conv.id, NewMessage::text("Graag voor vrijdag stemmen"))
        .await?;
    older.sync().await?;

    let messages = older.conversations().messages(&conv.id, 10)?;
    let bodies: Vec<&str> = messages.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(
        bodies,
        [pieper_core::UNSUPPORTED_BODY, "Graag voor vrijdag stemmen"]
    );
    let placeholder = &messages[0];
    assert_eq!(placeholder.sender.device, newer.id().device);
    assert_eq!(placeholder.sent_at, 1_790_000_000_000);
    assert_eq!(placeholder.state, MessageState::Received);
    Ok(())
}
