//! [`KeysClient`]: this device's MLS leaf updates, when they are due and
//! when they last landed.

use crate::{
    client::{COMMIT_ATTEMPTS, Client, KEY_PACKAGES_AT_LOGIN},
    error::{Error, Result},
    store::queries,
};

use super::KeyUpdate;

/// How many scheduled updates one sync makes at most: a backlog (after an
/// upgrade, a long time offline) drains over the next syncs instead of in
/// one burst. Updates due at once are all made.
const SCHEDULED_PER_RUN: usize = 10;

/// How many days before its certificate expires a device renews it.
pub const RENEW_BEFORE_DAYS: u32 = 30;

/// How old a device's KeyPackages on the server may grow before it
/// replaces them all.
pub const KEY_PACKAGE_MAX_AGE_DAYS: u32 = 30;

/// This device's keys: `client.keys()`.
pub struct KeysClient<'c> {
    pub(crate) client: &'c Client,
}

impl Client {
    /// This device's keys.
    pub fn keys(&self) -> KeysClient<'_> {
        KeysClient { client: self }
    }
}

impl KeysClient<'_> {
    /// Makes the leaf updates that are due now (see [`crate::keys`]);
    /// returns how many landed. One that cannot land now (another commit of
    /// this device waits, the epoch stays contended, the server refused it)
    /// is left for a later run; offline, the run stops.
    pub async fn update_due(&self) -> Result<usize> {
        let due = self
            .client
            .store(|d| d.leaf_updates_due(queries::now_ms(), SCHEDULED_PER_RUN))
            .await?;
        let mut landed = 0;
        for conversation in due {
            match self.update(&conversation).await {
                Ok(true) => landed += 1,
                Ok(false) | Err(Error::StaleEpoch { .. } | Error::Rejected { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(landed)
    }

    /// Commits an update of this device's leaf in `conversation` now and
    /// hands it to the server; true when it landed. When another member's
    /// commit won the epoch, this device catches up and makes it again.
    pub async fn update(&self, conversation: &str) -> Result<bool> {
        let updated_at = |conv: String| self.client.store(move |d| d.leaf_updated_at(&conv));
        let before = updated_at(conversation.to_owned()).await?;
        for _ in 0..COMMIT_ATTEMPTS {
            let conv = conversation.to_owned();
            match self.client.store(move |d| d.update_leaf(&conv)).await {
                Ok(_) => {}
                // Another commit of this device waits for the server (the
                // update comes at a later run), it left the conversation, or
                // it dropped its stale group there and waits to be added
                // again (with a fresh leaf).
                Err(Error::PendingCommit | Error::NotMember | Error::NotFound { .. }) => {
                    return Ok(false);
                }
                Err(e) => return Err(e),
            }
            // Whichever flush hands it over (this one, or a message's sent
            // meanwhile), it is accepted or dropped once this one returns.
            match self.client.flush_outbox().await {
                Ok(()) | Err(Error::StaleEpoch { .. }) => {}
                Err(e) => return Err(e),
            }
            if updated_at(conversation.to_owned()).await? != before {
                return Ok(true);
            }
            self.client.catch_up().await?;
        }
        Ok(false)
    }

    /// Renews this device's certificate when it expires within
    /// [`RENEW_BEFORE_DAYS`] days; true when it did. See
    /// [`KeysClient::renew_certificate`].
    pub async fn renew_certificate_if_due(&self) -> Result<bool> {
        let expiry = self.client.store(|d| d.certificate_expiry()).await?;
        let due = super::renewal_due(expiry, queries::now_ms());
        if due {
            self.renew_certificate().await?;
        }
        Ok(due)
    }

    /// Asks the practice's authority for a new certificate of this device's
    /// key (a new validity, the user's current role), takes it in use once
    /// it checks out, replaces the KeyPackages the server holds (they carry
    /// the old one) and marks every conversation for an update, which
    /// carries it to the members at the next sync.
    pub async fn renew_certificate(&self) -> Result<crate::identity::Certified> {
        let result = self.client.api()?.renew_certificate().await;
        let renewed = self.client.server(result).await?;
        let certified = self
            .client
            .store(move |d| d.take_certificate(&renewed.certificate.0, &renewed.authority.0))
            .await?;
        self.client
            .upload_key_packages(KEY_PACKAGES_AT_LOGIN, true, true)
            .await?;
        Ok(certified)
    }

    /// Replaces every KeyPackage the server holds for this device, the
    /// last-resort one included, when they are older than
    /// [`KEY_PACKAGE_MAX_AGE_DAYS`]: a package's private key waits on the
    /// device until someone uses it, so old ones are not left standing.
    /// True when it did.
    pub async fn rotate_key_packages_if_due(&self) -> Result<bool> {
        let rotated_at = self
            .client
            .store(|d| d.store.read(queries::key_packages_rotated_at))
            .await?;
        let max_age = i64::from(KEY_PACKAGE_MAX_AGE_DAYS) * 24 * 60 * 60 * 1000;
        if queries::now_ms() - rotated_at < max_age {
            return Ok(false);
        }
        self.client
            .upload_key_packages(KEY_PACKAGES_AT_LOGIN, true, true)
            .await?;
        Ok(true)
    }

    /// Makes this device's KeyPackages on the server `days` older, as if
    /// they were uploaded then: for the tests of their rotation.
    #[cfg(feature = "testing")]
    pub fn age_key_packages(&self, days: u32) -> Result<()> {
        let at = queries::now_ms() - i64::from(days) * 24 * 60 * 60 * 1000;
        self.client.read(|d| {
            d.store
                .write(|tx| queries::set_key_packages_rotated_at(tx, at))
        })
    }

    /// When this device last replaced its keys, per conversation.
    pub fn updates(&self) -> Result<Vec<KeyUpdate>> {
        self.client.read(|d| d.key_updates())
    }

    /// Marks every conversation due for an update at once (a restore, an
    /// unlock after a wipe warning); the next sync makes them.
    pub async fn update_everywhere_soon(&self) -> Result<usize> {
        self.client.store(|d| d.leaf_updates_due_now()).await
    }
}
