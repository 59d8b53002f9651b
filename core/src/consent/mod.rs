//! Patient consent for the national exchange (LSP opt-in) and for electronic
//! communication: the practice's roster, every consent change with who, when
//! and how, the current state derived from that history, the figures against
//! the 75 % target, and the front desk's worklist.
//!
//! The history is append-only. The current state of a patient's consent of
//! one kind is the last change in log order; every device folds the same log
//! the same way, so devices that recorded changes at the same time converge
//! once they have the same log, and both changes stay in the history.
//!
//! The log travels end-to-end encrypted in the practice group, an MLS group
//! of all the practice's staff devices, and its order is the server's order
//! of that group's envelopes (`log`); the server sees ciphertext only.

mod actions;
pub mod client;
// Public for the core's own tests and benchmarks (feature `testing`).
#[cfg_attr(not(feature = "testing"), allow(unreachable_pub))]
pub(crate) mod engine;
mod fhir;
pub(crate) mod log;
mod roster;

use std::collections::{HashMap, HashSet};

pub use actions::RosterFormat;
pub use fhir::{consent_from_fhir, consent_to_fhir_bundle};
pub use roster::{
    RosterChanges, RosterPatient, merge_roster, roster_from_csv, roster_from_fhir_bundle,
};
use serde::{Deserialize, Serialize};

use crate::{
    error::{Error, Result},
    model::PatientRef,
};

/// The share the practice aims for: LSP consent recorded as given.
pub const TARGET_RATE: f64 = 0.75;

/// What the consent is about.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::EnumString,
)]
#[strum(serialize_all = "snake_case")]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
pub enum ConsentKind {
    /// Sharing the patient's data through the national exchange (LSP).
    LspSharing,
    /// Electronic communication about the patient.
    ECommunication,
}

named!(ConsentKind, "kind");

/// The patient's answer.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::EnumString,
)]
#[strum(serialize_all = "snake_case")]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
pub enum ConsentStatus {
    /// The patient agreed.
    Given,
    /// The patient declined (or withdrew).
    Refused,
    /// Not asked (yet).
    NotAsked,
}

named!(ConsentStatus, "status");

/// How the answer was obtained.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::EnumString,
)]
#[strum(serialize_all = "snake_case")]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
pub enum ConsentMethod {
    /// Told in person.
    InPerson,
    /// On the paper form.
    PaperForm,
    /// Through a digital channel.
    Digital,
}

named!(ConsentMethod, "method");

/// One recorded change; the history is a list of these in log order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct ConsentChange {
    /// Its unique id.
    pub id: String,
    /// The patient.
    pub patient: PatientRef,
    /// What it is about.
    pub kind: ConsentKind,
    /// The new status.
    pub status: ConsentStatus,
    /// How it was obtained.
    pub method: ConsentMethod,
    /// A note (optional).
    pub note: Option<String>,
    /// Who recorded it (user id).
    pub recorded_by: String,
    /// In which role.
    pub role: String,
    /// When (ms since the Unix epoch).
    pub recorded_at: i64,
    /// Whether it withdraws an earlier consent.
    pub withdrawal: bool,
}

/// How far in the future a recorded time may lie (clock skew between devices).
const FUTURE_SKEW_MS: i64 = 5 * 60 * 1000;

/// Checks a change before it is recorded: a patient on the roster, a time
/// not in the future, a short note; a withdrawal only of given consent.
pub fn validate(
    change: &ConsentChange,
    roster: &[RosterPatient],
    history: &[ConsentChange],
    now_ms: i64,
) -> Result<()> {
    if !roster.iter().any(|p| p.reference == change.patient) {
        return Err(Error::NotFound {
            what: "patient on the roster",
        });
    }
    if change.recorded_at > now_ms + FUTURE_SKEW_MS {
        return Err(Error::invalid("recorded_at", "lies in the future"));
    }
    check_change(change)?;
    if change.withdrawal {
        let current = current_status(history, &change.patient, change.kind);
        if current != ConsentStatus::Given || change.status != ConsentStatus::Refused {
            return Err(Error::invalid(
                "withdrawal",
                "only given consent can be withdrawn",
            ));
        }
    }
    Ok(())
}

/// Checks the shape of a change, also of one that arrived from another
/// device: an id, a recorder, a time, a short note.
pub(crate) fn check_change(change: &ConsentChange) -> Result<()> {
    if change.id.is_empty() || change.id.len() > 128 {
        return Err(Error::invalid("id", "must be 1 to 128 characters"));
    }
    if change.recorded_by.is_empty() || change.role.is_empty() {
        return Err(Error::invalid("recorded_by", "who recorded it is missing"));
    }
    if change.recorded_at <= 0 {
        return Err(Error::invalid("recorded_at", "before 1970"));
    }
    if change.note.as_ref().is_some_and(|n| n.len() > 1000) {
        return Err(Error::invalid("note", "longer than 1000 characters"));
    }
    Ok(())
}

