//! Pieper's device core: one device of one user in a GP practice.
//!
//! The [`Client`] is the one entry point: a signed-in device with its
//! features as sub-clients ([`Client::conversations`], [`Client::tasks`],
//! [`Client::consent`], [`Client::record`], [`Client::spoed`],
//! [`Client::privacy`], [`Client::devices`], [`Client::keys`],
//! [`Client::push`]), each in its
//! own folder with its types, its part of the engine and its actions. Every
//! call passes one gate: a wiped device answers
//! [`Error::Wiped`], a locked one [`Error::Locked`], and any call counts as
//! activity for the idle lock. Behind it the in-transaction engine (the
//! crate-private `Device`) owns the identity (an Ed25519 signature key and an
//! MLS credential naming practice, user and device), the encrypted store
//! (SQLCipher, keyed by a random key that the platform [`KeyStore`] wraps) and
//! the MLS groups; every MLS operation runs inside one store transaction, so
//! a failure half-way leaves the conversation exactly as it was.

// The records and enums the bindings hand over as they are (feature
// `uniffi`; the bindings crate wraps the sub-clients and maps errors).
#[cfg(feature = "uniffi")]
uniffi::setup_scaffolding!();

/// The stable names of an enum (in the store, in CSV, on the command line)
/// as strum derives them (`IntoStaticStr`, `EnumString`): `as_str`, and
/// `parse` with the core's typed error naming `$field`.
macro_rules! named {
    ($name:ident, $field:literal) => {
        impl $name {
            /// Its stable name.
            pub fn as_str(self) -> &'static str {
                self.into()
            }

            /// Parses a stable name (surrounding spaces ignored).
            pub fn parse(text: &str) -> $crate::error::Result<Self> {
                let text = text.trim();
                text.parse().map_err(|_| {
                    $crate::error::Error::invalid($field, format!("unknown {} {text:?}", $field))
                })
            }
        }
    };
}

mod accounts;
pub mod attachments;
mod calendar;
mod client;
pub mod consent;
pub mod conversations;
// Public for the core's own tests and benchmarks (feature `testing`).
#[cfg_attr(not(feature = "testing"), allow(unreachable_pub))]
mod device;
mod devices;
mod error;
mod fhir;
pub mod identity;
pub mod keys;
pub mod keystore;
mod lifecycle;
mod mls;
pub mod model;
pub mod privacy;
mod push;
pub mod record;
pub mod spoed;
mod store;
pub mod tasks;

pub use accounts::{AccountsClient, Authenticator, EnrolmentCredentials};
pub use attachments::{AttachmentError, AttachmentKey};
pub use client::{Client, ConnectionState, Credentials, Event, LiveHandle, SyncReport};
pub use consent::RosterFormat;
pub use consent::client::ConsentClient;
pub use consent::{
    ConsentChange, ConsentKind, ConsentMethod, ConsentStatus, Figures, RosterPatient,
};
pub use conversations::ConversationsClient;
pub use devices::{BackupReport, DevicesClient, KnownDevice, Trust, new_recovery_code};
pub use keys::{KEY_PACKAGE_MAX_AGE_DAYS, KeyUpdate, KeysClient, RENEW_BEFORE_DAYS};
pub use lifecycle::{LockPolicy, SharedTablet, UserCheck, WIPE_WARNING_TRIES_LEFT};
pub use privacy::{AuditCheck, AuditQuery, BreachPatient};
pub use push::{Notification, NotificationPath, PushClient, SelfTestArrival, SelfTestReport};
pub use record::{DeliveryReport, HisEndpoint};
// The engine is public only for the core's own tests and benchmarks.
#[cfg(feature = "testing")]
pub use device::{
    CommitOut, Delivery, Device, Enrolment, EnrolmentStep, Outgoing, OutgoingKind, Received,
};
pub use device::{
    ConversationSummary, Dashboard, DashboardGroup, KnownGroup, NewConsent, PatientConsent,
};
pub use error::{Error, Refusal, RefusalCount, Result};
pub use identity::{Certified, MemberId};
pub use keystore::{DbKey, FileKeyStore, KeyStore, KeyStoreError};
pub use model::{
    AttachmentRef, Conversation, ConversationKind, Member, Message, MessageKind, MessageState,
    NewMessage, PatientRef, Priority, UNSUPPORTED_BODY,
};
pub use pieper_wire::{
    ApnsEnvironment, DeviceInfo, EnrolmentCode, PushProvider, PushTokenRegistration as PushToken,
    Registrations, Role, UserInfo,
};
pub use privacy::{
    AccessAction, AuditEntry, ErasureReport, HousekeepingReport, Kept, PatientExport,
    PracticeRules, Receipt, TtlPolicy, client::PrivacyClient,
};
pub use record::client::RecordClient;
pub use spoed::client::SpoedClient;
pub use store::StoreError;
pub use tasks::{Assignee, NewTask, Task, TaskState, TaskStep, client::TasksClient};
