//! Login throttling: too many attempts that failed for a key (an account,
//! a source address) within a window, and further attempts are refused
//! until the window moves. An attempt takes its slot before the password
//! is checked ([`Throttle::take`]), so a burst of parallel guesses cannot
//! all pass the check before any of them counts; a success gives it back.
//! Kept in memory: a restart forgets it, which errs on the side of access.

use std::{
    collections::{HashMap, VecDeque},
    sync::Mutex,
    time::{Duration, Instant},
};

/// Keys kept before stale ones are dropped: failures for made-up user names
/// must not grow the map without bound.
const MAX_KEYS: usize = 10_000;

/// Failure counts per key (an account, an address).
pub struct Throttle {
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
    limit: usize,
    window: Duration,
}

impl Throttle {
    /// Allows `limit` failures per key within `window`.
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            failures: Mutex::new(HashMap::new()),
            limit: limit.max(1) as usize,
            window,
        }
    }

    /// Takes an attempt's slot on every key at once, counted as a failure
    /// until [`Throttle::give_back`]: `Err(seconds)` (and nothing taken) if
    /// any key is over its limit.
    pub fn take(&self, keys: &[&str]) -> Result<(), u64> {
        let now = Instant::now();
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let mut wait = 0u64;
        for key in keys {
            if let Some(times) = map.get_mut(*key) {
                while times
                    .front()
                    .is_some_and(|t| now.duration_since(*t) > self.window)
                {
                    times.pop_front();
                }
                if times.len() >= self.limit {
                    let oldest = times.front().copied().unwrap_or(now);
                    let left = self.window.saturating_sub(now.duration_since(oldest));
                    wait = wait.max(left.as_secs().max(1));
                }
            }
        }
        if wait > 0 {
            return Err(wait);
        }
        if map.len() >= MAX_KEYS {
            let window = self.window;
            map.retain(|_, times| {
                times
                    .back()
                    .is_some_and(|t| now.duration_since(*t) <= window)
            });
        }
        for key in keys {
            map.entry((*key).to_owned()).or_default().push_back(now);
        }
        Ok(())
    }

    /// Gives back the slot an attempt that succeeded took on `key`.
    pub fn give_back(&self, key: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(times) = map.get_mut(key) {
            times.pop_back();
        }
    }

    /// Forgets the failures of a key (after a successful login).
    pub fn clear(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_keys_are_dropped_when_the_map_is_full() {
        let t = Throttle::new(3, Duration::from_millis(1));
        for i in 0..MAX_KEYS {
            assert!(t.take(&[&format!("account:{i}")]).is_ok());
        }
        std::thread::sleep(Duration::from_millis(5));
        assert!(t.take(&["account:fresh"]).is_ok());
        let map = t.failures.lock().unwrap_or_else(|p| p.into_inner());
        assert_eq!(map.len(), 1);
        assert!(map.contains_key("account:fresh"));
    }

    #[test]
    fn throttles_after_the_limit_per_key() {
        let t = Throttle::new(3, Duration::from_secs(60));
        for _ in 0..3 {
            assert!(t.take(&["acct", "ip"]).is_ok());
        }
        assert!(t.take(&["acct"]).is_err());
        assert!(t.take(&["other-acct", "ip"]).is_err());
        assert!(t.take(&["other-acct", "other-ip"]).is_ok());
        t.clear("acct");
        assert!(t.take(&["acct"]).is_ok());
    }

    #[test]
    fn a_slot_is_taken_before_the_outcome_and_a_success_gives_it_back() {
        let t = Throttle::new(2, Duration::from_secs(60));
        assert!(t.take(&["acct", "ip"]).is_ok());
        assert!(t.take(&["acct", "ip"]).is_ok());
        // Two attempts in flight use up the limit: a third is refused at
        // once, and takes nothing from the other key.
        assert!(t.take(&["acct", "ip"]).is_err());
        t.give_back("acct");
        assert!(t.take(&["acct", "other-ip"]).is_ok());
        assert!(t.take(&["ip"]).is_err());
    }
}
