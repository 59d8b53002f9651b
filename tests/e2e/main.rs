//! End to end: the real server process and several real clients of the core.

mod accounts;
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
