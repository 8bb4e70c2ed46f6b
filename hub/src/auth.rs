//! Accounts, roles and tokens: argon2id password hashes, tokens stored as SHA-256 hashes.
//!
//! There is no default account and no default password: the first account is made by onboarding
//! (`POST /api/v1/onboarding`, refused once any account exists) or `hearth user add`. These
//! functions take a connection so the hub (through its writer) and the command line (directly)
//! share them.
//!
//! Roles: an administrator may do everything; a member controls the devices it may see. A
//! member's areas (`user_areas`) limit what it sees; none means every area. There is always at
//! least one administrator: removing or demoting the last one is refused.
//!
//! Tokens are of two kinds: `session` (a login; expires, and is the only kind a cookie may carry)
//! and `api` (long-lived, for scripts and integrations; revoked by hand).

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
/// How long a login session lasts unless `[http] session_ttl_secs` says otherwise.
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
    /// Removing or demoting the last administrator.
    #[error("`{0}` is the last administrator: make another account an administrator first")]
    LastAdmin(String),
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
    /// `admin` or `member`.
    pub role: &'static str,
    /// May manage accounts and settings.
    pub admin: bool,
    /// Areas a member is limited to; empty means every area. (Administrators see everything.)
    pub areas: Vec<String>,
    /// The token's id (to revoke it on logout).
    #[serde(skip)]
    pub token_id: i64,
    /// Whether the token is a login session (rather than an API token).
    #[serde(skip)]
    pub session: bool,
}

impl Principal {
    /// Whether this user may see devices in `area` (`None`: a device in no area).
    pub fn sees(&self, area: Option<&str>) -> bool {
        self.admin || self.areas.is_empty() || area.is_some_and(|a| self.areas.iter().any(|x| x == a))
    }

    /// Whether what this user sees is limited to some areas.
    pub fn limited(&self) -> bool {
        !self.admin && !self.areas.is_empty()
    }
}

/// The role name of the `admin` flag.
pub fn role_name(admin: bool) -> &'static str {
    if admin { "admin" } else { "member" }
}

/// An account as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    /// Account id.
    #[serde(skip)]
    pub id: i64,
    /// Name.
    pub name: String,
    /// `admin` or `member`.
    pub role: &'static str,
    /// Administrator.
    pub admin: bool,
    /// Areas a member is limited to (empty: every area).
    pub areas: Vec<String>,
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
    /// Expires (sessions); `null` for API tokens.
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

fn require_user(conn: &Connection, name: &str) -> Result<(i64, bool, String), AuthError> {
    find_user(conn, name)?.ok_or_else(|| AuthError::NoUser(name.to_owned()))
}

