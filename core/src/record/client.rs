//! [`RecordClient`]: what is on its way into the HIS, read through the
//! client's gate.

use super::DocStatus;
use crate::{client::Client, error::Result, model::Message};

/// Documentation into the record: `client.record()`.
pub struct RecordClient<'c> {
    pub(crate) client: &'c Client,
}

impl Client {
    /// Documentation into the record.
    pub fn record(&self) -> RecordClient<'_> {
        RecordClient { client: self }
    }
}

impl RecordClient<'_> {
    /// One documentation item.
    pub fn item(&self, id: &str) -> Result<DocStatus> {
        self.client.read(|d| d.doc_item(id))
    }

    /// A conversation's documentation items, oldest first.
    pub fn items(&self, conversation: &str) -> Result<Vec<DocStatus>> {
        self.client.read(|d| d.doc_items(conversation))
    }

    /// Every pending item (on the connector's device: what a polling HIS
    /// has yet to take).
    pub fn pending(&self) -> Result<Vec<DocStatus>> {
        self.client.read(|d| d.pending_doc_items())
    }

    /// This user's messages marked for documentation and not yet in the
    /// record.
    pub fn to_document(&self) -> Result<Vec<Message>> {
        self.client.read(|d| d.to_document())
    }
}
