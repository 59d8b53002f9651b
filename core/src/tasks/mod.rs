//! Tasks: any message can become one. What, for which patient, assigned to
//! a person or a role, by when; requested → accepted → completed, or
//! cancelled, each step with who and when.
//!
//! A task is conversation data: its changes travel end-to-end encrypted in
//! the conversation's MLS group and every member device folds them in the
//! server's order, so concurrent changes converge (the first in that order
//! wins; a later one that no longer applies stays in the history, marked
//! as not applied).

mod actions;
pub mod client;
// Public for the core's own tests and benchmarks (feature `testing`).
#[cfg_attr(not(feature = "testing"), allow(unreachable_pub))]
mod engine;

use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::{
    error::{Error, Result},
    fhir::{narrative, rfc3339},
    model::PatientRef,
    record::identifiers::patient_identifier_json,
};

/// Who a task is for.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", content = "id", rename_all = "snake_case")]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
pub enum Assignee {
    /// One person (user id).
    User(String),
    /// Whoever has this role (`poh`, `assistent`, `huisarts`, ...).
    Role(String),
}

/// Where a task stands.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::EnumString,
)]
#[strum(serialize_all = "snake_case")]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
pub enum TaskState {
    /// Asked for, not yet taken on.
    Requested,
    /// Someone took it on.
    Accepted,
    /// Done.
    Completed,
    /// Called off.
    Cancelled,
}

named!(TaskState, "state");

impl TaskState {
    fn open(self) -> bool {
        matches!(self, Self::Requested | Self::Accepted)
    }
}

/// A follow-up in the agenda that a task asks for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
pub enum FollowUp {
    /// Plan an appointment for the patient (with whom, if said).
    Appointment {
        /// Who the patient should see (a name or a role).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        with: Option<String>,
    },
    /// Call the patient back.
    CallBack,
}

/// A task to create.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewTask {
    /// What is to be done.
    pub what: String,
    /// For whom.
    pub assignee: Assignee,
    /// By when (`YYYY-MM-DD`), if there is a date.
    pub due: Option<String>,
    /// The message it came from.
    pub from_message: Option<String>,
    /// For the agenda: an appointment to plan or a call-back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follow_up: Option<FollowUp>,
}

impl NewTask {
    /// Asks the assistants to plan an appointment by `due` (`YYYY-MM-DD`).
    pub fn appointment(what: impl Into<String>, with: Option<String>, due: Option<String>) -> Self {
        Self {
            what: what.into(),
            assignee: Assignee::Role("assistent".into()),
            due,
            from_message: None,
            follow_up: Some(FollowUp::Appointment { with }),
        }
    }

    /// Asks the assistants to call the patient back by `due`.
    pub fn call_back(what: impl Into<String>, due: Option<String>) -> Self {
        Self {
            what: what.into(),
            assignee: Assignee::Role("assistent".into()),
            due,
            from_message: None,
            follow_up: Some(FollowUp::CallBack),
        }
    }
}

/// One change of a task, as it travels.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(crate) enum TaskOp {
    Create {
        #[serde(flatten)]
        task: NewTask,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        patient: Option<PatientRef>,
    },
    Accept,
    Complete,
    Cancel,
}

impl TaskOp {
    /// Its name in the audit trail.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            TaskOp::Create { .. } => "create",
            TaskOp::Accept => "accept",
            TaskOp::Complete => "complete",
            TaskOp::Cancel => "cancel",
        }
    }
}

/// A change in a conversation's task log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TaskChange {
    pub id: String,
    pub task: String,
    pub at: i64,
    #[serde(flatten)]
    pub op: TaskOp,
}

/// One step in a task's history.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct TaskStep {
    /// The state it moved to.
    pub state: TaskState,
    /// Who (user id).
    pub by: String,
    /// When (ms since the Unix epoch).
    pub at: i64,
    /// False when it came too late (a concurrent change decided first).
    pub applied: bool,
}

/// A task as it stands.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct Task {
    /// Its id.
    pub id: String,
    /// The conversation it belongs to.
    pub conversation: String,
    /// What is to be done.
    pub what: String,
    /// The conversation's patient, if any.
    pub patient: Option<PatientRef>,
    /// For whom.
    pub assignee: Assignee,
    /// By when.
    pub due: Option<String>,
    /// The message it came from.
    pub from_message: Option<String>,
    /// For the agenda: an appointment to plan or a call-back.
    pub follow_up: Option<FollowUp>,
    /// Where it stands.
    pub state: TaskState,
    /// Who asked for it.
    pub requested_by: String,
    /// Every step, in log order.
    pub history: Vec<TaskStep>,
}

