//! Spoed through the real server: routed to whoever is on duty, to the
//! backup on do-not-disturb, taken by one, and its escalation stops.

use std::time::Duration;

use pieper_core::{ConversationKind, Event, NewMessage, PatientRef, Priority, spoed::Triage};
use pieper_e2e::{
    Backend, Server, TestDatabase, TestResult, create_user, duty_roster_now, escalations_meanwhile,
    sign_in, wait_for,
};

/// Collects the urgent alerts a client raised since `events` subscribed.
fn urgent_ids(events: &mut tokio::sync::broadcast::Receiver<Event>) -> Vec<String> {
    let mut ids = Vec::new();
    while let Ok(event) = events.try_recv() {
        if let Event::UrgentMessage(m) = event {
            ids.push(m.id);
        }
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoed_goes_to_whoever_is_on_duty_and_one_takes_it() -> TestResult {
    let db = TestDatabase::new(Backend::Sqlite).await?;
    let jansen = create_user(&db, "linde", "jansen", "huisarts")?;
    let smit = create_user(&db, "linde", "smit", "huisarts")?;
    let devries = create_user(&db, "linde", "devries", "poh")?;
    let server = Server::start(&db, &["--urgent-escalation-secs", "1"])?;
    let on_duty = sign_in(&server, &jansen, "phone").await?;
    let backup = sign_in(&server, &smit, "phone").await?;
    let poh = sign_in(&server, &devries, "desktop").await?;

    // The POH's device makes the practice's groups, the spoed channel too.
    assert!(poh.consent().sync_practice().await?);
    on_duty.sync().await?;
    backup.sync().await?;
    let channel = poh.spoed().channel_id()?;
    let shown = on_duty.conversations().get(&channel)?;
    assert_eq!(
        (shown.title.as_str(), shown.kind),
        ("Spoed", ConversationKind::Spoed)
    );

    let roster = duty_roster_now(&jansen.id, &smit.id)?;
    // The duty roster is set by a huisarts or the manager, not the POH.
    let refused = poh.spoed().set_duty_roster(roster.clone()).await;
    assert!(
        matches!(
            refused,
            Err(pieper_core::Error::Refused {
                reason: pieper_core::Refusal::Role
            })
        ),
        "{refused:?}"
    );
    on_duty.sync().await?;
    on_duty.spoed().set_duty_roster(roster).await?;
    poh.sync().await?;
    backup.sync().await?;
    assert_eq!(on_duty.spoed().route_now()?, Some(jansen.id.clone()));

    let conversation = poh
        .conversations()
        .create(
            "Dhr. Bos — pijn op de borst",
            ConversationKind::Group,
            Some(PatientRef::new("his:1002")?),
            &[],
        )
        .await?;
    let mut on_duty_events = on_duty.events();
    let mut backup_events = backup.events();
    poh.conversations()
        .send(
            &conversation.id,
            NewMessage::triaged("Dhr. Bos: drukkende pijn op de borst, 20 min", Triage::U2),
        )
        .await?;
    on_duty.sync().await?;
    backup.sync().await?;
    let first = on_duty
        .conversations()
        .messages(&channel, 10)?
        .into_iter()
        .find(|m| m.spoed.is_some())
        .ok_or("no spoed post")?;
    assert_eq!(first.priority, Priority::Urgent);
    assert_eq!(first.triage, Some(Triage::U2));
    let post = first.spoed.clone().ok_or("post")?;
    assert_eq!(post.of_conversation, conversation.id);
    assert_eq!(post.routed_to.as_deref(), Some(jansen.id.as_str()));
    // The huisarts on duty is alerted; the backup sees it without alarm.
    assert_eq!(
        urgent_ids(&mut on_duty_events),
        std::slice::from_ref(&first.id)
    );
    assert!(urgent_ids(&mut backup_events).is_empty());
    assert!(backup.conversations().message(&first.id).is_ok());

    // Unattended, it escalates.
    let live = backup.start_live();
    let mut live_events = backup.events();
    let escalated = wait_for(&mut live_events, Duration::from_secs(10), |e| match e {
        Event::Escalated { id, .. } if *id == first.id => Some(()),
        _ => None,
    })
    .await;
    assert!(escalated.is_ok(), "an untaken spoed post escalates");

    // On do-not-disturb, the next goes to the backup.
    on_duty.spoed().set_do_not_disturb(true).await?;
    poh.sync().await?;
    poh.conversations()
        .send(
            &conversation.id,
            NewMessage::triaged("Dhr. Bos: nu ook kortademig", Triage::U1),
        )
        .await?;
    on_duty.sync().await?;
    backup.sync().await?;
    let second = backup
        .conversations()
        .messages(&channel, 10)?
        .into_iter()
        .rfind(|m| m.spoed.is_some())
        .ok_or("no second post")?;
    assert_ne!(second.id, first.id);
    assert_eq!(
        second.spoed.as_ref().and_then(|s| s.routed_to.as_deref()),
        Some(smit.id.as_str())
    );
    assert!(urgent_ids(&mut on_duty_events).is_empty());
    assert!(urgent_ids(&mut backup_events).contains(&second.id));

    // The backup takes it; everyone sees who, and it escalates no more.
    backup.spoed().take(&second.id).await?;
    poh.sync().await?;
    on_duty.sync().await?;
    for device in [&poh, &on_duty] {
        let seen = device.conversations().message(&second.id)?;
        assert_eq!(
            seen.spoed.and_then(|s| s.taken_by).as_deref(),
            Some(smit.id.as_str())
        );
    }
    assert!(matches!(
        on_duty.device().take_spoed(&second.id),
        Err(pieper_core::Error::Invalid { field: "taken", .. })
    ));
    // The POH's dashboard: the untaken one first, the taken one gone.
    let dashboard = poh.dashboard()?;
    let spoed: Vec<&str> = dashboard.spoed.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(spoed, [first.id.as_str()]);
    // The first post, still untaken, escalates twice more meanwhile; the
    // taken one not once.
    while live_events.try_recv().is_ok() {}
    let again = escalations_meanwhile(&mut live_events, &second.id, &first.id, 2).await?;
    assert!(
        again.is_empty(),
        "a taken spoed post no longer escalates: {again:?}"
    );
    drop(live);
    Ok(())
}
