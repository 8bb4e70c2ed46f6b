//! Adapters' secrets (a BLE device's bind key, a device's password), encrypted at rest.
//!
//! Each secret is sealed with AES-256-GCM under a key kept in its own file beside the database
//! (`secrets.key`, 32 random bytes, readable by the hub's user only), with the adapter and name
//! as associated data, so a sealed value cannot be moved to another slot. A copy of the database
//! (a backup) holds only sealed values; restoring secrets elsewhere needs the key file too.
//!
//! Invariants: a secret's value is never returned by the API, logged, or written unsealed; the
//! adapter sees it through its `hearth_sdk::Secrets` view once it is on disk.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use argon2::password_hash::rand_core::{OsRng, RngCore};
use hearth_sdk::{Secret, Secrets, Timestamp};
use rusqlite::{Connection, params};
use serde::Serialize;
use tokio::sync::watch;

use crate::store::StoreError;

/// The key file's name, in the data directory.
pub const KEY_FILE: &str = "secrets.key";

/// Why the secrets cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    /// The key file cannot be read or written.
    #[error("the secrets key file {path}: {error}")]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        error: String,
    },
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A secret as listed: its name and when it was set, never its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Listed {
    /// The name.
    pub name: String,
    /// When it was last set.
    pub updated_at: Timestamp,
}

/// The sealed secrets' key and every adapter's live view.
pub struct SecretStore {
    cipher: Aes256Gcm,
    views: Mutex<BTreeMap<String, watch::Sender<BTreeMap<String, Secret>>>>,
    loaded: Mutex<BTreeMap<String, BTreeMap<String, Secret>>>,
}

impl std::fmt::Debug for SecretStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretStore(<sealed>)")
    }
}

/// Reads the key file, or makes one (readable by this user only) when there is none.
fn key(data_dir: &Path) -> Result<[u8; 32], SecretsError> {
    let path = data_dir.join(KEY_FILE);
    let err = |error: String| SecretsError::KeyFile { path: path.clone(), error };
    match std::fs::read(&path) {
        Ok(bytes) => bytes.try_into().map_err(|b: Vec<u8>| {
            err(format!(
                "it holds {} bytes, not 32: restore it from your backup of it, or delete it and enter the secrets again",
                b.len()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut k = [0u8; 32];
            OsRng.fill_bytes(&mut k);
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut f = options.open(&path).map_err(|e| err(e.to_string()))?;
            f.write_all(&k).and_then(|()| f.sync_all()).map_err(|e| err(e.to_string()))?;
            tracing::info!(path = %path.display(), "Made the key that seals adapters' secrets.");
            Ok(k)
        }
        Err(e) => Err(err(e.to_string())),
    }
}

fn aad(adapter: &str, name: &str) -> Vec<u8> {
    [adapter.as_bytes(), b"\0", name.as_bytes()].concat()
}

impl SecretStore {
    /// Opens the secrets: the key file in `data_dir` (made when missing) and the sealed values
    /// in the database. A value that does not open (the key file was replaced) is skipped with a
    /// warning; entering it again replaces it.
    pub fn open(data_dir: &Path, conn: &Connection) -> Result<SecretStore, SecretsError> {
        let cipher = Aes256Gcm::new(&key(data_dir)?.into());
        let store = SecretStore { cipher, views: Mutex::new(BTreeMap::new()), loaded: Mutex::new(BTreeMap::new()) };
        let mut stmt = conn
            .prepare("SELECT adapter, name, nonce, sealed FROM secrets")
            .map_err(|e| SecretsError::Store(e.into()))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, Vec<u8>>(2)?, r.get::<_, Vec<u8>>(3)?))
            })
            .map_err(|e| SecretsError::Store(e.into()))?;
        let mut loaded: BTreeMap<String, BTreeMap<String, Secret>> = BTreeMap::new();
        for row in rows {
            let (adapter, name, nonce, sealed) = row.map_err(|e| SecretsError::Store(e.into()))?;
            match store.unseal(&adapter, &name, &nonce, &sealed) {
                Some(s) => {
                    loaded.entry(adapter).or_default().insert(name, s);
                }
                None => tracing::warn!(
                    adapter,
                    name,
                    "A stored secret does not open with this hub's key file; enter it again."
                ),
            }
        }
        *store.loaded.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = loaded;
        Ok(store)
    }

    /// The view an adapter starts with.
    pub fn view_for(&self, adapter: &str) -> Secrets {
        let initial =
            self.loaded.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(adapter).unwrap_or_default();
        let (tx, view) = Secrets::channel(initial);
        self.views.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(adapter.to_owned(), tx);
        view
    }

    /// Seals a value for a slot: the nonce and the sealed bytes.
    pub fn seal(&self, adapter: &str, name: &str, value: &str) -> (Vec<u8>, Vec<u8>) {
        let mut nonce = [0u8; 12];
        OsRng.fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: value.as_bytes(), aad: &aad(adapter, name) })
            .unwrap_or_default();
        (nonce.to_vec(), sealed)
    }

    fn unseal(&self, adapter: &str, name: &str, nonce: &[u8], sealed: &[u8]) -> Option<Secret> {
        if nonce.len() != 12 {
            return None;
        }
        let plain =
            self.cipher.decrypt(Nonce::from_slice(nonce), Payload { msg: sealed, aad: &aad(adapter, name) }).ok()?;
        String::from_utf8(plain).ok().map(Secret::new)
    }

    /// Tells the adapter a secret changed (`None`: removed). Call once it is on disk.
    pub fn publish(&self, adapter: &str, name: &str, value: Option<Secret>) {
        if let Some(tx) = self.views.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(adapter) {
            tx.send_modify(|all| {
                match value {
                    Some(v) => all.insert(name.to_owned(), v),
                    None => all.remove(name),
                };
            });
        }
    }
}

