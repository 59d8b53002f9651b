//! Documentation from the client: a user sends an item for the record; the
//! practice's connector (a headless device, role `connector`) delivers it
//! into the HIS and reports back in the conversation.

use super::client::RecordClient;
use std::time::Duration;

use pieper_wire::Role;

use crate::{
    error::{Error, Result},
    record::{DocState, DocStatus, DocumentDraft},
};

/// First wait before trying an item again after the HIS was unreachable or
/// answered 5xx (doubled each time, at most five minutes).
const RETRY_BASE_MS: i64 = 1000;

/// A HIS that takes FHIR transaction Bundles at its base URL.
#[derive(Clone, Debug)]
pub struct HisEndpoint {
    base: String,
    http: reqwest::Client,
}

impl HisEndpoint {
    /// The HIS's FHIR R4 base URL.
    pub fn new(base: &str) -> Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| Error::Network(e.to_string()))?;
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            http,
        })
    }
}

/// What one delivery round did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    /// Items now in the HIS.
    pub documented: usize,
    /// Items the HIS refused (reported back; a user may retry).
    pub failed: usize,
    /// Items to try again later (HIS unreachable or 5xx).
    pub postponed: usize,
}

/// The HIS's reason from an OperationOutcome, or the start of the body.
fn reason(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v["issue"]
                .as_array()
                .and_then(|issues| issues.first())
                .and_then(|i| i["diagnostics"].as_str().map(str::to_owned))
        })
        .unwrap_or_else(|| body.chars().take(200).collect())
}

impl RecordClient<'_> {
    /// Sends an item for the record to the conversation, adding the
    /// practice's connector to the conversation if it is not a member yet.
    pub async fn document(&self, conversation: &str, draft: DocumentDraft) -> Result<DocStatus> {
        let connectors: Vec<String> = self
            .client
            .colleagues()
            .await?
            .into_iter()
            .filter(|u| u.role == Role::Connector)
            .map(|u| u.id)
            .collect();
        if connectors.is_empty() {
            return Err(Error::NotFound {
                what: "HIS connector (document by hand)",
            });
        }
        self.client
            .conversations()
            .add_users(conversation, &connectors)
            .await?;
        let conv = conversation.to_owned();
        let status = self.client.store(move |d| d.document(&conv, draft)).await?;
        self.client.flush_quietly().await?;
        Ok(status)
    }

    /// Confirms an item the user entered into the HIS by hand.
    pub async fn document_by_hand(
        &self,
        conversation: &str,
        draft: DocumentDraft,
    ) -> Result<DocStatus> {
        let conv = conversation.to_owned();
        let status = self
            .client
            .store(move |d| d.document_by_hand(&conv, draft))
            .await?;
        self.client.flush_quietly().await?;
        Ok(status)
    }

    /// Sends a failed item again.
    pub async fn retry(&self, id: &str) -> Result<DocStatus> {
        let id = id.to_owned();
        let status = self.client.store(move |d| d.retry_document(&id)).await?;
        self.client.flush_quietly().await?;
        Ok(status)
    }

    /// Reports an item's outcome (the connector, when a polling HIS took or
    /// refused it) in its conversation.
    pub async fn report(
        &self,
        id: &str,
        state: DocState,
        detail: Option<String>,
    ) -> Result<DocStatus> {
        let id = id.to_owned();
        let status = self
            .client
            .store(move |d| d.doc_delivered(&id, state, detail.as_deref()))
            .await?;
        self.client.flush_quietly().await?;
        Ok(status)
    }

    /// The connector's round: fetch what arrived, deliver every due item to
    /// the HIS as a transaction Bundle (conditional creates, so an item
    /// delivered twice is written once), and report each outcome back in its
    /// conversation. A 4xx is the HIS refusing: reported as failed, with
    /// its reason. Unreachable or 5xx: tried again later.
    pub async fn deliver(&self, his: &HisEndpoint) -> Result<DeliveryReport> {
        self.client.sync().await?;
        let mut report = DeliveryReport::default();
        for status in self.client.store(|d| d.due_doc_items()).await? {
            let id = status.item.id.clone();
            let bundle = match status.item.entry().and_then(|e| e.transaction_bundle()) {
                Ok(b) => b,
                Err(e) => {
                    let detail = format!("not a valid SOEP entry: {e}");
                    self.client
                        .store(move |d| d.doc_outcome(&id, DocState::Failed, Some(&detail)))
                        .await?;
                    report.failed += 1;
                    continue;
                }
            };
            let sent = his
                .http
                .post(&his.base)
                .header("content-type", "application/fhir+json")
                .header("accept", "application/fhir+json")
                .json(&bundle)
                .send()
                .await;
            let outcome = match sent {
                Err(e) => Err(e.without_url().to_string()),
                Ok(response) => {
                    let status = response.status();
                    let body = response.text().await.unwrap_or_default();
                    if status.is_success() {
                        Ok(None)
                    } else if status.is_client_error() {
                        Ok(Some(format!(
                            "the HIS refused it ({status}): {}",
                            reason(&body)
                        )))
                    } else {
                        Err(format!("the HIS answered {status}"))
                    }
                }
            };
            match outcome {
                Ok(None) => {
                    self.client
                        .store(move |d| {
                            d.doc_delivered(&id, DocState::Documented, Some("in the HIS"))
                        })
                        .await?;
                    report.documented += 1;
                }
                Ok(Some(refusal)) => {
                    self.client
                        .store(move |d| d.doc_delivered(&id, DocState::Failed, Some(&refusal)))
                        .await?;
                    report.failed += 1;
                }
                Err(why) => {
                    tracing::info!(reason = %why, "HIS unavailable: documentation postponed");
                    self.client
                        .store(move |d| d.postpone_doc(&id, RETRY_BASE_MS))
                        .await?;
                    report.postponed += 1;
                }
            }
        }
        self.client.flush_quietly().await?;
        Ok(report)
    }
}
