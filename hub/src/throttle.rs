//! Login throttling: in memory, per account and per client address, with lockouts that expire.
//!
//! Each key (an account name, lowercased as the database compares names; or a client address)
//! has a record of its recent failures. `max` failures within `window` lock the key for
//! `lockout`; each further lockout of the same key doubles that, up to `lockout_max`. Every
//! lockout expires, so the owner can always get back in after the cap (and a restart, or
//! `hearth user passwd` from the command line, works at any time). A key with no failure for
//! `window + lockout_max` is forgotten, lockout level and all. A successful login forgets the
//! account's record (not the address's: one valid account must not reset an address's count).
//!
//! Attempts in flight count as failures until they end, so parallel guesses cannot outrun the
//! count while the password hashes. The tables are bounded ([`MAX_KEYS`] each): above that,
//! forgotten and then the stalest records are dropped.
//!
//! Time is passed in, so the logic is tested without waiting.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The most keys each table holds.
pub const MAX_KEYS: usize = 10_000;

/// The limits, from `[http]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Failures of one account within the window that lock it.
    pub account_failures: u32,
    /// Failures from one address within the window that lock it.
    pub ip_failures: u32,
    /// The window failures are counted in.
    pub window: Duration,
    /// The first lockout.
    pub lockout: Duration,
    /// The longest lockout.
    pub lockout_max: Duration,
}

impl Limits {
    /// The limits of an `[http]` section.
    pub fn from_config(h: &crate::config::HttpConfig) -> Limits {
        Limits {
            account_failures: h.login_max_failures,
            ip_failures: h.login_ip_max_failures,
            window: Duration::from_secs(h.login_window_secs),
            lockout: Duration::from_secs(h.login_lockout_secs),
            lockout_max: Duration::from_secs(h.login_lockout_max_secs),
        }
    }

    fn lockout_for(&self, level: u32) -> Duration {
        let factor = 1u32.checked_shl(level.saturating_sub(1)).unwrap_or(u32::MAX);
        self.lockout.checked_mul(factor).unwrap_or(self.lockout_max).min(self.lockout_max)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::from_config(&crate::config::HttpConfig::default())
    }
}

/// What is locked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The account.
    Account,
    /// The client address.
    Address,
}

impl Scope {
    /// `account` or `address`.
    pub fn name(self) -> &'static str {
        match self {
            Scope::Account => "account",
            Scope::Address => "address",
        }
    }
}

/// A refused attempt: what is locked and for how long still.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Locked {
    /// The account or the address.
    pub scope: Scope,
    /// Time left.
    pub retry_after: Duration,
}

impl Locked {
    /// Whole seconds to wait (at least 1).
    pub fn retry_after_secs(&self) -> u64 {
        let s = self.retry_after.as_secs() + u64::from(self.retry_after.subsec_nanos() > 0);
        s.max(1)
    }
}

/// A lockout that a failure started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lockout {
    /// The account or the address.
    pub scope: Scope,
    /// How long.
    pub duration: Duration,
}

#[derive(Debug)]
struct Record {
    failures: VecDeque<Instant>,
    in_flight: u32,
    locked_until: Option<Instant>,
    level: u32,
    last: Instant,
}

impl Record {
    fn new(now: Instant) -> Record {
        Record { failures: VecDeque::new(), in_flight: 0, locked_until: None, level: 0, last: now }
    }

    fn forgettable(&self, now: Instant, limits: &Limits) -> bool {
        self.in_flight == 0
            && self.locked_until.is_none_or(|t| t <= now)
            && now.saturating_duration_since(self.last) >= limits.window + limits.lockout_max
    }

    fn expire(&mut self, now: Instant, limits: &Limits) {
        while self.failures.front().is_some_and(|t| now.saturating_duration_since(*t) >= limits.window) {
            self.failures.pop_front();
        }
        if self.locked_until.is_some_and(|t| t <= now) {
            self.locked_until = None;
        }
        if self.locked_until.is_none()
            && self.failures.is_empty()
            && now.saturating_duration_since(self.last) >= limits.window + limits.lockout_max
        {
            self.level = 0;
        }
    }
}

#[derive(Debug)]
struct Table<K> {
    records: HashMap<K, Record>,
}

impl<K: Hash + Eq + Clone> Table<K> {
    fn new() -> Self {
        Table { records: HashMap::new() }
    }

    fn entry(&mut self, key: &K, now: Instant, limits: &Limits) -> &mut Record {
        if !self.records.contains_key(key) && self.records.len() >= MAX_KEYS {
            self.records.retain(|_, r| !r.forgettable(now, limits));
            while self.records.len() >= MAX_KEYS {
                let stalest = self
                    .records
                    .iter()
                    .filter(|(_, r)| r.in_flight == 0)
                    .min_by_key(|(_, r)| r.last)
                    .map(|(k, _)| k.clone());
                match stalest {
                    Some(k) => self.records.remove(&k),
                    None => break,
                };
            }
        }
        let r = self.records.entry(key.clone()).or_insert_with(|| Record::new(now));
        r.expire(now, limits);
        r
    }

