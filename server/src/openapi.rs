//! The OpenAPI 3.1 description of the API, served at `/openapi.json`.

use serde_json::{Map, Value, json};

/// Every route: method, path, summary, whether it needs a device token.
pub const ROUTES: &[(&str, &str, &str, bool)] = &[
    (
        "get",
        "/health",
        "The server and its database answer.",
        false,
    ),
    ("get", "/metrics", "Prometheus counters.", false),
    ("get", "/openapi.json", "This document.", false),
    (
        "post",
        "/api/v1/login",
        "Log in with password and TOTP; enrols a device.",
        false,
    ),
    (
        "get",
        "/api/v1/users",
        "The practice's staff directory.",
        true,
    ),
    (
        "get",
        "/api/v1/devices",
        "The caller's devices (a manager: the practice's).",
        true,
    ),
    (
        "put",
        "/api/v1/devices/me/push-token",
        "Register or rotate the caller's push token (FCM or APNs).",
        true,
    ),
    (
        "delete",
        "/api/v1/devices/me/push-token",
        "Remove the caller's push token.",
        true,
    ),
    (
        "post",
        "/api/v1/conversations/{id}/heal",
        "This device cannot decrypt the conversation any more: add it again (counted).",
        true,
    ),
    (
        "get",
        "/api/v1/heal-requests",
        "Member devices to add again, in the caller's conversations.",
        true,
    ),
    (
        "put",
        "/api/v1/backups/me",
        "Store the user's encrypted history backup (ciphertext only).",
        true,
    ),
    (
        "get",
        "/api/v1/backups/me",
        "The user's encrypted history backup.",
        true,
    ),
    (
        "post",
        "/api/v1/devices/me/push-test",
        "Notification self-test: a test push to this device now, and what the provider did.",
        true,
    ),
    (
        "get",
        "/api/v1/devices/revoked",
        "Revoked devices still in a conversation (members remove them).",
        true,
    ),
    ("delete", "/api/v1/devices/{id}", "Revoke a device.", true),
    (
        "post",
        "/api/v1/key-packages",
        "Upload the caller's KeyPackages (optionally replacing the unclaimed ones).",
        true,
    ),
    (
        "get",
        "/api/v1/key-packages",
        "How many one-time KeyPackages the server holds for the caller.",
        true,
    ),
    (
        "post",
        "/api/v1/key-packages/claim",
        "Claim a KeyPackage per device of users.",
        true,
    ),
    (
        "post",
        "/api/v1/conversations",
        "Register a conversation.",
        true,
    ),
    (
        "get",
        "/api/v1/conversations/{id}",
        "A conversation's epoch and member devices.",
        true,
    ),
    (
        "post",
        "/api/v1/conversations/{id}/envelopes",
        "Send an MLS envelope.",
        true,
    ),
    (
        "post",
        "/api/v1/conversations/{id}/read",
        "A member read a message (stops the escalation of an urgent one).",
        true,
    ),
    (
        "post",
        "/api/v1/conversations/{id}/blobs",
        "Upload a sealed attachment.",
        true,
    ),
    (
        "get",
        "/api/v1/blobs/{id}",
        "Download a sealed attachment.",
        true,
    ),
    ("get", "/api/v1/sync", "Envelopes after a cursor.", true),
    (
        "post",
        "/api/v1/ack",
        "The device has everything up to a position.",
        true,
    ),
    (
        "get",
        "/api/v1/ws",
        "Live envelopes over a WebSocket.",
        true,
    ),
    (
        "get",
        "/api/v1/audit",
        "Read or export the audit log (managers; a huisarts one patient), after unlocking it.",
        true,
    ),
    (
        "post",
        "/api/v1/audit/unlock",
        "Open the audit log to this device for 15 minutes with a fresh TOTP code.",
        true,
    ),
    (
        "post",
        "/api/v1/audit/events",
        "Report accesses to patient data made on the device (patients as pseudonyms).",
        true,
    ),
    (
        "get",
        "/api/v1/audit/breach",
        "Which patients (pseudonyms) a device or user accessed in a time window.",
        true,
    ),
    (
        "get",
        "/api/v1/practice/settings",
        "The practice's retention and disappearing-message rules.",
        true,
    ),
    (
        "put",
        "/api/v1/practice/settings",
        "Change the practice's rules (managers).",
        true,
    ),
    (
        "post",
        "/api/v1/patients/erase",
        "Remove the server's copy of conversations about a patient (erasure request).",
        true,
    ),
];

/// The document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for (method, path, summary, auth) in ROUTES {
        let mut operation = json!({
            "summary": summary,
            "responses": {
                "200": { "description": "Success" },
                "default": {
                    "description": "A problem (RFC 9457) with a stable `code`.",
                    "content": { "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } } }
                }
            }
        });
        if *auth {
            operation["security"] = json!([{ "deviceToken": [] }]);
        }
        let entry = paths
            .entry((*path).to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        entry[*method] = operation;
    }
    json!({
        "openapi": "3.1.0",
        "info": { "title": "Pieper sync server", "version": env!("CARGO_PKG_VERSION") },
        "paths": paths,
        "components": {
            "securitySchemes": { "deviceToken": { "type": "http", "scheme": "bearer" } },
            "schemas": {
                "Problem": {
                    "type": "object",
                    "required": ["type", "title", "status", "code"],
                    "properties": {
                        "type": { "type": "string" },
                        "title": { "type": "string" },
                        "status": { "type": "integer" },
                        "code": { "type": "string" },
                        "detail": { "type": "string" },
                        "current_epoch": { "type": "integer" },
                        "retry_after": { "type": "integer" }
                    }
                }
            }
        }
    })
}
