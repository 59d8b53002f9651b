//! When leaf updates are due, on one device's real store.

use super::*;
use crate::{
    identity::MemberId,
    keystore::FileKeyStore,
    model::{ConversationKind, NewMessage},
    privacy::PracticeRules,
};

type TestResult = std::result::Result<(), Box<dyn std::error::Error>>;

fn device(dir: &std::path::Path) -> Result<Device> {
    let keystore = FileKeyStore::in_dir(dir)?;
    Device::create_for_tests(
        dir,
        &keystore,
        MemberId::new("linde", "jansen", "desktop")?,
        pieper_wire::Role::Huisarts,
    )
}

#[test]
fn spread_stays_in_the_last_fifth_and_differs_between_conversations() {
    let period = 7 * DAY_MS;
    let spreads: Vec<i64> = (0..50)
        .map(|i| spread("phone", &format!("conversation-{i}"), period))
        .collect();
    assert!(spreads.iter().all(|s| (0..period / 5).contains(s)));
    let distinct: std::collections::HashSet<_> = spreads.iter().collect();
    assert!(distinct.len() > 40, "{distinct:?}");
    assert_eq!(
        spread("phone", "conversation-1", period),
        spreads[1],
        "stable across runs"
    );
}

#[test]
fn an_update_is_due_after_the_period_with_activity_only() -> TestResult {
    let dir = tempfile::tempdir()?;
    let d = device(dir.path())?;
    let c = d.create_conversation("Overleg", ConversationKind::Group, None)?;
    let start = d.leaf_updated_at(&c.id)?;
    let week = 7 * DAY_MS;
    // Quiet: never due, however long.
    assert!(d.leaf_updates_due(start + 10 * week, 10)?.is_empty());

    d.send(&c.id, NewMessage::text("eerste"))?;
    // Before the spread window: not yet; after the whole period: due.
    assert!(d.leaf_updates_due(start + week * 4 / 5 - 1, 10)?.is_empty());
    assert_eq!(d.leaf_updates_due(start + week, 10)?, vec![c.id.clone()]);

    // The practice's period counts: a day.
    d.set_practice_rules(PracticeRules {
        key_update_days: 1,
        ..PracticeRules::default()
    })?;
    assert_eq!(d.leaf_updates_due(start + DAY_MS, 10)?, vec![c.id.clone()]);
    assert!(d.leaf_updates_due(start + DAY_MS * 3 / 4, 10)?.is_empty());
    Ok(())
}

#[test]
fn a_landed_update_restarts_the_period_and_a_refused_one_stays_due() -> TestResult {
    let dir = tempfile::tempdir()?;
    let d = device(dir.path())?;
    let c = d.create_conversation("Overleg", ConversationKind::Group, None)?;
    d.send(&c.id, NewMessage::text("eerste"))?;
    let start = d.leaf_updated_at(&c.id)?;
    let later = start + 8 * DAY_MS;

    let refused = d.update_leaf(&c.id)?;
    assert!(refused.welcome.is_none() && refused.add_devices.is_empty());
    // Until the server answers, nothing else commits here.
    assert!(matches!(
        d.update_leaf(&c.id),
        Err(crate::Error::PendingCommit)
    ));
    d.commit_refused(&c.id)?;
    assert_eq!(d.leaf_updated_at(&c.id)?, start);
    assert_eq!(d.leaf_updates_due(later, 10)?, vec![c.id.clone()]);

    let epoch = d.conversation(&c.id)?.epoch;
    d.update_leaf(&c.id)?;
    d.commit_accepted(&c.id)?;
    assert_eq!(d.conversation(&c.id)?.epoch, epoch + 1);
    let updated = d.leaf_updated_at(&c.id)?;
    assert!(updated >= start);
    let shown = d.key_updates()?;
    assert!(!shown[0].activity_since && !shown[0].due_now, "{shown:?}");
    // No activity since: not due, even long after.
    assert!(d.leaf_updates_due(updated + 30 * DAY_MS, 10)?.is_empty());
    Ok(())
}

#[test]
fn a_backlog_drains_a_few_at_a_time_but_due_now_goes_at_once() -> TestResult {
    let dir = tempfile::tempdir()?;
    let d = device(dir.path())?;
    let mut ids = Vec::new();
    for i in 0..15 {
        let c = d.create_conversation(&format!("Overleg {i}"), ConversationKind::Group, None)?;
        d.send(&c.id, NewMessage::text("iets"))?;
        ids.push(c.id);
    }
    let later = crate::store::queries::now_ms() + 8 * DAY_MS;
    assert_eq!(d.leaf_updates_due(later, 10)?.len(), 10);

    // Quiet ones too, and without waiting: all of them.
    let quiet = d.create_conversation("Stil", ConversationKind::Group, None)?;
    assert_eq!(d.leaf_updates_due_now()?, 16);
    let now = crate::store::queries::now_ms();
    let due = d.leaf_updates_due(now, 10)?;
    assert_eq!(due.len(), 16);
    assert!(due.contains(&quiet.id));
    assert!(d.key_updates()?.iter().all(|u| u.due_now));
    Ok(())
}

#[test]
fn a_certificate_is_renewed_in_its_last_month() {
    let now = 1_800_000_000_000;
    assert!(!renewal_due(None, now), "a device without a certificate");
    assert!(!renewal_due(Some(now + 31 * DAY_MS), now));
    assert!(renewal_due(Some(now + 29 * DAY_MS), now));
    assert!(renewal_due(Some(now - DAY_MS), now), "expired");
}

