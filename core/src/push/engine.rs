//! This device's push token in the store.

use pieper_wire::PushTokenRegistration;
use rusqlite::OptionalExtension;

use crate::device::Device;
use crate::error::{Error, Result};

impl Device {
    pub(crate) fn stored_push_token(&self) -> Result<Option<(PushTokenRegistration, bool)>> {
        self.store.read(|c| {
            let row = c
                .query_row(
                    "SELECT provider, token, apns_environment, registered FROM push_token WHERE id = 1",
                    [],
                    |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, Option<String>>(2)?,
                            r.get::<_, bool>(3)?,
                        ))
                    },
                )
                .optional()?;
            let Some((provider, token, environment, registered)) = row else {
                return Ok(None);
            };
            let token: PushTokenRegistration = serde_json::from_value(serde_json::json!({
                "provider": provider,
                "token": token,
                "apns_environment": environment,
            }))
            .map_err(|e| Error::invalid("push_token", e.to_string()))?;
            Ok(Some((token, registered)))
        })
    }

    pub(crate) fn store_push_token(
        &self,
        token: &PushTokenRegistration,
        registered: bool,
    ) -> Result<()> {
        let value =
            serde_json::to_value(token).map_err(|e| Error::invalid("push_token", e.to_string()))?;
        self.store.write(|tx| {
            tx.execute(
                "INSERT OR REPLACE INTO push_token (id, provider, token, apns_environment, registered)
                 VALUES (1, ?1, ?2, ?3, ?4)",
                rusqlite::params![
                    value["provider"].as_str(),
                    token.token,
                    value["apns_environment"].as_str(),
                    registered
                ],
            )?;
            Ok(())
        })
    }

    pub(crate) fn forget_push_token(&self) -> Result<()> {
        self.store.write(|tx| {
            tx.execute("DELETE FROM push_token", [])?;
            Ok(())
        })
    }
}
