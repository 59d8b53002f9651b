//! Documentation for the record, as the apps see it.

use pieper_core::record::{Clinician, DocStatus as CoreDocStatus, DocumentDraft, PractitionerId};
pub use pieper_core::record::{DocState, SoepKind, SoepLine};

use crate::{client::PieperClient, error::PieperError};

/// A documentation item and where it stands.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct DocStatus {
    /// The item's id.
    pub id: String,
    /// Its conversation.
    pub conversation: String,
    /// The problem it documents.
    pub title: String,
    /// The messages it documents.
    pub messages: Vec<String>,
    /// Where it stands.
    pub state: DocState,
    /// Why it failed, or where it went.
    pub detail: Option<String>,
}

impl From<CoreDocStatus> for DocStatus {
    fn from(s: CoreDocStatus) -> Self {
        DocStatus {
            id: s.item.id,
            conversation: s.conversation,
            title: s.item.title,
            messages: s.item.messages,
            state: s.state,
            detail: s.detail,
        }
    }
}

fn draft(
    title: String,
    lines: Vec<SoepLine>,
    messages: Vec<String>,
    author_name: String,
    agb: Option<String>,
    patient_visible_confirmed: bool,
) -> DocumentDraft {
    DocumentDraft {
        title,
        lines,
        messages,
        author: Clinician {
            name: author_name,
            ids: agb.into_iter().map(PractitionerId::Agb).collect(),
        },
        patient_visible_confirmed,
    }
}

#[uniffi::export(async_runtime = "tokio")]
impl PieperClient {
    /// Sends messages to the record as a SOEP entry, confirmed by the named
    /// clinician (AGB code); E and P lines need `patient_visible_confirmed`.
    #[allow(clippy::too_many_arguments)]
    pub async fn document(
        &self,
        conversation: String,
        title: String,
        lines: Vec<SoepLine>,
        messages: Vec<String>,
        author_name: String,
        agb: Option<String>,
        patient_visible_confirmed: bool,
    ) -> Result<DocStatus, PieperError> {
        let draft = draft(
            title,
            lines,
            messages,
            author_name,
            agb,
            patient_visible_confirmed,
        );
        Ok(self
            .inner
            .record()
            .document(&conversation, draft)
            .await?
            .into())
    }

    /// Tries a failed item again.
    pub async fn retry_document(&self, id: String) -> Result<DocStatus, PieperError> {
        Ok(self.inner.record().retry(&id).await?.into())
    }

    /// A conversation's documentation items.
    pub fn doc_items(&self, conversation: String) -> Result<Vec<DocStatus>, PieperError> {
        Ok(self
            .inner
            .record()
            .items(&conversation)?
            .into_iter()
            .map(Into::into)
            .collect())
    }
}

/// The patient reference in a launch link from the HIS
/// (`pieper://patient/<reference>`); BSNs are checked.
#[uniffi::export]
pub fn patient_from_launch_link(link: String) -> Result<String, PieperError> {
    Ok(pieper_core::record::parse_launch_link(&link)?
        .as_str()
        .to_owned())
}

#[uniffi::export]
impl PieperClient {
    /// My messages for the record not yet documented.
    pub fn to_document(&self) -> Result<Vec<crate::types::Message>, PieperError> {
        Ok(self
            .inner
            .record()
            .to_document()?
            .into_iter()
            .map(Into::into)
            .collect())
    }
}
