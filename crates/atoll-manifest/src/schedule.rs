//! Cron schedules of `[[trigger.cron]]`, evaluated in UTC.
//!
//! Parsing and matching are `croner`'s (the parser behind Spin's cron trigger); this
//! module fixes its options (seconds optional, no year field), refuses forms Spin would
//! not take, and converts to and from [`SystemTime`] so callers need no date library.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, TimeDelta, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

/// The fields of a 6-field schedule; a 5-field one has all but the first.
const FIELDS: [&str; 6] = [
    "second",
    "minute",
    "hour",
    "day-of-month",
    "month",
    "day-of-week",
];

/// The `@` forms croner knows.
const NICKNAMES: [&str; 6] = [
    "@yearly",
    "@annually",
    "@monthly",
    "@weekly",
    "@daily",
    "@hourly",
];

/// A parsed cron schedule (UTC).
///
/// Either 5 fields, `minute hour day-of-month month day-of-week` (it then fires at second
/// 0), or 6 with `second` first. Fields take `*`, numbers, ranges `a-b`, lists `a,b`,
/// steps `*/n`, `a-b/n` and `a/n`, month and weekday names (`JAN`, `MON`); the nicknames
/// `@yearly`, `@monthly`, `@weekly`, `@daily` and `@hourly` are accepted too.
#[derive(Clone)]
pub struct Schedule {
    written: String,
    /// Behind an `Arc`: croner's pattern is a few hundred bytes, which would make every
    /// [`crate::Trigger`] that large; cloning stays cheap.
    cron: Arc<Cron>,
}

impl Schedule {
    /// Parse a schedule as written in the manifest. The error says what is wrong.
    pub fn parse(s: &str) -> Result<Schedule, String> {
        let trimmed = s.trim();
        if trimmed.is_empty() {
            return Err("the schedule is empty".to_string());
        }
        let parser = CronParser::builder()
            .seconds(Seconds::Optional)
            .year(Year::Disallowed)
            .sloppy_ranges(true)
            .build();
        let cron = if trimmed.starts_with('@') {
            if !NICKNAMES.iter().any(|n| n.eq_ignore_ascii_case(trimmed)) {
                return Err(format!(
                    "`{trimmed}` is not a schedule nickname; the nicknames are {}",
                    NICKNAMES.join(", ")
                ));
            }
            parser
                .parse(trimmed)
                .map_err(|e| format!("schedule `{s}` is not valid: {}", reason(&e)))?
        } else {
            let fields: Vec<&str> = trimmed.split_whitespace().collect();
            let names: &[&str] = match fields.len() {
                5 => &FIELDS[1..],
                6 => &FIELDS,
                7 => {
                    return Err(format!(
                        "schedule `{s}` has 7 fields; a year field is not supported"
                    ));
                }
                n => {
                    return Err(format!(
                        "schedule `{s}` has {n} field{}; a schedule has 5 or 6",
                        if n == 1 { "" } else { "s" }
                    ));
                }
            };
            for (field, name) in fields.iter().zip(names) {
                // croner's sloppy ranges (needed for `1/2`, as Spin's documentation
                // writes) would also take a step with no start (`/2`) and it skips empty
                // list items (`1,,2`): refuse both.
                let parts = || field.split(',');
                if parts().any(str::is_empty) {
                    return Err(format!(
                        "the {name} field `{field}` of schedule `{s}` has an empty list item"
                    ));
                }
                if parts().any(|p| p.starts_with('/')) {
                    return Err(format!(
                        "the {name} field `{field}` of schedule `{s}` has a step without a start; write `*/N`"
                    ));
                }
            }
            parser.parse(trimmed).map_err(|e| {
                // Name the field at fault: the first that fails with `*` everywhere else.
                let alone = |i: usize| {
                    let probe: Vec<&str> = (0..fields.len())
                        .map(|j| if j == i { fields[j] } else { "*" })
                        .collect();
                    parser.parse(&probe.join(" ")).err()
                };
                match (0..fields.len()).find_map(|i| alone(i).map(|e| (i, e))) {
                    Some((i, e)) => format!(
                        "the {} field `{}` of schedule `{s}` is not valid: {}",
                        names[i],
                        fields[i],
                        reason(&e)
                    ),
                    None => format!("schedule `{s}` is not valid: {}", reason(&e)),
                }
            })?
        };
        let schedule = Schedule {
            written: s.to_string(),
            cron: Arc::new(cron),
        };
        // Without a year field, a schedule that ever matches does so within 28 years
        // of any start (the calendar repeats then), so searching from the epoch tells
        // whether it matches at all (`0 0 30 2 *` never does).
        if schedule.next_after(UNIX_EPOCH).is_none() {
            return Err(format!("schedule `{s}` never matches a date"));
        }
        Ok(schedule)
    }

