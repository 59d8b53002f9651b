//! Push: the platform token (kept, registered with the server), a push's
//! content-free payload turned into a notification, and the self-test.

mod client;
mod engine;

pub use client::{Notification, NotificationPath, PushClient, SelfTestArrival, SelfTestReport};
