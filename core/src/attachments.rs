//! Attachment sealing: a file is encrypted in chunks under a fresh key with
//! ChaCha20-Poly1305 in the STREAM construction (Hoang, Reyhanitabar, Rogaway,
//! Vizár 2015, as implemented by the `aead` crate: a counter and a last-chunk
//! flag in each nonce), so a truncated, reordered or altered blob never opens.
//! The key, the SHA-256 digest of the sealed blob and the size travel inside
//! the MLS message; only the sealed blob goes to the server.

use std::{
    io::{self, BufRead, BufReader, Read, Write},
    sync::mpsc,
};

use chacha20poly1305::{
    ChaCha20Poly1305, KeyInit,
    aead::stream::{DecryptorBE32, EncryptorBE32},
};
use rand::{RngCore, rngs::OsRng};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroize;

/// Plaintext bytes per chunk.
pub const CHUNK_SIZE: usize = 64 * 1024;
const TAG_SIZE: usize = 16;
const MAGIC: &[u8; 4] = b"PPA1";
const NONCE_PREFIX_SIZE: usize = 7;
const HEADER_SIZE: usize = MAGIC.len() + NONCE_PREFIX_SIZE;

/// Why an attachment could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum AttachmentError {
    /// The blob ends before all of the file's chunks.
    #[error("the attachment is truncated")]
    Truncated,
    /// A chunk was altered, reordered, or the blob is not what the key names.
    #[error("the attachment was tampered with")]
    Tampered,
    /// The blob decrypted, but its digest is not the one the message named.
    #[error("the attachment's digest does not match")]
    DigestMismatch,
    /// Reading or writing failed.
    #[error("attachment I/O: {0}")]
    Io(#[from] io::Error),
}

/// What a recipient needs to open a sealed attachment. Travels only inside
/// end-to-end encrypted messages.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentKey {
    /// The per-file ChaCha20-Poly1305 key.
    #[serde(with = "hex_bytes")]
    pub key: [u8; 32],
    /// SHA-256 of the sealed blob.
    #[serde(with = "hex_bytes")]
    pub digest: [u8; 32],
    /// The plaintext size in bytes.
    pub size: u64,
}

