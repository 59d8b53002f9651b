//! Command line, environment and defaults.

use std::{net::SocketAddr, path::PathBuf};

use clap::{Args, Parser, Subcommand};

/// Pieper's sync server.
///
/// Every setting is a flag or an environment variable (`PIEPER_*`); a file of
/// `PIEPER_*=value` lines named by --config (or PIEPER_CONFIG) supplies the
/// ones neither sets.
#[derive(Debug, Parser)]
#[command(name = "pieper-server", version, about)]
pub struct Cli {
    /// A file of `PIEPER_*=value` lines; flags and the environment win over it.
    #[arg(long, env = "PIEPER_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// What to do; `serve` when left out.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Settings for serving (also used by `admin`, for the database).
    #[command(flatten)]
    pub settings: Settings,
}

/// The server's subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the API (the default).
    Serve,
    /// Manage practices and accounts.
    #[command(subcommand)]
    Admin(AdminCommand),
}

/// A user's account: practice and user name.
#[derive(Debug, Clone, clap::Args)]
pub struct Account {
    /// The practice id.
    #[arg(long)]
    pub practice: String,
    /// The user name.
    #[arg(long)]
    pub username: String,
}

/// Account administration.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create a practice.
    CreatePractice {
        /// Its id (letters, digits, '-', '_', '.').
        #[arg(long)]
        id: String,
        /// Its name.
        #[arg(long)]
        name: String,
    },
    /// Create a user; prints the TOTP secret to enrol in an authenticator app.
    CreateUser {
        /// Whose account.
        #[command(flatten)]
        account: Account,
        /// The name shown to colleagues.
        #[arg(long)]
        display_name: String,
        /// huisarts, poh, assistent, manager or admin.
        #[arg(long)]
        role: String,
        /// The password (at least 12 characters); read from the environment
        /// variable PIEPER_NEW_PASSWORD when left out.
        #[arg(long, env = "PIEPER_NEW_PASSWORD", hide_env_values = true)]
        password: String,
        /// Print the TOTP secret as JSON (for scripts).
        #[arg(long)]
        json: bool,
    },
    /// Set how many days a practice's undelivered messages and blobs are kept.
    SetRetention {
        /// The practice.
        #[arg(long)]
        practice: String,
        /// Days (0 removes everything at the next collection).
        #[arg(long)]
        days: u32,
    },
    /// Remove delivered and expired data now; prints what went, as JSON.
    Collect,
    /// Revoke a lost or stolen device: its token stops working; members'
    /// devices remove it from their conversations at their next check, and
    /// it wipes itself when it comes back.
    RevokeDevice {
        /// The device id.
        #[arg(long)]
        device: String,
    },
    /// Disable a user (a leaver, a suspension): login refused, every device
    /// revoked (members' devices remove them from every group).
    DisableUser {
        /// Whose account.
        #[command(flatten)]
        account: Account,
    },
    /// Change a user's role (huisarts, poh, assistent, manager or
    /// connector); their devices' certificates name it from their next
    /// renewal, which the devices make at their next sync.
    SetRole {
        /// Whose account.
        #[command(flatten)]
        account: Account,
        /// The new role.
        #[arg(long)]
        role: String,
    },
    /// Invite a colleague: prints their one-time enrolment code (valid a
    /// week), with which they set their own password and authenticator.
    InviteUser {
        /// Whose account.
        #[command(flatten)]
        account: Account,
        /// The name shown to colleagues.
        #[arg(long)]
        display_name: String,
        /// huisarts, poh, assistent, manager or connector.
        #[arg(long)]
        role: String,
    },
    /// Reset a user's login (a forgotten password, a lost authenticator):
    /// the old ones stop at once; prints the one-time code for new ones.
    ResetLogin {
        /// Whose account.
        #[command(flatten)]
        account: Account,
    },
    /// Enable a disabled user again: they sign in on a device anew.
    EnableUser {
        /// Whose account.
        #[command(flatten)]
        account: Account,
    },
    /// Check every practice's audit chain (or one's); exits non-zero and
    /// names each changed, removed or reordered record.
    AuditVerify {
        /// Only this practice.
        #[arg(long)]
        practice: Option<String>,
    },
    /// Export a practice's audit log as CSV (this reading is itself logged).
    AuditExport {
        /// The practice.
        #[arg(long)]
        practice: String,
        /// Only this patient (the pseudonym a practice device shows).
        #[arg(long)]
        patient: Option<String>,
        /// Only this user.
        #[arg(long)]
        user: Option<String>,
        /// From (ms since the Unix epoch).
        #[arg(long)]
        from: Option<i64>,
        /// Until (ms since the Unix epoch).
        #[arg(long)]
        to: Option<i64>,
    },
    /// Which patients (pseudonyms) a device or user accessed in a window,
    /// for a data breach report; as JSON.
    Breach {
        /// The practice.
        #[arg(long)]
        practice: String,
        /// The lost or misused device.
        #[arg(long)]
        device: Option<String>,
        /// The misused account.
        #[arg(long)]
        user: Option<String>,
        /// From (ms since the Unix epoch).
        #[arg(long)]
        from: i64,
        /// Until (ms since the Unix epoch).
        #[arg(long)]
        to: i64,
    },
    /// Show, or change, the practice's retention and disappearing-message rules.
    PracticeSettings {
        /// The practice.
        #[arg(long)]
        practice: String,
        /// Days chat history is kept.
        #[arg(long)]
        retention_days: Option<u32>,
        /// allowed, forbidden or enforced.
        #[arg(long)]
        ttl_policy: Option<String>,
        /// With enforced: every message's time-to-live at most (seconds).
        #[arg(long)]
        ttl_secs: Option<u64>,
        /// How many of each conversation's newest messages a new device gets.
        #[arg(long)]
        history_messages: Option<u32>,
        /// How many devices (not revoked) one user may have.
        #[arg(long)]
        devices_per_user: Option<u32>,
        /// Days with activity a device may go without updating its keys in
        /// a conversation.
        #[arg(long)]
        key_update_days: Option<u32>,
    },
}

