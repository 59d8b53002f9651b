//! The app lock: after an idle time (or on request) the device locks — the
//! database key leaves memory and every call answers [`Error::Locked`] —
//! until the user passes the platform's check (PIN, biometrics) through
//! [`UserCheck`]. Failed checks are counted on disk, so restarting the app
//! does not reset them; after too many the device wipes itself.

use std::{
    sync::{Arc, Weak},
    time::{Duration, Instant},
};

use crate::client::{Client, Inner};
use crate::error::{Error, Result};

/// The platform's check that the person holding the device is its user
/// (a PIN screen, a fingerprint, Face ID). The app implements it.
pub trait UserCheck: Send + Sync {
    /// Asks the user; true when they passed. May block until they answer.
    fn verify(&self) -> bool;
}

/// When the device locks, and when it gives up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockPolicy {
    /// Lock after this long without a call.
    pub idle: Duration,
    /// Wipe the device after this many failed unlocks in a row.
    pub max_failed_unlocks: u32,
}

/// How many tries before the wipe the app warns that it comes.
pub const WIPE_WARNING_TRIES_LEFT: u32 = 3;

impl LockPolicy {
    /// Whether the app warns of the coming wipe after `failures` failed
    /// unlocks in a row. Someone may have been trying the device: after the
    /// next unlock it updates its keys everywhere.
    pub fn warns(&self, failures: u32) -> bool {
        failures > 0 && failures.saturating_add(WIPE_WARNING_TRIES_LEFT) >= self.max_failed_unlocks
    }
}

/// The lock's state in memory.
#[derive(Debug)]
pub(crate) struct LockState {
    pub(crate) policy: Option<LockPolicy>,
    pub(crate) last_active: Instant,
}

impl Default for LockState {
    fn default() -> Self {
        Self {
            policy: None,
            last_active: Instant::now(),
        }
    }
}

/// Where failed unlocks are counted (plain: a count is no secret).
const FAILURES_FILE: &str = "unlock-failures";

impl Client {
    /// Sets the lock policy and starts watching for idleness (on the tokio
    /// runtime this is called on).
    pub fn set_lock_policy(&self, policy: LockPolicy) {
        self.lock_state().policy = Some(policy);
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(watch_idle(weak));
    }

    /// Locks now (the user pressed "lock", or the app went to the background).
    pub fn lock(&self) {
        self.inner.device.lock();
    }

    /// Whether the device is locked.
    pub fn is_locked(&self) -> bool {
        self.inner.device.is_locked()
    }

    /// Unlocks after the platform's check of the user. A failed check is
    /// counted; after the policy's maximum the device wipes itself and
    /// answers [`Error::Wiped`].
    pub async fn unlock(&self, check: Arc<dyn UserCheck>) -> Result<()> {
        if self.inner.device.is_wiped() {
            return Err(Error::Wiped);
        }
        if !self.is_locked() {
            return Ok(());
        }
        let passed = tokio::task::spawn_blocking(move || check.verify())
            .await
            .map_err(|e| Error::internal("user check", e))?;
        let path = self.inner.device.dir().join(FAILURES_FILE);
        if !passed {
            let failures = failed_unlocks(&path) + 1;
            std::fs::write(&path, failures.to_string())
                .map_err(|e| crate::store::StoreError::Io(e.to_string()))?;
            let max = self
                .lock_state()
                .policy
                .map_or(u32::MAX, |p| p.max_failed_unlocks);
            if failures >= max {
                self.inner.device.wipe()?;
                let _ = std::fs::remove_file(&path);
                self.emit(crate::client::Event::Connection(
                    crate::client::ConnectionState::SignedOut,
                ));
                return Err(Error::Wiped);
            }
            return Err(Error::Locked);
        }
        let (device, keystore) = (
            Arc::clone(&self.inner.device),
            Arc::clone(&self.inner.keystore),
        );
        tokio::task::spawn_blocking(move || device.unlock(keystore.as_ref()))
            .await
            .map_err(|e| Error::internal("unlock", e))??;
        let warned = self
            .lock_state()
            .policy
            .is_some_and(|p| p.warns(failed_unlocks(&path)));
        if warned {
            self.keys().update_everywhere_soon().await?;
        }
        let _ = std::fs::remove_file(&path);
        self.touch();
        Ok(())
    }

    /// How many unlocks failed in a row.
    pub fn failed_unlocks(&self) -> u32 {
        failed_unlocks(&self.inner.device.dir().join(FAILURES_FILE))
    }

    /// A call was made: the idle time starts again.
    pub(crate) fn touch(&self) {
        self.lock_state().last_active = Instant::now();
    }

    fn lock_state(&self) -> std::sync::MutexGuard<'_, LockState> {
        self.inner.lock.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn failed_unlocks(path: &std::path::Path) -> u32 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// Locks the device once it has been idle for the policy's time; ends with
/// the client.
async fn watch_idle(inner: Weak<Inner>) {
    loop {
        let Some(inner) = inner.upgrade() else { return };
        let (idle, since) = {
            let state = inner.lock.lock().unwrap_or_else(|p| p.into_inner());
            match state.policy {
                Some(p) => (p.idle, state.last_active.elapsed()),
                None => return,
            }
        };
        if since >= idle && !inner.device.is_locked() {
            inner.device.lock();
        }
        let next = idle.saturating_sub(since).max(Duration::from_millis(50));
        drop(inner);
        tokio::time::sleep(next.min(Duration::from_secs(30))).await;
    }
}
