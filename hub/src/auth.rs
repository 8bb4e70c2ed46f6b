//! Accounts and tokens: argon2id password hashes, bearer tokens stored as SHA-256 hashes.
//!
//! There is no default account and no default password: the first account is made by onboarding
//! (`POST /api/v1/onboarding`, refused once any account exists) or `hearth user add`. These
//! functions take a connection so the hub (through its writer) and the command line (directly)
//! share them.

use argon2::Argon2;
use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use hearth_sdk::Timestamp;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::store::StoreError;

/// Prefix of every token, so a leaked one is recognisable in logs and secret scanners.
pub const TOKEN_PREFIX: &str = "hearth_";
/// How long a login session lasts.
pub const SESSION_DAYS: i64 = 30;
/// Shortest password accepted.
pub const MIN_PASSWORD: usize = 8;

/// An account error.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// A bad user name.
    #[error("user name must be 1 to 64 characters of letters, digits, `.`, `_`, `-` or `@`")]
    BadName,
    /// A weak password.
    #[error("password must be at least {MIN_PASSWORD} characters")]
    WeakPassword,
    /// The name is taken.
    #[error("a user named `{0}` exists already")]
    Exists(String),
    /// No such user.
    #[error("no user named `{0}`")]
    NoUser(String),
    /// No such token.
    #[error("no token with id {0}")]
    NoToken(i64),
    /// Onboarding after an account exists.
    #[error("onboarding is done: an account exists already; log in instead")]
    AlreadyOnboarded,
    /// Hashing failed.
    #[error("password hashing failed: {0}")]
    Hash(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for AuthError {
    fn from(e: rusqlite::Error) -> Self {
        AuthError::Store(StoreError::Sqlite(e))
    }
}

/// A signed-in user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Principal {
    /// Account id.
    pub user_id: i64,
    /// Account name.
    pub name: String,
    /// May manage accounts and settings.
    pub admin: bool,
    /// The token's id (to revoke it on logout).
    #[serde(skip)]
    pub token_id: i64,
}

/// An account as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    /// Account id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Administrator.
    pub admin: bool,
    /// Created.
    pub created_at: Timestamp,
}

/// A token as listed (never the secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenInfo {
    /// Token id.
    pub id: i64,
    /// Its owner.
    pub user: String,
    /// Its label.
    pub name: String,
    /// `api` or `session`.
    pub kind: String,
    /// Created.
    pub created_at: Timestamp,
    /// Expires, for sessions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
}

/// Checks a user name.
pub fn check_name(name: &str) -> Result<(), AuthError> {
    let ok = !name.is_empty()
        && name.chars().count() <= 64
        && name.chars().all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok { Ok(()) } else { Err(AuthError::BadName) }
}

/// Hashes a password with argon2id (slow on purpose: call it off the async runtime).
pub fn hash_password(password: &str) -> Result<String, AuthError> {
    if password.chars().count() < MIN_PASSWORD {
        return Err(AuthError::WeakPassword);
    }
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AuthError::Hash(e.to_string()))
}

/// Checks a password against a stored hash (slow on purpose: call it off the async runtime).
pub fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

/// A hash that no password matches, verified when the user does not exist so that a login
/// takes as long for an unknown name as for a wrong password.
pub fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| hash_password("not a real password, only for timing").unwrap_or_default())
}

fn token_hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A new random token: the prefix and 256 bits as hex.
fn new_token() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    format!("{TOKEN_PREFIX}{}", hex(&bytes))
}

/// Creates a user with an already hashed password.
pub fn insert_user(conn: &Connection, name: &str, hash: &str, admin: bool) -> Result<i64, AuthError> {
    check_name(name)?;
    let exists: bool = conn.query_row("SELECT EXISTS (SELECT 1 FROM users WHERE name = ?1)", [name], |r| r.get(0))?;
    if exists {
        return Err(AuthError::Exists(name.to_owned()));
    }
    conn.execute(
        "INSERT INTO users (name, password_hash, admin, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![name, hash, admin, Timestamp::now().as_millis()],
    )?;
    Ok(conn.last_insert_rowid())
}

/// Creates the first account, an administrator; refused once any account exists.
pub fn onboard(conn: &Connection, name: &str, hash: &str) -> Result<i64, AuthError> {
    if user_count(conn)? > 0 {
        return Err(AuthError::AlreadyOnboarded);
    }
    insert_user(conn, name, hash, true)
}

/// How many accounts exist.
pub fn user_count(conn: &Connection) -> Result<i64, AuthError> {
    Ok(conn.query_row("SELECT COUNT(*) FROM users", [], |r| r.get(0))?)
}

