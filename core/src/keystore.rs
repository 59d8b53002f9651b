//! The platform keystore that wraps the database key, and a file-based one.
//!
//! The store's database key is random. It is kept on disk only wrapped by a key
//! that never leaves the platform keystore (Android Keystore, iOS Keychain),
//! which the apps provide by implementing [`KeyStore`]. The CLI and the tests
//! use [`FileKeyStore`], whose wrapping key lives in a file readable only by
//! its owner.

use std::{
    fs,
    io::Write,
    path::{Path, PathBuf},
};

use chacha20poly1305::{
    KeyInit, XChaCha20Poly1305, XNonce,
    aead::{Aead, Payload},
};
use rand::{RngCore, rngs::OsRng};
use zeroize::{Zeroize, Zeroizing};

/// Why the keystore could not wrap or unwrap a key.
#[derive(Debug, thiserror::Error)]
pub enum KeyStoreError {
    /// The wrapped key was not made by this keystore (or was altered).
    #[error("the keystore cannot unwrap this key")]
    CannotUnwrap,
    /// The keystore is not available (locked, removed, I/O failure).
    #[error("keystore unavailable: {0}")]
    Unavailable(String),
}

/// A platform keystore that wraps and unwraps small secrets with a key it
/// never reveals.
pub trait KeyStore: Send + Sync {
    /// Wraps `key` so that only this keystore can unwrap it.
    fn wrap_key(&self, key: &[u8]) -> Result<Vec<u8>, KeyStoreError>;
    /// Unwraps what [`KeyStore::wrap_key`] returned.
    fn unwrap_key(&self, wrapped: &[u8]) -> Result<Vec<u8>, KeyStoreError>;
}

/// The 32-byte SQLCipher key of a store; wiped from memory when dropped.
#[derive(Clone, Zeroize)]
#[zeroize(drop)]
pub struct DbKey([u8; 32]);

impl DbKey {
    /// Makes a fresh random key.
    pub fn random() -> Self {
        let mut key = [0u8; 32];
        OsRng.fill_bytes(&mut key);
        Self(key)
    }

    /// Takes a key of exactly 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyStoreError> {
        let key: [u8; 32] = bytes.try_into().map_err(|_| KeyStoreError::CannotUnwrap)?;
        Ok(Self(key))
    }

    /// The raw key bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The key in the form SQLCipher takes a raw key: `x'<hex>'`.
    pub(crate) fn sqlcipher_pragma(&self) -> Zeroizing<String> {
        Zeroizing::new(format!("x'{}'", hex::encode(self.0)))
    }
}

impl std::fmt::Debug for DbKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DbKey(..)")
    }
}

/// A keystore whose wrapping key is a file (mode 0600): for the CLI, desktop
/// use and tests. Wrapping is XChaCha20-Poly1305 with a random nonce.
pub struct FileKeyStore {
    key: Zeroizing<[u8; 32]>,
}

const WRAP_VERSION: u8 = 1;
const WRAP_AAD: &[u8] = b"pieper/file-keystore/v1";

impl FileKeyStore {
    /// Opens the keystore at `path`, creating a new random wrapping key there
    /// if the file does not exist yet.
    pub fn open_or_create(path: impl AsRef<Path>) -> Result<Self, KeyStoreError> {
        let path = path.as_ref();
        match fs::read(path) {
            Ok(bytes) => {
                let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
                    KeyStoreError::Unavailable(format!("{} is not a key file", path.display()))
                })?;
                Ok(Self {
                    key: Zeroizing::new(key),
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = Zeroizing::new([0u8; 32]);
                OsRng.fill_bytes(key.as_mut());
                write_private(path, key.as_ref()).map_err(unavailable)?;
                Ok(Self { key })
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    /// A keystore for `dir`, kept in `dir/keystore.key`.
    pub fn in_dir(dir: impl AsRef<Path>) -> Result<Self, KeyStoreError> {
        Self::open_or_create(Self::default_path(dir))
    }

    /// Where [`FileKeyStore::in_dir`] keeps its key.
    pub fn default_path(dir: impl AsRef<Path>) -> PathBuf {
        dir.as_ref().join("keystore.key")
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(self.key.as_ref().into())
    }
}

impl KeyStore for FileKeyStore {
    fn wrap_key(&self, key: &[u8]) -> Result<Vec<u8>, KeyStoreError> {
        let mut nonce = [0u8; 24];
        OsRng.fill_bytes(&mut nonce);
        let sealed = self
            .cipher()
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: key,
                    aad: WRAP_AAD,
                },
            )
            .map_err(|_| KeyStoreError::Unavailable("wrapping failed".into()))?;
        let mut out = Vec::with_capacity(1 + nonce.len() + sealed.len());
        out.push(WRAP_VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    fn unwrap_key(&self, wrapped: &[u8]) -> Result<Vec<u8>, KeyStoreError> {
        let (version, rest) = wrapped.split_first().ok_or(KeyStoreError::CannotUnwrap)?;
        if *version != WRAP_VERSION || rest.len() < 24 {
            return Err(KeyStoreError::CannotUnwrap);
        }
        let (nonce, sealed) = rest.split_at(24);
        self.cipher()
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: WRAP_AAD,
                },
            )
            .map_err(|_| KeyStoreError::CannotUnwrap)
    }
}

fn unavailable(e: std::io::Error) -> KeyStoreError {
    KeyStoreError::Unavailable(e.to_string())
}

/// Writes a new file readable only by its owner; never overwrites one.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_and_unwraps() -> Result<(), KeyStoreError> {
        let dir = tempfile::tempdir().map_err(unavailable)?;
        let store = FileKeyStore::in_dir(dir.path())?;
        let wrapped = store.wrap_key(b"0123456789abcdef0123456789abcdef")?;
        assert!(!wrapped.windows(16).any(|w| w == b"0123456789abcdef"));
        assert_eq!(
            store.unwrap_key(&wrapped)?,
            b"0123456789abcdef0123456789abcdef"
        );
        // Reopening reads the same wrapping key.
        let again = FileKeyStore::in_dir(dir.path())?;
        assert_eq!(
            again.unwrap_key(&wrapped)?,
            b"0123456789abcdef0123456789abcdef"
        );
        Ok(())
    }

    #[test]
    fn another_keystore_cannot_unwrap() -> Result<(), KeyStoreError> {
        let a = tempfile::tempdir().map_err(unavailable)?;
        let b = tempfile::tempdir().map_err(unavailable)?;
        let wrapped = FileKeyStore::in_dir(a.path())?.wrap_key(&[7u8; 32])?;
        let other = FileKeyStore::in_dir(b.path())?;
        assert!(matches!(
            other.unwrap_key(&wrapped),
            Err(KeyStoreError::CannotUnwrap)
        ));
        let mut altered = wrapped.clone();
        if let Some(last) = altered.last_mut() {
            *last ^= 1;
        }
        let own = FileKeyStore::in_dir(a.path())?;
        assert!(matches!(
            own.unwrap_key(&altered),
            Err(KeyStoreError::CannotUnwrap)
        ));
        Ok(())
    }

    #[cfg(unix)]
    #[test]
    fn key_file_is_private() -> Result<(), KeyStoreError> {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().map_err(unavailable)?;
        FileKeyStore::in_dir(dir.path())?;
        let mode = fs::metadata(FileKeyStore::default_path(dir.path()))
            .map_err(unavailable)?
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        Ok(())
    }
}
