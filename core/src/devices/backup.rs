//! The encrypted history backup, for a user who lost every device: the chat
//! history this device holds, sealed with a key derived from a recovery
//! code only the user holds (Argon2id, then ChaCha20-Poly1305), kept on the
//! server as ciphertext. Without the code the history is lost, never the
//! account: signing in again works as for any new device.

use super::DevicesClient;
use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::{
    ChaCha20Poly1305, KeyInit, Nonce,
    aead::{Aead, Payload},
};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::{
    error::{Error, Result},
    model::{ConversationKind, Message, PatientRef},
};

/// The start of every backup, with its format version.
const MAGIC: &[u8; 4] = b"PBK1";
const SALT: usize = 16;
const NONCE: usize = 12;
/// Argon2id: 19 MiB, 2 passes (OWASP's minimum for interactive use; fine on
/// a phone once per backup).
const ARGON_MEMORY_KIB: u32 = 19 * 1024;
const ARGON_PASSES: u32 = 2;
/// The recovery code's alphabet (no 0/O, 1/I/L).
const ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";

/// One conversation in a backup.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct BackedUpConversation {
    id: String,
    title: String,
    kind: ConversationKind,
    patient: Option<PatientRef>,
    messages: Vec<crate::conversations::history::HistoryMessage>,
}

/// What a backup holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct BackupContent {
    user: String,
    made_at: i64,
    conversations: Vec<BackedUpConversation>,
}

impl BackupContent {
    /// What it holds, for a sealed size of `bytes`.
    fn report(&self, bytes: u64) -> BackupReport {
        BackupReport {
            conversations: self.conversations.len() as u32,
            messages: self
                .conversations
                .iter()
                .map(|c| c.messages.len() as u32)
                .sum(),
            bytes,
        }
    }
}

/// What a backup or a restore did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackupReport {
    /// Conversations in it.
    pub conversations: u32,
    /// Messages in it.
    pub messages: u32,
    /// Its size on the server (bytes).
    pub bytes: u64,
}

/// A new recovery code: 24 characters in groups of four (about 119 bits).
pub fn new_recovery_code() -> String {
    let mut bytes = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let chars: Vec<char> = bytes
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect();
    chars
        .chunks(4)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join("-")
}

/// The code as typed: case, spaces and dashes do not matter.
fn normalise(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

fn derive_key(code: &str, salt: &[u8]) -> Result<Zeroizing<[u8; 32]>> {
    let params = Params::new(ARGON_MEMORY_KIB, ARGON_PASSES, 1, Some(32))
        .map_err(|e| Error::invalid("backup", e.to_string()))?;
    let mut key = Zeroizing::new([0u8; 32]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(normalise(code).as_bytes(), salt, key.as_mut())
        .map_err(|e| Error::invalid("backup", e.to_string()))?;
    Ok(key)
}

/// The user's recovery key: an Ed25519 key derived from the recovery code
/// (Argon2id, salted with the user id), so a device that restores the
/// backup vouches for itself with the code alone. Its public half goes into
/// the practice group when the backup is made.
fn recovery_key(code: &str, user: &str) -> Result<ed25519_dalek::SigningKey> {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new()
        .chain_update(b"pieper recovery key v1")
        .chain_update(user.as_bytes())
        .finalize();
    let seed = derive_key(code, &digest[..SALT])?;
    Ok(ed25519_dalek::SigningKey::from_bytes(&seed))
}

/// Seals `plaintext` under the code; the user id is bound in as associated
/// data, so one user's backup does not open as another's.
fn seal(code: &str, user: &str, plaintext: &[u8]) -> Result<Vec<u8>> {
    let mut salt = [0u8; SALT];
    let mut nonce = [0u8; NONCE];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let key = derive_key(code, &salt)?;
    let cipher = ChaCha20Poly1305::new(key.as_ref().into());
    let sealed = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: user.as_bytes(),
            },
        )
        .map_err(|_| Error::invalid("backup", "sealing failed"))?;
    let mut out = Vec::with_capacity(4 + SALT + NONCE + sealed.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&salt);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// Opens a backup; a wrong code (or another user's backup) is
/// [`Error::WrongKey`], a damaged one [`Error::Tampered`].
fn open(code: &str, user: &str, sealed: &[u8]) -> Result<Vec<u8>> {
    if sealed.len() < 4 + SALT + NONCE + 16 || &sealed[..4] != MAGIC {
        return Err(Error::Tampered);
    }
    let (salt, rest) = sealed[4..].split_at(SALT);
    let (nonce, body) = rest.split_at(NONCE);
    let key = derive_key(code, salt)?;
    let cipher = ChaCha20Poly1305::new(key.as_ref().into());
    cipher
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: body,
                aad: user.as_bytes(),
            },
        )
        .map_err(|_| Error::WrongKey)
}

