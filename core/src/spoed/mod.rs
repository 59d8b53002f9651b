//! Spoed: the Dutch triage urgency (NTS U1–U5; U1 and U2 are spoed), the
//! practice's spoed channel (a well-known group of all staff devices), who
//! is on duty (a simple roster per day part, with a backup), and
//! do-not-disturb. A spoed message in a patient conversation is posted into
//! the channel, routed to the member on duty (or the backup when that member
//! does not want to be disturbed); one of them takes it.

mod actions;
pub mod client;
// Public for the core's own tests and benchmarks (feature `testing`).
#[cfg_attr(not(feature = "testing"), allow(unreachable_pub))]
mod engine;

use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// NTS triage urgency.
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
#[strum(serialize_all = "snake_case", ascii_case_insensitive)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
pub enum Triage {
    /// Life-threatening: immediately.
    U1,
    /// Emergency: as soon as possible.
    U2,
    /// Urgent: within hours.
    U3,
    /// Not urgent: today.
    U4,
    /// Advice.
    U5,
}

named!(Triage, "triage");

impl Triage {
    /// U1 and U2 are spoed: they go to the spoed channel.
    pub fn is_spoed(self) -> bool {
        matches!(self, Self::U1 | Self::U2)
    }

    /// The FHIR `request-priority` it maps to.
    pub fn fhir_priority(self) -> &'static str {
        match self {
            Self::U1 => "stat",
            Self::U2 => "asap",
            Self::U3 => "urgent",
            Self::U4 | Self::U5 => "routine",
        }
    }
}

/// A part of the day on the duty roster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "uniffi", derive(uniffi::Enum))]
pub enum DayPart {
    /// 08:00–12:00.
    Morning,
    /// 12:00–17:00.
    Afternoon,
    /// 17:00–08:00 (into the next morning).
    Evening,
}

impl DayPart {
    /// The day part of a local hour (0–23), and whether it belongs to the
    /// previous date (the early hours of an evening shift).
    fn of_hour(hour: u8) -> (Self, bool) {
        match hour {
            8..=11 => (Self::Morning, false),
            12..=16 => (Self::Afternoon, false),
            17..=23 => (Self::Evening, false),
            _ => (Self::Evening, true),
        }
    }
}

/// Who is on duty in one day part, and who backs them up.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "uniffi", derive(uniffi::Record))]
pub struct DutySlot {
    /// The date, `YYYY-MM-DD`.
    pub date: String,
    /// The day part.
    pub part: DayPart,
    /// The user on duty.
    pub on_duty: String,
    /// The user who takes over (do-not-disturb, no answer).
    pub backup: String,
}

/// The practice's duty roster.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DutyRoster {
    /// Its slots.
    pub slots: Vec<DutySlot>,
}

impl DutyRoster {
    /// Checks dates and names.
    pub fn validate(&self) -> Result<()> {
        for slot in &self.slots {
            crate::calendar::parse_date(&slot.date, "date")?;
            if slot.on_duty.is_empty() || slot.backup.is_empty() {
                return Err(Error::invalid("slot", "on duty and backup are both needed"));
            }
        }
        Ok(())
    }

    /// The slot for a moment (ms since the epoch, Dutch local time).
    pub fn slot_at(&self, ms: i64) -> Option<&DutySlot> {
        let (date, part) = local_date_and_part(ms)?;
        self.slots.iter().find(|s| s.date == date && s.part == part)
    }
}

/// The date (`YYYY-MM-DD`) and day part of a moment in Dutch time: the
/// roster slot it falls in (the night belongs to the evening before).
pub fn local_date_and_part(ms: i64) -> Option<(String, DayPart)> {
    let local = crate::calendar::local(ms)?;
    let (part, previous) = DayPart::of_hour(u8::try_from(local.hour()).ok()?);
    let date = if previous {
        local.date().yesterday().ok()?
    } else {
        local.date()
    };
    Some((date.to_string(), part))
}

/// A settings change in the spoed channel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "setting", rename_all = "snake_case")]
pub(crate) enum SpoedSetting {
    Roster { id: String, roster: DutyRoster },
    DoNotDisturb { id: String, on: bool },
}

impl SpoedSetting {
    pub(crate) fn id(&self) -> &str {
        match self {
            Self::Roster { id, .. } | Self::DoNotDisturb { id, .. } => id,
        }
    }
}

