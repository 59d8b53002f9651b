//! `pieper`: the command line client of the core. Sign in, list and open
//! conversations, send, search, follow live, and `pieper demo`.

mod consent;
mod demo;
mod privacy;
mod record;
mod tasks;

use std::{path::PathBuf, sync::Arc};

use clap::{Parser, Subcommand};
use pieper_core::{
    Client, ConnectionState, ConversationKind, Credentials, Event, FileKeyStore, KeyStore, Message,
    NewMessage, PatientRef, Trust,
};

/// Pieper from the command line.
#[derive(Debug, Parser)]
#[command(name = "pieper", version, about)]
struct Cli {
    /// The device's directory (its encrypted store and keystore).
    #[arg(
        long,
        env = "PIEPER_DIR",
        default_value = "pieper-device",
        global = true
    )]
    dir: PathBuf,
    #[command(subcommand)]
    command: Command,
}

/// Approving a new device of yours.
#[derive(Debug, Subcommand)]
enum DevicesAction {
    /// The code this device shows, to compare on the device that approves it.
    Code,
    /// Approve your new device after comparing its code: only then do your
    /// devices give it your conversations and their history.
    Approve {
        /// The new device's id (from `pieper devices`).
        device: String,
        /// The code the new device shows (`pieper devices code` there).
        #[arg(long)]
        code: String,
    },
    /// Practice manager: reset a colleague's identity after they lost every
    /// device and their recovery code. See them in person, compare the code
    /// their new device shows; every colleague is told.
    Reset {
        /// Their new device's id (from `pieper devices`).
        device: String,
        /// The code their new device shows.
        #[arg(long)]
        code: String,
    },
    /// Every device of the practice this device met, and why it trusts it.
    Known,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Sign in with password and TOTP, enrolling this device.
    Login {
        /// The server, e.g. https://pieper.praktijk.nl
        #[arg(long, env = "PIEPER_SERVER")]
        server: String,
        /// The practice's id.
        #[arg(long)]
        practice: String,
        /// Your user name.
        #[arg(long)]
        username: String,
        /// Your password (or set PIEPER_PASSWORD).
        #[arg(long, env = "PIEPER_PASSWORD", hide_env_values = true)]
        password: String,
        /// The code from your authenticator app.
        #[arg(long)]
        totp: String,
        /// A name for this device.
        #[arg(long, default_value = "desktop")]
        device_name: String,
    },
    /// Enrol this device with the code the practice manager gave you: you
    /// choose your password, and get the secret for your authenticator app.
    Enrol {
        /// The server, e.g. https://pieper.praktijk.nl
        #[arg(long, env = "PIEPER_SERVER")]
        server: String,
        /// The practice's id.
        #[arg(long)]
        practice: String,
        /// Your user name.
        #[arg(long)]
        username: String,
        /// The enrolment code.
        #[arg(long)]
        code: String,
        /// The password you choose, at least 12 characters (or set
        /// PIEPER_PASSWORD).
        #[arg(long, env = "PIEPER_PASSWORD", hide_env_values = true)]
        password: String,
        /// A name for this device.
        #[arg(long, default_value = "desktop")]
        device_name: String,
    },
    /// The practice's staff.
    Colleagues,
    /// Practice manager: invite a colleague; prints the one-time code
    /// (valid a week) to hand over in person.
    Invite {
        /// Their user name.
        username: String,
        /// The name shown to colleagues.
        #[arg(long)]
        name: String,
        /// huisarts, poh, assistent, manager or connector.
        #[arg(long)]
        role: String,
        #[command(flatten)]
        registrations: RegistrationArgs,
    },
    /// Practice manager: enter or correct a colleague's registrations
    /// (their devices' next certificates carry them).
    Registrations {
        /// Their user name.
        username: String,
        #[command(flatten)]
        registrations: RegistrationArgs,
    },
    /// Practice manager: reset a colleague's login (a forgotten password, a
    /// lost authenticator); prints the one-time code for new ones.
    ResetLogin {
        /// Their user name.
        username: String,
    },
    /// Practice manager: disable a leaver (or suspend someone): their login
    /// is refused and every device of theirs revoked and removed from every
    /// conversation.
    Disable {
        /// Their user name.
        username: String,
    },
    /// Practice manager: enable a disabled colleague again; they sign in on
    /// a new device (which you then vouch for with `devices reset`).
    Enable {
        /// Their user name.
        username: String,
    },
    /// Practice manager: name the huisarts a colleague works for (the audit
    /// trail's "on whose behalf"); without `--for`, they work for themselves.
    OnBehalfOf {
        /// Their user name.
        username: String,
        /// The huisarts's user name.
        #[arg(long = "for")]
        huisarts: Option<String>,
    },
    /// Your devices (a manager: the practice's); approve a new one.
    Devices {
        #[command(subcommand)]
        action: Option<DevicesAction>,
    },
    /// What this device refused from colleagues' devices (an identity that
    /// did not check out, an operation their role does not allow), by kind.
    Refusals,
    /// When this device last replaced its keys (an MLS update) in each
    /// conversation; with --update, it updates them in one now.
    Keys {
        /// The conversation to update now.
        #[arg(long)]
        update: Option<String>,
        /// Renew this device's certificate now (a changed role; it is
        /// renewed by itself in its last month).
        #[arg(long)]
        renew_certificate: bool,
    },
    /// Revoke a lost or stolen device: its token stops at once and it is
    /// removed from your conversations; it wipes itself when it comes back.
    Revoke {
        /// The device id (from `pieper devices`).
        device: String,
    },
    /// Your conversations.
    Conversations,
    /// Start a conversation.
    Create {
        /// Its title.
        #[arg(long)]
        title: String,
        /// direct, group or spoed.
        #[arg(long, default_value = "group")]
        kind: String,
        /// The HIS reference of the patient it is about.
        #[arg(long)]
        patient: Option<String>,
        /// Colleagues to add, by user name (comma separated).
        #[arg(long, value_delimiter = ',')]
        with: Vec<String>,
    },
    /// Open a conversation: its newest messages.
    Open {
        /// The conversation id.
        conversation: String,
        /// How many messages.
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Send a message.
    Send {
        /// The conversation id.
        conversation: String,
        /// The text.
        text: String,
        /// Mark it urgent (wakes phones).
        #[arg(long)]
        urgent: bool,
        /// NTS triage urgency U1..U5 (U1/U2: spoed, posted to the spoed
        /// channel for whoever is on duty).
        #[arg(long)]
        triage: Option<String>,
        /// overleg (default), documenteer, or werkaantekening (a work note
        /// for your own devices only).
        #[arg(long, default_value = "overleg")]
        kind: String,
        /// A disappearing message: gone from every device and the server
        /// after this many seconds.
        #[arg(long)]
        ttl: Option<u64>,
        /// Attach a file.
        #[arg(long)]
        attach: Option<std::path::PathBuf>,
    },
    /// Spoed: take a post, do-not-disturb, the duty roster.
    #[command(subcommand)]
    Spoed(SpoedCommand),
    /// Search your messages (on this device only).
    Search {
        /// Words to find.
        query: String,
    },
    /// Fetch what arrived and send what waits.
    Sync,
    /// Stay connected and print what arrives, until interrupted.
    Follow,
    /// Send messages to the patient's record as a SOEP entry.
    Document(record::DocumentArgs),
    /// Where a conversation's documentation items stand.
    Documented {
        /// The conversation id.
        conversation: String,
    },
    /// Try a failed documentation item again.
    Redocument {
        /// The item id.
        id: String,
    },
    /// Run as the practice's HIS connector (a device of a user with role
    /// connector): deliver documentation to the HIS's FHIR R4 base URL.
    Connector {
        /// The HIS's FHIR R4 base URL (takes transaction Bundles): push mode.
        #[arg(long, env = "PIEPER_HIS_URL", required_unless_present = "pull_listen")]
        his_url: Option<String>,
        /// Pull mode: serve pending items as FHIR Tasks on this address for
        /// a HIS that polls.
        #[arg(long, env = "PIEPER_PULL_LISTEN", conflicts_with = "his_url")]
        pull_listen: Option<String>,
        /// The bearer token the polling HIS presents.
        #[arg(long, env = "PIEPER_PULL_TOKEN", hide_env_values = true)]
        pull_token: Option<String>,
        /// Milliseconds between delivery rounds.
        #[arg(long, default_value_t = 2000)]
        interval_ms: u64,
    },
    /// What needs attention: spoed, urgent, my tasks, what to document, unread.
    Dashboard,
    /// Tasks: make, take on, complete, cancel, list.
    #[command(subcommand)]
    Task(tasks::TaskCommand),
    /// Open a launch link from the HIS (pieper://patient/<reference>): the
    /// patient's conversations here.
    Link {
        /// The link.
        link: String,
    },
    /// The practice's roster and patient consent (LSP opt-in).
    #[command(subcommand)]
    Consent(consent::ConsentCommand),
    /// Back up your chat history, sealed with a new recovery code (printed
    /// once: write it down), or restore it onto this device.
    Backup {
        /// Restore with this recovery code instead of making a backup.
        #[arg(long)]
        restore: Option<String>,
        /// Messages per conversation in a new backup.
        #[arg(long, default_value_t = 200)]
        per_conversation: u32,
    },
    /// Notification self-test: ask the server for a test push and report
    /// what arrived, how late, and what to fix.
    Selftest {
        /// As an urgent push.
        #[arg(long)]
        urgent: bool,
        /// Seconds to wait for it.
        #[arg(long, default_value_t = 10)]
        wait_secs: u64,
    },
    /// Receipts, the audit log, disappearing messages, retention, and the
    /// patient's AVG rights (inzage, erasure).
    #[command(subcommand)]
    Privacy(privacy::PrivacyCommand),
    /// Show the whole system: a server, three staff on three devices, a
    /// conversation about a patient, one device offline and back.
    Demo,
}

#[derive(Debug, Subcommand)]
enum SpoedCommand {
    /// "Ik pak het op": take a spoed post.
    Take {
        /// The post's id (in the spoed channel).
        post: String,
    },
    /// Do-not-disturb on or off (your spoed goes to the backup).
    Dnd {
        /// on or off.
        state: String,
    },
    /// Put one day part on the duty roster (replaces the roster with it and
    /// the slots already there).
    Roster {
        /// YYYY-MM-DD.
        #[arg(long)]
        date: String,
        /// morning, afternoon or evening.
        #[arg(long)]
        part: String,
        /// User name on duty.
        #[arg(long)]
        on_duty: String,
        /// User name of the backup.
        #[arg(long)]
        backup: String,
    },
}

async fn spoed(client: &Client, command: SpoedCommand) -> Result<(), Box<dyn std::error::Error>> {
    use pieper_core::spoed::{DayPart, DutySlot};
    client.sync().await?;
    match command {
        SpoedCommand::Take { post } => client.spoed().take(&post).await?,
        SpoedCommand::Dnd { state } => client.spoed().set_do_not_disturb(state == "on").await?,
        SpoedCommand::Roster {
            date,
            part,
            on_duty,
            backup,
        } => {
            let staff = client.colleagues().await?;
            let id = |name: &str| id_of(&staff, name);
            let part = match part.as_str() {
                "morning" => DayPart::Morning,
                "afternoon" => DayPart::Afternoon,
                "evening" => DayPart::Evening,
                other => return Err(format!("unknown day part {other:?}").into()),
            };
            let mut roster = client.spoed().duty_roster()?;
            roster.slots.retain(|s| !(s.date == date && s.part == part));
            roster.slots.push(DutySlot {
                date,
                part,
                on_duty: id(&on_duty)?,
                backup: id(&backup)?,
            });
            client.spoed().set_duty_roster(roster).await?;
        }
    }
    Ok(())
}

fn kind(text: &str) -> Result<ConversationKind, String> {
    match text {
        "direct" => Ok(ConversationKind::Direct),
        "group" => Ok(ConversationKind::Group),
        "spoed" => Ok(ConversationKind::Spoed),
        other => Err(format!("unknown kind {other:?}: direct, group or spoed")),
    }
}

fn keystore(dir: &std::path::Path) -> Result<Arc<dyn KeyStore>, Box<dyn std::error::Error>> {
    std::fs::create_dir_all(dir)?;
    Ok(Arc::new(FileKeyStore::in_dir(dir)?))
}

/// User ids to user names, from the staff directory.
pub type Names = std::collections::HashMap<String, String>;

/// The staff directory as a lookup.
pub async fn names(client: &Client) -> Result<Names, pieper_core::Error> {
    Ok(client
        .colleagues()
        .await?
        .into_iter()
        .map(|u| (u.id, u.username))
        .collect())
}

/// The id of the colleague named `name` among `staff`.
fn id_of(staff: &[pieper_core::UserInfo], name: &str) -> Result<String, String> {
    staff
        .iter()
        .find(|u| u.username == name)
        .map(|u| u.id.clone())
        .ok_or_else(|| format!("no colleague named {name:?}"))
}

/// The id of the colleague with this user name.
async fn user_named(client: &Client, username: &str) -> Result<String, Box<dyn std::error::Error>> {
    Ok(id_of(&client.colleagues().await?, username)?)
}

/// A professional's registrations, as the manager types them.
#[derive(clap::Args, Debug)]
struct RegistrationArgs {
    /// AGB-code (8 digits).
    #[arg(long)]
    agb: Option<String>,
    /// BIG-registratienummer (11 digits).
    #[arg(long)]
    big: Option<String>,
    /// UZI-nummer.
    #[arg(long)]
    uzi: Option<String>,
}

impl From<RegistrationArgs> for pieper_core::Registrations {
    fn from(r: RegistrationArgs) -> Self {
        pieper_core::Registrations {
            agb: r.agb,
            big: r.big,
            uzi: r.uzi,
        }
    }
}

/// One line for a message.
pub fn show(message: &Message, names: &Names) -> String {
    let urgent = if message.priority == pieper_core::Priority::Urgent {
        " [SPOED]"
    } else {
        ""
    };
    let sender = names
        .get(&message.sender.user)
        .unwrap_or(&message.sender.user);
    if message.expired {
        return format!("{sender}: [bericht verlopen]");
    }
    let timer = if message.expires_at.is_some() {
        " [verdwijnt]"
    } else {
        ""
    };
    let resent = message.resent_by.as_ref().map_or(String::new(), |by| {
        format!(
            " [opnieuw verstuurd door {}]",
            names.get(&by.user).unwrap_or(&by.user)
        )
    });
    format!("{sender}{urgent}{timer}{resent}: {}", message.body)
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pieper: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    if let Command::Demo = cli.command {
        return demo::run().await;
    }
    if let Command::Login {
        server,
        practice,
        username,
        password,
        totp,
        device_name,
    } = &cli.command
    {
        let credentials = Credentials {
            practice: practice.clone(),
            username: username.clone(),
            password: password.clone(),
            totp: totp.clone(),
            device_name: device_name.clone(),
        };
        let client = Client::login(server, &cli.dir, keystore(&cli.dir)?, credentials).await?;
        println!(
            "signed in as {} on device {}",
            client.id().user,
            client.id().device
        );
        return Ok(());
    }
    if let Command::Enrol {
        server,
        practice,
        username,
        code,
        password,
        device_name,
    } = &cli.command
    {
        let credentials = pieper_core::EnrolmentCredentials {
            practice: practice.clone(),
            username: username.clone(),
            code: code.clone(),
            password: password.clone(),
            device_name: device_name.clone(),
        };
        let (client, authenticator) =
            Client::enrol(server, &cli.dir, keystore(&cli.dir)?, credentials).await?;
        println!(
            "enrolled as {} on device {}\nadd this to your authenticator app (shown once):\n{}\n{}",
            client.id().user,
            client.id().device,
            authenticator.secret,
            authenticator.otpauth_url
        );
        return Ok(());
    }
    let client = Client::open(&cli.dir, keystore(&cli.dir)?).await?;
    match cli.command {
        Command::Login { .. } | Command::Enrol { .. } | Command::Demo => {}
        Command::Invite {
            username,
            name,
            role,
            registrations,
        } => {
            let role = pieper_core::Role::parse(&role)
                .ok_or("role: huisarts, poh, assistent, manager or connector")?;
            let code = client
                .accounts()
                .invite_registered(&username, &name, role, registrations.into())
                .await?;
            println!(
                "invited {username}; enrolment code {} (once, for a week: hand it over in person)",
                code.code
            );
        }
        Command::ResetLogin { username } => {
            let user = user_named(&client, &username).await?;
            let code = client.accounts().reset_login(&user).await?;
            println!(
                "reset the login of {username}; enrolment code {} (once, for a week)",
                code.code
            );
        }
        Command::Colleagues => {
            for user in client.colleagues().await? {
                let disabled = if user.disabled { "\t[disabled]" } else { "" };
                println!(
                    "{}\t{}\t{}{disabled}",
                    user.username,
                    user.role.as_str(),
                    user.display_name
                );
            }
        }
        Command::Disable { username } => {
            let user = user_named(&client, &username).await?;
            client.accounts().disable(&user).await?;
            println!("disabled {username}: signed out everywhere, removed from your conversations");
        }
        Command::Registrations {
            username,
            registrations,
        } => {
            let user = user_named(&client, &username).await?;
            client
                .accounts()
                .set_registrations(&user, registrations.into())
                .await?;
            println!(
                "registrations of {username} set; their devices' next certificates carry them"
            );
        }
        Command::OnBehalfOf { username, huisarts } => {
            let user = user_named(&client, &username).await?;
            let on_behalf_of = match &huisarts {
                Some(name) => Some(user_named(&client, name).await?),
                None => None,
            };
            client
                .accounts()
                .set_on_behalf_of(&user, on_behalf_of.as_deref())
                .await?;
            match huisarts {
                Some(name) => println!("{username} works on behalf of {name}"),
                None => println!("{username} works for themselves"),
            }
        }
        Command::Enable { username } => {
            let user = user_named(&client, &username).await?;
            client.accounts().enable(&user).await?;
            println!("enabled {username}: they can sign in again");
        }
        Command::Devices { action: None } => {
            for d in client.devices().list().await? {
                let state = match (&d.revoked_at, &d.approved_by) {
                    (Some(_), _) => "revoked",
                    (None, Some(_)) => "approved",
                    (None, None) => "not approved",
                };
                println!("{}\t{}\t{}\t{}", d.id, d.user_id, d.name, state);
            }
        }
        Command::Devices {
            action: Some(DevicesAction::Code),
        } => {
            println!("{}", client.devices().approval_code()?);
        }
        Command::Devices {
            action: Some(DevicesAction::Approve { device, code }),
        } => {
            client.devices().approve(&device, &code).await?;
            client.devices().add_my_new_devices().await?;
            println!("approved {device}; added to your conversations");
        }
        Command::Devices {
            action: Some(DevicesAction::Reset { device, code }),
        } => {
            client.devices().reset_identity(&device, &code).await?;
            println!("identity reset for {device}; colleagues' devices will take it in and say so");
        }
        Command::Devices {
            action: Some(DevicesAction::Known),
        } => {
            for d in client.devices().known()? {
                let trust = match &d.trust {
                    Trust::FirstUse => "first seen (server's word)".to_owned(),
                    Trust::Vouched { by_device } => format!("approved by device {by_device}"),
                    Trust::Recovered => "approved with the recovery code".to_owned(),
                    Trust::Reset { by_user } => format!("IDENTITY RESET by {by_user}"),
                    Trust::Introduced { by_user } => format!("introduced by {by_user}"),
                };
                let gone = if d.gone { "\trevoked" } else { "" };
                println!("{}\t{}\t{trust}{gone}", d.device, d.user);
            }
        }
        Command::Revoke { device } => {
            client.devices().revoke(&device).await?;
            println!("revoked {device}; removed from this device's conversations");
        }
        Command::Conversations => {
            client.sync().await?;
            for c in client.conversations().list()? {
                let patient = c
                    .patient
                    .as_ref()
                    .map(|p| format!(" (patient {})", p.as_str()))
                    .unwrap_or_default();
                let left = if c.active { "" } else { " [left]" };
                println!("{}\t{}{patient}{left}", c.id, c.title);
            }
        }
        Command::Create {
            title,
            kind: k,
            patient,
            with,
        } => {
            let staff = client.colleagues().await?;
            let users = with
                .iter()
                .map(|name| id_of(&staff, name))
                .collect::<Result<Vec<_>, _>>()?;
            let patient = patient.as_deref().map(PatientRef::new).transpose()?;
            let c = client
                .conversations()
                .create(&title, kind(&k)?, patient, &users)
                .await?;
            println!("{}", c.id);
        }
        Command::Open {
            conversation,
            limit,
        } => {
            client.sync().await?;
            let names = names(&client).await?;
            if let Some(c) = client.consent().of_conversation(&conversation)? {
                println!(
                    "consent: LSP {}, e-communication {}",
                    c.lsp_sharing.as_str(),
                    c.e_communication.as_str()
                );
            }
            let shown = client.conversations().messages(&conversation, limit)?;
            for m in &shown {
                println!("{}", show(m, &names));
            }
            // What is shown is read: the unread count drops, and the reading
            // is in the audit trail (an urgent one stops escalating).
            if let Some(last) = shown.iter().rev().find(|m| m.sender != *client.id()) {
                client
                    .conversations()
                    .mark_read(&conversation, &last.id)
                    .await?;
            }
        }
        Command::Send {
            conversation,
            text,
            urgent,
            triage,
            kind,
            ttl,
            attach,
        } => {
            let mut message = match triage {
                Some(t) => NewMessage::triaged(text, pieper_core::spoed::Triage::parse(&t)?),
                None if urgent => NewMessage::urgent(text),
                None => NewMessage::text(text),
            };
            message.kind = match kind.as_str() {
                "overleg" => pieper_core::MessageKind::Overleg,
                "documenteer" => pieper_core::MessageKind::Documenteer,
                "werkaantekening" => pieper_core::MessageKind::Werkaantekening,
                other => return Err(format!("unknown kind {other:?}").into()),
            };
            if let Some(secs) = ttl {
                message = message.disappearing(secs);
            }
            let id = match attach {
                Some(path) => {
                    let name = path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_else(|| "bijlage".into());
                    let data = std::fs::read(&path)?;
                    client
                        .conversations()
                        .send_with_attachment(
                            &conversation,
                            message,
                            &name,
                            "application/octet-stream",
                            data,
                        )
                        .await?
                }
                None => client.conversations().send(&conversation, message).await?,
            };
            let state = client.conversations().state(&id)?;
            println!("{id}\t{state:?}");
        }
        Command::Search { query } => {
            let names = names(&client).await.unwrap_or_default();
            for m in client.conversations().search(&query, 50)? {
                println!("{}\t{}", m.conversation, show(&m, &names));
            }
        }
        Command::Consent(command) => consent::run(&client, command).await?,
        Command::Privacy(command) => privacy::run(&client, command).await?,
        Command::Backup {
            restore,
            per_conversation,
        } => {
            if let Some(code) = restore {
                let r = client.devices().restore_backup(&code).await?;
                println!(
                    "restored {} conversations, {} messages; they become active again when a member adds this device",
                    r.conversations, r.messages
                );
            } else {
                client.sync().await?;
                let code = pieper_core::new_recovery_code();
                let r = client
                    .devices()
                    .create_backup(&code, per_conversation)
                    .await?;
                println!(
                    "backed up {} conversations, {} messages ({} bytes, encrypted)\nrecovery code (write it down, it is not stored): {code}",
                    r.conversations, r.messages, r.bytes
                );
            }
        }
        Command::Selftest { urgent, wait_secs } => {
            // The live connection is one of the ways a test may come.
            let mut events = client.events();
            let _live = client.start_live();
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), async {
                while let Ok(event) = events.recv().await {
                    if matches!(
                        event,
                        Event::Connection(pieper_core::ConnectionState::Online)
                    ) {
                        return;
                    }
                }
            })
            .await;
            let report = client
                .push()
                .self_test(urgent, std::time::Duration::from_secs(wait_secs))
                .await?;
            println!("push service: {}", report.provider_outcome);
            if let Some(detail) = report.detail {
                println!("  reason: {detail}");
            }
            for a in &report.arrivals {
                println!("arrived by {:?} after {} ms", a.path, a.latency_ms);
            }
            if report.arrivals.is_empty() {
                println!("nothing arrived within {wait_secs} s");
            }
            for advice in report.advice {
                println!("to fix: {advice}");
            }
        }
        Command::Task(command) => tasks::run(&client, command).await?,
        Command::Spoed(command) => spoed(&client, command).await?,
        Command::Document(args) => record::document(&client, args).await?,
        Command::Documented { conversation } => {
            client.sync().await?;
            for s in client.record().items(&conversation)? {
                println!(
                    "{}\t{}\t{}\t{}",
                    s.item.id,
                    s.state.as_str(),
                    s.item.title,
                    s.detail.unwrap_or_default()
                );
            }
        }
        Command::Redocument { id } => {
            let s = client.record().retry(&id).await?;
            println!("{}\t{}", s.item.id, s.state.as_str());
        }
        Command::Connector {
            his_url,
            pull_listen,
            pull_token,
            interval_ms,
        } => match (his_url, pull_listen) {
            (Some(url), _) => {
                let every = std::time::Duration::from_millis(interval_ms);
                record::connector(&client, &url, every).await?
            }
            (None, Some(listen)) => {
                let token = pull_token.ok_or("pull mode needs --pull-token")?;
                record::serve_pull(&client, &listen, &token).await?
            }
            (None, None) => return Err("give --his-url or --pull-listen".into()),
        },
        Command::Dashboard => {
            client.sync().await?;
            let names = names(&client).await?;
            let d = client.dashboard()?;
            for m in &d.spoed {
                println!("SPOED\t{}\t{}", m.conversation, show(m, &names));
            }
            for m in &d.urgent {
                println!("urgent\t{}\t{}", m.conversation, show(m, &names));
            }
            for t in &d.tasks {
                println!(
                    "task\t{}\tdue {}\t{}",
                    t.id,
                    t.due.as_deref().unwrap_or("-"),
                    t.what
                );
            }
            for m in &d.to_document {
                println!("document\t{}\t{}", m.conversation, m.body);
            }
            for g in &d.unread {
                let about = g
                    .patient
                    .as_ref()
                    .map(|p| format!("patient {}", p.as_str()))
                    .or_else(|| g.topic.clone())
                    .unwrap_or_default();
                for c in &g.conversations {
                    println!(
                        "unread\t{about}\t{}\t{} new",
                        c.conversation.title, c.unread
                    );
                }
            }
        }
        Command::Link { link } => {
            let patient = pieper_core::record::parse_launch_link(&link)?;
            client.sync().await?;
            let found = client.conversations().about(&patient)?;
            if found.is_empty() {
                println!(
                    "no conversation about {} yet: pieper create --patient {} --title ...",
                    patient.as_str(),
                    patient.as_str()
                );
            }
            for c in found {
                println!("{}	{}", c.id, c.title);
            }
        }
        Command::Sync => {
            let mut events = client.events();
            let report = client.sync().await?;
            println!("applied {}, skipped {}", report.applied, report.skipped);
            while let Ok(event) = events.try_recv() {
                if let Event::Refused {
                    conversation,
                    sender_device,
                    reason,
                    ..
                } = event
                {
                    println!("refused from device {sender_device} in {conversation}: {reason}");
                } else if let Event::IdentityReset { user, by } = event {
                    println!("identity of {user} was reset by {by}: check with them in person");
                }
            }
        }
        Command::Keys {
            update,
            renew_certificate,
        } => {
            if renew_certificate {
                let certified = client.keys().renew_certificate().await?;
                let roles: Vec<&str> = certified.roles.iter().map(|r| r.as_str()).collect();
                println!(
                    "renewed: {} as {}, valid {} more days",
                    certified.id,
                    roles.join(","),
                    (certified.not_after - privacy::now_ms()) / 86_400_000
                );
            }
            if let Some(conversation) = update {
                if !client.keys().update(&conversation).await? {
                    return Err("the update did not land; it is made again at a later sync".into());
                }
                println!("updated this device's keys in {conversation}");
            } else {
                client.sync().await?;
            }
            let now = privacy::now_ms();
            for u in client.keys().updates()? {
                let hours = (now - u.updated_at).max(0) / 3_600_000;
                let age = if hours < 48 {
                    format!("{hours} h ago")
                } else {
                    format!("{} d ago", hours / 24)
                };
                let activity = if u.activity_since {
                    "\tmessages since"
                } else {
                    ""
                };
                let due = if u.due_now { "\tDUE NOW" } else { "" };
                println!(
                    "{}\t{}\tupdated {age}{activity}{due}",
                    u.conversation, u.title
                );
            }
        }
        Command::Refusals => {
            for r in client.refusals()? {
                println!("{}\t{}", r.kind, r.count);
            }
        }
        Command::Follow => {
            let names = names(&client).await?;
            let mut events = client.events();
            let _live = client.start_live();
            loop {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => break,
                    event = events.recv() => match event {
                        Ok(Event::MessageReceived(m)) => println!("{}", show(&m, &names)),
                        Ok(Event::ConversationChanged(c)) => println!("* {} ({})", c.title, c.id),
                        Ok(Event::Connection(ConnectionState::SignedOut)) => {
                            // Revoked (and wiped) or signed out: the sync
                            // says which, and the command ends with it.
                            client.sync().await?;
                            return Err("signed out".into());
                        }
                        Ok(Event::Connection(state)) => eprintln!("~ {state:?}"),
                        Ok(_) => {}
                        Err(_) => break,
                    },
                }
            }
        }
    }
    Ok(())
}