/// Serving settings; each has a flag and an environment variable.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// Address to listen on.
    #[arg(
        long,
        env = "PIEPER_LISTEN",
        default_value = "127.0.0.1:8443",
        global = true
    )]
    pub listen: SocketAddr,
    /// TLS certificate chain (PEM); serve HTTPS when given with --tls-key.
    #[arg(long, env = "PIEPER_TLS_CERT", global = true, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM) for --tls-cert.
    #[arg(long, env = "PIEPER_TLS_KEY", global = true, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Directory for the embedded SQLite database.
    #[arg(
        long,
        env = "PIEPER_DATA_DIR",
        default_value = "pieper-data",
        global = true
    )]
    pub data_dir: PathBuf,
    /// The key that seals TOTP secrets and authority keys in the database
    /// (32 bytes; made on first start, readable by its owner only). Keep it
    /// apart from database backups; every instance on one PostgreSQL uses
    /// the same file. Default: `secrets.key` in the data directory.
    #[arg(long, env = "PIEPER_SECRETS_KEY_FILE", global = true)]
    pub secrets_key_file: Option<PathBuf>,
    /// A `postgres://` URL; the embedded SQLite database when left out.
    #[arg(
        long,
        env = "PIEPER_DATABASE_URL",
        global = true,
        hide_env_values = true
    )]
    pub database_url: Option<String>,
    /// Largest attachment blob in bytes.
    #[arg(long, env = "PIEPER_MAX_BLOB_BYTES", default_value_t = 25 * 1024 * 1024, global = true)]
    pub max_blob_bytes: usize,
    /// Bytes of attachment blobs one practice may hold at once (what
    /// retention removes makes room again).
    #[arg(long, env = "PIEPER_BLOB_QUOTA_BYTES", default_value_t = 20 * 1024 * 1024 * 1024, global = true)]
    pub blob_quota_bytes: u64,
    /// Largest JSON request body in bytes.
    #[arg(long, env = "PIEPER_MAX_JSON_BYTES", default_value_t = 2 * 1024 * 1024, global = true)]
    pub max_json_bytes: usize,
    /// Failed logins per account before throttling.
    #[arg(
        long,
        env = "PIEPER_LOGIN_FAILURES",
        default_value_t = 5,
        global = true
    )]
    pub login_failures: u32,
    /// Failed logins per source address before throttling (higher: a whole
    /// practice may share one address).
    #[arg(
        long,
        env = "PIEPER_ADDRESS_FAILURES",
        default_value_t = 50,
        global = true
    )]
    pub address_failures: u32,
    /// The throttling window in seconds.
    #[arg(
        long,
        env = "PIEPER_LOGIN_WINDOW_SECS",
        default_value_t = 900,
        global = true
    )]
    pub login_window_secs: u64,
    /// A bearer token for `/metrics`; without one, `/metrics` answers only
    /// on the loopback address (a local scraper).
    #[arg(
        long,
        env = "PIEPER_METRICS_TOKEN",
        hide_env_values = true,
        global = true
    )]
    pub metrics_token: Option<String>,
    /// Seconds a client has to send a request's headers before its
    /// connection is dropped.
    #[arg(
        long,
        env = "PIEPER_HEADER_READ_TIMEOUT_SECS",
        default_value_t = 10,
        global = true
    )]
    pub header_read_timeout_secs: u64,
    /// The most payload bytes one sync page carries (at least one envelope
    /// always goes): a device catching up on large envelopes gets several
    /// pages rather than one the size of hundreds of them.
    #[arg(
        long,
        env = "PIEPER_SYNC_PAGE_BYTES",
        default_value_t = 8 * 1024 * 1024,
        global = true
    )]
    pub sync_page_bytes: usize,
    /// Envelopes queued for one live connection before it is dropped (the
    /// device then catches up by cursor).
    #[arg(long, env = "PIEPER_LIVE_QUEUE", default_value_t = 1024, global = true)]
    pub live_queue: usize,
    /// Seconds between removing delivered and expired data.
    #[arg(
        long,
        env = "PIEPER_COLLECT_INTERVAL_SECS",
        default_value_t = 300,
        global = true
    )]
    pub collect_interval_secs: u64,
    /// Log as JSON lines.
    #[arg(long, env = "PIEPER_LOG_JSON", global = true)]
    pub log_json: bool,
    /// FOR TEST SERVERS ONLY: accept each TOTP code twice, so end-to-end
    /// tests can sign one account in on several devices without waiting
    /// for the next 30-second step. Never set it for a practice: a code
    /// seen over someone's shoulder would then still work once.
    #[arg(long, env = "PIEPER_INSECURE_TEST_TOTP_REUSE", global = true)]
    pub insecure_test_totp_reuse: bool,
    /// Push providers and urgent escalation.
    #[command(flatten)]
    pub push: PushSettings,
}

