//! Offline first: catching up, a server killed mid-send, a client killed
//! with a full outbox, a corrupt envelope.

use std::{process::Command, time::Duration};

use pieper_core::{Event, MessageState, NewMessage};
use pieper_e2e::{
    Backend, Pair, Server, TestClient, TestDatabase, TestResult, cli_binary, cli_login,
    create_user, current_step, pair, pieper, sign_in, totp_at, wait_for,
};

/// Ids and bodies of a conversation's messages on a device, oldest first.
fn bodies(client: &TestClient, conversation: &str) -> Result<Vec<String>, pieper_core::Error> {
    Ok(client
        .conversations()
        .messages(conversation, 10_000)?
        .into_iter()
        .map(|m| m.body)
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_offline_for_500_messages_gets_all_in_order() -> TestResult {
    let Pair {
        db: _db,
        server: _server,
        a: sender,
        b: offline,
        conversation: conv,
    } = pair("Weekend", "phone", "tablet").await?;
    offline.sync().await?;
    for i in 0..500 {
        sender
            .conversations()
            .send(&conv.id, NewMessage::text(format!("bericht {i:03}")))
            .await?;
    }
    let report = offline.sync().await?;
    assert_eq!((report.applied, report.skipped), (500, 0));
    let expected: Vec<String> = (0..500).map(|i| format!("bericht {i:03}")).collect();
    assert_eq!(bodies(&offline, &conv.id)?, expected);
    // A second sync finds nothing new: no duplicates.
    assert_eq!(offline.sync().await?.applied, 0);
    assert_eq!(bodies(&offline, &conv.id)?.len(), 500);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_while_clients_send_loses_and_doubles_nothing() -> TestResult {
    let Pair {
        db,
        mut server,
        a: sender,
        b: receiver,
        conversation: conv,
    } = pair("Storing", "phone", "tablet").await?;
    let address = server.base.trim_start_matches("http://").to_owned();

    let sending = {
        let client = sender.client.clone();
        let conv = conv.id.clone();
        tokio::spawn(async move {
            for i in 0..120 {
                // Offline, `send` keeps the message pending in the outbox.
                client
                    .conversations()
                    .send(&conv, NewMessage::text(format!("m{i:03}")))
                    .await?;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            Ok::<_, pieper_core::Error>(())
        })
    };
    tokio::time::sleep(Duration::from_millis(80)).await;
    server.kill();
    tokio::time::sleep(Duration::from_millis(150)).await;
    let _server = Server::start_at(&db, &address, &[])?;
    sending.await??;

    sender.flush_outbox().await?;
    assert_eq!(sender.conversations().waiting()?, 0);
    let states: Vec<MessageState> = sender
        .conversations()
        .messages(&conv.id, 200)?
        .into_iter()
        .map(|m| m.state)
        .collect();
    assert!(
        states.iter().all(|s| *s == MessageState::Sent),
        "{states:?}"
    );
    receiver.sync().await?;
    let expected: Vec<String> = (0..120).map(|i| format!("m{i:03}")).collect();
    assert_eq!(bodies(&receiver, &conv.id)?, expected);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_killed_with_a_full_outbox_drains_it_once_on_restart() -> TestResult {
    let db = TestDatabase::new(Backend::Sqlite).await?;
    let (a, b) = (
        create_user(&db, "linde", "a", "huisarts")?,
        create_user(&db, "linde", "b", "poh")?,
    );
    let mut server = Server::start(&db, &[])?;
    let address = server.base.trim_start_matches("http://").to_owned();
    let receiver = sign_in(&server, &b, "tablet").await?;
    let dir = tempfile::tempdir()?;
    let code = totp_at(&a, current_step())?;
    cli_login(dir.path(), &server, &a, &code, "desktop")?;
    let out = pieper(dir.path(), &["create", "--title", "CLI", "--with", "b"])?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let conv = String::from_utf8(out.stdout)?.trim().to_owned();

    // The server goes away; messages written now wait in the outbox.
    server.kill();
    for i in 0..25 {
        let out = pieper(
            dir.path(),
            &["send", &conv, &format!("uit de outbox {i:02}")],
        )?;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8(out.stdout)?.contains("Pending"));
    }
    let _server = Server::start_at(&db, &address, &[])?;

    // Drain, killing the client process part-way, again and again.
    for delay in [0u64, 5, 10, 20, 40] {
        let mut child = Command::new(cli_binary()?)
            .arg("--dir")
            .arg(dir.path())
            .arg("sync")
            .spawn()?;
        tokio::time::sleep(Duration::from_millis(delay)).await;
        let _ = child.kill();
        child.wait()?;
    }
    let out = pieper(dir.path(), &["sync"])?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = pieper(dir.path(), &["open", &conv, "--limit", "100"])?;
    let lines = String::from_utf8(out.stdout)?;
    assert_eq!(lines.lines().count(), 25, "{lines}");

    receiver.sync().await?;
    let expected: Vec<String> = (0..25).map(|i| format!("uit de outbox {i:02}")).collect();
    assert_eq!(bodies(&receiver, &conv)?, expected);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_envelope_is_reported_and_skipped() -> TestResult {
    let Pair {
        db,
        server: _server,
        a: sender,
        b: receiver,
        conversation: conv,
    } = pair("Corrupt", "phone", "tablet").await?;
    sender
        .conversations()
        .send(&conv.id, NewMessage::text("voor"))
        .await?;
    let damaged = sender
        .conversations()
        .send(&conv.id, NewMessage::text("beschadigd"))
        .await?;
    sender
        .conversations()
        .send(&conv.id, NewMessage::text("na"))
        .await?;

    // The stored ciphertext of one envelope is damaged on the server.
    let mut conn = db.connect().await?;
    let changed = sqlx::query("UPDATE envelopes SET payload = $1 WHERE client_id = $2")
        .bind(vec![0u8, 1, 0xff])
        .bind(&damaged)
        .execute(&mut conn)
        .await?;
    assert_eq!(changed.rows_affected(), 1);

    let mut events = receiver.events();
    let report = receiver.sync().await?;
    assert_eq!(report.skipped, 1);
    let skipped = wait_for(&mut events, Duration::from_secs(5), |e| match e {
        Event::Undecryptable { conversation, .. } => Some(conversation.clone()),
        _ => None,
    })
    .await?;
    assert_eq!(skipped, conv.id);
    // It does not block what follows, and is not fetched again.
    assert_eq!(bodies(&receiver, &conv.id)?, ["voor", "na"]);
    assert_eq!(receiver.sync().await?, pieper_core::SyncReport::default());
    Ok(())
}