impl Task {
    /// Whether it still needs doing.
    pub fn is_open(&self) -> bool {
        self.state.open()
    }
}

pub(crate) fn check_new(task: &NewTask) -> Result<()> {
    if task.what.trim().is_empty() || task.what.len() > 2000 {
        return Err(Error::invalid("what", "must be 1 to 2000 characters"));
    }
    let name = match &task.assignee {
        Assignee::User(u) | Assignee::Role(u) => u,
    };
    if name.trim().is_empty() || name.len() > 64 {
        return Err(Error::invalid("assignee", "a user or role is needed"));
    }
    if let Some(due) = &task.due {
        crate::calendar::parse_date(due, "due")?;
    }
    Ok(())
}

/// Stores a change; false if it was already here (it only learns its place
/// in the log, if it had none).
pub(crate) fn insert_change(
    conn: &Connection,
    conversation: &str,
    change: &TaskChange,
    by_user: &str,
    at: Option<(u64, u32)>,
) -> Result<bool> {
    let json = serde_json::to_string(change).map_err(|e| Error::invalid("task", e.to_string()))?;
    let (seq, item) = match at {
        Some((s, i)) => (Some(s as i64), Some(i64::from(i))),
        None => (None, None),
    };
    let inserted = conn.execute(
        "INSERT INTO task_changes (id, task_id, conversation_id, change, by_user, at, seq, item)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (id) DO NOTHING",
        params![
            change.id,
            change.task,
            conversation,
            json,
            by_user,
            change.at,
            seq,
            item
        ],
    )? == 1;
    Ok(inserted)
}

/// The server took this device's change as envelope `seq`.
pub(crate) fn change_sent(conn: &Connection, id: &str, seq: u64) -> Result<()> {
    conn.execute(
        "UPDATE task_changes SET seq = ?2, item = 0 WHERE id = ?1 AND seq IS NULL",
        params![id, seq as i64],
    )?;
    Ok(())
}

/// Folds the changes of the tasks that match `filter` (an SQL condition on
/// `task_changes`, with `?1` bound to `arg`).
fn fold(conn: &Connection, filter: &str, arg: &str) -> Result<Vec<Task>> {
    let sql = format!(
        "SELECT conversation_id, change, by_user FROM task_changes WHERE {filter}
         ORDER BY seq IS NULL, seq, item, rowid"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map([arg], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
        ))
    })?;
    let mut tasks: Vec<Task> = Vec::new();
    for row in rows {
        let (conversation, json, by) = row?;
        let change: TaskChange =
            serde_json::from_str(&json).map_err(|e| Error::invalid("task", e.to_string()))?;
        let existing = tasks.iter_mut().find(|t| t.id == change.task);
        match (change.op, existing) {
            (TaskOp::Create { task, patient }, None) => tasks.push(Task {
                id: change.task,
                conversation,
                what: task.what,
                patient,
                assignee: task.assignee,
                due: task.due,
                from_message: task.from_message,
                follow_up: task.follow_up,
                state: TaskState::Requested,
                requested_by: by.clone(),
                history: vec![TaskStep {
                    state: TaskState::Requested,
                    by,
                    at: change.at,
                    applied: true,
                }],
            }),
            // A second create for the same task, or a step before the
            // create arrived: nothing to fold into.
            (TaskOp::Create { .. }, Some(_)) | (_, None) => {}
            (op, Some(task)) => {
                let to = match op {
                    TaskOp::Accept => TaskState::Accepted,
                    TaskOp::Complete => TaskState::Completed,
                    TaskOp::Cancel => TaskState::Cancelled,
                    TaskOp::Create { .. } => continue,
                };
                let applied = allowed(task.state, to);
                if applied {
                    task.state = to;
                }
                task.history.push(TaskStep {
                    state: to,
                    by,
                    at: change.at,
                    applied,
                });
            }
        }
    }
    Ok(tasks)
}

pub(crate) fn task(conn: &Connection, id: &str) -> Result<Task> {
    fold(conn, "task_id = ?1", id)?
        .into_iter()
        .next()
        .ok_or(Error::NotFound { what: "task" })
}

pub(crate) fn tasks_of(conn: &Connection, conversation: &str) -> Result<Vec<Task>> {
    fold(conn, "conversation_id = ?1", conversation)
}

