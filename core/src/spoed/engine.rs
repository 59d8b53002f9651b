//! The spoed channel on this device: the duty roster, do-not-disturb, and
//! taking a spoed post.

use crate::device::{Device, KnownGroup};
use crate::{
    error::{Error, Result},
    model::Content,
    spoed::{self, DutyRoster, SpoedSetting},
    store::queries,
};

impl Device {
    /// The id of the practice's spoed channel.
    pub fn spoed_channel_id(&self) -> String {
        self.known_group_id(KnownGroup::Spoed)
    }

    fn spoed_setting(&self, setting: SpoedSetting) -> Result<()> {
        let channel = self.spoed_channel_id();
        self.transact(|s| {
            self.encrypt(
                s,
                &channel,
                setting.id(),
                &Content::SpoedSetting(setting.clone()),
            )?;
            spoed::insert_setting(s.conn(), &setting, &self.me.user, None)?;
            Ok(())
        })
    }

    /// Sets the practice's duty roster (for everyone in the spoed channel).
    pub fn set_duty_roster(&self, roster: DutyRoster) -> Result<()> {
        if !crate::identity::decides_for_practice(&self.roles()) {
            return Err(Error::Refused {
                reason: crate::error::Refusal::Role,
            });
        }
        roster.validate()?;
        self.spoed_setting(SpoedSetting::Roster {
            id: uuid::Uuid::new_v4().to_string(),
            roster,
        })
    }

    /// Turns this user's do-not-disturb on or off: while on, their spoed
    /// goes to the backup.
    pub fn set_do_not_disturb(&self, on: bool) -> Result<()> {
        self.spoed_setting(SpoedSetting::DoNotDisturb {
            id: uuid::Uuid::new_v4().to_string(),
            on,
        })
    }

    /// The duty roster as it stands.
    pub fn duty_roster(&self) -> Result<DutyRoster> {
        self.store.read(spoed::roster)
    }

    /// Who a spoed post made now would go to.
    pub fn spoed_route_now(&self) -> Result<Option<String>> {
        self.store.read(|c| spoed::route(c, queries::now_ms()))
    }

    /// "Ik pak het op": this user takes a spoed post; everyone sees who.
    pub fn take_spoed(&self, post: &str) -> Result<()> {
        let message = self.message(post)?;
        if message.spoed.is_none() {
            return Err(Error::invalid("message", "not a spoed post"));
        }
        if let Some(by) = message.spoed.and_then(|s| s.taken_by) {
            return Err(Error::invalid("taken", format!("already taken by {by}")));
        }
        let channel = self.spoed_channel_id();
        let id = uuid::Uuid::new_v4().to_string();
        self.transact(|s| {
            let content = Content::SpoedTaken {
                message: post.to_owned(),
            };
            self.encrypt(s, &channel, &id, &content)?;
            queries::take_spoed(s.conn(), post, &self.me.user)?;
            Ok(())
        })
    }
}
