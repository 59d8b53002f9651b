//! The server against its real binary on loopback, on SQLite and PostgreSQL.

mod common;

use std::time::Duration;

use common::{
    Backend, BoxError, Client, Device, Server, TestDatabase, TestResult, application, commit,
    create_user, current_step, enrol, staff, totp_at, with_fresh_totp,
};
use futures_util::{SinkExt, StreamExt};
use pieper_wire::{
    AuditEvent, ClaimKeyPackages, ClaimedKeyPackages, ConversationInfo, EnvelopeKind,
    KeyPackageCount, Problem, ServerEvent, UploadKeyPackages,
};
use reqwest::Method;
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest};

on_both_backends!(
    login_needs_password_and_a_fresh_totp_code,
    the_test_setting_takes_a_totp_code_twice_and_no_more,
    a_database_from_before_the_migrator_is_taken_over,
    processes_migrating_one_fresh_database_at_once_all_succeed,
    repeated_failures_are_throttled,
    guesses_get_no_more_checks_than_the_limit_and_leave_no_trace_for_made_up_names,
    devices_are_listed_and_revoked_at_once,
    a_manager_disables_a_leaver_and_enables_them_again,
    a_user_has_no_more_devices_than_the_practice_allows,
    an_invited_colleague_enrols_with_a_one_time_code,
    an_operator_revoke_stops_live_delivery_held_by_the_server,
    key_packages_are_claimed_once_with_a_last_resort,
    delivery_follows_membership_epochs_and_ids,
    another_practice_sees_nothing,
    well_known_groups_are_made_only_by_their_own_practice_and_user,
    bad_input_gets_problem_details,
    a_device_that_stops_reading_is_dropped_and_catches_up,
    a_sync_page_carries_a_bounded_number_of_bytes,
    a_client_that_trickles_its_headers_is_dropped,
    secrets_in_the_database_are_sealed_with_a_key_outside_it,
    live_sockets_are_few_per_device_and_take_no_large_messages,
    metrics_take_their_token_when_one_is_set,
    a_practice_holds_no_more_attachments_than_its_quota,
    blobs_are_for_members_and_size_limited,
    the_audit_log_is_for_managers_and_append_only,
    the_log_names_on_whose_behalf_and_machine_traffic_is_no_patient_access,
    the_audit_chain_reports_a_changed_or_removed_record,
    reading_the_audit_log_needs_a_fresh_second_factor,
    devices_report_accesses_and_a_breach_query_names_the_patients,
    the_practice_decides_on_disappearing_messages_and_they_go,
    acknowledged_envelopes_survive_kill_9,
    the_openapi_document_covers_every_route,
    envelopes_are_kept_until_every_device_has_them_or_retention_ends,
    concurrent_writers_all_succeed_in_one_sequence,
    push_tokens_are_checked_replaced_and_removed,
);

async fn setup(backend: Backend, extra: &[&str]) -> Result<(TestDatabase, Server), BoxError> {
    let db = TestDatabase::new(backend).await?;
    create_user(&db, "linde", "bootstrap", "admin")?;
    let server = Server::start(&db, extra)?;
    Ok((db, server))
}

fn expect_problem<T: std::fmt::Debug>(
    r: Result<T, Problem>,
    code: &str,
) -> Result<Problem, BoxError> {
    match r {
        Err(p) if p.code == code => Ok(p),
        other => Err(format!("expected problem {code}, got {other:?}").into()),
    }
}

/// What lifts and puts back the database's refusal of audit record
/// updates (to play a tamperer with the database's own rights).
fn audit_update_guard(backend: Backend) -> (&'static str, &'static str) {
    match backend {
        Backend::Sqlite => (
            "DROP TRIGGER audit_no_update",
            "CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit_events
             BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END",
        ),
        Backend::Postgres => (
            "ALTER TABLE audit_events DISABLE TRIGGER audit_no_change",
            "ALTER TABLE audit_events ENABLE TRIGGER audit_no_change",
        ),
    }
}

/// Opens the audit log to the manager's device with a fresh TOTP code.
async fn unlock_audit(manager: &Device) -> Result<(), BoxError> {
    with_fresh_totp(&manager.user, |code| {
        let client = manager.client.clone();
        async move {
            let r: Result<pieper_wire::AuditUnlocked, Problem> = client
                .call(
                    Method::POST,
                    "/api/v1/audit/unlock",
                    Some(&pieper_wire::AuditUnlock { totp: code }),
                )
                .await?;
            match r {
                Ok(_) => Ok(Some(())),
                Err(p) if p.code == "totp_reused" => Ok(None),
                Err(p) => Err(format!("unlock: {p:?}").into()),
            }
        }
    })
    .await
}

/// Reads the audit log (unlocking it first when it is locked).
async fn audit(manager: &Device, query: &str) -> Result<Vec<AuditEvent>, BoxError> {
    let path = format!("/api/v1/audit?{query}");
    let mut r: Result<Vec<AuditEvent>, Problem> = manager
        .client
        .call::<(), _>(Method::GET, &path, None)
        .await?;
    if matches!(&r, Err(p) if p.code == "audit_locked") {
        unlock_audit(manager).await?;
        r = manager
            .client
            .call::<(), _>(Method::GET, &path, None)
            .await?;
    }
    Ok(r.map_err(|p| format!("audit: {p:?}"))?)
}

async fn the_test_setting_takes_a_totp_code_twice_and_no_more(backend: Backend) -> TestResult {
    let (db, server) = setup(backend, &[]).await?;
    let user = create_user(&db, "linde", "jansen", "huisarts")?;
    let client = Client::new(&server);
    common::early_in_a_step(20).await;
    let step = current_step();
    let code = totp_at(&user, step)?;
    for device in ["phone", "tablet"] {
        client
            .login(&user, &code, device)
            .await?
            .map_err(|p| format!("{device}: {p:?}"))?;
    }
    expect_problem(client.login(&user, &code, "desktop").await?, "totp_reused")?;
    // The next step starts a new count, and then the older one is refused.
    let next = totp_at(&user, step + 1)?;
    client
        .login(&user, &next, "desktop")
        .await?
        .map_err(|p| format!("{p:?}"))?;
    expect_problem(
        client
            .login(&user, &totp_at(&user, step)?, "laptop")
            .await?,
        "totp_reused",
    )?;
    Ok(())
}

async fn processes_migrating_one_fresh_database_at_once_all_succeed(
    backend: Backend,
) -> TestResult {
    // The server and admin commands may start together on a new database
    // (a script that bootstraps while the server comes up).
    let db = TestDatabase::new(backend).await?;
    let outcomes: Vec<Result<String, String>> = std::thread::scope(|scope| {
        let runs: Vec<_> = (0..4)
            .map(|n| {
                let db = &db;
                scope.spawn(move || {
                    db.admin(&[
                        "create-practice",
                        "--id",
                        &format!("praktijk{n}"),
                        "--name",
                        "Praktijk",
                    ])
                    .map_err(|e| e.to_string())
                })
            })
            .collect();
        runs.into_iter()
            .map(|r| r.join().unwrap_or_else(|_| Err("panicked".into())))
            .collect()
    });
    for outcome in outcomes {
        outcome?;
    }
    Ok(())
}

/// The test database's URL, for looking inside it.
fn database_url(db: &TestDatabase) -> String {
    sqlx::any::install_default_drivers();
    db.url.clone().unwrap_or_else(|| {
        format!(
            "sqlite://{}?mode=rwc",
            db.dir.path().join("pieper.sqlite3").display()
        )
    })
}

/// Registers an FCM token for `device`.
async fn register_push_token(device: &Device, token: &str) -> TestResult {
    device
        .client
        .call::<_, serde_json::Value>(
            Method::PUT,
            "/api/v1/devices/me/push-token",
            Some(&serde_json::json!({"provider": "fcm", "token": token})),
        )
        .await?
        .map_err(|p| format!("{p:?}"))?;
    Ok(())
}

/// How many push tokens the server keeps for `device`.
async fn push_tokens_of(db: &TestDatabase, device: &str) -> Result<i64, BoxError> {
    let mut conn = raw_database(db).await?;
    Ok(
        sqlx::query_scalar("SELECT COUNT(*) FROM push_tokens WHERE device_id = $1")
            .bind(device)
            .fetch_one(&mut conn)
            .await?,
    )
}

async fn a_database_from_before_the_migrator_is_taken_over(backend: Backend) -> TestResult {
    let (db, server) = setup(backend, &[]).await?;
    let user = create_user(&db, "linde", "jansen", "huisarts")?;
    drop(server);
    // Make it what the old runner left: steps 1 to 8 counted in
    // schema_version, no migrator table, nothing of the later steps.
    let url = database_url(&db);
    let pool = sqlx::AnyPool::connect(&url).await?;
    let blob_triggers = match backend {
        Backend::Sqlite => "DROP TRIGGER blobs_held_in; DROP TRIGGER blobs_held_out;",
        Backend::Postgres => "DROP TRIGGER blobs_held ON blobs; DROP FUNCTION blobs_held();",
    };
    sqlx::raw_sql(blob_triggers).execute(&pool).await?;
    sqlx::raw_sql(
        "DROP TABLE _sqlx_migrations;
         ALTER TABLE practices DROP COLUMN blob_bytes;
         ALTER TABLE users DROP COLUMN totp_step_uses;
         DROP TABLE practice_authorities;
         ALTER TABLE devices DROP COLUMN signature_key;
         ALTER TABLE devices DROP COLUMN certificate;
         ALTER TABLE devices DROP COLUMN approved_by;
         ALTER TABLE devices DROP COLUMN approval;
         ALTER TABLE devices DROP COLUMN approval_kind;
         ALTER TABLE users DROP COLUMN disabled_at;
         DROP TABLE enrolment_codes;
         ALTER TABLE practices DROP COLUMN devices_per_user;
         ALTER TABLE practices DROP COLUMN key_update_days;
         ALTER TABLE audit_events DROP COLUMN reported_at;
         ALTER TABLE audit_events DROP COLUMN on_behalf_of;
         ALTER TABLE users DROP COLUMN on_behalf_of;
         DROP TABLE throttle_slots;
         ALTER TABLE users DROP COLUMN agb;
         ALTER TABLE users DROP COLUMN big;
         ALTER TABLE users DROP COLUMN uzi;
         CREATE TABLE schema_version (version BIGINT NOT NULL);
         INSERT INTO schema_version (version) VALUES (1), (2), (3), (4), (5), (6), (7), (8);",
    )
    .execute(&pool)
    .await?;
    pool.close().await;

    // Today's server records steps 1 to 8 as applied, runs the later
    // ones, and the account is still there.
    let server = Server::start(&db, &[])?;
    enrol(&server, &user, "phone").await?;
    drop(server);
    let pool = sqlx::AnyPool::connect(&url).await?;
    let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(&pool)
        .await?;
    let migrations =
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite"))?.count();
    assert_eq!(applied, i64::try_from(migrations)?);
    assert!(
        sqlx::query("SELECT 1 FROM schema_version")
            .fetch_optional(&pool)
            .await
            .is_err(),
        "the old table stayed"
    );
    pool.close().await;
    Ok(())
}

