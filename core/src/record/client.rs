//! [`RecordClient`]: what is on its way into the HIS, read through the
//! client's gate.

use super::DocStatus;
use crate::{
    client::Client,
    error::Result,
    model::Message,
    privacy::{AccessAction, client::Access},
};

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
        self.client.read_audited(
            |d| d.doc_item(id),
            |_, item| Ok(shown(std::slice::from_ref(item))),
        )
    }

    /// A conversation's documentation items, oldest first.
    pub fn items(&self, conversation: &str) -> Result<Vec<DocStatus>> {
        self.client
            .read_audited(|d| d.doc_items(conversation), |_, items| Ok(shown(items)))
    }

    /// Every pending item (on the connector's device: what a polling HIS
    /// has yet to take).
    pub fn pending(&self) -> Result<Vec<DocStatus>> {
        self.client
            .read_audited(|d| d.pending_doc_items(), |_, items| Ok(shown(items)))
    }

    /// This user's messages marked for documentation and not yet in the
    /// record.
    pub fn to_document(&self) -> Result<Vec<Message>> {
        self.client.read_audited(
            |d| d.to_document(),
            |d, messages| messages_shown(d, messages, "to_document"),
        )
    }
}

/// Showing documentation items is one access per patient they are about.
fn shown(items: &[DocStatus]) -> Vec<Access> {
    Access::per_patient(
        AccessAction::Open,
        "documentation",
        items.iter().map(|s| Some(&s.item.patient.reference)),
    )
}

/// Messages shown outside their conversation (a list, the dashboard): one
/// access per patient whose messages are among them.
pub(crate) fn messages_shown(
    d: &crate::device::Device,
    messages: &[Message],
    what: &str,
) -> Result<Vec<Access>> {
    let patients = crate::privacy::client::patients_of_messages(d, messages)?;
    Ok(Access::per_patient(
        AccessAction::Open,
        what,
        patients.iter().map(Option::as_ref),
    ))
}
