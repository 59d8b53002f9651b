//! What is on disk: no plaintext anywhere in the store's files, and a wrong
//! key is refused without damage.

mod common;

use common::{TestDevice, TestResult, conversation_with, deliver, raw_store_bytes};
use pieper_core::{ConversationKind, DbKey, Device, Error, FileKeyStore, NewMessage, PatientRef};
use sha2::{Digest, Sha256};

const MARKER: &str = "ZQXMARKER7731";

#[test]
fn store_files_hold_no_plaintext() -> TestResult {
    let a = TestDevice::new("a", "phone")?;
    let b = TestDevice::new("b", "tablet")?;
    let conv = a.create_conversation(
        &format!("Titel {MARKER}"),
        ConversationKind::Group,
        Some(PatientRef::new(&format!("his:{MARKER}"))?),
    )?;
    common::add(&a, &conv.id, &[&b], &[])?;
    let out = a.send(
        &conv.id,
        NewMessage::text(format!("Hb laag, {MARKER} bellen")),
    )?;
    deliver(&out, &[&b])?;

    // Both devices find it through the (encrypted) full-text index.
    assert_eq!(a.search(MARKER, 5)?.len(), 1);
    assert_eq!(b.search(MARKER, 5)?.len(), 1);

    for device in [&a, &b] {
        let files = raw_store_bytes(device.dir.path())?;
        let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
        assert!(names.contains(&"pieper.db"), "{names:?}");
        assert!(
            names.contains(&"pieper.db-wal"),
            "the WAL is checked too: {names:?}"
        );
        for (name, bytes) in &files {
            for needle in [
                MARKER.as_bytes(),
                b"SQLite format 3",
                b"Hb laag",
                b"dr.jansen",
            ] {
                assert!(
                    !bytes.windows(needle.len()).any(|w| w == needle),
                    "{name} contains {:?}",
                    String::from_utf8_lossy(needle)
                );
            }
        }
    }
    Ok(())
}

fn digest_files(dir: &std::path::Path) -> std::io::Result<Vec<(String, Vec<u8>)>> {
    let mut files = raw_store_bytes(dir)?;
    files.sort();
    Ok(files
        .into_iter()
        .map(|(n, b)| (n, Sha256::digest(&b).to_vec()))
        .collect())
}

#[test]
fn wrong_key_is_a_clear_error_and_destroys_nothing() -> TestResult {
    let a = TestDevice::new("a", "phone")?;
    let b = TestDevice::new("b", "phone")?;
    let conv = conversation_with(&a, &[&b], "Overleg")?;
    a.send(&conv.id, NewMessage::text("blijft bewaard"))?;
    let dir = a.dir.path().to_owned();
    let a_dir = {
        let common::TestDevice { device, dir } = a;
        drop(device);
        dir
    };
    let before = digest_files(&dir)?;

    // Another device's keystore cannot unwrap the database key.
    let elsewhere = tempfile::tempdir()?;
    let foreign = FileKeyStore::in_dir(elsewhere.path())?;
    assert!(matches!(Device::open(&dir, &foreign), Err(Error::WrongKey)));
    // A raw key that is not this store's.
    assert!(matches!(
        Device::open_with_key(&dir, &DbKey::random()),
        Err(Error::WrongKey)
    ));
    assert_eq!(
        digest_files(&dir)?,
        before,
        "a failed open changed the files"
    );

    // The right keystore opens it, everything intact.
    let device = Device::open(&dir, &FileKeyStore::in_dir(a_dir.path())?)?;
    assert_eq!(device.messages(&conv.id, 10)?[0].body, "blijft bewaard");
    Ok(())
}

#[test]
fn creating_over_an_existing_store_is_refused() -> TestResult {
    let a = TestDevice::new("a", "phone")?;
    let keystore = a.keystore()?;
    let again = Device::create_for_tests(
        a.dir.path(),
        &keystore,
        a.id().clone(),
        pieper_wire::Role::Poh,
    );
    assert!(matches!(again, Err(Error::Invalid { field: "dir", .. })));
    assert_eq!(a.conversations()?.len(), 0);
    let c = a.create_conversation("Nog steeds bruikbaar", ConversationKind::Direct, None)?;
    assert_eq!(a.conversation(&c.id)?.title, "Nog steeds bruikbaar");
    Ok(())
}

#[test]
fn opening_a_missing_store_is_not_found() -> TestResult {
    let dir = tempfile::tempdir()?;
    let keystore = FileKeyStore::in_dir(dir.path())?;
    assert!(matches!(
        Device::open(dir.path(), &keystore),
        Err(Error::NotFound { .. })
    ));
    Ok(())
}
