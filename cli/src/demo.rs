//! `pieper demo`: the whole system in one command. A server on its embedded
//! SQLite in a temporary directory; a huisarts (phone), an assistent
//! (front-desk tablet) and a POH (desktop); a conversation about a patient;
//! a routine and an urgent message; one device offline and back.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::Arc,
    time::Duration,
};

use pieper_core::{
    Client, ConsentKind, ConsentMethod, ConsentStatus, ConversationKind, Credentials, Event,
    FileKeyStore, NewConsent, NewMessage, PatientRef, RosterFormat,
};

use crate::{names, show};

type DemoResult<T> = Result<T, Box<dyn std::error::Error>>;

const PASSWORD: &str = "demo-wachtwoord-2026";

/// The server process; stopped when dropped.
struct ServerProcess(Child);

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `pieper-server` next to this binary, or `PIEPER_SERVER_BIN`.
fn server_binary() -> DemoResult<PathBuf> {
    if let Ok(path) = std::env::var("PIEPER_SERVER_BIN") {
        return Ok(path.into());
    }
    let exe = std::env::current_exe()?;
    let bin = exe.with_file_name("pieper-server");
    if !bin.exists() {
        return Err(format!(
            "{} not found: build it (cargo build -p pieper-server)",
            bin.display()
        )
        .into());
    }
    Ok(bin)
}

fn admin(bin: &Path, data: &Path, args: &[&str]) -> DemoResult<String> {
    let out = Command::new(bin)
        .arg("--data-dir")
        .arg(data)
        .arg("admin")
        .args(args)
        .env("PIEPER_NEW_PASSWORD", PASSWORD)
        .output()?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned().into());
    }
    Ok(String::from_utf8(out.stdout)?)
}

/// The current code of a base32 TOTP secret (what the authenticator app shows).
fn totp_now(secret: &str) -> DemoResult<String> {
    let bytes = totp_rs::Secret::Encoded(secret.to_owned())
        .to_bytes()
        .map_err(|e| format!("{e:?}"))?;
    Ok(totp_rs::TOTP::new(totp_rs::Algorithm::SHA1, 6, 1, 30, bytes)?.generate_current()?)
}

struct Staff {
    username: &'static str,
    role: &'static str,
    device: &'static str,
}

