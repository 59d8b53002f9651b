//! The types Pieper clients and the server exchange: requests, responses, the
//! opaque encrypted envelope, and the error body. Serde only: no I/O here, so
//! the core and the server share these without importing each other.
//!
//! The server never sees plaintext: every `payload` is MLS ciphertext and
//! every blob is a sealed attachment.

mod bytes;
mod known_groups;

pub use bytes::Bytes;
pub use known_groups::KnownGroup;
use serde::{Deserialize, Serialize};

/// The protocol version; sent as the `pieper-protocol` header.
pub const PROTOCOL_VERSION: u32 = 1;
/// The header that carries [`PROTOCOL_VERSION`].
pub const PROTOCOL_HEADER: &str = "pieper-protocol";
/// Where the versioned API lives.
pub const API_PREFIX: &str = "/api/v1";

/// A staff member's role in the practice.
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Role {
    /// GP.
    Huisarts,
    /// Practice nurse.
    Poh,
    /// Doctor's assistant.
    Assistent,
    /// Practice manager.
    Manager,
    /// Administrator of the practice's accounts.
    Admin,
    /// The practice's HIS connector: a headless device that documents into
    /// the HIS what members send it.
    Connector,
}

impl Role {
    /// The role's name as stored and shown.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Parses a role name.
    pub fn parse(s: &str) -> Option<Role> {
        s.parse().ok()
    }

    /// Whether the role manages the practice (devices of others, audit log).
    pub fn manages_practice(self) -> bool {
        matches!(self, Role::Manager | Role::Admin)
    }
}

/// Log in with password and TOTP, enrolling this device.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LoginRequest {
    /// The practice's id.
    pub practice: String,
    /// The user's name within the practice.
    pub username: String,
    /// The password.
    pub password: String,
    /// The current 6-digit TOTP code.
    pub totp: String,
    /// A name for the device being enrolled ("telefoon", "balie-tablet").
    pub device_name: String,
    /// The device's MLS signature key (Ed25519, 32 bytes), which the server
    /// certifies for this account ([`LoginResponse::certificate`]).
    #[serde(default)]
    pub signature_key: Option<Bytes>,
}

/// The practice manager invites a new colleague.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Invite {
    /// Their user name (1 to 64 of letters, digits, `-_.@`).
    pub username: String,
    /// The name shown to colleagues.
    pub display_name: String,
    /// Their role.
    pub role: Role,
    /// Their professional registrations (AGB, BIG, UZI), if any.
    #[serde(default, skip_serializing_if = "Registrations::is_empty")]
    pub registrations: Registrations,
}

/// A one-time enrolment code for a colleague: on their first device they set
/// their own password and authenticator with it. Handed over in person.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnrolmentCode {
    /// The user it is for.
    pub user_id: String,
    /// The code (once, until `expires_at`).
    pub code: String,
    /// Until when it works (ms since the Unix epoch).
    pub expires_at: i64,
}

/// A person sets their own password and authenticator with an enrolment
/// code, enrolling this device.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnrolRequest {
    /// The practice's id.
    pub practice: String,
    /// Their user name.
    pub username: String,
    /// The enrolment code the manager gave them.
    pub code: String,
    /// The password they choose (at least 12 characters).
    pub password: String,
    /// A name for this device.
    pub device_name: String,
    /// The device's MLS signature key (Ed25519, 32 bytes).
    pub signature_key: Bytes,
}

/// An enrolment: the device signed in, and the authenticator secret to add
/// to the person's authenticator app (shown once).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnrolResponse {
    /// The device, as a login gives it.
    pub login: LoginResponse,
    /// The TOTP secret (base32).
    pub totp_secret: String,
    /// The same as an `otpauth://` URL (a QR code for the app).
    pub otpauth_url: String,
}

/// A successful login: the enrolled device and its bearer token.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LoginResponse {
    /// The practice.
    pub practice: String,
    /// The user.
    pub user_id: String,
    /// The user's role.
    pub role: Role,
    /// The new device.
    pub device_id: String,
    /// The device's bearer token; shown once, stored hashed by the server.
    pub device_token: String,
    /// The device's certificate (X.509, DER): its signature key bound to
    /// practice, user, device and roles, signed by the practice's authority.
    /// Present when the request carried a signature key.
    #[serde(default)]
    pub certificate: Option<Bytes>,
    /// The practice's authority certificate (X.509, DER, self-signed) that
    /// every member's certificate is checked against.
    #[serde(default)]
    pub authority: Option<Bytes>,
}