    /// Refuses when locked, or when the attempts in flight would reach the limit.
    fn check(&mut self, key: &K, max: u32, now: Instant, limits: &Limits, scope: Scope) -> Result<(), Locked> {
        let r = self.entry(key, now, limits);
        if let Some(until) = r.locked_until {
            return Err(Locked { scope, retry_after: until.saturating_duration_since(now) });
        }
        if r.failures.len() as u64 + u64::from(r.in_flight) >= u64::from(max) {
            return Err(Locked { scope, retry_after: Duration::from_secs(1) });
        }
        Ok(())
    }

    fn begin(&mut self, key: &K, now: Instant, limits: &Limits) {
        let r = self.entry(key, now, limits);
        r.in_flight += 1;
    }

    fn end(&mut self, key: &K) {
        if let Some(r) = self.records.get_mut(key) {
            r.in_flight = r.in_flight.saturating_sub(1);
        }
    }

    fn fail(&mut self, key: &K, max: u32, now: Instant, limits: &Limits, scope: Scope) -> Option<Lockout> {
        let r = self.entry(key, now, limits);
        r.last = now;
        r.failures.push_back(now);
        if r.failures.len() as u64 >= u64::from(max) {
            r.failures.clear();
            r.level = r.level.saturating_add(1);
            let duration = limits.lockout_for(r.level);
            r.locked_until = Some(now + duration);
            return Some(Lockout { scope, duration });
        }
        None
    }

    fn forget(&mut self, key: &K) {
        if let Some(r) = self.records.get_mut(key) {
            if r.in_flight == 0 {
                self.records.remove(key);
            } else {
                r.failures.clear();
                r.locked_until = None;
                r.level = 0;
            }
        }
    }
}

#[derive(Debug)]
struct Tables {
    accounts: Table<String>,
    addresses: Table<IpAddr>,
}

/// The throttle the login and password routes share.
#[derive(Debug, Clone)]
pub struct Throttle {
    limits: Limits,
    tables: Arc<Mutex<Tables>>,
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle::new(Limits::default())
    }
}

fn account_key(name: &str) -> String {
    // The database compares names with NOCASE (ASCII case folding); so does the throttle. No
    // account name is longer than 64 characters, so neither is a key (a megabyte-long "name"
    // must not cost a megabyte of memory).
    name.chars().take(64).collect::<String>().to_ascii_lowercase()
}

impl Throttle {
    /// A throttle with these limits.
    pub fn new(limits: Limits) -> Throttle {
        Throttle { limits, tables: Arc::new(Mutex::new(Tables { accounts: Table::new(), addresses: Table::new() })) }
    }

    /// The limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Starts an attempt for `account` from `ip`, or says why not (without any password check).
    pub fn begin(&self, account: &str, ip: Option<IpAddr>, now: Instant) -> Result<Attempt, Locked> {
        let key = account_key(account);
        let l = self.limits;
        let mut t = self.tables.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let by_account = t.accounts.check(&key, l.account_failures, now, &l, Scope::Account);
        let by_ip = match ip {
            Some(ip) => t.addresses.check(&ip, l.ip_failures, now, &l, Scope::Address),
            None => Ok(()),
        };
        match (by_account, by_ip) {
            (Err(a), Err(b)) => return Err(if a.retry_after >= b.retry_after { a } else { b }),
            (Err(e), _) | (_, Err(e)) => return Err(e),
            _ => {}
        }
        t.accounts.begin(&key, now, &l);
        if let Some(ip) = ip {
            t.addresses.begin(&ip, now, &l);
        }
        Ok(Attempt { throttle: self.clone(), account: key, ip, open: true })
    }
}

/// An attempt in flight; end it with [`Attempt::failed`] or [`Attempt::succeeded`]. Dropped
/// without either (an internal error), it counts as nothing.
#[derive(Debug)]
pub struct Attempt {
    throttle: Throttle,
    account: String,
    ip: Option<IpAddr>,
    open: bool,
}

impl Attempt {
    fn end(&mut self, t: &mut Tables) {
        if std::mem::take(&mut self.open) {
            t.accounts.end(&self.account);
            if let Some(ip) = self.ip {
                t.addresses.end(&ip);
            }
        }
    }

    /// The password was wrong: counts a failure for the account and the address; returns the
    /// lockouts this started.
    pub fn failed(mut self, now: Instant) -> Vec<Lockout> {
        let th = self.throttle.clone();
        let l = th.limits;
        let mut t = th.tables.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        self.end(&mut t);
        let mut out = Vec::new();
        out.extend(t.accounts.fail(&self.account, l.account_failures, now, &l, Scope::Account));
        if let Some(ip) = self.ip {
            out.extend(t.addresses.fail(&ip, l.ip_failures, now, &l, Scope::Address));
        }
        out
    }

