//! Healing after a compromise: a device's MLS leaf update shuts out whoever
//! copied its store; two devices updating one conversation at once both land;
//! a suspicious unlock makes every conversation update.

use std::sync::Arc;

use pieper_core::{Client, ConversationKind, LockPolicy, NewMessage, UserCheck};
use pieper_e2e::{
    Backend, BoxError, Pair, Server, TestDatabase, TestResult, cli_login, create_user,
    current_step, pair, pair_of_kind, pieper_ok, sign_in, totp_at,
};

fn bodies(client: &Client, conversation: &str) -> Result<Vec<String>, BoxError> {
    Ok(client
        .conversations()
        .messages(conversation, 50)?
        .into_iter()
        .map(|m| m.body)
        .collect())
}

/// The attacker copies `victim`'s store; the copy reads what comes before
/// the victim's update and nothing after it, while the real device and
/// `writer` go on as before.
async fn copy_is_shut_out_by_the_update(
    writer: &Client,
    victim: pieper_e2e::TestClient,
    conversation: &str,
    others: &[&Client],
) -> TestResult {
    victim.sync().await?;
    let (victim, copy, _copy_dir) = victim.copied().await?;

    writer
        .conversations()
        .send(conversation, NewMessage::text("voor de update"))
        .await?;
    victim.sync().await?;
    copy.eavesdrop().await?;
    assert!(bodies(&copy, conversation)?.contains(&"voor de update".to_owned()));

    // The real device updates its leaf; every member takes the commit.
    assert!(victim.keys().update(conversation).await?);
    for other in others {
        other.sync().await?;
    }
    writer
        .conversations()
        .send(conversation, NewMessage::text("na de update"))
        .await?;
    victim
        .conversations()
        .send(conversation, NewMessage::text("ook van het slachtoffer"))
        .await?;
    writer.sync().await?;
    victim.sync().await?;
    for other in others {
        other.sync().await?;
    }
    let seen = bodies(&victim, conversation)?;
    assert!(seen.contains(&"na de update".to_owned()), "{seen:?}");
    assert!(bodies(writer, conversation)?.contains(&"ook van het slachtoffer".to_owned()));

    // The copy gets what others sent since (the server never hands a device
    // what it sent itself) and opens none of it.
    let report = copy.eavesdrop().await?;
    assert_eq!(report.applied, 0, "{report:?}");
    assert!(report.skipped >= 1, "{report:?}");
    let copied = bodies(&copy, conversation)?;
    assert!(!copied.contains(&"na de update".to_owned()), "{copied:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copied_store_reads_nothing_after_the_update_one_to_one() -> TestResult {
    let Pair {
        a,
        b,
        conversation,
        db: _db,
        server: _server,
    } = pair_of_kind("Samen", ConversationKind::Direct, "phone", "desktop").await?;
    copy_is_shut_out_by_the_update(&a, b, &conversation.id, &[&a.client]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copied_store_reads_nothing_after_the_update_in_a_group() -> TestResult {
    let Pair {
        db,
        server,
        a,
        b,
        conversation,
    } = pair("Team", "phone", "desktop").await?;
    let c = create_user(&db, "linde", "c", "assistent")?;
    let c = sign_in(&server, &c, "tablet").await?;
    a.conversations()
        .add_users(&conversation.id, std::slice::from_ref(&c.user.id))
        .await?;
    b.sync().await?;
    c.sync().await?;
    copy_is_shut_out_by_the_update(&a, c, &conversation.id, &[&a.client, &b.client]).await?;
    // The third member reads the victim's message too.
    assert!(bodies(&b, &conversation.id)?.contains(&"ook van het slachtoffer".to_owned()));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_devices_updating_one_conversation_at_once_both_land() -> TestResult {
    // The database and the server live as long as the bindings.
    let Pair {
        a,
        b,
        conversation,
        db: _db,
        server,
    } = pair("Tegelijk", "phone", "desktop").await?;
    b.sync().await?;
    let start = a.conversations().get(&conversation.id)?.epoch;
    // Each writes a message while both update, on their own tasks.
    let spawn_send = |client: &Client, body: &'static str| {
        let (client, id) = (client.clone(), conversation.id.clone());
        tokio::spawn(async move {
            client
                .conversations()
                .send(&id, NewMessage::text(body))
                .await
        })
    };
    let spawn_update = |client: &Client| {
        let (client, id) = (client.clone(), conversation.id.clone());
        tokio::spawn(async move { client.keys().update(&id).await })
    };
    let (a_sent, b_sent) = (spawn_send(&a, "van a"), spawn_send(&b, "van b"));
    let (a_updated, b_updated) = (spawn_update(&a), spawn_update(&b));
    a_sent.await??;
    b_sent.await??;
    assert!(a_updated.await??, "a's update landed");
    assert!(b_updated.await??, "b's update landed");
    // They met: one update lost the epoch and was made again.
    let metrics = reqwest::get(format!("{}/metrics", server.base))
        .await?
        .text()
        .await?;
    let stale: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("pieper_stale_commits_total "))
        .ok_or("no stale commit metric")?
        .trim()
        .parse()?;
    assert!(stale >= 1, "{metrics}");
    // The server counts both updates, in all and today.
    for name in ["pieper_key_updates_total ", "pieper_key_updates_today "] {
        let count: u64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .ok_or("no key update metric")?
            .trim()
            .parse()?;
        assert_eq!(count, 2, "{name}: {metrics}");
    }
    a.sync().await?;
    b.sync().await?;
    assert_eq!(a.conversations().get(&conversation.id)?.epoch, start + 2);
    assert_eq!(b.conversations().get(&conversation.id)?.epoch, start + 2);
    // Nothing was lost: what each sent around the updates, and after.
    a.conversations()
        .send(&conversation.id, NewMessage::text("daarna van a"))
        .await?;
    b.conversations()
        .send(&conversation.id, NewMessage::text("daarna van b"))
        .await?;
    a.sync().await?;
    b.sync().await?;
    for client in [&a.client, &b.client] {
        let seen = bodies(client, &conversation.id)?;
        for body in ["van a", "van b", "daarna van a", "daarna van b"] {
            assert!(seen.contains(&body.to_owned()), "{body} missing: {seen:?}");
        }
    }
    Ok(())
}

struct Answers(std::sync::Mutex<Vec<bool>>);

impl UserCheck for Answers {
    fn verify(&self) -> bool {
        self.0.lock().map(|mut a| a.remove(0)).unwrap_or(false)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unlock_after_a_wipe_warning_updates_every_conversation() -> TestResult {
    let Pair {
        a,
        b,
        conversation,
        db: _db,
        server: _server,
    } = pair("Na de waarschuwing", "phone", "desktop").await?;
    b.sync().await?;
    let policy = LockPolicy {
        idle: std::time::Duration::from_secs(3600),
        max_failed_unlocks: 5,
    };
    a.set_lock_policy(policy);
    let before = a.keys().updates()?;
    assert!(before.iter().all(|u| !u.due_now), "{before:?}");

    // One failed try is no warning: nothing is due after the unlock.
    a.lock();
    let check = Arc::new(Answers(std::sync::Mutex::new(vec![false, true])));
    assert!(a.unlock(check.clone()).await.is_err());
    a.unlock(check).await?;
    assert!(a.keys().updates()?.iter().all(|u| !u.due_now));

    // Two failed tries: the wipe warning showed. After the unlock every
    // conversation is due, and the next sync updates them all.
    a.lock();
    let check = Arc::new(Answers(std::sync::Mutex::new(vec![false, false, true])));
    assert!(a.unlock(check.clone()).await.is_err());
    assert!(a.unlock(check.clone()).await.is_err());
    assert!(policy.warns(a.failed_unlocks()));
    a.unlock(check).await?;
    let due = a.keys().updates()?;
    assert!(!due.is_empty());
    assert!(due.iter().all(|u| u.due_now), "{due:?}");
    let epoch = a.conversations().get(&conversation.id)?.epoch;
    a.sync().await?;
    let after = a.keys().updates()?;
    assert!(after.iter().all(|u| !u.due_now), "{after:?}");
    for update in &after {
        let earlier = before
            .iter()
            .find(|u| u.conversation == update.conversation)
            .map_or(0, |u| u.updated_at);
        assert!(update.updated_at > earlier, "{update:?}");
    }
    assert_eq!(a.conversations().get(&conversation.id)?.epoch, epoch + 1);
    // The colleague follows and reads on.
    b.sync().await?;
    a.conversations()
        .send(&conversation.id, NewMessage::text("weer veilig"))
        .await?;
    b.sync().await?;
    assert!(bodies(&b, &conversation.id)?.contains(&"weer veilig".to_owned()));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_practice_sets_how_often_devices_update_their_keys() -> TestResult {
    let Pair { a, db, server, .. } = pair("Instelling", "phone", "desktop").await?;
    assert_eq!(a.privacy().refresh_rules().await?.key_update_days, 7);
    db.admin(&[
        "practice-settings",
        "--practice",
        "linde",
        "--key-update-days",
        "3",
    ])?;
    assert_eq!(a.privacy().refresh_rules().await?.key_update_days, 3);
    // Out of range: refused, and the setting stays.
    assert!(
        db.admin(&[
            "practice-settings",
            "--practice",
            "linde",
            "--key-update-days",
            "0",
        ])
        .is_err()
    );
    // A manager's device changing another rule leaves it as it is.
    let manager = create_user(&db, "linde", "m", "manager")?;
    let manager = sign_in(&server, &manager, "laptop").await?;
    let rules = manager.privacy().refresh_rules().await?;
    let changed = manager
        .privacy()
        .set_rules(pieper_core::PracticeRules {
            history_messages: 10,
            ..rules
        })
        .await?;
    assert_eq!((changed.history_messages, changed.key_update_days), (10, 3));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_shows_when_this_device_last_updated_its_keys() -> TestResult {
    let db = TestDatabase::new(Backend::Sqlite).await?;
    let huisarts = create_user(&db, "linde", "visser", "huisarts")?;
    let server = Server::start(&db, &[])?;
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
    pieper_ok(dir.path(), &["send", &conv, "iets"])?;
    let shown = pieper_ok(dir.path(), &["keys"])?;
    let line = shown
        .lines()
        .find(|l| l.starts_with(&conv))
        .ok_or(format!("{conv} not shown: {shown}"))?;
    assert!(
        line.contains("Overleg") && line.contains("updated 0 h ago"),
        "{line}"
    );
    assert!(line.contains("messages since"), "{line}");

    let renewed = pieper_ok(dir.path(), &["keys", "--renew-certificate"])?;
    assert!(
        renewed.contains("renewed: pieper:v1:linde/") && renewed.contains("as huisarts, valid 36"),
        "{renewed}"
    );
    // Its sync carried the new certificate to the conversation at once.
    assert!(!renewed.contains("messages since"), "{renewed}");
    assert!(!renewed.contains("DUE NOW"), "{renewed}");

    pieper_ok(dir.path(), &["send", &conv, "nog iets"])?;
    let updated = pieper_ok(dir.path(), &["keys", "--update", &conv])?;
    assert!(updated.contains("updated this device's keys"), "{updated}");
    let line = updated
        .lines()
        .find(|l| l.starts_with(&conv))
        .ok_or("not shown after the update")?
        .to_owned();
    assert!(!line.contains("messages since"), "{line}");
    let metrics = reqwest::get(format!("{}/metrics", server.base))
        .await?
        .text()
        .await?;
    assert!(
        metrics.lines().any(|l| l == "pieper_key_updates_total 2"),
        "{metrics}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_change_reaches_every_device_with_the_renewed_certificate() -> TestResult {
    use pieper_e2e::duty_roster_now;
    let db = TestDatabase::new(Backend::Sqlite).await?;
    let jansen = create_user(&db, "linde", "jansen", "huisarts")?;
    let devries = create_user(&db, "linde", "devries", "poh")?;
    let server = Server::start(&db, &[])?;
    let huisarts = sign_in(&server, &jansen, "phone").await?;
    let poh = sign_in(&server, &devries, "desktop").await?;
    assert!(poh.consent().sync_practice().await?);
    huisarts.sync().await?;

    let roster = duty_roster_now(&devries.id, &jansen.id)?;
    // As a POH, the duty roster is not theirs to set.
    assert!(poh.spoed().set_duty_roster(roster.clone()).await.is_err());

    // She qualified: the operator changes her role; her device renews its
    // certificate, which names it, and carries it to every conversation.
    db.admin(&[
        "set-role",
        "--practice",
        "linde",
        "--username",
        "devries",
        "--role",
        "huisarts",
    ])?;
    let certified = poh.keys().renew_certificate().await?;
    assert!(certified.has(pieper_core::Role::Huisarts), "{certified:?}");
    let due = poh.keys().updates()?;
    assert!(!due.is_empty() && due.iter().all(|u| u.due_now), "{due:?}");
    poh.sync().await?;
    assert!(poh.keys().updates()?.iter().all(|u| !u.due_now));

    // The colleague's device takes the update (it checks the new
    // certificate) and from now on takes her roster.
    huisarts.sync().await?;
    poh.spoed().set_duty_roster(roster).await?;
    huisarts.sync().await?;
    assert_eq!(huisarts.spoed().route_now()?, Some(devries.id.clone()));
    assert_eq!(huisarts.refusals()?.len(), 0);
    let log = db.admin(&["audit-export", "--practice", "linde"])?;
    assert!(log.contains("device.certificate_renew"), "{log}");
    assert!(log.contains("user.role"), "{log}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_packages_older_than_a_month_are_replaced_at_the_next_sync() -> TestResult {
    let Pair {
        a,
        b,
        db: _db,
        server: _server,
        ..
    } = pair("Eerste", "phone", "desktop").await?;
    b.sync().await?;
    // Adding b used one of b's packages.
    assert_eq!(b.devices().key_packages_left().await?, 19);
    // Not yet a month: a sync leaves them.
    b.keys().age_key_packages(29)?;
    b.sync().await?;
    assert_eq!(b.devices().key_packages_left().await?, 19);

    // Older than a month: the sync replaces every one (the unclaimed ones
    // and the last resort) with fresh packages.
    b.keys().age_key_packages(31)?;
    b.sync().await?;
    assert_eq!(b.devices().key_packages_left().await?, 20);
    b.sync().await?;
    assert_eq!(b.devices().key_packages_left().await?, 20, "once");

    // The new ones work: b joins with one and reads.
    let next = a
        .conversations()
        .create(
            "Tweede",
            ConversationKind::Group,
            None,
            std::slice::from_ref(&b.user.id),
        )
        .await?;
    a.conversations()
        .send(&next.id, NewMessage::text("met een nieuw pakket"))
        .await?;
    b.sync().await?;
    assert!(bodies(&b, &next.id)?.contains(&"met een nieuw pakket".to_owned()));
    Ok(())
}
