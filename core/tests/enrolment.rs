//! Creating a device is crash-safe: stopped before any step (as a crash or
//! a full disk would stop it), it leaves either a device that opens or a
//! folder that creating takes again; never one that neither accepts.

use pieper_authority::{Authority, Subject};
use pieper_core::{Device, Enrolment, EnrolmentStep, Error, FileKeyStore, KeyStore};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// An enrolment certified by the practice's authority, as at sign-in.
fn certified(authority: &Authority) -> Result<(Enrolment, Vec<u8>), Box<dyn std::error::Error>> {
    let enrolment = Enrolment::new()?;
    let certificate = authority.certify(
        &Subject {
            practice: "linde",
            user: "jansen",
            device: "phone",
            role: pieper_wire::Role::Huisarts,
            registrations: &pieper_wire::Registrations::default(),
        },
        &enrolment.signature_key(),
    )?;
    Ok((enrolment, certificate))
}

/// A device created in `dir` as at sign-in.
fn create(
    dir: &std::path::Path,
    keystore: &dyn KeyStore,
    authority: &Authority,
) -> Result<Device, Box<dyn std::error::Error>> {
    let (enrolment, certificate) = certified(authority)?;
    Ok(Device::create(
        dir,
        keystore,
        enrolment,
        &certificate,
        &authority.certificate,
    )?)
}

#[test]
fn a_crash_at_any_step_leaves_a_device_or_a_folder_that_takes_one() -> TestResult {
    let authority = Authority::generate("linde")?;
    for step in EnrolmentStep::ALL {
        let dir = tempfile::tempdir()?;
        let keystore = FileKeyStore::in_dir(dir.path())?;
        let (enrolment, certificate) = certified(&authority)?;
        let crashed = Device::create_crashing_before(
            dir.path(),
            &keystore,
            enrolment,
            &certificate,
            &authority.certificate,
            step,
        );
        assert!(crashed.is_err(), "{step:?}");
        drop(crashed);
        match Device::open(dir.path(), &keystore) {
            // Past the point of no return: the device is whole.
            Ok(device) => {
                assert!(
                    matches!(step, EnrolmentStep::Tidy),
                    "{step:?}: a device before its key was linked"
                );
                assert_eq!(device.id().device, "phone");
                assert!(device.conversations()?.is_empty());
            }
            // Nothing of a device yet: creating again works, and opens.
            Err(Error::NotFound { .. }) => {
                let created = create(dir.path(), &keystore, &authority)?;
                let public_key = created.signature_public_key().to_vec();
                drop(created);
                let opened = Device::open(dir.path(), &keystore)?;
                assert_eq!(opened.signature_public_key(), public_key, "{step:?}");
            }
            Err(e) => return Err(format!("{step:?}: the folder opens with {e:?}").into()),
        }
    }
    Ok(())
}

#[test]
fn a_second_create_where_a_device_is_destroys_nothing() -> TestResult {
    let authority = Authority::generate("linde")?;
    let dir = tempfile::tempdir()?;
    let keystore = FileKeyStore::in_dir(dir.path())?;
    let first = create(dir.path(), &keystore, &authority)?;
    let key = first.signature_public_key().to_vec();
    drop(first);
    let (enrolment, certificate) = certified(&authority)?;
    let second = Device::create(
        dir.path(),
        &keystore,
        enrolment,
        &certificate,
        &authority.certificate,
    );
    assert!(matches!(second, Err(Error::Invalid { field: "dir", .. })));
    assert_eq!(
        Device::open(dir.path(), &keystore)?.signature_public_key(),
        key
    );
    Ok(())
}

/// A keystore that fails to wrap: the platform's keystore unavailable (a
/// locked keychain). Nothing is written that would stand in the way later.
struct Unavailable;

impl KeyStore for Unavailable {
    fn wrap_key(&self, _: &[u8]) -> Result<Vec<u8>, pieper_core::KeyStoreError> {
        Err(pieper_core::KeyStoreError::Unavailable("locked".into()))
    }
    fn unwrap_key(&self, _: &[u8]) -> Result<Vec<u8>, pieper_core::KeyStoreError> {
        Err(pieper_core::KeyStoreError::Unavailable("locked".into()))
    }
}

#[test]
fn a_keystore_that_fails_leaves_a_folder_that_takes_a_device() -> TestResult {
    let authority = Authority::generate("linde")?;
    let dir = tempfile::tempdir()?;
    assert!(create(dir.path(), &Unavailable, &authority).is_err());
    let keystore = FileKeyStore::in_dir(dir.path())?;
    create(dir.path(), &keystore, &authority)?;
    Device::open(dir.path(), &keystore)?;
    Ok(())
}
