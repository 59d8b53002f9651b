//! `pieper-load`: N simulated devices on loopback, sending and receiving
//! through the real server. One device sends 1 KiB envelopes to a
//! conversation of all devices; every other device receives them on its
//! WebSocket. Prints delivered messages per second, send-to-receive latency
//! (p50, p99), and how many envelopes were lost or duplicated. The payload is
//! opaque to the server, as MLS ciphertext is; the envelope id carries the
//! sequence number and the sender records the send time, so the figures need
//! no clock but this machine's.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use clap::Parser;
use futures_util::StreamExt;
use pieper_testkit::{Backend, BoxError, Server, TestDatabase, create_user, current_step, totp_at};
use pieper_wire::{EnvelopeKind, LoginRequest, LoginResponse, Priority, SendRequest};
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest};

/// Load on the real server.
#[derive(Debug, Parser)]
#[command(name = "pieper-load")]
struct Args {
    /// Devices in the conversation (one sends, the others receive).
    #[arg(long, default_value_t = 200)]
    devices: usize,
    /// Envelopes to send.
    #[arg(long, default_value_t = 2000)]
    messages: usize,
    /// Envelopes per second to offer (0: as fast as the server takes them).
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// Requests in flight at once from the sender.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Payload bytes per envelope.
    #[arg(long, default_value_t = 1024)]
    payload: usize,
    /// Run on PostgreSQL (PIEPER_TEST_POSTGRES_URL) instead of SQLite.
    #[arg(long)]
    postgres: bool,
}

/// What each receiving device saw: sequence → arrival times (µs since start).
type Seen = Arc<Mutex<HashMap<u32, Vec<u64>>>>;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    if args.devices < 2 || args.payload < 12 {
        return Err("need at least 2 devices and 12 payload bytes".into());
    }
    let backend = if args.postgres {
        Backend::Postgres
    } else {
        Backend::Sqlite
    };
    let db = TestDatabase::new(backend).await?;
    eprintln!("creating {} users ...", args.devices);
    let users = create_users(&db, args.devices)?;
    let server = Server::start(&db, &["--live-queue", "4096"])?;
    let http = reqwest::Client::new();
    let step = current_step();
    let mut logins = Vec::new();
    for user in &users {
        let login: LoginResponse = http
            .post(format!("{}/api/v1/login", server.base))
            .json(&LoginRequest {
                practice: user.practice.clone(),
                username: user.username.clone(),
                password: pieper_testkit::PASSWORD.into(),
                totp: totp_at(user, step)?,
                device_name: "load".into(),
                // The load test sends opaque payloads: no MLS, no certificate.
                signature_key: None,
            })
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        logins.push(login);
    }
    let (sender, receivers) = logins.split_first().ok_or("no devices")?;
    let conversation = "load-test";
    post(
        &http,
        &server.base,
        &sender.device_token,
        "/api/v1/conversations",
        &serde_json::json!({ "id": conversation }),
    )
    .await?;
    let add = SendRequest {
        id: "add-all".into(),
        kind: EnvelopeKind::Commit,
        epoch: 0,
        payload: vec![1].into(),
        welcome: Some(vec![2].into()),
        add_devices: receivers.iter().map(|r| r.device_id.clone()).collect(),
        remove_devices: vec![],
        patient: None,
        priority: Priority::Routine,
        silent: false,
        urgent_for: Vec::new(),
        expires_at: None,
    };
    post(
        &http,
        &server.base,
        &sender.device_token,
        &format!("/api/v1/conversations/{conversation}/envelopes"),
        &add,
    )
    .await?;

    let start = Instant::now();
    let mut seen_by = Vec::new();
    let mut readers = Vec::new();
    for r in receivers {
        let seen: Seen = Arc::default();
        seen_by.push(seen.clone());
        let mut request =
            format!("{}/api/v1/ws", server.base.replacen("http", "ws", 1)).into_client_request()?;
        request.headers_mut().insert(
            "authorization",
            format!("Bearer {}", r.device_token).parse()?,
        );
        let (mut socket, _) = tokio_tungstenite::connect_async(request).await?;
        readers.push(tokio::spawn(async move {
            while let Some(Ok(frame)) = socket.next().await {
                if let tungstenite::Message::Text(text) = frame {
                    let now = start.elapsed().as_micros() as u64;
                    // The envelope id carries the sequence number: scanning
                    // for it keeps the harness's own CPU use small, so the
                    // figures are the server's.
                    if let Some(seq) = sequence_of(&text) {
                        let mut map = seen.lock().unwrap_or_else(|p| p.into_inner());
                        map.entry(seq).or_default().push(now);
                    }
                }
            }
        }));
    }
    eprintln!(
        "{} devices connected; sending {} envelopes ...",
        receivers.len(),
        args.messages
    );
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Send: each payload starts with its sequence number and send time (µs).
    let sent_at: Arc<Mutex<HashMap<u32, u64>>> = Arc::default();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let send_start = Instant::now();
    let mut senders = Vec::new();
    for _ in 0..args.concurrency.max(1) {
        let (http, base, token) = (
            http.clone(),
            server.base.clone(),
            sender.device_token.clone(),
        );
        let (next, sent_at, payload_len, total, rate) = (
            next.clone(),
            sent_at.clone(),
            args.payload,
            args.messages,
            args.rate,
        );
        senders.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= total {
                    return Ok::<_, BoxError>(());
                }
                if let Some(offset) = (i as u64 * 1_000_000).checked_div(rate) {
                    let due = send_start + Duration::from_micros(offset);
                    tokio::time::sleep_until(due.into()).await;
                }
                let now = start.elapsed().as_micros() as u64;
                let mut payload = vec![0x5au8; payload_len];
                payload[..4].copy_from_slice(&(i as u32).to_le_bytes());
                payload[4..12].copy_from_slice(&now.to_le_bytes());
                sent_at
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(i as u32, now);
                let req = SendRequest {
                    id: format!("m{i}"),
                    kind: EnvelopeKind::Application,
                    epoch: 1,
                    payload: payload.into(),
                    welcome: None,
                    add_devices: vec![],
                    remove_devices: vec![],
                    patient: None,
                    priority: Priority::Routine,
                    // Load runs measure delivery, not push providers.
                    silent: true,
                    urgent_for: Vec::new(),
                    expires_at: None,
                };
                post(
                    &http,
                    &base,
                    &token,
                    &format!("/api/v1/conversations/{conversation}/envelopes"),
                    &req,
                )
                .await?;
            }
        }));
    }
    for s in senders {
        s.await??;
    }
    let send_secs = send_start.elapsed().as_secs_f64();
    // Wait until every device has everything, or 10 s of silence.
    let expected = args.messages * receivers.len();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got: usize = seen_by
            .iter()
            .map(|s| s.lock().map(|m| m.len()).unwrap_or(0))
            .sum();
        if got >= expected || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let last_arrival = seen_by
        .iter()
        .filter_map(|s| {
            s.lock()
                .ok()
                .and_then(|m| m.values().flatten().max().copied())
        })
        .max()
        .unwrap_or(0);
    for r in readers {
        r.abort();
    }

    let sent_at = sent_at.lock().map_err(|_| "lock")?.clone();
    let mut latencies = Vec::with_capacity(expected);
    let (mut lost, mut duplicated, mut delivered) = (0usize, 0usize, 0usize);
    for seen in &seen_by {
        let seen = seen.lock().map_err(|_| "lock")?;
        for (seq, sent) in &sent_at {
            match seen.get(seq) {
                None => lost += 1,
                Some(times) => {
                    delivered += 1;
                    duplicated += times.len() - 1;
                    latencies.push(times[0].saturating_sub(*sent));
                }
            }
        }
    }
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * p) as usize)
            .copied()
            .unwrap_or(0) as f64
            / 1000.0
    };
    let first_send = sent_at.values().min().copied().unwrap_or(0);
    let span = (last_arrival.saturating_sub(first_send)) as f64 / 1e6;
    println!(
        "pieper-load: {} devices, {} envelopes of {} B, offered {} /s, {} backend",
        args.devices,
        args.messages,
        args.payload,
        if args.rate == 0 {
            "max".into()
        } else {
            args.rate.to_string()
        },
        if args.postgres {
            "PostgreSQL"
        } else {
            "SQLite"
        }
    );
    println!(
        "sent:      {:.0} envelopes/s (durable before acknowledged)",
        args.messages as f64 / send_secs
    );
    println!(
        "delivered: {delivered} of {expected}, {:.0} deliveries/s",
        delivered as f64 / span.max(1e-9)
    );
    println!(
        "latency:   p50 {:.2} ms, p99 {:.2} ms (send to receive)",
        pct(0.50),
        pct(0.99)
    );
    println!("lost:      {lost}");
    println!("duplicated: {duplicated}");
    if lost > 0 || duplicated > 0 {
        std::process::exit(1);
    }
    Ok(())
}

