//! People come and go: the practice manager disables a leaver and enables
//! them again, through the real server.

use std::time::Duration;

use pieper_core::{ConnectionState, ConversationKind, Error, Event, Refusal};
use pieper_e2e::*;

type TestResult = Result<(), BoxError>;

fn member_users(client: &TestClient, conversation: &str) -> Result<Vec<String>, BoxError> {
    let mut users: Vec<String> = client
        .conversations()
        .members(conversation)?
        .into_iter()
        .map(|m| m.id.user)
        .collect();
    users.sort();
    Ok(users)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaver_disabled_while_online_is_signed_out_removed_everywhere_and_stays_out()
-> TestResult {
    let db = TestDatabase::new(Backend::Sqlite).await?;
    let boer = create_user(&db, "linde", "boer", "manager")?;
    let jansen = create_user(&db, "linde", "jansen", "huisarts")?;
    let bakker = create_user(&db, "linde", "bakker", "assistent")?;
    let server = Server::start(&db, &[])?;
    let manager = sign_in(&server, &boer, "desktop").await?;
    let huisarts = sign_in(&server, &jansen, "phone").await?;
    let leaver = sign_in(&server, &bakker, "phone").await?;

    // The practice group holds all three; the leaver is in a conversation.
    manager.consent().sync_practice().await?;
    huisarts.sync().await?;
    leaver.sync().await?;
    let practice_group = huisarts.consent().practice_group_id()?;
    assert!(member_users(&huisarts, &practice_group)?.contains(&bakker.id));
    let conv = huisarts
        .conversations()
        .create(
            "Overleg",
            ConversationKind::Group,
            None,
            std::slice::from_ref(&bakker.id),
        )
        .await?;
    leaver.sync().await?;

    // A colleague who is no manager cannot, and nothing changes.
    let refused = huisarts.accounts().disable(&bakker.id).await;
    assert!(
        matches!(
            refused,
            Err(Error::Refused {
                reason: Refusal::Role
            })
        ),
        "{refused:?}"
    );

    let mut leaver_events = leaver.events();
    let _live = leaver.start_live();
    manager.accounts().disable(&bakker.id).await?;
    // Signed out at once, while online.
    wait_for(&mut leaver_events, Duration::from_secs(10), |e| {
        matches!(e, Event::Connection(ConnectionState::SignedOut)).then_some(())
    })
    .await?;
    // The manager's device took the leaver out of the practice group; the
    // huisarts's device takes them out of the conversation at its check.
    huisarts.sync().await?;
    huisarts.devices().remove_revoked().await?;
    assert!(!member_users(&huisarts, &practice_group)?.contains(&bakker.id));
    assert_eq!(
        member_users(&huisarts, &conv.id)?,
        std::slice::from_ref(&jansen.id)
    );

    // They cannot sign in again, with the answer any wrong login gets.
    let again = sign_in(&server, &bakker, "new-phone").await;
    let said = again.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(said.contains("unauthorized"), "{said}");
    // The practice group is topped up without them.
    huisarts.consent().sync_practice().await?;
    assert!(!member_users(&huisarts, &practice_group)?.contains(&bakker.id));
    let listed = manager.accounts().list().await?;
    assert!(listed.iter().any(|u| u.id == bakker.id && u.disabled));
    assert!(listed.iter().any(|u| u.id == jansen.id && !u.disabled));

    // Back from a suspension: enabled, they sign in on a new device. With
    // every device of theirs revoked nobody vouches for it, so colleagues'
    // devices do not take it in...
    manager.accounts().enable(&bakker.id).await?;
    let back = sign_in(&server, &bakker, "new-phone").await?;
    back.sync().await?;
    huisarts.consent().sync_practice().await?;
    assert!(!member_users(&huisarts, &practice_group)?.contains(&bakker.id));
    // ...until the manager, with the person in front of them, resets their
    // identity (the code on the new phone compared on both screens).
    let code = back.devices().approval_code()?;
    manager
        .devices()
        .reset_identity(&back.id().device, &code)
        .await?;
    huisarts.consent().sync_practice().await?;
    assert!(member_users(&huisarts, &practice_group)?.contains(&bakker.id));
    Ok(())
}

/// The operator does the same from the server's command line (a practice
/// without a manager's device at hand), and the practice's log says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_disables_and_enables_a_user_from_the_command_line() -> TestResult {
    let db = TestDatabase::new(Backend::Sqlite).await?;
    let bakker = create_user(&db, "linde", "bakker", "assistent")?;
    let server = Server::start(&db, &[])?;
    let phone = sign_in(&server, &bakker, "phone").await?;
    let said = db.admin(&[
        "disable-user",
        "--practice",
        "linde",
        "--username",
        "bakker",
    ])?;
    assert!(said.contains("revoked 1 device"), "{said}");
    // Its next call finds it revoked: it wipes itself.
    assert!(matches!(phone.sync().await, Err(Error::Revoked)));
    assert!(!phone.dir.path().join("pieper.db.key").exists());
    let log = db.admin(&["audit-export", "--practice", "linde"])?;
    assert!(
        log.lines()
            .any(|l| l.contains("user.disable") && l.contains("operator")),
        "{log}"
    );
    let again = sign_in(&server, &bakker, "laptop").await;
    assert!(again.is_err());
    db.admin(&["enable-user", "--practice", "linde", "--username", "bakker"])?;
    sign_in(&server, &bakker, "laptop").await?;
    let unknown = db.admin(&[
        "disable-user",
        "--practice",
        "linde",
        "--username",
        "nobody",
    ]);
    assert!(unknown.is_err());
    Ok(())
}