/// Push: FCM HTTP v1 and APNs (token authentication), and escalation of
/// unread urgent messages. A provider without its settings is not used.
#[derive(Debug, Clone, Args)]
pub struct PushSettings {
    /// The Firebase service-account JSON file (its `client_email`,
    /// `private_key`, `token_uri` and `project_id` are used).
    #[arg(long, env = "PIEPER_FCM_SERVICE_ACCOUNT", global = true)]
    pub fcm_service_account: Option<PathBuf>,
    /// The FCM API's base URL.
    #[arg(
        long,
        env = "PIEPER_FCM_ENDPOINT",
        default_value = "https://fcm.googleapis.com",
        global = true
    )]
    pub fcm_endpoint: String,
    /// The APNs signing key (`AuthKey_<key id>.p8`).
    #[arg(
        long,
        env = "PIEPER_APNS_KEY",
        global = true,
        requires_all = ["apns_key_id", "apns_team_id", "apns_topic"]
    )]
    pub apns_key: Option<PathBuf>,
    /// The APNs key's id.
    #[arg(long, env = "PIEPER_APNS_KEY_ID", global = true)]
    pub apns_key_id: Option<String>,
    /// The Apple developer team id.
    #[arg(long, env = "PIEPER_APNS_TEAM_ID", global = true)]
    pub apns_team_id: Option<String>,
    /// The app's bundle id (`apns-topic`).
    #[arg(long, env = "PIEPER_APNS_TOPIC", global = true)]
    pub apns_topic: Option<String>,
    /// The APNs production endpoint.
    #[arg(
        long,
        env = "PIEPER_APNS_ENDPOINT",
        default_value = "https://api.push.apple.com",
        global = true
    )]
    pub apns_endpoint: String,
    /// The APNs development endpoint.
    #[arg(
        long,
        env = "PIEPER_APNS_SANDBOX_ENDPOINT",
        default_value = "https://api.sandbox.push.apple.com",
        global = true
    )]
    pub apns_sandbox_endpoint: String,
    /// Seconds an urgent message may stay unread before it is pushed again,
    /// as urgent, to every member device (and again after as long).
    #[arg(
        long,
        env = "PIEPER_URGENT_ESCALATION_SECS",
        default_value_t = 120,
        global = true
    )]
    pub urgent_escalation_secs: u64,
    /// How often an unread urgent message is pushed again at most.
    #[arg(
        long,
        env = "PIEPER_URGENT_ESCALATIONS",
        default_value_t = 5,
        global = true
    )]
    pub urgent_escalations: u32,
    /// First wait before retrying a push the provider could not take
    /// (429, 5xx); doubled each time, or the provider's Retry-After.
    #[arg(
        long,
        env = "PIEPER_PUSH_RETRY_MS",
        default_value_t = 1000,
        global = true
    )]
    pub push_retry_ms: u64,
    /// Attempts per push before giving up.
    #[arg(long, env = "PIEPER_PUSH_ATTEMPTS", default_value_t = 5, global = true)]
    pub push_attempts: u32,
}

impl Settings {
    /// How often one TOTP time step may be used: once, or twice on a test
    /// server.
    pub fn totp_uses_per_step(&self) -> u32 {
        if self.insecure_test_totp_reuse { 2 } else { 1 }
    }

    /// Where the secrets key is.
    pub fn secrets_key_path(&self) -> PathBuf {
        self.secrets_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("secrets.key"))
    }

    /// The database URL in use.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("pieper.sqlite3").display()
            ),
        }
    }
}

impl Cli {
    /// Parses the command line, after loading the configuration file (if one
    /// is named) into the environment without overriding what is set there.
    pub fn load() -> Result<Self, String> {
        let args: Vec<String> = std::env::args().collect();
        let named = args
            .iter()
            .position(|a| a == "--config")
            .and_then(|i| args.get(i + 1).cloned())
            .or_else(|| {
                args.iter()
                    .find_map(|a| a.strip_prefix("--config=").map(str::to_owned))
            })
            .or_else(|| std::env::var("PIEPER_CONFIG").ok());
        if let Some(path) = named {
            dotenvy::from_path(&path).map_err(|e| format!("configuration file {path}: {e}"))?;
        }
        Ok(Self::parse_from(args))
    }
}
