//! The household's local time: a time zone read from the system's tz database, the local date,
//! weekday and time of day of a UTC instant, and the UTC instant of a local wall time.
//!
//! Automations say `07:30` and `mon`; the hub stores UTC. A [`Zone`] turns one into the other.
//!
//! Zones come from TZif files (RFC 8536, versions 1 to 4) under [`ZONEINFO_DIR`], read by this
//! module: the 64-bit transition table, then the POSIX TZ string of the footer for instants after
//! the last transition. The footer matters: "slim" zoneinfo files (the default of the tz project
//! since 2020) list transitions only until the rules became regular and leave every later year to
//! the footer (`CET-1CEST,M3.5.0,M10.5.0/3`). Leap-second records (the `right/` zones) are
//! ignored, and time zone abbreviations are not kept; only UTC offsets are.
//!
//! Wall times that do not exist or exist twice (see [`Zone::at`]): a wall time in a gap (spring
//! forward) becomes the instant the gap ends, so Berlin's 02:30 on 29 March 2026 is 03:00 CEST;
//! a wall time in a fold (fall back) is its first occurrence, so 02:30 on 25 October 2026 is
//! 02:30 CEST, not the second 02:30 an hour later (CET). Both follow one rule: the first instant
//! at which the local clock has reached the wall time.
//!
//! Nothing here panics on data from the disk: a file that is not a valid TZif file is an error.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use hearth_sdk::Timestamp;
use hearth_sdk::time::{civil_from_days, days_from_civil, days_in_month};

use crate::model::Weekday;

/// Where the system's tz database lives.
pub const ZONEINFO_DIR: &str = "/usr/share/zoneinfo";
/// The system's time zone: a TZif file, usually a link into [`ZONEINFO_DIR`].
pub const LOCALTIME_PATH: &str = "/etc/localtime";
/// The largest UTC offset accepted, either way: 25:59:59. Real zones stay within ±15 hours; the
/// bound keeps local-to-UTC resolution to a window of two days.
pub const MAX_OFFSET_SECS: i32 = 26 * 3600 - 1;

const SECS_PER_DAY: i64 = 86_400;

/// Why a time zone could not be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ZoneError {
    /// No zone of that name in the tz database.
    #[error("unknown time zone `{name}`: no such zone in {dir}; use a name like Europe/Berlin")]
    Unknown {
        /// The name given.
        name: String,
        /// The tz database searched.
        dir: String,
    },
    /// The name cannot be a zone's (empty, a path that leaves the database, odd characters).
    #[error("invalid time zone name `{name}`: use a name like Europe/Berlin")]
    BadName {
        /// The name given.
        name: String,
    },
    /// The zone's file exists but could not be read.
    #[error("cannot read time zone file {path}: {reason}")]
    Read {
        /// The file.
        path: String,
        /// What the system said.
        reason: String,
    },
    /// The file is not a valid TZif file.
    #[error("time zone file {path} is not valid: {reason}")]
    Invalid {
        /// The file (or the name given to [`Zone::from_tzif`]).
        path: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// A time zone: the UTC offset in force at every instant.
///
/// Cheap to clone (the rules are shared).
#[derive(Clone)]
pub struct Zone {
    name: Arc<str>,
    rules: Arc<Rules>,
}

impl fmt::Debug for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &*self.rules {
            Rules::Fixed(offset) => format!("fixed {offset}s"),
            Rules::Table(t) => {
                format!("{} transitions, footer {}", t.transitions.len(), if t.footer.is_some() { "yes" } else { "no" })
            }
        };
        f.debug_struct("Zone").field("name", &self.name).field("rules", &kind).finish()
    }
}

/// A local date and time of day in a zone, with the offset that made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalTime {
    /// The local calendar date: year, month (1–12), day (1–31).
    pub date: (i32, u32, u32),
    /// The local day of the week.
    pub weekday: Weekday,
    /// Seconds since local midnight (0–86399); milliseconds are dropped.
    pub seconds: u32,
    /// The UTC offset in force, seconds east of UTC (Berlin in summer: 7200).
    pub offset_secs: i32,
}

impl Zone {
    /// The zone of an IANA name (`Europe/Berlin`), read from [`ZONEINFO_DIR`].
    ///
    /// Surrounding whitespace is ignored. `UTC` and `Etc/UTC` work even without a tz database.
    ///
    /// # Errors
    /// [`ZoneError::Unknown`] when there is no such zone, [`ZoneError::BadName`] for a name that
    /// cannot be one, [`ZoneError::Read`] or [`ZoneError::Invalid`] when its file is unusable.
    pub fn named(name: &str) -> Result<Zone, ZoneError> {
        Zone::named_or_utc(Path::new(ZONEINFO_DIR), name)
    }

    /// [`Zone::named_in`], with `UTC` and `Etc/UTC` built in when the database lacks them.
    fn named_or_utc(dir: &Path, name: &str) -> Result<Zone, ZoneError> {
        match Zone::named_in(dir, name) {
            Err(ZoneError::Unknown { .. } | ZoneError::Read { .. }) if matches!(name.trim(), "UTC" | "Etc/UTC") => {
                Ok(Zone { name: Arc::from(name.trim()), rules: Arc::new(Rules::Fixed(0)) })
            }
            other => other,
        }
    }

