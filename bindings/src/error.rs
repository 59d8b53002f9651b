//! The one place where core errors become the error the apps see
//! (Kotlin `PieperException`, Swift `PieperError`). Details go to the log,
//! never content or keys.

use pieper_core::Error as CoreError;

/// What went wrong, as the app acts on it.
#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum PieperError {
    /// The server is unreachable or failing; queued work goes out later.
    #[error("network: {msg}")]
    Network {
        /// For logs.
        msg: String,
    },
    /// The session ended: show the sign-in screen.
    #[error("signed out")]
    SignedOut,
    /// This device was revoked (lost or stolen) and wiped its data: show
    /// the sign-in screen; signing in makes it a new device.
    #[error("device revoked and wiped")]
    Revoked,
    /// The app is locked: call `unlock` (the platform checks the user).
    #[error("locked")]
    Locked,
    /// The device wiped itself (revoked, or too many failed unlocks); every
    /// call after the wipe answers this: sign in again.
    #[error("device wiped")]
    Wiped,
    /// The server refused, with a stable code (`totp_invalid`, `totp_reused`,
    /// `throttled`, `not_found`, ...).
    #[error("refused: {code}")]
    Rejected {
        /// The stable code.
        code: String,
        /// The server's explanation.
        detail: Option<String>,
    },
    /// The keystore's key does not open this device's store.
    #[error("wrong database key")]
    WrongKey,
    /// An end-to-end encryption outcome the app may act on.
    #[error("crypto: {kind:?}")]
    Crypto {
        /// Which.
        kind: CryptoErrorKind,
    },
    /// Something named does not exist.
    #[error("not found: {what}")]
    NotFound {
        /// What.
        what: String,
    },
    /// Input refused, with the field and why.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The field.
        field: String,
        /// Why.
        reason: String,
    },
    /// Sharing outside the practice needs the patient's consent (of `kind`),
    /// and it is not given.
    #[error("consent required: {kind:?}")]
    ConsentRequired {
        /// The consent that is missing.
        kind: crate::consent::ConsentKind,
    },
    /// This user's role (or identity) does not allow it; nothing changed.
    #[error("refused: {reason}")]
    Refused {
        /// Why.
        reason: pieper_core::Refusal,
    },
    /// The device's store failed (full disk, corruption).
    #[error("storage: {msg}")]
    Storage {
        /// For logs.
        msg: String,
    },
    /// Anything else (a bug, a keystore failure); for logs.
    #[error("{msg}")]
    Other {
        /// For logs.
        msg: String,
    },
}

/// End-to-end encryption outcomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum CryptoErrorKind {
    /// A message was altered or corrupt.
    Tampered,
    /// A message was already processed.
    Replay,
    /// A message or commit of another epoch.
    StaleEpoch,
    /// This device is not a member.
    NotMember,
    /// A member's certificate did not check out (see the log).
    Untrusted,
    /// A membership change awaits the server.
    PendingCommit,
}

impl From<CoreError> for PieperError {
    fn from(e: CoreError) -> Self {
        tracing::debug!(error = ?e, "core error crosses the FFI");
        let crypto = |kind| PieperError::Crypto { kind };
        match e {
            CoreError::Network(msg) => PieperError::Network { msg },
            CoreError::SignedOut => PieperError::SignedOut,
            CoreError::Revoked => PieperError::Revoked,
            CoreError::Locked => PieperError::Locked,
            CoreError::Wiped => PieperError::Wiped,
            CoreError::Rejected { code, detail } => PieperError::Rejected { code, detail },
            CoreError::WrongKey => PieperError::WrongKey,
            CoreError::Tampered => crypto(CryptoErrorKind::Tampered),
            CoreError::Replay => crypto(CryptoErrorKind::Replay),
            CoreError::StaleEpoch { .. } => crypto(CryptoErrorKind::StaleEpoch),
            CoreError::NotMember => crypto(CryptoErrorKind::NotMember),
            CoreError::Untrusted { .. } => crypto(CryptoErrorKind::Untrusted),
            CoreError::PendingCommit => crypto(CryptoErrorKind::PendingCommit),
            CoreError::NotFound { what } => PieperError::NotFound {
                what: what.to_owned(),
            },
            CoreError::Invalid { field, reason } => PieperError::Invalid {
                field: field.to_owned(),
                reason,
            },
            CoreError::Storage(e) => PieperError::Storage { msg: e.to_string() },
            CoreError::ConsentRequired { kind } => PieperError::ConsentRequired { kind },
            CoreError::Refused { reason } => PieperError::Refused { reason },
            // The cause chain is flattened here, at the FFI, and nowhere else.
            other => PieperError::Other { msg: chain(&other) },
        }
    }
}

