//! The device's life on the phone: the app lock with the platform's user
//! check, and the shared front-desk tablet with a profile per staff member.

pub(crate) mod lock;
mod tablet;

pub use lock::{LockPolicy, UserCheck, WIPE_WARNING_TRIES_LEFT};
pub use tablet::SharedTablet;
