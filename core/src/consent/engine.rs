//! Practice-wide data on this device: the roster and patient consent, kept
//! as append-only logs in the store and shared through the practice group.

use std::collections::HashSet;

use openmls::prelude::OpenMlsProvider;

use crate::device::{Device, Outgoing};
use crate::{
    consent::{
        self, ConsentChange, ConsentKind, ConsentMethod, ConsentStatus, Figures, RosterChanges,
        RosterPatient, log,
    },
    error::{Error, Result},
    model::{Content, Conversation, ConversationKind, PatientRef},
    privacy::{AccessAction, audit},
    store::queries,
};

/// Recording consent here is an access to the patient's data (the record
/// names the change, never the answer: that is the patient's data).
fn recorded(tx: &rusqlite::Connection, change: &ConsentChange) -> Result<()> {
    let detail = format!("change={}", change.id);
    audit::record(
        tx,
        AccessAction::ConsentRecord,
        Some(&change.patient),
        &detail,
    )?;
    Ok(())
}

/// A consent to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewConsent {
    /// The patient (on the roster).
    pub patient: PatientRef,
    /// What it is about.
    pub kind: ConsentKind,
    /// The answer.
    pub status: ConsentStatus,
    /// How it was obtained.
    pub method: ConsentMethod,
    /// A note (optional, up to 1000 characters).
    pub note: Option<String>,
    /// When the patient answered (ms since the Unix epoch); now if absent.
    /// A paper form may be recorded later, never ahead of time.
    pub obtained_at: Option<i64>,
}

pub use pieper_wire::KnownGroup;

/// How a well-known group shows: its title and kind.
pub(crate) fn known_group_look(which: KnownGroup) -> (&'static str, ConversationKind) {
    match which {
        KnownGroup::Practice => ("Praktijk", ConversationKind::Practice),
        KnownGroup::Personal => ("Werkaantekeningen", ConversationKind::Personal),
        KnownGroup::Spoed => ("Spoed", ConversationKind::Spoed),
    }
}

/// A patient's consent as it stands, as shown with a conversation about them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct PatientConsent {
    /// Sharing through the LSP.
    pub lsp_sharing: ConsentStatus,
    /// Electronic communication.
    pub e_communication: ConsentStatus,
}

impl Device {
    /// The id of a well-known group of this device's practice and user.
    pub fn known_group_id(&self, which: KnownGroup) -> String {
        which.id(&self.me.practice, &self.me.user)
    }

    /// The id of this practice's practice group.
    pub fn practice_group_id(&self) -> String {
        self.known_group_id(KnownGroup::Practice)
    }

    /// Which well-known group `id` is, if any.
    pub(crate) fn known_group(&self, id: &str) -> Option<KnownGroup> {
        KnownGroup::ALL
            .into_iter()
            .find(|k| self.known_group_id(*k) == id)
    }

    /// Whether this device is in a well-known group.
    pub(crate) fn in_known_group(&self, which: KnownGroup) -> Result<bool> {
        let id = self.known_group_id(which);
        Ok(self
            .store
            .read(|c| queries::conversation(c, &id))?
            .is_some_and(|c| c.active))
    }

    /// Whether this device is in the practice group.
    pub fn in_practice_group(&self) -> Result<bool> {
        self.in_known_group(KnownGroup::Practice)
    }

    /// Creates a well-known group locally (the server must then accept it).
    pub(crate) fn create_known_group(&self, which: KnownGroup) -> Result<Conversation> {
        let (title, kind) = known_group_look(which);
        self.new_group(&self.known_group_id(which), title, kind, None)
    }

    /// Drops a conversation this device made but the server did not take
    /// (another device registered the practice group first).
    pub(crate) fn forget_new_conversation(&self, id: &str) -> Result<()> {
        self.transact(|s| {
            let (provider, group) = s.group(id)?;
            group.delete(provider.storage()).map_err(Error::from)?;
            s.groups.remove(id);
            s.conn()
                .execute("DELETE FROM conversations WHERE id = ?1", [id])?;
            Ok(())
        })
    }