/// The current status of one patient's consent of one kind: the last change
/// in log order, or not asked.
pub fn current_status(
    history: &[ConsentChange],
    patient: &PatientRef,
    kind: ConsentKind,
) -> ConsentStatus {
    history
        .iter()
        .rev()
        .find(|c| &c.patient == patient && c.kind == kind)
        .map_or(ConsentStatus::NotAsked, |c| c.status)
}

/// The last change per patient for `kind`, as of `until` (ms, inclusive).
fn last_changes(
    history: &[ConsentChange],
    kind: ConsentKind,
    until: i64,
) -> HashMap<&PatientRef, &ConsentChange> {
    let mut last = HashMap::new();
    for change in history
        .iter()
        .filter(|c| c.kind == kind && c.recorded_at <= until)
    {
        last.insert(&change.patient, change);
    }
    last
}

/// The practice's figures for one kind of consent.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Figures {
    /// Patients enrolled in the practice.
    pub enrolled: u32,
    /// Of those, consent given.
    pub given: u32,
    /// Of those, consent refused.
    pub refused: u32,
    /// Of those, not asked.
    pub not_asked: u32,
    /// Given ÷ enrolled (0 with no patients).
    pub rate: f64,
    /// Whether the rate reaches [`TARGET_RATE`].
    pub meets_target: bool,
}

/// The figures over the enrolled patients, as of `until` (ms).
pub fn figures(
    roster: &[RosterPatient],
    history: &[ConsentChange],
    kind: ConsentKind,
    until: i64,
) -> Figures {
    let last = last_changes(history, kind, until);
    let (mut enrolled, mut given, mut refused) = (0u32, 0u32, 0u32);
    for patient in roster.iter().filter(|p| p.enrolled) {
        enrolled += 1;
        match last.get(&patient.reference).map(|c| c.status) {
            Some(ConsentStatus::Given) => given += 1,
            Some(ConsentStatus::Refused) => refused += 1,
            Some(ConsentStatus::NotAsked) | None => {}
        }
    }
    let rate = if enrolled == 0 {
        0.0
    } else {
        f64::from(given) / f64::from(enrolled)
    };
    Figures {
        enrolled,
        given,
        refused,
        not_asked: enrolled - given - refused,
        rate,
        // Compared in whole patients, so exactly 75 % meets the target.
        meets_target: enrolled > 0 && u64::from(given) * 4 >= u64::from(enrolled) * 3,
    }
}

/// How the figures developed: one entry per calendar month (UTC) from the
/// month of the first change to the month of `now`, each as of its last day.
/// (The roster is today's: patients who left no longer count.)
pub fn monthly(
    roster: &[RosterPatient],
    history: &[ConsentChange],
    kind: ConsentKind,
    now_ms: i64,
) -> Vec<(String, Figures)> {
    let Some(first) = history
        .iter()
        .filter(|c| c.kind == kind)
        .map(|c| c.recorded_at)
        .min()
    else {
        return Vec::new();
    };
    crate::calendar::months_between(first, now_ms)
        .into_iter()
        .map(|(label, end_ms)| (label, figures(roster, history, kind, end_ms.min(now_ms))))
        .collect()
}

/// The enrolled patients not yet asked about `kind`: those with an open
/// conversation first, then those whose last change is oldest (never
/// changed before ever changed), then by reference for a stable order.
pub fn worklist<'a>(
    roster: &'a [RosterPatient],
    history: &[ConsentChange],
    kind: ConsentKind,
    with_open_conversation: &HashSet<PatientRef>,
) -> Vec<&'a RosterPatient> {
    let last = last_changes(history, kind, i64::MAX);
    let mut list: Vec<(&RosterPatient, bool, Option<i64>)> = roster
        .iter()
        .filter(|p| p.enrolled)
        .filter(|p| {
            last.get(&p.reference)
                .is_none_or(|c| c.status == ConsentStatus::NotAsked)
        })
        .map(|p| {
            (
                p,
                with_open_conversation.contains(&p.reference),
                last.get(&p.reference).map(|c| c.recorded_at),
            )
        })
        .collect();
    list.sort_by(|a, b| {
        b.1.cmp(&a.1)
            .then(a.2.cmp(&b.2))
            .then(a.0.reference.as_str().cmp(b.0.reference.as_str()))
    });
    list.into_iter().map(|(p, _, _)| p).collect()
}

/// The worklist as CSV for the front desk.
pub fn worklist_csv(list: &[&RosterPatient]) -> String {
    pieper_wire::csv_document(
        &["reference", "name", "birth_date"],
        list.iter()
            .map(|p| [p.reference.as_str(), p.name.as_str(), p.birth_date.as_str()]),
    )
}

#[cfg(test)]
mod tests;