/// `POST /devices/me/certificate`: a renewed certificate for the calling
/// device's signature key, with the user's current role and a new validity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RenewedCertificate {
    /// The device's new certificate (X.509, DER).
    pub certificate: Bytes,
    /// The practice's authority certificate it is signed by (X.509, DER).
    pub authority: Bytes,
}

/// How a device certificate names who it is: subject alternative names of
/// type URI. The member URI is the MLS identity of earlier versions.
pub mod certificate {
    /// `pieper:v1:<practice>/<user>/<device>`: the one member URI.
    pub const MEMBER_PREFIX: &str = "pieper:v1:";
    /// `urn:pieper:role:<role>`: one per role of the user.
    pub const ROLE_PREFIX: &str = "urn:pieper:role:";
    /// `urn:pieper:practice:<practice>`: names the practice an authority
    /// certificate certifies for.
    pub const PRACTICE_PREFIX: &str = "urn:pieper:practice:";
    /// `urn:pieper:registration:<agb|big|uzi>:<number>`: a professional
    /// registration the practice manager entered.
    pub const REGISTRATION_PREFIX: &str = "urn:pieper:registration:";

    /// The member URI of a device.
    pub fn member_uri(practice: &str, user: &str, device: &str) -> String {
        format!("{MEMBER_PREFIX}{practice}/{user}/{device}")
    }
}

/// A professional's registrations, as the practice manager entered them;
/// every device certificate of the user carries them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Registrations {
    /// AGB-code (Vektis): 8 digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agb: Option<String>,
    /// BIG-registratienummer: 11 digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub big: Option<String>,
    /// UZI-nummer (of the UZI card): 1 to 12 digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uzi: Option<String>,
}

impl Registrations {
    /// Whether none is entered.
    pub fn is_empty(&self) -> bool {
        self.agb.is_none() && self.big.is_none() && self.uzi.is_none()
    }

    /// Checks the numbers' forms; the error names the first wrong one.
    pub fn check(&self) -> Result<(), String> {
        let digits = |name: &str, value: &Option<String>, len: std::ops::RangeInclusive<usize>| {
            match value {
                Some(v) if !(len.contains(&v.len()) && v.bytes().all(|b| b.is_ascii_digit())) => {
                    Err(format!(
                        "{name} must be {}-{} digits",
                        len.start(),
                        len.end()
                    ))
                }
                _ => Ok(()),
            }
        };
        digits("agb", &self.agb, 8..=8)?;
        digits("big", &self.big, 11..=11)?;
        digits("uzi", &self.uzi, 1..=12)
    }

    /// As certificate names (see [`certificate::REGISTRATION_PREFIX`]).
    pub fn uris(&self) -> Vec<String> {
        [("agb", &self.agb), ("big", &self.big), ("uzi", &self.uzi)]
            .into_iter()
            .filter_map(|(kind, v)| {
                v.as_ref()
                    .map(|v| format!("{}{kind}:{v}", certificate::REGISTRATION_PREFIX))
            })
            .collect()
    }

    /// From certificate names (others are ignored); only well-formed
    /// numbers are taken.
    pub fn from_uris<'a>(uris: impl IntoIterator<Item = &'a str>) -> Self {
        let mut out = Registrations::default();
        for uri in uris {
            let Some(rest) = uri.strip_prefix(certificate::REGISTRATION_PREFIX) else {
                continue;
            };
            let slot = match rest.split_once(':') {
                Some(("agb", v)) => (&mut out.agb, v),
                Some(("big", v)) => (&mut out.big, v),
                Some(("uzi", v)) => (&mut out.uzi, v),
                _ => continue,
            };
            *slot.0 = Some(slot.1.to_owned());
        }
        if out.check().is_err() {
            return Registrations::default();
        }
        out
    }
}