    /// The zone of an IANA name, read from the tz database in `dir` (another copy of the
    /// database, or one in a test).
    ///
    /// # Errors
    /// As [`Zone::named`].
    pub fn named_in(dir: &Path, name: &str) -> Result<Zone, ZoneError> {
        let name = name.trim();
        if !is_zone_name(name) {
            return Err(ZoneError::BadName { name: name.to_owned() });
        }
        let path = dir.join(name);
        let unknown = || ZoneError::Unknown { name: name.to_owned(), dir: dir.display().to_string() };
        if path.is_dir() {
            return Err(unknown());
        }
        let data = std::fs::read(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => unknown(),
            _ => ZoneError::Read { path: path.display().to_string(), reason: e.to_string() },
        })?;
        let table =
            parse_tzif(&data).map_err(|reason| ZoneError::Invalid { path: path.display().to_string(), reason })?;
        Ok(Zone { name: Arc::from(name), rules: Arc::new(Rules::Table(table)) })
    }

    /// The system's zone, from [`LOCALTIME_PATH`]; UTC when it cannot be read, with the reason
    /// (for the caller to log) as the second value.
    ///
    /// The name is the link's target within the tz database (`Europe/Berlin`), or `localtime`
    /// when the file is a copy. The `TZ` environment variable is not consulted.
    pub fn system() -> (Zone, Option<ZoneError>) {
        match Zone::from_localtime(Path::new(LOCALTIME_PATH)) {
            Ok(zone) => (zone, None),
            Err(e) => (Zone::utc(), Some(e)),
        }
    }

    /// The zone of a TZif file at `path`, named after the link's target when it is a link into a
    /// tz database.
    fn from_localtime(path: &Path) -> Result<Zone, ZoneError> {
        let data = std::fs::read(path)
            .map_err(|e| ZoneError::Read { path: path.display().to_string(), reason: e.to_string() })?;
        let table =
            parse_tzif(&data).map_err(|reason| ZoneError::Invalid { path: path.display().to_string(), reason })?;
        let name = std::fs::read_link(path)
            .ok()
            .and_then(|target| {
                let target = target.to_string_lossy().into_owned();
                let (_, rest) = target.rsplit_once("zoneinfo/")?;
                let rest = rest.strip_prefix("posix/").unwrap_or(rest);
                is_zone_name(rest).then(|| rest.to_owned())
            })
            .unwrap_or_else(|| "localtime".to_owned());
        Ok(Zone { name: Arc::from(name), rules: Arc::new(Rules::Table(table)) })
    }

    /// A zone from the bytes of a TZif file, called `name`.
    ///
    /// # Errors
    /// [`ZoneError::Invalid`] (with `name` as its path) when the data is not a valid TZif file.
    pub fn from_tzif(name: &str, data: &[u8]) -> Result<Zone, ZoneError> {
        let table = parse_tzif(data).map_err(|reason| ZoneError::Invalid { path: name.to_owned(), reason })?;
        Ok(Zone { name: Arc::from(name), rules: Arc::new(Rules::Table(table)) })
    }

    /// UTC, named `UTC`.
    pub fn utc() -> Zone {
        Zone { name: Arc::from("UTC"), rules: Arc::new(Rules::Fixed(0)) }
    }

    /// A zone always `offset_secs` east of UTC (clamped to ±[`MAX_OFFSET_SECS`]), named like
    /// `UTC+05:30`; for tests and places without daylight saving time.
    pub fn fixed(offset_secs: i32) -> Zone {
        let offset = offset_secs.clamp(-MAX_OFFSET_SECS, MAX_OFFSET_SECS);
        let sign = if offset < 0 { '-' } else { '+' };
        let abs = offset.unsigned_abs();
        let (h, m, s) = (abs / 3600, abs / 60 % 60, abs % 60);
        let name = if offset == 0 {
            "UTC".to_owned()
        } else if s == 0 {
            format!("UTC{sign}{h:02}:{m:02}")
        } else {
            format!("UTC{sign}{h:02}:{m:02}:{s:02}")
        };
        Zone { name: Arc::from(name), rules: Arc::new(Rules::Fixed(offset)) }
    }

    /// The zone's name (`Europe/Berlin`, `UTC`, `UTC+05:30`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The local date, weekday and time of day at `ts`.
    pub fn local(&self, ts: Timestamp) -> LocalTime {
        let utc = ts.as_millis().div_euclid(1000);
        let offset = self.rules.offset_at(utc);
        let local = utc + i64::from(offset);
        let days = local.div_euclid(SECS_PER_DAY);
        let (y, m, d) = civil_from_days(days);
        LocalTime {
            date: (clamp_year(y), m, d),
            weekday: weekday_of(days),
            seconds: local.rem_euclid(SECS_PER_DAY) as u32,
            offset_secs: offset,
        }
    }

    /// The instant at which the local clock first shows `seconds_of_day` on `date`.
    ///
    /// - Usually there is exactly one such instant.
    /// - In a gap (spring forward) the wall time never shows; the result is the instant the gap
    ///   ends: Berlin's 02:30 on 29 March 2026 is 01:00 UTC, when clocks jump from 02:00 CET to
    ///   03:00 CEST. Every wall time of the gap gives that instant.
    /// - In a fold (fall back) the wall time shows twice; the result is the first: Berlin's
    ///   02:30 on 25 October 2026 is 00:30 UTC (CEST).
    ///
    /// Dates and times out of range are carried over (day 32 of January is 1 February,
    /// 86 400 seconds is the next midnight).
    pub fn at(&self, date: (i32, u32, u32), seconds_of_day: u32) -> Timestamp {
        let local = day_number(date).saturating_mul(SECS_PER_DAY).saturating_add(i64::from(seconds_of_day));
        Timestamp::from_millis(self.rules.resolve(local).saturating_mul(1000))
    }

    /// [`Zone::at`] for a day number (days since 1970-01-01) rather than a date.
    pub(crate) fn at_day(&self, day: i64, seconds_of_day: u32) -> Timestamp {
        let local = day.saturating_mul(SECS_PER_DAY).saturating_add(i64::from(seconds_of_day));
        Timestamp::from_millis(self.rules.resolve(local).saturating_mul(1000))
    }
}

/// Days since 1970-01-01 of a date, months and days out of range carried over.
pub(crate) fn day_number((year, month, day): (i32, u32, u32)) -> i64 {
    let months = i64::from(month) - 1;
    let year = i64::from(year) + months.div_euclid(12);
    let month = months.rem_euclid(12) as u32 + 1;
    days_from_civil(year, month, 1) + i64::from(day) - 1
}

/// The weekday of a day number (1970-01-01 was a Thursday).
pub(crate) fn weekday_of(days: i64) -> Weekday {
    const DAYS: [Weekday; 7] =
        [Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri, Weekday::Sat, Weekday::Sun];
    DAYS[(days + 3).rem_euclid(7) as usize]
}