pub(crate) async fn run() -> DemoResult<()> {
    let bin = server_binary()?;
    let work = tempfile::tempdir()?;
    let data = work.path().join("server");
    std::fs::create_dir_all(&data)?;

    println!("== Pieper demo ==");
    admin(
        &bin,
        &data,
        &[
            "create-practice",
            "--id",
            "linde",
            "--name",
            "Huisartsenpraktijk De Linde",
        ],
    )?;
    let staff = [
        Staff {
            username: "jansen",
            role: "huisarts",
            device: "telefoon",
        },
        Staff {
            username: "bakker",
            role: "assistent",
            device: "balie-tablet",
        },
        Staff {
            username: "devries",
            role: "poh",
            device: "desktop",
        },
    ];
    let mut secrets = Vec::new();
    for s in &staff {
        let out = admin(
            &bin,
            &data,
            &[
                "create-user",
                "--practice",
                "linde",
                "--username",
                s.username,
                "--display-name",
                s.username,
                "--role",
                s.role,
                "--json",
            ],
        )?;
        let v: serde_json::Value = serde_json::from_str(out.trim())?;
        secrets.push(
            v["totp_secret"]
                .as_str()
                .ok_or("no TOTP secret")?
                .to_owned(),
        );
    }

    let mut child = Command::new(&bin)
        .arg("--data-dir")
        .arg(&data)
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("server has no stdout")?;
    let server = ServerProcess(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let address = line
        .trim()
        .strip_prefix("listening on ")
        .ok_or("server did not start")?;
    let url = format!("http://{address}");
    println!("server on {url}, data in its embedded SQLite");

    let mut clients = Vec::new();
    for (s, secret) in staff.iter().zip(&secrets) {
        let dir = work.path().join(s.username);
        std::fs::create_dir_all(&dir)?;
        let credentials = Credentials {
            practice: "linde".into(),
            username: s.username.into(),
            password: PASSWORD.into(),
            totp: totp_now(secret)?,
            device_name: s.device.into(),
        };
        let client = Client::login(
            &url,
            &dir,
            Arc::new(FileKeyStore::in_dir(&dir)?),
            credentials,
        )
        .await?;
        println!(
            "{} ({}) signed in with password + TOTP on the {}",
            s.username, s.role, s.device
        );
        clients.push(client);
    }
    let (huisarts, assistent, poh) = (&clients[0], &clients[1], &clients[2]);
    let names = names(huisarts).await?;

    let mut tablet_events = assistent.events();
    let tablet_live = assistent.start_live();
    let poh_live = poh.start_live();

    let colleagues: Vec<String> = vec![assistent.id().user.clone(), poh.id().user.clone()];
    let conversation = huisarts
        .conversations()
        .create(
            "Mw. Smit — INR controle",
            ConversationKind::Group,
            Some(PatientRef::new("his:patient/48213")?),
            &colleagues,
        )
        .await?;
    println!(
        "\njansen opened \"{}\" about patient his:patient/48213 with bakker and devries",
        conversation.title
    );

    huisarts
        .conversations()
        .send(
            &conversation.id,
            NewMessage::text("Uitslag INR is binnen: 4,1."),
        )
        .await?;
    huisarts
        .conversations()
        .send(
            &conversation.id,
            NewMessage::urgent("Bel mw. Smit vandaag nog terug over haar dosering."),
        )
        .await?;
    let urgent = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Ok(Event::UrgentMessage(m)) = tablet_events.recv().await {
                return m;
            }
        }
    })
    .await?;
    println!(
        "the front-desk tablet raised an urgent alert: {}",
        show(&urgent, &names)
    );

    println!("\ndevries's desktop goes offline");
    drop(poh_live);
    assistent
        .conversations()
        .send(
            &conversation.id,
            NewMessage::text("Teruggebeld: komt morgen om 8:30."),
        )
        .await?;
    huisarts
        .conversations()
        .send(
            &conversation.id,
            NewMessage::text("Dank je, ik zet het in het dossier."),
        )
        .await?;
    let shown = poh.conversations().messages(&conversation.id, 50)?.len();
    println!("bakker and jansen send two more; the offline desktop still shows {shown} messages");
    let report = poh.sync().await?;
    println!(
        "devries's desktop is back online and catches up on {} envelopes",
        report.applied
    );
    drop(tablet_live);
    assistent.sync().await?;
    huisarts.sync().await?;

    // Consent for the LSP: the front desk imports the roster and asks; the
    // huisarts's phone sees the same figures, through the practice group.
    let roster = "reference,name,birth_date,enrolled\n\
                  his:patient/48213,Mw. J. Smit,1951-04-12,yes\n\
                  his:patient/48214,Dhr. K. de Boer,1966-09-30,yes\n\
                  his:patient/48215,Mw. L. Visser,1983-02-17,yes\n\
                  his:patient/48216,Dhr. M. Mulder,1999-12-01,yes\n";
    let imported = assistent
        .consent()
        .import_roster(roster.into(), RosterFormat::Csv, true)
        .await?;
    println!(
        "\nbakker imported the roster ({} patients) at the front desk",
        imported.added.len()
    );
    for (patient, status) in [
        ("his:patient/48213", ConsentStatus::Given),
        ("his:patient/48214", ConsentStatus::Given),
        ("his:patient/48215", ConsentStatus::Refused),
    ] {
        assistent
            .consent()
            .record(NewConsent {
                patient: PatientRef::new(patient)?,
                kind: ConsentKind::LspSharing,
                status,
                method: ConsentMethod::InPerson,
                note: None,
                obtained_at: None,
            })
            .await?;
    }
    huisarts.sync().await?;
    let f = huisarts.consent().figures(ConsentKind::LspSharing)?;
    println!(
        "jansen's telefoon sees LSP consent {} of {} enrolled ({:.0} %, target 75 %: {})",
        f.given,
        f.enrolled,
        f.rate * 100.0,
        if f.meets_target { "met" } else { "not met" }
    );
    let shown = huisarts.consent().of_conversation(&conversation.id)?;
    println!(
        "the conversation about his:patient/48213 shows LSP consent: {}",
        shown.map_or("-", |c| c.lsp_sharing.as_str())
    );
    let worklist = huisarts.consent().worklist(ConsentKind::LspSharing)?;
    println!(
        "still to ask: {}",
        worklist
            .iter()
            .map(|p| p.reference.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );

    // Receipts travel end-to-end; a read one stops the urgent escalation.
    assistent
        .conversations()
        .mark_read(&conversation.id, &urgent.id)
        .await?;
    assistent.sync().await?;
    poh.sync().await?;
    huisarts.sync().await?;
    let receipts = huisarts.privacy().receipts(&urgent.id).await?;
    let read_by: Vec<&str> = receipts
        .iter()
        .filter(|r| r.read_at.is_some())
        .map(|r| names.get(&r.user).map_or(r.user.as_str(), String::as_str))
        .collect();
    println!(
        "
the urgent message reached {} devices; read by: {}",
        receipts.len(),
        read_by.join(", ")
    );

    // A disappearing message: gone from every device and the server.
    let fleeting = huisarts
        .conversations()
        .send(
            &conversation.id,
            NewMessage::text("Pincode sleutelkastje: 4711 (verdwijnt over 3 s)").disappearing(3),
        )
        .await?;
    assistent.sync().await?;
    tokio::time::sleep(Duration::from_millis(3_200)).await;
    assistent.privacy().housekeeping().await?;
    let gone = assistent.conversations().message(&fleeting)?;
    println!(
        "a disappearing message after 3 s on bakker's tablet: {}",
        if gone.expired {
            "expired (marker only, no content)"
        } else {
            "STILL THERE (this is a bug)"
        }
    );
    if !gone.expired {
        return Err("a disappearing message stayed".into());
    }

    for (s, client) in staff.iter().zip(&clients) {
        println!("\n-- what {}'s {} shows --", s.username, s.device);
        let c = client.conversations().get(&conversation.id)?;
        println!(
            "[{}] patient {}",
            c.title,
            c.patient.as_ref().map_or("-", |p| p.as_str())
        );
        for m in client.conversations().messages(&conversation.id, 50)? {
            println!("  {} ({:?})", show(&m, &names), m.state);
        }
    }

    // The server kept ciphertext only: its database has none of the text.
    drop(server);
    let mut leaked = false;
    for entry in std::fs::read_dir(&data)? {
        let bytes = std::fs::read(entry?.path())?;
        leaked |= [
            "INR",
            "dosering",
            "his:patient/48213",
            "Mw. Smit",
            "de Boer",
            "lsp_sharing",
            "in_person",
            "sleutelkastje",
        ]
        .iter()
        .any(|needle| bytes.windows(needle.len()).any(|w| w == needle.as_bytes()));
    }
    println!(
        "\nserver database files searched for message text, title, patients and consent: {}",
        if leaked {
            "FOUND (this is a bug)"
        } else {
            "none found, only ciphertext"
        }
    );
    if leaked {
        return Err("plaintext reached the server".into());
    }
    Ok(())
}
