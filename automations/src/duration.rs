//! Durations (`30s`, `1h30m`, `500ms`) and times of day (`07:30`, `22:15:30`) as people write
//! them in automations, with errors that say what was wrong and what is expected.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The longest duration accepted: 366 days.
pub const MAX_MILLIS: i64 = 366 * 86_400_000;

/// A length of time, in milliseconds; written as `1h30m`, `45s`, `250ms`, `2d`, or a bare
/// number of seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(pub i64);

/// Why a duration or time of day could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{input}` is not a {what}: {why}")]
pub struct ParseError {
    /// What was given.
    pub input: String,
    /// `duration` or `time of day`.
    pub what: &'static str,
    /// What is expected.
    pub why: String,
}

impl Duration {
    /// Milliseconds.
    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// From seconds.
    pub const fn from_secs(s: i64) -> Duration {
        Duration(s * 1000)
    }
}

const UNITS: &[(&str, i64)] = &[("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)];

impl FromStr for Duration {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |why: &str| ParseError { input: s.to_owned(), what: "duration", why: why.to_owned() };
        let t = s.trim();
        if t.is_empty() {
            return Err(err("it is empty; write e.g. 30s, 5m, 1h30m or 250ms"));
        }
        if let Ok(secs) = t.parse::<f64>() {
            if !secs.is_finite() || secs < 0.0 {
                return Err(err("a duration is zero or more seconds"));
            }
            let ms = (secs * 1000.0).round();
            if ms > MAX_MILLIS as f64 {
                return Err(err("the longest duration is 366 days"));
            }
            return Ok(Duration(ms as i64));
        }
        let mut total: i64 = 0;
        let mut rest = t;
        let mut last_unit = usize::MAX;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(|b| b.is_ascii_digit()).count();
            if digits == 0 {
                return Err(err("each part is a whole number and a unit: ms, s, m, h or d (e.g. 1h30m)"));
            }
            let n: i64 = rest[..digits].parse().map_err(|_| err("a number is too large"))?;
            rest = &rest[digits..];
            let unit = ["ms", "s", "m", "h", "d"]
                .iter()
                .position(|u| rest.starts_with(u) && !(u == &"m" && rest.starts_with("ms")));
            let Some(i) = unit else {
                return Err(err("each number needs a unit: ms, s, m, h or d (e.g. 1h30m)"));
            };
            if i >= last_unit {
                return Err(err("write the larger units first, each once (e.g. 1h30m, not 30m1h)"));
            }
            last_unit = i;
            let (name, ms) = UNITS[i];
            rest = &rest[name.len()..];
            total = n.checked_mul(ms).and_then(|v| total.checked_add(v)).ok_or_else(|| err("it is too long"))?;
        }
        if total > MAX_MILLIS {
            return Err(err("the longest duration is 366 days"));
        }
        Ok(Duration(total))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return f.write_str("0s");
        }
        let mut left = self.0;
        for (name, ms) in UNITS.iter().rev() {
            if left >= *ms {
                write!(f, "{}{name}", left / ms)?;
                left %= ms;
            }
        }
        Ok(())
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Seconds(f64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Seconds(s) => s.to_string().parse().map_err(serde::de::Error::custom),
            Raw::Text(t) => t.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// A time of day, in seconds after midnight local time; written `07:30` or `22:15:30`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimeOfDay(pub u32);

impl TimeOfDay {
    /// Seconds after midnight.
    pub const fn seconds(self) -> u32 {
        self.0
    }
}

impl FromStr for TimeOfDay {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseError {
            input: s.to_owned(),
            what: "time of day",
            why: "write hours and minutes on the 24-hour clock, e.g. 07:30 or 22:15:30".to_owned(),
        };
        let parts: Vec<&str> = s.trim().split(':').collect();
        if !(2..=3).contains(&parts.len())
            || parts.iter().any(|p| p.len() != 2 || !p.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(err());
        }
        let n = |i: usize| parts.get(i).map_or(Ok(0), |p| p.parse::<u32>().map_err(|_| err()));
        let (h, m, sec) = (n(0)?, n(1)?, n(2)?);
        if h > 23 || m > 59 || sec > 59 {
            return Err(err());
        }
        Ok(TimeOfDay(h * 3600 + m * 60 + sec))
    }
}

impl fmt::Display for TimeOfDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (h, m, s) = (self.0 / 3600, self.0 / 60 % 60, self.0 % 60);
        if s == 0 { write!(f, "{h:02}:{m:02}") } else { write!(f, "{h:02}:{m:02}:{s:02}") }
    }
}

impl Serialize for TimeOfDay {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TimeOfDay {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_and_write() {
        for (text, ms, back) in [
            ("30s", 30_000, "30s"),
            ("1h30m", 5_400_000, "1h30m"),
            ("250ms", 250, "250ms"),
            ("2d", 172_800_000, "2d"),
            ("1m30s500ms", 90_500, "1m30s500ms"),
            ("90", 90_000, "1m30s"),
            ("1.5", 1_500, "1s500ms"),
            ("0", 0, "0s"),
            (" 5m ", 300_000, "5m"),
        ] {
            let d: Duration = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!((d.as_millis(), d.to_string()), (ms, back.to_owned()), "{text}");
        }
        let json: Duration = serde_json::from_str("45").unwrap();
        assert_eq!(json, Duration::from_secs(45));
        assert_eq!(serde_json::to_string(&Duration(5_400_000)).unwrap(), "\"1h30m\"");
    }

    #[test]
    fn bad_durations_say_what_is_expected() {
        for (text, why) in [
            ("", "it is empty; write e.g. 30s, 5m, 1h30m or 250ms"),
            ("soon", "each part is a whole number and a unit: ms, s, m, h or d (e.g. 1h30m)"),
            ("5", ""),
            ("5 minutes", "each number needs a unit: ms, s, m, h or d (e.g. 1h30m)"),
            ("30m1h", "write the larger units first, each once (e.g. 1h30m, not 30m1h)"),
            ("-5", "a duration is zero or more seconds"),
            ("400d", "the longest duration is 366 days"),
            ("99999999999999999999d", "a number is too large"),
        ] {
            match text.parse::<Duration>() {
                Ok(_) if why.is_empty() => {}
                Ok(d) => panic!("{text} should fail, got {d}"),
                Err(e) => assert_eq!(e.to_string(), format!("`{text}` is not a duration: {why}")),
            }
        }
    }

    #[test]
    fn times_of_day() {
        assert_eq!("07:30".parse::<TimeOfDay>().map(TimeOfDay::seconds), Ok(27_000));
        assert_eq!("22:15:30".parse::<TimeOfDay>().map(|t| t.to_string()), Ok("22:15:30".to_owned()));
        assert_eq!("00:00".parse::<TimeOfDay>().map(|t| t.to_string()), Ok("00:00".to_owned()));
        for bad in ["24:00", "7:30", "07:60", "07", "07:30:61", "noon", "07-30"] {
            let e = bad.parse::<TimeOfDay>().expect_err(bad);
            assert!(e.to_string().contains("24-hour clock"), "{e}");
        }
    }
}
