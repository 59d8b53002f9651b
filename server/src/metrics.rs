//! Counters for Prometheus (text exposition format). No labels with content,
//! ids or patients: only counts.

use std::sync::{
    Mutex,
    atomic::{AtomicU64, Ordering},
};

/// The server's counters.
#[derive(Default)]
pub struct Metrics {
    /// Logins that passed.
    pub logins_succeeded: AtomicU64,
    /// Logins refused (password or TOTP).
    pub logins_failed: AtomicU64,
    /// Logins refused by the throttle.
    pub logins_throttled: AtomicU64,
    /// Envelopes stored.
    pub envelopes_stored: AtomicU64,
    /// Commits refused for a stale epoch.
    pub stale_commits: AtomicU64,
    /// Envelopes delivered over WebSockets.
    pub live_delivered: AtomicU64,
    /// Live connections dropped for not reading.
    pub slow_connections_dropped: AtomicU64,
    /// Attachment blobs stored.
    pub blobs_stored: AtomicU64,
    /// Pushes the provider accepted.
    pub pushes_sent: AtomicU64,
    /// Pushes that failed for good.
    pub pushes_failed: AtomicU64,
    /// Pushes dropped (queue full).
    pub pushes_dropped: AtomicU64,
    /// Tokens removed because the provider said they are gone.
    pub push_tokens_removed: AtomicU64,
    /// Unread urgent messages pushed again.
    pub urgent_escalations: AtomicU64,
    /// Messages devices reported they could not decrypt.
    pub undecryptable_messages: AtomicU64,
    /// Key updates (commits that add and remove nobody) in all.
    pub key_updates: AtomicU64,
    /// Key updates on the current UTC day: (day, count).
    key_updates_today: Mutex<(i64, u64)>,
}

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

impl Metrics {
    /// A device's key update landed at `now_ms`.
    pub fn count_key_update(&self, now_ms: i64) {
        self.key_updates.fetch_add(1, Ordering::Relaxed);
        let mut today = self
            .key_updates_today
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let day = now_ms.div_euclid(DAY_MS);
        if today.0 == day {
            today.1 += 1;
        } else {
            *today = (day, 1);
        }
    }

    /// Key updates on the UTC day of `now_ms`.
    fn key_updates_on(&self, now_ms: i64) -> u64 {
        let today = self
            .key_updates_today
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if today.0 == now_ms.div_euclid(DAY_MS) {
            today.1
        } else {
            0
        }
    }
}

impl Metrics {
    /// The exposition text; `connections` is the live gauge.
    pub fn render(&self, connections: usize) -> String {
        let counters = [
            (
                "pieper_logins_succeeded_total",
                "Successful logins.",
                &self.logins_succeeded,
            ),
            (
                "pieper_logins_failed_total",
                "Failed logins.",
                &self.logins_failed,
            ),
            (
                "pieper_logins_throttled_total",
                "Logins refused by throttling.",
                &self.logins_throttled,
            ),
            (
                "pieper_envelopes_stored_total",
                "Envelopes stored.",
                &self.envelopes_stored,
            ),
            (
                "pieper_undecryptable_messages_total",
                "Envelopes member devices reported they could not decrypt (target: 0).",
                &self.undecryptable_messages,
            ),
            (
                "pieper_stale_commits_total",
                "Commits refused for a stale epoch.",
                &self.stale_commits,
            ),
            (
                "pieper_live_delivered_total",
                "Envelopes queued to live connections.",
                &self.live_delivered,
            ),
            (
                "pieper_slow_connections_dropped_total",
                "Live connections dropped for not reading.",
                &self.slow_connections_dropped,
            ),
            (
                "pieper_pushes_sent_total",
                "Pushes the provider accepted.",
                &self.pushes_sent,
            ),
            (
                "pieper_pushes_failed_total",
                "Pushes given up on.",
                &self.pushes_failed,
            ),
            (
                "pieper_pushes_dropped_total",
                "Pushes dropped because the queue was full.",
                &self.pushes_dropped,
            ),
            (
                "pieper_push_tokens_removed_total",
                "Tokens removed because the provider said they are gone.",
                &self.push_tokens_removed,
            ),
            (
                "pieper_urgent_escalations_total",
                "Unread urgent messages pushed again.",
                &self.urgent_escalations,
            ),
            (
                "pieper_blobs_stored_total",
                "Attachment blobs stored.",
                &self.blobs_stored,
            ),
            (
                "pieper_key_updates_total",
                "Key updates: commits that add and remove nobody.",
                &self.key_updates,
            ),
        ];
        let mut out = String::new();
        for (name, help, value) in counters {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}\n",
                value.load(Ordering::Relaxed)
            ));
        }
        out.push_str(&format!(
            "# HELP pieper_live_connections Live WebSocket connections.\n# TYPE pieper_live_connections gauge\npieper_live_connections {connections}\n"
        ));
        out.push_str(&format!(
            "# HELP pieper_key_updates_today Key updates since midnight UTC (since the start, if later).\n# TYPE pieper_key_updates_today gauge\npieper_key_updates_today {}\n",
            self.key_updates_on(crate::db::now_ms())
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_updates_are_counted_per_utc_day() {
        let metrics = Metrics::default();
        let day = 20_000 * DAY_MS;
        metrics.count_key_update(day + 10);
        metrics.count_key_update(day + DAY_MS - 1);
        assert_eq!(metrics.key_updates_on(day + 5), 2);
        metrics.count_key_update(day + DAY_MS);
        assert_eq!(metrics.key_updates_on(day + DAY_MS + 1), 1);
        assert_eq!(metrics.key_updates_on(day + 3 * DAY_MS), 0);
        assert_eq!(metrics.key_updates.load(Ordering::Relaxed), 3);
    }
}
