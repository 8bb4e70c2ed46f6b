//! Secrets the hub keeps for an adapter (a BLE device's bind key, a device's password): an
//! administrator enters them through the API (`PUT /api/v1/adapters/{id}/secrets/{name}`), the
//! hub stores them encrypted and never returns or logs them, and the adapter sees their values
//! through its [`Secrets`] view. An adapter that takes secrets says so in its manifest
//! ([`SecretSpec`]), with the check each one must pass.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use tokio::sync::watch;

/// A secret's value. Its `Debug` never shows it; read it with [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// A secret holding `value`.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value, for the one place that uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// What secrets an adapter takes: what their names and values are, and the check they pass.
#[derive(Clone, Copy, Serialize)]
pub struct SecretSpec {
    /// What a secret's name is, for people (`a device's Bluetooth address, A4:C1:38:0A:1B:2C`).
    pub names: &'static str,
    /// What its value is, for people (`its bind key: 32 hex digits`).
    pub values: &'static str,
    /// Checks a name and a value before the hub stores them; the error says what is wrong.
    #[serde(skip)]
    pub check: fn(&str, &str) -> Result<(), String>,
}

impl fmt::Debug for SecretSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretSpec").field("names", &self.names).field("values", &self.values).finish_non_exhaustive()
    }
}

impl PartialEq for SecretSpec {
    fn eq(&self, other: &SecretSpec) -> bool {
        self.names == other.names && self.values == other.values
    }
}

impl Eq for SecretSpec {}

/// An adapter's live view of its secrets, by name.
#[derive(Debug, Clone)]
pub struct Secrets {
    rx: watch::Receiver<BTreeMap<String, Secret>>,
}

impl Secrets {
    /// A view fed by the returned sender (the hub's end), starting with `secrets`.
    pub fn channel(secrets: BTreeMap<String, Secret>) -> (watch::Sender<BTreeMap<String, Secret>>, Secrets) {
        let (tx, rx) = watch::channel(secrets);
        (tx, Secrets { rx })
    }

    /// A view with no secrets that never changes.
    pub fn none() -> Secrets {
        Secrets::channel(BTreeMap::new()).1
    }

    /// One secret.
    pub fn get(&self, name: &str) -> Option<Secret> {
        self.rx.borrow().get(name).cloned()
    }

    /// Every secret now.
    pub fn all(&self) -> BTreeMap<String, Secret> {
        self.rx.borrow().clone()
    }

    /// Waits for a change; returns every secret then, or `None` once the hub has gone.
    pub async fn changed(&mut self) -> Option<BTreeMap<String, Secret>> {
        self.rx.changed().await.ok()?;
        Some(self.rx.borrow_and_update().clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_never_shows_in_debug_output() {
        let s = Secret::new("231d39c1d7cc1ab1aee224cd096db932");
        assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
        let (_tx, view) = Secrets::channel(BTreeMap::from([("A4:C1:38:0A:1B:2C".to_owned(), s.clone())]));
        assert!(!format!("{view:?}").contains("231d"));
        assert_eq!(view.get("A4:C1:38:0A:1B:2C").map(|s| s.expose().to_owned()), Some(s.expose().to_owned()));
    }
}
