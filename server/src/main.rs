//! `pieper-server`: parses the configuration and runs the server or an admin
//! command.

use pieper_server::{
    auth,
    db::{
        Db,
        audit::{AuditFilter, NewAuditEvent, to_csv},
    },
    settings::{Account, AdminCommand, Cli, Command, Settings},
};
use pieper_wire::Role;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = match Cli::load() {
        Ok(cli) => cli,
        Err(e) => {
            eprintln!("pieper-server: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    // Logs go to stderr: stdout carries what commands print for scripts.
    let filter = EnvFilter::try_from_env("PIEPER_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx::postgres::notice=warn"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if cli.settings.log_json {
        logs.json().init();
    } else {
        logs.init();
    }
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(cli.settings).await,
        Command::Admin(command) => admin(cli.settings, command).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pieper-server: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn serve(settings: Settings) -> Result<(), Box<dyn std::error::Error>> {
    let listener = tokio::net::TcpListener::bind(settings.listen).await?;
    // Tests and scripts read the bound address (the port may be 0).
    println!("listening on {}", listener.local_addr()?);
    tracing::info!(address = %listener.local_addr()?, "serving");
    if settings.insecure_test_totp_reuse {
        tracing::warn!("TOTP codes are accepted twice (test server setting): never for a practice");
    }
    pieper_server::launch_with_listener(settings, listener, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}

/// The audit event of an operator reading the log from the command line.
fn admin_read(practice: &str, detail: String) -> NewAuditEvent {
    NewAuditEvent {
        practice_id: practice.to_owned(),
        role: Some("operator".into()),
        action: "audit.read",
        outcome: "success",
        source: Some("pieper-server admin".into()),
        detail: Some(detail),
        ..NewAuditEvent::default()
    }
}

/// What the operator did, for the practice's audit log.
fn operator_event(practice: &str, action: &'static str, detail: String) -> NewAuditEvent {
    NewAuditEvent {
        practice_id: practice.to_owned(),
        role: Some("operator".into()),
        action,
        outcome: "success",
        source: Some("pieper-server admin".into()),
        detail: Some(detail),
        ..NewAuditEvent::default()
    }
}

async fn admin(
    settings: Settings,
    command: AdminCommand,
) -> Result<(), Box<dyn std::error::Error>> {
    if settings.database_url.is_none() {
        std::fs::create_dir_all(&settings.data_dir)?;
    }
    let sealer = pieper_server::secrets::Sealer::from_file(&settings.secrets_key_path())?;
    let db = Db::connect(&settings.database_url(), sealer).await?;
    match command {
        AdminCommand::CreatePractice { id, name } => {
            auth::check_name("the practice id", &id)?;
            db.create_practice(&id, &name).await?;
            println!("created practice {id}");
        }
        AdminCommand::CreateUser {
            account: Account { practice, username },
            display_name,
            role,
            password,
            json,
        } => {
            let role =
                Role::parse(&role).ok_or("role: huisarts, poh, assistent, manager or admin")?;
            auth::check_name("the user name", &username)?;
            let hash = auth::hash_password(&password)?;
            let secret = auth::new_totp_secret();
            let id = db
                .create_user(&practice, &username, &display_name, role, &hash, &secret)
                .await?;
            let url = auth::otpauth_url(&practice, &username, &secret);
            if json {
                println!(
                    "{}",
                    serde_json::json!({ "user_id": id, "totp_secret": secret, "otpauth_url": url })
                );
            } else {
                println!("created user {username} ({id})\nTOTP secret: {secret}\nenrol: {url}");
            }
        }
        AdminCommand::SetRetention { practice, days } => {
            db.set_retention_days(&practice, days).await?;
            println!("practice {practice} keeps undelivered data {days} days");
        }
        AdminCommand::Collect => {
            println!("{}", serde_json::to_string(&db.collect().await?)?);
        }
        AdminCommand::RevokeDevice { device } => {
            let (practice, user) = db.device_owner(&device).await?.ok_or("no such device")?;
            db.revoke_device(&device).await?;
            db.audit(NewAuditEvent {
                device_id: Some(device.clone()),
                ..operator_event(
                    &practice,
                    "device.revoke",
                    format!("device of user {user} revoked by the operator"),
                )
            })
            .await?;
            println!("revoked {device}");
        }
        AdminCommand::DisableUser {
            account: Account { practice, username },
        } => {
            let user = db.user_id(&practice, &username).await?;
            let revoked = db.disable_user(&practice, &user).await?;
            db.audit(operator_event(
                &practice,
                "user.disable",
                format!(
                    "disabled user {user}; revoked devices: {}",
                    revoked.join(",")
                ),
            ))
            .await?;
            println!("disabled {username}; revoked {} device(s)", revoked.len());
        }
        AdminCommand::SetRole {
            account: Account { practice, username },
            role,
        } => {
            let role = Role::parse(&role)
                .filter(|r| *r != Role::Admin)
                .ok_or("role: huisarts, poh, assistent, manager or connector")?;
            let user = db.user_id(&practice, &username).await?;
            db.set_role(&practice, &user, role).await?;
            db.audit(operator_event(
                &practice,
                "user.role",
                format!("user {user} is now {}", role.as_str()),
            ))
            .await?;
            println!("{username} is now {}", role.as_str());
        }
        AdminCommand::InviteUser {
            account: Account { practice, username },
            display_name,
            role,
        } => {
            let role = Role::parse(&role)
                .filter(|r| *r != Role::Admin)
                .ok_or("role: huisarts, poh, assistent, manager or connector")?;
            auth::check_name("the user name", &username)?;
            let user = db
                .invite_user(&practice, &username, &display_name, role)
                .await?;
            let code = db.issue_enrolment_code(&practice, &user, false).await?;
            db.audit(operator_event(
                &practice,
                "user.invite",
                format!("invited user {user} as {}", role.as_str()),
            ))
            .await?;
            println!(
                "invited {username}; enrolment code {} (once, for a week)",
                code.code
            );
        }
        AdminCommand::ResetLogin {
            account: Account { practice, username },
        } => {
            let user = db.user_id(&practice, &username).await?;
            let code = db.issue_enrolment_code(&practice, &user, true).await?;
            db.audit(operator_event(
                &practice,
                "user.reset",
                format!("reset the login of user {user}"),
            ))
            .await?;
            println!(
                "reset {username}; enrolment code {} (once, for a week)",
                code.code
            );
        }
        AdminCommand::EnableUser {
            account: Account { practice, username },
        } => {
            let user = db.user_id(&practice, &username).await?;
            db.enable_user(&practice, &user).await?;
            db.audit(operator_event(
                &practice,
                "user.enable",
                format!("enabled user {user}"),
            ))
            .await?;
            println!("enabled {username}");
        }
        AdminCommand::AuditVerify { practice } => {
            let practices = match practice {
                Some(p) => vec![p],
                None => db.audit_practices().await?,
            };
            let mut broken = 0;
            for practice in practices {
                let report = db.verify_audit(&practice).await?;
                if report.intact() {
                    println!("{practice}: {} records, chain intact", report.records);
                } else {
                    broken += 1;
                    println!("{practice}: {} records, CHAIN BROKEN", report.records);
                    for problem in &report.problems {
                        println!("  {problem}");
                    }
                }
            }
            if broken > 0 {
                return Err(format!("{broken} audit chain(s) broken").into());
            }
        }
        AdminCommand::AuditExport {
            practice,
            patient,
            user,
            from,
            to,
        } => {
            let filter = AuditFilter {
                from,
                to,
                user,
                patient,
                ..AuditFilter::default()
            };
            let events = db.audit_events(&practice, &filter).await?;
            db.audit(admin_read(
                &practice,
                format!("admin export events={}", events.len()),
            ))
            .await?;
            print!("{}", to_csv(&events));
        }
        AdminCommand::Breach {
            practice,
            device,
            user,
            from,
            to,
        } => {
            let rows = db
                .breach(&practice, device.as_deref(), user.as_deref(), from, to)
                .await?;
            db.audit(admin_read(
                &practice,
                format!(
                    "admin breach query device={} user={} patients={}",
                    device.as_deref().unwrap_or("-"),
                    user.as_deref().unwrap_or("-"),
                    rows.len()
                ),
            ))
            .await?;
            println!("{}", serde_json::to_string_pretty(&rows)?);
        }
        AdminCommand::PracticeSettings {
            practice,
            retention_days,
            ttl_policy,
            ttl_secs,
            history_messages,
            devices_per_user,
            key_update_days,
        } => {
            let mut settings = db.practice_settings(&practice).await?;
            if retention_days.is_some()
                || ttl_policy.is_some()
                || ttl_secs.is_some()
                || history_messages.is_some()
                || devices_per_user.is_some()
                || key_update_days.is_some()
            {
                settings.key_update_days = key_update_days.or(settings.key_update_days);
                settings.devices_per_user = devices_per_user.or(settings.devices_per_user);
                settings.history_messages = history_messages.unwrap_or(settings.history_messages);
                settings.retention_days = retention_days.unwrap_or(settings.retention_days);
                settings.ttl_policy = ttl_policy.unwrap_or(settings.ttl_policy);
                settings.ttl_secs = ttl_secs.or(settings.ttl_secs);
                db.set_practice_settings(&practice, &settings).await?;
            }
            println!("{}", serde_json::to_string(&settings)?);
        }
    }
    Ok(())
}
