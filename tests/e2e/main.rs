//! End to end: the real server process and several real clients of the core.

mod accounts;
mod audit_day;
mod consent;
mod devices;
mod keys;
mod load;
mod messaging;
mod offline;
mod privacy;
mod push;
mod push_endpoints;
mod record;
mod setup;
mod spoed;
mod tasks;
mod trust;

// The FHIR validator, as the core's tests run it.
#[path = "../../core/tests/support/validator.rs"]
#[allow(dead_code)]
mod validator;