async fn login_needs_password_and_a_fresh_totp_code(backend: Backend) -> TestResult {
    // As a practice runs it: without the test setting that takes a code twice.
    let db = TestDatabase::new(backend).await?;
    create_user(&db, "linde", "bootstrap", "admin")?;
    let server = Server::start_strict(&db, &[])?;
    let user = create_user(&db, "linde", "jansen", "huisarts")?;
    let client = Client::new(&server);
    // The checks below speak of this step and the one before.
    common::early_in_a_step(20).await;
    let step = current_step();

    let mut wrong_password = user.clone();
    wrong_password.username = "jansen".into();
    let r = client
        .call::<_, pieper_wire::LoginResponse>(
            Method::POST,
            "/api/v1/login",
            Some(&pieper_wire::LoginRequest {
                practice: "linde".into(),
                username: "jansen".into(),
                password: "not the password at all".into(),
                totp: totp_at(&user, step)?,
                device_name: "phone".into(),
                signature_key: None,
            }),
        )
        .await?;
    let wrong = expect_problem(r, "unauthorized")?;
    // An unknown user gets the very same answer.
    let mut ghost = user.clone();
    ghost.username = "nobody".into();
    let unknown = expect_problem(
        client
            .login(&ghost, &totp_at(&user, step)?, "phone")
            .await?,
        "unauthorized",
    )?;
    assert_eq!(wrong, unknown);

    let bad_code = format!(
        "{:06}",
        (totp_at(&user, step)?.parse::<u32>()? + 1) % 1_000_000
    );
    // A wrong code gets the answer a wrong password gets: it must not tell
    // a guesser the password was right.
    let wrong_code = expect_problem(
        client.login(&user, &bad_code, "phone").await?,
        "unauthorized",
    )?;
    assert_eq!(wrong_code, wrong);
    expect_problem(
        client
            .login(&user, &totp_at(&user, step - 3)?, "phone")
            .await?,
        "unauthorized",
    )?;

    let code = totp_at(&user, step)?;
    let ok = client
        .login(&user, &code, "phone")
        .await?
        .map_err(|p| format!("{p:?}"))?;
    assert!(ok.device_token.starts_with("pdt_"));
    assert_eq!(ok.role, pieper_wire::Role::Huisarts);
    // The device's key came back certified, with the practice's authority.
    let certificate = ok.certificate.as_ref().ok_or("no certificate")?;
    let authority = ok.authority.as_ref().ok_or("no authority")?;
    let member = format!("pieper:v1:linde/{}/{}", ok.user_id, ok.device_id);
    assert!(
        certificate
            .0
            .windows(member.len())
            .any(|w| w == member.as_bytes()),
        "the certificate names the device"
    );
    assert_ne!(certificate.0, authority.0);
    // The same code again (another device) is refused, and so is an older one.
    expect_problem(client.login(&user, &code, "tablet").await?, "totp_reused")?;
    expect_problem(
        client
            .login(&user, &totp_at(&user, step - 1)?, "tablet")
            .await?,
        "totp_reused",
    )?;

    let manager = enrol(
        &server,
        &create_user(&db, "linde", "manager", "manager")?,
        "desktop",
    )
    .await?;
    let events = audit(&manager, "action=login").await?;
    let failures = events.iter().filter(|e| e.outcome == "failure").count();
    let successes = events.iter().filter(|e| e.outcome == "success").count();
    assert_eq!((failures, successes), (6, 2), "{events:#?}");
    assert!(
        events
            .iter()
            .all(|e| e.source.as_deref() == Some("127.0.0.1"))
    );
    let enrolments = audit(&manager, "action=device.enrol").await?;
    assert_eq!(enrolments.len(), 2);

    // Nothing secret reaches the log.
    let log = server.log_text();
    assert!(!log.contains(common::PASSWORD));
    assert!(!log.contains(&ok.device_token));
    assert!(!log.contains(&code));
    Ok(())
}

async fn repeated_failures_are_throttled(backend: Backend) -> TestResult {
    let (db, server) = setup(
        backend,
        &["--login-failures", "3", "--address-failures", "4"],
    )
    .await?;
    let user = create_user(&db, "linde", "bakker", "assistent")?;
    let client = Client::new(&server);
    for _ in 0..3 {
        expect_problem(
            client.login(&user, "000000", "tablet").await?,
            "unauthorized",
        )?;
    }
    // Now even the right code is refused until the window passes.
    let p = expect_problem(
        client
            .login(&user, &totp_at(&user, current_step())?, "tablet")
            .await?,
        "throttled",
    )?;
    assert!(p.retry_after.is_some_and(|s| s > 0 && s <= 900));
    // The count is the database's: another instance on it (behind the same
    // load balancer) refuses the account too, and so does one started anew.
    let second = Server::start(&db, &["--login-failures", "3"])?;
    expect_problem(
        Client::new(&second)
            .login(&user, &totp_at(&user, current_step())?, "tablet")
            .await?,
        "throttled",
    )?;
    drop(second);
    // Failures of several accounts from one address add up.
    let other = create_user(&db, "linde", "devries", "poh")?;
    expect_problem(
        client.login(&other, "000000", "tablet").await?,
        "unauthorized",
    )?;
    expect_problem(
        client
            .login(&other, &totp_at(&other, current_step())?, "tablet")
            .await?,
        "throttled",
    )?;
    let (_, metrics) = client.raw(Method::GET, "/metrics", None, "").await?;
    assert!(
        metrics.contains("pieper_logins_throttled_total 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("pieper_logins_failed_total 4"),
        "{metrics}"
    );
    Ok(())
}

/// A login with a made-up password, as an attacker sends it.
async fn guess(
    client: &Client,
    practice: &str,
    username: &str,
) -> Result<Result<pieper_wire::LoginResponse, Problem>, BoxError> {
    client
        .call(
            Method::POST,
            "/api/v1/login",
            Some(&pieper_wire::LoginRequest {
                practice: practice.into(),
                username: username.into(),
                password: "Welkom01!".into(),
                totp: "123456".into(),
                device_name: "laptop".into(),
                signature_key: None,
            }),
        )
        .await
}

async fn guesses_get_no_more_checks_than_the_limit_and_leave_no_trace_for_made_up_names(
    backend: Backend,
) -> TestResult {
    let (db, server) = setup(
        backend,
        &["--login-failures", "5", "--address-failures", "1000"],
    )
    .await?;
    let user = create_user(&db, "linde", "jansen", "huisarts")?;
    let client = Client::new(&server);

    // 50 guesses at once: each takes its slot before the password is
    // checked, so only the limit's worth are checked at all.
    let answers =
        futures_util::future::join_all((0..50).map(|_| guess(&client, "linde", "jansen"))).await;
    let mut codes = std::collections::BTreeMap::<String, usize>::new();
    for answer in answers {
        let problem = answer?.err().ok_or("a guess got in")?;
        *codes.entry(problem.code).or_default() += 1;
    }
    assert_eq!(
        codes,
        [("throttled".to_owned(), 45), ("unauthorized".to_owned(), 5)].into()
    );
    let (_, metrics) = client.raw(Method::GET, "/metrics", None, "").await?;
    assert!(
        metrics.contains("pieper_logins_failed_total 5"),
        "{metrics}"
    );

    // Names too long or of the wrong characters never reach the throttle,
    // the hash or the log.
    for (practice, username) in [
        ("x".repeat(100_000), "jansen".to_owned()),
        ("linde".to_owned(), "jansen\n".to_owned()),
        ("linde".to_owned(), String::new()),
    ] {
        expect_problem(guess(&client, &practice, &username).await?, "invalid")?;
    }
    // A practice that does not exist: refused like any wrong login, and
    // nothing written to a log that is kept for years.
    expect_problem(guess(&client, "nergens", "jansen").await?, "unauthorized")?;
    let mut conn = db.connect().await?;
    let logged: Vec<String> = sqlx::query_scalar(
        "SELECT practice_id FROM audit_events WHERE action = 'login' ORDER BY id",
    )
    .fetch_all(&mut conn)
    .await?;
    assert_eq!(logged, vec!["linde".to_owned(); 5]);

    // The second factor that opens the audit log is throttled as well.
    let manager = enrol(
        &server,
        &create_user(&db, "linde", "visser", "manager")?,
        "desktop",
    )
    .await?;
    let unlock = |code: &'static str| {
        let client = manager.client.clone();
        async move {
            client
                .call::<_, pieper_wire::AuditUnlocked>(
                    Method::POST,
                    "/api/v1/audit/unlock",
                    Some(&pieper_wire::AuditUnlock { totp: code.into() }),
                )
                .await
        }
    };
    for _ in 0..5 {
        expect_problem(unlock("000000").await?, "totp_invalid")?;
    }
    expect_problem(unlock("000000").await?, "throttled")?;
    drop(user);
    Ok(())
}

async fn a_manager_disables_a_leaver_and_enables_them_again(backend: Backend) -> TestResult {
    let (db, server) = setup(backend, &[]).await?;
    let manager = enrol(
        &server,
        &create_user(&db, "linde", "boer", "manager")?,
        "desktop",
    )
    .await?;
    let leaver_user = create_user(&db, "linde", "bakker", "assistent")?;
    let phone = enrol(&server, &leaver_user, "phone").await?;
    let tablet = enrol(&server, &leaver_user, "tablet").await?;
    let colleague = enrol(
        &server,
        &create_user(&db, "linde", "jansen", "huisarts")?,
        "phone",
    )
    .await?;
    let outsider = enrol(&server, &create_user(&db, "eik", "x", "manager")?, "phone").await?;
    let post = |device: &Device, path: String| {
        let client = device.client.clone();
        async move {
            client
                .call::<(), serde_json::Value>(Method::POST, &path, None)
                .await
        }
    };
    let disable = format!("/api/v1/users/{}/disable", leaver_user.id);
    register_push_token(&phone, "leaver-token").await?;

    // Only the practice's own manager, and not on themselves.
    expect_problem(post(&colleague, disable.clone()).await?, "forbidden")?;
    expect_problem(post(&outsider, disable.clone()).await?, "not_found")?;
    expect_problem(
        post(
            &manager,
            format!("/api/v1/users/{}/disable", manager.login.user_id),
        )
        .await?,
        "invalid",
    )?;

    post(&manager, disable)
        .await?
        .map_err(|p| format!("{p:?}"))?;
    // Their devices are woken no more.
    assert_eq!(push_tokens_of(&db, phone.id()).await?, 0);
    // Every device of theirs stops at once.
    let sync = |device: &Device| {
        let client = device.client.clone();
        async move {
            client
                .call::<(), pieper_wire::SyncResponse>(Method::GET, "/api/v1/sync?after=0", None)
                .await
        }
    };
    for device in [&phone, &tablet] {
        expect_problem(sync(device).await?, "device_revoked")?;
    }
    // No login, with the answer any wrong login gets.
    expect_problem(
        Client::new(&server)
            .login(
                &leaver_user,
                &totp_at(&leaver_user, current_step())?,
                "laptop",
            )
            .await?,
        "unauthorized",
    )?;
    let staff: Vec<pieper_wire::UserInfo> = manager
        .client
        .call::<(), _>(Method::GET, "/api/v1/users", None)
        .await?
        .map_err(|p| format!("{p:?}"))?;
    assert!(staff.iter().any(|u| u.username == "bakker" && u.disabled));
    let events = audit(&manager, "action=user.disable").await?;
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0].user_id.as_deref(),
        Some(manager.login.user_id.as_str())
    );

    post(&manager, format!("/api/v1/users/{}/enable", leaver_user.id))
        .await?
        .map_err(|p| format!("{p:?}"))?;
    enrol(&server, &leaver_user, "laptop").await?;
    // The devices revoked with the disable stay revoked.
    expect_problem(sync(&phone).await?, "device_revoked")?;
    assert_eq!(audit(&manager, "action=user.enable").await?.len(), 1);
    Ok(())
}

async fn a_user_has_no_more_devices_than_the_practice_allows(backend: Backend) -> TestResult {
    let (db, server) = setup(backend, &[]).await?;
    let user = create_user(&db, "linde", "jansen", "huisarts")?;
    let shown = db.admin(&["practice-settings", "--practice", "linde"])?;
    assert!(shown.contains("\"devices_per_user\":10"), "{shown}");
    db.admin(&[
        "practice-settings",
        "--practice",
        "linde",
        "--devices-per-user",
        "2",
    ])?;
    let phone = enrol(&server, &user, "phone").await?;
    enrol(&server, &user, "tablet").await?;
    let third = with_fresh_totp(&user, |code| {
        let client = Client::new(&server);
        let user = user.clone();
        async move {
            match client.login(&user, &code, "laptop").await? {
                Err(p) if p.code == "totp_reused" => Ok(None),
                other => Ok(Some(other)),
            }
        }
    })
    .await?;
    expect_problem(third, "device_limit")?;
    // A change from an app that does not know the setting leaves it.
    let mut settings: pieper_wire::PracticeSettings =
        serde_json::from_str(&db.admin(&["practice-settings", "--practice", "linde"])?)?;
    settings.devices_per_user = None;
    settings.history_messages = 20;
    let manager = enrol(
        &server,
        &create_user(&db, "linde", "boer", "manager")?,
        "desktop",
    )
    .await?;
    manager
        .client
        .call::<_, serde_json::Value>(Method::PUT, "/api/v1/practice/settings", Some(&settings))
        .await?
        .map_err(|p| format!("{p:?}"))?;
    let shown = db.admin(&["practice-settings", "--practice", "linde"])?;
    assert!(shown.contains("\"devices_per_user\":2"), "{shown}");
    // Revoking one makes room.
    phone
        .client
        .call::<(), serde_json::Value>(
            Method::DELETE,
            &format!("/api/v1/devices/{}", phone.login.device_id),
            None,
        )
        .await?
        .map_err(|p| format!("{p:?}"))?;
    enrol(&server, &user, "laptop").await?;
    Ok(())
}