    /// The password was right: the account's count starts again.
    pub fn succeeded(mut self) {
        let th = self.throttle.clone();
        let mut t = th.tables.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        self.end(&mut t);
        t.accounts.forget(&self.account);
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if self.open {
            let th = self.throttle.clone();
            let mut t = th.tables.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            self.end(&mut t);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            account_failures: 3,
            ip_failures: 5,
            window: Duration::from_secs(60),
            lockout: Duration::from_secs(10),
            lockout_max: Duration::from_secs(25),
        }
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().expect("ip"))
    }

    fn fail(t: &Throttle, name: &str, from: &str, now: Instant) -> Vec<Lockout> {
        t.begin(name, ip(from), now).expect("allowed").failed(now)
    }

    #[test]
    fn an_account_locks_after_its_failures_and_the_lockout_doubles_up_to_the_cap() {
        let t = Throttle::new(limits());
        let t0 = Instant::now();
        let s = Duration::from_secs;
        assert!(fail(&t, "Alice", "10.0.0.1", t0).is_empty());
        assert!(fail(&t, "alice", "10.0.0.2", t0 + s(1)).is_empty());
        let l = fail(&t, "ALICE", "10.0.0.3", t0 + s(2));
        assert_eq!(l, vec![Lockout { scope: Scope::Account, duration: s(10) }]);
        let locked = t.begin("alice", ip("10.0.0.4"), t0 + s(3)).expect_err("locked");
        assert_eq!((locked.scope, locked.retry_after_secs()), (Scope::Account, 9));
        assert!(t.begin("bob", ip("10.0.0.4"), t0 + s(3)).is_ok(), "other accounts are not locked");
        // After the lockout, three more failures lock it for twice as long, then the cap.
        let t1 = t0 + s(12);
        fail(&t, "alice", "10.0.0.1", t1);
        fail(&t, "alice", "10.0.0.2", t1);
        assert_eq!(fail(&t, "alice", "10.0.0.3", t1)[0].duration, s(20));
        let t2 = t1 + s(21);
        fail(&t, "alice", "10.0.0.1", t2);
        fail(&t, "alice", "10.0.0.2", t2);
        assert_eq!(fail(&t, "alice", "10.0.0.3", t2)[0].duration, s(25), "capped");
        // Every lockout expires.
        assert!(t.begin("alice", ip("10.0.0.1"), t2 + s(24)).is_err());
        assert!(t.begin("alice", ip("10.0.0.1"), t2 + s(25)).is_ok());
        // Quiet for window + cap: the level is forgotten, the next lockout is the first again.
        let t3 = t2 + s(25 + 60 + 25);
        fail(&t, "alice", "10.0.0.1", t3);
        fail(&t, "alice", "10.0.0.2", t3);
        assert_eq!(fail(&t, "alice", "10.0.0.3", t3)[0].duration, s(10));
    }

    #[test]
    fn failures_outside_the_window_do_not_count_and_a_success_resets_the_account() {
        let t = Throttle::new(limits());
        let t0 = Instant::now();
        let s = Duration::from_secs;
        fail(&t, "alice", "10.0.0.1", t0);
        fail(&t, "alice", "10.0.0.1", t0 + s(1));
        assert!(fail(&t, "alice", "10.0.0.1", t0 + s(61)).is_empty(), "the first failure left the window");
        t.begin("alice", ip("10.0.0.1"), t0 + s(62)).expect("allowed").succeeded();
        fail(&t, "alice", "10.0.0.1", t0 + s(63));
        assert!(fail(&t, "alice", "10.0.0.1", t0 + s(63)).is_empty(), "the count started again");
        // The address's count was not reset by the success: 5 failures from it in the window
        // (at 61, 63, 63, 64 and 64).
        assert!(fail(&t, "carol", "10.0.0.1", t0 + s(64)).is_empty());
        let l = fail(&t, "carol", "10.0.0.1", t0 + s(64));
        assert_eq!(l, vec![Lockout { scope: Scope::Address, duration: s(10) }]);
        let e = t.begin("dave", ip("10.0.0.1"), t0 + s(65)).expect_err("address locked");
        assert_eq!(e.scope, Scope::Address);
        assert!(t.begin("dave", ip("10.0.0.2"), t0 + s(65)).is_ok());
    }

    #[test]
    fn attempts_in_flight_count_and_a_dropped_attempt_counts_nothing() {
        let t = Throttle::new(limits());
        let now = Instant::now();
        let a = t.begin("alice", ip("10.0.0.1"), now).expect("1");
        let b = t.begin("alice", ip("10.0.0.1"), now).expect("2");
        let c = t.begin("alice", ip("10.0.0.1"), now).expect("3");
        let busy = t.begin("alice", ip("10.0.0.1"), now).expect_err("three in flight");
        assert_eq!(busy.retry_after_secs(), 1);
        drop(a);
        drop(b);
        c.succeeded();
        assert!(t.begin("alice", ip("10.0.0.1"), now).is_ok());
    }

    #[test]
    fn the_tables_stay_bounded() {
        let t = Throttle::new(limits());
        let now = Instant::now();
        for i in 0..(MAX_KEYS + 50) {
            fail(&t, &format!("user{i}"), "10.9.9.9", now);
            t.tables.lock().expect("lock").addresses.records.clear();
        }
        assert!(t.tables.lock().expect("lock").accounts.records.len() <= MAX_KEYS);
    }
}