/// A colleague in the practice's staff directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserInfo {
    /// The user's id.
    pub id: String,
    /// Their user name.
    pub username: String,
    /// The name shown to colleagues.
    pub display_name: String,
    /// Their role.
    pub role: Role,
    /// Disabled by the practice manager (a leaver, a suspension).
    #[serde(default)]
    pub disabled: bool,
    /// The huisarts (user id) this user works for, if the practice manager
    /// set one: every audit record of theirs names them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_behalf_of: Option<String>,
    /// Their professional registrations.
    #[serde(default, skip_serializing_if = "Registrations::is_empty")]
    pub registrations: Registrations,
}

/// Body of `PUT /users/{id}/on-behalf-of`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OnBehalfOf {
    /// The huisarts (user id) the user works for; none: for themselves.
    pub user: Option<String>,
}

/// A device as the server knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeviceInfo {
    /// Its id.
    pub id: String,
    /// Its user.
    pub user_id: String,
    /// Its name.
    pub name: String,
    /// When it was enrolled (ms since the Unix epoch).
    pub created_at: i64,
    /// When it was revoked, if it was.
    pub revoked_at: Option<i64>,
    /// Its certificate (X.509, DER), for its owner's other devices to
    /// approve it by.
    #[serde(default)]
    pub certificate: Option<Bytes>,
    /// Which of its user's devices approved it, if one did.
    #[serde(default)]
    pub approved_by: Option<String>,
}

/// Who vouches for a new device.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ApprovalKind {
    /// Another device of the same user (label "pieper device approval").
    #[default]
    Own,
    /// The user's recovery key, derived from the recovery code of their
    /// backup (label "pieper recovery approval"); `by_device` is the
    /// device itself.
    Recovery,
    /// A practice manager's device, for a user who lost every device and
    /// their recovery code (label "pieper identity reset"): every member
    /// is shown that the identity was reset.
    Reset,
}

/// An approval of a new device: the voucher's signature (RFC 9420
/// SignWithLabel, with the label of its kind) over the new device's
/// certificate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Approval {
    /// The approving device.
    pub by_device: String,
    /// Who vouches (absent: another device of the user).
    #[serde(default)]
    pub kind: ApprovalKind,
    /// Its signature.
    pub signature: Bytes,
}

/// KeyPackages of the calling device for others to add it with.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UploadKeyPackages {
    /// One-time KeyPackages (TLS-encoded).
    pub key_packages: Vec<Bytes>,
    /// The device's last-resort KeyPackage, replacing an earlier one.
    pub last_resort: Option<Bytes>,
    /// Drop the device's unclaimed one-time KeyPackages first: its store no
    /// longer holds their private keys (restored from an older copy).
    #[serde(default)]
    pub replace: bool,
}

/// How many one-time KeyPackages the server still holds for the calling
/// device; below a few, it uploads more (else every add uses the last-resort
/// one, whose key is never deleted).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeyPackageCount {
    /// Unclaimed one-time KeyPackages.
    pub one_time: u32,
}

/// Claim one KeyPackage of every active device of these users.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClaimKeyPackages {
    /// The users whose devices are to be added.
    pub user_ids: Vec<String>,
    /// Topping up this conversation: skip devices already in it, and skip
    /// users without devices instead of refusing (no KeyPackage is spent on
    /// a device that needs none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing_from: Option<String>,
}

/// A claimed KeyPackage.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClaimedKeyPackage {
    /// The device it belongs to.
    pub device_id: String,
    /// That device's user.
    pub user_id: String,
    /// The KeyPackage (TLS-encoded).
    pub key_package: Bytes,
    /// How another device of the user approved this one, if one did.
    #[serde(default)]
    pub approval: Option<Approval>,
}

/// The answer to [`ClaimKeyPackages`].
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClaimedKeyPackages {
    /// One per device that had a KeyPackage.
    pub key_packages: Vec<ClaimedKeyPackage>,
    /// Devices that had none left (they must upload more).
    pub exhausted_devices: Vec<String>,
}

/// Which push service reaches a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum PushProvider {
    /// Firebase Cloud Messaging (Android).
    Fcm,
    /// Apple Push Notification service (iOS).
    Apns,
}

/// The APNs environment a token belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ApnsEnvironment {
    /// Development builds (api.sandbox.push.apple.com).
    Sandbox,
    /// App Store and TestFlight builds (api.push.apple.com).
    Production,
}