async fn an_invited_colleague_enrols_with_a_one_time_code(backend: Backend) -> TestResult {
    let (db, server) = setup(backend, &[]).await?;
    let manager = enrol(
        &server,
        &create_user(&db, "linde", "boer", "manager")?,
        "desktop",
    )
    .await?;
    let colleague = enrol(
        &server,
        &create_user(&db, "linde", "jansen", "huisarts")?,
        "phone",
    )
    .await?;
    // With the registrations the manager enters (AGB, BIG), checked.
    let registered = pieper_wire::Registrations {
        agb: Some("01999999".into()),
        big: Some("19012345601".into()),
        uzi: None,
    };
    let invite_as = |device: &Device, username: &str, role: pieper_wire::Role, agb: &str| {
        let client = device.client.clone();
        let body = pieper_wire::Invite {
            username: username.into(),
            display_name: "Dr. Smit".into(),
            role,
            registrations: pieper_wire::Registrations {
                agb: Some(agb.into()),
                ..registered.clone()
            },
        };
        async move {
            client
                .call::<_, pieper_wire::EnrolmentCode>(Method::POST, "/api/v1/users", Some(&body))
                .await
        }
    };
    let invite = |device: &Device, username: &str, role: pieper_wire::Role| {
        invite_as(device, username, role, "01999999")
    };
    use pieper_wire::Role;
    expect_problem(
        invite_as(&manager, "smit", Role::Huisarts, "0199").await?,
        "invalid",
    )?;
    expect_problem(
        invite(&colleague, "smit", Role::Huisarts).await?,
        "forbidden",
    )?;
    expect_problem(invite(&manager, "smit", Role::Admin).await?, "invalid")?;
    expect_problem(
        invite(&manager, "smit jr", Role::Huisarts).await?,
        "invalid",
    )?;
    let code = invite(&manager, "smit", Role::Huisarts)
        .await?
        .map_err(|p| format!("{p:?}"))?;
    expect_problem(invite(&manager, "smit", Role::Poh).await?, "conflict")?;

    let client = Client::new(&server);
    let enrol_with = |code: String, password: &str, device: &str| {
        let client = client.clone();
        let body = pieper_wire::EnrolRequest {
            practice: "linde".into(),
            username: "smit".into(),
            code,
            password: password.into(),
            device_name: device.into(),
            signature_key: vec![7; 32].into(),
        };
        async move {
            client
                .call::<_, pieper_wire::EnrolResponse>(Method::POST, "/api/v1/enrol", Some(&body))
                .await
        }
    };
    // A wrong code gets the answer a wrong login gets; a short password is
    // refused before the code is used.
    expect_problem(
        enrol_with("AAAA-BBBB-CCCC-DDDD".into(), common::PASSWORD, "phone").await?,
        "unauthorized",
    )?;
    expect_problem(
        enrol_with(code.code.clone(), "kort", "phone").await?,
        "invalid",
    )?;
    let enrolled = enrol_with(code.code.clone(), common::PASSWORD, "phone")
        .await?
        .map_err(|p| format!("{p:?}"))?;
    assert_eq!(enrolled.login.user_id, code.user_id);
    // The certificate carries the registrations, as names its members'
    // devices read.
    let has = |der: &[u8], name: &str| der.windows(name.len()).any(|w| w == name.as_bytes());
    let certificate = enrolled.login.certificate.clone().ok_or("no certificate")?;
    assert!(has(&certificate.0, "urn:pieper:registration:agb:01999999"));
    assert!(has(
        &certificate.0,
        "urn:pieper:registration:big:19012345601"
    ));
    expect_problem(
        enrol_with(code.code.clone(), common::PASSWORD, "tablet").await?,
        "unauthorized",
    )?;
    let smit = common::User {
        practice: "linde".into(),
        username: "smit".into(),
        id: code.user_id.clone(),
        totp_secret: enrolled.totp_secret.clone(),
    };
    let laptop = enrol(&server, &smit, "laptop").await?;
    // A corrected BIG number reaches the device with its next certificate;
    // only the manager corrects, and only well-formed numbers.
    let correct = |device: &Device, big: &str| {
        let (client, path) = (
            device.client.clone(),
            format!("/api/v1/users/{}/registrations", code.user_id),
        );
        let body = pieper_wire::Registrations {
            big: Some(big.into()),
            ..registered.clone()
        };
        async move {
            client
                .call::<_, serde_json::Value>(Method::PUT, &path, Some(&body))
                .await
        }
    };
    expect_problem(correct(&colleague, "19012345602").await?, "forbidden")?;
    expect_problem(correct(&manager, "1901").await?, "invalid")?;
    correct(&manager, "19012345602")
        .await?
        .map_err(|p| format!("{p:?}"))?;
    let renewed = laptop
        .client
        .call::<(), pieper_wire::RenewedCertificate>(
            Method::POST,
            "/api/v1/devices/me/certificate",
            None,
        )
        .await?
        .map_err(|p| format!("{p:?}"))?;
    assert!(has(
        &renewed.certificate.0,
        "urn:pieper:registration:big:19012345602"
    ));
    assert!(!has(&renewed.certificate.0, "19012345601"));
    let users = manager
        .client
        .call::<(), Vec<pieper_wire::UserInfo>>(Method::GET, "/api/v1/users", None)
        .await?
        .map_err(|p| format!("{p:?}"))?;
    let listed = users
        .iter()
        .find(|u| u.id == code.user_id)
        .ok_or("no smit")?;
    assert_eq!(listed.registrations.big.as_deref(), Some("19012345602"));

    // Another practice's manager cannot reset (and so take over) the
    // login: for them the user does not exist, and nothing changes.
    let outsider = enrol(&server, &create_user(&db, "eik", "x", "manager")?, "phone").await?;
    let r = outsider
        .client
        .call::<(), pieper_wire::EnrolmentCode>(
            Method::POST,
            &format!("/api/v1/users/{}/reset", code.user_id),
            None,
        )
        .await?;
    expect_problem(r, "not_found")?;
    enrol(&server, &smit, "tablet").await?;

    // A reset: the old login stops at once.
    let reset: pieper_wire::EnrolmentCode = manager
        .client
        .call::<(), _>(
            Method::POST,
            &format!("/api/v1/users/{}/reset", code.user_id),
            None,
        )
        .await?
        .map_err(|p| format!("{p:?}"))?;
    expect_problem(
        client
            .login(&smit, &totp_at(&smit, current_step())?, "tablet")
            .await?,
        "unauthorized",
    )?;
    enrol_with(reset.code, common::PASSWORD, "spare")
        .await?
        .map_err(|p| format!("{p:?}"))?;
    let failures = audit(&manager, "action=user.enrol").await?;
    assert_eq!(failures.len(), 2, "{failures:#?}");
    assert_eq!(audit(&manager, "action=user.invite").await?.len(), 1);
    assert_eq!(audit(&manager, "action=user.reset").await?.len(), 1);
    Ok(())
}

async fn devices_are_listed_and_revoked_at_once(backend: Backend) -> TestResult {
    let (db, server) = setup(backend, &[]).await?;
    let user = create_user(&db, "linde", "jansen", "huisarts")?;
    let phone = enrol(&server, &user, "phone").await?;
    let tablet = enrol(&server, &user, "tablet").await?;
    let colleague = enrol(
        &server,
        &create_user(&db, "linde", "bakker", "assistent")?,
        "desk",
    )
    .await?;

    let staff: Vec<pieper_wire::UserInfo> = phone
        .client
        .call::<(), _>(Method::GET, "/api/v1/users", None)
        .await?
        .map_err(|p| format!("{p:?}"))?;
    assert_eq!(
        staff
            .iter()
            .map(|u| (u.username.as_str(), u.role))
            .collect::<Vec<_>>(),
        [
            ("bakker", pieper_wire::Role::Assistent),
            ("bootstrap", pieper_wire::Role::Admin),
            ("jansen", pieper_wire::Role::Huisarts)
        ]
    );
    let mine: Vec<pieper_wire::DeviceInfo> = phone
        .client
        .call::<(), _>(Method::GET, "/api/v1/devices", None)
        .await?
        .map_err(|p| format!("{p:?}"))?;
    assert_eq!(
        mine.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(),
        ["phone", "tablet"]
    );

    // A colleague cannot revoke my device; it looks like it does not exist.
    let r = colleague
        .client
        .call::<(), serde_json::Value>(
            Method::DELETE,
            &format!("/api/v1/devices/{}", tablet.id()),
            None,
        )
        .await?;
    expect_problem(r, "not_found")?;

    // The tablet is live, and registered for push, when the phone revokes it.
    register_push_token(&tablet, "tablet-token").await?;
    assert_eq!(push_tokens_of(&db, tablet.id()).await?, 1);
    let mut ws = connect_ws(&server, &tablet).await?;
    let r = phone
        .client
        .call::<(), serde_json::Value>(
            Method::DELETE,
            &format!("/api/v1/devices/{}", tablet.id()),
            None,
        )
        .await?;
    r.map_err(|p| format!("{p:?}"))?;
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(frame) = ws.next().await {
            match frame {
                Ok(tungstenite::Message::Close(_)) | Err(_) => return true,
                Ok(_) => {}
            }
        }
        true
    })
    .await?;
    assert!(closed);
    let r = tablet
        .client
        .call::<(), serde_json::Value>(Method::GET, "/api/v1/sync", None)
        .await?;
    expect_problem(r, "device_revoked")?;
    // It is woken no more.
    assert_eq!(push_tokens_of(&db, tablet.id()).await?, 0);
    // The phone still works.
    phone.sync(0).await?;
    // A revoked device cannot be added to a conversation; an active one can.
    let conv = phone.create_conversation().await?;
    let r = phone
        .send(&conv, &commit("add-revoked", 0, &[tablet.id()], &[]))
        .await?;
    expect_problem(r, "not_found")?;
    phone
        .send(&conv, &commit("add-desk", 0, &[colleague.id()], &[]))
        .await??;
    let manager = enrol(
        &server,
        &create_user(&db, "linde", "manager", "manager")?,
        "desktop",
    )
    .await?;
    let revocations = audit(&manager, "action=device.revoke").await?;
    assert_eq!(revocations.len(), 1);
    assert_eq!(revocations[0].device_id.as_deref(), Some(phone.id()));
    Ok(())
}

