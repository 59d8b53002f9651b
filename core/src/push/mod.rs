//! Push: the platform token (kept, registered with the server), a push's
//! content-free payload turned into a notification, and the self-test.

mod client;
// Public for the core's own tests and benchmarks (feature `testing`).
#[cfg_attr(not(feature = "testing"), allow(unreachable_pub))]
mod engine;

pub use client::{Notification, NotificationPath, PushClient, SelfTestArrival, SelfTestReport};