/// A year from the SDK's calendar as `i32` (timestamps in milliseconds reach about ±292 million
/// years, well inside).
fn clamp_year(y: i64) -> i32 {
    i32::try_from(y).unwrap_or(if y < 0 { i32::MIN } else { i32::MAX })
}

/// Whether `name` can be a zone's name: relative, no `.` or `..` parts, letters, digits and
/// `_ - + .` only.
fn is_zone_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name.split('/').all(|part| {
            !part.is_empty()
                && part != "."
                && part != ".."
                && part.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'+' | b'.'))
        })
}

/// How a zone's offset is found.
#[derive(Debug)]
enum Rules {
    /// Always this offset.
    Fixed(i32),
    /// A TZif file's transitions and footer.
    Table(Table),
}

/// The content of a TZif file that matters here.
#[derive(Debug)]
struct Table {
    /// The offset before the first transition (time type 0).
    initial: i32,
    /// Transitions: the instant (seconds since 1970, ascending) and the offset from then on.
    transitions: Vec<(i64, i32)>,
    /// The rule for instants after the last transition.
    footer: Option<Posix>,
}

impl Rules {
    /// The UTC offset at `utc` (seconds since 1970).
    fn offset_at(&self, utc: i64) -> i32 {
        match self {
            Rules::Fixed(offset) => *offset,
            Rules::Table(table) => table.offset_at(utc),
        }
    }

    /// The offset at `from` and the changes of offset in `(from, to]`, in order.
    fn changes(&self, from: i64, to: i64) -> (i32, Vec<(i64, i32)>) {
        match self {
            Rules::Fixed(offset) => (*offset, Vec::new()),
            Rules::Table(table) => table.changes(from, to),
        }
    }

    /// The first instant (seconds since 1970) at which the local clock shows `local` (seconds
    /// since 1970 on the local calendar) or later.
    fn resolve(&self, local: i64) -> i64 {
        // Offsets are within ±MAX_OFFSET_SECS, so before `from` the clock shows less than
        // `local`, and by `to` it shows at least `local`.
        let bound = i64::from(MAX_OFFSET_SECS) + 1;
        let (from, to) = (local.saturating_sub(bound), local.saturating_add(bound));
        let (mut offset, changes) = self.changes(from, to);
        let mut start = from;
        for (at, next) in changes {
            // The clock runs from `start + offset` to just before `at + offset` in this piece.
            let t = start.max(local.saturating_sub(i64::from(offset)));
            if t < at {
                return t;
            }
            (start, offset) = (at, next);
        }
        start.max(local.saturating_sub(i64::from(offset)))
    }
}

impl Table {
    /// The offset at `utc`. After the last transition the footer's rule makes further
    /// transitions, and the last transition's offset holds until the first of them, as in the
    /// reference implementation (so a file whose footer disagrees with its last transition
    /// still reads right up to that transition).
    fn offset_at(&self, utc: i64) -> i32 {
        let i = self.transitions.partition_point(|&(at, _)| at <= utc);
        if i < self.transitions.len() {
            return if i == 0 { self.initial } else { self.transitions[i - 1].1 };
        }
        match (&self.footer, self.transitions.last()) {
            (Some(footer), None) => footer.offset_at(utc),
            (Some(footer), Some(&(last, offset))) => footer.latest(last, utc).unwrap_or(offset),
            (None, Some(&(_, offset))) => offset,
            (None, None) => self.initial,
        }
    }

    fn changes(&self, from: i64, to: i64) -> (i32, Vec<(i64, i32)>) {
        let start = self.offset_at(from);
        let lo = self.transitions.partition_point(|&(at, _)| at <= from);
        let hi = self.transitions.partition_point(|&(at, _)| at <= to);
        let mut changes: Vec<(i64, i32)> = self.transitions[lo..hi].to_vec();
        if let Some(footer) = &self.footer {
            let last = self.transitions.last().map_or(i64::MIN, |&(at, _)| at);
            changes.extend(footer.events(from.max(last), to));
        }
        (start, changes)
    }
}

/// A POSIX TZ string, the footer of a TZif file (`CET-1CEST,M3.5.0,M10.5.0/3`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Posix {
    /// Standard time's offset, seconds east of UTC (the string writes it west of UTC).
    std: i32,
    /// Daylight saving time, if any.
    dst: Option<PosixDst>,
}

/// The daylight saving part of a POSIX TZ string.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PosixDst {
    /// Its offset, seconds east of UTC.
    offset: i32,
    /// The day it starts, and the time of day (local standard time, seconds, may be negative or
    /// past 24 hours).
    start: (RuleDay, i32),
    /// The day it ends, and the time of day (local daylight time).
    end: (RuleDay, i32),
}

/// A day of the year in a POSIX TZ rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RuleDay {
    /// `Jn`: day 1 to 365, 29 February never counted.
    NoLeap(u16),
    /// `n`: day 0 to 365, 29 February counted.
    Leap(u16),
    /// `Mm.w.d`: weekday `d` (0 = Sunday) of week `w` (1–4, 5 = last) of month `m`.
    Month { month: u32, week: u32, weekday: u32 },
}

impl RuleDay {
    /// Days since 1970-01-01 of this day in `year`.
    fn day(self, year: i64) -> i64 {
        let jan1 = days_from_civil(year, 1, 1);
        match self {
            RuleDay::NoLeap(n) => {
                let leap = days_in_month(year, 2) == 29;
                jan1 + i64::from(n) - 1 + i64::from(leap && n >= 60)
            }
            RuleDay::Leap(n) => jan1 + i64::from(n),
            RuleDay::Month { month, week, weekday } => {
                let first = days_from_civil(year, month, 1);
                // 1970-01-01 was a Thursday (4 counting from Sunday).
                let first_weekday = (first + 4).rem_euclid(7);
                let mut day = first + (i64::from(weekday) - first_weekday).rem_euclid(7) + 7 * (i64::from(week) - 1);
                let end = first + i64::from(days_in_month(year, month));
                while day >= end {
                    day -= 7;
                }
                day
            }
        }
    }
}

