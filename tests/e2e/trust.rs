//! Trust inside the encryption, against a hostile colleague and a hostile
//! server: every device checks who a member is (the certificate the
//! practice's authority issued at enrolment) and what their role allows,
//! never what the content or the server claims.

use std::time::Duration;

use pieper_core::{ConversationKind, Error, Event, NewMessage, PatientRef, Refusal};
use pieper_e2e::*;

type TestResult = Result<(), BoxError>;

const BSN: &str = "999911120";

/// What whoever controls the server's database can do: give `user` a
/// device "slipped-in" of its own (with a certificate and an approval, by
/// a device and its signature, when given) and KeyPackages ready to be
/// claimed.
async fn slip_in(
    conn: &mut sqlx::AnyConnection,
    user: &str,
    certificate: Option<&[u8]>,
    approval: Option<(&str, Vec<u8>)>,
    key_packages: Vec<Vec<u8>>,
) -> Result<(), BoxError> {
    let (approved_by, signature) = approval.unzip();
    sqlx::query(
        "INSERT INTO devices (id, user_id, practice_id, name, token_hash, created_at, certificate, approved_by, approval)
         VALUES ('slipped-in', $1, 'linde', 'laptop', 'not-a-token', 0, $2, $3, $4)",
    )
    .bind(user)
    .bind(certificate)
    .bind(approved_by)
    .bind(signature)
    .execute(&mut *conn)
    .await?;
    for kp in key_packages {
        sqlx::query(
            "INSERT INTO key_packages (device_id, data, last_resort) VALUES ('slipped-in', $1, 0)",
        )
        .bind(kp)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// What whoever holds the practice's authority key (kept by the server)
/// can make: a device of its own for `user`, with a certificate the
/// authority signed. Returns the device, its certificate and its folder.
async fn forge_device(
    db: &TestDatabase,
    conn: &mut sqlx::AnyConnection,
    user: &str,
) -> Result<(pieper_core::Device, Vec<u8>, tempfile::TempDir), BoxError> {
    let (sealed, certificate): (Vec<u8>, Vec<u8>) = sqlx::query_as(
        "SELECT key_der, certificate FROM practice_authorities WHERE practice_id = 'linde'",
    )
    .fetch_one(&mut *conn)
    .await?;
    let sealer = pieper_server::secrets::Sealer::from_file(&db.dir.path().join("secrets.key"))?;
    let authority = pieper_authority::Authority {
        practice: "linde".into(),
        key_der: sealer.open_bytes(&pieper_server::secrets::authority_context("linde"), &sealed)?,
        certificate,
    };
    let enrolment = pieper_core::Enrolment::new()?;
    let forged = authority.certify(
        &pieper_authority::Subject {
            practice: "linde",
            user,
            device: "slipped-in",
            role: pieper_wire::Role::Assistent,
            registrations: &pieper_wire::Registrations::default(),
        },
        &enrolment.signature_key(),
    )?;
    let dir = tempfile::tempdir()?;
    let keystore = pieper_core::FileKeyStore::in_dir(dir.path())?;
    let fake = pieper_core::Device::create(
        dir.path(),
        &keystore,
        enrolment,
        &forged,
        &authority.certificate,
    )?;
    Ok((fake, forged, dir))
}

/// The member devices of a conversation, as `client` has them.
fn member_devices(client: &TestClient, conversation: &str) -> Result<Vec<String>, BoxError> {
    Ok(client
        .conversations()
        .members(conversation)?
        .into_iter()
        .map(|m| m.id.device)
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_the_server_slips_in_for_a_user_is_added_by_nobody() -> TestResult {
    let (db, server, huisarts, assistent) = colleagues().await?;
    let bakker = assistent.user.clone();
    // A real KeyPackage, certified by another practice's authority.
    let stranger = create_user(&db, "elders", "x", "huisarts")?;
    let outsider = sign_in(&server, &stranger, "phone").await?;

    // Whoever controls the server's database gives bakker a device of its
    // own, with that KeyPackage ready to be claimed.
    let mut conn = db.connect().await?;
    let key_package: Vec<u8> = sqlx::query_scalar(
        "SELECT data FROM key_packages WHERE device_id = $1 AND last_resort = 0 LIMIT 1",
    )
    .bind(&outsider.id().device)
    .fetch_one(&mut conn)
    .await?;
    slip_in(&mut conn, &bakker.id, None, None, vec![key_package]).await?;

    // A colleague adding bakker adds bakker's real device only.
    let conv = huisarts
        .conversations()
        .create(
            "Herhaalrecept",
            ConversationKind::Group,
            None,
            std::slice::from_ref(&bakker.id),
        )
        .await?;
    let members = member_devices(&huisarts, &conv.id)?;
    assert_eq!(members.len(), 2, "{members:?}");
    assert!(members.contains(&assistent.id().device));
    assert!(!members.contains(&"slipped-in".to_owned()));
    assert_eq!(
        refusals(&huisarts)?,
        [("untrusted_member".to_owned(), 1)],
        "the refusal is counted"
    );
    // Bakker's own device does not take it in as one of bakker's either.
    assert_eq!(assistent.devices().add_my_new_devices().await?, 0);
    // And the conversation works for the two real members.
    assistent.sync().await?;
    huisarts
        .conversations()
        .send(&conv.id, NewMessage::text("recept klaargezet"))
        .await?;
    assistent.sync().await?;
    assert_eq!(
        assistent.conversations().messages(&conv.id, 10)?[0].body,
        "recept klaargezet"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_huisarts_or_the_manager_erases_a_patients_chat() -> TestResult {
    let (_db, _server, huisarts, assistent) = practice().await?;
    let bakker = assistent.user.clone();
    huisarts.sync().await?;
    let patient = PatientRef::new(&format!("bsn:{BSN}"))?;
    let conv = huisarts
        .conversations()
        .create(
            "Uitslag lab",
            ConversationKind::Group,
            Some(patient.clone()),
            std::slice::from_ref(&bakker.id),
        )
        .await?;
    huisarts
        .conversations()
        .send(&conv.id, NewMessage::text("HbA1c 48, bespreken"))
        .await?;
    assistent.sync().await?;

    // The assistent's own app refuses before anything changes.
    let refused = assistent.privacy().erase_patient(&patient).await;
    assert!(
        matches!(
            refused,
            Err(Error::Refused {
                reason: Refusal::Role
            })
        ),
        "{refused:?}"
    );
    assert_eq!(assistent.conversations().messages(&conv.id, 10)?.len(), 1);

    // A changed app sends the erasure anyway, into the practice group:
    // every receiving device refuses it, shows it, counts it.
    let practice_group = assistent.consent().practice_group_id()?;
    let mut events = huisarts.events();
    assistent
        .send_raw_content(
            &practice_group,
            &format!(r#"{{"type":"erase","request":"r-1","patient":"bsn:{BSN}"}}"#),
        )
        .await?;
    huisarts.sync().await?;
    let (kind, from) = wait_for(&mut events, Duration::from_secs(5), |e| match e {
        Event::Refused {
            kind,
            sender_device,
            ..
        } => Some((kind.clone(), sender_device.clone())),
        _ => None,
    })
    .await?;
    assert_eq!(
        (kind.as_str(), from),
        ("role", assistent.id().device.clone())
    );
    assert_eq!(refusals(&huisarts)?, [("role".to_owned(), 1)]);
    assert_eq!(
        huisarts.conversations().messages(&conv.id, 10)?[0].body,
        "HbA1c 48, bespreken"
    );
    assert_eq!(huisarts.conversations().search("HbA1c", 10)?.len(), 1);

    // The huisarts may.
    let erased = huisarts.privacy().erase_patient(&patient).await?;
    assert_eq!(erased.messages, 1);
    assistent.sync().await?;
    assert!(assistent.conversations().messages(&conv.id, 10)?.is_empty());
    Ok(())
}

/// A huisarts and an assistent of one practice, both in the practice group,
/// with one patient on the roster.
async fn practice() -> Result<(TestDatabase, Server, TestClient, TestClient), BoxError> {
    let (db, server, huisarts, assistent) = colleagues().await?;
    assert!(huisarts.consent().sync_practice().await?);
    assistent.sync().await?;
    huisarts
        .consent()
        .import_roster(
            format!(
                "reference,name,birth_date,enrolled\nbsn:{BSN},Mw. J. de Vries,1951-04-12,yes\n"
            ),
            pieper_core::RosterFormat::Csv,
            true,
        )
        .await?;
    assistent.sync().await?;
    Ok((db, server, huisarts, assistent))
}

/// What a device refused, by kind.
fn refusals(client: &TestClient) -> Result<Vec<(String, u64)>, BoxError> {
    Ok(client
        .refusals()?
        .into_iter()
        .map(|r| (r.kind, r.count))
        .collect())
}

fn now_ms() -> Result<i64, BoxError> {
    Ok(std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consent_change_carries_its_real_author_and_a_place_already_taken() -> TestResult {
    let (_db, _server, huisarts, assistent) = practice().await?;
    let group = assistent.consent().practice_group_id()?;
    let change = |id: &str, by: &str, role: &str, at: &str| {
        format!(
            r#"{{"type":"practice","consents":[{{"id":"{id}","patient":"bsn:{BSN}","kind":"lsp_sharing","status":"refused","method":"in_person","note":null,"recorded_by":"{by}","role":"{role}","recorded_at":{},"withdrawal":false{at}}}]}}"#,
            now_ms().unwrap_or_default()
        )
    };
    // "Recorded by the huisarts", written by the assistent's changed app.
    assistent
        .send_raw_content(&group, &change("c-1", &huisarts.user.id, "huisarts", ""))
        .await?;
    // Its own change, placed far ahead of anything still to come, so it
    // would stay the patient's last word.
    assistent
        .send_raw_content(
            &group,
            &change(
                "c-2",
                &assistent.user.id,
                "assistent",
                r#","at":[4000000000,0]"#,
            ),
        )
        .await?;
    huisarts.sync().await?;
    assert!(huisarts.consent().history(None)?.is_empty());
    assert_eq!(
        refusals(&huisarts)?,
        [("log_place".to_owned(), 1), ("not_author".to_owned(), 1)]
    );

    // What the assistent records through the app arrives, as theirs.
    assistent
        .consent()
        .record(pieper_core::NewConsent {
            patient: PatientRef::new(&format!("bsn:{BSN}"))?,
            kind: pieper_core::ConsentKind::LspSharing,
            status: pieper_core::ConsentStatus::Given,
            method: pieper_core::ConsentMethod::InPerson,
            note: None,
            obtained_at: None,
        })
        .await?;
    assistent.consent().sync_practice().await?;
    huisarts.sync().await?;
    let history = huisarts.consent().history(None)?;
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(
        (history[0].recorded_by.as_str(), history[0].role.as_str()),
        (assistent.user.id.as_str(), "assistent")
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_cannot_relink_a_conversation_or_mark_documentation_done() -> TestResult {
    let (_db, _server, huisarts, assistent) = practice().await?;
    let patient = PatientRef::new(&format!("bsn:{BSN}"))?;
    let conv = huisarts
        .conversations()
        .create(
            "Mw. De Vries — controle",
            ConversationKind::Group,
            Some(patient.clone()),
            std::slice::from_ref(&assistent.user.id),
        )
        .await?;
    assistent.sync().await?;
    // Moved to another patient by the assistent's changed app.
    assistent
        .send_raw_content(
            &conv.id,
            r#"{"type":"details","title":"Mw. De Vries — controle","kind":"group","patient":"bsn:999911132"}"#,
        )
        .await?;
    // "Documented", which only the HIS connector can know.
    assistent
        .send_raw_content(
            &conv.id,
            r#"{"type":"doc_status","item":"any-item","state":"documented"}"#,
        )
        .await?;
    huisarts.sync().await?;
    assert_eq!(
        huisarts.conversations().get(&conv.id)?.patient,
        Some(patient)
    );
    assert_eq!(refusals(&huisarts)?, [("role".to_owned(), 2)]);
    // The title alone may change (every member re-sends the details).
    assistent
        .send_raw_content(
            &conv.id,
            &format!(r#"{{"type":"details","title":"Controle INR","kind":"group","patient":"bsn:{BSN}"}}"#),
        )
        .await?;
    huisarts.sync().await?;
    assert_eq!(
        huisarts.conversations().get(&conv.id)?.title,
        "Controle INR"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_the_server_certifies_itself_is_not_taken_in_by_its_users_devices() -> TestResult {
    let (db, server, huisarts, assistent) = colleagues().await?;
    let (jansen, bakker) = (huisarts.user.clone(), assistent.user.clone());
    // Bakker's real tablet, approved on the desktop: the server now holds a
    // genuine approval signature by the desktop.
    let tablet = sign_in(&server, &bakker, "tablet").await?;
    approve(&assistent, &tablet).await?;

    // The server holds the practice's authority key: it certifies a device
    // of its own for bakker, and marks it approved by bakker's desktop with
    // the desktop's signature for the tablet.
    let mut conn = db.connect().await?;
    let replayed: Vec<u8> = sqlx::query_scalar("SELECT approval FROM devices WHERE id = $1")
        .bind(&tablet.id().device)
        .fetch_one(&mut conn)
        .await?;
    let (fake, forged, _dir) = forge_device(&db, &mut conn, &bakker.id).await?;
    slip_in(
        &mut conn,
        &bakker.id,
        Some(&forged),
        Some((&assistent.id().device, replayed)),
        fake.key_packages(2)?,
    )
    .await?;

    // Bakker's desktop never takes it into bakker's conversations.
    let conv = assistent
        .conversations()
        .create(
            "Terugbelverzoek",
            ConversationKind::Group,
            None,
            std::slice::from_ref(&jansen.id),
        )
        .await?;
    assistent.devices().add_my_new_devices().await?;
    let members = member_devices(&assistent, &conv.id)?;
    assert_eq!(members.len(), 3, "{members:?}");
    assert!(members.contains(&tablet.id().device), "{members:?}");
    assert!(!members.contains(&"slipped-in".to_owned()));
    // Approving it takes the code it shows, which the person would not see
    // on any device of theirs.
    let wrong = if fake.approval_code() == "000 000" {
        "000 001"
    } else {
        "000 000"
    };
    let refused = assistent.devices().approve("slipped-in", wrong).await;
    assert!(
        matches!(refused, Err(Error::Invalid { field: "code", .. })),
        "{refused:?}"
    );
    huisarts.sync().await?;
    assert_eq!(huisarts.conversations().members(&conv.id)?.len(), 3);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_device_is_approved_from_the_command_line() -> TestResult {
    let db = TestDatabase::new(Backend::Sqlite).await?;
    let jansen = create_user(&db, "linde", "jansen", "huisarts")?;
    let server = Server::start(&db, &[])?;
    let dir = tempfile::tempdir()?;
    let code = totp_at(&jansen, current_step())?;
    cli_login(dir.path(), &server, &jansen, &code, "desktop")?;
    let phone = sign_in(&server, &jansen, "phone").await?;
    let listed = pieper_ok(dir.path(), &["devices"])?;
    assert!(listed.contains("phone\tnot approved"), "{listed}");
    // A wrong code is refused; the one the phone shows approves it.
    let wrong = pieper(
        dir.path(),
        &[
            "devices",
            "approve",
            &phone.id().device,
            "--code",
            "999 999x",
        ],
    )?;
    assert!(!wrong.status.success());
    let out = pieper_ok(
        dir.path(),
        &[
            "devices",
            "approve",
            &phone.id().device,
            "--code",
            &phone.devices().approval_code()?,
        ],
    )?;
    assert!(out.contains("approved"), "{out}");
    let listed = pieper_ok(dir.path(), &["devices"])?;
    assert!(listed.contains("phone\tapproved"), "{listed}");
    // Why the desktop trusts the phone, in its own list.
    let desktop = listed
        .lines()
        .find(|l| l.contains("\tdesktop\t"))
        .and_then(|l| l.split('\t').next())
        .ok_or("no desktop listed")?;
    let known = pieper_ok(dir.path(), &["devices", "known"])?;
    let why = format!(
        "{}\t{}\tapproved by device {desktop}",
        phone.id().device,
        jansen.id
    );
    assert!(known.lines().any(|l| l == why), "{known}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_nobody_asked_for_is_refused() -> TestResult {
    let (_db, _server, huisarts, assistent) = practice().await?;
    let conv = huisarts
        .conversations()
        .create(
            "Overleg",
            ConversationKind::Group,
            None,
            std::slice::from_ref(&assistent.user.id),
        )
        .await?;
    assistent.sync().await?;
    // Back-dated, already-read messages "from the huisarts", slipped into
    // the conversation as if to heal a device that fell behind.
    assistent
        .send_raw_content(
            &conv.id,
            &format!(
                r#"{{"type":"history","conversation":"{}","messages":[{{"id":"h-1","sender_practice":"linde","sender_user":"{}","sender_device":"{}","body":"Geen actie nodig","priority":"routine","sent_at":1}}]}}"#,
                conv.id,
                huisarts.user.id,
                huisarts.id().device
            ),
        )
        .await?;
    huisarts.sync().await?;
    assert!(huisarts.conversations().messages(&conv.id, 10)?.is_empty());
    assert_eq!(refusals(&huisarts)?, [("unasked".to_owned(), 1)]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_slipped_in_for_a_known_colleague_is_refused_by_every_device() -> TestResult {
    let (db, server, huisarts, assistent) = colleagues().await?;
    let bakker = assistent.user.clone();
    let conv = huisarts
        .conversations()
        .create(
            "Wondcontrole",
            ConversationKind::Group,
            None,
            std::slice::from_ref(&bakker.id),
        )
        .await?;
    assistent.sync().await?;
    // Each took the other's first device on the server's word, and says so.
    let known = huisarts.devices().known()?;
    let desktop = known
        .iter()
        .find(|k| k.device == assistent.id().device)
        .ok_or("jansen does not know bakker's desktop")?;
    assert_eq!(desktop.trust, pieper_core::Trust::FirstUse);
    assert!(
        assistent
            .devices()
            .known()?
            .iter()
            .any(|k| k.device == huisarts.id().device && k.trust == pieper_core::Trust::FirstUse)
    );

    // The server, holding the authority key, certifies a second device for
    // bakker that no device of bakker's approved.
    let mut conn = db.connect().await?;
    let (fake, forged, _dir) = forge_device(&db, &mut conn, &bakker.id).await?;
    slip_in(
        &mut conn,
        &bakker.id,
        Some(&forged),
        None,
        fake.key_packages(3)?,
    )
    .await?;

    // An honest colleague adding bakker again leaves it out and counts it.
    huisarts
        .conversations()
        .add_users(&conv.id, std::slice::from_ref(&bakker.id))
        .await?;
    assert!(!member_devices(&huisarts, &conv.id)?.contains(&"slipped-in".to_owned()));

    // A hostile member's changed app commits it anyway: every other member
    // refuses that commit.
    hostile_member_adds(
        &db,
        &server,
        [&huisarts, &assistent],
        &conv.id,
        &fake,
        None,
        "was approved by none of their devices",
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identity_reset_by_a_colleague_who_is_no_manager_is_refused() -> TestResult {
    let (db, server, huisarts, assistent) = colleagues().await?;
    let bakker = assistent.user.clone();
    let conv = huisarts
        .conversations()
        .create(
            "Wondcontrole",
            ConversationKind::Group,
            None,
            std::slice::from_ref(&bakker.id),
        )
        .await?;
    assistent.sync().await?;
    let mut conn = db.connect().await?;
    let (fake, forged, _dir) = forge_device(&db, &mut conn, &bakker.id).await?;
    slip_in(&mut conn, &bakker.id, Some(&forged), None, Vec::new()).await?;
    // The hostile member signs a manager's reset of bakker's identity
    // with its own key, and commits the device with it.
    hostile_member_adds(
        &db,
        &server,
        [&huisarts, &assistent],
        &conv.id,
        &fake,
        Some(&forged),
        "an identity reset by someone who is no manager",
    )
    .await
}

/// A poh joins the conversation of `members` and, with a changed app,
/// commits adding `device` without judging it (with a reset of its owner's
/// identity that it signs itself, for `reset_of` the device's certificate),
/// then sends a message. Every member must refuse the commit (telling its
/// app `reason`), count it, keep the device out and read nothing of what
/// follows.
async fn hostile_member_adds(
    db: &TestDatabase,
    server: &Server,
    members: [&TestClient; 2],
    conversation: &str,
    device: &pieper_core::Device,
    reset_of: Option<&[u8]>,
    reason: &str,
) -> TestResult {
    let visser = create_user(db, "linde", "visser", "poh")?;
    let poh = sign_in(server, &visser, "phone").await?;
    members[0]
        .conversations()
        .add_users(conversation, std::slice::from_ref(&visser.id))
        .await?;
    poh.sync().await?;
    for member in members {
        member.sync().await?;
    }
    let untrusted = |member: &TestClient| -> Result<u64, BoxError> {
        Ok(refusals(member)?
            .into_iter()
            .find(|(kind, _)| kind == "untrusted_member")
            .map_or(0, |(_, n)| n))
    };
    let before = [untrusted(members[0])?, untrusted(members[1])?];
    let mut events = members.map(|m| m.events());
    let approvals = match reset_of {
        None => Vec::new(),
        Some(certificate) => vec![(
            device.id().device.clone(),
            pieper_wire::Approval {
                by_device: poh.id().device.clone(),
                kind: pieper_wire::ApprovalKind::Reset,
                signature: poh
                    .device()
                    .sign_approval_unchecked(pieper_wire::ApprovalKind::Reset, certificate)?
                    .into(),
            },
        )],
    };
    poh.add_key_packages_unjudged(conversation, device.key_packages(1)?, approvals)
        .await?;
    poh.conversations()
        .send(conversation, NewMessage::text("meelezen"))
        .await?;
    for ((member, before), events) in members.into_iter().zip(before).zip(&mut events) {
        member.sync().await?;
        assert!(!member_devices(member, conversation)?.contains(&device.id().device));
        assert!(member.conversations().search("meelezen", 5)?.is_empty());
        assert_eq!(untrusted(member)?, before + 1, "{:?}", refusals(member)?);
        let mut told = Vec::new();
        while let Ok(event) = events.try_recv() {
            if let Event::Refused {
                sender_device,
                reason: why,
                ..
            } = event
                && sender_device == poh.id().device
            {
                told.push(why);
            }
        }
        assert!(told.iter().any(|why| why.contains(reason)), "{told:?}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manager_resets_the_identity_of_a_colleague_who_lost_everything() -> TestResult {
    let (db, server, huisarts, assistent) = colleagues().await?;
    let bakker = assistent.user.clone();
    let boer = create_user(&db, "linde", "boer", "manager")?;
    let manager = sign_in(&server, &boer, "desktop").await?;
    let visser = create_user(&db, "linde", "visser", "poh")?;
    let poh = sign_in(&server, &visser, "phone").await?;
    // Everyone met in the practice group.
    assert!(huisarts.consent().sync_practice().await?);
    for member in [&assistent, &manager, &poh] {
        member.sync().await?;
    }
    let conv = huisarts
        .conversations()
        .create(
            "Diabetesspreekuur",
            ConversationKind::Group,
            None,
            &[bakker.id.clone(), boer.id.clone(), visser.id.clone()],
        )
        .await?;
    manager.sync().await?;
    poh.sync().await?;

    // Bakker loses the desktop and has no recovery code; a new device signs
    // in (password and 2FA) but nobody takes it in on the server's word.
    drop(assistent);
    let new_desktop = sign_in(&server, &bakker, "new-desktop").await?;
    huisarts
        .conversations()
        .add_users(&conv.id, std::slice::from_ref(&bakker.id))
        .await?;
    assert!(!member_devices(&huisarts, &conv.id)?.contains(&new_desktop.id().device));

    // Only a manager resets, and only with the code the new device shows.
    let code = new_desktop.devices().approval_code()?;
    let not_manager = huisarts
        .devices()
        .reset_identity(&new_desktop.id().device, &code)
        .await;
    assert!(
        matches!(
            not_manager,
            Err(Error::Refused {
                reason: Refusal::Role
            })
        ),
        "{not_manager:?}"
    );
    let wrong = if code == "000 000" {
        "000 001"
    } else {
        "000 000"
    };
    let refused = manager
        .devices()
        .reset_identity(&new_desktop.id().device, wrong)
        .await;
    assert!(
        matches!(refused, Err(Error::Invalid { field: "code", .. })),
        "{refused:?}"
    );
    manager
        .devices()
        .reset_identity(&new_desktop.id().device, &code)
        .await?;

    // Now a colleague adds it; the committer and every member who did not
    // see the reset happen are told.
    let mut at_huisarts = huisarts.events();
    let mut at_poh = poh.events();
    huisarts
        .conversations()
        .add_users(&conv.id, std::slice::from_ref(&bakker.id))
        .await?;
    assert!(member_devices(&huisarts, &conv.id)?.contains(&new_desktop.id().device));
    manager.sync().await?;
    poh.sync().await?;
    for events in [&mut at_huisarts, &mut at_poh] {
        let mut told = Vec::new();
        while let Ok(event) = events.try_recv() {
            if let Event::IdentityReset { user, by } = event {
                told.push((user, by));
            }
        }
        assert_eq!(told, [(bakker.id.clone(), boer.id.clone())]);
    }
    for member in [&huisarts, &manager, &poh] {
        let trust = member
            .devices()
            .known()?
            .into_iter()
            .find(|k| k.device == new_desktop.id().device)
            .map(|k| k.trust);
        assert_eq!(
            trust,
            Some(pieper_core::Trust::Reset {
                by_user: boer.id.clone()
            })
        );
    }
    // And bakker takes part again.
    new_desktop.sync().await?;
    new_desktop
        .conversations()
        .send(&conv.id, NewMessage::text("weer aan boord"))
        .await?;
    huisarts.sync().await?;
    assert_eq!(huisarts.conversations().search("aan boord", 5)?.len(), 1);
    Ok(())
}

/// A spoed channel another practice took before the server checked who
/// makes one: nobody of the practice will ever be added to it, so the app
/// says so (typed, with what to do) instead of waiting forever, and the
/// practice group goes on without it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spoed_channel_held_by_another_practice_is_an_alarm_not_a_wait() -> TestResult {
    let db = TestDatabase::new(Backend::Sqlite).await?;
    let jansen = create_user(&db, "linde", "jansen", "huisarts")?;
    let bakker = create_user(&db, "linde", "bakker", "assistent")?;
    create_user(&db, "eik", "visser", "manager")?;
    let spoed = pieper_wire::KnownGroup::Spoed.id("linde", "");
    let mut conn = db.connect().await?;
    sqlx::query(
        "INSERT INTO conversations (id, practice_id, epoch, next_seq, created_at) VALUES ($1, 'eik', 0, 1, 0)",
    )
    .bind(&spoed)
    .execute(&mut conn)
    .await?;
    let server = Server::start(&db, &[])?;
    let huisarts = sign_in(&server, &jansen, "phone").await?;
    let assistent = sign_in(&server, &bakker, "desktop").await?;

    let alarm = huisarts.sync_spoed_channel().await;
    assert!(
        matches!(&alarm, Err(Error::Untrusted { reason }) if reason.contains("practice manager")),
        "{alarm:?}"
    );
    // The practice group is made and shared all the same; the spoed
    // channel stays an alarm on every try.
    let shared = huisarts.consent().sync_practice().await;
    assert!(matches!(shared, Err(Error::Untrusted { .. })), "{shared:?}");
    assistent.sync().await?;
    let practice_group = huisarts.consent().practice_group_id()?;
    assert_eq!(
        member_devices(&huisarts, &practice_group)?.len(),
        2,
        "the assistent's desktop is in the practice group"
    );
    assert!(
        huisarts
            .conversations()
            .list()?
            .iter()
            .all(|c| c.id != spoed),
        "no half-made spoed channel stays behind"
    );
    Ok(())
}