/// `PUT /devices/me/push-token`: this device's push token (registering a new
/// one replaces the old: the OS rotated it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PushTokenRegistration {
    /// The service.
    pub provider: PushProvider,
    /// The token the OS gave the app.
    pub token: String,
    /// For APNs: which environment issued the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apns_environment: Option<ApnsEnvironment>,
}

/// Register a new conversation (its MLS group was created on the device).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateConversation {
    /// The conversation id, which is also the MLS group id.
    pub id: String,
}

/// A conversation's delivery state on the server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConversationInfo {
    /// Its id.
    pub id: String,
    /// The MLS epoch the server has accepted a commit for last.
    pub epoch: u64,
    /// The member devices.
    pub member_devices: Vec<String>,
}

/// What an envelope carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum EnvelopeKind {
    /// An MLS application message.
    Application,
    /// An MLS commit (the server accepts one per epoch).
    Commit,
    /// An MLS Welcome, for one added device.
    Welcome,
}

/// How urgent a message is; only this, never content, reaches push.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Priority {
    /// Ordinary.
    #[default]
    Routine,
    /// Wakes the recipients' phones.
    Urgent,
}

/// Send one envelope to a conversation.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SendRequest {
    /// The client's unique id for it: a resend with the same id is stored once.
    pub id: String,
    /// Application message or commit.
    pub kind: EnvelopeKind,
    /// The epoch it was made in.
    pub epoch: u64,
    /// The MLS message.
    pub payload: Bytes,
    /// With a commit that adds devices: their Welcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub welcome: Option<Bytes>,
    /// With a commit: the devices it adds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add_devices: Vec<String>,
    /// With a commit: the devices it removes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove_devices: Vec<String>,
    /// The patient the conversation is about, as the client declares it for
    /// the audit trail (an opaque reference or pseudonym).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient: Option<String>,
    /// Routine or urgent.
    #[serde(default)]
    pub priority: Priority,
    /// Nothing a person reads (conversation details, practice data): no
    /// push wakes the recipients.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub silent: bool,
    /// For an urgent message routed to some users (a spoed post to whoever
    /// is on duty): only their devices are woken as urgent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urgent_for: Vec<String>,
    /// A disappearing message: when (ms since the Unix epoch) the server
    /// removes it, delivered or not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
}

/// `POST /conversations/{id}/read`: a person read this message (the server
/// stops escalating it when it was urgent).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MarkRead {
    /// The message's client id.
    pub message: String,
}

/// The server stored the envelope.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SendResponse {
    /// Its sequence number in the conversation.
    pub seq: u64,
    /// Its position in the server's log (the sync cursor).
    pub position: u64,
}

/// An envelope as delivered to a device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Envelope {
    /// Position in the server's log; the device's cursor moves past it.
    pub position: u64,
    /// The conversation.
    pub conversation: String,
    /// Sequence number within the conversation (Welcomes share their commit's).
    pub seq: u64,
    /// What it carries.
    pub kind: EnvelopeKind,
    /// The epoch it was made in.
    pub epoch: u64,
    /// The client id the sender gave it.
    pub id: String,
    /// The sending device.
    pub sender_device: String,
    /// Routine or urgent.
    pub priority: Priority,
    /// When the server stored it (ms since the Unix epoch).
    pub stored_at: i64,
    /// The MLS message.
    pub payload: Bytes,
}

/// A page of envelopes after a cursor.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SyncResponse {
    /// In server order.
    pub envelopes: Vec<Envelope>,
    /// The cursor to ask from next.
    pub next: u64,
    /// Whether more envelopes wait after this page.
    pub more: bool,
}

/// What the server sends on a device's WebSocket.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ServerEvent {
    /// A new envelope for this device.
    Envelope(Envelope),
    /// An urgent message that nobody read in time was pushed again to every
    /// member device.
    Escalated {
        /// The conversation.
        conversation: String,
        /// The message's client id.
        message: String,
        /// How many times it was pushed again so far.
        escalations: u32,
    },
    /// A notification self-test this device asked for, over the live path.
    SelfTest {
        /// The test's id.
        id: String,
        /// When the server sent it (ms).
        sent_at: i64,
    },
}

/// An uploaded sealed attachment.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BlobCreated {
    /// Its id.
    pub id: String,
    /// Its size in bytes.
    pub size: u64,
}

