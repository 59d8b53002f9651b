//! Conversations: what this device shows of them (the list, members,
//! messages, search) and the actions on them (start, members, send, attach,
//! mark read), through [`ConversationsClient`]. Inside: the engine's
//! membership changes (`membership`), sending and receiving (`messaging`), reading
//! (`reads`),
//! history for a new device (`history`), the practice and personal groups
//! (`known_groups`) and the opening screen (`dashboard`).

mod actions;
mod client;
// The engine's methods are public for the core's own tests (feature `testing`).
#[cfg_attr(not(feature = "testing"), allow(unreachable_pub))]
pub(crate) mod dashboard;
#[cfg_attr(not(feature = "testing"), allow(unreachable_pub))]
pub(crate) mod history;
mod known_groups;
#[cfg_attr(not(feature = "testing"), allow(unreachable_pub))]
pub(crate) mod membership;
#[cfg_attr(not(feature = "testing"), allow(unreachable_pub))]
pub(crate) mod messaging;
#[cfg_attr(not(feature = "testing"), allow(unreachable_pub))]
mod reads;

pub use client::ConversationsClient;