impl std::fmt::Debug for AttachmentKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AttachmentKey")
            .field("digest", &hex::encode(self.digest))
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl Drop for AttachmentKey {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

/// The size of the sealed blob for a file of `size` bytes.
pub fn sealed_len(size: u64) -> u64 {
    let chunks = chunk_count(size);
    HEADER_SIZE as u64 + size + chunks * TAG_SIZE as u64
}

fn chunk_count(size: u64) -> u64 {
    size.div_ceil(CHUNK_SIZE as u64).max(1)
}

/// Seals `plaintext` into a new blob; returns the blob and its key.
pub fn seal(plaintext: &[u8]) -> Result<(Vec<u8>, AttachmentKey), AttachmentError> {
    let mut out = Vec::with_capacity(sealed_len(plaintext.len() as u64) as usize);
    let key = seal_stream(plaintext, &mut out)?;
    Ok((out, key))
}

/// Opens a blob made by [`seal`]; returns the plaintext only if all of it is
/// authentic.
pub fn open(blob: &[u8], key: &AttachmentKey) -> Result<Vec<u8>, AttachmentError> {
    let mut out = Vec::with_capacity(key.size.min(64 << 20) as usize);
    open_stream(blob, &mut out, key)?;
    Ok(out)
}

/// Seals everything `input` yields into `output` under a fresh key.
///
/// Encryption runs on the calling thread while a second thread hashes and
/// writes the sealed chunks, so the digest costs (almost) no extra time.
pub fn seal_stream(
    mut input: impl Read,
    output: impl Write + Send,
) -> Result<AttachmentKey, AttachmentError> {
    let mut key = [0u8; 32];
    OsRng.fill_bytes(&mut key);
    let mut nonce = [0u8; NONCE_PREFIX_SIZE];
    OsRng.fill_bytes(&mut nonce);
    let mut encryptor =
        EncryptorBE32::from_aead(ChaCha20Poly1305::new((&key).into()), (&nonce).into());

    let (digest, size) = std::thread::scope(|scope| {
        let (sealed_tx, sealed_rx) = mpsc::sync_channel::<Vec<u8>>(2);
        let (spare_tx, spare_rx) = mpsc::sync_channel::<Vec<u8>>(4);
        let writer = scope.spawn(move || hash_and_write(output, sealed_rx, spare_tx));

        let mut header = Vec::with_capacity(HEADER_SIZE);
        header.extend_from_slice(MAGIC);
        header.extend_from_slice(&nonce);
        let mut size = 0u64;
        let sealing = || -> Result<(), AttachmentError> {
            if sealed_tx.send(header).is_err() {
                return Ok(()); // the writer failed; its error is reported below
            }
            let mut current = Vec::with_capacity(CHUNK_SIZE + TAG_SIZE);
            read_chunk(&mut input, &mut current)?;
            // Read one chunk ahead: the last chunk is sealed with the "last" flag.
            loop {
                let mut next = spare_rx
                    .try_recv()
                    .unwrap_or_else(|_| Vec::with_capacity(CHUNK_SIZE + TAG_SIZE));
                read_chunk(&mut input, &mut next)?;
                size += current.len() as u64;
                if next.is_empty() {
                    break;
                }
                encryptor
                    .encrypt_next_in_place(b"", &mut current)
                    .map_err(|_| AttachmentError::Tampered)?;
                if sealed_tx.send(current).is_err() {
                    return Ok(());
                }
                current = next;
            }
            encryptor
                .encrypt_last_in_place(b"", &mut current)
                .map_err(|_| AttachmentError::Tampered)?;
            let _ = sealed_tx.send(current);
            Ok(())
        };
        let sealed = sealing();
        // Closing the channel ends the writer.
        drop(sealed_tx);
        let digest = writer
            .join()
            .map_err(|_| AttachmentError::Io(io::Error::other("attachment writer panicked")))??;
        sealed.map(|()| (digest, size))
    })?;
    Ok(AttachmentKey { key, digest, size })
}

/// The writer side of [`seal_stream`]: hashes and writes each sealed piece,
/// handing emptied buffers back for reuse.
fn hash_and_write(
    mut output: impl Write,
    sealed: mpsc::Receiver<Vec<u8>>,
    spare: mpsc::SyncSender<Vec<u8>>,
) -> Result<[u8; 32], AttachmentError> {
    let mut digest = Sha256::new();
    for mut piece in sealed {
        digest.update(&piece);
        output.write_all(&piece)?;
        piece.clear();
        let _ = spare.try_send(piece);
    }
    output.flush()?;
    Ok(digest.finalize().into())
}

/// Opens a sealed blob from `input` into `output`. On error, whatever was
/// written to `output` must be discarded: only `Ok` vouches for it.
pub fn open_stream(
    input: impl Read,
    mut output: impl Write,
    key: &AttachmentKey,
) -> Result<(), AttachmentError> {
    let mut input = BufReader::with_capacity(CHUNK_SIZE + TAG_SIZE, input);
    let mut digest = Sha256::new();
    let mut header = [0u8; HEADER_SIZE];
    read_exact_or_truncated(&mut input, &mut header)?;
    if &header[..MAGIC.len()] != MAGIC {
        return Err(AttachmentError::Tampered);
    }
    digest.update(header);
    let nonce: [u8; NONCE_PREFIX_SIZE] = header[MAGIC.len()..]
        .try_into()
        .map_err(|_| AttachmentError::Tampered)?;
    let mut decryptor =
        DecryptorBE32::from_aead(ChaCha20Poly1305::new((&key.key).into()), (&nonce).into());

    let chunks = chunk_count(key.size);
    let mut buf = Vec::with_capacity(CHUNK_SIZE + TAG_SIZE);
    for _ in 1..chunks {
        read_sealed_chunk(&mut input, &mut buf, &mut digest, CHUNK_SIZE)?;
        decryptor
            .decrypt_next_in_place(b"", &mut buf)
            .map_err(|_| AttachmentError::Tampered)?;
        output.write_all(&buf)?;
    }
    let last_len = (key.size - (chunks - 1) * CHUNK_SIZE as u64) as usize;
    read_sealed_chunk(&mut input, &mut buf, &mut digest, last_len)?;
    decryptor
        .decrypt_last_in_place(b"", &mut buf)
        .map_err(|_| AttachmentError::Tampered)?;
    output.write_all(&buf)?;
    if !input.fill_buf()?.is_empty() {
        // Bytes after the last chunk: not what was sealed.
        return Err(AttachmentError::Tampered);
    }
    if digest.finalize().as_slice() != key.digest {
        return Err(AttachmentError::DigestMismatch);
    }
    Ok(())
}

/// Reads one sealed chunk (its plaintext length plus the tag) into `buf`.
fn read_sealed_chunk(
    input: &mut impl Read,
    buf: &mut Vec<u8>,
    digest: &mut Sha256,
    plain_len: usize,
) -> Result<(), AttachmentError> {
    buf.resize(plain_len + TAG_SIZE, 0);
    read_exact_or_truncated(input, buf)?;
    digest.update(&buf[..]);
    Ok(())
}

fn read_chunk(input: &mut impl Read, buf: &mut Vec<u8>) -> io::Result<()> {
    buf.clear();
    input.take(CHUNK_SIZE as u64).read_to_end(buf)?;
    Ok(())
}

fn read_exact_or_truncated(input: &mut impl Read, buf: &mut [u8]) -> Result<(), AttachmentError> {
    input.read_exact(buf).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => AttachmentError::Truncated,
        _ => AttachmentError::Io(e),
    })
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(bytes))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let text = String::deserialize(d)?;
        let mut out = [0u8; 32];
        hex::decode_to_slice(text, &mut out).map_err(D::Error::custom)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn round_trips_at_chunk_edges() -> Result<(), AttachmentError> {
        for len in [
            0,
            1,
            CHUNK_SIZE - 1,
            CHUNK_SIZE,
            CHUNK_SIZE + 1,
            3 * CHUNK_SIZE,
        ] {
            let data = sample(len);
            let (blob, key) = seal(&data)?;
            assert_eq!(blob.len() as u64, sealed_len(len as u64), "len {len}");
            assert_eq!(key.size, len as u64);
            assert_eq!(open(&blob, &key)?, data, "len {len}");
        }
        Ok(())
    }

    #[test]
    fn each_file_gets_a_fresh_key() -> Result<(), AttachmentError> {
        let (a, ka) = seal(b"same")?;
        let (b, kb) = seal(b"same")?;
        assert_ne!(ka.key, kb.key);
        assert_ne!(a, b);
        Ok(())
    }

    /// Truncation at a chunk boundary: the chunk that is now last was not
    /// sealed as last. Even with a digest that matches the truncated blob the
    /// AEAD refuses it, so the check does not rest on the digest alone.
    #[test]
    fn truncation_detected_without_digest() -> Result<(), AttachmentError> {
        let data = sample(3 * CHUNK_SIZE);
        let (blob, key) = seal(&data)?;
        let cut = HEADER_SIZE + 2 * (CHUNK_SIZE + TAG_SIZE);
        let truncated = &blob[..cut];
        assert!(matches!(
            open(truncated, &key),
            Err(AttachmentError::Truncated)
        ));

        // An attacker who also rewrote the size and digest in the key.
        let forged = AttachmentKey {
            key: key.key,
            digest: Sha256::digest(truncated).into(),
            size: 2 * CHUNK_SIZE as u64,
        };
        assert!(matches!(
            open(truncated, &forged),
            Err(AttachmentError::Tampered)
        ));
        Ok(())
    }

    #[test]
    fn reordered_chunks_rejected() -> Result<(), AttachmentError> {
        let data = sample(3 * CHUNK_SIZE);
        let (blob, key) = seal(&data)?;
        let sealed_chunk = CHUNK_SIZE + TAG_SIZE;
        let mut swapped = blob.clone();
        let (first, second) = (HEADER_SIZE, HEADER_SIZE + sealed_chunk);
        swapped[first..first + sealed_chunk].copy_from_slice(&blob[second..second + sealed_chunk]);
        swapped[second..second + sealed_chunk].copy_from_slice(&blob[first..first + sealed_chunk]);
        // Digest fixed up to the swapped blob, so only the AEAD can notice.
        let forged = AttachmentKey {
            key: key.key,
            digest: Sha256::digest(&swapped).into(),
            size: key.size,
        };
        assert!(matches!(
            open(&swapped, &forged),
            Err(AttachmentError::Tampered)
        ));
        Ok(())
    }

    #[test]
    fn altered_byte_rejected() -> Result<(), AttachmentError> {
        let (mut blob, key) = seal(&sample(1000))?;
        blob[HEADER_SIZE + 10] ^= 0x01;
        assert!(matches!(open(&blob, &key), Err(AttachmentError::Tampered)));
        Ok(())
    }

    #[test]
    fn appended_bytes_rejected() -> Result<(), AttachmentError> {
        let (mut blob, key) = seal(&sample(1000))?;
        blob.push(0);
        assert!(matches!(open(&blob, &key), Err(AttachmentError::Tampered)));
        Ok(())
    }

    #[test]
    fn wrong_digest_rejected() -> Result<(), AttachmentError> {
        let (blob, mut key) = seal(&sample(1000))?;
        key.digest[0] ^= 1;
        assert!(matches!(
            open(&blob, &key),
            Err(AttachmentError::DigestMismatch)
        ));
        Ok(())
    }

    /// A destination that fails (a full disk) is reported, not swallowed.
    #[test]
    fn failing_output_is_an_io_error() {
        struct FailsAfter(usize);
        impl Write for FailsAfter {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                if self.0 < buf.len() {
                    return Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"));
                }
                self.0 -= buf.len();
                Ok(buf.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let data = sample(5 * CHUNK_SIZE);
        let result = seal_stream(data.as_slice(), FailsAfter(2 * CHUNK_SIZE));
        assert!(
            matches!(result, Err(AttachmentError::Io(e)) if e.kind() == io::ErrorKind::StorageFull)
        );
    }

    /// Locks the sealed format: header, chunk layout and tag size.
    #[test]
    fn sealed_layout_is_stable() -> Result<(), AttachmentError> {
        let (blob, _) = seal(b"abc")?;
        assert_eq!(&blob[..4], b"PPA1");
        assert_eq!(blob.len(), 4 + 7 + 3 + 16);
        Ok(())
    }
}