/// `POST /conversations/{id}/heal`: this device cannot decrypt the
/// conversation any more and asks a member to add it again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HealAsk {
    /// Envelopes it could not decrypt (counted in the server's metric).
    pub undecryptable: u32,
}

/// A member device that asked to be added again to a conversation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HealRequest {
    /// The conversation.
    pub conversation: String,
    /// The device.
    pub device: String,
}

/// `POST /devices/me/push-test`: send this device a test notification.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PushTest {
    /// As an urgent push (wakes through do-not-disturb where allowed).
    pub urgent: bool,
}

/// What the server did with a test notification.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PushTestResult {
    /// The test's id (the push carries it as `message`, with `self_test`).
    pub id: String,
    /// When the server sent it (ms).
    pub sent_at: i64,
    /// The device's push service, if it registered a token.
    pub provider: Option<PushProvider>,
    /// `delivered` (the provider took it), `token_gone` (the provider says
    /// the token is dead; it was removed), `failed`, `no_token` or
    /// `no_provider` (the server has no credentials for that service).
    pub outcome: String,
    /// The provider's reason, when it failed.
    pub detail: Option<String>,
    /// The device is connected live (the test also went that way).
    pub live: bool,
}

/// `POST /audit/unlock`: a fresh second factor opens the audit log to this
/// device for a short while.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditUnlock {
    /// The current TOTP code.
    pub totp: String,
}

/// How long the audit log stays open to the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditUnlocked {
    /// Until (ms since the Unix epoch).
    pub until: i64,
}

/// What was done with patient data on a device: the one list of the
/// actions a device reports for the audit trail (the server records its own
/// — sending, fetching ciphertext, logins — beside them). A feature that
/// shows or changes patient data adds its action here; the practice-day
/// end-to-end test holds every action to one record per use.
///
/// Lists of conversations (titles, patient references, unread counts) are
/// not logged; content about a patient is: messages, tasks, consent, a
/// roster entry. A list that spans the whole practice (the roster, the
/// consent worklist) is one record without a patient, with its size.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::VariantArray,
)]
pub enum AccessAction {
    /// A patient's messages or documentation items were shown (a
    /// conversation opened or paged back, one message, the dashboard).
    #[strum(serialize = "conversation.open")]
    Open,
    /// A work note about a patient was written (it goes only to the
    /// writer's own devices, so the server cannot name the patient).
    #[strum(serialize = "note.write")]
    NoteWrite,
    /// A file attached in a patient's conversation was opened (the
    /// server's `attachment.fetch` is only the ciphertext's delivery).
    #[strum(serialize = "attachment.open")]
    AttachmentOpen,
    /// Messages were marked read by their reader.
    #[strum(serialize = "message.read")]
    Read,
    /// A search's results showed a patient's messages (one record per
    /// patient; the query itself is not logged).
    #[strum(serialize = "message.search")]
    Search,
    /// A patient's consent (as it stands, or its history) was shown.
    #[strum(serialize = "consent.view")]
    ConsentView,
    /// A consent answer was recorded, withdrawn or imported.
    #[strum(serialize = "consent.record")]
    ConsentRecord,
    /// The practice's roster or consent worklist was listed (no patient).
    #[strum(serialize = "roster.view")]
    RosterView,
    /// A roster import added, changed or ended a patient's enrolment.
    #[strum(serialize = "roster.import")]
    RosterImport,
    /// A patient's tasks were shown.
    #[strum(serialize = "task.view")]
    TaskView,
    /// A task about a patient was made, taken on, done or called off.
    #[strum(serialize = "task.change")]
    TaskChange,
    /// Content was sent for the record (documentation).
    #[strum(serialize = "record.document")]
    Document,
    /// The practice's connector delivered content into the HIS.
    #[strum(serialize = "record.deliver")]
    Deliver,
    /// The patient's data was exported (inzage).
    #[strum(serialize = "patient.export")]
    Export,
    /// The patient's chat data was erased.
    #[strum(serialize = "patient.erase")]
    Erase,
    /// The audit log was exported.
    #[strum(serialize = "audit.export")]
    AuditExport,
    /// A staff member exported their own account data.
    #[strum(serialize = "account.export")]
    AccountExport,
}

