//! Jitter for retry delays, so that many clients that lost the same server do not come back in
//! step (a reconnect storm).

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// `d` times a random factor between 0.5 and 1.5.
pub fn jittered(d: Duration) -> Duration {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::Instant::now().elapsed().as_nanos());
    d.mul_f64(0.5 + (h.finish() % 10_000) as f64 / 10_000.0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_factor_stays_between_half_and_one_and_a_half_and_varies() {
        let base = std::time::Duration::from_secs(10);
        let all: Vec<_> = (0..50).map(|_| super::jittered(base)).collect();
        assert!(all.iter().all(|d| d.as_secs_f64() >= 5.0 && d.as_secs_f64() <= 15.0), "{all:?}");
        assert!(all.iter().any(|d| *d != all[0]), "not all the same");
    }
}