    /// Who records a change here: this user, in the role of the session.
    fn recorder(&self) -> Result<(String, String)> {
        let session = self.session()?.ok_or(Error::SignedOut)?;
        Ok((self.me.user.clone(), session.role))
    }

    /// Imports patients into the roster: new ones are added, changed ones
    /// updated, none duplicated. With `full`, the import is the whole
    /// practice and enrolled patients it lacks are marked as left. Nothing
    /// changes if the import is invalid.
    pub fn import_roster(&self, patients: Vec<RosterPatient>, full: bool) -> Result<RosterChanges> {
        let now = queries::now_ms();
        self.store.write(|tx| {
            let mut roster = log::roster(tx)?;
            let changes = consent::merge_roster(&mut roster, patients, full)?;
            let touched: HashSet<&PatientRef> = changes
                .added
                .iter()
                .chain(&changes.changed)
                .chain(&changes.left)
                .collect();
            for p in roster.iter().filter(|p| touched.contains(&p.reference)) {
                log::insert_local_roster(tx, &uuid::Uuid::new_v4().to_string(), p, now)?;
                // Not whether they came or left: that is the patient's data.
                audit::record(tx, AccessAction::RosterImport, Some(&p.reference), "")?;
            }
            Ok(changes)
        })
    }

    /// The practice's patients, also those who left.
    pub fn roster(&self) -> Result<Vec<RosterPatient>> {
        self.store.read(log::roster)
    }

    /// Records a consent answer; it is shared with the practice's devices at
    /// the next sync.
    pub fn record_consent(&self, consent: NewConsent) -> Result<ConsentChange> {
        self.record(consent, false)
    }

    /// Withdraws given consent: it becomes refused, marked as a withdrawal.
    pub fn withdraw_consent(
        &self,
        patient: PatientRef,
        kind: ConsentKind,
        method: ConsentMethod,
        note: Option<String>,
    ) -> Result<ConsentChange> {
        self.record(
            NewConsent {
                patient,
                kind,
                status: ConsentStatus::Refused,
                method,
                note,
                obtained_at: None,
            },
            true,
        )
    }

    fn record(&self, consent: NewConsent, withdrawal: bool) -> Result<ConsentChange> {
        let (recorded_by, role) = self.recorder()?;
        let now = queries::now_ms();
        let change = ConsentChange {
            id: uuid::Uuid::new_v4().to_string(),
            patient: consent.patient,
            kind: consent.kind,
            status: consent.status,
            method: consent.method,
            note: consent.note.filter(|n| !n.trim().is_empty()),
            recorded_by,
            role,
            recorded_at: consent.obtained_at.unwrap_or(now),
            withdrawal,
        };
        self.store.write(|tx| {
            if !log::on_roster(tx, &change.patient)? {
                return Err(Error::NotFound {
                    what: "patient on the roster",
                });
            }
            let history = log::consent_history(tx, Some(&change.patient))?;
            // The roster check is done above, without loading the roster.
            let this_patient = [RosterPatient {
                reference: change.patient.clone(),
                name: String::new(),
                birth_date: String::new(),
                enrolled: true,
            }];
            consent::validate(&change, &this_patient, &history, now)?;
            log::insert_local_consent(tx, &change)?;
            recorded(tx, &change)?;
            Ok(change.clone())
        })
    }

