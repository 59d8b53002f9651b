//! Pieper's core for Kotlin and Swift, through uniffi. This crate only
//! translates: each exported function forwards to `pieper-core`, types are
//! converted at the boundary, and errors are mapped in one place
//! ([`error`]). Decisions belong in the core.

#![warn(missing_docs)]

mod client;
mod consent;
mod error;
mod events;
mod keystore;
mod privacy;
mod push;
mod record;
mod tablet;
mod tasks;
mod types;

pub use client::{Enrolled, PieperClient, enrol, login, open_device};
pub use consent::*;
pub use error::{CryptoErrorKind, PieperError};
pub use events::{EventListener, TaskHandle};
pub use keystore::{KeyStore, KeyStoreError, UserCheck};
pub use privacy::*;
pub use push::{ApnsEnvironment, Notification, PushProvider, SelfTestReport};
pub use record::{DocState, DocStatus, SoepKind, SoepLine, patient_from_launch_link};
pub use tablet::PieperTablet;
pub use tasks::{
    Assignee, ConversationSummary, Dashboard, DashboardGroup, DayPart, DutySlot, Task, TaskState,
    Triage,
};
pub use types::*;

uniffi::setup_scaffolding!();

/// Panics on purpose, to prove a Rust panic reaches the app as an exception
/// (only in builds with the `testing` feature).
#[cfg(feature = "testing")]
#[uniffi::export]
pub fn panic_for_tests() -> Result<(), PieperError> {
    panic!("a deliberate panic for the binding tests")
}

/// The runtime the bindings own: background tasks (the live channel, event
/// forwarding) run here; exported async functions run on uniffi's tokio.
pub(crate) fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("pieper")
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("cannot start the Pieper runtime: {e}"))
    })
}
