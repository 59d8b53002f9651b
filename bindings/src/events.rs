//! Events to the app: a listener the app implements, fed by a task whose
//! handle cancels it.

use std::sync::{Arc, Mutex};

use tokio::task::JoinHandle;

use crate::types::PieperEvent;

/// Receives the client's events (Kotlin wraps it in a `Flow`, Swift in an
/// `AsyncStream`).
#[uniffi::export(foreign)]
pub trait EventListener: Send + Sync {
    /// One event.
    fn on_event(&self, event: PieperEvent);
}

/// A running background task; cancelled by `cancel` or when released.
#[derive(uniffi::Object)]
pub struct TaskHandle {
    task: Mutex<Option<JoinHandle<()>>>,
    keep: Mutex<Option<pieper_core::LiveHandle>>,
}

impl TaskHandle {
    pub(crate) fn task(task: JoinHandle<()>) -> Arc<Self> {
        Arc::new(Self {
            task: Mutex::new(Some(task)),
            keep: Mutex::new(None),
        })
    }

    pub(crate) fn live(live: pieper_core::LiveHandle) -> Arc<Self> {
        Arc::new(Self {
            task: Mutex::new(None),
            keep: Mutex::new(Some(live)),
        })
    }
}

#[uniffi::export]
impl TaskHandle {
    /// Stops the task.
    pub fn cancel(&self) {
        if let Some(task) = self.task.lock().unwrap_or_else(|p| p.into_inner()).take() {
            task.abort();
        }
        drop(self.keep.lock().unwrap_or_else(|p| p.into_inner()).take());
    }
}

impl Drop for TaskHandle {
    fn drop(&mut self) {
        self.cancel();
    }
}