    /// Imports consent changes (from FHIR, say): all are checked first, and
    /// one bad change imports none. Changes already here are skipped.
    /// Returns how many were new.
    pub fn import_consent(&self, changes: Vec<ConsentChange>) -> Result<usize> {
        let now = queries::now_ms();
        self.store.write(|tx| {
            let roster = log::roster(tx)?;
            let mut history = log::consent_history(tx, None)?;
            let known: HashSet<String> = history.iter().map(|c| c.id.clone()).collect();
            let mut new = 0;
            for change in changes {
                if known.contains(&change.id) {
                    continue;
                }
                consent::validate(&change, &roster, &history, now)?;
                log::insert_local_consent(tx, &change)?;
                recorded(tx, &change)?;
                history.push(change);
                new += 1;
            }
            Ok(new)
        })
    }

    /// The consent history in log order: one patient's, or the practice's.
    pub fn consent_history(&self, patient: Option<&PatientRef>) -> Result<Vec<ConsentChange>> {
        self.store.read(|c| log::consent_history(c, patient))
    }

    /// A patient's consent as it stands.
    pub fn patient_consent(&self, patient: &PatientRef) -> Result<PatientConsent> {
        let history = self.consent_history(Some(patient))?;
        Ok(PatientConsent {
            lsp_sharing: consent::current_status(&history, patient, ConsentKind::LspSharing),
            e_communication: consent::current_status(
                &history,
                patient,
                ConsentKind::ECommunication,
            ),
        })
    }

    /// The consent of the patient a conversation is about (none if it is
    /// about no patient).
    pub fn conversation_consent(&self, conversation: &str) -> Result<Option<PatientConsent>> {
        match self.conversation(conversation)?.patient {
            Some(patient) => Ok(Some(self.patient_consent(&patient)?)),
            None => Ok(None),
        }
    }

    /// Refuses, with [`Error::ConsentRequired`], to share a patient's data
    /// outside the practice unless their LSP consent is given. Every
    /// outbound share calls this first.
    pub fn require_lsp_consent(&self, patient: &PatientRef) -> Result<()> {
        if self.patient_consent(patient)?.lsp_sharing == ConsentStatus::Given {
            Ok(())
        } else {
            Err(Error::ConsentRequired {
                kind: ConsentKind::LspSharing,
            })
        }
    }

    /// The practice's figures for one kind of consent, now.
    pub fn consent_figures(&self, kind: ConsentKind) -> Result<Figures> {
        let (roster, history) = self.practice_logs()?;
        Ok(consent::figures(&roster, &history, kind, i64::MAX))
    }

    /// How the figures developed, month by month.
    pub fn consent_monthly(&self, kind: ConsentKind) -> Result<Vec<(String, Figures)>> {
        let (roster, history) = self.practice_logs()?;
        Ok(consent::monthly(&roster, &history, kind, queries::now_ms()))
    }

    /// The enrolled patients not yet asked: those with an open conversation
    /// here first, then the longest untouched.
    pub fn consent_worklist(&self, kind: ConsentKind) -> Result<Vec<RosterPatient>> {
        let (roster, history) = self.practice_logs()?;
        let open: HashSet<PatientRef> = self
            .conversations()?
            .into_iter()
            .filter(|c| c.active)
            .filter_map(|c| c.patient)
            .collect();
        Ok(consent::worklist(&roster, &history, kind, &open)
            .into_iter()
            .cloned()
            .collect())
    }

    fn practice_logs(&self) -> Result<(Vec<RosterPatient>, Vec<ConsentChange>)> {
        self.store
            .read(|c| Ok((log::roster(c)?, log::consent_history(c, None)?)))
    }

    /// Queues practice data not yet shared for the practice group, if this
    /// device is in it. Returns the envelopes queued.
    pub(crate) fn share_practice_data(&self) -> Result<Vec<Outgoing>> {
        let queued = self.queue_in(KnownGroup::Practice, |s, group| {
            // The first device caught up in a practice group without a
            // pseudonym key makes one.
            self.make_practice_key(s, group)?;
            let batches = log::take_unshared(s.conn(), || uuid::Uuid::new_v4().to_string())?;
            batches
                .into_iter()
                .map(|(id, batch)| self.encrypt(s, group, &id, &Content::Practice(batch)))
                .collect()
        })?;
        Ok(queued.unwrap_or_default())
    }