pub(crate) fn insert_setting(
    conn: &Connection,
    setting: &SpoedSetting,
    by_user: &str,
    seq: Option<u64>,
) -> Result<bool> {
    let (kind, value) = match setting {
        SpoedSetting::Roster { roster, .. } => (
            "roster",
            serde_json::to_string(roster).map_err(|e| Error::invalid("roster", e.to_string()))?,
        ),
        SpoedSetting::DoNotDisturb { on, .. } => ("dnd", on.to_string()),
    };
    Ok(conn.execute(
        "INSERT INTO spoed_settings (id, kind, by_user, value, seq, item) VALUES (?1, ?2, ?3, ?4, ?5, 0)
         ON CONFLICT (id) DO NOTHING",
        params![setting.id(), kind, by_user, value, seq.map(|s| s as i64)],
    )? == 1)
}

pub(crate) fn setting_sent(conn: &Connection, id: &str, seq: u64) -> Result<()> {
    conn.execute(
        "UPDATE spoed_settings SET seq = ?2 WHERE id = ?1 AND seq IS NULL",
        params![id, seq as i64],
    )?;
    Ok(())
}

/// The roster as of the log (the last one set).
pub(crate) fn roster(conn: &Connection) -> Result<DutyRoster> {
    let value: Option<String> = conn
        .query_row(
            "SELECT value FROM spoed_settings WHERE kind = 'roster'
             ORDER BY seq IS NULL DESC, seq DESC, rowid DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .ok();
    match value {
        Some(v) => serde_json::from_str(&v).map_err(|e| Error::invalid("roster", e.to_string())),
        None => Ok(DutyRoster::default()),
    }
}

/// Whether `user` asked not to be disturbed (their last setting).
pub(crate) fn do_not_disturb(conn: &Connection, user: &str) -> Result<bool> {
    let value: Option<String> = conn
        .query_row(
            "SELECT value FROM spoed_settings WHERE kind = 'dnd' AND by_user = ?1
             ORDER BY seq IS NULL DESC, seq DESC, rowid DESC LIMIT 1",
            [user],
            |r| r.get(0),
        )
        .ok();
    Ok(value.as_deref() == Some("true"))
}

/// Who a spoed post goes to now: the member on duty, or the backup when the
/// member on duty asked not to be disturbed; none without a roster slot
/// (then everyone is alerted).
pub(crate) fn route(conn: &Connection, now_ms: i64) -> Result<Option<String>> {
    let roster = roster(conn)?;
    let Some(slot) = roster.slot_at(now_ms) else {
        return Ok(None);
    };
    if !do_not_disturb(conn, &slot.on_duty)? {
        return Ok(Some(slot.on_duty.clone()));
    }
    if !do_not_disturb(conn, &slot.backup)? {
        return Ok(Some(slot.backup.clone()));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triage_maps_to_fhir_priority() {
        assert_eq!(Triage::U1.fhir_priority(), "stat");
        assert_eq!(Triage::U2.fhir_priority(), "asap");
        assert_eq!(Triage::U3.fhir_priority(), "urgent");
        assert_eq!(Triage::U5.fhir_priority(), "routine");
        assert!(Triage::U2.is_spoed() && !Triage::U3.is_spoed());
        assert!(Triage::parse("u6").is_err());
    }

    #[test]
    fn day_parts_in_dutch_time() {
        // 2026-11-27 07:30 UTC = 08:30 CET: the morning.
        let (date, part) = local_date_and_part(1_795_764_600_000).unwrap_or_default_part();
        assert_eq!((date.as_str(), part), ("2026-11-27", DayPart::Morning));
        // 2026-07-01 00:30 UTC = 02:30 CEST: the evening of 30 June.
        let (date, part) = local_date_and_part(1_782_865_800_000).unwrap_or_default_part();
        assert_eq!((date.as_str(), part), ("2026-06-30", DayPart::Evening));
    }

    trait OrDefault {
        fn unwrap_or_default_part(self) -> (String, DayPart);
    }
    impl OrDefault for Option<(String, DayPart)> {
        fn unwrap_or_default_part(self) -> (String, DayPart) {
            self.unwrap_or((String::new(), DayPart::Morning))
        }
    }
}
