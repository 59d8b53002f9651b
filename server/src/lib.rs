//! Pieper's sync server: practices and accounts with 2FA, devices, the MLS
//! delivery service (ciphertext only), live fan-out, attachments and the
//! audit log. SQLite by default, PostgreSQL for a care group.

pub mod auth;
pub mod db;
pub mod error;
pub mod handlers;
pub mod hub;
pub mod key_packages;
pub mod metrics;
pub mod openapi;
pub mod push;
pub mod router;
pub mod secrets;
pub mod settings;
pub mod state;
pub mod throttle;
pub mod tls;
pub mod writer;

use std::{future::Future, net::SocketAddr};

use tokio::net::TcpListener;

use crate::{db::Db, error::AppResult, settings::Settings, state::AppState};

/// Serves on `listener` until `shutdown` resolves.
pub async fn launch_with_listener(
    settings: Settings,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> AppResult<()> {
    if settings.database_url.is_none() {
        std::fs::create_dir_all(&settings.data_dir)
            .map_err(|e| error::AppError::Internal(format!("data dir: {e}")))?;
    }
    let sealer = secrets::Sealer::from_file(&settings.secrets_key_path())?;
    let db = Db::connect(&settings.database_url(), sealer).await?;
    let state = AppState::new(db, settings)?;
    tokio::spawn(collect_periodically(state.clone()));
    tokio::spawn(expire_periodically(state.clone()));
    tokio::spawn(escalate_periodically(state.clone()));
    if state.db.backend() == db::Backend::Postgres {
        let url = state.settings.database_url();
        tokio::spawn(relay_notifications(state.clone(), url));
    }
    let tls = match (&state.settings.tls_cert, &state.settings.tls_key) {
        (Some(cert), Some(key)) => Some(tls::server_config(cert, key)?),
        _ => None,
    };
    let header_timeout = std::time::Duration::from_secs(state.settings.header_read_timeout_secs);
    let app = router::router(state);
    match tls {
        Some(config) => {
            let listener = tls::TlsListener::new(listener, config)
                .map_err(|e| error::AppError::Internal(format!("TLS listener: {e}")))?;
            serve_connections(listener, app, header_timeout, shutdown).await;
        }
        None => serve_connections(listener, app, header_timeout, shutdown).await,
    }
    Ok(())
}

/// Serves each accepted connection with HTTP/1 or HTTP/2 (WebSocket
/// upgrades included) until `shutdown`, then lets open requests finish. A
/// client that does not send a request's headers within `header_timeout`
/// is dropped: a slow trickle of header bytes holds no connection for long.
/// (axum::serve sets no timer, so hyper's header timeout never fires there.)
async fn serve_connections<L>(
    mut listener: L,
    app: axum::Router,
    header_timeout: std::time::Duration,
    shutdown: impl Future<Output = ()>,
) where
    L: axum::serve::Listener<Addr = SocketAddr>,
{
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use tower::ServiceExt as _;
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    // WebSockets over HTTP/2 use the CONNECT protocol.
    builder.http2().enable_connect_protocol();
    tokio::pin!(shutdown);
    loop {
        let (io, peer) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let app = app.clone();
        let service = hyper::service::service_fn(
            move |mut request: hyper::Request<hyper::body::Incoming>| {
                // Who connected, for the handlers' `ConnectInfo`.
                request
                    .extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                app.clone().oneshot(request.map(axum::body::Body::new))
            },
        );
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(io), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::trace!(error = %e, "connection ended");
            }
        });
    }
    graceful.shutdown().await;
}

/// Pushes unread urgent messages again, as urgent, to every member device
/// (the sender's own device aside), and tells the live ones.
async fn escalate_periodically(state: AppState) {
    let every = state
        .settings
        .push
        .urgent_escalation_secs
        .saturating_mul(1000);
    let tick = std::time::Duration::from_millis((every / 4).clamp(250, 5000));
    let mut interval = tokio::time::interval(tick);
    loop {
        interval.tick().await;
        if let Err(e) = escalate_due(&state, every).await {
            tracing::warn!(error = %e, "escalating urgent messages failed");
        }
    }
}

async fn escalate_due(state: &AppState, every_ms: u64) -> AppResult<()> {
    let now = db::now_ms();
    let max = state.settings.push.urgent_escalations;
    for due in state.db.due_urgent(now, max).await? {
        let next = now + i64::try_from(every_ms).unwrap_or(i64::MAX / 2);
        if !state.db.claim_escalation(&due, next).await? {
            continue; // another instance took it
        }
        state
            .metrics
            .urgent_escalations
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let devices: Vec<String> = state
            .db
            .member_devices(&due.conversation)
            .await?
            .into_iter()
            .filter(|d| *d != due.sender_device)
            .collect();
        let escalations = due.escalations + 1;
        state.hub.notify(
            &pieper_wire::ServerEvent::Escalated {
                conversation: due.conversation.clone(),
                message: due.message.clone(),
                escalations,
            },
            &devices,
        );
        let payload = push::PushPayload {
            conversation: due.conversation,
            message: due.message,
            seq: due.seq,
            urgent: true,
            escalation: escalations,
            self_test: None,
        };
        handlers::conversations::push_to(state.clone(), devices, payload, Vec::new()).await;
    }
    Ok(())
}

/// Removes delivered and expired data every `collect_interval_secs`.
async fn collect_periodically(state: AppState) {
    let every = std::time::Duration::from_secs(state.settings.collect_interval_secs.max(1));
    loop {
        tokio::time::sleep(every).await;
        match state.db.collect().await {
            Ok(c) => tracing::info!(
                delivered = c.delivered,
                expired = c.expired,
                expired_blobs = c.expired_blobs,
                disappeared = c.disappeared,
                audit_pruned = c.audit_pruned,
                "collected"
            ),
            Err(e) => tracing::warn!(error = %e, "collection failed"),
        }
    }
}

/// Removes disappearing messages soon after their time-to-live passes
/// (every few seconds: an indexed query that usually finds nothing).
async fn expire_periodically(state: AppState) {
    let every = std::time::Duration::from_secs(state.settings.collect_interval_secs.clamp(1, 5));
    loop {
        tokio::time::sleep(every).await;
        match state.db.remove_expired().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "disappearing messages removed"),
            Err(e) => tracing::warn!(error = %e, "removing disappearing messages failed"),
        }
    }
}

/// Delivers what other instances stored to the devices connected here
/// (PostgreSQL LISTEN/NOTIFY). Reconnects when the connection drops.
async fn relay_notifications(state: AppState, url: String) {
    loop {
        if let Err(e) = relay_once(&state, &url).await {
            tracing::warn!(error = %e, "notification listener failed; reconnecting");
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

async fn relay_once(state: &AppState, url: &str) -> AppResult<()> {
    let mut listener = sqlx::postgres::PgListener::connect(url).await?;
    listener.listen("pieper_envelopes").await?;
    loop {
        let note = listener.recv().await?;
        let mut parts = note.payload().split(':');
        let (Some(instance), Some(position), Some(count)) =
            (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if instance == &*state.instance {
            continue; // delivered already by this instance
        }
        let (Ok(position), Ok(count)) = (position.parse::<i64>(), count.parse::<i64>()) else {
            continue;
        };
        for (envelope, devices) in state.db.deliveries_at(position, count).await? {
            state.hub.deliver(&envelope, &devices, &state.metrics);
        }
    }
}
