//! KeyPackages are checked on upload, before anything is stored: each one
//! must parse and validate as an MLS KeyPackage of Pieper's ciphersuite,
//! and its leaf must carry the uploading device's own certificate and
//! signature key. A device cannot publish KeyPackages in a colleague's
//! name, and nothing malformed reaches the devices that claim them (they
//! check again: the server is not trusted for this).

use openmls::prelude::{
    BasicCredential, Ciphersuite, KeyPackageIn, ProtocolVersion, tls_codec::Deserialize as _,
};
use openmls_rust_crypto::RustCrypto;

use crate::error::{AppError, AppResult};

/// X25519, ChaCha20-Poly1305, SHA-256, Ed25519: the only suite Pieper uses.
const CIPHERSUITE: Ciphersuite = Ciphersuite::MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519;

/// Checks one uploaded KeyPackage against the device's certificate and
/// signature key (as enrolment or renewal stored them).
pub fn check(bytes: &[u8], certificate: &[u8], signature_key: &[u8]) -> AppResult<()> {
    let invalid = |why: &str| AppError::Invalid(format!("key_package: {why}"));
    let key_package = KeyPackageIn::tls_deserialize_exact(bytes)
        .map_err(|_| invalid("not a KeyPackage"))?
        .validate(&RustCrypto::default(), ProtocolVersion::Mls10)
        .map_err(|e| invalid(&e.to_string()))?;
    if key_package.ciphersuite() != CIPHERSUITE {
        return Err(invalid("another ciphersuite than Pieper's"));
    }
    let leaf = key_package.leaf_node();
    let credential = BasicCredential::try_from(leaf.credential().clone())
        .map_err(|_| invalid("not a basic credential"))?;
    if credential.identity() != certificate || leaf.signature_key().as_slice() != signature_key {
        return Err(invalid(
            "it is not this device's (certificate or signature key)",
        ));
    }
    Ok(())
}
