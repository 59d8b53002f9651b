//! This user's devices: the encrypted history backup and its recovery code.
//! (Key packages, revoke and heal still live on the client itself.)

mod backup;

pub use backup::{BackupReport, new_recovery_code};