#[test]
fn a_renewal_for_another_key_or_from_another_authority_is_refused() -> TestResult {
    let (mine, other) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let d = device(mine.path())?;
    let keystore = FileKeyStore::in_dir(other.path())?;
    let colleague = Device::create_for_tests(
        other.path(),
        &keystore,
        MemberId::new("linde", "bakker", "phone")?,
        pieper_wire::Role::Assistent,
    )?;
    let theirs = colleague.store.read(crate::store::queries::load_identity)?;
    let ours = d.store.read(crate::store::queries::load_identity)?;
    let (Some(their_certificate), Some(authority)) = (theirs.certificate, ours.authority.clone())
    else {
        return Err("no certificates".into());
    };
    let c = d.create_conversation("Overleg", ConversationKind::Group, None)?;
    // A hostile server hands out another device's certificate as renewal.
    assert!(matches!(
        d.take_certificate(&their_certificate, &authority),
        Err(crate::Error::Untrusted { .. })
    ));
    // Or this device's own certificate under another authority.
    let own = ours.certificate.clone().ok_or("no certificate")?;
    let foreign = pieper_authority::Authority::generate("linde")?;
    assert!(matches!(
        d.take_certificate(&own, &foreign.certificate),
        Err(crate::Error::Untrusted { .. })
    ));
    // Nothing changed: same certificate, nothing due.
    let after = d.store.read(crate::store::queries::load_identity)?;
    assert_eq!(after.certificate, ours.certificate);
    assert!(d.key_updates()?.iter().all(|u| !u.due_now));
    // Its own certificate again is taken, and every conversation updates.
    d.take_certificate(&own, &authority)?;
    assert_eq!(
        d.leaf_updates_due(crate::store::queries::now_ms(), 0)?,
        vec![c.id]
    );
    Ok(())
}

#[test]
fn a_membership_change_renews_the_leaf_but_not_a_renewed_certificate() -> TestResult {
    let dirs = [
        tempfile::tempdir()?,
        tempfile::tempdir()?,
        tempfile::tempdir()?,
    ];
    let d = device(dirs[0].path())?;
    let colleague = |dir: &std::path::Path, user: &str| -> Result<Device> {
        let keystore = FileKeyStore::in_dir(dir)?;
        Device::create_for_tests(
            dir,
            &keystore,
            MemberId::new("linde", user, "phone")?,
            pieper_wire::Role::Poh,
        )
    };
    let (e, f) = (
        colleague(dirs[1].path(), "bakker")?,
        colleague(dirs[2].path(), "smit")?,
    );
    let c = d.create_conversation("Overleg", ConversationKind::Group, None)?;
    d.send(&c.id, NewMessage::text("eerste"))?;
    let start = d.leaf_updated_at(&c.id)?;
    std::thread::sleep(std::time::Duration::from_millis(5));
    d.add_members(&c.id, &e.key_packages(1)?)?;
    d.commit_accepted(&c.id)?;
    let after_add = d.key_updates()?;
    assert!(after_add[0].updated_at > start, "{after_add:?}");

    // After a renewal only an update carries the new certificate: an add
    // leaves the conversation due.
    let (certificate, authority) = d.renewal_for_tests(d.id(), pieper_wire::Role::Huisarts)?;
    d.take_certificate(&certificate, &authority)?;
    d.add_members(&c.id, &f.key_packages(1)?)?;
    d.commit_accepted(&c.id)?;
    assert!(d.key_updates()?[0].due_now);
    d.update_leaf(&c.id)?;
    d.commit_accepted(&c.id)?;
    assert!(!d.key_updates()?[0].due_now);
    Ok(())
}

#[test]
fn an_update_that_renames_its_sender_is_refused_by_every_member() -> TestResult {
    let dirs = [tempfile::tempdir()?, tempfile::tempdir()?];
    let d = device(dirs[0].path())?;
    let keystore = FileKeyStore::in_dir(dirs[1].path())?;
    let e = Device::create_for_tests(
        dirs[1].path(),
        &keystore,
        MemberId::new("linde", "bakker", "phone")?,
        pieper_wire::Role::Assistent,
    )?;
    let c = d.create_conversation("Overleg", ConversationKind::Group, None)?;
    let added = d.add_members(&c.id, &e.key_packages(1)?)?;
    d.commit_accepted(&c.id)?;
    e.receive(&added.welcome.ok_or("no welcome")?)?;
    let epoch = d.conversation(&c.id)?.epoch;

    // A changed app, with a certificate a hostile server made for its key
    // naming the huisarts, updates its leaf under that name.
    let huisarts = MemberId::new("linde", "jansen", "tablet")?;
    let (forged, _) = e.renewal_for_tests(&huisarts, pieper_wire::Role::Huisarts)?;
    e.set_credential_for_tests(&forged);
    let update = e.update_leaf(&c.id)?;
    assert!(matches!(
        d.receive(&update.commit),
        Err(crate::Error::Untrusted { .. })
    ));
    // Nothing changed: same epoch, and the member is still the assistent.
    assert_eq!(d.conversation(&c.id)?.epoch, epoch);
    let members: Vec<MemberId> = d.members(&c.id)?.into_iter().map(|m| m.id).collect();
    assert!(
        members.contains(e.id()) && !members.contains(&huisarts),
        "{members:?}"
    );
    Ok(())
}