/// One account as listed.
pub fn user(conn: &Connection, name: &str) -> Result<User, AuthError> {
    let (id, admin, _) = require_user(conn, name)?;
    let (name, created): (String, i64) =
        conn.query_row("SELECT name, created_at FROM users WHERE id = ?1", [id], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(User {
        id,
        name,
        role: role_name(admin),
        admin,
        areas: user_areas(conn, id)?,
        created_at: Timestamp::from_millis(created),
    })
}

/// Sets a user's password (already hashed) and ends their sessions.
pub fn set_password(conn: &Connection, name: &str, hash: &str) -> Result<(), AuthError> {
    let (id, _, _) = require_user(conn, name)?;
    change_password(conn, id, hash, None)
}

/// Sets the password of account `user_id` (already hashed) and ends its sessions except
/// `keep` (the session that asked). API tokens stay.
pub fn change_password(conn: &Connection, user_id: i64, hash: &str, keep: Option<i64>) -> Result<(), AuthError> {
    conn.execute("UPDATE users SET password_hash = ?1 WHERE id = ?2", params![hash, user_id])?;
    conn.execute(
        "DELETE FROM tokens WHERE user_id = ?1 AND kind = 'session' AND (?2 IS NULL OR id <> ?2)",
        params![user_id, keep],
    )?;
    Ok(())
}

fn admin_count(conn: &Connection) -> Result<i64, AuthError> {
    Ok(conn.query_row("SELECT COUNT(*) FROM users WHERE admin = 1", [], |r| r.get(0))?)
}

/// Makes an account an administrator or a member; the last administrator stays one.
pub fn set_admin(conn: &Connection, name: &str, admin: bool) -> Result<(), AuthError> {
    let (id, was, _) = require_user(conn, name)?;
    if was && !admin && admin_count(conn)? <= 1 {
        return Err(AuthError::LastAdmin(name.to_owned()));
    }
    conn.execute("UPDATE users SET admin = ?1 WHERE id = ?2", params![admin, id])?;
    Ok(())
}

/// The areas a member is limited to (empty: every area).
pub fn user_areas(conn: &Connection, user_id: i64) -> Result<Vec<String>, AuthError> {
    let mut stmt = conn.prepare_cached("SELECT area FROM user_areas WHERE user_id = ?1 ORDER BY area")?;
    let rows = stmt.query_map([user_id], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Limits a member to `areas` (empty: every area).
pub fn set_user_areas(conn: &Connection, name: &str, areas: &[String]) -> Result<(), AuthError> {
    let (id, _, _) = require_user(conn, name)?;
    conn.execute("DELETE FROM user_areas WHERE user_id = ?1", [id])?;
    for area in areas {
        conn.execute("INSERT OR IGNORE INTO user_areas (user_id, area) VALUES (?1, ?2)", params![id, area])?;
    }
    Ok(())
}

/// Removes a user and their tokens; the last administrator stays.
pub fn remove_user(conn: &Connection, name: &str) -> Result<(), AuthError> {
    let (id, admin, _) = require_user(conn, name)?;
    if admin && admin_count(conn)? <= 1 {
        return Err(AuthError::LastAdmin(name.to_owned()));
    }
    conn.execute("DELETE FROM tokens WHERE user_id = ?1", [id])?;
    conn.execute("DELETE FROM user_areas WHERE user_id = ?1", [id])?;
    conn.execute("DELETE FROM users WHERE id = ?1", [id])?;
    Ok(())
}

/// Every user.
pub fn list_users(conn: &Connection) -> Result<Vec<User>, AuthError> {
    let mut stmt = conn.prepare("SELECT id, name, admin, created_at FROM users ORDER BY name")?;
    let rows = stmt.query_map([], |r| {
        let admin: bool = r.get(2)?;
        Ok(User {
            id: r.get(0)?,
            name: r.get(1)?,
            role: role_name(admin),
            admin,
            areas: Vec::new(),
            created_at: Timestamp::from_millis(r.get(3)?),
        })
    })?;
    let mut users: Vec<User> = rows.collect::<Result<_, _>>()?;
    for u in &mut users {
        u.areas = user_areas(conn, u.id)?;
    }
    Ok(users)
}

/// Creates a token for a user; returns its id and the secret (shown once, stored only hashed).
/// `kind` is `api` (no expiry) or `session` (expires after [`SESSION_DAYS`]).
pub fn create_token(conn: &Connection, user: &str, label: &str, kind: &str) -> Result<(i64, String), AuthError> {
    let ttl = (kind == "session").then_some(SESSION_DAYS * 86_400);
    create_token_with_ttl(conn, user, label, kind, ttl)
}

/// Creates a login session for a user that expires after `ttl_secs`.
pub fn create_session(conn: &Connection, user: &str, ttl_secs: i64) -> Result<(i64, String), AuthError> {
    create_token_with_ttl(conn, user, "web", "session", Some(ttl_secs))
}

fn create_token_with_ttl(
    conn: &Connection,
    user: &str,
    label: &str,
    kind: &str,
    ttl_secs: Option<i64>,
) -> Result<(i64, String), AuthError> {
    let (user_id, _, _) = require_user(conn, user)?;
    let token = new_token();
    let now = Timestamp::now();
    let expires = ttl_secs.map(|s| now.plus_millis(s.saturating_mul(1000)).as_millis());
    conn.execute(
        "INSERT INTO tokens (user_id, name, kind, hash, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![user_id, label, kind, token_hash(&token), now.as_millis(), expires],
    )?;
    Ok((conn.last_insert_rowid(), token))
}

/// Deletes every expired token; returns how many.
pub fn delete_expired(conn: &Connection) -> Result<usize, AuthError> {
    let now = Timestamp::now().as_millis();
    Ok(conn.execute("DELETE FROM tokens WHERE expires_at IS NOT NULL AND expires_at <= ?1", [now])?)
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

/// What a presented token turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// A valid token of this user.
    Valid(Principal),
    /// A token that has expired, by id: refuse it and delete it.
    Expired(i64),
    /// No such token.
    Unknown,
}

/// Looks a token up: its user, or whether it expired.
pub fn lookup(conn: &Connection, token: &str) -> Result<Lookup, AuthError> {
    if !token.starts_with(TOKEN_PREFIX) || token.len() > 200 {
        return Ok(Lookup::Unknown);
    }
    let row = conn
        .prepare_cached(
            "SELECT u.id, u.name, u.admin, t.id, t.kind, t.expires_at FROM tokens t JOIN users u ON u.id = t.user_id
             WHERE t.hash = ?1",
        )?
        .query_row([token_hash(token)], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, bool>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, Option<i64>>(5)?,
            ))
        })
        .optional()?;
    let Some((user_id, name, admin, token_id, kind, expires)) = row else { return Ok(Lookup::Unknown) };
    if expires.is_some_and(|e| e <= Timestamp::now().as_millis()) {
        return Ok(Lookup::Expired(token_id));
    }
    Ok(Lookup::Valid(Principal {
        user_id,
        name,
        role: role_name(admin),
        admin,
        areas: user_areas(conn, user_id)?,
        token_id,
        session: kind == "session",
    }))
}

