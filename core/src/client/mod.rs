//! [`Client`]: a signed-in device talking to the server. Offline first:
//! everything is written to the encrypted store before it is sent, the outbox
//! drains in order and exactly once (the server dedupes client ids), and
//! catch-up follows the server's log by cursor. The WebSocket only says
//! "there is more": what arrives is always fetched by cursor, so order and
//! gaps never depend on the live channel.

pub(crate) mod api;
pub(crate) mod events;
pub(crate) mod live;

use std::{
    collections::HashSet,
    path::{Path, PathBuf},
    sync::Arc,
};

pub use events::{ConnectionState, Event};
pub use live::LiveHandle;
use pieper_wire::{EnvelopeKind, LoginRequest, SendRequest, UploadKeyPackages};
use tokio::sync::{Mutex, broadcast};

use self::api::Api;
use crate::devices::vouching::CommitApprovals;
use crate::{
    conversations::messaging::Arrived,
    device::{Device, Enrolment, OutgoingKind, Received},
    error::{Error, Result},
    identity::MemberId,
    keystore::KeyStore,
    model::{ConversationKind, MessageState, Priority},
    store::queries::{self, Session},
};

tokio::task_local! {
    /// Set while the live channel works on its own (syncing on a poke,
    /// housekeeping, membership checks): such calls pass the gate without
    /// counting as the user's activity for the idle lock.
    pub(crate) static BACKGROUND: ();
}

/// One-time KeyPackages uploaded at sign-in.
pub(crate) const KEY_PACKAGES_AT_LOGIN: usize = 20;
/// Below this many one-time KeyPackages on the server, a device uploads more.
pub(crate) const KEY_PACKAGES_LOW: usize = 5;
/// Envelopes fetched per sync page.
const SYNC_PAGE: u32 = 500;
/// How often a membership change is made again after losing its epoch.
pub(crate) const COMMIT_ATTEMPTS: usize = 5;

/// Credentials for signing in.
#[derive(Clone)]
pub struct Credentials {
    /// The practice's id.
    pub practice: String,
    /// The user name.
    pub username: String,
    /// The password.
    pub password: String,
    /// The current TOTP code.
    pub totp: String,
    /// A name for this device.
    pub device_name: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("practice", &self.practice)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// What one sync applied.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Envelopes applied.
    pub applied: usize,
    /// Envelopes that could not be applied (reported and skipped).
    pub skipped: usize,
}

/// A signed-in device.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) device: Arc<Device>,
    pub(crate) keystore: Arc<dyn KeyStore>,
    pub(crate) lock: std::sync::Mutex<crate::lifecycle::lock::LockState>,
    pub(crate) api: Api,
    pub(crate) events: broadcast::Sender<Event>,
    pub(crate) sync_lock: Mutex<()>,
    pub(crate) flush_lock: Mutex<()>,
    pub(crate) known_devices: std::sync::Mutex<HashSet<String>>,
}

/// Runs blocking store work off the async executor.
async fn blocking<T: Send + 'static>(
    device: &Arc<Device>,
    f: impl FnOnce(&Device) -> Result<T> + Send + 'static,
) -> Result<T> {
    let device = Arc::clone(device);
    tokio::task::spawn_blocking(move || f(&device))
        .await
        .map_err(|e| Error::internal("store task", e))?
}

impl Client {
    /// Signs in with password and TOTP, enrols this device and creates its
    /// encrypted store in `dir`.
    pub async fn login(
        server: &str,
        dir: impl AsRef<Path>,
        keystore: Arc<dyn KeyStore>,
        credentials: Credentials,
    ) -> Result<Client> {
        let api = Api::new(server)?;
        let enrolment = Enrolment::new()?;
        let login = api
            .login(&LoginRequest {
                signature_key: Some(enrolment.signature_key().into()),
                practice: credentials.practice.clone(),
                username: credentials.username.clone(),
                password: credentials.password.clone(),
                totp: credentials.totp.clone(),
                device_name: credentials.device_name.clone(),
            })
            .await?;
        Self::signed_in(api, enrolment, login, dir.as_ref(), keystore).await
    }