impl AccessAction {
    /// Every action, in the list's order.
    pub const ALL: &'static [AccessAction] = <Self as strum::VariantArray>::VARIANTS;

    /// Its name in the log.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// An access to patient data that happened on a device, reported for the
/// audit trail.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReportedAccess {
    /// Its id on the device: reported twice, recorded once.
    pub id: String,
    /// What was done: an [`AccessAction`]'s name.
    pub action: String,
    /// When, on the device (ms since the Unix epoch).
    pub at: i64,
    /// `success` or `failure`.
    pub outcome: String,
    /// The patient's pseudonym (a keyed hash the server cannot reverse).
    pub patient: Option<String>,
    /// Ids and counts, never content.
    pub detail: Option<String>,
}

/// `POST /audit/events`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReportAccesses {
    /// At most 500.
    pub events: Vec<ReportedAccess>,
}

/// Which patients a device or user accessed in a time window (one entry per
/// patient pseudonym): what a data breach report needs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BreachEntry {
    /// The patient's pseudonym.
    pub patient: String,
    /// How many access events.
    pub events: u64,
    /// The first access (ms).
    pub first: i64,
    /// The last access (ms).
    pub last: i64,
    /// The actions, comma-separated.
    pub actions: String,
}

/// The practice's rules for chat content, set by its manager.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PracticeSettings {
    /// How long chat history is kept, in days (the record in the HIS is the
    /// long-term copy).
    pub retention_days: u32,
    /// Disappearing messages: `allowed`, `forbidden` or `enforced`.
    pub ttl_policy: String,
    /// With `enforced`: the time-to-live every message gets at most (s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_secs: Option<u64>,
    /// How many of each conversation's newest messages a user's new device
    /// gets from their other devices (0: none).
    #[serde(default = "PracticeSettings::default_history")]
    pub history_messages: u32,
    /// How many devices (not revoked) one user may have; a login beyond it
    /// is refused (`device_limit`). Absent in a change: left as it is (apps
    /// that do not know it change nothing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub devices_per_user: Option<u32>,
    /// How many days with activity a device may go without updating its
    /// own MLS leaf in a conversation (1 to 90; 7 unless set). Absent in a
    /// change: left as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_update_days: Option<u32>,
}

impl PracticeSettings {
    fn default_history() -> u32 {
        50
    }
}

/// `POST /patients/erase`: remove what the server keeps of conversations
/// about a patient (ciphertext), on the patient's request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EraseRequest {
    /// The patient's pseudonym.
    pub patient: String,
    /// Conversations about the patient that the device knows of.
    pub conversations: Vec<String>,
    /// The id of the device's own audit record of this erasure: the server
    /// records the erasure under it, so the device's later report of it is
    /// the same record, not a second one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_event: Option<String>,
}

/// What the server removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Erased {
    /// Conversations whose envelopes and blobs were removed.
    pub conversations: u64,
    /// Envelopes removed.
    pub envelopes: u64,
    /// Blobs removed.
    pub blobs: u64,
}

/// A CSV document (RFC 4180: a field with a comma, quote or line break is
/// quoted, quotes doubled; CRLF line ends), as the audit exports of the
/// server and the devices and the consent worklist write it.
pub fn csv_document<R, C>(header: &[&str], rows: R) -> String
where
    R: IntoIterator<Item = C>,
    C: IntoIterator,
    C::Item: AsRef<str>,
{
    // Into memory and with rows of any length, writing cannot fail; text
    // in, so the document is UTF-8 too.
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .flexible(true)
        .from_writer(Vec::new());
    let _ = writer.write_record(header);
    for row in rows {
        let fields: Vec<C::Item> = row.into_iter().collect();
        let _ = writer.write_record(fields.iter().map(|f| f.as_ref().as_bytes()));
    }
    let bytes = writer.into_inner().unwrap_or_default();
    String::from_utf8(bytes).unwrap_or_default()
}