/// An error and its causes, outermost first: "a: b: c".
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl From<uniffi::UnexpectedUniFFICallbackError> for PieperError {
    fn from(e: uniffi::UnexpectedUniFFICallbackError) -> Self {
        PieperError::Other { msg: e.reason }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A core error and the check its mapping must pass.
    type Case = (CoreError, fn(&PieperError) -> bool);

    #[test]
    fn each_core_error_maps_to_its_variant() {
        use pieper_core::StoreError;
        let cases: Vec<Case> = vec![
            (CoreError::Network("x".into()), |e| {
                matches!(e, PieperError::Network { .. })
            }),
            (CoreError::SignedOut, |e| {
                matches!(e, PieperError::SignedOut)
            }),
            (
                CoreError::Rejected {
                    code: "totp_invalid".into(),
                    detail: None,
                },
                |e| matches!(e, PieperError::Rejected { code, .. } if code == "totp_invalid"),
            ),
            (CoreError::WrongKey, |e| matches!(e, PieperError::WrongKey)),
            (
                CoreError::Refused {
                    reason: pieper_core::Refusal::Role,
                },
                |e| {
                    matches!(
                        e,
                        PieperError::Refused {
                            reason: pieper_core::Refusal::Role
                        }
                    )
                },
            ),
            (CoreError::Untrusted { reason: "x".into() }, |e| {
                matches!(
                    e,
                    PieperError::Crypto {
                        kind: CryptoErrorKind::Untrusted
                    }
                )
            }),
            (CoreError::Tampered, |e| {
                matches!(
                    e,
                    PieperError::Crypto {
                        kind: CryptoErrorKind::Tampered
                    }
                )
            }),
            (CoreError::Replay, |e| {
                matches!(
                    e,
                    PieperError::Crypto {
                        kind: CryptoErrorKind::Replay
                    }
                )
            }),
            (
                CoreError::StaleEpoch {
                    message: 1,
                    current: 2,
                },
                |e| {
                    matches!(
                        e,
                        PieperError::Crypto {
                            kind: CryptoErrorKind::StaleEpoch
                        }
                    )
                },
            ),
            (CoreError::NotMember, |e| {
                matches!(
                    e,
                    PieperError::Crypto {
                        kind: CryptoErrorKind::NotMember
                    }
                )
            }),
            (CoreError::PendingCommit, |e| {
                matches!(
                    e,
                    PieperError::Crypto {
                        kind: CryptoErrorKind::PendingCommit
                    }
                )
            }),
            (
                CoreError::NotFound { what: "message" },
                |e| matches!(e, PieperError::NotFound { what } if what == "message"),
            ),
            (
                CoreError::Invalid {
                    field: "body",
                    reason: "empty".into(),
                },
                |e| matches!(e, PieperError::Invalid { field, .. } if field == "body"),
            ),
            (CoreError::Storage(StoreError::Full), |e| {
                matches!(e, PieperError::Storage { .. })
            }),
            (CoreError::Revoked, |e| matches!(e, PieperError::Revoked)),
            (CoreError::Locked, |e| matches!(e, PieperError::Locked)),
            (CoreError::Wiped, |e| matches!(e, PieperError::Wiped)),
            (
                CoreError::Internal {
                    context: "MLS",
                    source: "a library bug".into(),
                },
                // The cause survives to the FFI, flattened there.
                |e| {
                    matches!(e, PieperError::Other { msg }
                        if msg == "internal failure in MLS: a library bug")
                },
            ),
        ];
        for (core, check) in cases {
            let label = format!("{core:?}");
            assert!(check(&PieperError::from(core)), "{label}");
        }
    }
}
