//! When time-based triggers fire: the next time of day on some weekdays, the next aligned
//! interval, the next sun event with its offset, and the latest occurrence missed during
//! downtime. Pure functions of the zone, the location and an instant; the engine calls them.
//!
//! Every `next_*` answers the first occurrence strictly after `after`, so calling it again with
//! the instant it returned gives the following one, and an occurrence fires once.

use hearth_sdk::Timestamp;

use crate::duration::{Duration, TimeOfDay};
use crate::model::{TriggerKind, Weekday};
use crate::sun::{self, Location, SunEvent};
use crate::zone::{Zone, day_number, weekday_of};

/// The shortest interval: one second, as validation requires; shorter ones are taken as this.
pub const MIN_INTERVAL_MILLIS: i64 = 1000;

const MS_PER_DAY: i64 = 86_400_000;

/// The first instant strictly after `after` at which the local clock in `zone` shows `at` on one
/// of `weekdays` (every day when empty).
///
/// The weekday is that of the local date. A time that does not exist that day (in a spring
/// forward gap) fires once, when the gap ends (Berlin's 02:30 on 29 March 2026 fires at 03:00
/// CEST); a time that shows twice (in a fall back fold) fires once, at its first occurrence.
/// See [`Zone::at`]. Only at the ends of the timestamp range, where no occurrence fits, is the
/// answer the latest representable instant.
pub fn next_time(zone: &Zone, at: TimeOfDay, weekdays: &[Weekday], after: Timestamp) -> Timestamp {
    // `Zone::at` never decreases as the wall time increases, so the first matching day whose
    // instant is after `after` has the earliest instant. Start a day early: a gap can move an
    // instant past midnight.
    let first = day_number(zone.local(after).date) - 1;
    (first..first + 16)
        .filter(|&day| weekdays.is_empty() || weekdays.contains(&weekday_of(day)))
        .map(|day| zone.at_day(day, at.seconds()))
        .find(|&t| t > after)
        .unwrap_or(Timestamp::from_millis(i64::MAX))
}

/// The first multiple of `every` since 1970-01-01T00:00Z strictly after `after`, so `15m`
/// fires at :00, :15, :30 and :45 of every hour (UTC; the same in zones whose offset is a whole
/// number of quarter hours), and at the same instants after a restart.
///
/// Intervals are UTC: `1d` fires at 00:00 UTC, not at local midnight (a time trigger does
/// that), and `7d` on Thursdays (1 January 1970 was one). An `every` under
/// [`MIN_INTERVAL_MILLIS`] is taken as that.
pub fn next_interval(every: Duration, after: Timestamp) -> Timestamp {
    let every = every.as_millis().max(MIN_INTERVAL_MILLIS);
    let n = after.as_millis().div_euclid(every);
    Timestamp::from_millis(n.saturating_add(1).saturating_mul(every))
}

/// The latest multiple of `every` in `(from, to]`.
fn last_interval(every: Duration, from: Timestamp, to: Timestamp) -> Option<Timestamp> {
    let every = every.as_millis().max(MIN_INTERVAL_MILLIS);
    let last = to.as_millis().div_euclid(every).saturating_mul(every);
    (last > from.as_millis()).then_some(Timestamp::from_millis(last))
}

/// The first instant strictly after `after` that is `offset_secs` after (before, when negative)
/// a sun `event` at `loc`.
///
/// The event looked for is the first one after `after - offset`, so with an offset of -30
/// minutes an event 10 minutes from now is skipped (its shifted instant has passed) and with
/// +30 minutes an event 10 minutes ago is not. `None` when the event does not happen within
/// [`sun::SEARCH_DAYS`] days (polar day or night at the location), or for an invalid location.
pub fn next_sun(loc: Location, event: SunEvent, offset_secs: i64, after: Timestamp) -> Option<Timestamp> {
    let offset = offset_secs.saturating_mul(1000);
    let event_at = sun::next_event(loc, event, after.plus_millis(offset.saturating_neg()))?;
    Some(event_at.plus_millis(offset)).filter(|&t| t > after)
}