/// A user's id, admin flag and password hash.
pub fn find_user(conn: &Connection, name: &str) -> Result<Option<(i64, bool, String)>, AuthError> {
    Ok(conn
        .query_row("SELECT id, admin, password_hash FROM users WHERE name = ?1", [name], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()?)
}

/// Sets a user's password (already hashed) and ends their sessions.
pub fn set_password(conn: &Connection, name: &str, hash: &str) -> Result<(), AuthError> {
    let (id, _, _) = find_user(conn, name)?.ok_or_else(|| AuthError::NoUser(name.to_owned()))?;
    conn.execute("UPDATE users SET password_hash = ?1 WHERE id = ?2", params![hash, id])?;
    conn.execute("DELETE FROM tokens WHERE user_id = ?1 AND kind = 'session'", [id])?;
    Ok(())
}

/// Removes a user and their tokens.
pub fn remove_user(conn: &Connection, name: &str) -> Result<(), AuthError> {
    let (id, _, _) = find_user(conn, name)?.ok_or_else(|| AuthError::NoUser(name.to_owned()))?;
    conn.execute("DELETE FROM tokens WHERE user_id = ?1", [id])?;
    conn.execute("DELETE FROM users WHERE id = ?1", [id])?;
    Ok(())
}

/// Every user.
pub fn list_users(conn: &Connection) -> Result<Vec<User>, AuthError> {
    let mut stmt = conn.prepare("SELECT id, name, admin, created_at FROM users ORDER BY name")?;
    let rows = stmt.query_map([], |r| {
        Ok(User { id: r.get(0)?, name: r.get(1)?, admin: r.get(2)?, created_at: Timestamp::from_millis(r.get(3)?) })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Creates a token for a user; returns its id and the secret (shown once, stored only hashed).
/// `kind` is `api` (no expiry) or `session` (expires after [`SESSION_DAYS`]).
pub fn create_token(conn: &Connection, user: &str, label: &str, kind: &str) -> Result<(i64, String), AuthError> {
    let (user_id, _, _) = find_user(conn, user)?.ok_or_else(|| AuthError::NoUser(user.to_owned()))?;
    let token = new_token();
    let now = Timestamp::now();
    let expires = (kind == "session").then(|| now.plus_millis(SESSION_DAYS * 86_400_000).as_millis());
    conn.execute(
        "INSERT INTO tokens (user_id, name, kind, hash, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![user_id, label, kind, token_hash(&token), now.as_millis(), expires],
    )?;
    Ok((conn.last_insert_rowid(), token))
}

/// Every token (never the secrets), optionally of one user.
pub fn list_tokens(conn: &Connection, user: Option<&str>) -> Result<Vec<TokenInfo>, AuthError> {
    let mut stmt = conn.prepare(
        "SELECT t.id, u.name, t.name, t.kind, t.created_at, t.expires_at FROM tokens t JOIN users u ON u.id = t.user_id
         WHERE ?1 IS NULL OR u.name = ?1 ORDER BY t.id",
    )?;
    let rows = stmt.query_map([user], |r| {
        Ok(TokenInfo {
            id: r.get(0)?,
            user: r.get(1)?,
            name: r.get(2)?,
            kind: r.get(3)?,
            created_at: Timestamp::from_millis(r.get(4)?),
            expires_at: r.get::<_, Option<i64>>(5)?.map(Timestamp::from_millis),
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Revokes a token by id.
pub fn revoke_token(conn: &Connection, id: i64) -> Result<(), AuthError> {
    if conn.execute("DELETE FROM tokens WHERE id = ?1", [id])? == 0 {
        return Err(AuthError::NoToken(id));
    }
    Ok(())
}

/// The user a bearer token belongs to, if it is valid and not expired.
pub fn authenticate(conn: &Connection, token: &str) -> Result<Option<Principal>, AuthError> {
    if !token.starts_with(TOKEN_PREFIX) || token.len() > 200 {
        return Ok(None);
    }
    let now = Timestamp::now().as_millis();
    Ok(conn
        .prepare_cached(
            "SELECT u.id, u.name, u.admin, t.id FROM tokens t JOIN users u ON u.id = t.user_id
             WHERE t.hash = ?1 AND (t.expires_at IS NULL OR t.expires_at > ?2)",
        )?
        .query_row(params![token_hash(token), now], |r| {
            Ok(Principal { user_id: r.get(0)?, name: r.get(1)?, admin: r.get(2)?, token_id: r.get(3)? })
        })
        .optional()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_and_tokens() {
        let dir = tempfile::tempdir().expect("dir");
        let (conn, _) = crate::store::open_and_migrate(dir.path()).expect("db");
        let hash = hash_password("correct horse").expect("hash");
        assert!(verify_password(&hash, "correct horse") && !verify_password(&hash, "wrong horse"));
        assert!(matches!(hash_password("short"), Err(AuthError::WeakPassword)));
        onboard(&conn, "alice", &hash).expect("first account");
        assert!(matches!(onboard(&conn, "bob", &hash), Err(AuthError::AlreadyOnboarded)));
        assert!(matches!(insert_user(&conn, "ALICE", &hash, false), Err(AuthError::Exists(_))));
        assert!(matches!(insert_user(&conn, "bad name", &hash, false), Err(AuthError::BadName)));
        let (id, token) = create_token(&conn, "alice", "cli", "api").expect("token");
        assert!(token.starts_with(TOKEN_PREFIX) && token.len() == TOKEN_PREFIX.len() + 64);
        let who = authenticate(&conn, &token).expect("query").expect("valid");
        assert_eq!((who.name.as_str(), who.admin), ("alice", true));
        assert_eq!(authenticate(&conn, "hearth_0000").expect("query"), None);
        let stored: String = conn.query_row("SELECT hash FROM tokens", [], |r| r.get(0)).expect("row");
        assert_ne!(stored, token, "tokens are stored hashed");
        revoke_token(&conn, id).expect("revoke");
        assert_eq!(authenticate(&conn, &token).expect("query"), None);
    }
}
