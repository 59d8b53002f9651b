//! Push-token registration from the core to the real server.

use pieper_core::{ApnsEnvironment, Error, PushProvider, PushToken};
use pieper_e2e::{
    Backend, Server, TestDatabase, TestResult, create_user, escalations_meanwhile, sign_in,
};

fn apns(token: &str) -> PushToken {
    PushToken {
        provider: PushProvider::Apns,
        token: token.into(),
        apns_environment: Some(ApnsEnvironment::Sandbox),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_is_registered_rotated_and_kept_while_offline() -> TestResult {
    let db = TestDatabase::new(Backend::Sqlite).await?;
    let huisarts = create_user(&db, "linde", "jansen", "huisarts")?;
    let mut server = Server::start(&db, &[])?;
    let phone = sign_in(&server, &huisarts, "iphone").await?;

    phone.push().register_token(apns("a1b2c3")).await?;
    assert_eq!(phone.push().token()?, Some((apns("a1b2c3"), true)));

    // Bad input is refused before it leaves the device.
    let without_environment = PushToken {
        apns_environment: None,
        ..apns("d4e5")
    };
    assert!(matches!(
        phone.push().register_token(without_environment).await,
        Err(Error::Invalid {
            field: "apns_environment",
            ..
        })
    ));
    assert_eq!(phone.push().token()?, Some((apns("a1b2c3"), true)));

    // The OS rotates the token while the server is down: it is kept, and
    // registered at the first sync once the server is back.
    let address = server.base.trim_start_matches("http://").to_owned();
    server.kill();
    phone.push().register_token(apns("f6a7b8")).await?;
    assert_eq!(phone.push().token()?, Some((apns("f6a7b8"), false)));
    let _server = Server::start_at(&db, &address, &[])?;
    phone.sync().await?;
    assert_eq!(phone.push().token()?, Some((apns("f6a7b8"), true)));

    // After a restart of the app it is still known.
    let phone = phone.reopen().await?;
    assert_eq!(phone.push().token()?, Some((apns("f6a7b8"), true)));
    phone.push().remove_token().await?;
    assert_eq!(phone.push().token()?, None);
    Ok(())
}

use std::{collections::HashMap, time::Duration};

use pieper_core::{ConversationKind, Event, NewMessage, NotificationPath, PatientRef};
use pieper_e2e::{BoxError, wait_for};

use crate::push_endpoints::{
    APNS_KEY_ID, APNS_TEAM_ID, APNS_TOPIC, FCM_CLIENT_EMAIL, FakeApns, FakeFcm, Recorded,
};

const FCM_KEY: &[u8] = include_bytes!("fixtures/fcm-test-service-account-key.pem");
const FCM_PUBLIC_KEY: &[u8] = include_bytes!("fixtures/fcm-test-service-account-key.pub.pem");

/// A server whose push gateway points at local FCM and APNs stand-ins.
struct Gateway {
    db: TestDatabase,
    server: Server,
    fcm: FakeFcm,
    apns: FakeApns,
    _files: tempfile::TempDir,
}

async fn gateway(escalation_secs: u64) -> Result<Gateway, BoxError> {
    let db = TestDatabase::new(Backend::Sqlite).await?;
    let apns_key = rcgen::KeyPair::generate()?;
    let fcm = FakeFcm::start(FCM_PUBLIC_KEY, &["fcm-flaky"])
        .await
        .map_err(|e| e.to_string())?;
    let apns = FakeApns::start(apns_key.public_key_pem().as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let files = tempfile::tempdir()?;
    let account = files.path().join("service-account.json");
    std::fs::write(
        &account,
        serde_json::to_vec(&serde_json::json!({
            "type": "service_account",
            "project_id": "pieper-test",
            "private_key_id": "0123456789abcdef",
            "private_key": std::str::from_utf8(FCM_KEY)?,
            "client_email": FCM_CLIENT_EMAIL,
            "token_uri": format!("{}/token", fcm.base),
        }))?,
    )?;
    let p8 = files.path().join(format!("AuthKey_{APNS_KEY_ID}.p8"));
    std::fs::write(&p8, apns_key.serialize_pem())?;
    let escalation = escalation_secs.to_string();
    let sandbox = format!("{}/sandbox", apns.base);
    let server = Server::start(
        &db,
        &[
            "--fcm-service-account",
            &account.display().to_string(),
            "--fcm-endpoint",
            &fcm.base,
            "--apns-key",
            &p8.display().to_string(),
            "--apns-key-id",
            APNS_KEY_ID,
            "--apns-team-id",
            APNS_TEAM_ID,
            "--apns-topic",
            APNS_TOPIC,
            "--apns-endpoint",
            &apns.base,
            "--apns-sandbox-endpoint",
            &sandbox,
            "--urgent-escalation-secs",
            &escalation,
            "--push-retry-ms",
            "100",
        ],
    )?;
    Ok(Gateway {
        db,
        server,
        fcm,
        apns,
        _files: files,
    })
}

fn fcm(token: &str) -> PushToken {
    PushToken {
        provider: PushProvider::Fcm,
        token: token.into(),
        apns_environment: None,
    }
}

fn to(token: &'static str) -> impl Fn(&Recorded) -> bool {
    move |r| r.body["message"]["token"] == token || r.path.ends_with(&format!("/{token}"))
}

fn data_keys(r: &Recorded) -> Vec<String> {
    let data = if r.body["message"].is_object() {
        &r.body["message"]["data"]
    } else {
        &r.body
    };
    let mut keys: Vec<String> = data
        .as_object()
        .map(|m| m.keys().filter(|k| *k != "aps").cloned().collect())
        .unwrap_or_default();
    keys.sort();
    keys
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_carry_ids_only_with_the_right_priority() -> TestResult {
    let g = gateway(600).await?;
    let huisarts = create_user(&g.db, "linde", "jansen", "huisarts")?;
    let poh = create_user(&g.db, "linde", "devries", "poh")?;
    let assistent = create_user(&g.db, "linde", "bakker", "assistent")?;
    let desktop = sign_in(&g.server, &huisarts, "desktop").await?;
    let iphone = sign_in(&g.server, &poh, "iphone").await?;
    let android = sign_in(&g.server, &assistent, "android").await?;
    let old_tablet = sign_in(&g.server, &assistent, "oude-tablet").await?;
    let second = sign_in(&g.server, &poh, "android").await?;
    iphone.push().register_token(apns("apns-iphone-1")).await?;
    android.push().register_token(fcm("fcm-android")).await?;
    old_tablet.push().register_token(fcm("fcm-dead")).await?;
    second.push().register_token(fcm("fcm-flaky")).await?;

    let conversation = desktop
        .conversations()
        .create(
            "Mw. Smit — INR",
            ConversationKind::Group,
            Some(PatientRef::new("his:patient/48213")?),
            &[poh.id.clone(), assistent.id.clone()],
        )
        .await?;
    // Membership changes and conversation details wake nobody.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(g.fcm.log.all().is_empty() && g.apns.log.all().is_empty());

    let routine = desktop
        .conversations()
        .send(
            &conversation.id,
            NewMessage::text("Uitslag INR 4,1 voor mw. Smit"),
        )
        .await?;
    let android_push = g.fcm.log.wait_for(1, to("fcm-android")).await?.remove(0);
    let message = &android_push.body["message"];
    assert_eq!(android_push.status, 200);
    assert_eq!(message["android"]["priority"], "NORMAL");
    assert!(message.get("notification").is_none(), "data-only");
    assert_eq!(
        data_keys(&android_push),
        ["conversation", "message", "priority", "seq"]
    );
    assert_eq!(message["data"]["conversation"], conversation.id.as_str());
    assert_eq!(message["data"]["message"], routine.as_str());
    assert_eq!(message["data"]["priority"], "routine");
    assert!(android_push.headers["authorization"].starts_with("Bearer ya29.test-"));

    let iphone_push = g.apns.log.wait_for(1, to("apns-iphone-1")).await?.remove(0);
    assert_eq!(iphone_push.status, 200);
    assert_eq!(iphone_push.version, "HTTP/2.0");
    assert_eq!(iphone_push.path, "/sandbox/3/device/apns-iphone-1");
    assert_eq!(iphone_push.headers["apns-push-type"], "alert");
    assert_eq!(iphone_push.headers["apns-topic"], APNS_TOPIC);
    assert_eq!(iphone_push.headers["apns-priority"], "5");
    assert_eq!(iphone_push.body["aps"]["mutable-content"], 1);
    assert_eq!(iphone_push.body["aps"]["interruption-level"], "active");
    assert_eq!(
        data_keys(&iphone_push),
        ["conversation", "message", "priority", "seq"]
    );

    // A 503 is retried; a token FCM calls UNREGISTERED is removed.
    let flaky = g.fcm.log.wait_for(2, to("fcm-flaky")).await?;
    assert_eq!((flaky[0].status, flaky[1].status), (503, 200));
    let dead = g.fcm.log.wait_for(1, to("fcm-dead")).await?;
    assert_eq!(dead[0].status, 404);

    let urgent = desktop
        .conversations()
        .send(
            &conversation.id,
            NewMessage::urgent("Bel mw. Smit vandaag terug"),
        )
        .await?;
    let urgent_to = |r: &Recorded| {
        r.body["message"]["data"]["message"] == urgent.as_str()
            || r.body["message"] == urgent.as_str()
    };
    let android_urgent = g.fcm.log.wait_for(2, urgent_to).await?;
    for push in &android_urgent {
        assert_eq!(push.body["message"]["android"]["priority"], "HIGH");
        assert_eq!(push.body["message"]["data"]["priority"], "urgent");
    }
    let iphone_urgent = g.apns.log.wait_for(1, urgent_to).await?.remove(0);
    assert_eq!(iphone_urgent.headers["apns-priority"], "10");
    assert_eq!(
        iphone_urgent.body["aps"]["interruption-level"],
        "time-sensitive"
    );
    assert_eq!(
        g.fcm.log.all().iter().filter(|r| to("fcm-dead")(r)).count(),
        1,
        "the dead token was removed"
    );
    // One OAuth2 grant served every FCM request (the token is cached).
    assert_eq!(g.fcm.grants.all().len(), 1);
    assert_eq!(g.fcm.grants.all()[0].status, 200);

    // Nothing a person wrote, and no patient, reached Google or Apple.
    let sent: String = g
        .fcm
        .log
        .all()
        .iter()
        .chain(&g.apns.log.all())
        .chain(&g.fcm.grants.all())
        .map(|r| format!("{} {:?} {}", r.path, r.headers, r.body))
        .collect();
    for secret in [
        "Smit",
        "INR",
        "his:patient",
        "Uitslag",
        "Bel mw",
        "jansen",
        "devries",
    ] {
        assert!(!sent.contains(secret), "{secret:?} went to a push provider");
    }

    // The notification service decrypts just that message from the push.
    let data: HashMap<String, String> = ["conversation", "message", "seq", "priority"]
        .iter()
        .map(|k| {
            (
                k.to_string(),
                iphone_urgent.body[k].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let shown = iphone
        .push()
        .notification(&data, Duration::from_secs(5))
        .await?;
    assert!(shown.decrypted);
    assert!(shown.urgent);
    assert_eq!(shown.preview, "Bel mw. Smit vandaag terug");
    assert_eq!(shown.sender, "jansen");
    assert_eq!(shown.conversation_title, "Mw. Smit — INR");
    // A push for a message that cannot be read gives the generic answer.
    let mut unknown = data.clone();
    unknown.insert("message".into(), "no-such-message".into());
    let generic = iphone
        .push()
        .notification(&unknown, Duration::from_millis(500))
        .await?;
    assert!(!generic.decrypted && generic.preview.is_empty() && generic.urgent);
    assert!(matches!(
        iphone
            .push()
            .notification(&HashMap::new(), Duration::from_millis(100))
            .await,
        Err(Error::Invalid { .. })
    ));

    // The OS rotates the iPhone's token: the next push goes to the new one.
    iphone.push().register_token(apns("apns-iphone-2")).await?;
    desktop
        .conversations()
        .send(&conversation.id, NewMessage::text("Nog een vraag"))
        .await?;
    g.apns.log.wait_for(1, to("apns-iphone-2")).await?;
    assert_eq!(
        g.apns
            .log
            .all()
            .iter()
            .filter(|r| to("apns-iphone-1")(r))
            .count(),
        2
    );
    assert!(!g.server.log_text().contains("Smit"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unread_urgent_message_escalates_until_a_recipient_reads_it() -> TestResult {
    let g = gateway(1).await?;
    let huisarts = create_user(&g.db, "linde", "jansen", "huisarts")?;
    let poh = create_user(&g.db, "linde", "devries", "poh")?;
    let desktop = sign_in(&g.server, &huisarts, "desktop").await?;
    let phone = sign_in(&g.server, &huisarts, "phone").await?;
    pieper_e2e::approve(&desktop, &phone).await?;
    let iphone = sign_in(&g.server, &poh, "iphone").await?;
    phone
        .push()
        .register_token(fcm("fcm-huisarts-phone"))
        .await?;
    iphone.push().register_token(apns("apns-poh")).await?;
    let conversation = desktop
        .conversations()
        .create(
            "Spoed",
            ConversationKind::Spoed,
            None,
            std::slice::from_ref(&poh.id),
        )
        .await?;
    let mut events = iphone.events();
    let _live = iphone.start_live();
    wait_for(&mut events, Duration::from_secs(10), |e| {
        matches!(e, Event::Connection(pieper_core::ConnectionState::Online)).then_some(())
    })
    .await?;

    let urgent = desktop
        .conversations()
        .send(
            &conversation.id,
            NewMessage::urgent("Pijn op de borst, wachtkamer"),
        )
        .await?;
    // Escalation pushes reach every member device but the sender's, the
    // live iPhone too, and the live iPhone hears of it.
    let escalated = wait_for(&mut events, Duration::from_secs(10), |e| match e {
        Event::Escalated {
            id, escalations, ..
        } => Some((id.clone(), *escalations)),
        _ => None,
    })
    .await?;
    assert_eq!(escalated, (urgent.clone(), 1));
    let first = |r: &Recorded| {
        r.body["escalation"] == "1" || r.body["message"]["data"]["escalation"] == "1"
    };
    let apns_escalation = g.apns.log.wait_for(1, first).await?.remove(0);
    assert_eq!(apns_escalation.headers["apns-priority"], "10");
    let fcm_escalation = g.fcm.log.wait_for(1, first).await?.remove(0);
    assert_eq!(
        fcm_escalation.body["message"]["android"]["priority"],
        "HIGH"
    );

    // The sender's own devices reading it does not stop it...
    phone
        .conversations()
        .mark_read(&conversation.id, &urgent)
        .await?;
    let second = |r: &Recorded| {
        r.body["escalation"] == "2" || r.body["message"]["data"]["escalation"] == "2"
    };
    g.apns.log.wait_for(1, second).await?;
    // ...a recipient reading it does.
    iphone
        .conversations()
        .mark_read(&conversation.id, &urgent)
        .await?;
    // An urgent message after it, read by nobody, escalates twice
    // meanwhile; the read one is pushed no more.
    while events.try_recv().is_ok() {}
    let of_urgent = |r: &Recorded| {
        r.body["message"]["data"]["message"] == urgent.as_str()
            || r.body["message"] == urgent.as_str()
    };
    let pushed_before = g.apns.log.all().iter().filter(|r| of_urgent(r)).count()
        + g.fcm.log.all().iter().filter(|r| of_urgent(r)).count();
    let marker = desktop
        .conversations()
        .send(
            &conversation.id,
            NewMessage::urgent("Nog iemand in de wachtkamer"),
        )
        .await?;
    let again = escalations_meanwhile(&mut events, &urgent, &marker, 2).await?;
    assert!(
        again.is_empty(),
        "escalated after a recipient read it: {again:?}"
    );
    let pushed_after = g.apns.log.all().iter().filter(|r| of_urgent(r)).count()
        + g.fcm.log.all().iter().filter(|r| of_urgent(r)).count();
    // At most the push already on its way when the read arrived.
    assert!(
        pushed_after <= pushed_before + 1,
        "{pushed_before} then {pushed_after}"
    );
    // Marking read in a conversation one is not in is refused.
    let outsider = sign_in(&g.server, &create_user(&g.db, "linde", "x", "poh")?, "d").await?;
    assert!(matches!(
        outsider
            .conversations()
            .mark_read(&conversation.id, &urgent)
            .await,
        Err(Error::Rejected { .. })
    ));
    Ok(())
}

/// The data of a recorded push (FCM `message.data`, or the APNs body's own
/// fields) as the app's notification service would hand it over.
fn push_data(r: &Recorded) -> HashMap<String, String> {
    let data = if r.body["message"].is_object() {
        &r.body["message"]["data"]
    } else {
        &r.body
    };
    data.as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_notification_self_test_reports_arrival_latency_and_a_dead_token() -> TestResult {
    let g = gateway(120).await?;
    let huisarts = create_user(&g.db, "linde", "jansen", "huisarts")?;
    let poh = create_user(&g.db, "linde", "devries", "poh")?;
    let phone = sign_in(&g.server, &huisarts, "phone").await?;
    let iphone = sign_in(&g.server, &poh, "iphone").await?;
    let tablet = sign_in(&g.server, &poh, "tablet").await?;
    let old = sign_in(&g.server, &huisarts, "old-phone").await?;
    phone.push().register_token(fcm("fcm-selftest")).await?;
    iphone.push().register_token(apns("apns-selftest")).await?;
    old.push().register_token(fcm("fcm-dead")).await?;

    // The Android phone, app open: the test comes live and by FCM, which
    // the test hands to the notification entry point as the OS would.
    let mut events = phone.events();
    let _live = phone.start_live();
    wait_for(&mut events, Duration::from_secs(10), |e| {
        matches!(e, Event::Connection(pieper_core::ConnectionState::Online)).then_some(())
    })
    .await?;
    let test = {
        let phone = phone.client.clone();
        tokio::spawn(async move { phone.push().self_test(false, Duration::from_secs(10)).await })
    };
    let pushed = g.fcm.log.wait_for(1, to("fcm-selftest")).await?.remove(0);
    let data = push_data(&pushed);
    assert_eq!(data.get("self_test").map(String::as_str), Some("1"));
    assert_eq!(pushed.body["message"]["android"]["priority"], "NORMAL");
    let shown = phone
        .push()
        .notification(&data, Duration::from_secs(1))
        .await?;
    assert!(shown.preview.contains("Testmelding"));
    let report = test.await??;
    assert_eq!(report.provider_outcome, "delivered");
    let mut paths: Vec<NotificationPath> = report.arrivals.iter().map(|a| a.path).collect();
    paths.sort_by_key(|p| *p == NotificationPath::Push);
    assert_eq!(paths, [NotificationPath::Live, NotificationPath::Push]);
    assert!(
        report
            .arrivals
            .iter()
            .all(|a| (0..10_000).contains(&a.latency_ms))
    );
    assert!(report.advice.is_empty(), "{:?}", report.advice);

    // The iPhone, urgent: APNs took it, but nothing reached the app in time.
    let report = iphone
        .push()
        .self_test(true, Duration::from_millis(800))
        .await?;
    assert_eq!(report.provider_outcome, "delivered");
    assert!(report.arrivals.is_empty());
    assert!(
        report.advice.iter().any(|a| a.contains("Focus")),
        "{:?}",
        report.advice
    );
    let apns_push = g.apns.log.wait_for(1, to("apns-selftest")).await?.remove(0);
    assert_eq!(apns_push.headers["apns-priority"], "10");

    // A dead token is named as such (and removed); no token says so too.
    let report = old
        .push()
        .self_test(false, Duration::from_millis(500))
        .await?;
    assert_eq!(report.provider_outcome, "token_gone");
    assert!(
        report.advice.iter().any(|a| a.contains("token")),
        "{:?}",
        report.advice
    );
    let report = tablet
        .push()
        .self_test(false, Duration::from_millis(500))
        .await?;
    assert_eq!(report.provider_outcome, "no_token");
    assert!(!report.advice.is_empty());
    Ok(())
}
