//! [`PrivacyClient`]: the practice's rules and patient pseudonyms as this
//! device knows them, read through the client's gate.

use super::{AccessAction, PracticeRules};
use crate::{client::Client, device::Device, error::Result, model::PatientRef};

/// Privacy rules and pseudonyms: `client.privacy()`.
pub struct PrivacyClient<'c> {
    pub(crate) client: &'c Client,
}

impl Client {
    /// Privacy rules and pseudonyms.
    pub fn privacy(&self) -> PrivacyClient<'_> {
        PrivacyClient { client: self }
    }
}

impl PrivacyClient<'_> {
    /// The practice's rules (time-to-live, retention, history) as last seen.
    pub fn rules(&self) -> Result<PracticeRules> {
        self.client.read(|d| d.practice_rules())
    }

    /// The patient's pseudonym under the practice key (what the server's
    /// audit trail shows), once this device has the key.
    pub fn pseudonym(&self, patient: &PatientRef) -> Result<Option<String>> {
        self.client.read(|d| d.pseudonym(patient))
    }
}

/// One access to note: what was done, about whom, with ids and counts.
pub(crate) struct Access {
    pub action: AccessAction,
    pub patient: Option<PatientRef>,
    pub detail: String,
}

impl Access {
    /// An access to one patient's data.
    pub(crate) fn to(action: AccessAction, patient: &PatientRef, detail: String) -> Self {
        Self {
            action,
            patient: Some(patient.clone()),
            detail,
        }
    }

    /// One access per patient among `items` (each item's patient, if it has
    /// one), with how many items were that patient's.
    pub(crate) fn per_patient<'a>(
        action: AccessAction,
        what: &str,
        patients: impl IntoIterator<Item = Option<&'a PatientRef>>,
    ) -> Vec<Self> {
        let mut counts: Vec<(&PatientRef, usize)> = Vec::new();
        for patient in patients.into_iter().flatten() {
            match counts.iter_mut().find(|(p, _)| *p == patient) {
                Some((_, n)) => *n += 1,
                None => counts.push((patient, 1)),
            }
        }
        counts
            .into_iter()
            .map(|(p, n)| Self::to(action, p, format!("{what}={n}")))
            .collect()
    }
}

impl Client {
    /// Reads through the gate, then notes the accesses that reading was,
    /// before the result reaches the app: nothing is shown without its
    /// record, and a store that cannot keep the record shows nothing.
    pub(crate) fn read_audited<T>(
        &self,
        read: impl FnOnce(&Device) -> Result<T>,
        accesses: impl FnOnce(&Device, &T) -> Result<Vec<Access>>,
    ) -> Result<T> {
        self.read(|d| {
            let out = read(d)?;
            let accesses = accesses(d, &out)?;
            if !accesses.is_empty() {
                d.record_accesses(&accesses)?;
            }
            Ok(out)
        })
    }
}

/// The patients of these conversations, in their order (`None` for a
/// conversation about no patient, or one not here).
pub(crate) fn patients_of<'a>(
    d: &Device,
    conversations: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<Option<PatientRef>>> {
    let mut known: Vec<(&str, Option<PatientRef>)> = Vec::new();
    let mut out = Vec::new();
    for id in conversations {
        let patient = match known.iter().find(|(c, _)| *c == id) {
            Some((_, p)) => p.clone(),
            None => {
                let p = match d.conversation(id) {
                    Ok(c) => c.patient,
                    Err(crate::Error::NotFound { .. }) => None,
                    Err(e) => return Err(e),
                };
                known.push((id, p.clone()));
                p
            }
        };
        out.push(patient);
    }
    Ok(out)
}

/// The patient each message is about: its conversation's, or for a spoed
/// post the patient of the message it repeats.
pub(crate) fn patients_of_messages(
    d: &Device,
    messages: &[crate::model::Message],
) -> Result<Vec<Option<PatientRef>>> {
    let of_conversations = patients_of(d, messages.iter().map(|m| m.conversation.as_str()))?;
    Ok(messages
        .iter()
        .zip(of_conversations)
        .map(|(m, p)| p.or_else(|| m.spoed.as_ref().and_then(|s| s.patient.clone())))
        .collect())
}
