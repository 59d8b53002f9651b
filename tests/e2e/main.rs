//! End to end: the real server process and several real clients of the core.

mod devices;
mod load;
mod messaging;
mod offline;