/// The operator's `admin revoke-device` runs as its own process, so it cannot
/// close the live connection the server holds; and the device stays a group
/// member until a member's device commits its removal. The server must still
/// put nothing new on that connection: a patched app would read the frame.
async fn an_operator_revoke_stops_live_delivery_held_by_the_server(backend: Backend) -> TestResult {
    let (db, server) = setup(backend, &[]).await?;
    let [a, b] = staff(
        &db,
        &server,
        [("a", "huisarts", "phone"), ("b", "poh", "phone")],
    )
    .await?;
    let conv = a.conversation_with(&b).await?;
    let mut ws = connect_ws(&server, &b).await?;
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Ids of the envelopes the connection carries within `wait`.
    async fn live_ids(
        ws: &mut tokio_tungstenite::WebSocketStream<
            tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
        >,
        wait: Duration,
    ) -> Result<Vec<String>, BoxError> {
        let mut ids = Vec::new();
        let deadline = tokio::time::Instant::now() + wait;
        while let Ok(frame) = tokio::time::timeout_at(deadline, ws.next()).await {
            match frame {
                Some(Ok(tungstenite::Message::Text(text))) => {
                    if let ServerEvent::Envelope(e) = serde_json::from_str(&text)? {
                        ids.push(e.id);
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => break,
            }
        }
        Ok(ids)
    }

    a.send(&conv, &application("before", 1, b"x")).await??;
    assert_eq!(live_ids(&mut ws, Duration::from_secs(2)).await?, ["before"]);

    db.admin(&["revoke-device", "--device", b.id()])?;
    a.send(&conv, &application("after", 1, b"y")).await??;
    assert!(live_ids(&mut ws, Duration::from_secs(2)).await?.is_empty());
    Ok(())
}

async fn key_packages_are_claimed_once_with_a_last_resort(backend: Backend) -> TestResult {
    let (db, server) = setup(backend, &[]).await?;
    let [a, b] = staff(
        &db,
        &server,
        [("a", "huisarts", "phone"), ("b", "poh", "phone")],
    )
    .await?;
    let last = b.key_package(true)?;
    let upload = |packages: &[Vec<u8>], replace: bool| UploadKeyPackages {
        key_packages: packages.iter().map(|k| k.clone().into()).collect(),
        last_resort: Some(last.clone().into()),
        replace,
    };
    let post = |device: &Device, body: UploadKeyPackages| {
        let client = device.client.clone();
        async move {
            client
                .call::<_, serde_json::Value>(Method::POST, "/api/v1/key-packages", Some(&body))
                .await
        }
    };
    let held = |device: &Device| {
        let client = device.client.clone();
        async move {
            let count: KeyPackageCount = client
                .call::<(), _>(Method::GET, "/api/v1/key-packages", None)
                .await?
                .map_err(|p| format!("{p:?}"))?;
            Ok::<_, BoxError>(count.one_time)
        }
    };
    let made = |n: usize| {
        (0..n)
            .map(|_| b.key_package(false))
            .collect::<Result<Vec<_>, _>>()
    };
    assert_eq!(held(&b).await?, 0);
    // Restored from an old copy, a device replaces the packages whose keys
    // it lost; the stale ones are never handed out.
    let fresh = made(2)?;
    for (packages, replace) in [(made(3)?, false), (fresh.clone(), true)] {
        post(&b, upload(&packages, replace))
            .await?
            .map_err(|p| format!("{p:?}"))?;
    }
    assert_eq!(held(&b).await?, 2);
    // Refused, and nothing of the upload kept: more than a device may hold,
    // a size no real KeyPackage has, bytes that are no KeyPackage, and a
    // colleague's KeyPackage (their certificate and key, not this device's).
    let theirs = a.key_package(false)?;
    for refused in [
        upload(&made(199)?, false),
        upload(&[vec![b'x'; 64 * 1024]], false),
        upload(&[b"kp-3".to_vec()], false),
        upload(&[theirs], false),
        UploadKeyPackages {
            last_resort: Some(a.key_package(true)?.into()),
            ..upload(&[], false)
        },
    ] {
        expect_problem(post(&b, refused).await?, "invalid")?;
        assert_eq!(held(&b).await?, 2);
    }
    let mut got = Vec::new();
    for _ in 0..4 {
        let claimed: ClaimedKeyPackages = a
            .client
            .call(
                Method::POST,
                "/api/v1/key-packages/claim",
                Some(&ClaimKeyPackages {
                    user_ids: vec![b.user.id.clone()],
                    missing_from: None,
                }),
            )
            .await?
            .map_err(|p| format!("{p:?}"))?;
        assert_eq!(claimed.key_packages.len(), 1);
        assert_eq!(claimed.key_packages[0].device_id, b.id());
        got.push(claimed.key_packages[0].key_package.0.clone());
    }
    assert_eq!(
        got,
        [fresh[0].clone(), fresh[1].clone(), last.clone(), last]
    );
    assert_eq!(held(&b).await?, 0);
    // A device that never uploaded is reported as exhausted.
    let claimed: ClaimedKeyPackages = b
        .client
        .call(
            Method::POST,
            "/api/v1/key-packages/claim",
            Some(&ClaimKeyPackages {
                user_ids: vec![a.user.id.clone()],
                missing_from: None,
            }),
        )
        .await?
        .map_err(|p| format!("{p:?}"))?;
    assert!(claimed.key_packages.is_empty());
    assert_eq!(claimed.exhausted_devices, [a.id().to_owned()]);
    Ok(())
}

async fn delivery_follows_membership_epochs_and_ids(backend: Backend) -> TestResult {
    let (db, server) = setup(backend, &[]).await?;
    let [a, b, c] = staff(
        &db,
        &server,
        [
            ("a", "huisarts", "phone"),
            ("b", "poh", "phone"),
            ("c", "assistent", "tablet"),
        ],
    )
    .await?;
    let conv = a.create_conversation().await?;
    a.send(&conv, &application("before-b", 0, b"only a was here"))
        .await??;

    // `a` adds `b` at epoch 0.
    let add = a.send(&conv, &commit("add-b", 0, &[b.id()], &[])).await??;
    // A second commit for epoch 0 (from `b`'s point of view, racing) is stale.
    let stale = expect_problem(
        a.send(&conv, &commit("late", 0, &[c.id()], &[])).await?,
        "stale_epoch",
    )?;
    assert_eq!(stale.current_epoch, Some(1));

    let mut sent = Vec::new();
    for i in 0..5 {
        let mut req = application(&format!("m{i}"), 1, format!("ciphertext {i}").as_bytes());
        req.patient = Some("pseudo-7f3a".into());
        sent.push(a.send(&conv, &req).await??);
    }
    // A resend of m2 gets the same answer and is stored once.
    let again = a
        .send(&conv, &application("m2", 1, b"ciphertext 2"))
        .await??;
    assert_eq!(again, sent[2]);
    assert!(
        sent.windows(2)
            .all(|w| w[1].seq == w[0].seq + 1 && w[1].position > w[0].position)
    );
    assert_eq!(sent[0].seq, add.seq + 1);

    // `b` sees its Welcome and what came after, nothing from before.
    let feed = b.sync(0).await?;
    let kinds: Vec<(EnvelopeKind, String)> = feed
        .envelopes
        .iter()
        .map(|e| (e.kind, e.id.clone()))
        .collect();
    assert_eq!(kinds[0], (EnvelopeKind::Welcome, "add-b".into()));
    assert_eq!(
        &kinds[1..],
        (0..5)
            .map(|i| (EnvelopeKind::Application, format!("m{i}")))
            .collect::<Vec<_>>()
    );
    assert_eq!(feed.envelopes[0].payload.0, b"welcome");
    // Paging: from the middle on.
    let rest = b.sync(feed.envelopes[2].position).await?;
    assert_eq!(rest.envelopes.len(), 3);
    assert_eq!(rest.next, feed.next);

    // `c` is no member: it sees nothing and cannot send.
    assert!(c.sync(0).await?.envelopes.is_empty());
    expect_problem(
        c.send(&conv, &application("x", 1, b"x")).await?,
        "not_found",
    )?;
    // An application message from a future epoch is refused.
    expect_problem(
        a.send(&conv, &application("future", 9, b"x")).await?,
        "invalid",
    )?;

    // `b` commits removing... itself is not the server's business; `a` removes `b`.
    a.send(&conv, &commit("remove-b", 1, &[], &[b.id()]))
        .await??;
    a.send(&conv, &application("after-removal", 2, b"not for b"))
        .await??;
    let feed = b.sync(0).await?;
    let last = feed.envelopes.last().ok_or("empty feed")?;
    assert_eq!(
        (last.kind, last.id.as_str()),
        (EnvelopeKind::Commit, "remove-b")
    );
    let info: ConversationInfo = a
        .client
        .call::<(), _>(Method::GET, &format!("/api/v1/conversations/{conv}"), None)
        .await??;
    assert_eq!(info.epoch, 2);
    assert_eq!(info.member_devices, [a.id().to_owned()]);
    Ok(())
}

/// The practice group, spoed channel and personal groups have ids anyone
/// can derive: the server lets a device make only its own practice's and
/// its own user's, and calls one that someone else holds an alarm.
async fn well_known_groups_are_made_only_by_their_own_practice_and_user(
    backend: Backend,
) -> TestResult {
    use pieper_wire::KnownGroup;
    let (db, server) = setup(backend, &[]).await?;
    let jansen = enrol(
        &server,
        &create_user(&db, "linde", "jansen", "huisarts")?,
        "phone",
    )
    .await?;
    let bakker = enrol(
        &server,
        &create_user(&db, "linde", "bakker", "assistent")?,
        "desktop",
    )
    .await?;
    let outsider = enrol(&server, &create_user(&db, "eik", "x", "manager")?, "phone").await?;
    let linde = |which: KnownGroup, user: &Device| which.id("linde", &user.login.user_id);

    // Nobody makes another practice's groups, or a colleague's personal one.
    for which in KnownGroup::ALL {
        expect_problem(
            outsider
                .create_conversation_named(&linde(which, &jansen))
                .await?,
            "not_yours",
        )?;
    }
    expect_problem(
        bakker
            .create_conversation_named(&linde(KnownGroup::Personal, &jansen))
            .await?,
        "not_yours",
    )?;
    // Its own: the first device makes it, a colleague then waits to be added.
    jansen
        .create_conversation_named(&linde(KnownGroup::Practice, &jansen))
        .await??;
    jansen
        .create_conversation_named(&linde(KnownGroup::Personal, &jansen))
        .await??;
    expect_problem(
        bakker
            .create_conversation_named(&linde(KnownGroup::Practice, &bakker))
            .await?,
        "conflict",
    )?;
    // The other practice's own groups are its own business.
    outsider
        .create_conversation_named(&KnownGroup::Practice.id("eik", &outsider.login.user_id))
        .await??;

    // A spoed channel taken by another practice before the server checked
    // this: for linde an alarm, in its audit log, never a wait.
    let spoed = linde(KnownGroup::Spoed, &jansen);
    let mut conn = db.connect().await?;
    sqlx::query(
        "INSERT INTO conversations (id, practice_id, epoch, next_seq, created_at) VALUES ($1, 'eik', 0, 1, 0)",
    )
    .bind(&spoed)
    .execute(&mut conn)
    .await?;
    sqlx::query(
        "INSERT INTO memberships (conversation_id, device_id, from_position) VALUES ($1, $2, 0)",
    )
    .bind(&spoed)
    .bind(&outsider.login.device_id)
    .execute(&mut conn)
    .await?;
    expect_problem(jansen.create_conversation_named(&spoed).await?, "not_yours")?;
    let manager = enrol(
        &server,
        &create_user(&db, "linde", "visser", "manager")?,
        "desktop",
    )
    .await?;
    let alarms = audit(&manager, "action=conversation.held_elsewhere").await?;
    assert_eq!(alarms.len(), 1, "{alarms:?}");
    assert_eq!(
        alarms[0].device_id.as_deref(),
        Some(jansen.login.device_id.as_str())
    );
    assert_eq!(alarms[0].outcome, "alarm");
    Ok(())
}

async fn another_practice_sees_nothing(backend: Backend) -> TestResult {
    let (db, server) = setup(backend, &[]).await?;
    let a = enrol(
        &server,
        &create_user(&db, "linde", "a", "huisarts")?,
        "phone",
    )
    .await?;
    let outsider = enrol(&server, &create_user(&db, "eik", "x", "manager")?, "phone").await?;
    let conv = a.create_conversation().await?;
    a.send(&conv, &application("m", 0, b"secret")).await??;
    let blob: pieper_wire::BlobCreated = serde_json::from_str(
        &a.client
            .raw(
                Method::POST,
                &format!("/api/v1/conversations/{conv}/blobs"),
                Some(b"sealed".to_vec()),
                "application/octet-stream",
            )
            .await?
            .1,
    )?;

    let missing = uuid::Uuid::new_v4().to_string();
    for (path, method) in [
        (format!("/api/v1/conversations/{conv}"), Method::GET),
        (format!("/api/v1/conversations/{missing}"), Method::GET),
    ] {
        let r = outsider
            .client
            .call::<(), serde_json::Value>(method, &path, None)
            .await?;
        let p = expect_problem(r, "not_found")?;
        assert_eq!(p.detail.as_deref(), Some("conversation not found"));
    }
    expect_problem(
        outsider.send(&conv, &application("y", 0, b"y")).await?,
        "not_found",
    )?;
    let r = outsider
        .client
        .call::<(), serde_json::Value>(Method::GET, &format!("/api/v1/blobs/{}", blob.id), None)
        .await?;
    expect_problem(r, "not_found")?;
    assert!(outsider.sync(0).await?.envelopes.is_empty());
    let r = outsider
        .client
        .call::<_, ClaimedKeyPackages>(
            Method::POST,
            "/api/v1/key-packages/claim",
            Some(&ClaimKeyPackages {
                user_ids: vec![a.user.id.clone()],
                missing_from: None,
            }),
        )
        .await?;
    expect_problem(r, "not_found")?;
    // Its manager's audit view holds nothing of the other practice.
    let events = audit(&outsider, "").await?;
    assert!(events.iter().all(|e| e.practice_id == "eik"));
    // Registering a conversation id that another practice uses is a conflict,
    // not a way in.
    let r = outsider
        .client
        .call::<_, serde_json::Value>(
            Method::POST,
            "/api/v1/conversations",
            Some(&pieper_wire::CreateConversation { id: conv.clone() }),
        )
        .await?;
    expect_problem(r, "conflict")?;
    Ok(())
}

async fn bad_input_gets_problem_details(backend: Backend) -> TestResult {
    let (db, server) = setup(backend, &["--max-json-bytes", "65536"]).await?;
    let a = enrol(
        &server,
        &create_user(&db, "linde", "a", "huisarts")?,
        "phone",
    )
    .await?;
    let conv = a.create_conversation().await?;
    let path = format!("/api/v1/conversations/{conv}/envelopes");
    let cases: Vec<(Vec<u8>, reqwest::StatusCode, &str)> = vec![
        (
            b"{not json".to_vec(),
            reqwest::StatusCode::BAD_REQUEST,
            "invalid",
        ),
        (
            b"{\"id\":\"x\"}".to_vec(),
            reqwest::StatusCode::BAD_REQUEST,
            "invalid",
        ),
        (
            serde_json::to_vec(&application("x", 0, &vec![7u8; 100_000]))?,
            reqwest::StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
        ),
        (
            serde_json::to_vec(&application("bad id with spaces", 0, b"x"))?,
            reqwest::StatusCode::BAD_REQUEST,
            "invalid",
        ),
        (
            b"{\"id\":\"x\",\"kind\":\"application\",\"epoch\":0,\"payload\":\"@@notbase64\"}"
                .to_vec(),
            reqwest::StatusCode::BAD_REQUEST,
            "invalid",
        ),
    ];
    for (body, status, code) in cases {
        let (got, text) = a
            .client
            .raw(Method::POST, &path, Some(body), "application/json")
            .await?;
        assert_eq!(got, status, "{text}");
        let p: Problem = serde_json::from_str(&text)?;
        assert_eq!(p.code, code, "{text}");
    }
    let (status, text) = a
        .client
        .raw(Method::POST, &path, Some(b"{}".to_vec()), "text/plain")
        .await?;
    assert_eq!(
        status,
        reqwest::StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "{text}"
    );
    assert_eq!(serde_json::from_str::<Problem>(&text)?.code, "invalid");

    let anonymous = Client::new(&server);
    let r = anonymous
        .call::<(), serde_json::Value>(Method::GET, "/api/v1/sync", None)
        .await?;
    expect_problem(r, "unauthorized")?;
    let r = anonymous
        .with_token("pdt_forged")
        .call::<(), serde_json::Value>(Method::GET, "/api/v1/sync", None)
        .await?;
    expect_problem(r, "unauthorized")?;
    let r = a
        .client
        .call::<(), serde_json::Value>(Method::GET, "/api/v1/nothing-here", None)
        .await?;
    expect_problem(r, "not_found")?;
    let r = a
        .client
        .call::<(), serde_json::Value>(Method::GET, "/api/v1/sync?limit=0", None)
        .await?;
    expect_problem(r, "invalid")?;
    let r = a
        .client
        .call::<(), serde_json::Value>(Method::GET, "/api/v1/sync?after=-1", None)
        .await?;
    expect_problem(r, "invalid")?;
    // Nothing crashed: the server still answers.
    assert!(a.sync(0).await?.envelopes.is_empty());
    Ok(())
}

async fn connect_ws(
    server: &Server,
    device: &Device,
) -> Result<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    BoxError,
> {
    let mut request = server.ws_url().into_client_request()?;
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {}", device.login.device_token).parse()?,
    );
    let (ws, _) = tokio_tungstenite::connect_async(request).await?;
    Ok(ws)
}

async fn a_practice_holds_no_more_attachments_than_its_quota(backend: Backend) -> TestResult {
    let (db, server) = setup(backend, &["--blob-quota-bytes", "100"]).await?;
    let a = enrol(
        &server,
        &create_user(&db, "linde", "a", "huisarts")?,
        "phone",
    )
    .await?;
    let other = enrol(&server, &create_user(&db, "eik", "x", "huisarts")?, "phone").await?;
    let upload = |device: &Device, conv: String, size: usize| {
        let client = device.client.clone();
        async move {
            client
                .raw(
                    Method::POST,
                    &format!("/api/v1/conversations/{conv}/blobs"),
                    Some(vec![1u8; size]),
                    "application/octet-stream",
                )
                .await
        }
    };
    let conv = a.create_conversation().await?;
    let (status, _) = upload(&a, conv.clone(), 60).await?;
    assert_eq!(status.as_u16(), 201);
    let (status, body) = upload(&a, conv.clone(), 60).await?;
    assert_eq!(status.as_u16(), 507, "{body}");
    let problem: Problem = serde_json::from_str(&body)?;
    assert_eq!(problem.code, "quota_full");
    // Another practice's room is its own, and the server goes on serving.
    let theirs = other.create_conversation().await?;
    let (status, _) = upload(&other, theirs, 60).await?;
    assert_eq!(status.as_u16(), 201);
    let (status, _) = upload(&a, conv.clone(), 40).await?;
    assert_eq!(status.as_u16(), 201);
    // Room comes back when a blob goes, whichever path removes it (here a
    // plain delete, as retention makes): the database keeps the total.
    let mut conn = raw_database(&db).await?;
    sqlx::query("DELETE FROM blobs WHERE size = 60 AND conversation_id = $1")
        .bind(&conv)
        .execute(&mut conn)
        .await?;
    let (status, _) = upload(&a, conv.clone(), 60).await?;
    assert_eq!(status.as_u16(), 201);
    let (status, _) = upload(&a, conv, 1).await?;
    assert_eq!(status.as_u16(), 507);
    Ok(())
}

async fn metrics_take_their_token_when_one_is_set(backend: Backend) -> TestResult {
    let (_db, server) = setup(backend, &["--metrics-token", "scrape-me-7f3a"]).await?;
    let (status, _) = Client::new(&server)
        .raw(Method::GET, "/metrics", None, "")
        .await?;
    assert_eq!(status.as_u16(), 401);
    let (status, _) = Client::new(&server)
        .with_token("scrape-me-7f3b")
        .raw(Method::GET, "/metrics", None, "")
        .await?;
    assert_eq!(status.as_u16(), 401);
    let (status, text) = Client::new(&server)
        .with_token("scrape-me-7f3a")
        .raw(Method::GET, "/metrics", None, "")
        .await?;
    assert_eq!(status.as_u16(), 200);
    assert!(text.contains("pieper_live_connections"), "{text}");
    Ok(())
}

async fn live_sockets_are_few_per_device_and_take_no_large_messages(
    backend: Backend,
) -> TestResult {
    let (db, server) = setup(backend, &[]).await?;
    let [a, b] = staff(
        &db,
        &server,
        [("a", "huisarts", "phone"), ("b", "poh", "phone")],
    )
    .await?;
    let closed = |mut ws: tokio_tungstenite::WebSocketStream<_>| async move {
        loop {
            match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
                Ok(Some(Ok(tungstenite::Message::Close(_))) | None | Some(Err(_))) => {
                    return Ok::<(), BoxError>(());
                }
                Ok(Some(Ok(_))) => {}
                Err(_) => return Err("the socket stayed open".into()),
            }
        }
    };
    // The server registers a socket after its handshake: wait for each, so
    // that which one is oldest is not left to the scheduler.
    let registered = |n: usize| {
        let client = a.client.clone();
        async move {
            for _ in 0..200 {
                let (_, metrics) = client.raw(Method::GET, "/metrics", None, "").await?;
                if metrics.contains(&format!("pieper_live_connections {n}\n")) {
                    return Ok::<(), BoxError>(());
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(format!("{n} sockets never registered").into())
        }
    };
    // A fourth socket of one device: the oldest is told to catch up.
    let first = connect_ws(&server, &a).await?;
    registered(1).await?;
    let mut kept = Vec::new();
    for n in 2..=3 {
        kept.push(connect_ws(&server, &a).await?);
        registered(n).await?;
    }
    kept.push(connect_ws(&server, &a).await?);
    closed(first).await?;
    let (_, metrics) = a.client.raw(Method::GET, "/metrics", None, "").await?;
    assert!(metrics.contains("pieper_live_connections 3"), "{metrics}");

    // A device sends nothing large on its socket: a 64 KiB message ends it,
    // and the server goes on serving everyone.
    let mut loud = connect_ws(&server, &b).await?;
    loud.send(tungstenite::Message::Binary(vec![0u8; 64 * 1024].into()))
        .await?;
    closed(loud).await?;
    assert!(b.sync(0).await?.envelopes.is_empty());
    assert!(a.sync(0).await?.envelopes.is_empty());
    drop(kept);
    Ok(())
}

/// A user's TOTP secret and the practice's authority key, as stored.
async fn stored_secrets(db: &TestDatabase, user: &str) -> Result<(String, Vec<u8>), BoxError> {
    let mut conn = raw_database(db).await?;
    let totp: String = sqlx::query_scalar("SELECT totp_secret FROM users WHERE id = $1")
        .bind(user)
        .fetch_one(&mut conn)
        .await?;
    let key: Vec<u8> =
        sqlx::query_scalar("SELECT key_der FROM practice_authorities WHERE practice_id = 'linde'")
            .fetch_one(&mut conn)
            .await?;
    Ok((totp, key))
}

async fn secrets_in_the_database_are_sealed_with_a_key_outside_it(backend: Backend) -> TestResult {
    let (db, server) = setup(backend, &[]).await?;
    let user = create_user(&db, "linde", "jansen", "huisarts")?;
    // A login makes the practice's authority.
    enrol(&server, &user, "phone").await?;
    drop(server);
    let (totp, key) = stored_secrets(&db, &user.id).await?;
    assert!(
        totp.starts_with("sealed:v1:") && !totp.contains(&user.totp_secret),
        "{totp}"
    );
    assert!(key.starts_with(b"sealed:v1:"));

    // A database from before sealing: its secrets in the clear. The next
    // start seals them, and the user signs in as before.
    let mut conn = raw_database(&db).await?;
    sqlx::query("UPDATE users SET totp_secret = $1 WHERE id = $2")
        .bind(&user.totp_secret)
        .bind(&user.id)
        .execute(&mut conn)
        .await?;
    drop(conn);
    let server = Server::start(&db, &[])?;
    enrol(&server, &user, "tablet").await?;
    let (totp, _) = stored_secrets(&db, &user.id).await?;
    assert!(totp.starts_with("sealed:v1:"), "{totp}");
    drop(server);

    // With another key file the secrets do not open: no login.
    let other_key = db.dir.path().join("other.key");
    let server = Server::start(
        &db,
        &["--secrets-key-file", other_key.to_str().ok_or("path")?],
    )?;
    assert!(enrol(&server, &user, "laptop").await.is_err());
    Ok(())
}

async fn a_client_that_trickles_its_headers_is_dropped(backend: Backend) -> TestResult {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (_db, server) = setup(backend, &["--header-read-timeout-secs", "1"]).await?;
    let address = server
        .base
        .strip_prefix("http://")
        .ok_or("not http")?
        .to_owned();
    // Half a request, then nothing (a slowloris client).
    let mut slow = tokio::net::TcpStream::connect(&address).await?;
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: pieper\r\nX-Slow: 1")
        .await?;
    let started = std::time::Instant::now();
    let mut buffer = [0u8; 1024];
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match slow.read(&mut buffer).await {
                // Closed (a 408 may come first).
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the connection stayed open");
    assert!(started.elapsed() >= Duration::from_millis(900));
    // A client that sends its request in time is served.
    let mut quick = tokio::net::TcpStream::connect(&address).await?;
    quick
        .write_all(b"GET /health HTTP/1.1\r\nHost: pieper\r\nConnection: close\r\n\r\n")
        .await?;
    let mut answer = String::new();
    quick.read_to_string(&mut answer).await?;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    Ok(())
}

async fn a_sync_page_carries_a_bounded_number_of_bytes(backend: Backend) -> TestResult {
    let (db, server) = setup(backend, &["--sync-page-bytes", "100000"]).await?;
    let [a, b] = staff(
        &db,
        &server,
        [("a", "huisarts", "phone"), ("b", "poh", "phone")],
    )
    .await?;
    let conv = a.create_conversation().await?;
    a.send(&conv, &commit("add", 0, &[b.id()], &[])).await??;
    let payload = vec![0x5au8; 48 * 1024];
    for i in 0..5 {
        a.send(&conv, &application(&format!("m{i}"), 1, &payload))
            .await??;
    }
    // One larger than the budget still goes, alone.
    a.send(&conv, &application("groot", 1, &vec![0x5au8; 150 * 1024]))
        .await??;

    // Two 48 KiB envelopes fit in 100 000 bytes, a third does not: every
    // page but the last says there is more, and nothing is skipped.
    let (mut after, mut pages, mut ids) = (0, Vec::new(), Vec::new());
    loop {
        let page = b.sync(after).await?;
        let payload_bytes: usize = page.envelopes.iter().map(|e| e.payload.0.len()).sum();
        pages.push((page.envelopes.len(), page.more));
        assert!(
            page.envelopes.len() == 1 || payload_bytes <= 100_000,
            "{payload_bytes}"
        );
        ids.extend(page.envelopes.iter().map(|e| e.id.clone()));
        after = page.next;
        if !page.more {
            break;
        }
    }
    // The add's Welcome first, then the messages in order.
    let messages: Vec<&str> = ids
        .iter()
        .map(String::as_str)
        .filter(|id| *id != "add")
        .collect();
    assert_eq!(messages, ["m0", "m1", "m2", "m3", "m4", "groot"], "{ids:?}");
    assert!(pages.len() >= 4, "{pages:?}");
    assert!(
        pages.iter().rev().skip(1).all(|(_, more)| *more),
        "{pages:?}"
    );
    Ok(())
}

async fn a_device_that_stops_reading_is_dropped_and_catches_up(backend: Backend) -> TestResult {
    let (db, server) = setup(backend, &["--live-queue", "8"]).await?;
    let [a, b, c] = staff(
        &db,
        &server,
        [
            ("a", "huisarts", "phone"),
            ("b", "poh", "phone"),
            ("c", "assistent", "tablet"),
        ],
    )
    .await?;
    let conv = a.create_conversation().await?;
    a.send(&conv, &commit("add", 0, &[b.id(), c.id()], &[]))
        .await??;

    let mut reader = connect_ws(&server, &b).await?;
    let _stalled = connect_ws(&server, &c).await?; // never read
    tokio::time::sleep(Duration::from_millis(200)).await;

    let count = 300;
    let payload = vec![0x5au8; 48 * 1024];
    let receiving = tokio::spawn(async move {
        let mut ids = Vec::new();
        while ids.len() < count {
            match tokio::time::timeout(Duration::from_secs(30), reader.next()).await {
                Ok(Some(Ok(tungstenite::Message::Text(text)))) => {
                    if let ServerEvent::Envelope(e) = serde_json::from_str(&text)? {
                        ids.push(e.id);
                    }
                }
                Ok(Some(Ok(_))) => {}
                other => {
                    return Err::<Vec<String>, BoxError>(
                        format!("reader stopped: {other:?}").into(),
                    );
                }
            }
        }
        Ok(ids)
    });
    for i in 0..count {
        a.send(&conv, &application(&format!("m{i:03}"), 1, &payload))
            .await??;
    }
    let ids = receiving.await??;
    assert_eq!(
        ids,
        (0..count).map(|i| format!("m{i:03}")).collect::<Vec<_>>()
    );

    let (_, metrics) = a.client.raw(Method::GET, "/metrics", None, "").await?;
    assert!(
        !metrics.contains("pieper_slow_connections_dropped_total 0"),
        "{metrics}"
    );
    // The stalled device misses nothing: it catches up by cursor.
    let mut after = 0;
    let mut caught_up = Vec::new();
    loop {
        let page = c.sync(after).await?;
        caught_up.extend(
            page.envelopes
                .iter()
                .filter(|e| e.kind == EnvelopeKind::Application)
                .map(|e| e.id.clone()),
        );
        after = page.next;
        if !page.more {
            break;
        }
    }
    assert_eq!(
        caught_up,
        (0..count).map(|i| format!("m{i:03}")).collect::<Vec<_>>()
    );
    Ok(())
}

async fn blobs_are_for_members_and_size_limited(backend: Backend) -> TestResult {
    let (db, server) = setup(backend, &["--max-blob-bytes", "100000"]).await?;
    let [a, b, c] = staff(
        &db,
        &server,
        [
            ("a", "huisarts", "phone"),
            ("b", "poh", "phone"),
            ("c", "assistent", "phone"),
        ],
    )
    .await?;
    let conv = a.conversation_with(&b).await?;
    let sealed: Vec<u8> = (0..90_000u32).map(|i| (i % 251) as u8).collect();
    let path = format!("/api/v1/conversations/{conv}/blobs");
    let (status, text) = a
        .client
        .raw(
            Method::POST,
            &path,
            Some(sealed.clone()),
            "application/octet-stream",
        )
        .await?;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{text}");
    let blob: pieper_wire::BlobCreated = serde_json::from_str(&text)?;
    assert_eq!(blob.size, sealed.len() as u64);

    let response = b
        .client
        .http
        .get(format!("{}/api/v1/blobs/{}", server.base, blob.id))
        .bearer_auth(&b.login.device_token)
        .send()
        .await?;
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    assert_eq!(response.bytes().await?.to_vec(), sealed);
    let r = c
        .client
        .call::<(), serde_json::Value>(Method::GET, &format!("/api/v1/blobs/{}", blob.id), None)
        .await?;
    expect_problem(r, "not_found")?;
    let (status, text) = c
        .client
        .raw(
            Method::POST,
            &path,
            Some(b"x".to_vec()),
            "application/octet-stream",
        )
        .await?;
    assert_eq!(status, reqwest::StatusCode::NOT_FOUND, "{text}");
    let (status, text) = a
        .client
        .raw(
            Method::POST,
            &path,
            Some(vec![1u8; 100_001]),
            "application/octet-stream",
        )
        .await?;
    assert_eq!(status, reqwest::StatusCode::PAYLOAD_TOO_LARGE, "{text}");
    assert_eq!(serde_json::from_str::<Problem>(&text)?.code, "too_large");
    Ok(())
}

/// NEN 7513's "on whose behalf": the manager names the huisarts an
/// assistent works for, and every record of hers carries it from then on
/// (the connector's carry the practice); machine traffic (a silent
/// envelope, a commit) is in the log as what it is, never as the patient's.
async fn the_log_names_on_whose_behalf_and_machine_traffic_is_no_patient_access(
    backend: Backend,
) -> TestResult {
    let (db, server) = setup(backend, &[]).await?;
    let [arts, assistent, manager, connector] = staff(
        &db,
        &server,
        [
            ("arts", "huisarts", "phone"),
            ("balie", "assistent", "tablet"),
            ("m", "manager", "desktop"),
            ("his", "connector", "server"),
        ],
    )
    .await?;
    let set = |by: &Device, user: &str, huisarts: Option<&str>| {
        let (client, path) = (
            by.client.clone(),
            format!("/api/v1/users/{user}/on-behalf-of"),
        );
        let body = pieper_wire::OnBehalfOf {
            user: huisarts.map(str::to_owned),
        };
        async move {
            client
                .call::<_, serde_json::Value>(Method::PUT, &path, Some(&body))
                .await
        }
    };
    let (arts_id, balie_id) = (arts.user.id.clone(), assistent.user.id.clone());
    // Only the manager sets it, only to an enabled huisarts, not to oneself.
    expect_problem(
        set(&assistent, &balie_id, Some(&arts_id)).await?,
        "forbidden",
    )?;
    expect_problem(
        set(&manager, &balie_id, Some(&manager.user.id)).await?,
        "invalid",
    )?;
    expect_problem(set(&manager, &arts_id, Some(&arts_id)).await?, "invalid")?;
    expect_problem(set(&manager, &balie_id, Some("nobody")).await?, "not_found")?;
    set(&manager, &balie_id, Some(&arts_id))
        .await?
        .map_err(|p| format!("{p:?}"))?;
    let users = manager
        .client
        .call::<(), Vec<pieper_wire::UserInfo>>(Method::GET, "/api/v1/users", None)
        .await?
        .map_err(|p| format!("{p:?}"))?;
    let balie = users.iter().find(|u| u.id == balie_id).ok_or("no balie")?;
    assert_eq!(balie.on_behalf_of.as_deref(), Some(arts_id.as_str()));

    let conv = assistent.conversation_with(&arts).await?;
    let mut message = application("m1", 1, b"ct");
    message.patient = Some("pseudo-7".into());
    assistent.send(&conv, &message).await??;
    let mut receipt = application("m2", 1, b"ct");
    receipt.patient = Some("pseudo-7".into());
    receipt.silent = true;
    assistent.send(&conv, &receipt).await??;
    let reported = |device: &Device, action: &str| {
        let client = device.client.clone();
        let events = vec![pieper_wire::ReportedAccess {
            id: format!("{action}-1"),
            action: action.into(),
            at: 1_000,
            outcome: "success".into(),
            patient: Some("pseudo-7".into()),
            detail: None,
        }];
        async move {
            client
                .call::<_, serde_json::Value>(
                    Method::POST,
                    "/api/v1/audit/events",
                    Some(&pieper_wire::ReportAccesses { events }),
                )
                .await
        }
    };
    reported(&assistent, "conversation.open").await??;
    reported(&connector, "record.deliver").await??;
    set(&manager, &balie_id, None)
        .await?
        .map_err(|p| format!("{p:?}"))?;
    reported(&assistent, "message.read").await??;

    let of_patient = audit(&manager, "patient=pseudo-7").await?;
    let seen: Vec<(&str, Option<&str>)> = of_patient
        .iter()
        .map(|e| (e.action.as_str(), e.on_behalf_of.as_deref()))
        .collect();
    let practice = "practice:linde";
    assert_eq!(
        seen,
        [
            ("message.send", Some(arts_id.as_str())),
            ("conversation.open", Some(arts_id.as_str())),
            ("record.deliver", Some(practice)),
            ("message.read", None),
        ]
    );
    // Read for an export, the read is the export's one record, under the
    // device's id for it; a made-up export is refused.
    for query in [
        "export=x1&export_action=audit.export",
        "export=x1&export_action=audit.export",
        "export=x2&export_action=patient.export&patient=pseudo-7",
    ] {
        audit(&manager, query).await?;
    }
    assert_eq!(audit(&manager, "action=audit.export").await?.len(), 1);
    let exported = audit(&manager, "action=patient.export").await?;
    assert_eq!(exported.len(), 1);
    assert_eq!(exported[0].patient.as_deref(), Some("pseudo-7"));
    for bad in [
        "export=x3&export_action=message.read",
        "export=x3",
        "export_action=audit.export",
        "export=x3&export_action=patient.export",
    ] {
        let r = manager
            .client
            .call::<(), Vec<AuditEvent>>(Method::GET, &format!("/api/v1/audit?{bad}"), None)
            .await?;
        expect_problem(r, "invalid")?;
    }
    // The silent envelope is there, as machine traffic without the patient.
    let system = audit(&manager, "action=message.system").await?;
    assert_eq!(system.len(), 1);
    assert_eq!(system[0].patient, None);
    assert!(!audit(&manager, "action=group.change").await?.is_empty());
    // The signed head and the chain behind it, for the devices' anchors:
    // a head for managers only; every record's hash recomputes from what
    // the chain hands out, and the last one is the head.
    let r = assistent
        .client
        .call::<(), pieper_wire::AuditHead>(Method::GET, "/api/v1/audit/head", None)
        .await?;
    expect_problem(r, "forbidden")?;
    let head = manager
        .client
        .call::<(), pieper_wire::AuditHead>(Method::GET, "/api/v1/audit/head", None)
        .await?
        .map_err(|p| format!("{p:?}"))?;
    assert!(head.seq > 0 && head.signature.0.len() == 64, "{head:?}");
    let chain = manager
        .client
        .call::<(), Vec<pieper_wire::ChainRecord>>(
            Method::GET,
            "/api/v1/audit/chain?after=0&limit=1000",
            None,
        )
        .await?
        .map_err(|p| format!("{p:?}"))?;
    assert!(chain.iter().all(|r| r.computed_hash() == r.hash));
    let last = chain.iter().find(|r| r.chain_seq as u64 == head.seq);
    assert_eq!(last.map(|r| r.hash.as_str()), Some(head.hash.as_str()));
    let r = manager
        .client
        .call::<(), Vec<pieper_wire::ChainRecord>>(
            Method::GET,
            "/api/v1/audit/chain?after=0&limit=0",
            None,
        )
        .await?;
    expect_problem(r, "invalid")?;
    // The chain covers the new field: it verifies, and a changed one shows.
    db.admin(&["audit-verify", "--practice", "linde"])?;
    let mut conn = raw_database(&db).await?;
    let (disable, enable) = audit_update_guard(backend);
    sqlx::query(disable).execute(&mut conn).await?;
    sqlx::query("UPDATE audit_events SET on_behalf_of = NULL WHERE action = 'conversation.open'")
        .execute(&mut conn)
        .await?;
    sqlx::query(enable).execute(&mut conn).await?;
    let report = db
        .admin(&["audit-verify", "--practice", "linde"])
        .err()
        .ok_or("a changed on-behalf-of went unnoticed")?
        .to_string();
    assert!(report.contains("was changed"), "{report}");
    Ok(())
}

async fn the_audit_log_is_for_managers_and_append_only(backend: Backend) -> TestResult {
    let (db, server) = setup(backend, &[]).await?;
    let [a, b, manager] = staff(
        &db,
        &server,
        [
            ("a", "huisarts", "phone"),
            ("b", "poh", "phone"),
            ("m", "manager", "desktop"),
        ],
    )
    .await?;
    let conv = a.conversation_with(&b).await?;
    let mut req = application("m1", 1, b"ct");
    req.patient = Some("pseudo-42".into());
    a.send(&conv, &req).await??;
    b.sync(0).await?;

    let r = b
        .client
        .call::<(), Vec<AuditEvent>>(Method::GET, "/api/v1/audit", None)
        .await?;
    expect_problem(r, "forbidden")?;

    let events = audit(&manager, "patient=pseudo-42").await?;
    let actions: Vec<(&str, &str)> = events
        .iter()
        .map(|e| (e.action.as_str(), e.user_id.as_deref().unwrap_or("")))
        .collect();
    assert_eq!(
        actions,
        [
            ("message.send", a.user.id.as_str()),
            ("message.fetch", b.user.id.as_str())
        ]
    );
    let send = &events[0];
    assert_eq!(send.role.as_deref(), Some("huisarts"));
    assert_eq!(send.device_id.as_deref(), Some(a.id()));
    assert_eq!(send.source.as_deref(), Some("127.0.0.1"));
    assert!(send.at > 0);

    let (status, csv) = manager
        .client
        .raw(
            Method::GET,
            "/api/v1/audit?format=csv&action=message.send",
            None,
            "",
        )
        .await?;
    assert_eq!(status, reqwest::StatusCode::OK);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "id,recorded,occurred,practice,user,role,on_behalf_of,device,action,outcome,patient,\
         pseudonym,source,detail"
    );
    // The message; the commit that made the conversation is a group.change.
    assert_eq!(lines.len(), 2, "{csv}");
    // Reading the log is itself in the log.
    let reads = audit(&manager, "action=audit.read").await?;
    assert!(reads.len() >= 2);
    // The server's own log never names the patient, not even from a query.
    let log = server.log_text();
    assert!(log.contains("/api/v1/audit"), "requests are logged");
    assert!(!log.contains("pseudo-42"), "patient reference in the log");

    // The database refuses to change or remove audit records.
    let mut conn = raw_database(&db).await?;
    let update = sqlx::query("UPDATE audit_events SET outcome = 'success' WHERE action = 'login'")
        .execute(&mut conn)
        .await;
    assert!(update.is_err());
    let delete = sqlx::query("DELETE FROM audit_events")
        .execute(&mut conn)
        .await;
    assert!(delete.is_err());
    Ok(())
}

/// A raw connection to the server's database (as an intruder would have).
async fn raw_database(db: &TestDatabase) -> Result<sqlx::AnyConnection, BoxError> {
    Ok(<sqlx::AnyConnection as sqlx::Connection>::connect(&database_url(db)).await?)
}

async fn the_audit_chain_reports_a_changed_or_removed_record(backend: Backend) -> TestResult {
    let (db, server) = setup(backend, &[]).await?;
    let [a, b] = staff(
        &db,
        &server,
        [("a", "huisarts", "phone"), ("b", "poh", "phone")],
    )
    .await?;
    let conv = a.conversation_with(&b).await?;
    for i in 0..5 {
        a.send(&conv, &application(&format!("m{i}"), 1, b"ct"))
            .await??;
    }
    let intact = db.admin(&["audit-verify", "--practice", "linde"])?;
    assert!(intact.contains("chain intact"), "{intact}");

    // Someone with the database edits a record, past the trigger.
    let mut conn = raw_database(&db).await?;
    let (disable, enable) = audit_update_guard(backend);
    sqlx::query(disable).execute(&mut conn).await?;
    let edited = sqlx::query(
        "UPDATE audit_events SET user_id = 'someone-else' WHERE action = 'message.send'
         AND detail LIKE '%seq=3 %'",
    )
    .execute(&mut conn)
    .await?;
    assert_eq!(edited.rows_affected(), 1);
    let report = db
        .admin(&["audit-verify", "--practice", "linde"])
        .err()
        .ok_or("an edited record went unnoticed")?
        .to_string();
    assert!(report.contains("CHAIN BROKEN"), "{report}");
    assert!(report.contains("was changed"), "{report}");

    // Put back by hand, it verifies again; a removed record is reported
    // as a gap.
    sqlx::query("UPDATE audit_events SET user_id = $1 WHERE user_id = 'someone-else'")
        .bind(&a.user.id)
        .execute(&mut conn)
        .await?;
    sqlx::query(enable).execute(&mut conn).await?;
    db.admin(&["audit-verify", "--practice", "linde"])?;
    let (disable, enable) = match backend {
        Backend::Sqlite => (
            "DROP TRIGGER audit_no_delete",
            "CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit_events
             WHEN OLD.at >= (CAST(strftime('%s', 'now') AS INTEGER) - 157766400) * 1000
             BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END",
        ),
        Backend::Postgres => (
            "ALTER TABLE audit_events DISABLE TRIGGER audit_no_change",
            "ALTER TABLE audit_events ENABLE TRIGGER audit_no_change",
        ),
    };
    sqlx::query(disable).execute(&mut conn).await?;
    sqlx::query(
        "DELETE FROM audit_events WHERE action = 'message.send' AND detail LIKE '%seq=4 %'",
    )
    .execute(&mut conn)
    .await?;
    sqlx::query(enable).execute(&mut conn).await?;
    let report = db
        .admin(&["audit-verify"])
        .err()
        .ok_or("a removed record went unnoticed")?
        .to_string();
    assert!(report.contains("missing"), "{report}");

    // Records younger than five years cannot be removed even so (pruning
    // older ones: the unit tests of db::audit).
    let young = sqlx::query("DELETE FROM audit_events WHERE action = 'login'")
        .execute(&mut conn)
        .await;
    assert!(young.is_err(), "a young audit record was removed");
    Ok(())
}

async fn reading_the_audit_log_needs_a_fresh_second_factor(backend: Backend) -> TestResult {
    let (db, server) = setup(backend, &[]).await?;
    let [manager] = staff(&db, &server, [("m", "manager", "desktop")]).await?;
    let locked = manager
        .client
        .call::<(), Vec<AuditEvent>>(Method::GET, "/api/v1/audit", None)
        .await?;
    expect_problem(locked, "audit_locked")?;
    let wrong = manager
        .client
        .call::<_, pieper_wire::AuditUnlocked>(
            Method::POST,
            "/api/v1/audit/unlock",
            Some(&pieper_wire::AuditUnlock {
                totp: "000000".into(),
            }),
        )
        .await?;
    expect_problem(wrong, "totp_invalid")?;
    unlock_audit(&manager).await?;
    let events = audit(&manager, "action=audit.unlock").await?;
    // The wrong code, then (perhaps a code the login used, refused as
    // reused, and) the fresh one.
    let first = events.first().ok_or("no unlock events")?;
    assert_eq!(
        (first.outcome.as_str(), first.detail.as_deref()),
        ("failure", Some("wrong TOTP code"))
    );
    assert_eq!(events.last().map(|e| e.outcome.as_str()), Some("success"));
    assert!(!audit(&manager, "action=audit.read").await?.is_empty());
    Ok(())
}

async fn devices_report_accesses_and_a_breach_query_names_the_patients(
    backend: Backend,
) -> TestResult {
    let (db, server) = setup(backend, &[]).await?;
    let [a, b, manager] = staff(
        &db,
        &server,
        [
            ("a", "huisarts", "phone"),
            ("b", "poh", "phone"),
            ("m", "manager", "desktop"),
        ],
    )
    .await?;
    let access = |id: &str, action: &str, patient: &str| pieper_wire::ReportedAccess {
        id: id.into(),
        action: action.into(),
        at: 1_000,
        outcome: "success".into(),
        patient: Some(patient.into()),
        detail: None,
    };
    let report = |device: &Device, events: Vec<pieper_wire::ReportedAccess>| {
        let client = device.client.clone();
        async move {
            client
                .call::<_, serde_json::Value>(
                    Method::POST,
                    "/api/v1/audit/events",
                    Some(&pieper_wire::ReportAccesses { events }),
                )
                .await
        }
    };
    report(
        &a,
        vec![
            access("e1", "message.read", "pseudo-1"),
            access("e2", "message.read", "pseudo-2"),
            access("e3", "record.document", "pseudo-1"),
        ],
    )
    .await??;
    // Sent again (an answer lost on the way): recorded once.
    report(&a, vec![access("e1", "message.read", "pseudo-1")]).await??;
    report(&b, vec![access("e1", "message.read", "pseudo-3")]).await??;
    // An action a device may not claim is refused, and nothing of it kept.
    let forged = report(&b, vec![access("e9", "audit.unlock", "pseudo-3")]).await?;
    expect_problem(forged, "invalid")?;

    let reads = audit(&manager, "action=message.read").await?;
    assert_eq!(reads.len(), 3);
    // The device's time beside the server's own, which orders and prunes
    // the chain: a device clock cannot make a record look old.
    assert!(
        reads
            .iter()
            .all(|e| e.reported_at == Some(1_000) && e.at > 1_000_000)
    );
    let breach: Vec<pieper_wire::BreachEntry> = manager
        .client
        .call::<(), _>(
            Method::GET,
            &format!("/api/v1/audit/breach?device={}&from=0&to=2000", a.id()),
            None,
        )
        .await?
        .map_err(|p| format!("breach: {p:?}"))?;
    let patients: Vec<(&str, u64, &str)> = breach
        .iter()
        .map(|e| (e.patient.as_str(), e.events, e.actions.as_str()))
        .collect();
    assert_eq!(
        patients,
        [
            ("pseudo-1", 2, "message.read,record.document"),
            ("pseudo-2", 1, "message.read")
        ]
    );
    let by_user = db.admin(&[
        "breach",
        "--practice",
        "linde",
        "--user",
        &b.user.id,
        "--from",
        "0",
        "--to",
        "2000",
    ])?;
    assert!(
        by_user.contains("pseudo-3") && !by_user.contains("pseudo-1"),
        "{by_user}"
    );
    let b_breach = b
        .client
        .call::<(), Vec<pieper_wire::BreachEntry>>(
            Method::GET,
            "/api/v1/audit/breach?user=x&from=0&to=1",
            None,
        )
        .await?;
    expect_problem(b_breach, "forbidden")?;
    db.admin(&["audit-verify"])?;
    Ok(())
}

async fn the_practice_decides_on_disappearing_messages_and_they_go(backend: Backend) -> TestResult {
    let (db, server) = setup(backend, &[]).await?;
    let [a, b, manager] = staff(
        &db,
        &server,
        [
            ("a", "huisarts", "phone"),
            ("b", "poh", "phone"),
            ("m", "manager", "desktop"),
        ],
    )
    .await?;
    let conv = a.conversation_with(&b).await?;
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    };
    let set = |device: &Device, policy: &str, secs: Option<u64>| {
        let client = device.client.clone();
        let settings = pieper_wire::PracticeSettings {
            retention_days: 90,
            ttl_policy: policy.into(),
            ttl_secs: secs,
            history_messages: 50,
            devices_per_user: None,
            key_update_days: None,
        };
        async move {
            client
                .call::<_, pieper_wire::PracticeSettings>(
                    Method::PUT,
                    "/api/v1/practice/settings",
                    Some(&settings),
                )
                .await
        }
    };
    expect_problem(set(&b, "forbidden", None).await?, "forbidden")?;
    expect_problem(set(&manager, "enforced", None).await?, "invalid")?;

    set(&manager, "forbidden", None).await??;
    let mut fleeting = application("f1", 1, b"ct");
    fleeting.expires_at = Some(now() + 60_000);
    expect_problem(a.send(&conv, &fleeting).await?, "invalid")?;

    set(&manager, "enforced", Some(60)).await??;
    expect_problem(
        a.send(&conv, &application("plain", 1, b"ct")).await?,
        "invalid",
    )?;
    let mut too_long = application("long", 1, b"ct");
    too_long.expires_at = Some(now() + 3_600_000);
    expect_problem(a.send(&conv, &too_long).await?, "invalid")?;
    // Silent envelopes (receipts, practice data) are no messages.
    let mut receipt = application("receipt", 1, b"ct");
    receipt.silent = true;
    a.send(&conv, &receipt).await??;
    let mut short = application("short", 1, b"ct");
    short.expires_at = Some(now() + 300);
    a.send(&conv, &short).await??;
    let settings: pieper_wire::PracticeSettings = b
        .client
        .call::<(), _>(Method::GET, "/api/v1/practice/settings", None)
        .await?
        .map_err(|p| format!("{p:?}"))?;
    assert_eq!(
        (settings.ttl_policy.as_str(), settings.ttl_secs),
        ("enforced", Some(60))
    );

    // Past its time it is gone, delivered or not: the operator's collect
    // removes it, unless the server's own housekeeping (every few seconds)
    // already did — on a busy machine either may come first.
    tokio::time::sleep(Duration::from_millis(600)).await;
    collect(&db)?;
    let ids: Vec<String> = b
        .sync(0)
        .await?
        .envelopes
        .into_iter()
        .filter(|e| e.kind == EnvelopeKind::Application)
        .map(|e| e.id)
        .collect();
    assert_eq!(ids, ["receipt"]);
    let shown = db.admin(&["practice-settings", "--practice", "linde"])?;
    assert!(shown.contains("\"enforced\""), "{shown}");
    Ok(())
}

async fn acknowledged_envelopes_survive_kill_9(backend: Backend) -> TestResult {
    let (db, mut server) = setup(backend, &[]).await?;
    let [a, b] = staff(
        &db,
        &server,
        [("a", "huisarts", "phone"), ("b", "poh", "phone")],
    )
    .await?;
    let conv = a.conversation_with(&b).await?;
    for i in 0..50 {
        a.send(&conv, &application(&format!("m{i}"), 1, b"ct"))
            .await??;
    }
    server.kill();
    let server = Server::start(&db, &[])?;
    let b = Device {
        client: Client::new(&server).with_token(&b.login.device_token),
        ..b
    };
    let feed = b.sync(0).await?;
    let ids: Vec<&str> = feed
        .envelopes
        .iter()
        .skip(1)
        .map(|e| e.id.as_str())
        .collect();
    assert_eq!(ids, (0..50).map(|i| format!("m{i}")).collect::<Vec<_>>());
    Ok(())
}

async fn the_openapi_document_covers_every_route(backend: Backend) -> TestResult {
    let (_db, server) = setup(backend, &[]).await?;
    let client = Client::new(&server);
    let doc: serde_json::Value = client
        .call::<(), _>(Method::GET, "/openapi.json", None)
        .await??;
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().ok_or("paths")?;
    assert_eq!(paths.len(), 40);
    assert!(
        paths["/api/v1/devices/me/certificate"]
            .get("post")
            .is_some()
    );
    assert!(paths["/api/v1/enrol"].get("post").is_some());
    assert!(paths["/api/v1/users"].get("post").is_some());
    assert!(paths["/api/v1/key-packages"].get("get").is_some());
    assert!(paths["/api/v1/users/{id}/disable"].get("post").is_some());
    assert!(paths["/api/v1/devices/{id}/approval"].get("post").is_some());
    // Generated from the handlers and the wire types: bodies are described,
    // not only paths.
    let login = &paths["/api/v1/login"]["post"];
    assert_eq!(
        login["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/LoginRequest"
    );
    assert_eq!(
        login["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/LoginResponse"
    );
    assert!(login.get("security").is_none(), "login needs no token");
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        schemas["LoginResponse"]["properties"]["device_token"]["type"],
        "string"
    );
    assert_eq!(
        schemas["SendRequest"]["properties"]["payload"]["$ref"],
        "#/components/schemas/Bytes"
    );
    assert_eq!(schemas["Bytes"]["format"], "byte");
    assert!(schemas["Problem"]["properties"]["code"].is_object());
    assert_eq!(
        paths["/api/v1/sync"]["get"]["security"][0]["deviceToken"],
        serde_json::json!([])
    );
    assert!(
        paths["/api/v1/sync"]["get"]["parameters"]
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p["name"] == "after"))
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["deviceToken"]["scheme"],
        "bearer"
    );
    for (path, operations) in paths {
        for method in operations.as_object().ok_or("operations")?.keys() {
            let concrete = path.replace("{id}", "00000000-0000-0000-0000-000000000000");
            let method = Method::from_bytes(method.to_uppercase().as_bytes())?;
            let (status, text) = client
                .raw(method.clone(), &concrete, None, "application/json")
                .await?;
            let routed = !text.contains("route not found");
            assert!(
                routed,
                "{method} {path} is documented but not routed ({status})"
            );
        }
    }
    Ok(())
}