/// The sequence number in an application envelope's id (`"id":"m<seq>"`).
fn sequence_of(frame: &str) -> Option<u32> {
    let start = frame.find("\"id\":\"m")? + 7;
    let digits = frame[start..].split('"').next()?;
    digits.parse().ok()
}

fn create_users(db: &TestDatabase, count: usize) -> Result<Vec<pieper_testkit::User>, BoxError> {
    // Several admin processes at once: each hashes a password.
    let chunks: Vec<Vec<usize>> = (0..count)
        .collect::<Vec<_>>()
        .chunks(count.div_ceil(4))
        .map(<[usize]>::to_vec)
        .collect();
    std::thread::scope(|scope| {
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                scope.spawn(move || {
                    chunk
                        .into_iter()
                        .map(|i| create_user(db, "load", &format!("user{i:04}"), "huisarts"))
                        .collect::<Result<Vec<_>, _>>()
                })
            })
            .collect();
        let mut users = Vec::new();
        for h in handles {
            users.extend(h.join().map_err(|_| "user creation panicked")??);
        }
        Ok(users)
    })
}

async fn post<B: serde::Serialize>(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    path: &str,
    body: &B,
) -> Result<(), BoxError> {
    http.post(format!("{base}{path}"))
        .bearer_auth(token)
        .json(body)
        .send()
        .await?
        .error_for_status()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_sequence_in_a_frame() {
        let frame = r#"{"type":"envelope","position":9,"conversation":"c","seq":4,"kind":"application","epoch":1,"id":"m1234","sender_device":"d"}"#;
        assert_eq!(sequence_of(frame), Some(1234));
        assert_eq!(sequence_of(r#"{"id":"add-all"}"#), None);
    }
}
