//! Stores made by earlier schemas open with today's code and keep their
//! data: each fixture in `tests/fixtures/` was written by
//! `examples/store_fixture.rs` when its schema was current.

use std::path::Path;

use pieper_core::{Device, FileKeyStore, Priority, tasks::Assignee};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A copy of a fixture, so opening it (which migrates) leaves the original.
fn copy_of(fixture: &str) -> Result<tempfile::TempDir, Box<dyn std::error::Error>> {
    let from = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(fixture);
    let to = tempfile::tempdir()?;
    for entry in std::fs::read_dir(&from)? {
        let entry = entry?;
        std::fs::copy(entry.path(), to.path().join(entry.file_name()))?;
    }
    Ok(to)
}

#[test]
fn a_store_of_schema_011_opens_with_its_data() -> TestResult {
    opens_with_its_data("store-v011")
}

#[test]
fn a_store_of_schema_012_opens_with_its_data() -> TestResult {
    opens_with_its_data("store-v012")
}

#[test]
fn a_store_of_schema_013_opens_with_its_data() -> TestResult {
    opens_with_its_data("store-v013")
}

fn opens_with_its_data(fixture: &str) -> TestResult {
    let dir = copy_of(fixture)?;
    let keystore = FileKeyStore::in_dir(dir.path())?;
    let device = Device::open(dir.path(), &keystore)?;

    let conversations = device.conversations()?;
    let [conversation] = conversations.as_slice() else {
        return Err(format!("expected one conversation: {conversations:?}").into());
    };
    assert_eq!(conversation.title, "Mw. Smit — INR");
    assert_eq!(
        conversation.patient.as_ref().map(|p| p.as_str()),
        Some("his:patient/48213")
    );

    let messages = device.messages(&conversation.id, 10)?;
    let bodies: Vec<(&str, Priority)> = messages
        .iter()
        .map(|m| (m.body.as_str(), m.priority))
        .collect();
    assert_eq!(
        bodies,
        [
            ("INR 4,1: dosis aanpassen?", Priority::Routine),
            ("Bel mw. Smit vandaag terug", Priority::Urgent),
        ]
    );
    // The full-text index came along.
    assert_eq!(device.search("dosis", 5)?.len(), 1);

    let tasks = device.tasks(&conversation.id)?;
    let [task] = tasks.as_slice() else {
        return Err(format!("expected one task: {tasks:?}").into());
    };
    assert_eq!(task.what, "INR over een week");
    assert_eq!(task.assignee, Assignee::Role("poh".into()));
    assert_eq!(task.from_message.as_deref(), Some(messages[0].id.as_str()));
    assert_eq!(device.practice_rules()?.retention_days, 36_500);

    // What waits in the outbox knows how it is to be delivered (a store
    // from before schema 012 learnt it from its messages): the urgent one
    // wakes, the routine one notifies, the task goes silent; the pseudonym
    // (no practice key here) is looked up when sending.
    let outbox = device.outbox()?;
    let delivery_of = |id: &str| {
        outbox
            .iter()
            .find(|o| o.id == id)
            .map(|o| o.delivery.clone())
            .ok_or(format!("{id} not in the outbox"))
    };
    let routine = delivery_of(&messages[0].id)?;
    let urgent = delivery_of(&messages[1].id)?;
    assert_eq!(routine.priority, Some(Priority::Routine));
    assert_eq!(urgent.priority, Some(Priority::Urgent));
    assert!(routine.patient_pending && routine.patient.is_none());
    let silent = outbox
        .iter()
        .filter(|o| o.id != messages[0].id && o.id != messages[1].id)
        .count();
    assert!(silent > 0, "the task's envelope is in the outbox too");
    assert!(
        outbox
            .iter()
            .filter(|o| o.id != messages[0].id && o.id != messages[1].id)
            .all(|o| o.delivery.priority.is_none())
    );
    Ok(())
}
