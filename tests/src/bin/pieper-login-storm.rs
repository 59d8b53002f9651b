//! `pieper-login-storm`: N wrong logins for one account at once against the
//! real server, as a password-guessing burst. Prints how many the throttle
//! refused before any password check, how many reached the password hash
//! (argon2id, about 19 MiB each), and the server's peak resident memory
//! (VmHWM) before and after: the throttle and the hashing semaphore keep
//! both bounded however many arrive.

use clap::Parser;
use pieper_testkit::{Backend, BoxError, Server, TestDatabase, create_user};
use pieper_wire::LoginRequest;

/// A burst of wrong logins.
#[derive(Debug, Parser)]
#[command(name = "pieper-login-storm")]
struct Args {
    /// Wrong logins sent at once.
    #[arg(long, default_value_t = 200)]
    attempts: usize,
    /// Run on PostgreSQL (PIEPER_TEST_POSTGRES_URL) instead of SQLite.
    #[arg(long)]
    postgres: bool,
}

/// The peak resident set of a process (kB), from /proc.
fn peak_rss_kb(pid: u32) -> Result<u64, BoxError> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .ok_or("no VmHWM")?;
    Ok(line.split_whitespace().nth(1).ok_or("no value")?.parse()?)
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    let backend = if args.postgres {
        Backend::Postgres
    } else {
        Backend::Sqlite
    };
    let db = TestDatabase::new(backend).await?;
    let user = create_user(&db, "linde", "doelwit", "huisarts")?;
    let server = Server::start(&db, &[])?;
    let before = peak_rss_kb(server.pid())?;
    let http = reqwest::Client::new();
    let url = format!("{}/api/v1/login", server.base);
    let started = std::time::Instant::now();
    let attempts = (0..args.attempts).map(|i| {
        let (http, url) = (http.clone(), url.clone());
        let body = LoginRequest {
            practice: user.practice.clone(),
            username: user.username.clone(),
            password: format!("Geraden-{i:04}!"),
            totp: "123456".into(),
            device_name: "storm".into(),
            signature_key: None,
        };
        tokio::spawn(async move { http.post(url).json(&body).send().await.map(|r| r.status()) })
    });
    let (mut throttled, mut refused, mut other) = (0usize, 0usize, 0usize);
    for attempt in futures_util::future::join_all(attempts).await {
        match attempt?? {
            reqwest::StatusCode::TOO_MANY_REQUESTS => throttled += 1,
            reqwest::StatusCode::UNAUTHORIZED => refused += 1,
            _ => other += 1,
        }
    }
    let elapsed = started.elapsed();
    let after = peak_rss_kb(server.pid())?;
    let metrics = http
        .get(format!("{}/metrics", server.base))
        .send()
        .await?
        .text()
        .await?;
    let checked = metrics
        .lines()
        .find(|l| l.starts_with("pieper_logins_failed_total"))
        .unwrap_or("pieper_logins_failed_total ?");
    println!("attempts: {}", args.attempts);
    println!("refused by the throttle before any check: {throttled}");
    println!("refused after the password check: {refused} ({checked})");
    println!("other answers: {other}");
    println!("burst answered in: {:.2} s", elapsed.as_secs_f64());
    println!(
        "server peak RSS: {:.1} MiB before, {:.1} MiB after",
        before as f64 / 1024.0,
        after as f64 / 1024.0
    );
    Ok(())
}