/// Stores a sealed value.
pub fn store(conn: &Connection, adapter: &str, name: &str, nonce: &[u8], sealed: &[u8]) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO secrets (adapter, name, nonce, sealed, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (adapter, name) DO UPDATE SET nonce = ?3, sealed = ?4, updated_at = ?5",
    )?
    .execute(params![adapter, name, nonce, sealed, Timestamp::now().as_millis()])?;
    Ok(())
}

/// Deletes a secret; whether there was one.
pub fn delete(conn: &Connection, adapter: &str, name: &str) -> Result<bool, StoreError> {
    Ok(conn.prepare_cached("DELETE FROM secrets WHERE adapter = ?1 AND name = ?2")?.execute(params![adapter, name])?
        > 0)
}

/// An adapter's secrets by name, without their values.
pub fn list(conn: &Connection, adapter: &str) -> Result<Vec<Listed>, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT name, updated_at FROM secrets WHERE adapter = ?1 ORDER BY name")?;
    let rows =
        stmt.query_map([adapter], |r| Ok(Listed { name: r.get(0)?, updated_at: Timestamp::from_millis(r.get(1)?) }))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The rule a secret's value follows, once its owner is known to keep a secret by that name.
#[derive(Debug, Clone, Copy)]
pub enum ValueRule {
    /// Any text but the empty one (the cloud link's credentials).
    NotEmpty,
    /// The MQTT passwords' rule (`broker::check_secret`).
    Broker,
    /// A built-in adapter's own check, of the name and the value together.
    Adapter(fn(&str, &str) -> Result<(), String>),
}

