//! The engine's only source of time. The hub uses [`SystemClock`]; tests use [`ManualClock`] to
//! move time by hand, so time, interval, sun and `for` triggers are tested deterministically.

use std::sync::atomic::{AtomicI64, Ordering};

use hearth_sdk::Timestamp;

/// Tells the time.
pub trait Clock: Send + Sync + 'static {
    /// Now, UTC.
    fn now(&self) -> Timestamp;
}

/// The system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that moves only when told to.
#[derive(Debug, Default)]
pub struct ManualClock {
    now: AtomicI64,
}

impl ManualClock {
    /// A clock showing `at`.
    pub fn new(at: Timestamp) -> ManualClock {
        ManualClock { now: AtomicI64::new(at.as_millis()) }
    }

    /// Sets the time.
    pub fn set(&self, at: Timestamp) {
        self.now.store(at.as_millis(), Ordering::SeqCst);
    }

    /// Moves the time forward by `ms` milliseconds (backward when negative).
    pub fn advance(&self, ms: i64) {
        self.now.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.now.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let c = ManualClock::new(Timestamp::from_millis(1_000));
        assert_eq!(c.now(), Timestamp::from_millis(1_000));
        c.advance(500);
        assert_eq!(c.now(), Timestamp::from_millis(1_500));
        c.set(Timestamp::from_millis(10));
        assert_eq!(c.now(), Timestamp::from_millis(10));
        let system = SystemClock.now().as_millis();
        assert!(system > 1_700_000_000_000, "the system clock reads a plausible time: {system}");
    }
}
