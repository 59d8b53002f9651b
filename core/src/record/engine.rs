//! Documentation on this device: items made here, their state as it comes
//! back from the connector, and (on the connector's device) what to deliver.

use crate::device::Device;
use crate::{
    error::{Error, Result},
    model::{Content, MessageKind},
    privacy::{AccessAction, audit},
    record::documentation::{self, DocItem, DocState, DocStatus, DocumentDraft},
    store::queries,
};

impl Device {
    /// Makes a documentation item from a draft for the conversation's
    /// patient and sends it to the conversation (and so to the connector).
    /// The patient's name and birth date come from the roster.
    pub fn document(&self, conversation: &str, draft: DocumentDraft) -> Result<DocStatus> {
        let item = self.doc_item_from(conversation, draft)?;
        let now = queries::now_ms();
        self.transact(|s| {
            self.encrypt(s, conversation, &item.id, &Content::Document(item.clone()))?;
            documentation::insert_item(s.conn(), conversation, &item, &self.me.user, now)?;
            audit::record(
                s.conn(),
                AccessAction::Document,
                Some(&item.patient.reference),
                &format!("conversation={conversation} item={}", item.id),
            )?;
            documentation::item(s.conn(), &item.id)?.ok_or(Error::NotFound {
                what: "documentation item",
            })
        })
    }

    /// For a HIS that takes neither push nor pull: the user copied the text
    /// (`SoepEntry::as_text`) into the HIS and confirms it is there.
    pub fn document_by_hand(&self, conversation: &str, draft: DocumentDraft) -> Result<DocStatus> {
        let status = self.document(conversation, draft)?;
        self.doc_outcome(
            &status.item.id,
            DocState::Documented,
            Some("entered in the HIS by hand"),
        )
    }

    fn doc_item_from(&self, conversation: &str, draft: DocumentDraft) -> Result<DocItem> {
        let patient = self
            .conversation(conversation)?
            .patient
            .ok_or_else(|| Error::invalid("conversation", "is about no patient"))?;
        let on_roster = self
            .roster()?
            .into_iter()
            .find(|p| p.reference == patient)
            .ok_or(Error::NotFound {
                what: "patient on the roster",
            })?;
        for id in &draft.messages {
            let message = self.message(id)?;
            if message.conversation != conversation || message.kind == MessageKind::Werkaantekening
            {
                return Err(Error::invalid(
                    "messages",
                    "only messages of this conversation, never work notes",
                ));
            }
        }
        let item = DocItem {
            id: uuid::Uuid::new_v4().to_string(),
            title: draft.title,
            lines: draft.lines,
            messages: draft.messages,
            patient: on_roster,
            author_name: draft.author.name.clone(),
            author_ids: draft
                .author
                .ids
                .iter()
                .map(|id| {
                    let (system, value) = id.identifier();
                    (system.to_owned(), value.to_owned())
                })
                .collect(),
            date: queries::now_ms(),
        };
        let entry = item.entry()?;
        entry.validate()?;
        if entry.patient_visible() && !draft.patient_visible_confirmed {
            return Err(Error::invalid(
                "patient_visible",
                "E and P lines go to the patient's online record: confirm that first",
            ));
        }
        Ok(item)
    }

    /// Sends a failed item again.
    pub fn retry_document(&self, id: &str) -> Result<DocStatus> {
        let status = self.doc_item(id)?;
        if status.state != DocState::Failed {
            return Err(Error::invalid("state", "only a failed item is tried again"));
        }
        let now = queries::now_ms();
        let retry_id = uuid::Uuid::new_v4().to_string();
        self.transact(|s| {
            let content = Content::DocRetry {
                item: id.to_owned(),
            };
            self.encrypt(s, &status.conversation, &retry_id, &content)?;
            documentation::retry(s.conn(), id, now)
        })
    }

    /// One documentation item.
    pub fn doc_item(&self, id: &str) -> Result<DocStatus> {
        self.store
            .read(|c| documentation::item(c, id))?
            .ok_or(Error::NotFound {
                what: "documentation item",
            })
    }

    /// A conversation's documentation items, oldest first.
    pub fn doc_items(&self, conversation: &str) -> Result<Vec<DocStatus>> {
        self.store
            .read(|c| documentation::items_of(c, conversation))
    }

    /// Every pending item (on the connector's device: what a polling HIS
    /// has yet to take).
    pub fn pending_doc_items(&self) -> Result<Vec<DocStatus>> {
        self.store.read(|c| documentation::due(c, i64::MAX))
    }

    /// Pending items due for delivery now (on the connector's device).
    pub(crate) fn due_doc_items(&self) -> Result<Vec<DocStatus>> {
        self.store
            .read(|c| documentation::due(c, queries::now_ms()))
    }

    /// Records an outcome here and tells the conversation.
    pub fn doc_outcome(
        &self,
        id: &str,
        state: DocState,
        detail: Option<&str>,
    ) -> Result<DocStatus> {
        self.doc_outcome_of(id, state, detail, false)
    }

    /// The connector delivered an item into the HIS (which took or refused
    /// it): the outcome, and the delivery as an access, in one transaction.
    pub(crate) fn doc_delivered(
        &self,
        id: &str,
        state: DocState,
        detail: Option<&str>,
    ) -> Result<DocStatus> {
        self.doc_outcome_of(id, state, detail, true)
    }

    fn doc_outcome_of(
        &self,
        id: &str,
        state: DocState,
        detail: Option<&str>,
        delivered: bool,
    ) -> Result<DocStatus> {
        let status = self.doc_item(id)?;
        let now = queries::now_ms();
        let change_id = uuid::Uuid::new_v4().to_string();
        self.transact(|s| {
            let content = Content::DocStatus {
                item: id.to_owned(),
                state,
                detail: detail.map(str::to_owned),
            };
            self.encrypt(s, &status.conversation, &change_id, &content)?;
            if delivered {
                audit::record_as(
                    s.conn(),
                    AccessAction::Deliver,
                    state == DocState::Documented,
                    Some(&status.item.patient.reference),
                    &format!("conversation={} item={id}", status.conversation),
                )?;
            }
            documentation::set_state(s.conn(), id, state, detail, now)
        })
    }

    /// The HIS could not take it now: try again later.
    pub(crate) fn postpone_doc(&self, id: &str, base_ms: i64) -> Result<()> {
        self.store
            .write(|tx| documentation::postpone(tx, id, queries::now_ms(), base_ms))
    }
}