/// Two server processes on one PostgreSQL database deliver live to each
/// other's connected devices.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_postgres_deliver_to_each_other() -> TestResult {
    let db = TestDatabase::new(Backend::Postgres).await?;
    let one = Server::start(&db, &[])?;
    let two = Server::start(&db, &[])?;
    let a = enrol(&one, &create_user(&db, "linde", "a", "huisarts")?, "phone").await?;
    let b = enrol(&two, &create_user(&db, "linde", "b", "poh")?, "phone").await?;
    let conv = a.conversation_with(&b).await?;

    let mut on_two = connect_ws(&two, &b).await?;
    let mut on_one = connect_ws(&one, &a).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    a.send(&conv, &application("from-one", 1, b"ct1")).await??;
    b.send(&conv, &application("from-two", 1, b"ct2")).await??;

    for (ws, expected) in [(&mut on_two, "from-one"), (&mut on_one, "from-two")] {
        // Live delivery may also bring earlier envelopes (the relay can lag
        // the cursor); wait for the one sent through the other instance.
        let got = tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(Ok(frame)) = ws.next().await {
                if let tungstenite::Message::Text(text) = frame
                    && let ServerEvent::Envelope(e) = serde_json::from_str(&text)?
                    && e.kind == EnvelopeKind::Application
                {
                    return Ok::<_, BoxError>(e);
                }
            }
            Err("socket closed".into())
        })
        .await??;
        assert_eq!(got.id, expected);
    }
    Ok(())
}

