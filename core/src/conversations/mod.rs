//! Conversations: what this device shows of them (the list, members,
//! messages, search), through [`ConversationsClient`].

mod client;

pub use client::ConversationsClient;
