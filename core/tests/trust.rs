//! Who a member is comes from the certificate the practice's authority
//! issued, checked by every device: without a server, device to device.

mod common;

use common::{TestDevice, TestResult, add};
use pieper_core::{ConversationKind, Device, Error, FileKeyStore, KnownGroup, MemberId, Received};

#[test]
fn a_device_certified_by_another_authority_is_not_added() -> TestResult {
    let a = TestDevice::new("a", "phone")?;
    let dir = tempfile::tempdir()?;
    let keystore = FileKeyStore::in_dir(dir.path())?;
    // Same user and device names, but another practice's authority.
    let outsider = Device::create_for_tests(
        dir.path(),
        &keystore,
        MemberId::new("elders", "b", "phone")?,
        pieper_wire::Role::Huisarts,
    )?;
    let conv = a.create_conversation("Overleg", ConversationKind::Group, None)?;
    let refused = a.add_members(&conv.id, &outsider.key_packages(1)?);
    assert!(
        matches!(refused, Err(Error::Untrusted { .. })),
        "{refused:?}"
    );
    assert_eq!(a.members(&conv.id)?.len(), 1);
    assert!(a.outbox()?.is_empty(), "nothing queued");
    Ok(())
}

#[test]
fn a_colleague_cannot_make_someone_elses_personal_group() -> TestResult {
    let victim = TestDevice::new("jansen", "phone")?;
    let colleague = TestDevice::new("bakker", "desktop")?;
    // The personal group's id is derived from public names: the colleague
    // makes it first and adds the victim's device to read their notes.
    let squatted = colleague.create_group_with_id(&victim.known_group_id(KnownGroup::Personal))?;
    let out = colleague.add_members(&squatted.id, &victim.key_packages(1)?)?;
    colleague.commit_accepted(&squatted.id)?;
    let welcome = out.welcome.ok_or("an add has a Welcome")?;
    let joined = victim.receive(&welcome);
    assert!(matches!(joined, Err(Error::Untrusted { .. })), "{joined:?}");
    assert!(!victim.conversations()?.iter().any(|c| c.id == squatted.id));

    // A normal conversation with the same colleague is joined as always.
    let normal = colleague.create_conversation("Overleg", ConversationKind::Group, None)?;
    add(&colleague, &normal.id, &[&victim], &[])?;
    assert!(victim.conversation(&normal.id)?.active);
    assert!(!matches!(victim.receive(&welcome), Ok(Received::Joined(_))));
    Ok(())
}