impl DevicesClient<'_> {
    /// Backs up the chat history this device holds (the newest `per
    /// conversation` messages of each), sealed with `recovery_code` (see
    /// [`new_recovery_code`]); the server keeps the ciphertext, replacing
    /// the user's previous backup.
    pub async fn create_backup(
        &self,
        recovery_code: &str,
        per_conversation: u32,
    ) -> Result<BackupReport> {
        if normalise(recovery_code).len() < 16 {
            return Err(Error::invalid(
                "recovery_code",
                "at least 16 letters and digits",
            ));
        }
        let user = self.client.id().user.clone();
        let content = self
            .client
            .store(move |d| {
                let mut conversations = Vec::new();
                for c in d.all_conversations()? {
                    if matches!(
                        c.kind,
                        ConversationKind::Practice | ConversationKind::Personal
                    ) {
                        continue;
                    }
                    let messages = d
                        .messages(&c.id, per_conversation)?
                        .into_iter()
                        .filter(|m| !m.expired && m.expires_at.is_none())
                        .map(|m: Message| {
                            crate::conversations::history::HistoryMessage::from_message(m)
                        })
                        .collect();
                    conversations.push(BackedUpConversation {
                        id: c.id,
                        title: c.title,
                        kind: c.kind,
                        patient: c.patient,
                        messages,
                    });
                }
                Ok(BackupContent {
                    user: d.id().user.clone(),
                    made_at: crate::store::queries::now_ms(),
                    conversations,
                })
            })
            .await?;
        let plaintext = Zeroizing::new(
            serde_json::to_vec(&content).map_err(|e| Error::invalid("backup", e.to_string()))?,
        );
        let code = recovery_code.to_owned();
        let (sealed, recovery) = tokio::task::spawn_blocking(move || {
            Ok::<_, Error>((
                seal(&code, &user, &plaintext)?,
                recovery_key(&code, &user)?.verifying_key(),
            ))
        })
        .await
        .map_err(|e| Error::internal("backup", e))??;
        let bytes = sealed.len() as u64;
        let result = self.client.api()?.put_backup(sealed).await;
        self.client.server(result).await?;
        // The code now also vouches for a device that restores the backup:
        // the practice learns its public key (the old one no longer counts).
        self.client
            .store(move |d| d.set_own_recovery_key(recovery.as_bytes()))
            .await?;
        // The practice group carries it (made now if the practice has none);
        // offline, the next sync sends it.
        match self.client.consent().sync_practice().await {
            Ok(_) | Err(Error::Network(_)) => {}
            Err(e) => return Err(e),
        }
        self.client.store(|d| d.share_recovery_key()).await?;
        self.client.flush_quietly().await?;
        Ok(content.report(bytes))
    }

    /// Restores the user's backup onto this (new) device with the recovery
    /// code: the conversations come back readable, and take part again once
    /// a member adds this device. A wrong code is [`Error::WrongKey`] and
    /// changes nothing.
    pub async fn restore_backup(&self, recovery_code: &str) -> Result<BackupReport> {
        let result = self.client.api()?.get_backup().await;
        let sealed = self.client.server(result).await?;
        let bytes = sealed.len() as u64;
        let (code, user) = (recovery_code.to_owned(), self.client.id().user.clone());
        let (plaintext, recovery) = tokio::task::spawn_blocking(move || {
            Ok::<_, Error>((
                Zeroizing::new(open(&code, &user, &sealed)?),
                recovery_key(&code, &user)?,
            ))
        })
        .await
        .map_err(|e| Error::internal("restore", e))??;
        let content: BackupContent =
            serde_json::from_slice(&plaintext).map_err(|_| Error::Tampered)?;
        if content.user != self.client.id().user {
            return Err(Error::WrongKey);
        }
        let report = content.report(bytes);
        // The code vouches for this device: the user's colleagues' devices
        // (which know the recovery key) add it again.
        let signature = self.client.read(move |d| d.recovery_approval(&recovery))?;
        let approval = pieper_wire::Approval {
            by_device: self.client.id().device.clone(),
            kind: pieper_wire::ApprovalKind::Recovery,
            signature: signature.into(),
        };
        let result = self
            .client
            .api()?
            .approve(&self.client.id().device, &approval)
            .await;
        self.client.server(result).await?;
        self.client
            .store(move |d| {
                for c in &content.conversations {
                    d.restore_conversation(
                        &c.id,
                        &c.title,
                        c.kind,
                        c.patient.as_ref(),
                        &c.messages,
                    )?;
                }
                Ok(())
            })
            .await?;
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backup_opens_with_its_code_only_and_for_its_user_only() -> Result<()> {
        let code = new_recovery_code();
        assert_eq!(normalise(&code).len(), 24);
        let sealed = seal(&code, "u1", b"geschiedenis")?;
        assert_eq!(
            open(&code.to_lowercase().replace('-', " "), "u1", &sealed)?,
            b"geschiedenis"
        );
        assert!(matches!(
            open(&new_recovery_code(), "u1", &sealed),
            Err(Error::WrongKey)
        ));
        assert!(matches!(open(&code, "u2", &sealed), Err(Error::WrongKey)));
        let mut damaged = sealed.clone();
        damaged[2] ^= 1;
        assert!(matches!(open(&code, "u1", &damaged), Err(Error::Tampered)));
        Ok(())
    }
}