async fn ack(device: &Device, position: u64) -> TestResult {
    device
        .client
        .call::<_, serde_json::Value>(
            Method::POST,
            "/api/v1/ack",
            Some(&serde_json::json!({ "position": position })),
        )
        .await?
        .map_err(|p| format!("ack: {p:?}"))?;
    Ok(())
}

fn collect(db: &TestDatabase) -> Result<serde_json::Value, BoxError> {
    Ok(serde_json::from_str(db.admin(&["collect"])?.trim())?)
}

async fn envelopes_are_kept_until_every_device_has_them_or_retention_ends(
    backend: Backend,
) -> TestResult {
    let (db, server) = setup(backend, &[]).await?;
    let [a, b, c] = staff(
        &db,
        &server,
        [
            ("a", "huisarts", "phone"),
            ("b", "poh", "phone"),
            ("c", "assistent", "tablet"),
        ],
    )
    .await?;
    let conv = a.create_conversation().await?;
    a.send(&conv, &commit("add", 0, &[b.id(), c.id()], &[]))
        .await??;
    for i in 0..10 {
        a.send(&conv, &application(&format!("m{i}"), 1, b"ct"))
            .await??;
    }
    let head = b.sync(0).await?.next;
    ack(&b, head).await?;

    // `c` has not acknowledged: everything stays for it. What goes: `b`'s
    // Welcome, and the commit that added them (it had no recipients: added
    // devices start from their Welcome).
    let first = collect(&db)?;
    assert_eq!(first["delivered"], 2, "{first}");
    assert_eq!(c.sync(0).await?.envelopes.len(), 11);

    let c_head = c.sync(0).await?.next;
    ack(&c, c_head).await?;
    let second = collect(&db)?;
    // The ten messages and `c`'s Welcome.
    assert_eq!(second["delivered"], 11, "{second}");
    assert!(b.sync(0).await?.envelopes.is_empty());

    // Retention: what nobody acknowledged goes when the period ends.
    a.send(&conv, &application("late", 1, b"ct")).await??;
    let (status, _) = a
        .client
        .raw(
            Method::POST,
            &format!("/api/v1/conversations/{conv}/blobs"),
            Some(b"sealed".to_vec()),
            "application/octet-stream",
        )
        .await?;
    assert_eq!(status, reqwest::StatusCode::CREATED);
    assert_eq!(collect(&db)?["expired"], 0);
    db.admin(&["set-retention", "--practice", "linde", "--days", "0"])?;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let third = collect(&db)?;
    assert_eq!(
        (third["expired"].as_u64(), third["expired_blobs"].as_u64()),
        (Some(1), Some(1)),
        "{third}"
    );
    assert!(c.sync(c_head).await?.envelopes.is_empty());
    Ok(())
}

