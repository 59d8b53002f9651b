//! Secrets the server keeps in its database — each user's TOTP secret and
//! each practice's authority key — are sealed (ChaCha20-Poly1305) with a key
//! that lives outside the database, in a file (`--secrets-key-file`): a
//! copy of the database or a dump of it alone opens none of them. Each
//! sealed value is bound to its row (user or practice id) as associated
//! data, so one cannot be moved to another row.

use std::path::Path;

use base64::Engine as _;
use chacha20poly1305::{
    ChaCha20Poly1305, Key, KeyInit, Nonce,
    aead::{Aead, Payload},
};
use rand::RngCore;

use crate::error::{AppError, AppResult};

/// What a sealed value starts with; a value without it is from before
/// sealing and is sealed at the next start.
pub const SEALED_PREFIX: &str = "sealed:v1:";

/// The key that seals the database's secrets.
#[derive(Clone)]
pub struct Sealer {
    cipher: ChaCha20Poly1305,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

impl Sealer {
    /// A sealer with this 32-byte key.
    pub fn new(key: &[u8; 32]) -> Self {
        Self {
            cipher: ChaCha20Poly1305::new(Key::from_slice(key)),
        }
    }

    /// The key in `path`, made there (32 random bytes, readable by its
    /// owner only) on first use. Processes starting together agree on one:
    /// a new key is linked into place atomically, and whoever loses reads
    /// the winner's.
    pub fn from_file(path: &Path) -> AppResult<Self> {
        let io = |what: &str, e: std::io::Error| {
            AppError::Internal(format!("secrets key {}: {what}: {e}", path.display()))
        };
        if !path.exists() {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| io("folder", e))?;
            }
            let mut key = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut key);
            let pending = path.with_extension(format!(
                "new.{}.{:x}",
                std::process::id(),
                rand::rngs::OsRng.next_u64()
            ));
            write_private(&pending, &key).map_err(|e| io("write", e))?;
            let linked = std::fs::hard_link(&pending, path);
            let _ = std::fs::remove_file(&pending);
            match linked {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io("link", e)),
            }
        }
        let bytes = std::fs::read(path).map_err(|e| io("read", e))?;
        let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
            AppError::Internal(format!("secrets key {}: not 32 bytes", path.display()))
        })?;
        Ok(Self::new(&key))
    }

    /// Seals `secret` for the row `context` (e.g. `totp:<user id>`).
    pub fn seal(&self, context: &str, secret: &[u8]) -> AppResult<String> {
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: secret,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| AppError::Internal("sealing a secret failed".into()))?;
        let mut out = nonce.to_vec();
        out.extend(sealed);
        Ok(format!(
            "{SEALED_PREFIX}{}",
            base64::engine::general_purpose::STANDARD.encode(out)
        ))
    }

    /// Opens what [`Sealer::seal`] made for `context`; a value from before
    /// sealing comes back as it is. A value sealed with another key or for
    /// another row is an internal error (the operator's key file is not the
    /// one the database was sealed with, or the row was tampered with).
    pub fn open(&self, context: &str, stored: &str) -> AppResult<Vec<u8>> {
        let Some(encoded) = stored.strip_prefix(SEALED_PREFIX) else {
            return Ok(stored.as_bytes().to_vec());
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|_| AppError::Internal("a sealed secret is not base64".into()))?;
        if bytes.len() < 12 {
            return Err(AppError::Internal("a sealed secret is too short".into()));
        }
        let (nonce, sealed) = bytes.split_at(12);
        self.cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| {
                AppError::Internal(
                    "a sealed secret does not open: another secrets key, or another row".into(),
                )
            })
    }

    /// [`Sealer::open`] for a secret kept as bytes (a BLOB column).
    pub fn open_bytes(&self, context: &str, stored: &[u8]) -> AppResult<Vec<u8>> {
        match std::str::from_utf8(stored) {
            Ok(text) if text.starts_with(SEALED_PREFIX) => self.open(context, text),
            _ => Ok(stored.to_vec()),
        }
    }

    /// [`Sealer::open`] for a text secret.
    pub fn open_text(&self, context: &str, stored: &str) -> AppResult<String> {
        String::from_utf8(self.open(context, stored)?)
            .map_err(|_| AppError::Internal("a sealed secret is not text".into()))
    }
}

/// The row a user's TOTP secret is bound to.
pub fn totp_context(user: &str) -> String {
    format!("totp:{user}")
}

/// The row a practice's authority key is bound to.
pub fn authority_context(practice: &str) -> String {
    format!("authority:{practice}")
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
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
    fn a_sealed_secret_opens_only_with_its_key_and_row() -> AppResult<()> {
        let sealer = Sealer::new(&[7; 32]);
        let sealed = sealer.seal("totp:u1", b"JBSWY3DPEHPK3PXP")?;
        assert!(sealed.starts_with(SEALED_PREFIX));
        assert!(!sealed.contains("JBSWY3DPEHPK3PXP"));
        assert_eq!(sealer.open_text("totp:u1", &sealed)?, "JBSWY3DPEHPK3PXP");
        assert!(
            sealer.open("totp:u2", &sealed).is_err(),
            "moved to another row"
        );
        assert!(Sealer::new(&[8; 32]).open("totp:u1", &sealed).is_err());
        // From before sealing: as it is.
        assert_eq!(sealer.open_text("totp:u1", "PLAIN")?, "PLAIN");
        Ok(())
    }

    #[test]
    fn processes_starting_together_share_one_key_file() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("secrets.key");
        let sealers: Vec<Sealer> = std::thread::scope(|s| {
            let runs: Vec<_> = (0..4)
                .map(|_| s.spawn(|| Sealer::from_file(&path)))
                .collect();
            runs.into_iter()
                .map(|r| {
                    r.join()
                        .map_err(|_| "panicked".to_owned())?
                        .map_err(|e| e.to_string())
                })
                .collect::<Result<_, String>>()
        })?;
        let sealed = sealers[0].seal("authority:p", b"key")?;
        for sealer in &sealers {
            assert_eq!(sealer.open("authority:p", &sealed)?, b"key");
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path)?.permissions().mode() & 0o777,
                0o600
            );
        }
        Ok(())
    }
}
