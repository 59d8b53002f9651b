//! Pieper's device core: one device of one user in a GP practice.
//!
//! The [`Device`] is the entry point. It owns the device's identity (an Ed25519
//! signature key and an MLS credential naming practice, user and device), its
//! encrypted store (SQLCipher, keyed by a random key that the platform
//! [`KeyStore`] wraps), and the MLS groups that carry its conversations.
//! Every MLS operation runs inside one store transaction, so a failure half-way
//! leaves the conversation exactly as it was.

pub mod attachments;
mod client;
pub mod consent;
mod device;
mod error;
mod fhir;
pub mod identity;
pub mod keystore;
mod mls;
pub mod model;
pub mod privacy;
pub mod record;
pub mod spoed;
mod store;
pub mod tasks;

pub use attachments::{AttachmentError, AttachmentKey};
pub use client::{
    AuditQuery, BackupReport, BreachPatient, Client, ConnectionState, Credentials, DeliveryReport,
    Event, HisEndpoint, LiveHandle, LockPolicy, Notification, NotificationPath, RosterFormat,
    SelfTestArrival, SelfTestReport, SharedTablet, SyncReport, UserCheck, new_recovery_code,
};
pub use consent::{
    ConsentChange, ConsentKind, ConsentMethod, ConsentStatus, Figures, RosterPatient,
};
pub use device::{
    CommitOut, ConversationSummary, Dashboard, DashboardGroup, Device, KnownGroup, NewConsent,
    Outgoing, OutgoingKind, PatientConsent, Received,
};
pub use error::{Error, Result};
pub use identity::MemberId;
pub use keystore::{DbKey, FileKeyStore, KeyStore, KeyStoreError};
pub use model::{
    AttachmentRef, Conversation, ConversationKind, Member, Message, MessageKind, MessageState,
    NewMessage, PatientRef, Priority,
};
pub use pieper_wire::{ApnsEnvironment, PushProvider, PushTokenRegistration as PushToken};
pub use privacy::{
    AccessAction, AuditEntry, ErasureReport, HousekeepingReport, Kept, PatientExport,
    PracticeRules, Receipt, TtlPolicy,
};
pub use store::StoreError;
pub use tasks::{Assignee, NewTask, Task, TaskState, TaskStep};