    /// Sets up this device once the server signed it in (a login, an
    /// enrolment code): checks its certificate names the account, creates
    /// the store, publishes KeyPackages.
    pub(crate) async fn signed_in(
        api: Api,
        enrolment: Enrolment,
        login: pieper_wire::LoginResponse,
        dir: &Path,
        keystore: Arc<dyn KeyStore>,
    ) -> Result<Client> {
        let id = MemberId::new(&login.practice, &login.user_id, &login.device_id)?;
        let (Some(certificate), Some(authority)) = (login.certificate, login.authority) else {
            return Err(Error::Untrusted {
                reason: "the server issued no certificate for this device".into(),
            });
        };
        // The certificate must name the account the server signed in.
        if MemberId::from_credential_bytes(&certificate.0)? != id {
            return Err(Error::Untrusted {
                reason: "the certificate names another account".into(),
            });
        }
        let dir: PathBuf = dir.to_owned();
        let session = Session {
            server_url: api.base().to_owned(),
            token: login.device_token.clone(),
            role: login.role.as_str().to_owned(),
            cursor: 0,
            signed_out: false,
        };
        let kept = Arc::clone(&keystore);
        let device = tokio::task::spawn_blocking(move || {
            Device::create_signed_in(
                &dir,
                keystore.as_ref(),
                crate::device::Enrolled {
                    enrolment,
                    certificate: &certificate.0,
                    authority: &authority.0,
                    session: Some(&session),
                },
            )
        })
        .await
        .map_err(|e| Error::internal("store task", e))??;
        let client = Client::assemble(Arc::new(device), kept, api.with_token(login.device_token));
        client.publish_first_key_packages().await?;
        Ok(client)
    }

    /// Publishes the KeyPackages a new device starts with, unless it did
    /// already: a device that stopped between its creation and this step
    /// (a crash, the network) does it at its next sync.
    pub(crate) async fn publish_first_key_packages(&self) -> Result<()> {
        if self.store(|d| d.key_packages_published()).await? {
            return Ok(());
        }
        self.devices()
            .publish_key_packages(KEY_PACKAGES_AT_LOGIN)
            .await?;
        // They are this device's first: nothing older stands on the server.
        self.store(|d| {
            d.store.write(|tx| {
                queries::set_key_packages_published(tx, true)?;
                queries::set_key_packages_rotated_at(tx, queries::now_ms())
            })
        })
        .await
    }

    /// Opens the device in `dir` that signed in before.
    pub async fn open(dir: impl AsRef<Path>, keystore: Arc<dyn KeyStore>) -> Result<Client> {
        let dir: PathBuf = dir.as_ref().to_owned();
        let kept = Arc::clone(&keystore);
        let device = tokio::task::spawn_blocking(move || Device::open(&dir, keystore.as_ref()))
            .await
            .map_err(|e| Error::internal("store task", e))??;
        let session = device.session()?.ok_or(Error::SignedOut)?;
        if session.signed_out {
            return Err(Error::SignedOut);
        }
        let api = Api::new(&session.server_url)?.with_token(session.token);
        Ok(Client::assemble(Arc::new(device), kept, api))
    }

    pub(crate) fn assemble(device: Arc<Device>, keystore: Arc<dyn KeyStore>, api: Api) -> Client {
        let (events, _) = broadcast::channel(1024);
        Client {
            inner: Arc::new(Inner {
                device,
                keystore,
                lock: std::sync::Mutex::new(crate::lifecycle::lock::LockState::default()),
                api,
                events,
                sync_lock: Mutex::new(()),
                flush_lock: Mutex::new(()),
                known_devices: std::sync::Mutex::new(HashSet::new()),
            }),
        }
    }

    /// The in-transaction engine behind this client, ungated: for the
    /// core's own tests and benchmarks only.
    #[cfg(feature = "testing")]
    pub fn device(&self) -> &Device {
        &self.inner.device
    }