/// When a trigger of `kind` next fires strictly after `after`: for time, interval and sun
/// triggers; `None` for the other kinds, for a sun trigger without a location, and for a sun
/// event that does not happen (see [`next_sun`]).
pub fn next_fire(kind: &TriggerKind, zone: &Zone, location: Option<Location>, after: Timestamp) -> Option<Timestamp> {
    match kind {
        TriggerKind::Time { at, weekdays } => Some(next_time(zone, *at, weekdays, after)),
        TriggerKind::Interval { every } => Some(next_interval(*every, after)),
        TriggerKind::Sun { event, offset_secs } => next_sun(location?, *event, *offset_secs, after),
        TriggerKind::State { .. }
        | TriggerKind::Event { .. }
        | TriggerKind::Availability { .. }
        | TriggerKind::Start {}
        | TriggerKind::Mqtt { .. }
        | TriggerKind::Webhook { .. } => None,
    }
}

/// The latest occurrence of a time, interval or sun trigger in `(from, to]`: what was missed
/// while the hub was down from `from` to `to`, for catch-up. `None` when nothing was missed, or
/// for kinds [`next_fire`] does not schedule.
///
/// The search looks back from `to` over windows that double in length, so a long outage (a
/// Raspberry Pi that booted with an old clock) costs little.
pub fn missed(
    kind: &TriggerKind,
    zone: &Zone,
    location: Option<Location>,
    from: Timestamp,
    to: Timestamp,
) -> Option<Timestamp> {
    if from >= to {
        return None;
    }
    match kind {
        TriggerKind::Interval { every } => return last_interval(*every, from, to),
        TriggerKind::Time { .. } => {}
        TriggerKind::Sun { .. } if location.is_some() => {}
        _ => return None,
    }
    let mut window = 2 * MS_PER_DAY;
    loop {
        let start = Timestamp::from_millis(to.as_millis().saturating_sub(window).max(from.as_millis()));
        let mut last = None;
        let mut t = next_fire(kind, zone, location, start);
        // Each answer is later than the one before, except at the end of the timestamp range.
        while let Some(at) = t.filter(|&at| at <= to && last.is_none_or(|l| at > l)) {
            last = Some(at);
            t = next_fire(kind, zone, location, at);
        }
        if last.is_some() || start == from {
            return last;
        }
        window = window.saturating_mul(2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn berlin() -> Zone {
        Zone::named("Europe/Berlin").unwrap()
    }

    fn time(s: &str) -> TimeOfDay {
        s.parse().unwrap()
    }

    const WORKDAYS: [Weekday; 5] = [Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri];

    fn berlin_location() -> Location {
        Location::new(52.52, 13.405).unwrap()
    }

    #[test]
    fn weekdays_only_from_a_friday_evening_is_monday_morning() {
        // Friday 6 March 2026, 20:00 CET.
        let friday_evening = ts("2026-03-06T19:00:00Z");
        assert_eq!(berlin().local(friday_evening).date, (2026, 3, 6));
        assert_eq!(berlin().local(friday_evening).weekday, Weekday::Fri);
        let next = next_time(&berlin(), time("07:30"), &WORKDAYS, friday_evening);
        assert_eq!(next, ts("2026-03-09T06:30:00Z"));
        assert_eq!(berlin().local(next).weekday, Weekday::Mon);
        // Every day: Saturday. Exactly at an occurrence: the next one.
        assert_eq!(next_time(&berlin(), time("07:30"), &[], friday_evening), ts("2026-03-07T06:30:00Z"));
        assert_eq!(next_time(&berlin(), time("07:30"), &[], ts("2026-03-07T06:30:00Z")), ts("2026-03-08T06:30:00Z"));
        assert_eq!(
            next_time(&berlin(), time("07:30"), &[], ts("2026-03-07T06:29:59.999Z")),
            ts("2026-03-07T06:30:00Z")
        );
        // Summer time, and a zone west of UTC whose local date lags the UTC date.
        assert_eq!(
            next_time(&berlin(), time("07:30"), &WORKDAYS, ts("2026-07-03T18:00:00Z")),
            ts("2026-07-06T05:30:00Z")
        );
        let ny = Zone::named("America/New_York").unwrap();
        // Sunday 5 July 2026, 21:00 EDT is Monday 01:00 UTC; Monday 22:00 EDT comes first.
        assert_eq!(
            next_time(&ny, time("22:00"), &[Weekday::Mon], ts("2026-07-06T01:00:00Z")),
            ts("2026-07-07T02:00:00Z")
        );
    }

    #[test]
    fn berlin_0230_on_the_spring_forward_day_fires_once_when_the_gap_ends() {
        let night = time("02:30");
        let first = next_time(&berlin(), night, &[], ts("2026-03-28T12:00:00Z"));
        // 02:30 does not exist on 29 March 2026; the clock jumps to 03:00 CEST at 01:00 UTC.
        assert_eq!(first, ts("2026-03-29T01:00:00Z"));
        assert_eq!(next_time(&berlin(), night, &[], first), ts("2026-03-30T00:30:00Z"));
        // In the fold of 25 October it fires at the first 02:30 (CEST) only.
        let fold = next_time(&berlin(), night, &[], ts("2026-10-24T12:00:00Z"));
        assert_eq!(fold, ts("2026-10-25T00:30:00Z"));
        assert_eq!(next_time(&berlin(), night, &[], fold), ts("2026-10-26T01:30:00Z"));
        assert_eq!(next_time(&berlin(), night, &[], ts("2026-10-25T01:15:00Z")), ts("2026-10-26T01:30:00Z"));
    }

    #[test]
    fn an_interval_boundary_exactly_at_after_is_not_returned() {
        let quarter: Duration = "15m".parse().unwrap();
        assert_eq!(next_interval(quarter, ts("2026-05-01T10:15:00Z")), ts("2026-05-01T10:30:00Z"));
        assert_eq!(next_interval(quarter, ts("2026-05-01T10:14:59.999Z")), ts("2026-05-01T10:15:00Z"));
        assert_eq!(next_interval(quarter, ts("2026-05-01T10:15:00.001Z")), ts("2026-05-01T10:30:00Z"));
        assert_eq!(next_interval(quarter, Timestamp::from_millis(-1)), Timestamp::from_millis(0));
        assert_eq!(next_interval(Duration(0), Timestamp::from_millis(500)), Timestamp::from_millis(1000));
        let _ = next_interval(quarter, Timestamp::from_millis(i64::MAX));
        let daily = TriggerKind::Time { at: time("07:30"), weekdays: vec![] };
        let end = Timestamp::from_millis(i64::MAX);
        assert_eq!(next_fire(&daily, &berlin(), None, end), Some(end));
        let _ = missed(&daily, &berlin(), None, Timestamp::from_millis(i64::MIN), end);
    }

    #[test]
    fn sunset_30_minutes_early_in_berlin() {
        let berlin = berlin_location();
        let sunset = sun::sun_times(berlin, (2026, 6, 21)).unwrap().set().unwrap();
        let early = sunset.plus_millis(-30 * 60_000);
        // About 21:33 CEST.
        assert!(early > ts("2026-06-21T18:55:00Z") && early < ts("2026-06-21T19:10:00Z"), "{early}");
        assert_eq!(next_sun(berlin, SunEvent::Sunset, -1800, ts("2026-06-21T10:00:00Z")), Some(early));
        // Between the shifted instant and the sunset itself: tomorrow's.
        let tomorrow = sun::sun_times(berlin, (2026, 6, 22)).unwrap().set().unwrap().plus_millis(-1_800_000);
        assert_eq!(next_sun(berlin, SunEvent::Sunset, -1800, early), Some(tomorrow));
        assert_eq!(next_sun(berlin, SunEvent::Sunset, -1800, early.plus_millis(60_000)), Some(tomorrow));
        // Half an hour late: still today's, ten minutes after sunset.
        let late = sunset.plus_millis(1_800_000);
        assert_eq!(next_sun(berlin, SunEvent::Sunset, 1800, sunset.plus_millis(600_000)), Some(late));
        let kind = TriggerKind::Sun { event: SunEvent::Sunset, offset_secs: -1800 };
        assert_eq!(next_fire(&kind, &Zone::utc(), Some(berlin), ts("2026-06-21T10:00:00Z")), Some(early));
        assert_eq!(next_fire(&kind, &Zone::utc(), None, ts("2026-06-21T10:00:00Z")), None);
    }

    #[test]
    fn polar_night_waits_for_the_sun() {
        let tromso = Location::new(69.65, 18.96).unwrap();
        let rise = next_sun(tromso, SunEvent::Sunrise, 0, ts("2026-12-01T00:00:00Z")).unwrap();
        assert!(rise > ts("2027-01-10T00:00:00Z") && rise < ts("2027-01-20T00:00:00Z"), "{rise}");
    }

    #[test]
    fn other_kinds_are_not_scheduled() {
        let kind: TriggerKind = serde_json::from_value(serde_json::json!({"start": {}})).unwrap();
        assert_eq!(next_fire(&kind, &berlin(), None, ts("2026-01-01T00:00:00Z")), None);
        assert_eq!(missed(&kind, &berlin(), None, ts("2026-01-01T00:00:00Z"), ts("2026-02-01T00:00:00Z")), None);
        let kind = TriggerKind::Interval { every: "1h".parse().unwrap() };
        assert_eq!(next_fire(&kind, &berlin(), None, ts("2026-01-01T00:30:00Z")), Some(ts("2026-01-01T01:00:00Z")));
    }

    #[test]
    fn missed_over_a_three_day_outage_is_the_last_occurrence() {
        let (from, to) = (ts("2026-03-06T06:00:00Z"), ts("2026-03-09T06:00:00Z"));
        let daily = TriggerKind::Time { at: time("07:30"), weekdays: vec![] };
        // Sunday 8 March 07:30 CET; Monday's is not due yet.
        assert_eq!(missed(&daily, &berlin(), None, from, to), Some(ts("2026-03-08T06:30:00Z")));
        let workdays = TriggerKind::Time { at: time("07:30"), weekdays: WORKDAYS.to_vec() };
        assert_eq!(missed(&workdays, &berlin(), None, from, to), Some(ts("2026-03-06T06:30:00Z")));
        // `to` itself counts.
        assert_eq!(missed(&daily, &berlin(), None, from, ts("2026-03-08T06:30:00Z")), Some(ts("2026-03-08T06:30:00Z")));
        let quarter = TriggerKind::Interval { every: "15m".parse().unwrap() };
        assert_eq!(
            missed(&quarter, &berlin(), None, from, ts("2026-03-09T05:59:00Z")),
            Some(ts("2026-03-09T05:45:00Z"))
        );
        let loc = berlin_location();
        let dusk = TriggerKind::Sun { event: SunEvent::Dusk, offset_secs: 600 };
        let sunday_dusk = sun::twilight_times(loc, (2026, 3, 8)).unwrap().set().unwrap().plus_millis(600_000);
        assert_eq!(missed(&dusk, &berlin(), Some(loc), from, to), Some(sunday_dusk));
        assert_eq!(missed(&dusk, &berlin(), None, from, to), None);
        // A very long outage (an old clock at boot) answers quickly and right.
        let since_1970 = missed(&workdays, &berlin(), None, Timestamp::from_millis(0), to);
        assert_eq!(since_1970, Some(ts("2026-03-06T06:30:00Z")));
    }

    #[test]
    fn missed_is_none_when_the_outage_covered_no_occurrence() {
        let daily = TriggerKind::Time { at: time("07:30"), weekdays: vec![] };
        // 07:30 CET is 06:30 UTC; down from 07:00 to 08:00 UTC.
        assert_eq!(missed(&daily, &berlin(), None, ts("2026-03-06T07:00:00Z"), ts("2026-03-06T08:00:00Z")), None);
        // The occurrence at `from` itself was not missed (it fired before the outage).
        assert_eq!(missed(&daily, &berlin(), None, ts("2026-03-06T06:30:00Z"), ts("2026-03-06T08:00:00Z")), None);
        let weekend = TriggerKind::Time { at: time("09:00"), weekdays: vec![Weekday::Sat, Weekday::Sun] };
        assert_eq!(missed(&weekend, &berlin(), None, ts("2026-03-09T00:00:00Z"), ts("2026-03-13T23:00:00Z")), None);
        let quarter = TriggerKind::Interval { every: "15m".parse().unwrap() };
        assert_eq!(missed(&quarter, &berlin(), None, ts("2026-03-09T05:45:00Z"), ts("2026-03-09T05:59:59Z")), None);
        assert_eq!(missed(&quarter, &berlin(), None, ts("2026-03-09T06:00:00Z"), ts("2026-03-09T05:00:00Z")), None);
    }
}
