//! The API's handlers, one module per resource.

pub mod accounts;
pub mod audit;
pub mod conversations;
pub mod enrolment;
pub mod ops;
pub mod sync;

use std::net::SocketAddr;

use crate::{auth::DeviceAuth, db::audit::NewAuditEvent};

/// An audit event by the calling device, from `source`.
pub fn audit_by(auth: &DeviceAuth, source: SocketAddr, action: &'static str) -> NewAuditEvent {
    NewAuditEvent {
        practice_id: auth.0.practice_id.clone(),
        user_id: Some(auth.0.user_id.clone()),
        role: Some(auth.0.role.as_str().to_owned()),
        on_behalf_of: auth.0.on_behalf_of.clone(),
        device_id: Some(auth.0.id.clone()),
        action,
        outcome: "success",
        source: Some(source.ip().to_string()),
        ..NewAuditEvent::default()
    }
}