async fn concurrent_writers_all_succeed_in_one_sequence(backend: Backend) -> TestResult {
    let (db, server) = setup(backend, &[]).await?;
    let mut devices = Vec::new();
    for name in ["a", "b", "c", "d"] {
        devices.push(
            enrol(
                &server,
                &create_user(&db, "linde", name, "huisarts")?,
                "phone",
            )
            .await?,
        );
    }
    let conv = devices[0].create_conversation().await?;
    let others: Vec<&str> = devices[1..].iter().map(|d| d.id()).collect();
    devices[0]
        .send(&conv, &commit("add", 0, &others, &[]))
        .await??;
    let mut tasks = Vec::new();
    for device in devices.clone() {
        let conv = conv.clone();
        tasks.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for i in 0..40 {
                let sent = device
                    .send(
                        &conv,
                        &application(&format!("{}-{i}", device.user.username), 1, b"ct"),
                    )
                    .await??;
                seqs.push(sent.seq);
                if i % 10 == 0 {
                    ack(&device, device.sync(0).await?.next).await?;
                }
            }
            Ok::<_, BoxError>(seqs)
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await??);
    }
    all.sort_unstable();
    // One strictly increasing sequence: 2..=161 after the commit's 1.
    assert_eq!(all, (2..=161).collect::<Vec<u64>>());
    Ok(())
}