    /// The schedule as written in the manifest.
    pub fn as_str(&self) -> &str {
        &self.written
    }

    /// The first time strictly after `after` that matches, or `None` if none in the
    /// future. Matches fall on whole seconds.
    pub fn next_after(&self, after: SystemTime) -> Option<SystemTime> {
        let start = to_utc(after)?;
        let next = self.cron.find_next_occurrence(&start, false).ok()?;
        let next = from_utc(next)?;
        // croner drops the sub-second part of `after`; its answer is past that second.
        (next > after).then_some(next)
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.written)
    }
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Schedule").field(&self.written).finish()
    }
}

/// croner's message without its error-kind prefix, as part of a sentence.
fn reason(e: &croner::errors::CronError) -> String {
    use croner::errors::CronError as E;
    let text = match e {
        E::IllegalCharacters(_) => "it has a character a cron field cannot have".to_string(),
        E::InvalidPattern(m) | E::ComponentError(m) => m.clone(),
        other => other.to_string(),
    };
    let text = text.trim_end_matches('.');
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => "it does not parse".to_string(),
    }
}

fn to_utc(t: SystemTime) -> Option<DateTime<Utc>> {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => DateTime::UNIX_EPOCH.checked_add_signed(TimeDelta::from_std(d).ok()?),
        Err(e) => DateTime::UNIX_EPOCH.checked_sub_signed(TimeDelta::from_std(e.duration()).ok()?),
    }
}

