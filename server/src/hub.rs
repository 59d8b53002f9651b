//! Live fan-out: the devices connected to this instance, each with a bounded
//! queue. An envelope is serialized once and shared by every queue. A device
//! whose queue is full (it stopped reading) is dropped, never waited for:
//! it catches up by cursor when it reconnects.

use std::{
    collections::HashMap,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use axum::extract::ws::Utf8Bytes;
use pieper_wire::{Envelope, ServerEvent};
use tokio::sync::mpsc;

use crate::metrics::Metrics;

/// Each connected device's live connections: (connection id, queue).
type Connections = HashMap<String, Vec<(u64, mpsc::Sender<Utf8Bytes>)>>;

/// Connected devices of this instance.
pub struct Hub {
    connections: Mutex<Connections>,
    next_id: AtomicU64,
    queue: usize,
}

/// Live sockets one device may hold at once.
pub const SOCKETS_PER_DEVICE: usize = 3;

impl Hub {
    /// A hub whose per-connection queues hold `queue` envelopes.
    pub fn new(queue: usize) -> Self {
        Self {
            connections: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            queue: queue.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connections> {
        self.connections.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a live connection of `device`.
    pub fn register(&self, device: &str) -> (u64, mpsc::Receiver<Utf8Bytes>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(self.queue);
        let mut map = self.lock();
        let list = map.entry(device.to_owned()).or_default();
        // A device reconnecting over sockets that died half-way keeps the
        // newest few; the oldest is told to catch up (its queue closes).
        if list.len() >= SOCKETS_PER_DEVICE {
            list.remove(0);
        }
        list.push((id, tx));
        (id, rx)
    }

    /// Forgets a connection that ended.
    pub fn unregister(&self, device: &str, id: u64) {
        let mut map = self.lock();
        if let Some(list) = map.get_mut(device) {
            list.retain(|(i, _)| *i != id);
            if list.is_empty() {
                map.remove(device);
            }
        }
    }

    /// Closes every connection of a device (it was revoked).
    pub fn disconnect(&self, device: &str) {
        self.lock().remove(device);
    }

    /// Whether the device has a live connection here.
    pub fn is_connected(&self, device: &str) -> bool {
        self.lock().contains_key(device)
    }

    /// How many connections are live.
    pub fn connection_count(&self) -> usize {
        self.lock().values().map(Vec::len).sum()
    }

    /// Sends an event (not an envelope) to each of `devices` connected here.
    pub fn notify(&self, event: &ServerEvent, devices: &[String]) {
        let Ok(text) = serde_json::to_string(event) else {
            return;
        };
        let text = Utf8Bytes::from(text);
        let map = self.lock();
        for device in devices {
            for (_, tx) in map.get(device).into_iter().flatten() {
                // A full queue drops only this event: the device's next sync
                // has the messages anyway.
                let _ = tx.try_send(text.clone());
            }
        }
    }

    /// Queues `envelope` for each of `devices` that is connected here;
    /// returns the devices it was queued for.
    pub fn deliver(
        &self,
        envelope: &Envelope,
        devices: &[String],
        metrics: &Metrics,
    ) -> Vec<String> {
        let mut map = self.lock();
        // Serialize once, and only when a recipient is connected here.
        if !devices.iter().any(|d| map.contains_key(d)) {
            return Vec::new();
        }
        let text = match serde_json::to_string(&ServerEvent::Envelope(envelope.clone())) {
            Ok(t) => Utf8Bytes::from(t),
            Err(_) => return Vec::new(),
        };
        let mut delivered = Vec::new();
        for device in devices {
            let Some(list) = map.get_mut(device) else {
                continue;
            };
            list.retain(|(_, tx)| match tx.try_send(text.clone()) {
                Ok(()) => {
                    metrics.live_delivered.fetch_add(1, Ordering::Relaxed);
                    true
                }
                Err(mpsc::error::TrySendError::Full(_)) => {
                    // Dropping the sender ends that connection.
                    metrics
                        .slow_connections_dropped
                        .fetch_add(1, Ordering::Relaxed);
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            });
            if list.is_empty() {
                map.remove(device);
            } else {
                delivered.push(device.clone());
            }
        }
        delivered
    }
}