/// The audit log as CSV, the same columns from the server's export and a
/// device's: times in RFC 3339 (UTC), the server's and the device's; the
/// patient's reference where the exporting device knows the pseudonym.
pub fn audit_csv<'a>(rows: impl IntoIterator<Item = (&'a AuditEvent, Option<&'a str>)>) -> String {
    let time = |ms: i64| {
        jiff::Timestamp::from_millisecond(ms).map_or_else(|_| ms.to_string(), |t| t.to_string())
    };
    csv_document(
        &[
            "id",
            "recorded",
            "occurred",
            "practice",
            "user",
            "role",
            "on_behalf_of",
            "device",
            "action",
            "outcome",
            "patient",
            "pseudonym",
            "source",
            "detail",
        ],
        rows.into_iter().map(|(e, patient)| {
            [
                e.id.to_string(),
                time(e.at),
                time(e.reported_at.unwrap_or(e.at)),
                e.practice_id.clone(),
                e.user_id.clone().unwrap_or_default(),
                e.role.clone().unwrap_or_default(),
                e.on_behalf_of.clone().unwrap_or_default(),
                e.device_id.clone().unwrap_or_default(),
                e.action.clone(),
                e.outcome.clone(),
                patient.unwrap_or_default().to_owned(),
                e.patient.clone().unwrap_or_default(),
                e.source.clone().unwrap_or_default(),
                e.detail.clone().unwrap_or_default(),
            ]
        }),
    )
}

/// The head of a practice's audit chain (its last place and that record's
/// hash), signed by the practice's authority. A manager's device sends it
/// into the practice group every hour, so every device holds anchors the
/// log must go on extending.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditHead {
    /// The practice.
    pub practice_id: String,
    /// The last place in the chain (0: empty).
    pub seq: u64,
    /// That record's hash (hex).
    pub hash: String,
    /// When the server signed it (ms since the Unix epoch).
    pub at: i64,
    /// The authority's Ed25519 signature over [`AuditHead::signed_bytes`].
    pub signature: Bytes,
}

impl AuditHead {
    /// What the signature covers (domain-separated from certificates).
    pub fn signed_bytes(practice: &str, seq: u64, hash: &str, at: i64) -> Vec<u8> {
        format!("pieper audit head v1\n{practice}\n{seq}\n{hash}\n{at}").into_bytes()
    }
}

/// One record of the audit chain with everything its hash covers, so that
/// a device can recompute it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChainRecord {
    /// Its place in the practice's chain.
    pub chain_seq: i64,
    /// The hash of the record before it.
    pub prev_hash: String,
    /// Its own hash, as stored.
    pub hash: String,
    /// When the server recorded it.
    pub at: i64,
    /// The practice.
    pub practice_id: String,
    /// Who.
    pub user_id: Option<String>,
    /// In which role.
    pub role: Option<String>,
    /// From which device.
    pub device_id: Option<String>,
    /// What.
    pub action: String,
    /// How it ended.
    pub outcome: String,
    /// The patient's pseudonym.
    pub patient: Option<String>,
    /// The source address.
    pub source: Option<String>,
    /// Ids and counts.
    pub detail: Option<String>,
    /// A device-reported event's id on that device.
    pub client_event: Option<String>,
    /// The device's time, for a device-reported event.
    pub reported_at: Option<i64>,
    /// On whose behalf.
    pub on_behalf_of: Option<String>,
}

impl ChainRecord {
    /// The hash over its place, the hash before it and every field.
    pub fn computed_hash(&self) -> String {
        ChainedFields {
            chain_seq: self.chain_seq,
            prev_hash: &self.prev_hash,
            at: self.at,
            practice_id: &self.practice_id,
            user_id: self.user_id.as_deref(),
            role: self.role.as_deref(),
            device_id: self.device_id.as_deref(),
            action: &self.action,
            outcome: &self.outcome,
            patient: self.patient.as_deref(),
            source: self.source.as_deref(),
            detail: self.detail.as_deref(),
            client_event: self.client_event.as_deref(),
            reported_at: self.reported_at,
            on_behalf_of: self.on_behalf_of.as_deref(),
        }
        .hash()
    }
}