async fn push_tokens_are_checked_replaced_and_removed(backend: Backend) -> TestResult {
    let (db, server) = setup(backend, &[]).await?;
    let phone = enrol(
        &server,
        &create_user(&db, "linde", "a", "huisarts")?,
        "phone",
    )
    .await?;
    let put = |body: serde_json::Value| {
        let client = &phone.client;
        async move {
            client
                .call::<_, serde_json::Value>(
                    Method::PUT,
                    "/api/v1/devices/me/push-token",
                    Some(&body),
                )
                .await
        }
    };
    put(serde_json::json!({"provider": "fcm", "token": "fcm-token-1"}))
        .await?
        .map_err(|p| format!("{p:?}"))?;
    // Rotation replaces it.
    put(serde_json::json!({"provider": "fcm", "token": "fcm-token-2"}))
        .await?
        .map_err(|p| format!("{p:?}"))?;
    expect_problem(
        put(serde_json::json!({"provider": "apns", "token": "abc"})).await?,
        "invalid",
    )?;
    expect_problem(
        put(serde_json::json!({"provider": "fcm", "token": "x", "apns_environment": "sandbox"}))
            .await?,
        "invalid",
    )?;
    expect_problem(
        put(serde_json::json!({"provider": "fcm", "token": ""})).await?,
        "invalid",
    )?;
    expect_problem(
        put(serde_json::json!({"provider": "pager", "token": "x"})).await?,
        "invalid",
    )?;
    phone
        .client
        .call::<(), serde_json::Value>(Method::DELETE, "/api/v1/devices/me/push-token", None)
        .await?
        .map_err(|p| format!("{p:?}"))?;
    Ok(())
}