/// Checks, without a running hub, that `adapter` keeps a secret called `name`, as far as that can
/// be told before the value: the cloud link's credentials (see `cloud::secret_names`), the MQTT
/// passwords (see `broker::secret_names`), or a built-in adapter that keeps secrets (whose own
/// rule checks the name with the value). Plugins' secrets are set through the API, where the
/// plugin's rule is known.
pub fn secret_rule(config: &crate::config::Config, adapter: &str, name: &str) -> Result<ValueRule, String> {
    if adapter == crate::cloud::SECRETS {
        let names = crate::cloud::secret_names(&config.cloud);
        if !names.iter().any(|n| n == name) {
            return Err(format!("the cloud link keeps no secret `{name}`; it keeps: {}", names.join(", ")));
        }
        return Ok(ValueRule::NotEmpty);
    }
    if adapter == crate::broker::SECRETS {
        let names = crate::broker::secret_names(&config.mqtt);
        if !names.iter().any(|n| n == name) {
            return Err(format!("the MQTT broker keeps no secret `{name}`; it keeps: {}", names.join(", ")));
        }
        return Ok(ValueRule::Broker);
    }
    let Some(builtin) = crate::adapters::builtin().into_iter().find(|b| b.id == adapter) else {
        let ids: Vec<&str> = crate::adapters::builtin().iter().map(|b| b.id).collect();
        return Err(format!(
            "`{adapter}` is not a built-in adapter, `cloud` or `mqtt` (they are: cloud, mqtt, {}); a plugin's secrets are set through the API",
            ids.join(", ")
        ));
    };
    let spec =
        (builtin.make)().manifest().secrets.ok_or_else(|| format!("the adapter `{adapter}` keeps no secrets"))?;
    Ok(ValueRule::Adapter(spec.check))
}

/// Checks, without a running hub, that `adapter` keeps a secret called `name` and that `value`
/// suits it (see [`secret_rule`]).
pub fn check_offline(config: &crate::config::Config, adapter: &str, name: &str, value: &str) -> Result<(), String> {
    match secret_rule(config, adapter, name)? {
        ValueRule::NotEmpty if value.is_empty() => Err(format!("the secret `{name}` must not be empty")),
        ValueRule::NotEmpty => Ok(()),
        ValueRule::Broker => crate::broker::check_secret(name, value),
        ValueRule::Adapter(check) => check(name, value),
    }
}

/// Seals and stores a secret without a running hub (the command line); a running hub reads it at
/// its next start.
pub fn set_offline(
    data_dir: &Path,
    conn: &Connection,
    adapter: &str,
    name: &str,
    value: &str,
) -> Result<(), SecretsError> {
    let s = SecretStore::open(data_dir, conn)?;
    let (nonce, sealed) = s.seal(adapter, name, value);
    store(conn, adapter, name, &nonce, &sealed)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_in_their_slot_only_and_survive_a_restart() {
        let dir = tempfile::tempdir().expect("dir");
        let (conn, _) = crate::store::open_and_migrate(dir.path()).expect("db");
        let s = SecretStore::open(dir.path(), &conn).expect("open");
        let (nonce, sealed) = s.seal("ble", "A4:C1:38:0A:1B:2C", "231d39c1d7cc1ab1aee224cd096db932");
        assert!(!sealed.windows(4).any(|w| w == b"231d"), "sealed, not plain");
        store(&conn, "ble", "A4:C1:38:0A:1B:2C", &nonce, &sealed).expect("store");
        // Moved to another slot, it does not open.
        store(&conn, "ble", "A4:C1:38:0A:1B:2D", &nonce, &sealed).expect("store");
        drop(s);

        let again = SecretStore::open(dir.path(), &conn).expect("reopen with the same key file");
        let view = again.view_for("ble");
        assert_eq!(
            view.get("A4:C1:38:0A:1B:2C").map(|v| v.expose().to_owned()).as_deref(),
            Some("231d39c1d7cc1ab1aee224cd096db932")
        );
        assert!(view.get("A4:C1:38:0A:1B:2D").is_none());
        again.publish("ble", "A4:C1:38:0A:1B:2C", None);
        assert!(view.get("A4:C1:38:0A:1B:2C").is_none());
        let names: Vec<String> = list(&conn, "ble").expect("list").into_iter().map(|l| l.name).collect();
        assert_eq!(names, ["A4:C1:38:0A:1B:2C", "A4:C1:38:0A:1B:2D"]);
        assert!(format!("{again:?}").contains("sealed"));

        // The key file is the user's only, and a damaged one is refused with what to do.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE)).expect("key file").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(dir.path().join(KEY_FILE), b"short").expect("damage");
        let e = SecretStore::open(dir.path(), &conn).expect_err("damaged");
        assert!(e.to_string().contains("holds 5 bytes, not 32"), "{e}");
    }
}
