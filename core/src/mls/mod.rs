//! OpenMLS over the store: a provider whose storage is the current store
//! transaction, the group configuration every Pieper device uses, and the
//! mapping of OpenMLS errors to [`Error`](crate::Error).

mod error;

use std::borrow::Borrow;

pub(crate) use error::{map_process_error, mls_err};
use openmls::prelude::{
    tls_codec::{Deserialize as _, Serialize as _},
    *,
};
use openmls_rust_crypto::RustCrypto;
use openmls_sqlite_storage::{Codec, SqliteStorageProvider};
use rusqlite::Connection;

use crate::{
    error::{Error, Result},
    identity::MemberId,
    model::Member,
};

/// X25519 / ChaCha20-Poly1305 / SHA-256 / Ed25519.
pub(crate) const CIPHERSUITE: Ciphersuite =
    Ciphersuite::MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519;

/// How many past epochs a device can still decrypt (messages sent just
/// before a commit that reach it just after).
const MAX_PAST_EPOCHS: usize = 5;

/// Serializes OpenMLS state for its SQLite tables as MessagePack with field
/// names: binary (keys stay bytes, a third of JSON's size, so fewer pages to
/// encrypt per operation) and self-describing, which OpenMLS's serde impls
/// need. Field names keep it readable across OpenMLS releases that add fields.
#[derive(Default)]
pub(crate) struct StateCodec;

#[derive(Debug, thiserror::Error)]
pub(crate) enum StateCodecError {
    #[error(transparent)]
    Encode(#[from] rmp_serde::encode::Error),
    #[error(transparent)]
    Decode(#[from] rmp_serde::decode::Error),
}

impl Codec for StateCodec {
    type Error = StateCodecError;

    fn to_vec<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, Self::Error> {
        Ok(rmp_serde::to_vec_named(value)?)
    }

    fn from_slice<T: serde::de::DeserializeOwned>(slice: &[u8]) -> Result<T, Self::Error> {
        Ok(rmp_serde::from_slice(slice)?)
    }
}

/// The OpenMLS provider for one operation: RustCrypto, and storage on the
/// connection (in practice the open transaction) it is given.
pub(crate) struct Provider<'a, C: Borrow<Connection> + Copy> {
    crypto: &'a RustCrypto,
    conn: C,
    storage: SqliteStorageProvider<StateCodec, C>,
}

impl<'a, C: Borrow<Connection> + Copy> Provider<'a, C> {
    pub(crate) fn new(crypto: &'a RustCrypto, conn: C) -> Self {
        Self {
            crypto,
            conn,
            storage: SqliteStorageProvider::new(conn),
        }
    }
}

impl<C: Borrow<Connection> + Copy> OpenMlsProvider for Provider<'_, C> {
    type CryptoProvider = RustCrypto;
    type RandProvider = RustCrypto;
    type StorageProvider = SqliteStorageProvider<StateCodec, C>;

    fn storage(&self) -> &Self::StorageProvider {
        &self.storage
    }

    fn crypto(&self) -> &Self::CryptoProvider {
        self.crypto
    }

    fn rand(&self) -> &Self::RandProvider {
        self.crypto
    }
}

/// Outgoing messages (commits included) are always encrypted, so the server
/// learns neither content nor what kind of handshake it carries.
fn wire_format_policy() -> WireFormatPolicy {
    PURE_CIPHERTEXT_WIRE_FORMAT_POLICY
}

pub(crate) fn create_config() -> MlsGroupCreateConfig {
    MlsGroupCreateConfig::builder()
        .ciphersuite(CIPHERSUITE)
        .wire_format_policy(wire_format_policy())
        .use_ratchet_tree_extension(true)
        .max_past_epochs(MAX_PAST_EPOCHS)
        .build()
}

pub(crate) fn join_config() -> MlsGroupJoinConfig {
    MlsGroupJoinConfig::builder()
        .wire_format_policy(wire_format_policy())
        .use_ratchet_tree_extension(true)
        .max_past_epochs(MAX_PAST_EPOCHS)
        .build()
}

/// Loads a group from storage; `NotFound` if this device never had it.
pub(crate) fn load_group(
    provider: &Provider<'_, &Connection>,
    conversation: &str,
) -> Result<MlsGroup> {
    MlsGroup::load(
        provider.storage(),
        &GroupId::from_slice(conversation.as_bytes()),
    )
    .map_err(Error::from)?
    .ok_or(Error::NotFound {
        what: "conversation",
    })
}

/// The member devices of a group's current epoch.
pub(crate) fn members(group: &MlsGroup) -> Result<Vec<Member>> {
    group
        .members()
        .map(|m| {
            Ok(Member {
                id: member_id(&m.credential)?,
                leaf_index: m.index.u32(),
            })
        })
        .collect()
}

/// The Pieper identity in an MLS credential.
pub(crate) fn member_id(credential: &Credential) -> Result<MemberId> {
    let basic = BasicCredential::try_from(credential.clone())
        .map_err(|_| Error::invalid("credential", "not a basic credential"))?;
    MemberId::from_credential_bytes(basic.identity())
}

/// The certificate a member's basic credential carries.
pub(crate) fn credential_identity(credential: &Credential) -> Result<Vec<u8>> {
    Ok(BasicCredential::try_from(credential.clone())
        .map_err(|_| Error::Untrusted {
            reason: "not a basic credential".into(),
        })?
        .identity()
        .to_vec())
}

/// TLS-encodes an outgoing MLS message.
pub(crate) fn to_bytes(message: &MlsMessageOut) -> Result<Vec<u8>> {
    message.tls_serialize_detached().map_err(mls_err)
}

/// Parses bytes from the network into an MLS message; anything that does not
/// parse was damaged on the way.
pub(crate) fn parse(bytes: &[u8]) -> Result<MlsMessageIn> {
    MlsMessageIn::tls_deserialize_exact(bytes).map_err(|_| Error::Tampered)
}

/// Parses and validates a member's KeyPackage.
pub(crate) fn parse_key_package(crypto: &RustCrypto, bytes: &[u8]) -> Result<KeyPackage> {
    let key_package = KeyPackageIn::tls_deserialize_exact(bytes)
        .map_err(|_| Error::invalid("key_package", "not a KeyPackage"))?
        .validate(crypto, ProtocolVersion::Mls10)
        .map_err(|e| Error::invalid("key_package", e.to_string()))?;
    if key_package.ciphersuite() != CIPHERSUITE {
        return Err(Error::invalid("key_package", "unsupported ciphersuite"));
    }
    member_id(key_package.leaf_node().credential())?;
    Ok(key_package)
}

impl<'a> Provider<'a, &'a Connection> {
    /// The connection (transaction) this provider writes to.
    pub(crate) fn connection(&self) -> &'a Connection {
        self.conn
    }
}