/// Enrols a device with an enrolment code, choosing the test password.
async fn enrol(
    server: &Server,
    username: &str,
    code: &str,
    device: &str,
) -> Result<(pieper_core::Client, tempfile::TempDir, String), BoxError> {
    let dir = tempfile::tempdir()?;
    let keystore = pieper_e2e::keystore_in(dir.path())?;
    let (client, authenticator) = pieper_core::Client::enrol(
        &server.base,
        dir.path(),
        keystore,
        pieper_core::EnrolmentCredentials {
            practice: "linde".into(),
            username: username.into(),
            code: code.into(),
            password: PASSWORD.into(),
            device_name: device.into(),
        },
    )
    .await?;
    assert!(authenticator.otpauth_url.starts_with("otpauth://totp/"));
    Ok((client, dir, authenticator.secret))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invited_colleague_sets_their_own_login_and_a_reset_stops_the_old_one() -> TestResult {
    let db = TestDatabase::new(Backend::Sqlite).await?;
    let boer = create_user(&db, "linde", "boer", "manager")?;
    let jansen = create_user(&db, "linde", "jansen", "huisarts")?;
    let server = Server::start(&db, &[])?;
    let manager = sign_in(&server, &boer, "desktop").await?;
    let huisarts = sign_in(&server, &jansen, "phone").await?;

    // Only the manager invites.
    let refused = huisarts
        .accounts()
        .invite("smit", "Dr. Smit", pieper_core::Role::Huisarts)
        .await;
    assert!(matches!(refused, Err(Error::Refused { .. })), "{refused:?}");
    let invited = manager
        .accounts()
        .invite("smit", "Dr. Smit", pieper_core::Role::Huisarts)
        .await?;
    // Nobody signs in before the code is used: there is no password yet.
    let smit = |secret: &str| User {
        practice: "linde".into(),
        username: "smit".into(),
        id: invited.user_id.clone(),
        totp_secret: secret.into(),
    };
    assert!(
        sign_in(&server, &smit("JBSWY3DPEHPK3PXP"), "laptop")
            .await
            .is_err()
    );

    // Smit enrols the first device with the code, typed loosely.
    let typed = invited.code.to_lowercase().replace('-', " ");
    let (phone, _phone_dir, secret) = enrol(&server, "smit", &typed, "phone").await?;
    assert_eq!(phone.id().user, invited.user_id);
    // The code is spent.
    assert!(
        enrol(&server, "smit", &invited.code, "tablet")
            .await
            .is_err()
    );
    // Password and the new authenticator sign in.
    sign_in(&server, &smit(&secret), "laptop").await?;

    // Smit lost the authenticator: the manager resets the login. The old
    // password and authenticator stop at once; the new code sets new ones.
    let reset = manager.accounts().reset_login(&invited.user_id).await?;
    let old = sign_in(&server, &smit(&secret), "tablet").await;
    let said = old.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(said.contains("unauthorized"), "{said}");
    let (_tablet, _tablet_dir, new_secret) = enrol(&server, "smit", &reset.code, "tablet").await?;
    assert_ne!(new_secret, secret);
    sign_in(&server, &smit(&new_secret), "desktop").await?;

    // A code waiting for a disabled colleague is void.
    let pending = manager.accounts().reset_login(&invited.user_id).await?;
    manager.accounts().disable(&invited.user_id).await?;
    manager.accounts().enable(&invited.user_id).await?;
    assert!(
        enrol(&server, "smit", &pending.code, "spare")
            .await
            .is_err()
    );
    let log = db.admin(&["audit-export", "--practice", "linde"])?;
    for action in ["user.invite", "user.reset", "user.enable"] {
        assert!(log.contains(action), "{action} missing from {log}");
    }
    Ok(())
}

/// The registrations the manager enters travel in the certificates: a
/// colleague's device reads them from the verified certificate of a member,
/// and a correction reaches it once the member's device renewed its
/// certificate and updated its keys in the conversation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_travel_in_the_certificates_and_a_correction_follows() -> TestResult {
    let db = TestDatabase::new(Backend::Sqlite).await?;
    let boer = create_user(&db, "linde", "boer", "manager")?;
    let jansen = create_user(&db, "linde", "jansen", "huisarts")?;
    let server = Server::start(&db, &[])?;
    let manager = sign_in(&server, &boer, "desktop").await?;
    let huisarts = sign_in(&server, &jansen, "phone").await?;
    let registered = |big: &str| pieper_core::Registrations {
        agb: Some("01999999".into()),
        big: Some(big.into()),
        uzi: None,
    };
    // A malformed number is refused before anything is made.
    let wrong = manager
        .accounts()
        .invite_registered(
            "smit",
            "Dr. Smit",
            pieper_core::Role::Poh,
            registered("123"),
        )
        .await;
    assert!(matches!(wrong, Err(Error::Invalid { .. })), "{wrong:?}");
    let invited = manager
        .accounts()
        .invite_registered(
            "smit",
            "Dr. Smit",
            pieper_core::Role::Poh,
            registered("19012345601"),
        )
        .await?;
    let (smit, _dir, _secret) = enrol(&server, "smit", &invited.code, "phone").await?;
    let conversation = huisarts
        .conversations()
        .create(
            "Overleg",
            ConversationKind::Group,
            None,
            std::slice::from_ref(&invited.user_id),
        )
        .await?;
    let seen = |client: &pieper_core::Client| -> Result<pieper_core::Registrations, BoxError> {
        Ok(client
            .conversations()
            .certified_members(&conversation.id)?
            .into_iter()
            .find(|m| m.id.user == invited.user_id)
            .ok_or("smit is no member")?
            .registrations)
    };
    assert_eq!(seen(&huisarts)?, registered("19012345601"));

    // Corrected by the manager; Smit's device renews and updates its keys.
    manager
        .accounts()
        .set_registrations(&invited.user_id, registered("19012345602"))
        .await?;
    smit.sync().await?;
    let renewed = smit.keys().renew_certificate().await?;
    assert_eq!(renewed.registrations, registered("19012345602"));
    // Its next sync carries the new certificate into the conversation.
    smit.sync().await?;
    huisarts.sync().await?;
    assert_eq!(seen(&huisarts)?, registered("19012345602"));
    Ok(())
}