    /// Who this device is.
    pub fn id(&self) -> &MemberId {
        self.inner.device.id()
    }

    /// The opening screen: unread spoed, unread urgent, my open tasks, what
    /// I still have to document, then conversations with unread messages.
    pub fn dashboard(&self) -> Result<crate::device::Dashboard> {
        self.read_audited(
            |d| d.dashboard(),
            |d, shown| {
                let messages: Vec<_> = (shown.spoed.iter())
                    .chain(&shown.urgent)
                    .chain(&shown.to_document)
                    .cloned()
                    .collect();
                let mut accesses =
                    crate::record::client::messages_shown(d, &messages, "dashboard")?;
                accesses.extend(crate::tasks::client::viewed(&shown.tasks));
                Ok(accesses)
            },
        )
    }

    /// How often this device refused what members' devices sent, by kind
    /// (`untrusted_member`, `role`, ...).
    pub fn refusals(&self) -> Result<Vec<crate::error::RefusalCount>> {
        self.read(|d| d.store.read(queries::refusals))
    }

    /// Sends `json` as the content of an application message, as a broken
    /// or hostile member's app could: for the tests that prove every device
    /// refuses what the normal API would never send.
    #[cfg(feature = "testing")]
    pub async fn send_raw_content(&self, conversation: &str, json: &str) -> Result<()> {
        let (conversation, bytes) = (conversation.to_owned(), json.as_bytes().to_vec());
        self.store(move |d| d.send_raw(&conversation, &bytes))
            .await?;
        self.flush_outbox().await
    }

    /// Commits adding devices by their KeyPackages without judging them, as
    /// a hostile member's changed app could: for the tests that prove every
    /// other member refuses the commit.
    #[cfg(feature = "testing")]
    pub async fn add_key_packages_unjudged(
        &self,
        conversation: &str,
        key_packages: Vec<Vec<u8>>,
        approvals: Vec<(String, pieper_wire::Approval)>,
    ) -> Result<()> {
        let conversation = conversation.to_owned();
        self.store(move |d| d.add_members_unjudged(&conversation, &key_packages, approvals))
            .await?;
        self.flush_outbox().await
    }

