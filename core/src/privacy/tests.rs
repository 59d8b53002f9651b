//! Disappearing messages, retention, the record's hold and the practice's
//! rule, on one device's real store.

use super::*;
use crate::{
    identity::MemberId,
    keystore::FileKeyStore,
    model::{ConversationKind, NewMessage},
    store::queries::Session,
};

type TestResult = std::result::Result<(), Box<dyn std::error::Error>>;

fn device(dir: &std::path::Path) -> Result<Device> {
    let keystore = FileKeyStore::in_dir(dir)?;
    let device = Device::create_for_tests(
        dir,
        &keystore,
        MemberId::new("linde", "jansen", "desktop")?,
        pieper_wire::Role::Huisarts,
    )?;
    device.save_session(&Session {
        server_url: "https://pieper.invalid".into(),
        token: "t".into(),
        role: "huisarts".into(),
        cursor: 0,
        signed_out: false,
    })?;
    Ok(device)
}

fn purge_at(device: &Device, now: i64) -> Result<HousekeepingReport> {
    device.store.write(|tx| expiry::purge(tx, &device.dir, now))
}

#[test]
fn an_expired_message_leaves_a_marker_and_takes_its_attachment_file() -> TestResult {
    let dir = tempfile::tempdir()?;
    let d = device(dir.path())?;
    let c = d.create_conversation("Uitslag", ConversationKind::Group, None)?;
    let (sealed, key) = crate::attachments::seal(b"foto")?;
    std::fs::create_dir_all(d.attachments_dir())?;
    std::fs::write(d.attachment_file("blob-1")?, sealed)?;
    let mut message = NewMessage::text("kortlevend bericht").disappearing(60);
    message.attachments = vec![crate::model::AttachmentRef {
        blob_id: "blob-1".into(),
        name: "foto.jpg".into(),
        mime_type: "image/jpeg".into(),
        key,
    }];
    let kept = d.send(&c.id, NewMessage::text("blijvend bericht"))?;
    let gone = d.send(&c.id, message)?;
    let at = d.message(&gone.id)?.expires_at.ok_or("no expiry")?;

    assert_eq!(purge_at(&d, at - 1)?.expired, 0);
    assert_eq!(d.search("kortlevend", 10)?.len(), 1);
    let report = purge_at(&d, at)?;
    assert_eq!((report.expired, report.expired_total), (1, 1));
    let marker = d.message(&gone.id)?;
    assert!(marker.expired && marker.body.is_empty() && marker.attachments.is_empty());
    assert!(d.search("kortlevend", 10)?.is_empty());
    assert!(!d.attachment_file("blob-1")?.exists());
    assert_eq!(d.message(&kept.id)?.body, "blijvend bericht");
    Ok(())
}

#[test]
fn a_message_for_the_record_waits_for_the_record_then_goes() -> TestResult {
    let dir = tempfile::tempdir()?;
    let d = device(dir.path())?;
    let c = d.create_conversation("Controle", ConversationKind::Group, None)?;
    let sent = d.send(&c.id, NewMessage::for_record("RR 150/90").disappearing(1))?;
    let at = d.message(&sent.id)?.expires_at.ok_or("no expiry")?;
    let held = purge_at(&d, at + 1000)?;
    assert_eq!((held.expired, held.held_for_record), (0, 1));
    assert_eq!(d.message(&sent.id)?.body, "RR 150/90");
    // Nothing due keeps a live device busy meanwhile.
    assert_eq!(d.next_expiry()?, None);
    d.store.write(|tx| {
        tx.execute(
            "UPDATE messages SET doc_state = 'documented' WHERE id = ?1",
            [&sent.id],
        )
        .map_err(crate::store::StoreError::from)?;
        Ok(())
    })?;
    let report = purge_at(&d, at + 1000)?;
    assert_eq!((report.expired, report.held_for_record), (1, 0));
    assert!(d.message(&sent.id)?.expired);
    Ok(())
}

#[test]
fn retention_removes_old_chat_entirely() -> TestResult {
    let dir = tempfile::tempdir()?;
    let d = device(dir.path())?;
    d.set_practice_rules(PracticeRules {
        retention_days: 30,
        ttl: TtlPolicy::Allowed,
        history_messages: 50,
        ..PracticeRules::default()
    })?;
    let c = d.create_conversation("Oud", ConversationKind::Group, None)?;
    let old = d.send(&c.id, NewMessage::text("oudbericht"))?;
    let new = d.send(&c.id, NewMessage::text("nieuwbericht"))?;
    let sent_at = d.message(&old.id)?.sent_at;
    d.store.write(|tx| {
        tx.execute(
            "UPDATE messages SET sent_at = ?2 WHERE id = ?1",
            rusqlite::params![old.id, sent_at - 31 * 86_400_000],
        )
        .map_err(crate::store::StoreError::from)?;
        Ok(())
    })?;
    let report = d.housekeeping()?;
    assert_eq!(
        (report.past_retention, report.rules.retention_days),
        (1, 30)
    );
    assert!(matches!(d.message(&old.id), Err(Error::NotFound { .. })));
    assert!(d.search("oudbericht", 10)?.is_empty());
    assert_eq!(d.message(&new.id)?.body, "nieuwbericht");
    Ok(())
}

#[test]
fn the_practice_allows_forbids_or_enforces_disappearing_messages() -> TestResult {
    let dir = tempfile::tempdir()?;
    let d = device(dir.path())?;
    let c = d.create_conversation("Regels", ConversationKind::Group, None)?;
    let ttl_of = |m: NewMessage| -> Result<Option<i64>> {
        let sent = d.send(&c.id, m)?;
        let m = d.message(&sent.id)?;
        Ok(m.expires_at.map(|at| (at - m.sent_at) / 1000))
    };
    assert_eq!(ttl_of(NewMessage::text("a").disappearing(30))?, Some(30));
    assert_eq!(ttl_of(NewMessage::text("b"))?, None);

    d.set_practice_rules(PracticeRules {
        retention_days: 90,
        ttl: TtlPolicy::Forbidden,
        history_messages: 50,
        ..PracticeRules::default()
    })?;
    assert!(matches!(
        d.send(&c.id, NewMessage::text("c").disappearing(30)),
        Err(Error::Invalid { .. })
    ));
    assert!(matches!(
        d.set_conversation_ttl_here(&c.id, Some(60)),
        Err(Error::Invalid { .. })
    ));

    d.set_practice_rules(PracticeRules {
        retention_days: 90,
        ttl: TtlPolicy::Enforced { secs: 3600 },
        history_messages: 50,
        ..PracticeRules::default()
    })?;
    assert_eq!(ttl_of(NewMessage::text("d"))?, Some(3600));
    assert_eq!(ttl_of(NewMessage::text("e").disappearing(60))?, Some(60));
    assert_eq!(
        ttl_of(NewMessage::text("f").disappearing(86_400))?,
        Some(3600)
    );
    // A conversation's own time-to-live applies to messages without one.
    d.set_conversation_ttl_here(&c.id, Some(120))?;
    assert_eq!(ttl_of(NewMessage::text("g"))?, Some(120));
    Ok(())
}