impl Posix {
    /// The changes of offset in the years around `year`, in order: for each year, the start
    /// and the end of daylight saving time.
    fn year_changes(&self, dst: &PosixDst, year: i64) -> [(i64, i32); 2] {
        let (start_day, start_time) = dst.start;
        let (end_day, end_time) = dst.end;
        let instant = |day: RuleDay, time: i32, offset: i32| {
            day.day(year).saturating_mul(SECS_PER_DAY).saturating_add(i64::from(time) - i64::from(offset))
        };
        let start = instant(start_day, start_time, self.std);
        let end = instant(end_day, end_time, dst.offset);
        if start <= end { [(start, dst.offset), (end, self.std)] } else { [(end, self.std), (start, dst.offset)] }
    }

    /// The local (standard time) year of an instant.
    fn year_of(&self, utc: i64) -> i64 {
        civil_from_days(utc.saturating_add(i64::from(self.std)).div_euclid(SECS_PER_DAY)).0
    }

    /// The changes of the years from `first` to `last`, sorted (stable, so when daylight time
    /// ends at the instant it starts again, as in a zone on daylight time all year, the start
    /// comes last and wins).
    fn changes_in_years(&self, dst: &PosixDst, first: i64, last: i64) -> Vec<(i64, i32)> {
        let mut all: Vec<(i64, i32)> = (first..=last).flat_map(|y| self.year_changes(dst, y)).collect();
        all.sort_by_key(|&(at, _)| at);
        all
    }

    /// The offset the rule gives at `utc`.
    fn offset_at(&self, utc: i64) -> i32 {
        self.latest(i64::MIN, utc).unwrap_or(self.std)
    }

    /// The offset of the rule's last transition in `(from, to]`, if there is one.
    fn latest(&self, from: i64, to: i64) -> Option<i32> {
        let dst = self.dst.as_ref()?;
        let year = self.year_of(to);
        // Rule times reach ±167 hours, so a transition of the year before may still be ahead;
        // two years back always holds one.
        self.changes_in_years(dst, year - 2, year + 1)
            .iter()
            .rev()
            .find(|&&(at, _)| at > from && at <= to)
            .map(|&(_, offset)| offset)
    }

    /// The rule's transitions in `(from, to]`, in order (some may keep the offset).
    fn events(&self, from: i64, to: i64) -> Vec<(i64, i32)> {
        let Some(dst) = &self.dst else { return Vec::new() };
        let mut all = self.changes_in_years(dst, self.year_of(from) - 1, self.year_of(to) + 1);
        all.retain(|&(at, _)| at > from && at <= to);
        all
    }
}

/// Reads a POSIX TZ string (with the extensions of TZif version 3: rule times from -167 to 167
/// hours).
fn parse_posix(s: &str) -> Result<Posix, String> {
    let bad = |why: &str| format!("footer `{s}`: {why}");
    let mut p = Cursor { s: s.as_bytes(), i: 0 };
    p.name().ok_or_else(|| bad("expected a standard time name"))?;
    let std = -p.offset(24).ok_or_else(|| bad("expected a standard time offset"))?;
    if p.done() {
        return Ok(Posix { std, dst: None });
    }
    p.name().ok_or_else(|| bad("expected a daylight time name"))?;
    let offset = if p.peek().is_some_and(|b| b != b',') {
        -p.offset(24).ok_or_else(|| bad("expected a daylight time offset"))?
    } else {
        std + 3600
    };
    // Without rules, the US rules, as the reference implementation assumes.
    let (start, end) = if p.done() {
        (
            (RuleDay::Month { month: 3, week: 2, weekday: 0 }, 7200),
            (RuleDay::Month { month: 11, week: 1, weekday: 0 }, 7200),
        )
    } else {
        let start = p.rule().ok_or_else(|| bad("expected the day and time daylight time starts"))?;
        let end = p.rule().ok_or_else(|| bad("expected the day and time daylight time ends"))?;
        (start, end)
    };
    if !p.done() {
        return Err(bad("unexpected text after the rules"));
    }
    for o in [std, offset] {
        if o.abs() > MAX_OFFSET_SECS {
            return Err(bad("offset out of range"));
        }
    }
    Ok(Posix { std, dst: Some(PosixDst { offset, start, end }) })
}

/// A reading position in a POSIX TZ string.
struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn done(&self) -> bool {
        self.i >= self.s.len()
    }

    fn eat(&mut self, b: u8) -> bool {
        let yes = self.peek() == Some(b);
        if yes {
            self.i += 1;
        }
        yes
    }

    /// A zone abbreviation: three or more letters, or `<...>` of letters, digits, `+` and `-`.
    fn name(&mut self) -> Option<()> {
        if self.eat(b'<') {
            let start = self.i;
            while self.peek().is_some_and(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'-') {
                self.i += 1;
            }
            let long_enough = self.i - start >= 3;
            (self.eat(b'>') && long_enough).then_some(())
        } else {
            let start = self.i;
            while self.peek().is_some_and(|b| b.is_ascii_alphabetic()) {
                self.i += 1;
            }
            (self.i - start >= 3).then_some(())
        }
    }

    /// A number of at most three digits.
    fn number(&mut self) -> Option<i32> {
        let start = self.i;
        let mut n = 0i32;
        while let Some(b) = self.peek().filter(u8::is_ascii_digit) {
            if self.i - start == 3 {
                return None;
            }
            n = n * 10 + i32::from(b - b'0');
            self.i += 1;
        }
        (self.i > start).then_some(n)
    }

    /// `[+-]hh[:mm[:ss]]` in seconds, hours at most `max_hours`.
    fn offset(&mut self, max_hours: i32) -> Option<i32> {
        let sign = if self.eat(b'-') {
            -1
        } else {
            self.eat(b'+');
            1
        };
        let h = self.number()?;
        let mut secs = 0;
        if self.eat(b':') {
            let m = self.number()?;
            secs += m * 60;
            if self.eat(b':') {
                secs += self.number()?;
            }
            if m > 59 || secs - m * 60 > 59 {
                return None;
            }
        }
        (h <= max_hours).then_some(sign * (h * 3600 + secs))
    }

    /// `,date[/time]`.
    fn rule(&mut self) -> Option<(RuleDay, i32)> {
        if !self.eat(b',') {
            return None;
        }
        let day = if self.eat(b'J') {
            let n = self.number()?;
            (1..=365).contains(&n).then_some(RuleDay::NoLeap(n as u16))?
        } else if self.eat(b'M') {
            let month = self.number()?;
            let week = self.eat(b'.').then(|| self.number()).flatten()?;
            let weekday = self.eat(b'.').then(|| self.number()).flatten()?;
            let ok = (1..=12).contains(&month) && (1..=5).contains(&week) && (0..=6).contains(&weekday);
            ok.then_some(RuleDay::Month { month: month as u32, week: week as u32, weekday: weekday as u32 })?
        } else {
            let n = self.number()?;
            (0..=365).contains(&n).then_some(RuleDay::Leap(n as u16))?
        };
        let time = if self.eat(b'/') { self.offset(167)? } else { 7200 };
        Some((day, time))
    }
}

