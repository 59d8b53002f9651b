//! Writes the store fixture that `tests/upgrade.rs` opens: a device store as
//! today's schema makes it, holding a patient conversation, two messages, a
//! task and the practice's rules. When a migration is added, keep the old
//! fixture and write one for the new schema beside it:
//!
//! ```text
//! cargo run -p pieper-core --example store_fixture -- core/tests/fixtures/store-v<NNN>
//! ```

use pieper_core::{
    ConversationKind, Device, FileKeyStore, MemberId, NewMessage, NewTask, PatientRef,
    PracticeRules, tasks::Assignee,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .ok_or("usage: store_fixture <empty directory>")?;
    let keystore = FileKeyStore::in_dir(&dir)?;
    let device = Device::create_for_tests(
        &dir,
        &keystore,
        MemberId::new("linde", "jansen", "desktop")?,
        pieper_wire::Role::Huisarts,
    )?;
    // A century of retention, so the fixture's messages outlive any test run.
    device.set_practice_rules(PracticeRules {
        retention_days: 36_500,
        ..PracticeRules::default()
    })?;
    let conversation = device.create_conversation(
        "Mw. Smit — INR",
        ConversationKind::Group,
        Some(PatientRef::new("his:patient/48213")?),
    )?;
    let first = device.send(
        &conversation.id,
        NewMessage::text("INR 4,1: dosis aanpassen?"),
    )?;
    device.send(
        &conversation.id,
        NewMessage::urgent("Bel mw. Smit vandaag terug"),
    )?;
    device.create_task(
        &conversation.id,
        NewTask {
            what: "INR over een week".into(),
            assignee: Assignee::Role("poh".into()),
            due: Some("2026-12-08".into()),
            from_message: Some(first.id),
            follow_up: None,
        },
    )?;
    println!("wrote a store fixture in {dir}");
    Ok(())
}