/// What an audit record's hash covers, in this order: every stored field
/// but the hash (SHA-256 over its JSON). The server and the devices hash
/// with this one definition.
#[derive(Serialize)]
pub struct ChainedFields<'a> {
    /// Its place.
    pub chain_seq: i64,
    /// The hash before it.
    pub prev_hash: &'a str,
    /// The server's time.
    pub at: i64,
    /// The practice.
    pub practice_id: &'a str,
    /// Who.
    pub user_id: Option<&'a str>,
    /// In which role.
    pub role: Option<&'a str>,
    /// From which device.
    pub device_id: Option<&'a str>,
    /// What.
    pub action: &'a str,
    /// How it ended.
    pub outcome: &'a str,
    /// The patient's pseudonym.
    pub patient: Option<&'a str>,
    /// The source address.
    pub source: Option<&'a str>,
    /// Ids and counts.
    pub detail: Option<&'a str>,
    /// A device-reported event's id.
    pub client_event: Option<&'a str>,
    /// Absent from records made before it existed: their hashes still hold.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reported_at: Option<i64>,
    /// Absent from records made before it existed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_behalf_of: Option<&'a str>,
}

impl ChainedFields<'_> {
    /// SHA-256 over the fields' JSON, hex.
    pub fn hash(&self) -> String {
        // Serializing borrowed strings and numbers cannot fail.
        let json = serde_json::to_vec(self).unwrap_or_default();
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(json))
    }
}

/// One access event (NEN 7513 fields).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEvent {
    /// Its id, increasing.
    pub id: u64,
    /// When the server recorded it (ms since the Unix epoch).
    pub at: i64,
    /// For an access a device reported: when the device says it happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reported_at: Option<i64>,
    /// The practice.
    pub practice_id: String,
    /// Who (absent for a failed login of an unknown user).
    pub user_id: Option<String>,
    /// In which role.
    pub role: Option<String>,
    /// On whose behalf: the huisarts (user id) the user works for, or
    /// `practice:<id>` for the practice's connector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_behalf_of: Option<String>,
    /// From which device.
    pub device_id: Option<String>,
    /// What was done (`login`, `message.send`, `attachment.fetch`, ...).
    pub action: String,
    /// `success` or `failure`.
    pub outcome: String,
    /// The patient, as the pseudonym the practice's devices computed.
    pub patient: Option<String>,
    /// The source address.
    pub source: Option<String>,
    /// Extra facts without content (ids, counts).
    pub detail: Option<String>,
}

/// An error body (RFC 9457 problem details) with a stable `code`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Problem {
    /// A URI naming the problem type.
    #[serde(rename = "type")]
    pub type_uri: String,
    /// A short summary.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// The stable, machine-readable code (see [`codes`]).
    pub code: String,
    /// What happened, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// For `stale_epoch`: the conversation's current epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_epoch: Option<u64>,
    /// For `throttled`: seconds until a retry may succeed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

/// The stable error codes of [`Problem::code`].
pub mod codes {
    /// Missing or unknown credentials or token.
    pub const UNAUTHORIZED: &str = "unauthorized";
    /// The TOTP code is wrong.
    pub const TOTP_INVALID: &str = "totp_invalid";
    /// The TOTP code was already used.
    pub const TOTP_REUSED: &str = "totp_reused";
    /// The device was revoked: sign out.
    pub const DEVICE_REVOKED: &str = "device_revoked";
    /// Allowed for others, not for this caller.
    pub const FORBIDDEN: &str = "forbidden";
    /// No such thing (or not visible to the caller).
    pub const NOT_FOUND: &str = "not_found";
    /// A commit for an epoch the conversation has left: fetch, re-apply, retry.
    pub const STALE_EPOCH: &str = "stale_epoch";
    /// The request is malformed.
    pub const INVALID: &str = "invalid";
    /// The body is larger than allowed.
    pub const TOO_LARGE: &str = "too_large";
    /// Too many failures: wait `retry_after` seconds.
    pub const THROTTLED: &str = "throttled";
    /// It exists already.
    pub const CONFLICT: &str = "conflict";
    /// A fault on the server.
    pub const INTERNAL: &str = "internal";
    /// Reading the audit log needs a fresh second factor (`POST /audit/unlock`).
    pub const AUDIT_LOCKED: &str = "audit_locked";
    /// The practice's attachment storage is full.
    pub const QUOTA_FULL: &str = "quota_full";
    /// The user has as many devices as the practice allows: revoke one first.
    pub const DEVICE_LIMIT: &str = "device_limit";
    /// A well-known group id that belongs to another practice or user.
    pub const NOT_YOURS: &str = "not_yours";
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.code, self.status)?;
        if let Some(detail) = &self.detail {
            write!(f, ": {detail}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problem {}