/// A reading position in a TZif file.
struct Bytes<'a> {
    data: &'a [u8],
    i: usize,
}

impl<'a> Bytes<'a> {
    fn take(&mut self, n: u64) -> Result<&'a [u8], String> {
        let n = usize::try_from(n).map_err(|_| "a count is too large".to_owned())?;
        let end = self.i.checked_add(n).filter(|&end| end <= self.data.len()).ok_or("the file is cut short")?;
        let out = &self.data[self.i..end];
        self.i = end;
        Ok(out)
    }

    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// The counts of a TZif header.
struct Header {
    version: u8,
    isutcnt: u64,
    isstdcnt: u64,
    leapcnt: u64,
    timecnt: u64,
    typecnt: u64,
    charcnt: u64,
}

fn header(b: &mut Bytes<'_>) -> Result<Header, String> {
    if b.take(4)? != b"TZif" {
        return Err("it does not start with `TZif`".to_owned());
    }
    let version = b.take(1)?[0];
    if !matches!(version, 0 | b'2'..=b'9') {
        return Err(format!("unknown version byte {version:#04x}"));
    }
    b.take(15)?;
    let mut counts = [0u64; 6];
    for c in &mut counts {
        *c = u64::from(b.u32()?);
    }
    let [isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt] = counts;
    if typecnt == 0 {
        return Err("it has no local time types".to_owned());
    }
    Ok(Header { version, isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt })
}

/// Reads the data block after `h`, with `time_size`-byte transition times.
fn data_block(b: &mut Bytes<'_>, h: &Header, time_size: u64) -> Result<Table, String> {
    let times = b.take(h.timecnt * time_size)?;
    let indices = b.take(h.timecnt)?;
    let types = b.take(h.typecnt * 6)?;
    b.take(h.charcnt)?;
    b.take(h.leapcnt * (time_size + 4))?;
    b.take(h.isstdcnt)?;
    b.take(h.isutcnt)?;
    let offsets: Vec<i32> = types
        .chunks_exact(6)
        .map(|t| {
            let offset = i32::from_be_bytes([t[0], t[1], t[2], t[3]]);
            if offset.abs() > MAX_OFFSET_SECS {
                Err(format!("UTC offset {offset}s is out of range"))
            } else {
                Ok(offset)
            }
        })
        .collect::<Result<_, _>>()?;
    let mut transitions = Vec::with_capacity(indices.len());
    for (time, &index) in times.chunks_exact(time_size as usize).zip(indices) {
        let at = match *time {
            [a, b, c, d] => i64::from(i32::from_be_bytes([a, b, c, d])),
            [a, b, c, d, e, f, g, h] => i64::from_be_bytes([a, b, c, d, e, f, g, h]),
            _ => return Err("bad transition time size".to_owned()),
        };
        let offset =
            *offsets.get(usize::from(index)).ok_or("a transition names a local time type that is not there")?;
        if transitions.last().is_some_and(|&(prev, _)| prev >= at) {
            return Err("transition times are not in ascending order".to_owned());
        }
        transitions.push((at, offset));
    }
    Ok(Table { initial: offsets[0], transitions, footer: None })
}