    /// Subscribes to what happens from now on.
    pub fn events(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    pub(crate) fn emit(&self, event: Event) {
        // Nobody listening is fine.
        let _ = self.inner.events.send(event);
    }

    /// The gate every call passes: a wiped device answers [`Error::Wiped`],
    /// a locked one [`Error::Locked`]; any other call counts as activity for
    /// the idle lock.
    pub(crate) fn gate(&self) -> Result<()> {
        if self.inner.device.is_wiped() {
            return Err(Error::Wiped);
        }
        if self.inner.device.is_locked() {
            return Err(Error::Locked);
        }
        // Work the live channel does by itself is no sign of a user.
        if BACKGROUND.try_with(|_| ()).is_err() {
            self.touch();
        }
        Ok(())
    }

    /// Reads the store on the caller's thread, through the gate (what the
    /// app shows: conversations, messages, search, tasks, consent).
    pub(crate) fn read<T>(&self, f: impl FnOnce(&Device) -> Result<T>) -> Result<T> {
        self.gate()?;
        f(&self.inner.device)
    }

    /// Runs store work off the async executor, through the gate.
    pub(crate) async fn store<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Device) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.gate()?;
        blocking(&self.inner.device, f).await
    }

    /// Remembers that the session ended, tells the app, and returns the error.
    pub(crate) async fn signed_out<T>(&self) -> Result<T> {
        let _ = self.store(|d| d.set_signed_out()).await;
        self.emit(Event::Connection(ConnectionState::SignedOut));
        Err(Error::SignedOut)
    }

    /// Runs a server call; a revoked session is recorded on the way, and a
    /// revoked device wipes itself.
    pub(crate) async fn server<T>(&self, result: Result<T>) -> Result<T> {
        match result {
            Err(Error::SignedOut) => self.signed_out().await,
            Err(Error::Revoked) => self.wiped().await,
            other => other,
        }
    }

    /// This device was revoked: it wipes its store and keys and tells the
    /// app it is signed out.
    pub(crate) async fn wiped<T>(&self) -> Result<T> {
        if let Err(e) = self.inner.device.wipe() {
            tracing::warn!(error = %e, "wiping the revoked device failed");
        }
        self.emit(Event::Connection(ConnectionState::SignedOut));
        Err(Error::Revoked)
    }

    /// Uploads `count` one-time KeyPackages, with a fresh last-resort one if
    /// asked; `replace` drops the unclaimed ones the server holds.
    pub(crate) async fn upload_key_packages(
        &self,
        count: usize,
        last_resort: bool,
        replace: bool,
    ) -> Result<()> {
        let (packages, last_resort) = self
            .store(move |d| {
                let last_resort = if last_resort {
                    Some(d.last_resort_key_package()?)
                } else {
                    None
                };
                Ok((d.key_packages(count)?, last_resort))
            })
            .await?;
        let rotated = replace && last_resort.is_some();
        let upload = UploadKeyPackages {
            key_packages: packages.into_iter().map(Into::into).collect(),
            last_resort: last_resort.map(Into::into),
            replace,
        };
        let result = self.api()?.upload_key_packages(&upload).await;
        self.server(result).await?;
        if rotated {
            // Everything the server holds for this device is new now.
            self.store(|d| {
                d.store
                    .write(|tx| queries::set_key_packages_rotated_at(tx, queries::now_ms()))
            })
            .await?;
        }
        Ok(())
    }

    /// The practice's staff.
    pub async fn colleagues(&self) -> Result<Vec<pieper_wire::UserInfo>> {
        let result = self.api()?.users().await;
        self.server(result).await
    }

    /// Adds the devices of `users` missing from the conversation; with
    /// `top_up`, the server claims KeyPackages only for those and skips
    /// users without devices. Returns whether any device was added.
    pub(crate) async fn add_devices(
        &self,
        conversation: &str,
        users: &[String],
        top_up: bool,
    ) -> Result<bool> {
        let added = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (conversation, users) = (conversation.to_owned(), users.to_vec());
        let flag = Arc::clone(&added);
        let resets = Arc::new(std::sync::Mutex::new(Vec::new()));
        let found = Arc::clone(&resets);
        self.change_members(move |client| {
            let (conversation, users) = (conversation.clone(), users.clone());
            let flag = Arc::clone(&flag);
            let found_resets = Arc::clone(&found);
            async move {
                let missing_from = top_up.then(|| conversation.clone());
                let claimed = client
                    .server(client.api()?.claim(users, missing_from).await)
                    .await?;
                let conv = conversation.clone();
                let members: HashSet<String> = client
                    .store(move |d| d.members(&conv))
                    .await?
                    .into_iter()
                    .map(|m| m.id.device)
                    .collect();
                let wanted: Vec<_> = claimed
                    .key_packages
                    .into_iter()
                    .filter(|kp| {
                        kp.device_id != client.id().device && !members.contains(&kp.device_id)
                    })
                    .collect();
                // A KeyPackage's certificate must name the user and device
                // the server claimed it for; one that does not is left out.
                // Its approval goes with it, for every member to check.
                let (packages, approvals) = client
                    .store(move |d| {
                        let mut packages = Vec::new();
                        let mut approvals = CommitApprovals::default();
                        for kp in wanted {
                            match d.check_claimed(&kp) {
                                Ok(true) => {
                                    if let Some(approval) = kp.approval {
                                        approvals.approvals.push((kp.device_id, approval));
                                    }
                                    packages.push(kp.key_package.0);
                                }
                                Ok(false) => {
                                    tracing::info!(device = %kp.device_id, "device not vouched for yet");
                                }
                                Err(e @ Error::Storage(_)) => return Err(e),
                                Err(e) => {
                                    tracing::warn!(device = %kp.device_id, error = %e, "KeyPackage refused");
                                    d.store.write(|tx| {
                                        queries::count_refusal(tx, crate::error::UNTRUSTED_MEMBER)
                                    })?;
                                }
                            }
                        }
                        Ok((packages, approvals))
                    })
                    .await?;
                if packages.is_empty() {
                    return Ok(false);
                }
                let out = client
                    .store(move |d| d.add_approved_members(&conversation, &packages, approvals))
                    .await?;
                // Told once the commit is in, as every member is.
                if let Ok(mut r) = found_resets.lock() {
                    *r = out.resets;
                }
                flag.store(true, std::sync::atomic::Ordering::Relaxed);
                Ok(true)
            }
        })
        .await?;
        for (user, by) in resets
            .lock()
            .map(|mut r| std::mem::take(&mut *r))
            .unwrap_or_default()
        {
            self.emit(Event::IdentityReset { user, by });
        }
        Ok(added.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Makes a membership change (`change` queues a commit, or says there
    /// is nothing to do) and hands it to the server. When another member's
    /// commit won the epoch, the refused one is dropped, the conversation
    /// caught up, and the change made again.
    pub(crate) async fn change_members<F, Fut>(&self, mut change: F) -> Result<()>
    where
        F: FnMut(Client) -> Fut,
        Fut: std::future::Future<Output = Result<bool>>,
    {
        for _ in 0..COMMIT_ATTEMPTS {
            if !change(self.clone()).await? {
                return Ok(());
            }
            match self.flush_outbox().await {
                Err(Error::StaleEpoch { .. }) => {
                    self.catch_up().await?;
                }
                other => return other,
            }
        }
        Err(Error::StaleEpoch {
            message: 0,
            current: 0,
        })
    }

    /// Hands the outbox to the server; offline, it simply waits there.
    /// A commit that lost its epoch is dropped there; whoever made it makes
    /// it again.
    pub(crate) async fn flush_quietly(&self) -> Result<()> {
        match self.flush_outbox().await {
            Ok(()) | Err(Error::Network(_) | Error::StaleEpoch { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Hands the outbox to the server, oldest first, stopping at the first
    /// envelope the server cannot take now.
    pub async fn flush_outbox(&self) -> Result<()> {
        let _flushing = self.inner.flush_lock.lock().await;
        loop {
            let Some(next) = self.store(|d| d.next_outgoing()).await? else {
                return Ok(());
            };
            // How it goes was decided when it was queued; only a pseudonym
            // that was not known then is looked up now.
            let delivery = &next.delivery;
            let patient = if delivery.patient_pending {
                let conv = next.conversation.clone();
                self.store(move |d| d.patient_pseudonym(&conv)).await?
            } else {
                delivery.patient.clone()
            };
            let request = SendRequest {
                id: next.id.clone(),
                kind: match next.kind {
                    OutgoingKind::Application => EnvelopeKind::Application,
                    OutgoingKind::Commit => EnvelopeKind::Commit,
                },
                epoch: next.epoch,
                payload: next.payload.clone().into(),
                welcome: next.welcome.clone().map(Into::into),
                add_devices: next.add_devices.clone(),
                remove_devices: next.remove_devices.clone(),
                patient,
                priority: match delivery.priority {
                    Some(Priority::Urgent) => pieper_wire::Priority::Urgent,
                    _ => pieper_wire::Priority::Routine,
                },
                silent: delivery.priority.is_none(),
                urgent_for: delivery.urgent_for.clone().into_iter().collect(),
                expires_at: delivery.expires_at,
            };
            let conversation = next.conversation.clone();
            let result = self.api()?.send(&conversation, &request).await;
            match (next.kind, result) {
                (OutgoingKind::Commit, Ok(_)) => {
                    let conv = conversation.clone();
                    self.store(move |d| d.commit_accepted(&conv)).await?;
                    let conv = conversation.clone();
                    let updated = self.store(move |d| d.conversation(&conv)).await?;
                    self.emit(Event::ConversationChanged(updated));
                }
                (OutgoingKind::Application, Ok(stored)) => {
                    let id = next.id.clone();
                    self.store(move |d| d.sent(&id, Some(stored.seq))).await?;
                    self.emit(Event::MessageStateChanged {
                        id: next.id,
                        state: MessageState::Sent,
                    });
                }
                (OutgoingKind::Commit, Err(e @ Error::StaleEpoch { .. })) => {
                    let conv = conversation.clone();
                    self.store(move |d| d.commit_refused(&conv)).await?;
                    return Err(e);
                }
                (_, Err(Error::SignedOut)) => return self.signed_out().await,
                (_, Err(Error::Revoked)) => return self.wiped().await,
                (kind, Err(Error::Rejected { code, .. })) => {
                    // Refused for good (not a member any more, invalid): it
                    // must not block what follows.
                    let (id, conv) = (next.id.clone(), conversation.clone());
                    if kind == OutgoingKind::Commit {
                        self.store(move |d| d.commit_refused(&conv)).await?;
                    } else {
                        self.store(move |d| d.discard_outgoing(&id)).await?;
                    }
                    self.emit(Event::SendFailed { id: next.id, code });
                }
                (_, Err(e)) => return Err(e),
            }
        }
    }

    /// Fetches and applies everything after this device's cursor, in server
    /// order; sends what waits in the outbox; then updates this device's
    /// keys where that is due ([`crate::keys`]).
    pub async fn sync(&self) -> Result<SyncReport> {
        let report = self.catch_up().await?;
        match self.keys().renew_certificate_if_due().await {
            Ok(_) => {}
            // Tried again at the next sync, while the old one is valid.
            Err(e @ (Error::Network(_) | Error::Rejected { .. } | Error::Untrusted { .. })) => {
                tracing::warn!(error = %e, "certificate renewal failed");
            }
            Err(e) => return Err(e),
        }
        match self.keys().rotate_key_packages_if_due().await {
            Ok(_) | Err(Error::Network(_)) => {}
            Err(e) => return Err(e),
        }
        match self.keys().update_due().await {
            Ok(_) | Err(Error::Network(_)) => Ok(report),
            Err(e) => Err(e),
        }
    }

    /// [`Client::sync`] without the key updates: what a commit that lost
    /// its epoch needs before it is made again.
    pub(crate) async fn catch_up(&self) -> Result<SyncReport> {
        self.publish_first_key_packages().await?;
        let _syncing = self.inner.sync_lock.lock().await;
        let mut report = SyncReport::default();
        // Conversations this device fell behind in (messages of an epoch it
        // never reached): it asks to be added again.
        let mut behind: std::collections::HashMap<String, u32> = Default::default();
        // Each Welcome used up one of this device's KeyPackages.
        let mut joined = 0;
        loop {
            let Some((page, results)) = self.apply_next_page().await? else {
                break;
            };
            let next = page.next;
            for (envelope, result) in page.envelopes.iter().zip(results) {
                match result {
                    Ok(received) => {
                        report.applied += 1;
                        if let Received::Joined(c) = &received {
                            behind.remove(&c.id);
                            joined += 1;
                        }
                        self.announce(received);
                    }
                    Err(e) => {
                        if let Error::StaleEpoch { message, current } = &e
                            && message > current
                        {
                            *behind.entry(envelope.conversation.clone()).or_default() += 1;
                        }
                        report.skipped += 1;
                        tracing::warn!(position = envelope.position, error = %e, "envelope skipped");
                        if let Some(kind) = e.refusal_kind() {
                            self.store(move |d| {
                                d.store.write(|tx| queries::count_refusal(tx, kind))
                            })
                            .await?;
                            self.emit(Event::Refused {
                                position: envelope.position,
                                conversation: envelope.conversation.clone(),
                                sender_device: envelope.sender_device.clone(),
                                kind: kind.to_owned(),
                                reason: e.to_string(),
                            });
                        } else {
                            self.emit(Event::Undecryptable {
                                position: envelope.position,
                                conversation: envelope.conversation.clone(),
                                reason: e.to_string(),
                            });
                        }
                    }
                }
            }
            // Best effort: the server keeps what is not acknowledged.
            if let Ok(api) = self.api() {
                let _ = api.ack(next).await;
            }
            if !page.more {
                break;
            }
        }
        drop(_syncing);
        if !behind.is_empty() {
            // An old copy of this store came back: whoever else holds a
            // copy holds these leaf keys too. Every conversation updates.
            self.store(|d| d.leaf_updates_due_now()).await?;
            // Behind means this store is older than the device's last
            // uploads (restored from a copy): the KeyPackages the server
            // holds may be ones it has no keys for. Fresh ones replace them,
            // so the member that adds it again uses one it can open.
            match self
                .upload_key_packages(KEY_PACKAGES_AT_LOGIN, true, true)
                .await
            {
                Ok(()) | Err(Error::Network(_)) => {}
                Err(e) => return Err(e),
            }
        } else if joined > 0 {
            match self.devices().top_up_key_packages().await {
                Ok(_) | Err(Error::Network(_)) => {}
                Err(e) => return Err(e),
            }
        }
        for (conversation, undecryptable) in behind {
            tracing::info!(%conversation, undecryptable, "behind in a conversation: asking to be added again");
            let conv = conversation.clone();
            self.store(move |d| d.forget_stale_group(&conv)).await?;
            match self.api()?.heal(&conversation, undecryptable).await {
                Ok(()) | Err(Error::Network(_) | Error::Rejected { .. }) => {}
                Err(e) => return self.server(Err(e)).await,
            }
        }
        // Caught up: accesses are reported now (a practice key that another
        // device shared first has arrived by now), the practice's rules
        // refreshed, and what expired removed.
        match self.report_accesses().await {
            Ok(_) | Err(Error::Network(_)) => {}
            Err(e) => return Err(e),
        }
        self.privacy().refresh_rules().await?;
        self.privacy().housekeeping().await?;
        // Practice data recorded while this device could not share it (not
        // yet in the practice group, or offline) goes out now, and so does a
        // push token the server did not get.
        self.store(|d| d.share_practice_data()).await?;
        self.store(|d| d.share_notes()).await?;
        self.store(|d| d.share_recovery_key()).await?;
        self.store(|d| d.share_receipts()).await?;
        self.anchor_if_due().await;
        match self.register_pending_push_token().await {
            Ok(()) | Err(Error::Network(_)) => {}
            Err(e) => return Err(e),
        }
        match self.flush_outbox().await {
            Ok(()) | Err(Error::Network(_)) | Err(Error::StaleEpoch { .. }) => Ok(report),
            Err(e) => Err(e),
        }
    }

    /// Fetches the page after this device's cursor and applies it, moving
    /// the cursor in the same transaction; `None` when nothing is left.
    async fn apply_next_page(
        &self,
    ) -> Result<Option<(pieper_wire::SyncResponse, Vec<Result<Received>>)>> {
        let cursor = self
            .store(|d| Ok(d.session()?.map_or(0, |s| s.cursor)))
            .await?;
        let page = self
            .server(self.api()?.sync(cursor, SYNC_PAGE).await)
            .await?;
        if page.envelopes.is_empty() {
            return Ok(None);
        }
        let payloads: Vec<(u64, String, Vec<u8>)> = page
            .envelopes
            .iter()
            .map(|e| (e.seq, e.sender_device.clone(), e.payload.0.clone()))
            .collect();
        let next = page.next;
        let results = self
            .store(move |d| {
                let envelopes: Vec<Arrived<'_>> = payloads
                    .iter()
                    .map(|(seq, sender, bytes)| Arrived {
                        seq: Some(*seq),
                        sender_device: Some(sender),
                        bytes,
                    })
                    .collect();
                d.receive_page(&envelopes, Some(next))
            })
            .await?;
        Ok(Some((page, results)))
    }

    /// Reads what the server holds for this device and applies it, and
    /// nothing else: no acknowledgement, no outbox, no key updates, no
    /// requests. What an attacker with a copy of a device's store (and its
    /// session) can read: for the tests of post-compromise security.
    #[cfg(feature = "testing")]
    pub async fn eavesdrop(&self) -> Result<SyncReport> {
        let mut report = SyncReport::default();
        while let Some((page, results)) = self.apply_next_page().await? {
            for result in results {
                match result {
                    Ok(_) => report.applied += 1,
                    Err(_) => report.skipped += 1,
                }
            }
            if !page.more {
                break;
            }
        }
        Ok(report)
    }

    pub(crate) fn announce(&self, received: Received) {
        match received {
            Received::Message(m) => {
                // A spoed post alerts whom it was routed to (everyone when
                // nobody is on the roster); other urgent messages everyone.
                let mine = m
                    .spoed
                    .as_ref()
                    .and_then(|s| s.routed_to.as_ref())
                    .is_none_or(|user| *user == self.id().user);
                if m.priority == Priority::Urgent && mine {
                    self.emit(Event::UrgentMessage(m.clone()));
                }
                self.emit(Event::MessageReceived(m));
            }
            Received::Joined(c) | Received::ConversationUpdated(c) => {
                if c.kind != ConversationKind::Practice {
                    self.emit(Event::ConversationChanged(c));
                }
            }
            Received::Commit {
                conversation,
                resets,
                ..
            } => {
                for (user, by) in resets {
                    self.emit(Event::IdentityReset { user, by });
                }
                if let Ok(c) = self.inner.device.conversation(&conversation) {
                    self.emit(Event::ConversationChanged(c));
                }
            }
            Received::Removed { conversation } => {
                if let Ok(c) = self.inner.device.conversation(&conversation) {
                    self.emit(Event::ConversationChanged(c));
                }
            }
            Received::TaskChanged(task) => self.emit(Event::TaskChanged(task)),
            Received::Documentation(status) => self.emit(Event::Documentation(status)),
            Received::SpoedTaken { message, by } => {
                self.emit(Event::SpoedTaken { message, by });
            }
            Received::SpoedSettingChanged => self.emit(Event::SpoedSettingChanged),
            Received::Receipts { messages } => {
                if !messages.is_empty() {
                    self.emit(Event::ReceiptsChanged { messages });
                }
            }
            Received::Erased(report) => self.emit(Event::PatientErased(report)),
            Received::History {
                conversation,
                added,
            } => {
                if added > 0 {
                    self.emit(Event::HistoryArrived {
                        conversation,
                        added,
                    });
                }
            }
            Received::PracticeData { new } => {
                if new > 0 {
                    self.emit(Event::PracticeDataChanged);
                }
            }
            Received::Proposal { .. }
            | Received::RecoveryKey { .. }
            | Received::AuditAnchor { .. }
            | Received::Own => {}
        }
    }

    /// Sends this user's devices (the new one among them) the recent
    /// history of `conversations`, as far back as the practice allows,
    /// through the user's personal group (made now if there is none).
    pub(crate) async fn send_history(&self, conversations: Vec<String>) -> Result<()> {
        let per_conversation = self.store(|d| d.practice_rules()).await?.history_messages;
        if per_conversation == 0 {
            return Ok(());
        }
        match self.sync_personal().await {
            Ok(_) | Err(Error::Network(_)) => {}
            Err(e) => return Err(e),
        }
        self.store(move |d| d.share_history(&conversations, per_conversation))
            .await?;
        self.flush_quietly().await
    }

    /// Keeps this device live: a WebSocket that triggers syncs, with
    /// reconnection and back-off. Dropping the handle stops it.
    pub fn start_live(&self) -> LiveHandle {
        live::start(self.clone())
    }

    /// The server, through the gate: a wiped or locked device makes no
    /// server call either.
    pub(crate) fn api(&self) -> Result<&Api> {
        self.gate()?;
        Ok(&self.inner.api)
    }
}
