//! The platform keystore the apps implement (Android Keystore, iOS
//! Keychain), and the shim that hands it to the core.

use std::sync::Arc;

use pieper_core::{KeyStore as CoreKeyStore, KeyStoreError as CoreKeyStoreError};

/// Why the platform keystore failed.
#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum KeyStoreError {
    /// The wrapped key was not made by this keystore.
    #[error("cannot unwrap")]
    CannotUnwrap,
    /// The keystore is not available.
    #[error("keystore unavailable: {msg}")]
    Unavailable {
        /// For logs.
        msg: String,
    },
}

impl From<uniffi::UnexpectedUniFFICallbackError> for KeyStoreError {
    fn from(e: uniffi::UnexpectedUniFFICallbackError) -> Self {
        KeyStoreError::Unavailable { msg: e.reason }
    }
}

/// Wraps and unwraps the database key with a key that never leaves the
/// platform keystore.
#[uniffi::export(foreign)]
pub trait KeyStore: Send + Sync {
    /// Wraps `key` so only this keystore can unwrap it.
    fn wrap_key(&self, key: Vec<u8>) -> Result<Vec<u8>, KeyStoreError>;
    /// Unwraps what `wrap_key` returned.
    fn unwrap_key(&self, wrapped: Vec<u8>) -> Result<Vec<u8>, KeyStoreError>;
}

/// The app's keystore as the core's.
pub(crate) struct KeyStoreShim(pub Arc<dyn KeyStore>);

fn to_core(e: KeyStoreError) -> CoreKeyStoreError {
    match e {
        KeyStoreError::CannotUnwrap => CoreKeyStoreError::CannotUnwrap,
        KeyStoreError::Unavailable { msg } => CoreKeyStoreError::Unavailable(msg),
    }
}

impl CoreKeyStore for KeyStoreShim {
    fn wrap_key(&self, key: &[u8]) -> Result<Vec<u8>, CoreKeyStoreError> {
        self.0.wrap_key(key.to_vec()).map_err(to_core)
    }

    fn unwrap_key(&self, wrapped: &[u8]) -> Result<Vec<u8>, CoreKeyStoreError> {
        self.0.unwrap_key(wrapped.to_vec()).map_err(to_core)
    }
}

/// The platform's check that the person holding the device is its user
/// (PIN screen, fingerprint, Face ID), implemented by the app.
#[uniffi::export(foreign)]
pub trait UserCheck: Send + Sync {
    /// Asks the user; true when they passed. May block until they answer.
    fn verify(&self) -> bool;
}

/// The app's user check as the core's.
pub(crate) struct UserCheckShim(pub Arc<dyn UserCheck>);

impl pieper_core::UserCheck for UserCheckShim {
    fn verify(&self) -> bool {
        self.0.verify()
    }
}