/// The user a token belongs to, if it is valid and not expired.
pub fn authenticate(conn: &Connection, token: &str) -> Result<Option<Principal>, AuthError> {
    Ok(match lookup(conn, token)? {
        Lookup::Valid(p) => Some(p),
        Lookup::Expired(_) | Lookup::Unknown => None,
    })
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
        assert_eq!((who.name.as_str(), who.admin, who.role, who.session), ("alice", true, "admin", false));
        assert_eq!(authenticate(&conn, "hearth_0000").expect("query"), None);
        let stored: String = conn.query_row("SELECT hash FROM tokens", [], |r| r.get(0)).expect("row");
        assert_ne!(stored, token, "tokens are stored hashed");
        revoke_token(&conn, id).expect("revoke");
        assert_eq!(authenticate(&conn, &token).expect("query"), None);
    }

    #[test]
    fn roles_areas_the_last_admin_sessions_and_expiry() {
        let dir = tempfile::tempdir().expect("dir");
        let (conn, _) = crate::store::open_and_migrate(dir.path()).expect("db");
        let hash = hash_password("correct horse").expect("hash");
        onboard(&conn, "alice", &hash).expect("first account");
        insert_user(&conn, "bob", &hash, false).expect("member");
        assert!(matches!(remove_user(&conn, "alice"), Err(AuthError::LastAdmin(_))));
        assert!(matches!(set_admin(&conn, "alice", false), Err(AuthError::LastAdmin(_))));
        set_admin(&conn, "bob", true).expect("second admin");
        set_admin(&conn, "alice", false).expect("now alice may step down");
        assert!(matches!(set_admin(&conn, "bob", false), Err(AuthError::LastAdmin(_))));
        set_admin(&conn, "alice", true).expect("back");

        set_user_areas(&conn, "bob", &["kitchen".into(), "hall".into(), "hall".into()]).expect("areas");
        set_admin(&conn, "bob", false).expect("bob a member again");
        let (_, token) = create_session(&conn, "bob", 3600).expect("session");
        let bob = authenticate(&conn, &token).expect("query").expect("valid");
        assert_eq!((bob.role, bob.session, bob.areas.clone()), ("member", true, vec!["hall".into(), "kitchen".into()]));
        assert!(bob.sees(Some("kitchen")) && !bob.sees(Some("garage")) && !bob.sees(None) && bob.limited());
        let users = list_users(&conn).expect("list");
        assert_eq!(
            users.iter().map(|u| (u.name.as_str(), u.role)).collect::<Vec<_>>(),
            [("alice", "admin"), ("bob", "member")]
        );

        // A password change ends the other sessions only.
        let (keep, kept) = create_session(&conn, "bob", 3600).expect("session");
        let (_, api) = create_token(&conn, "bob", "script", "api").expect("api token");
        change_password(&conn, bob.user_id, &hash, Some(keep)).expect("change");
        assert!(authenticate(&conn, &token).expect("query").is_none());
        assert!(authenticate(&conn, &kept).expect("query").is_some());
        assert!(authenticate(&conn, &api).expect("query").is_some(), "API tokens stay");

        // An expired session is reported as such, and deleted by delete_expired.
        let (id, old) = create_session(&conn, "bob", 0).expect("session");
        assert_eq!(lookup(&conn, &old).expect("query"), Lookup::Expired(id));
        assert_eq!(delete_expired(&conn).expect("delete"), 1);
        assert_eq!(lookup(&conn, &old).expect("query"), Lookup::Unknown);

        remove_user(&conn, "bob").expect("remove");
        let left: i64 = conn.query_row("SELECT COUNT(*) FROM user_areas", [], |r| r.get(0)).expect("count");
        assert_eq!(left, 0);
    }
}
