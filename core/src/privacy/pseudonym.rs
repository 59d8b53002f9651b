//! Patients on the server only as a keyed pseudonym: HMAC-SHA256 under the
//! practice's pseudonym key, which travels end-to-end in the practice group.
//! The practice can find a patient's audit events (it computes the same
//! pseudonym); the server operator cannot tell who the patient is.

use hmac::{Hmac, Mac};
use rusqlite::{Connection, OptionalExtension, params};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::{
    error::{Error, Result},
    model::PatientRef,
    store::StoreError,
};

/// Separates this use of the key from any other.
const LABEL: &[u8] = b"pieper patient pseudonym v1\0";

/// The practice's pseudonym key (32 random bytes).
#[derive(Clone)]
pub(crate) struct PracticeKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for PracticeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PracticeKey(..)")
    }
}

impl PracticeKey {
    /// A fresh random key.
    pub(crate) fn random() -> Self {
        use rand::RngCore;
        let mut key = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(key.as_mut());
        Self(key)
    }

    pub(crate) fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| Error::invalid("practice key", "must be 32 bytes"))?;
        Ok(Self(Zeroizing::new(key)))
    }

    pub(crate) fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The patient's pseudonym: 32 hex digits of HMAC-SHA256 over the
    /// reference as the practice writes it (trimmed).
    pub(crate) fn pseudonym(&self, patient: &PatientRef) -> String {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(self.0.as_ref()) else {
            unreachable!("HMAC takes a key of any length")
        };
        mac.update(LABEL);
        mac.update(patient.as_str().as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..16])
    }
}

/// The practice's key: the first the server took in the practice group's
/// order; `None` before any is known, or while only this device's own
/// waits for the server (another device's may still come first).
pub(crate) fn current(conn: &Connection) -> Result<Option<PracticeKey>> {
    let key: Option<Vec<u8>> = conn
        .query_row(
            "SELECT key FROM practice_keys WHERE seq IS NOT NULL ORDER BY seq, id LIMIT 1",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(StoreError::from)?;
    key.map(|k| PracticeKey::from_bytes(&k)).transpose()
}

/// Whether any key is known or on its way from this device.
pub(crate) fn any(conn: &Connection) -> Result<bool> {
    Ok(conn
        .query_row("SELECT 1 FROM practice_keys LIMIT 1", [], |_| Ok(()))
        .optional()
        .map_err(StoreError::from)?
        .is_some())
}

/// Stores a key from the practice group (or made here: `seq` None until the
/// server took it). Returns false when it was known.
pub(crate) fn insert(
    conn: &Connection,
    id: &str,
    key: &PracticeKey,
    seq: Option<u64>,
) -> Result<bool> {
    let n = conn
        .execute(
            "INSERT INTO practice_keys (id, key, seq, created_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (id) DO UPDATE SET seq = COALESCE(practice_keys.seq, excluded.seq)",
            params![
                id,
                key.as_bytes().as_slice(),
                seq.map(|s| s as i64),
                crate::store::queries::now_ms()
            ],
        )
        .map_err(StoreError::from)?;
    Ok(n > 0)
}

/// The server took this device's key (`id`) at `seq`.
pub(crate) fn key_sent(conn: &Connection, id: &str, seq: u64) -> Result<()> {
    conn.execute(
        "UPDATE practice_keys SET seq = ?2 WHERE id = ?1 AND seq IS NULL",
        params![id, seq as i64],
    )
    .map_err(StoreError::from)?;
    Ok(())
}

/// Every key this device knows, oldest first (for a device joining later).
pub(crate) fn all(conn: &Connection) -> Result<Vec<(String, PracticeKey, Option<u64>)>> {
    let mut stmt = conn
        .prepare("SELECT id, key, seq FROM practice_keys WHERE seq IS NOT NULL ORDER BY seq, id")
        .map_err(StoreError::from)?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, Option<i64>>(2)?,
            ))
        })
        .map_err(StoreError::from)?;
    let mut out = Vec::new();
    for row in rows {
        let (id, key, seq) = row.map_err(StoreError::from)?;
        out.push((id, PracticeKey::from_bytes(&key)?, seq.map(|s| s as u64)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pseudonym_depends_on_the_key_and_the_patient_only() -> Result<()> {
        let (k1, k2) = (PracticeKey::random(), PracticeKey::random());
        let p = PatientRef::new("999911120")?;
        let q = PatientRef::new(" 999911120 ")?;
        assert_eq!(k1.pseudonym(&p), k1.pseudonym(&q));
        assert_ne!(k1.pseudonym(&p), k2.pseudonym(&p));
        assert_ne!(
            k1.pseudonym(&p),
            k1.pseudonym(&PatientRef::new("999911132")?)
        );
        let pseudonym = k1.pseudonym(&p);
        assert_eq!(pseudonym.len(), 32);
        assert!(!pseudonym.contains("999911120"));
        Ok(())
    }
}