fn from_utc(t: DateTime<Utc>) -> Option<SystemTime> {
    let secs = t.timestamp();
    let nanos = Duration::from_nanos(u64::from(t.timestamp_subsec_nanos()));
    let whole = if secs >= 0 {
        UNIX_EPOCH.checked_add(Duration::from_secs(secs.unsigned_abs()))
    } else {
        UNIX_EPOCH.checked_sub(Duration::from_secs(secs.unsigned_abs()))
    };
    whole?.checked_add(nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Seconds since the epoch of a UTC date and time.
    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> SystemTime {
        use chrono::TimeZone;
        let t = Utc
            .with_ymd_and_hms(y, mo, d, h, mi, s)
            .single()
            .expect("a valid test date");
        from_utc(t).expect("representable")
    }

    fn next(schedule: &str, after: SystemTime) -> SystemTime {
        Schedule::parse(schedule)
            .expect("valid schedule")
            .next_after(after)
            .expect("a next time")
    }

    #[test]
    fn six_fields_count_seconds() {
        let s = "*/5 * * * * *";
        assert_eq!(next(s, at(2025, 3, 1, 12, 0, 3)), at(2025, 3, 1, 12, 0, 5));
        // Strictly after: a matching instant gives the one after it.
        assert_eq!(next(s, at(2025, 3, 1, 12, 0, 5)), at(2025, 3, 1, 12, 0, 10));
        // A fraction past a match still waits for the next one.
        let just_after = at(2025, 3, 1, 12, 0, 5) + Duration::from_millis(300);
        assert_eq!(next(s, just_after), at(2025, 3, 1, 12, 0, 10));
        // A fraction before a match gives that match.
        let just_before = at(2025, 3, 1, 12, 0, 5) - Duration::from_millis(300);
        assert_eq!(next(s, just_before), at(2025, 3, 1, 12, 0, 5));
        // Rolls over minutes, hours and days.
        assert_eq!(
            next(s, at(2025, 12, 31, 23, 59, 58)),
            at(2026, 1, 1, 0, 0, 0)
        );
        assert_eq!(
            next("30 15 10 * * *", at(2025, 3, 1, 12, 0, 0)),
            at(2025, 3, 2, 10, 15, 30)
        );
    }

    #[test]
    fn five_fields_fire_at_second_zero() {
        assert_eq!(
            next("0 */2 * * *", at(2025, 3, 1, 10, 30, 0)),
            at(2025, 3, 1, 12, 0, 0)
        );
        assert_eq!(
            next("*/5 * * * *", at(2025, 3, 1, 12, 0, 3)),
            at(2025, 3, 1, 12, 5, 0)
        );
        assert_eq!(
            next("* * * * *", at(2025, 3, 1, 12, 0, 0)),
            at(2025, 3, 1, 12, 1, 0)
        );
        // 2025-03-01 is a Saturday; the next Monday 09:00 is the 3rd.
        assert_eq!(
            next("0 9 * * MON", at(2025, 3, 1, 12, 0, 0)),
            at(2025, 3, 3, 9, 0, 0)
        );
        assert_eq!(
            next("0 9 * * 1-5", at(2025, 3, 1, 12, 0, 0)),
            at(2025, 3, 3, 9, 0, 0)
        );
        // Leap day: the next 29 February after 2025 is in 2028.
        assert_eq!(
            next("0 0 29 2 *", at(2025, 3, 1, 0, 0, 0)),
            at(2028, 2, 29, 0, 0, 0)
        );
        assert_eq!(
            next("@hourly", at(2025, 3, 1, 12, 0, 0)),
            at(2025, 3, 1, 13, 0, 0)
        );
    }

    #[test]
    fn spin_style_steps_parse() {
        // Spin's documentation writes `1/2` for "every 2 seconds from 1".
        assert_eq!(
            next("1/2 * * * * *", at(2025, 3, 1, 12, 0, 2)),
            at(2025, 3, 1, 12, 0, 3)
        );
    }

    #[test]
    fn displays_as_written() {
        let s = Schedule::parse("*/5 * * * * *").expect("valid");
        assert_eq!(s.to_string(), "*/5 * * * * *");
        assert_eq!(s.as_str(), "*/5 * * * * *");
        assert_eq!(format!("{s:?}"), "Schedule(\"*/5 * * * * *\")");
    }

    #[test]
    fn bad_schedules_are_refused_with_a_reason() {
        let err = |s: &str| Schedule::parse(s).expect_err(s);
        assert!(err("").contains("empty"));
        assert!(err("every five minutes").contains("3 fields"));
        assert!(err("* * * *").contains("4 fields"));
        assert!(err("0 0 12 * * * 2030").contains("year"));
        assert_eq!(
            err("0 61 * * *"),
            "the hour field `61` of schedule `0 61 * * *` is not valid: number out of bounds"
        );
        assert!(err("61 * * * * *").starts_with("the second field `61`"));
        assert!(err("/5 * * * *").contains("step without a start"));
        assert!(err("1,,2 * * * *").contains("empty list item"));
        assert_eq!(
            err("* * * * x"),
            "the day-of-week field `x` of schedule `* * * * x` is not valid: it has a character a cron field cannot have"
        );
        assert!(err("*/0 * * * *").contains("step cannot be zero"));
        assert!(err("0 0 30 2 *").contains("never matches"));
        assert!(err("@sometimes").contains("not a schedule nickname"));
    }

    #[test]
    fn no_next_time_past_the_search_range() {
        let s = Schedule::parse("* * * * *").expect("valid");
        assert_eq!(s.next_after(at(6000, 1, 1, 0, 0, 0)), None);
        // Before the epoch works as any other time.
        assert_eq!(
            s.next_after(at(1960, 1, 1, 0, 0, 30)),
            Some(at(1960, 1, 1, 0, 1, 0))
        );
    }
}