/// Reads a TZif file (RFC 8536): the version 1 block, or for version 2 and later the 64-bit
/// block and the footer.
fn parse_tzif(data: &[u8]) -> Result<Table, String> {
    let mut b = Bytes { data, i: 0 };
    let v1 = header(&mut b)?;
    if v1.version == 0 {
        return data_block(&mut b, &v1, 4);
    }
    // Skip the 32-bit block.
    b.take(v1.timecnt * 5 + v1.typecnt * 6 + v1.charcnt + v1.leapcnt * 8 + v1.isstdcnt + v1.isutcnt)?;
    let v2 = header(&mut b)?;
    let mut table = data_block(&mut b, &v2, 8)?;
    let rest = &data[b.i..];
    let footer = rest
        .strip_prefix(b"\n")
        .and_then(|f| f.iter().position(|&c| c == b'\n').map(|end| &f[..end]))
        .ok_or("the footer is missing")?;
    let footer = std::str::from_utf8(footer).map_err(|_| "the footer is not text".to_owned())?;
    if !footer.is_empty() {
        table.footer = Some(parse_posix(footer)?);
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn zone(name: &str) -> Zone {
        Zone::named(name).unwrap_or_else(|e| panic!("{e}"))
    }

    /// `zone.local` as `(date, HH:MM:SS, offset)`.
    fn show(zone: &Zone, at: &str) -> ((i32, u32, u32), String, i32) {
        let l = zone.local(ts(at));
        let s = l.seconds;
        (l.date, format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60), l.offset_secs)
    }

    fn hms(h: u32, m: u32, s: u32) -> u32 {
        h * 3600 + m * 60 + s
    }

    /// A version 2 TZif file: transitions (instant, index into `types`), types (offset,
    /// is_dst) and a footer.
    fn tzif(transitions: &[(i64, u8)], types: &[(i32, bool)], footer: &str) -> Vec<u8> {
        let header = |out: &mut Vec<u8>, timecnt: usize| {
            out.extend_from_slice(b"TZif2");
            out.extend_from_slice(&[0; 15]);
            for n in [0, 0, 0, timecnt, types.len(), 4] {
                out.extend_from_slice(&(n as u32).to_be_bytes());
            }
        };
        let mut out = Vec::new();
        // An empty version 1 block, as zic writes for slim files.
        header(&mut out, 0);
        for &(offset, dst) in types {
            out.extend_from_slice(&offset.to_be_bytes());
            out.extend_from_slice(&[u8::from(dst), 0]);
        }
        out.extend_from_slice(b"ABC\0");
        header(&mut out, transitions.len());
        for &(at, _) in transitions {
            out.extend_from_slice(&at.to_be_bytes());
        }
        out.extend(transitions.iter().map(|&(_, i)| i));
        for &(offset, dst) in types {
            out.extend_from_slice(&offset.to_be_bytes());
            out.extend_from_slice(&[u8::from(dst), 0]);
        }
        out.extend_from_slice(b"ABC\0");
        out.push(b'\n');
        out.extend_from_slice(footer.as_bytes());
        out.push(b'\n');
        out
    }

    #[test]
    fn berlin_summer_and_winter_offsets() {
        let berlin = zone("Europe/Berlin");
        assert_eq!(berlin.name(), "Europe/Berlin");
        assert_eq!(show(&berlin, "2026-07-01T12:00:00Z"), ((2026, 7, 1), "14:00:00".into(), 7200));
        assert_eq!(show(&berlin, "2026-01-15T23:30:00Z"), ((2026, 1, 16), "00:30:00".into(), 3600));
        let l = berlin.local(ts("2026-01-15T23:30:00.999Z"));
        assert_eq!((l.weekday, l.seconds), (Weekday::Fri, 1800));
        assert_eq!(berlin.at((2026, 7, 1), hms(14, 0, 0)), ts("2026-07-01T12:00:00Z"));
        assert_eq!(berlin.at((2026, 1, 16), hms(0, 30, 0)), ts("2026-01-15T23:30:00Z"));
        // Far past the file's last transition (2037 in fat files, 1996 in slim ones): the footer.
        assert_eq!(show(&berlin, "2100-07-01T00:00:00Z").2, 7200);
        assert_eq!(show(&berlin, "2100-12-01T00:00:00Z").2, 3600);
        // Before standard time: local mean time, +0:53:28.
        assert_eq!(show(&berlin, "1850-01-01T00:00:00Z").2, 3208);
    }

    #[test]
    fn berlin_spring_forward_2026_is_a_gap() {
        let berlin = zone("Europe/Berlin");
        // Last Sunday of March: 02:00 CET becomes 03:00 CEST at 01:00 UTC.
        assert_eq!(show(&berlin, "2026-03-29T00:59:59Z"), ((2026, 3, 29), "01:59:59".into(), 3600));
        assert_eq!(show(&berlin, "2026-03-29T01:00:00Z"), ((2026, 3, 29), "03:00:00".into(), 7200));
        let gap_end = ts("2026-03-29T01:00:00Z");
        for wall in [hms(2, 0, 0), hms(2, 30, 0), hms(2, 59, 59), hms(3, 0, 0)] {
            assert_eq!(berlin.at((2026, 3, 29), wall), gap_end, "{wall}");
        }
        assert_eq!(berlin.at((2026, 3, 29), hms(1, 59, 59)), ts("2026-03-29T00:59:59Z"));
        assert_eq!(berlin.at((2026, 3, 29), hms(3, 0, 1)), ts("2026-03-29T01:00:01Z"));
    }

    #[test]
    fn berlin_fall_back_2026_is_a_fold() {
        let berlin = zone("Europe/Berlin");
        // Last Sunday of October: 03:00 CEST becomes 02:00 CET at 01:00 UTC.
        assert_eq!(show(&berlin, "2026-10-25T00:30:00Z"), ((2026, 10, 25), "02:30:00".into(), 7200));
        assert_eq!(show(&berlin, "2026-10-25T01:30:00Z"), ((2026, 10, 25), "02:30:00".into(), 3600));
        assert_eq!(berlin.at((2026, 10, 25), hms(2, 30, 0)), ts("2026-10-25T00:30:00Z"));
        assert_eq!(berlin.at((2026, 10, 25), hms(2, 0, 0)), ts("2026-10-25T00:00:00Z"));
        assert_eq!(berlin.at((2026, 10, 25), hms(3, 0, 0)), ts("2026-10-25T02:00:00Z"));
        assert_eq!(berlin.at((2026, 10, 25), hms(1, 59, 59)), ts("2026-10-24T23:59:59Z"));
    }

    #[test]
    fn new_york() {
        let ny = zone("America/New_York");
        assert_eq!(show(&ny, "2026-07-04T16:00:00Z"), ((2026, 7, 4), "12:00:00".into(), -4 * 3600));
        assert_eq!(show(&ny, "2026-01-01T03:00:00Z"), ((2025, 12, 31), "22:00:00".into(), -5 * 3600));
        // Second Sunday of March and first Sunday of November 2026.
        assert_eq!(ny.at((2026, 3, 8), hms(2, 30, 0)), ts("2026-03-08T07:00:00Z"));
        assert_eq!(ny.at((2026, 11, 1), hms(1, 30, 0)), ts("2026-11-01T05:30:00Z"));
        assert_eq!(show(&ny, "2026-11-01T06:30:00Z"), ((2026, 11, 1), "01:30:00".into(), -5 * 3600));
        assert_eq!(ny.local(ts("2026-11-01T06:30:00Z")).weekday, Weekday::Sun);
    }

    #[test]
    fn fixed_zones_and_utc() {
        let india = Zone::fixed(5 * 3600 + 1800);
        assert_eq!(india.name(), "UTC+05:30");
        assert_eq!(show(&india, "2026-03-01T20:00:00Z"), ((2026, 3, 2), "01:30:00".into(), 19_800));
        assert_eq!(india.at((2026, 3, 2), hms(1, 30, 0)), ts("2026-03-01T20:00:00Z"));
        assert_eq!(Zone::fixed(-3 * 3600 - 1800).name(), "UTC-03:30");
        assert_eq!(Zone::fixed(i32::MAX).local(Timestamp::from_millis(0)).offset_secs, MAX_OFFSET_SECS);
        let utc = Zone::utc();
        assert_eq!((utc.name(), show(&utc, "1969-12-31T23:59:59.5Z")), ("UTC", ((1969, 12, 31), "23:59:59".into(), 0)));
        assert_eq!(utc.local(Timestamp::from_millis(0)).weekday, Weekday::Thu);
        // Out-of-range dates carry over.
        assert_eq!(utc.at((2026, 1, 32), 86_400), ts("2026-02-02T00:00:00Z"));
        assert_eq!(utc.at((2026, 13, 1), 0), ts("2027-01-01T00:00:00Z"));
        assert_eq!(utc.at((2026, 0, 1), 0), ts("2025-12-01T00:00:00Z"));
        // Extremes saturate instead of panicking.
        for ms in [i64::MIN, i64::MAX] {
            let _ = zone("Europe/Berlin").local(Timestamp::from_millis(ms));
        }
        let _ = zone("Europe/Berlin").at((i32::MAX, u32::MAX, u32::MAX), u32::MAX);
        let _ = zone("Europe/Berlin").at((i32::MIN, 0, 0), 0);
    }

    #[test]
    fn unknown_and_bad_names_say_what_to_write() {
        let e = Zone::named("Europe/Berlni").unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown time zone `Europe/Berlni`: no such zone in /usr/share/zoneinfo; use a name like Europe/Berlin"
        );
        assert!(matches!(Zone::named("Europe"), Err(ZoneError::Unknown { .. })));
        for bad in ["", "../etc/passwd", "/etc/localtime", "Europe//Berlin", "Europe/Berlin\0", "Europe Berlin"] {
            let e = Zone::named(bad).unwrap_err();
            assert!(matches!(e, ZoneError::BadName { .. }), "{bad}: {e}");
            assert!(e.to_string().contains("use a name like Europe/Berlin"), "{e}");
        }
        let e = Zone::named("zone.tab").unwrap_err();
        assert_eq!(
            e.to_string(),
            "time zone file /usr/share/zoneinfo/zone.tab is not valid: it does not start with `TZif`"
        );
        assert_eq!(zone(" Europe/Berlin ").name(), "Europe/Berlin");
        // UTC works without a tz database.
        let nowhere = Path::new("/nonexistent/zoneinfo");
        assert!(matches!(Zone::named_in(nowhere, "Etc/UTC"), Err(ZoneError::Unknown { .. })));
        let utc = Zone::named_or_utc(nowhere, "Etc/UTC").unwrap();
        assert_eq!((utc.name(), utc.local(ts("2026-01-01T00:00:00Z")).offset_secs), ("Etc/UTC", 0));
        assert!(Zone::named_or_utc(nowhere, "Europe/Berlin").is_err());
    }

    #[test]
    fn the_system_zone_comes_from_etc_localtime() {
        let (system, why) = Zone::system();
        if let Some(why) = &why {
            assert_eq!(system.name(), "UTC", "{why}");
        }
        let dir = std::env::temp_dir().join(format!("hearth-zone-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let link = dir.join("localtime");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink("/usr/share/zoneinfo/Europe/Berlin", &link).unwrap();
        let berlin = Zone::from_localtime(&link).unwrap();
        assert_eq!(berlin.name(), "Europe/Berlin");
        assert_eq!(berlin.local(ts("2026-07-01T00:00:00Z")).offset_secs, 7200);
        let copy = dir.join("copy");
        std::fs::copy("/usr/share/zoneinfo/America/New_York", &copy).unwrap();
        assert_eq!(Zone::from_localtime(&copy).unwrap().name(), "localtime");
        let missing = Zone::from_localtime(&dir.join("missing")).unwrap_err();
        assert!(missing.to_string().starts_with("cannot read time zone file "), "{missing}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_footer_alone_agrees_with_the_full_table() {
        // A slim file: no transitions, the rule in the footer only.
        let slim = Zone::from_tzif("slim Berlin", &tzif(&[], &[(3600, false)], "CET-1CEST,M3.5.0,M10.5.0/3")).unwrap();
        let berlin = zone("Europe/Berlin");
        let (from, to) = (ts("1997-01-01T00:00:00Z").as_millis(), ts("2040-01-01T00:00:00Z").as_millis());
        for t in (from..to).step_by(3 * 3_600_000 + 7_000) {
            let t = Timestamp::from_millis(t);
            assert_eq!(slim.local(t), berlin.local(t), "{t}");
        }
        for (date, wall) in [((2031, 3, 30), hms(2, 30, 0)), ((2031, 10, 26), hms(2, 30, 0)), ((2035, 6, 1), 0)] {
            assert_eq!(slim.at(date, wall), berlin.at(date, wall), "{date:?}");
        }
    }

    #[test]
    fn posix_rules_of_other_shapes() {
        let z = |footer: &str| Zone::from_tzif(footer, &tzif(&[], &[(0, false)], footer)).unwrap();
        // Southern hemisphere: daylight time spans the new year.
        let sydney = z("AEST-10AEDT,M10.1.0,M4.1.0/3");
        assert_eq!(show(&sydney, "2050-01-15T00:00:00Z").2, 11 * 3600);
        assert_eq!(show(&sydney, "2050-07-15T00:00:00Z").2, 10 * 3600);
        // Daylight time ends at 03:00 AEDT on the first Sunday of April 2050 (the 3rd).
        assert_eq!(show(&sydney, "2050-04-02T15:59:59Z").2, 11 * 3600);
        assert_eq!(show(&sydney, "2050-04-02T16:00:00Z").2, 10 * 3600);
        // Negative daylight saving time (Dublin: IST in summer is standard time).
        let dublin = z("IST-1GMT0,M10.5.0,M3.5.0/1");
        assert_eq!(show(&dublin, "2050-07-01T12:00:00Z").2, 3600);
        assert_eq!(show(&dublin, "2050-01-01T12:00:00Z").2, 0);
        // Version 3 rule times: negative hours (Nuuk, 2023 on).
        let nuuk = z("<-02>2<-01>,M3.5.0/-1,M10.5.0/0");
        assert_eq!(show(&nuuk, "2050-03-27T00:59:59Z").2, -7200);
        assert_eq!(show(&nuuk, "2050-03-27T01:00:00Z").2, -3600);
        // Daylight time all year, and Julian days.
        let always = z("EST5EDT4,0/0,J365/25");
        for at in ["2050-01-01T00:00:00Z", "2050-06-01T00:00:00Z", "2050-12-31T23:00:00Z"] {
            assert_eq!(show(&always, at).2, -4 * 3600, "{at}");
        }
        let julian = z("XST3XDT,J60/0,J300/0");
        // J60 is 1 March, also in leap years.
        assert_eq!(show(&julian, "2048-03-01T02:59:59Z").2, -3 * 3600);
        assert_eq!(show(&julian, "2048-03-01T03:00:00Z").2, -2 * 3600);
        assert_eq!(show(&z("<+0530>-5:30"), "2050-01-01T00:00:00Z").2, 19_800);
        // Default daylight offset and US default rules.
        assert_eq!(show(&z("EST5EDT"), "2050-07-01T00:00:00Z").2, -4 * 3600);
        for bad in ["", "E5", "EST", "EST5EDT,M13.1.0,M11.1.0", "EST5EDT,M3.2.0", "EST5EDT,M3.2.0,M11.1.0x", "EST99"] {
            let e = Zone::from_tzif("bad", &tzif(&[], &[(0, false)], bad));
            if bad.is_empty() {
                assert!(e.is_ok(), "an empty footer means no rule");
            } else {
                assert!(e.unwrap_err().to_string().contains("footer"), "{bad}");
            }
        }
    }

    #[test]
    fn the_last_transition_holds_until_the_footer_changes_the_offset() {
        // Like America/Ojinaga in a slim file: on 30 October 2022 it moved from MDT to CST for
        // good, but the footer's US rule would still say CDT until 6 November.
        let cst = Zone::from_tzif(
            "Ojinaga",
            &tzif(&[(1_667_116_800, 1)], &[(-21_600, true), (-21_600, false)], "CST6CDT,M3.2.0,M11.1.0"),
        )
        .unwrap();
        for (at, offset) in [
            ("2022-10-30T07:59:59Z", -21_600),
            ("2022-10-30T09:00:00Z", -21_600),
            ("2022-11-06T12:00:00Z", -21_600),
            ("2023-03-12T07:59:59Z", -21_600),
            ("2023-03-12T08:00:00Z", -18_000),
            ("2023-11-05T07:00:00Z", -21_600),
        ] {
            assert_eq!(show(&cst, at).2, offset, "{at}");
        }
        // The rule's no-op change on 6 November 2022 makes no fold.
        assert_eq!(cst.at((2022, 11, 6), hms(1, 30, 0)), ts("2022-11-06T07:30:00Z"));
        assert_eq!(cst.at((2023, 3, 12), hms(2, 30, 0)), ts("2023-03-12T08:00:00Z"));
    }

    #[test]
    fn broken_files_are_errors_not_panics() {
        let good = tzif(&[(0, 1), (100, 0)], &[(0, false), (3600, true)], "");
        assert!(Zone::from_tzif("good", &good).is_ok());
        for cut in 0..good.len() {
            assert!(Zone::from_tzif("cut", &good[..cut]).is_err(), "{cut}");
        }
        let e = Zone::from_tzif("order", &tzif(&[(100, 1), (0, 0)], &[(0, false), (3600, true)], "")).unwrap_err();
        assert!(e.to_string().contains("ascending"), "{e}");
        let e = Zone::from_tzif("index", &tzif(&[(100, 7)], &[(0, false)], "")).unwrap_err();
        assert!(e.to_string().contains("local time type"), "{e}");
        let e = Zone::from_tzif("offset", &tzif(&[], &[(200_000, false)], "")).unwrap_err();
        assert!(e.to_string().contains("out of range"), "{e}");
        let e = Zone::from_tzif("none", &tzif(&[], &[], "")).unwrap_err();
        assert!(e.to_string().contains("no local time types"), "{e}");
        let mut huge = good.clone();
        huge[32..36].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(Zone::from_tzif("huge", &huge).is_err());
    }

    #[test]
    fn at_is_the_first_instant_the_clock_shows_the_wall_time() {
        // Zones with unusual changes: half-hour daylight time, a skipped day, double summer
        // time, and a zone with many historical changes.
        for name in ["Australia/Lord_Howe", "Pacific/Apia", "Europe/London", "America/Sao_Paulo", "Asia/Kolkata"] {
            let z = zone(name);
            for day in (days_from_civil(1940, 1, 1)..days_from_civil(2030, 1, 1)).step_by(13) {
                for wall in [0, hms(1, 30, 0), hms(2, 0, 0), hms(2, 30, 0), hms(12, 0, 0), hms(23, 59, 59)] {
                    let t = z.at_day(day, wall);
                    let target = day * SECS_PER_DAY + i64::from(wall);
                    let wall_at = |t: Timestamp| {
                        let l = z.local(t);
                        day_number(l.date) * SECS_PER_DAY + i64::from(l.seconds)
                    };
                    assert!(wall_at(t) >= target, "{name} {day} {wall}: {t}");
                    assert!(wall_at(t.plus_millis(-1000)) < target, "{name} {day} {wall}: {t}");
                }
            }
        }
        // Samoa skipped 30 December 2011: any time that day is the start of the 31st.
        let apia = zone("Pacific/Apia");
        assert_eq!(apia.at((2011, 12, 30), hms(12, 0, 0)), ts("2011-12-30T10:00:00Z"));
        assert_eq!(show(&apia, "2011-12-30T10:00:00Z"), ((2011, 12, 31), "00:00:00".into(), 14 * 3600));
    }
}