pub(crate) fn all_tasks(conn: &Connection) -> Result<Vec<Task>> {
    fold(conn, "?1 = ?1", "")
}

/// The steps a task can take: requested → accepted → completed, and
/// cancelled from either open state.
fn allowed(from: TaskState, to: TaskState) -> bool {
    matches!(
        (from, to),
        (
            TaskState::Requested,
            TaskState::Accepted | TaskState::Completed | TaskState::Cancelled
        ) | (
            TaskState::Accepted,
            TaskState::Completed | TaskState::Cancelled
        )
    )
}

/// Whether moving `task` to `to` is allowed now.
pub(crate) fn check_step(task: &Task, to: TaskState) -> Result<()> {
    if allowed(task.state, to) {
        Ok(())
    } else {
        Err(Error::invalid(
            "state",
            format!(
                "a {} task cannot become {}",
                task.state.as_str(),
                to.as_str()
            ),
        ))
    }
}

impl Task {
    /// A follow-up as the FHIR R4 request a HIS agenda takes: a
    /// `ServiceRequest` for an appointment to plan, a `CommunicationRequest`
    /// for a call-back. `None` for other tasks; needs the patient.
    pub fn to_fhir_request(&self) -> Result<Option<serde_json::Value>> {
        let Some(follow_up) = &self.follow_up else {
            return Ok(None);
        };
        let patient = self.patient.as_ref().ok_or(Error::invalid(
            "patient",
            "a follow-up in the agenda is for a patient",
        ))?;
        let subject = patient_identifier_json(patient)?;
        let status = match self.state {
            TaskState::Requested | TaskState::Accepted => "active",
            TaskState::Completed => "completed",
            TaskState::Cancelled => "revoked",
        };
        let id = crate::fhir::stable_uuid(&format!("{}/request", self.id));
        let mut request = json!({
            "id": id,
            "text": narrative(&self.what),
            "identifier": [{ "system": "urn:ietf:rfc:3986", "value": format!("urn:uuid:{id}") }],
            "status": status,
            "subject": { "identifier": subject },
            "authoredOn": rfc3339(self.history.first().map_or(0, |s| s.at))?,
            "requester": { "display": format!("user {}", self.requested_by) },
        });
        if let Some(due) = &self.due {
            request["occurrencePeriod"] = json!({ "end": due });
        }
        match follow_up {
            FollowUp::Appointment { with } => {
                request["resourceType"] = json!("ServiceRequest");
                request["intent"] = json!("order");
                request["code"] = json!({ "text": self.what });
                if let Some(with) = with {
                    request["performerType"] = json!({ "text": with });
                }
            }
            FollowUp::CallBack => {
                request["resourceType"] = json!("CommunicationRequest");
                request["payload"] = json!([{ "contentString": self.what }]);
                request["medium"] = json!([{ "coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationMode",
                    "code": "PHONE",
                    "display": "telephone",
                }]}]);
            }
        }
        Ok(Some(request))
    }

    /// The task as a FHIR R4 `Task` (`for` the patient by BSN or HIS number).
    pub fn to_fhir(&self) -> Result<serde_json::Value> {
        let last = self
            .history
            .iter()
            .rev()
            .find(|s| s.applied)
            .map_or(0, |s| s.at);
        let first = self.history.first().map_or(0, |s| s.at);
        let owner = match &self.assignee {
            Assignee::User(user) => json!({ "display": format!("user {user}") }),
            Assignee::Role(role) => json!({ "display": format!("role {role}") }),
        };
        let mut task = json!({
            "resourceType": "Task",
            "id": crate::fhir::stable_uuid(&self.id),
            "text": narrative(&self.what),
            "identifier": [{ "system": "urn:ietf:rfc:3986", "value": format!("urn:uuid:{}", crate::fhir::stable_uuid(&self.id)) }],
            "status": self.state.as_str(),
            "intent": "order",
            "description": self.what,
            "authoredOn": rfc3339(first)?,
            "lastModified": rfc3339(last)?,
            "requester": { "display": format!("user {}", self.requested_by) },
            "owner": owner,
        });
        if let Some(patient) = &self.patient {
            task["for"] = json!({ "identifier": patient_identifier_json(patient)? });
        }
        if let Some(due) = &self.due {
            task["restriction"] = json!({ "period": { "end": due } });
        }
        Ok(task)
    }
}
