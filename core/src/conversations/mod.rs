//! Conversations: what this device shows of them (the list, members,
//! messages, search) and the actions on them (start, members, send, attach,
//! mark read), through [`ConversationsClient`].

mod actions;
mod client;

pub use client::ConversationsClient;
