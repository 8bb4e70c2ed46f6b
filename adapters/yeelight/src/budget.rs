//! The command budget: a Yeelight bulb takes about 60 requests a minute on one connection (144
//! on all of them together); beyond that it answers `client quota exceeded` and does nothing.
//! Every request of a session (commands, reads, keep-alives) spends from a per-device
//! [`Budget`], and writes that find it empty wait in an [`Outbox`] that keeps the latest value of
//! each setting, so a slider dragged across its range, or an automation firing 100 times, ends
//! with the last value applied, never a refusal, and nothing asked for after it is lost.
//!
//! The budget is a token bucket of [`BURST`] requests that refills at [`PER_MINUTE`] a minute: at
//! most `BURST + PER_MINUTE` = 58 requests in any 60 seconds, under the bulb's quota however it
//! counts its minute (a bucket refilling 60 a minute would allow 60 plus its burst). A burst of
//! commands goes out at once; after it, the latest values go out as the budget refills (one
//! every 1.25 s). It belongs to the device, not to one connection, so reconnecting does not
//! reset it. When the bulb says its quota was exceeded all the same (another app spends it too),
//! the budget is emptied and the refused write waits for it again, unless a newer value of the
//! same setting already does.
//!
//! Both are pure: the time is passed in, so tests control the clock.

use std::time::Duration;

use tokio::time::Instant;

use crate::map::{Slot, Write};

/// Requests a device may get at once.
pub const BURST: u32 = 10;
/// Requests a device may get a minute, after its burst.
pub const PER_MINUTE: u32 = 48;

/// A per-device token bucket of requests.
#[derive(Debug, Clone, PartialEq)]
pub struct Budget {
    capacity: f64,
    per_sec: f64,
    tokens: f64,
    at: Instant,
}

impl Budget {
    /// A full budget of [`BURST`] refilling at [`PER_MINUTE`], at `now`.
    pub fn new(now: Instant) -> Budget {
        Budget::with(BURST, PER_MINUTE, now)
    }

    /// A full budget of `burst` refilling at `per_minute`, at `now`.
    pub fn with(burst: u32, per_minute: u32, now: Instant) -> Budget {
        let capacity = f64::from(burst.max(1));
        Budget { capacity, per_sec: f64::from(per_minute.max(1)) / 60.0, tokens: capacity, at: now }
    }

    fn refill(&mut self, now: Instant) {
        if now > self.at {
            let gained = now.duration_since(self.at).as_secs_f64() * self.per_sec;
            self.tokens = (self.tokens + gained).min(self.capacity);
            self.at = now;
        }
    }

    /// Spends one request, if the budget has one at `now`.
    pub fn try_take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Whole requests left at `now`.
    pub fn left(&mut self, now: Instant) -> u32 {
        self.refill(now);
        self.tokens.floor() as u32
    }

    /// When the next request can be spent (`now` if it can be now).
    pub fn ready_at(&mut self, now: Instant) -> Instant {
        self.refill(now);
        if self.tokens >= 1.0 {
            now
        } else {
            // A little past the exact moment, so the float comes out at a whole token.
            now + Duration::from_secs_f64((1.0 - self.tokens) / self.per_sec) + Duration::from_millis(1)
        }
    }

    /// The bulb says its quota is spent: nothing more until the budget refills.
    pub fn exhaust(&mut self, now: Instant) {
        self.refill(now);
        self.tokens = 0.0;
    }
}

/// Writes waiting for the budget, at most one per setting: a newer write of a setting replaces
/// the one waiting (its context with it).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outbox {
    waiting: Vec<Write>,
}

impl Outbox {
    /// An empty outbox.
    pub fn new() -> Outbox {
        Outbox::default()
    }

    /// Queues `write`; returns the write of the same setting it replaced.
    pub fn push(&mut self, write: Write) -> Option<Write> {
        match self.waiting.iter_mut().find(|w| w.slot == write.slot) {
            Some(w) => Some(std::mem::replace(w, write)),
            None => {
                self.waiting.push(write);
                None
            }
        }
    }

    /// Queues `write` again after the bulb refused it for its quota, unless a newer write of its
    /// setting waits already; `true` when queued.
    pub fn retry(&mut self, write: Write) -> bool {
        if self.waiting.iter().any(|w| w.slot == write.slot) {
            return false;
        }
        self.waiting.push(write);
        true
    }

