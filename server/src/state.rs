//! What every handler shares.

use std::{sync::Arc, time::Duration};

use crate::{
    db::Db,
    error::{AppError, AppResult},
    hub::Hub,
    metrics::Metrics,
    push::Push,
    settings::Settings,
    throttle::Throttle,
    writer::Writer,
};

/// Shared state of one server instance.
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub db: Db,
    /// The settings it was started with.
    pub settings: Arc<Settings>,
    /// Live connections of this instance.
    pub hub: Arc<Hub>,
    /// Login throttling per account.
    pub account_throttle: Arc<Throttle>,
    /// Login throttling per source address.
    pub address_throttle: Arc<Throttle>,
    /// Password checks at once (each holds about 19 MiB): one per core.
    pub hashing: Arc<tokio::sync::Semaphore>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// This instance's id (tells its own notifications from others').
    pub instance: Arc<str>,
    /// The envelope log's writer (group commit).
    pub writer: Writer,
    /// The push gateway.
    pub push: Push,
}

impl AppState {
    /// State for `settings` over `db`; fails on unreadable push credentials.
    pub fn new(db: Db, settings: Settings) -> AppResult<Self> {
        let instance = uuid::Uuid::new_v4().to_string();
        let metrics = Arc::new(Metrics::default());
        let push = Push::start(&settings.push, db.clone(), Arc::clone(&metrics))
            .map_err(|e| AppError::Internal(format!("push settings: {e}")))?;
        Ok(Self {
            writer: Writer::start(db.clone(), instance.clone()),
            hub: Arc::new(Hub::new(settings.live_queue)),
            account_throttle: Arc::new(Throttle::new(
                db.clone(),
                settings.login_failures,
                Duration::from_secs(settings.login_window_secs),
            )),
            address_throttle: Arc::new(Throttle::new(
                db.clone(),
                settings.address_failures,
                Duration::from_secs(settings.login_window_secs),
            )),
            hashing: Arc::new(tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, |n| n.get()),
            )),
            metrics,
            push,
            instance: instance.into(),
            settings: Arc::new(settings),
            db,
        })
    }
}
