//! This user's devices: the list and revoking, KeyPackages, adding new
//! devices and healing members that fell behind, and the encrypted history
//! backup with its recovery code.

mod backup;
mod client;
pub(crate) mod vouching;

pub use backup::{BackupReport, new_recovery_code};
pub use client::DevicesClient;
pub use vouching::{KnownDevice, Trust};