    /// The next write to send, taken out: turning on first, then color temperature, color and
    /// brightness, turning off last (a bulb takes values only while on).
    pub fn pop(&mut self) -> Option<Write> {
        let rank = |w: &Write| match (w.slot, w.power()) {
            (Slot::Power, Some(true)) => 0,
            (Slot::Ct, _) => 1,
            (Slot::Color, _) => 2,
            (Slot::Bright, _) => 3,
            _ => 4,
        };
        let (i, _) = self.waiting.iter().enumerate().min_by_key(|(_, w)| rank(w))?;
        Some(self.waiting.remove(i))
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// How many writes wait.
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    /// Whether the bulb will be on once what waits is sent, when a power write waits.
    pub fn power(&self) -> Option<bool> {
        self.waiting.iter().find_map(Write::power)
    }

    /// Takes everything out (the connection ended).
    pub fn drain(&mut self) -> Vec<Write> {
        std::mem::take(&mut self.waiting)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;
    use crate::map::{Caps, plan};
    use hearth_sdk::{CommandRequest, Context, Origin, Value};

    fn write(key: &str, value: Value, n: u32) -> Write {
        let caps = Caps::new("color", Some("get_prop set_power set_bright set_ct_abx set_rgb set_hsv"));
        let request =
            CommandRequest { set: [(key.to_owned(), value)].into_iter().collect(), ..CommandRequest::default() };
        let context = Context::new(format!("c{n}"), Origin::User { name: "alice".into() });
        plan(&request, &caps, Some(true), &context).0.remove(0)
    }

    #[test]
    fn a_burst_goes_at_once_then_one_request_each_refill() {
        let t0 = Instant::now();
        let mut b = Budget::new(t0);
        assert_eq!(b.left(t0), BURST);
        for _ in 0..BURST {
            assert!(b.try_take(t0));
        }
        assert!(!b.try_take(t0), "the burst is spent");
        let next = b.ready_at(t0);
        let gap = next - t0;
        assert!(gap > Duration::from_millis(1240) && gap < Duration::from_millis(1260), "{gap:?}");
        assert!(!b.try_take(t0 + Duration::from_millis(1200)));
        assert!(b.try_take(next));
        // Idle for long, it holds no more than its burst.
        assert_eq!(b.left(t0 + Duration::from_secs(3600)), BURST);
        b.exhaust(t0 + Duration::from_secs(3600));
        assert_eq!(b.left(t0 + Duration::from_secs(3600)), 0);
        assert!(b.try_take(t0 + Duration::from_secs(3602)));
    }

    #[test]
    fn no_sixty_seconds_ever_hold_more_than_sixty_requests() {
        // A sender that takes every request the budget gives, checked every 10 ms for ten
        // minutes, against the bulb's quota counted over any 60 s.
        let t0 = Instant::now();
        let mut b = Budget::new(t0);
        let mut sent: VecDeque<Instant> = VecDeque::new();
        let mut most = 0;
        let mut total = 0;
        for step in 0..60_000u64 {
            let now = t0 + Duration::from_millis(step * 10);
            while b.try_take(now) {
                sent.push_back(now);
                total += 1;
            }
            while sent.front().is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60)) {
                sent.pop_front();
            }
            most = most.max(sent.len());
        }
        assert!(most <= 60, "{most} requests in 60 s");
        assert!(most as u32 > PER_MINUTE, "the burst counts: {most}");
        assert!(total >= 10 * PER_MINUTE, "the budget is used: {total} in ten minutes");
    }

    #[test]
    fn the_latest_value_of_each_setting_waits_and_goes_out_in_the_bulbs_order() {
        let mut o = Outbox::new();
        for n in 1..=100 {
            o.push(write("brightness", Value::Number(f64::from(n)), n));
        }
        assert_eq!(o.len(), 1, "a hundred brightness commands wait as one");
        assert!(o.push(write("color_temperature", Value::Number(2700.0), 101)).is_none());
        let replaced = o.push(write("state", Value::Bool(false), 102));
        assert!(replaced.is_none());
        assert_eq!(o.power(), Some(false));
        let replaced = o.push(write("state", Value::Bool(true), 103)).expect("off is replaced by on");
        assert_eq!(replaced.power(), Some(false));
        let order: Vec<(String, String)> =
            std::iter::from_fn(|| o.pop()).map(|w| (w.method.to_owned(), w.context.id.clone())).collect();
        assert_eq!(
            order,
            [
                ("set_power".to_owned(), "c103".to_owned()),
                ("set_ct_abx".to_owned(), "c101".to_owned()),
                ("set_bright".to_owned(), "c100".to_owned())
            ],
            "on first, and the last brightness with its own command's context"
        );
        assert!(o.is_empty());
        // Off goes after the values.
        o.push(write("state", Value::Bool(false), 1));
        o.push(write("brightness", Value::Number(5.0), 2));
        assert_eq!(o.pop().map(|w| w.method), Some("set_bright"));
        assert_eq!(o.pop().map(|w| w.method), Some("set_power"));
    }

    #[test]
    fn a_refused_write_waits_again_unless_a_newer_one_does() {
        let mut o = Outbox::new();
        let refused = write("brightness", Value::Number(10.0), 1);
        assert!(o.retry(refused.clone()));
        assert_eq!(o.len(), 1);
        let mut o = Outbox::new();
        o.push(write("brightness", Value::Number(20.0), 2));
        assert!(!o.retry(refused));
        assert_eq!(o.pop().map(|w| w.params[0].clone()), Some(serde_json::json!(20)));
        assert!(o.drain().is_empty());
    }
}