    /// Runs `queue` in one transaction if this device is in the well-known
    /// group: `None` if it is not, or a membership change of the group
    /// awaits the server (what waits is shared after it).
    pub(crate) fn queue_in<T>(
        &self,
        which: KnownGroup,
        queue: impl FnOnce(&mut crate::device::Session<'_, '_>, &str) -> Result<T>,
    ) -> Result<Option<T>> {
        if !self.in_known_group(which)? {
            return Ok(None);
        }
        let group = self.known_group_id(which);
        match self.transact(|s| queue(s, &group)) {
            Ok(value) => Ok(Some(value)),
            Err(Error::PendingCommit) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Queues everything whose place in the practice log is known, for
    /// devices that just joined the practice group.
    pub(crate) fn share_practice_snapshot(&self) -> Result<Vec<Outgoing>> {
        let group = self.practice_group_id();
        self.transact(|s| {
            let mut out = Vec::new();
            // The pseudonym keys first, with their places in the group's order.
            for key in Device::practice_key_snapshot(s.conn())? {
                let id = uuid::Uuid::new_v4().to_string();
                out.push(self.encrypt(s, &group, &id, &key)?);
            }
            for batch in log::snapshot(s.conn())? {
                let id = uuid::Uuid::new_v4().to_string();
                out.push(self.encrypt(s, &group, &id, &Content::Practice(batch))?);
            }
            Ok(out)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{identity::MemberId, keystore::FileKeyStore, store::queries::Session};

    type TestResult = std::result::Result<(), Box<dyn std::error::Error>>;

    fn device(dir: &std::path::Path) -> Result<Device> {
        let keystore = FileKeyStore::in_dir(dir)?;
        let device = Device::create_for_tests(
            dir,
            &keystore,
            MemberId::new("linde", "bakker", "tablet")?,
            pieper_wire::Role::Assistent,
        )?;
        device.save_session(&Session {
            server_url: "https://pieper.invalid".into(),
            token: "t".into(),
            role: "assistent".into(),
            cursor: 0,
            signed_out: false,
        })?;
        Ok(device)
    }

    fn ask(patient: &str, status: ConsentStatus) -> Result<NewConsent> {
        Ok(NewConsent {
            patient: PatientRef::new(patient)?,
            kind: ConsentKind::LspSharing,
            status,
            method: ConsentMethod::InPerson,
            note: Some("aan de balie".into()),
            obtained_at: None,
        })
    }

    const ROSTER: &str = "reference,name,birth_date,enrolled\n\
                          his:1,Mw. A,1950-01-01,yes\n\
                          his:2,Dhr. B,1960-01-01,yes\n\
                          his:3,Mw. C,1970-01-01,yes\n\
                          his:4,Dhr. D,1980-01-01,yes\n";

    #[test]
    fn records_keeps_history_and_refuses_bad_input_without_change() -> TestResult {
        let dir = tempfile::tempdir()?;
        let d = device(dir.path())?;
        let changes = d.import_roster(consent::roster_from_csv(ROSTER)?, true)?;
        assert_eq!(changes.added.len(), 4);
        // Importing the same file again duplicates nothing.
        let again = d.import_roster(consent::roster_from_csv(ROSTER)?, true)?;
        assert_eq!(again, RosterChanges::default());
        assert_eq!(d.roster()?.len(), 4);

        for p in ["his:1", "his:2", "his:3"] {
            d.record_consent(ask(p, ConsentStatus::Given)?)?;
        }
        let f = d.consent_figures(ConsentKind::LspSharing)?;
        assert_eq!((f.enrolled, f.given, f.not_asked), (4, 3, 1));
        assert!(f.meets_target, "exactly 75 % meets the target");
        let first = d.consent_history(None)?;
        assert_eq!(first[0].recorded_by, "bakker");
        assert_eq!(first[0].role, "assistent");

        // Withdrawal: given becomes refused, and only given can be withdrawn.
        let p1 = PatientRef::new("his:1")?;
        let w = d.withdraw_consent(
            p1.clone(),
            ConsentKind::LspSharing,
            ConsentMethod::PaperForm,
            None,
        )?;
        assert!(w.withdrawal);
        assert_eq!(d.patient_consent(&p1)?.lsp_sharing, ConsentStatus::Refused);
        assert!(d.require_lsp_consent(&p1).is_err());
        assert!(matches!(
            d.withdraw_consent(
                p1.clone(),
                ConsentKind::LspSharing,
                ConsentMethod::PaperForm,
                None
            ),
            Err(Error::Invalid {
                field: "withdrawal",
                ..
            })
        ));
        assert_eq!(d.consent_history(Some(&p1))?.len(), 2);

        // Bad input: a clear error, nothing recorded.
        let before = d.consent_history(None)?;
        assert!(matches!(
            d.record_consent(ask("his:999", ConsentStatus::Given)?),
            Err(Error::NotFound {
                what: "patient on the roster"
            })
        ));
        let mut future = ask("his:4", ConsentStatus::Given)?;
        future.obtained_at = Some(queries::now_ms() + 24 * 3600 * 1000);
        assert!(matches!(
            d.record_consent(future),
            Err(Error::Invalid {
                field: "recorded_at",
                ..
            })
        ));
        assert!(matches!(
            ConsentStatus::parse("misschien"),
            Err(Error::Invalid {
                field: "status",
                ..
            })
        ));
        assert!(consent::roster_from_csv("reference,name\nhis:5,X").is_err());
        assert!(consent::consent_from_fhir("{\"resourceType\":\"Consent\"}", "u", "poh").is_err());
        assert_eq!(d.consent_history(None)?, before);
        assert_eq!(d.roster()?.len(), 4);

        // Patients leaving change the rate: a full import without his:3 and
        // his:4 leaves two enrolled, of whom his:2 gave consent.
        let smaller = "reference,name,birth_date,enrolled\nhis:1,Mw. A,1950-01-01,yes\nhis:2,Dhr. B,1960-01-01,yes\n";
        let left = d.import_roster(consent::roster_from_csv(smaller)?, true)?;
        assert_eq!(left.left.len(), 2);
        let f = d.consent_figures(ConsentKind::LspSharing)?;
        assert_eq!((f.enrolled, f.given, f.refused), (2, 1, 1));
        assert_eq!(d.consent_worklist(ConsentKind::LspSharing)?, Vec::new());
        Ok(())
    }

    #[test]
    fn fhir_import_is_all_or_nothing() -> TestResult {
        let dir = tempfile::tempdir()?;
        let d = device(dir.path())?;
        d.import_roster(consent::roster_from_csv(ROSTER)?, true)?;
        d.record_consent(ask("his:2", ConsentStatus::Given)?)?;
        let exported = consent::consent_to_fhir_bundle(&d.consent_history(None)?)?;
        // The same changes again are known: nothing new.
        assert_eq!(
            d.import_consent(consent::consent_from_fhir(&exported, "u", "poh")?)?,
            0
        );
        // A bundle whose second change is for a stranger imports nothing.
        let stranger = exported.replace("\"value\": \"2\"", "\"value\": \"999\"");
        let mut changes = consent::consent_from_fhir(&exported, "u", "poh")?;
        changes[0].id = "new-1".into();
        changes.extend(
            consent::consent_from_fhir(&stranger, "u", "poh")?
                .into_iter()
                .map(|mut c| {
                    c.id = "new-2".into();
                    c
                }),
        );
        assert!(matches!(
            d.import_consent(changes),
            Err(Error::NotFound { .. })
        ));
        assert_eq!(d.consent_history(None)?.len(), 1);
        Ok(())
    }
}
