//! [`AccountsClient`]: the practice manager's side of people coming and
//! going — inviting a colleague and resetting a login (a one-time
//! enrolment code, handed over in person, with which the person sets their
//! own password and authenticator), disabling a leaver (their login
//! refused, every device of theirs revoked and removed from this device's
//! conversations) and enabling them again. And [`Client::enrol`], the
//! person's side of a code.

use std::{path::Path, sync::Arc};

use pieper_wire::{EnrolRequest, EnrolmentCode, Invite, Registrations, Role};

use crate::{
    client::{Client, api::Api},
    device::Enrolment,
    error::{Error, Result},
    keystore::KeyStore,
};

/// What a person types to enrol their first device with an enrolment code.
#[derive(Clone)]
pub struct EnrolmentCredentials {
    /// The practice's id.
    pub practice: String,
    /// Their user name.
    pub username: String,
    /// The code the practice manager gave them.
    pub code: String,
    /// The password they choose (at least 12 characters).
    pub password: String,
    /// A name for this device.
    pub device_name: String,
}

impl std::fmt::Debug for EnrolmentCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnrolmentCredentials")
            .field("practice", &self.practice)
            .field("username", &self.username)
            .field("device_name", &self.device_name)
            .finish_non_exhaustive()
    }
}

/// The authenticator to set up after an enrolment: shown once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authenticator {
    /// The TOTP secret (base32), to type into the app.
    pub secret: String,
    /// The same as an `otpauth://` URL, to show as a QR code.
    pub otpauth_url: String,
}

impl Client {
    /// Enrols this device with the code the practice manager gave: sets the
    /// person's own password and returns the new authenticator secret for
    /// their app (later sign-ins take password and its codes). A wrong,
    /// used or expired code is refused like a wrong login.
    pub async fn enrol(
        server: &str,
        dir: impl AsRef<Path>,
        keystore: Arc<dyn KeyStore>,
        credentials: EnrolmentCredentials,
    ) -> Result<(Client, Authenticator)> {
        let api = Api::new(server)?;
        let enrolment = Enrolment::new()?;
        let enrolled = api
            .enrol(&EnrolRequest {
                practice: credentials.practice,
                username: credentials.username,
                code: credentials.code,
                password: credentials.password,
                device_name: credentials.device_name,
                signature_key: enrolment.signature_key().into(),
            })
            .await?;
        let client =
            Client::signed_in(api, enrolment, enrolled.login, dir.as_ref(), keystore).await?;
        Ok((
            client,
            Authenticator {
                secret: enrolled.totp_secret,
                otpauth_url: enrolled.otpauth_url,
            },
        ))
    }

    /// The practice's accounts (changing them takes the practice manager).
    pub fn accounts(&self) -> AccountsClient<'_> {
        AccountsClient { client: self }
    }
}

/// The practice's accounts: `client.accounts()`.
pub struct AccountsClient<'c> {
    client: &'c Client,
}

impl AccountsClient<'_> {
    /// The practice's staff, disabled ones marked.
    pub async fn list(&self) -> Result<Vec<pieper_wire::UserInfo>> {
        self.client.colleagues().await
    }

    /// Invites a colleague: their account, and the one-time code (valid a
    /// week) with which they enrol their first device. Hand it over in
    /// person.
    pub async fn invite(
        &self,
        username: &str,
        display_name: &str,
        role: Role,
    ) -> Result<EnrolmentCode> {
        self.invite_registered(username, display_name, role, Registrations::default())
            .await
    }

    /// [`Self::invite`] with the colleague's professional registrations
    /// (AGB, BIG, UZI): every certificate of their devices carries them.
    pub async fn invite_registered(
        &self,
        username: &str,
        display_name: &str,
        role: Role,
        registrations: Registrations,
    ) -> Result<EnrolmentCode> {
        self.client.read(|d| d.check_manages_practice())?;
        registrations
            .check()
            .map_err(|why| Error::invalid("registrations", why))?;
        let invite = Invite {
            username: username.to_owned(),
            display_name: display_name.to_owned(),
            role,
            registrations,
        };
        let result = self.client.api()?.invite(&invite).await;
        self.client.server(result).await
    }

    /// Resets a colleague's login (a forgotten password, a lost
    /// authenticator): the old ones stop at once; they enrol again with the
    /// returned one-time code.
    pub async fn reset_login(&self, user: &str) -> Result<EnrolmentCode> {
        self.client.read(|d| d.check_manages_practice())?;
        let result = self.client.api()?.reset_login(user).await;
        self.client.server(result).await
    }

    /// Disables a user (a leaver, a suspension): the server refuses their
    /// login and revokes every device of theirs at once; this device then
    /// removes those devices from its conversations, and every member's
    /// device does the same at its next check. Checked here first: only the
    /// practice manager may.
    pub async fn disable(&self, user: &str) -> Result<()> {
        self.client.read(|d| d.check_manages_practice())?;
        let result = self.client.api()?.disable_user(user).await;
        self.client.server(result).await?;
        self.client.devices().remove_revoked().await.map(|_| ())
    }

    /// Sets the huisarts a user works for (an assistent for her GP), or
    /// clears it: the audit trail names them as "on whose behalf" in every
    /// record of the user's from then on. Only the practice manager may.
    pub async fn set_on_behalf_of(&self, user: &str, huisarts: Option<&str>) -> Result<()> {
        self.client.read(|d| d.check_manages_practice())?;
        let result = self.client.api()?.set_on_behalf_of(user, huisarts).await;
        self.client.server(result).await
    }

    /// Enters or corrects a colleague's registrations (AGB, BIG, UZI): their
    /// devices' next certificates carry them (each device renews its own:
    /// `keys().renew_certificate()`). Only the practice manager may.
    pub async fn set_registrations(&self, user: &str, registrations: Registrations) -> Result<()> {
        self.client.read(|d| d.check_manages_practice())?;
        registrations
            .check()
            .map_err(|why| Error::invalid("registrations", why))?;
        let result = self
            .client
            .api()?
            .set_registrations(user, &registrations)
            .await;
        self.client.server(result).await
    }

    /// Enables a disabled user again: they sign in on a device anew (their
    /// revoked devices stay revoked).
    pub async fn enable(&self, user: &str) -> Result<()> {
        self.client.read(|d| d.check_manages_practice())?;
        let result = self.client.api()?.enable_user(user).await;
        self.client.server(result).await
    }
}
