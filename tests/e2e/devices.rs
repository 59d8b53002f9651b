//! Several devices per user, a revoked device, concurrent membership changes.

use std::time::Duration;

use pieper_core::{ConnectionState, ConversationKind, Error, Event, NewMessage};
use pieper_e2e::{
    Backend, Pair, Server, TestDatabase, TestResult, approve, cli_binary, cli_login, copy_files,
    create_user, current_step, pair, pieper, pieper_ok, sign_in, totp_at, wait_for,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_device_gets_recent_history_and_takes_part_at_once() -> TestResult {
    let Pair {
        db,
        server,
        a: phone,
        b: colleague,
        conversation: conv,
    } = pair("Voor de nieuwe tablet", "phone", "desktop").await?;
    // The practice gives a new device the 3 newest messages of each conversation.
    db.admin(&[
        "practice-settings",
        "--practice",
        "linde",
        "--history-messages",
        "3",
    ])?;
    colleague.sync().await?;
    for i in 1..=4 {
        colleague
            .conversations()
            .send(
                &conv.id,
                NewMessage::text(format!("van voor de tablet {i}")),
            )
            .await?;
    }
    phone.sync().await?;

    let tablet = sign_in(&server, &phone.user, "tablet").await?;
    // Not before the user approved it on the phone (the code on both).
    assert_eq!(phone.devices().add_my_new_devices().await?, 0);
    approve(&phone, &tablet).await?;
    // Then the phone adds it and sends it the history, end-to-end through
    // the user's own group.
    assert_eq!(phone.devices().add_my_new_devices().await?, 1);
    tablet.sync().await?;
    assert!(tablet.conversations().get(&conv.id)?.active);
    assert_eq!(
        tablet.conversations().get(&conv.id)?.title,
        "Voor de nieuwe tablet"
    );
    let history: Vec<String> = tablet
        .conversations()
        .messages(&conv.id, 10)?
        .into_iter()
        .map(|m| m.body)
        .collect();
    assert_eq!(
        history,
        [
            "van voor de tablet 2",
            "van voor de tablet 3",
            "van voor de tablet 4"
        ]
    );
    // History counts as read.
    assert!(tablet.dashboard()?.unread.is_empty());
    // It takes part at once.
    colleague.sync().await?;
    colleague
        .conversations()
        .send(&conv.id, NewMessage::text("welkom tablet"))
        .await?;
    tablet
        .conversations()
        .send(&conv.id, NewMessage::text("de tablet doet mee"))
        .await?;
    tablet.sync().await?;
    phone.sync().await?;
    colleague.sync().await?;
    assert_eq!(tablet.conversations().messages(&conv.id, 10)?.len(), 5);
    assert_eq!(phone.conversations().messages(&conv.id, 10)?.len(), 6);
    assert_eq!(colleague.conversations().messages(&conv.id, 10)?.len(), 6);
    // Nothing left to add.
    assert_eq!(phone.devices().add_my_new_devices().await?, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_device_stops_receiving_and_cannot_decrypt_what_follows() -> TestResult {
    let db = TestDatabase::new(Backend::Sqlite).await?;
    let (a, b) = (
        create_user(&db, "linde", "a", "huisarts")?,
        create_user(&db, "linde", "b", "poh")?,
    );
    let server = Server::start(&db, &[])?;
    let phone = sign_in(&server, &a, "phone").await?;
    let lost = sign_in(&server, &b, "lost-phone").await?;
    let desktop = sign_in(&server, &b, "desktop").await?;
    let conv = phone
        .conversations()
        .create(
            "Overleg",
            ConversationKind::Group,
            None,
            std::slice::from_ref(&b.id),
        )
        .await?;
    lost.sync().await?;
    desktop.sync().await?;
    assert_eq!(phone.conversations().members(&conv.id)?.len(), 3);

    let mut lost_events = lost.events();
    let _lost_live = lost.start_live();
    // b revokes the lost phone from the desktop, which removes it from the
    // conversation in the same action.
    desktop.devices().revoke(&lost.id().device).await?;
    wait_for(&mut lost_events, Duration::from_secs(10), |e| {
        matches!(e, Event::Connection(ConnectionState::SignedOut)).then_some(())
    })
    .await?;

    phone.sync().await?;
    assert_eq!(phone.conversations().members(&conv.id)?.len(), 2);
    let secret = phone
        .device()
        .send(&conv.id, NewMessage::text("na de intrekking"))?;
    phone.flush_outbox().await?;
    desktop.sync().await?;
    assert_eq!(desktop.conversations().search("intrekking", 5)?.len(), 1);

    // Wiped by its live channel: every later call says so.
    assert!(matches!(lost.sync().await, Err(Error::Wiped)));
    // Even holding the ciphertext, the lost phone cannot read it: its store
    // closed with the wipe (the open handle reads nothing more).
    let attempt = lost.device().receive(&secret.payload);
    assert!(matches!(attempt, Err(Error::Locked)), "{attempt:?}");
    assert!(matches!(
        lost.conversations().search("intrekking", 5),
        Err(Error::Wiped)
    ));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_revoked_while_offline_is_removed_and_wipes_itself_on_return() -> TestResult {
    let db = TestDatabase::new(Backend::Sqlite).await?;
    let (a, b, m) = (
        create_user(&db, "linde", "a", "huisarts")?,
        create_user(&db, "linde", "b", "poh")?,
        create_user(&db, "linde", "m", "manager")?,
    );
    let server = Server::start(&db, &[])?;
    let phone = sign_in(&server, &a, "phone").await?;
    let lost = sign_in(&server, &b, "lost-phone").await?;
    let desktop = sign_in(&server, &b, "desktop").await?;
    let manager = sign_in(&server, &m, "desktop").await?;
    let conv = phone
        .conversations()
        .create(
            "Overleg",
            ConversationKind::Group,
            None,
            std::slice::from_ref(&b.id),
        )
        .await?;
    lost.sync().await?;
    desktop.sync().await?;
    let lost_device = lost.id().device.clone();
    // The phone is switched off somewhere.
    let lost_dir = lost.dir.path().to_owned();
    let (lost_client, lost_tempdir) = (lost.client, lost.dir);
    drop(lost_client);

    // The practice manager revokes it in one action (the audit records who).
    manager.devices().revoke(&lost_device).await?;
    // The members' devices remove it at their next membership check.
    assert_eq!(phone.devices().remove_revoked().await?, 1);
    desktop.sync().await?;
    assert_eq!(desktop.devices().remove_revoked().await?, 0);
    let members: Vec<String> = desktop
        .conversations()
        .members(&conv.id)?
        .into_iter()
        .map(|m| m.id.device)
        .collect();
    assert!(!members.contains(&lost_device), "{members:?}");
    phone
        .conversations()
        .send(&conv.id, NewMessage::text("na de intrekking"))
        .await?;
    desktop.sync().await?;
    assert_eq!(desktop.conversations().search("intrekking", 5)?.len(), 1);

    // Back online: it learns it was revoked and wipes its store and keys.
    let keystore = pieper_e2e::keystore_in(&lost_dir)?;
    let returned = pieper_core::Client::open(&lost_dir, keystore).await?;
    let mut events = returned.events();
    assert!(matches!(returned.sync().await, Err(Error::Revoked)));
    assert!(matches!(
        events.try_recv(),
        Ok(Event::Connection(ConnectionState::SignedOut))
    ));
    for file in ["pieper.db", "pieper.db.key", "pieper.db-wal"] {
        assert!(!lost_dir.join(file).exists(), "{file} survived the wipe");
    }
    assert!(matches!(
        returned.privacy().receipts("x").await,
        Err(Error::Wiped)
    ));
    let keystore = pieper_e2e::keystore_in(&lost_dir)?;
    assert!(
        pieper_core::Client::open(&lost_dir, keystore)
            .await
            .is_err()
    );
    drop(lost_tempdir);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_members_changing_the_group_at_once_both_succeed() -> TestResult {
    let db = TestDatabase::new(Backend::Sqlite).await?;
    let users: Vec<_> = ["a", "b", "c", "d"]
        .iter()
        .map(|u| create_user(&db, "linde", u, "huisarts"))
        .collect::<Result<_, _>>()?;
    let server = Server::start(&db, &[])?;
    let a = sign_in(&server, &users[0], "phone").await?;
    let b = sign_in(&server, &users[1], "phone").await?;
    let c = sign_in(&server, &users[2], "phone").await?;
    let d = sign_in(&server, &users[3], "phone").await?;
    let conv = a
        .conversations()
        .create(
            "Team",
            ConversationKind::Group,
            None,
            &[users[1].id.clone()],
        )
        .await?;
    b.sync().await?;
    // Both commit in the same epoch; one loses, catches up and commits again.
    let (at_a, at_b) = (a.conversations(), b.conversations());
    let (ra, rb) = tokio::join!(
        at_a.add_users(&conv.id, std::slice::from_ref(&users[2].id)),
        at_b.add_users(&conv.id, std::slice::from_ref(&users[3].id)),
    );
    ra?;
    rb?;
    for client in [&a, &b, &c, &d] {
        client.sync().await?;
    }
    let epoch = a.conversations().get(&conv.id)?.epoch;
    for client in [&b, &c, &d] {
        assert_eq!(client.conversations().get(&conv.id)?.epoch, epoch);
        assert_eq!(client.conversations().members(&conv.id)?.len(), 4);
    }
    let hello = d
        .device()
        .send(&conv.id, NewMessage::text("hallo allemaal"))?;
    d.flush_outbox().await?;
    for client in [&a, &b, &c] {
        client.sync().await?;
        assert_eq!(
            client.conversations().message(&hello.id)?.body,
            "hallo allemaal"
        );
    }
    Ok(())
}

/// The platform's check as a test sets it: passes or not.
struct Check(bool);

impl pieper_core::UserCheck for Check {
    fn verify(&self) -> bool {
        self.0
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_device_locks_unlocks_with_the_users_check_and_wipes_after_failures() -> TestResult
{
    let Pair {
        db: _db,
        server: _server,
        a: phone,
        b: colleague,
        conversation: conv,
    } = pair("Slot", "phone", "desktop").await?;
    colleague.sync().await?;
    colleague
        .conversations()
        .send(&conv.id, NewMessage::text("vertrouwelijk: uitslag"))
        .await?;
    phone.sync().await?;
    // A file the phone opened is kept here, sealed.
    let file = colleague
        .conversations()
        .attach(
            &conv.id,
            "uitslag.pdf",
            "application/pdf",
            b"%PDF uitslag".to_vec(),
            None,
        )
        .await?;
    assert_eq!(
        phone.conversations().open_attachment(&file).await?,
        b"%PDF uitslag"
    );
    phone.set_lock_policy(pieper_core::LockPolicy {
        idle: Duration::from_millis(300),
        max_failed_unlocks: 3,
    });
    assert!(!phone.is_locked());
    assert!(
        locks_within(&phone, Duration::from_secs(5)).await,
        "idle, and not locked"
    );
    // Every call answers Locked: those that need the key, and those that
    // only talk to the server.
    assert!(matches!(
        phone.conversations().search("uitslag", 5),
        Err(Error::Locked)
    ));
    assert!(matches!(phone.sync().await, Err(Error::Locked)));
    assert!(matches!(phone.colleagues().await, Err(Error::Locked)));
    assert!(matches!(phone.devices().list().await, Err(Error::Locked)));
    assert!(matches!(
        phone.devices().key_packages_left().await,
        Err(Error::Locked)
    ));
    // Nor does it decrypt the file it keeps.
    assert!(matches!(
        phone.conversations().open_attachment(&file).await,
        Err(Error::Locked)
    ));
    assert!(matches!(
        phone
            .conversations()
            .send(&conv.id, NewMessage::text("x"))
            .await,
        Err(Error::Locked)
    ));
    // A push while locked shows no content.
    let data: std::collections::HashMap<String, String> = [
        ("conversation".to_owned(), conv.id.clone()),
        ("message".to_owned(), "m".to_owned()),
    ]
    .into();
    let shown = phone
        .push()
        .notification(&data, Duration::from_millis(300))
        .await?;
    assert!(!shown.decrypted && shown.preview.is_empty() && shown.conversation_title.is_empty());

    // A failed check stays locked and is counted; a passed one unlocks.
    assert!(matches!(
        phone.unlock(std::sync::Arc::new(Check(false))).await,
        Err(Error::Locked)
    ));
    assert_eq!(phone.failed_unlocks(), 1);
    phone.unlock(std::sync::Arc::new(Check(true))).await?;
    assert_eq!(phone.failed_unlocks(), 0);
    assert_eq!(phone.conversations().search("uitslag", 5)?.len(), 1);

    // Locked again, three failures in a row wipe it.
    phone.lock();
    for _ in 0..2 {
        assert!(matches!(
            phone.unlock(std::sync::Arc::new(Check(false))).await,
            Err(Error::Locked)
        ));
    }
    assert!(matches!(
        phone.unlock(std::sync::Arc::new(Check(false))).await,
        Err(Error::Wiped)
    ));
    assert!(!phone.dir.path().join("pieper.db").exists());
    assert!(!phone.dir.path().join("pieper.db.key").exists());
    assert!(matches!(
        phone.unlock(std::sync::Arc::new(Check(true))).await,
        Err(Error::Wiped)
    ));
    Ok(())
}

/// Whether `client` locks within `limit` (polled: the idle lock runs on
/// its own clock).
async fn locks_within(client: &pieper_core::Client, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if client.is_locked() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    client.is_locked()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_arriving_on_the_live_channel_do_not_keep_an_idle_device_unlocked() -> TestResult {
    let Pair {
        db: _db,
        server: _server,
        a: phone,
        b: colleague,
        conversation: conv,
    } = pair("Lijsterbes", "phone", "desktop").await?;
    colleague.sync().await?;
    let mut events = phone.events();
    let _live = phone.start_live();
    phone.set_lock_policy(pieper_core::LockPolicy {
        idle: Duration::from_millis(400),
        max_failed_unlocks: 3,
    });
    // A colleague keeps writing, faster than the idle time; the phone
    // takes each message in on its own, which is no sign that its user is
    // there.
    let writer = colleague.client.clone();
    let conversation = conv.id.clone();
    let writing = tokio::spawn(async move {
        for n in 0.. {
            if writer
                .conversations()
                .send(&conversation, NewMessage::text(format!("bericht {n}")))
                .await
                .is_err()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let first = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Ok(Event::MessageReceived(_)) = events.recv().await {
                return;
            }
        }
    })
    .await;
    let locked = locks_within(&phone, Duration::from_secs(5)).await;
    writing.abort();
    assert!(first.is_ok(), "the live channel delivered nothing");
    assert!(locked, "background syncs kept the device unlocked");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_staff_on_one_tablet_see_nothing_of_each_other() -> TestResult {
    let db = TestDatabase::new(Backend::Sqlite).await?;
    let (a, b, h) = (
        create_user(&db, "linde", "bakker", "assistent")?,
        create_user(&db, "linde", "smit", "assistent")?,
        create_user(&db, "linde", "jansen", "huisarts")?,
    );
    let server = Server::start(&db, &[])?;
    let huisarts = sign_in(&server, &h, "phone").await?;
    let root = tempfile::tempdir()?;
    let tablet = pieper_core::SharedTablet::new(root.path(), pieper_e2e::keystore_in(root.path())?);
    let credentials = |user: &pieper_e2e::User, totp: String| pieper_core::Credentials {
        practice: user.practice.clone(),
        username: user.username.clone(),
        password: pieper_e2e::PASSWORD.into(),
        totp,
        device_name: "balie-tablet".into(),
    };
    let code = |user: &pieper_e2e::User| pieper_e2e::totp_at(user, pieper_e2e::current_step());

    let first = tablet
        .sign_in(&server.base, credentials(&a, code(&a)?))
        .await?;
    let conv = huisarts
        .conversations()
        .create(
            "Mw. Smit",
            ConversationKind::Group,
            None,
            std::slice::from_ref(&a.id),
        )
        .await?;
    huisarts
        .conversations()
        .send(&conv.id, NewMessage::text("alleenvoorbakker: bel terug"))
        .await?;
    first.sync().await?;
    assert_eq!(
        first.conversations().search("alleenvoorbakker", 5)?.len(),
        1
    );

    // smit signs in on the same tablet: bakker's profile locks.
    let second = tablet
        .sign_in(&server.base, credentials(&b, code(&b)?))
        .await?;
    assert!(first.is_locked());
    second.sync().await?;
    assert!(
        second
            .conversations()
            .search("alleenvoorbakker", 5)?
            .is_empty()
    );
    assert!(
        second
            .conversations()
            .list()?
            .iter()
            .all(|c| c.id != conv.id)
    );
    assert!(matches!(
        first.conversations().search("alleenvoorbakker", 5),
        Err(Error::Locked)
    ));
    // A push for bakker while smit works shows nothing.
    let data: std::collections::HashMap<String, String> = [
        ("conversation".to_owned(), conv.id.clone()),
        ("message".to_owned(), "m".to_owned()),
    ]
    .into();
    let shown = first
        .push()
        .notification(&data, Duration::from_millis(300))
        .await?;
    assert!(!shown.decrypted && shown.preview.is_empty());
    // Separate stores in separate folders.
    assert_eq!(
        tablet.profiles()?,
        ["linde+bakker".to_owned(), "linde+smit".to_owned()]
    );

    // Back to bakker: her PIN first.
    assert!(matches!(
        tablet
            .switch_to("linde+bakker", std::sync::Arc::new(Check(false)))
            .await,
        Err(Error::Locked)
    ));
    let back = tablet
        .switch_to("linde+bakker", std::sync::Arc::new(Check(true)))
        .await?;
    assert!(second.is_locked());
    assert_eq!(back.conversations().search("alleenvoorbakker", 5)?.len(), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_who_lost_every_device_restores_history_with_their_recovery_code() -> TestResult {
    let Pair {
        db: _db,
        server,
        a: phone,
        b: colleague,
        conversation: conv,
    } = pair("Voor de backup", "phone", "desktop").await?;
    colleague.sync().await?;
    colleague
        .conversations()
        .send(&conv.id, NewMessage::text("uitslag binnen: lab normaal"))
        .await?;
    phone.sync().await?;
    phone
        .conversations()
        .send(&conv.id, NewMessage::text("dank, ik bel de patiënt"))
        .await?;
    let code = pieper_core::new_recovery_code();
    let made = phone.devices().create_backup(&code, 100).await?;
    assert_eq!((made.conversations, made.messages), (1, 2));
    // The server holds ciphertext only.
    assert!(!_db.dump_server_text()?.contains("lab normaal"));
    let user = phone.user.clone();
    drop(phone);

    // A new phone, same account: login with 2FA is enough to get in.
    let new_phone = sign_in(&server, &user, "new-phone").await?;
    let wrong = new_phone
        .devices()
        .restore_backup(&pieper_core::new_recovery_code())
        .await;
    assert!(matches!(wrong, Err(Error::WrongKey)), "{wrong:?}");
    assert!(
        new_phone.conversations().list()?.is_empty(),
        "a wrong code changed something"
    );

    let restored = new_phone
        .devices()
        .restore_backup(&code.to_lowercase())
        .await?;
    assert_eq!((restored.conversations, restored.messages), (1, 2));
    let back: Vec<String> = new_phone
        .conversations()
        .messages(&conv.id, 10)?
        .into_iter()
        .map(|m| m.body)
        .collect();
    assert_eq!(
        back,
        ["uitslag binnen: lab normaal", "dank, ik bel de patiënt"]
    );
    assert!(!new_phone.conversations().get(&conv.id)?.active);

    // A colleague's device, having heard the user's recovery key with the
    // backup, adds the new phone on it; it takes part again.
    colleague.sync().await?;
    colleague
        .conversations()
        .add_users(&conv.id, std::slice::from_ref(&user.id))
        .await?;
    new_phone.sync().await?;
    assert!(new_phone.conversations().get(&conv.id)?.active);
    new_phone
        .conversations()
        .send(&conv.id, NewMessage::text("weer bereikbaar"))
        .await?;
    colleague.sync().await?;
    assert_eq!(colleague.conversations().search("bereikbaar", 5)?.len(), 1);
    assert_eq!(new_phone.conversations().messages(&conv.id, 10)?.len(), 3);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_added_often_uploads_new_key_packages() -> TestResult {
    let Pair {
        db: _db,
        server: _server,
        a: phone,
        b: colleague,
        conversation: _,
    } = pair("Veel overleg", "phone", "desktop").await?;
    colleague.sync().await?;
    let start = colleague.devices().key_packages_left().await?;
    assert!((5..20).contains(&start), "{start}");
    // Each conversation it is added to uses one; the last few stay.
    for i in 0..start - 4 {
        phone
            .conversations()
            .create(
                &format!("Overleg {i}"),
                ConversationKind::Group,
                None,
                std::slice::from_ref(&colleague.user.id),
            )
            .await?;
    }
    assert_eq!(colleague.devices().key_packages_left().await?, 4);
    // Joining them, it tops the server up again; a second look adds none.
    colleague.sync().await?;
    assert_eq!(colleague.devices().key_packages_left().await?, 20);
    assert_eq!(colleague.devices().top_up_key_packages().await?, 0);
    let joined = colleague
        .conversations()
        .list()?
        .into_iter()
        .filter(|c| c.title.starts_with("Overleg "))
        .count();
    assert_eq!(joined as u32, start - 4);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_revokes_a_device_from_the_command_line() -> TestResult {
    let Pair {
        db,
        server: _server,
        a: phone,
        b: colleague,
        conversation: conv,
    } = pair("Beheer", "phone", "desktop").await?;
    colleague.sync().await?;
    let device = colleague.id().device.clone();
    db.admin(&["revoke-device", "--device", &device])?;
    // The members' devices remove it at their next check.
    assert_eq!(phone.devices().remove_revoked().await?, 1);
    assert!(
        !phone
            .conversations()
            .members(&conv.id)?
            .iter()
            .any(|m| m.id.device == device)
    );
    assert!(matches!(colleague.sync().await, Err(Error::Revoked)));
    assert!(!colleague.dir.path().join("pieper.db.key").exists());
    let log = db.admin(&["audit-export", "--practice", "linde"])?;
    assert!(
        log.lines()
            .any(|l| l.contains("device.revoke") && l.contains("operator")),
        "{log}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_restored_from_an_old_copy_heals_by_itself() -> TestResult {
    let Pair {
        db,
        server,
        a: phone,
        b: colleague,
        conversation: conv,
    } = pair("Herstel", "phone", "desktop").await?;
    colleague.sync().await?;
    let keystore = pieper_e2e::keystore_in;
    // The desktop's state is copied (an old backup of the machine)...
    let pieper_e2e::TestClient { client, dir, user } = colleague;
    drop(client);
    let old_copy = tempfile::tempdir()?;
    copy_files(dir.path(), old_copy.path())?;
    let desktop = pieper_core::Client::open(dir.path(), keystore(dir.path())?).await?;

    // ...then the desktop is added to so many conversations that every
    // KeyPackage it had at the copy is used; it uploads new ones, whose keys
    // the copy will not have.
    let mut added = 0;
    while desktop.devices().key_packages_left().await? > 0 && added < 30 {
        phone
            .conversations()
            .create(
                &format!("Overleg {added}"),
                ConversationKind::Group,
                None,
                std::slice::from_ref(&user.id),
            )
            .await?;
        added += 1;
    }
    assert_eq!(desktop.devices().key_packages_left().await?, 0);
    desktop.sync().await?;
    assert_eq!(desktop.devices().key_packages_left().await?, 20);

    // Then the group moves on: the huisarts adds a tablet and writes.
    let tablet = sign_in(&server, &phone.user, "tablet").await?;
    approve(&phone, &tablet).await?;
    assert_eq!(phone.devices().add_my_new_devices().await?, added + 1);
    phone
        .conversations()
        .send(&conv.id, NewMessage::text("na de wissel"))
        .await?;
    desktop.sync().await?;
    tablet.sync().await?;
    // Everyone acknowledged: the server lets those envelopes go.
    db.admin(&["collect"])?;

    // The machine is restored from the old copy: its MLS state is behind.
    drop(desktop);
    for entry in std::fs::read_dir(dir.path())? {
        let path = entry?.path();
        if path.is_file() {
            std::fs::remove_file(path)?;
        }
    }
    copy_files(old_copy.path(), dir.path())?;
    let desktop = pieper_core::Client::open(dir.path(), keystore(dir.path())?).await?;
    phone
        .conversations()
        .send(&conv.id, NewMessage::text("gemist bericht"))
        .await?;
    let report = desktop.sync().await?;
    assert!(
        report.skipped >= 1,
        "the new message cannot be decrypted yet"
    );
    let metrics = reqwest::get(format!("{}/metrics", server.base))
        .await?
        .text()
        .await?;
    let undecryptable: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("pieper_undecryptable_messages_total "))
        .ok_or("no undecryptable metric")?
        .trim()
        .parse()?;
    assert!(undecryptable >= 1, "{metrics}");

    // A member's device adds it again (at its next check), with history.
    assert_eq!(phone.devices().heal_others().await?, 1);
    desktop.sync().await?;
    let bodies = |c: &pieper_core::Client| -> Result<Vec<String>, pieper_e2e::BoxError> {
        Ok(c.conversations()
            .messages(&conv.id, 20)?
            .into_iter()
            .map(|m| m.body)
            .collect())
    };
    let seen = bodies(&desktop)?;
    assert!(seen.contains(&"gemist bericht".to_owned()), "{seen:?}");
    assert!(seen.contains(&"na de wissel".to_owned()), "{seen:?}");
    // Shown as re-sent by the phone that healed it, not as if sent anew.
    let resent_by =
        |c: &pieper_core::Client, body: &str| -> Result<Option<String>, pieper_e2e::BoxError> {
            let m = c
                .conversations()
                .messages(&conv.id, 20)?
                .into_iter()
                .find(|m| m.body == body)
                .ok_or(format!("no {body}"))?;
            Ok(m.resent_by.map(|r| r.device))
        };
    assert_eq!(
        resent_by(&desktop, "gemist bericht")?,
        Some(phone.id().device.clone())
    );
    // And it decrypts what comes next, and takes part.
    phone
        .conversations()
        .send(&conv.id, NewMessage::text("na het herstel"))
        .await?;
    desktop.sync().await?;
    assert!(bodies(&desktop)?.contains(&"na het herstel".to_owned()));
    assert_eq!(resent_by(&desktop, "na het herstel")?, None);
    desktop
        .conversations()
        .send(&conv.id, NewMessage::text("weer bij"))
        .await?;
    phone.sync().await?;
    assert!(bodies(&phone)?.contains(&"weer bij".to_owned()));
    // Nothing is left to heal.
    assert_eq!(phone.devices().heal_others().await?, 0);
    drop((desktop, dir, user));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_reads_nothing_once_its_running_device_was_revoked() -> TestResult {
    let db = TestDatabase::new(Backend::Sqlite).await?;
    let huisarts = create_user(&db, "linde", "visser", "huisarts")?;
    let beheer = create_user(&db, "linde", "mulder", "manager")?;
    let server = Server::start(&db, &[])?;
    let manager = sign_in(&server, &beheer, "laptop").await?;
    let dir = tempfile::tempdir()?;
    cli_login(
        dir.path(),
        &server,
        &huisarts,
        &totp_at(&huisarts, current_step())?,
        "desktop",
    )?;
    let conv = pieper_ok(dir.path(), &["create", "--title", "Overleg"])?
        .trim()
        .to_owned();
    pieper_ok(dir.path(), &["send", &conv, "Labuitslag besproken"])?;
    assert!(pieper_ok(dir.path(), &["search", "Labuitslag"])?.contains("Labuitslag"));

    // The CLI runs live (`pieper follow`) while the manager revokes it.
    let mut follow = std::process::Command::new(cli_binary()?)
        .arg("--dir")
        .arg(dir.path())
        .arg("follow")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let desktop = manager
        .devices()
        .list()
        .await?
        .into_iter()
        .find(|d| d.user_id == huisarts.id)
        .ok_or("the CLI's device is not listed")?;
    manager.devices().revoke(&desktop.id).await?;

    // The running client hears of it, wipes itself and stops, saying why.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = follow.try_wait()? {
            break status;
        }
        if std::time::Instant::now() > deadline {
            follow.kill()?;
            return Err("pieper follow kept running after the revoke".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut said = String::new();
    std::io::Read::read_to_string(&mut follow.stderr.take().ok_or("stderr")?, &mut said)?;
    assert!(!status.success());
    assert!(said.contains("wiped"), "{said}");

    // Every later read says the device was wiped, and shows nothing.
    for args in [
        vec!["conversations"],
        vec!["search", "Labuitslag"],
        vec!["open", conv.as_str()],
    ] {
        let out = pieper(dir.path(), &args)?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(
            stderr.contains("this device was wiped"),
            "{args:?}: {stderr}"
        );
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains("Labuitslag"),
            "{args:?} showed content"
        );
    }
    Ok(())
}
