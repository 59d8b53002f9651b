//! The groups every practice and user has: the practice group, the spoed
//! channel and each user's personal group. Their ids are derived from the
//! practice (and user), so two devices that make one at once collide at
//! the server instead of splitting it in two, and the server lets a device
//! make only its own practice's (or its own user's) ones: nobody else can
//! take such an id first.

use sha2::{Digest, Sha256};

/// A well-known group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KnownGroup {
    /// All the practice's staff devices: roster, consent, practice key.
    Practice,
    /// One user's own devices: work notes, history for a new device.
    Personal,
    /// The practice's spoed channel: all staff devices (a chat).
    Spoed,
}

impl KnownGroup {
    /// Every well-known group.
    pub const ALL: [KnownGroup; 3] = [Self::Practice, Self::Personal, Self::Spoed];

    fn prefix(self) -> &'static str {
        match self {
            Self::Practice => "practice",
            Self::Personal => "personal",
            Self::Spoed => "spoed",
        }
    }

    /// Its id for `practice` (and, for the personal group, `user`).
    pub fn id(self, practice: &str, user: &str) -> String {
        let seed = match self {
            Self::Practice => format!("pieper practice group {practice}"),
            Self::Personal => format!("pieper personal group {practice}/{user}"),
            Self::Spoed => format!("pieper spoed channel {practice}"),
        };
        let digest = Sha256::digest(seed);
        format!("{}-{}", self.prefix(), hex::encode(&digest[..16]))
    }

    /// The well-known group an id has the form of, if any: such an id may
    /// only be the one [`KnownGroup::id`] gives its creator.
    pub fn claimed_by(id: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| {
            id.strip_prefix(k.prefix())
                .is_some_and(|rest| rest.starts_with('-'))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Groups made by devices in the field carry these ids: they must not
    /// change.
    #[test]
    fn ids_are_stable_and_claimed_by_their_form() {
        let practice = KnownGroup::Practice.id("linde", "jansen");
        assert_eq!(practice, "practice-61817be9f9f945fb4124198e3acf960e");
        assert_eq!(practice, KnownGroup::Practice.id("linde", "bakker"));
        assert_ne!(practice, KnownGroup::Practice.id("eik", "jansen"));
        assert_ne!(
            KnownGroup::Personal.id("linde", "jansen"),
            KnownGroup::Personal.id("linde", "bakker")
        );
        for which in KnownGroup::ALL {
            assert_eq!(KnownGroup::claimed_by(&which.id("p", "u")), Some(which));
        }
        assert_eq!(KnownGroup::claimed_by("3f2a-uuid"), None);
        assert_eq!(KnownGroup::claimed_by("practiceroom"), None);
    }
}
