//! Helpers for the core's integration tests: devices in temporary
//! directories, and hand delivery between them (no server at this level).

#![allow(dead_code)]

use std::path::Path;

use pieper_core::{
    CommitOut, Conversation, ConversationKind, Device, FileKeyStore, MemberId, Outgoing, Received,
};
use pieper_wire::Role;
use tempfile::TempDir;

pub(crate) type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A device with its own directory and file keystore.
pub(crate) struct TestDevice {
    pub device: Device,
    pub dir: TempDir,
}

impl TestDevice {
    pub(crate) fn new(user: &str, device: &str) -> Result<Self, Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let keystore = FileKeyStore::in_dir(dir.path())?;
        let id = MemberId::new("praktijk-de-linde", user, device)?;
        let device = Device::create_for_tests(dir.path(), &keystore, id, Role::Huisarts)?;
        Ok(Self { device, dir })
    }

    pub(crate) fn keystore(&self) -> Result<FileKeyStore, Box<dyn std::error::Error>> {
        Ok(FileKeyStore::in_dir(self.dir.path())?)
    }

    /// Closes and reopens the device from disk.
    pub(crate) fn restart(self) -> Result<Self, Box<dyn std::error::Error>> {
        let Self { device, dir } = self;
        drop(device);
        let keystore = FileKeyStore::in_dir(dir.path())?;
        let device = Device::open(dir.path(), &keystore)?;
        Ok(Self { device, dir })
    }
}

impl std::ops::Deref for TestDevice {
    type Target = Device;
    fn deref(&self) -> &Device {
        &self.device
    }
}

/// Creates a conversation on `owner` and adds every device in `others`.
pub(crate) fn conversation_with(
    owner: &Device,
    others: &[&Device],
    title: &str,
) -> Result<Conversation, Box<dyn std::error::Error>> {
    let conversation = owner.create_conversation(title, ConversationKind::Group, None)?;
    add(owner, &conversation.id, others, &[])?;
    Ok(owner.conversation(&conversation.id)?)
}

/// `owner` adds `new` to the conversation; `existing` members apply the
/// commit; the new members join and receive the details.
pub(crate) fn add(
    owner: &Device,
    conversation: &str,
    new: &[&Device],
    existing: &[&Device],
) -> TestResult {
    let mut key_packages = Vec::new();
    for d in new {
        key_packages.extend(d.key_packages(1)?);
    }
    let out = owner.add_members(conversation, &key_packages)?;
    let added: Vec<String> = new.iter().map(|d| d.id().device.clone()).collect();
    assert_eq!(out.add_devices, added);
    assert!(out.remove_devices.is_empty());
    let details = accept(owner, &out, existing)?;
    let welcome = out.welcome.ok_or("an add has a Welcome")?;
    for d in new {
        assert!(matches!(d.receive(&welcome)?, Received::Joined(_)));
    }
    let everyone: Vec<&Device> = new.iter().chain(existing).copied().collect();
    for envelope in &details {
        for d in &everyone {
            assert!(matches!(
                d.receive(&envelope.payload)?,
                Received::ConversationUpdated(_)
            ));
        }
        owner.mark_sent(&envelope.id)?;
    }
    Ok(())
}

/// The server accepted `out`: the committer merges it and the other members
/// apply it. Returns what the committer has to send next.
pub(crate) fn accept(
    owner: &Device,
    out: &CommitOut,
    members: &[&Device],
) -> Result<Vec<Outgoing>, Box<dyn std::error::Error>> {
    let follow_up = owner.commit_accepted(&out.conversation)?;
    for d in members {
        assert!(matches!(d.receive(&out.commit)?, Received::Commit { .. }));
    }
    Ok(follow_up)
}

/// Delivers one envelope to each recipient; returns what each made of it.
pub(crate) fn deliver(out: &Outgoing, to: &[&Device]) -> Result<Vec<Received>, pieper_core::Error> {
    to.iter().map(|d| d.receive(&out.payload)).collect()
}

/// All bytes of the store's files (database, WAL, shared memory).
pub(crate) fn raw_store_bytes(dir: &Path) -> std::io::Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type()?.is_file() {
            out.push((name, std::fs::read(entry.path())?));
        }
    }
    Ok(out)
}
