//! The shared front-desk tablet: several staff members on one device, each
//! with their own identity, keys and encrypted store in their own folder.
//! Only the active profile is unlocked; switching locks the one before (its
//! database key leaves memory), so nothing of one user — messages, search,
//! drafts, notifications — is open to the next.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use super::UserCheck;
use crate::client::{Client, Credentials};
use crate::{
    error::{Error, Result},
    keystore::KeyStore,
};

/// One tablet, several staff profiles.
pub struct SharedTablet {
    root: PathBuf,
    keystore: Arc<dyn KeyStore>,
    open: Mutex<HashMap<String, Client>>,
    active: Mutex<Option<String>>,
}

/// A profile's folder name: practice and user name, nothing else.
fn profile_name(practice: &str, username: &str) -> Result<String> {
    let ok = |s: &str| {
        !s.is_empty()
            && s.len() <= 64
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            && !s.starts_with('.')
    };
    if !ok(practice) || !ok(username) {
        return Err(Error::invalid(
            "profile",
            "practice and user name take letters, digits, '-', '_' and '.'",
        ));
    }
    Ok(format!("{practice}+{username}"))
}

impl SharedTablet {
    /// The tablet whose profiles live under `root`.
    pub fn new(root: impl AsRef<Path>, keystore: Arc<dyn KeyStore>) -> Self {
        Self {
            root: root.as_ref().to_owned(),
            keystore,
            open: Mutex::new(HashMap::new()),
            active: Mutex::new(None),
        }
    }

    /// The profiles on this tablet (`practice+username`).
    pub fn profiles(&self) -> Result<Vec<String>> {
        let mut names = Vec::new();
        let entries = match std::fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(names),
            Err(e) => return Err(crate::store::StoreError::Io(e.to_string()).into()),
        };
        for entry in entries.flatten() {
            if entry.path().join("pieper.db.key").exists() {
                names.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        names.sort();
        Ok(names)
    }

    /// The active profile's client.
    pub fn active(&self) -> Option<Client> {
        let active = self
            .active
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()?;
        self.open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&active)
            .cloned()
    }

    /// Locks whoever is active.
    fn lock_active(&self) {
        if let Some(client) = self.active() {
            client.lock();
        }
    }

    /// Signs a staff member in on this tablet as a profile of their own (a
    /// new device of theirs); the profile before is locked.
    pub async fn sign_in(&self, server: &str, credentials: Credentials) -> Result<Client> {
        let name = profile_name(&credentials.practice, &credentials.username)?;
        self.lock_active();
        let client = Client::login(
            server,
            self.root.join(&name),
            Arc::clone(&self.keystore),
            credentials,
        )
        .await?;
        self.open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.clone(), client.clone());
        *self.active.lock().unwrap_or_else(|p| p.into_inner()) = Some(name);
        Ok(client)
    }

    /// Switches to a profile after the platform's check of that user (their
    /// PIN): the profile before is locked first.
    pub async fn switch_to(&self, profile: &str, check: Arc<dyn UserCheck>) -> Result<Client> {
        if !self.profiles()?.iter().any(|p| p == profile) {
            return Err(Error::NotFound { what: "profile" });
        }
        self.lock_active();
        let loaded = self
            .open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(profile)
            .cloned();
        let client = match loaded {
            Some(client) => {
                client.unlock(check).await?;
                client
            }
            None => {
                // Not opened since the app started: the same check first.
                let passed = tokio::task::spawn_blocking(move || check.verify())
                    .await
                    .map_err(|e| Error::internal("user check", e))?;
                if !passed {
                    return Err(Error::Locked);
                }
                let client =
                    Client::open(self.root.join(profile), Arc::clone(&self.keystore)).await?;
                self.open
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(profile.to_owned(), client.clone());
                client
            }
        };
        *self.active.lock().unwrap_or_else(|p| p.into_inner()) = Some(profile.to_owned());
        Ok(client)
    }
}
