//! Reporting duties: which members owe the hub which periodic report, when
//! it falls due, and where each member stands (on time, late, missing, due
//! soon). Pure: the hub passes in the reports it received with the times it
//! received them, and the time now.

use std::collections::BTreeMap;

use time::{Date, Month, OffsetDateTime};

use crate::actor;
use crate::convert::{after_secs, timestamp, ProtoEnum};
use crate::pb::{self, ActorRole, ReportingPeriod as P};

/// A report the hub holds: whose it is (its originator), who delivered it,
/// the period it covers, and when the hub received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submission {
    pub member: String,
    pub sent_by: String,
    pub start: Date,
    pub end: Date,
    pub received: OffsetDateTime,
}

/// Where a member stands with one duty for one period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum State {
    OnTime,
    Late,
    Missing,
    /// Not received; due within the reminder window.
    Reminder,
    /// Not received; not yet due.
    Due,
}

impl State {
    pub fn word(self) -> &'static str {
        match self {
            State::OnTime => "on_time",
            State::Late => "late",
            State::Missing => "missing",
            State::Reminder => "reminder",
            State::Due => "due",
        }
    }
}

/// Who owes the report: the duty's members, else every law-enforcement
/// party other than the hub.
pub fn members(a: &pb::Agreement, d: &pb::ReportingDuty) -> Vec<String> {
    if !d.members.is_empty() {
        return d.members.clone();
    }
    a.parties.iter().filter(|p| **p != a.hub && actor::role_of(a, p) == ActorRole::LawEnforcement).cloned().collect()
}

fn month_start(year: i32, month: u8) -> Option<Date> {
    Date::from_calendar_date(year, Month::try_from(month).ok()?, 1).ok()
}

/// The period of `every` that contains `day`, as (first day, last day).
pub fn period_of(every: P, day: Date) -> Option<(Date, Date)> {
    let months: u8 = match every {
        P::Year => 12,
        P::HalfYear => 6,
        P::Quarter => 3,
        P::Unspecified => return None,
    };
    // The first month of the period containing `day` (months divides 12).
    let index = u8::from(day.month()).saturating_sub(1).checked_div(months)?;
    let m0 = index.saturating_mul(months).saturating_add(1);
    let start = month_start(day.year(), m0)?;
    let next = match m0.checked_add(months)? {
        13 => month_start(day.year().checked_add(1)?, 1)?,
        m => month_start(day.year(), m)?,
    };
    Some((start, next.previous_day()?))
}

/// How a period is written: "2025", "2025-H2", "2025-Q3", else the range.
pub fn period_label(every: P, (start, end): (Date, Date)) -> String {
    match every {
        P::Year => start.year().to_string(),
        P::HalfYear => format!("{}-H{}", start.year(), if u8::from(start.month()) <= 6 { 1 } else { 2 }),
        P::Quarter => format!("{}-Q{}", start.year(), u8::from(start.month()).saturating_add(2) / 3),
        P::Unspecified => format!("{start}..{end}"),
    }
}

/// When a report for the period ending `end` is due.
pub fn due(d: &pb::ReportingDuty, end: Date) -> Option<OffsetDateTime> {
    let day_after = end.next_day()?;
    Some(after_secs(day_after.midnight().assume_utc(), d.due_after_seconds))
}

/// The latest period that has ended by `now` (the one reports are owed for).
pub fn last_ended(every: P, now: OffsetDateTime) -> Option<(Date, Date)> {
    let (start, _) = period_of(every, now.date())?;
    period_of(every, start.previous_day()?)
}

/// Each member's state for `period` (start, end): a member's earliest report
/// covering a span inside the period counts, and only one the member sent
/// the hub itself (a copy passed on by someone else fulfils no duty).
/// Members in agreement order.
pub fn statuses(
    a: &pb::Agreement,
    d: &pb::ReportingDuty,
    period: (Date, Date),
    label: &str,
    held: &[Submission],
    now: OffsetDateTime,
) -> Vec<pb::ReportingStatus> {
    let Some(due_at) = due(d, period.1) else { return Vec::new() };
    let remind = time::Duration::seconds(i64::try_from(d.remind_before_seconds).unwrap_or(i64::MAX));
    let remind_from = due_at.checked_sub(remind).unwrap_or(due_at);
    let mut first: BTreeMap<&str, OffsetDateTime> = BTreeMap::new();
    for s in held.iter().filter(|s| s.sent_by == s.member && s.start >= period.0 && s.end <= period.1) {
        let e = first.entry(s.member.as_str()).or_insert(s.received);
        *e = (*e).min(s.received);
    }
    members(a, d)
        .into_iter()
        .map(|m| {
            let received = first.get(m.as_str()).copied();
            let state = match received {
                Some(r) if r <= due_at => State::OnTime,
                Some(_) => State::Late,
                None if now > due_at => State::Missing,
                None if now >= remind_from => State::Reminder,
                None => State::Due,
            };
            pb::ReportingStatus {
                agreement_id: a.id.clone(),
                duty: d.name.clone(),
                member: m,
                period: label.to_string(),
                state: state.word().into(),
                due: Some(timestamp(due_at)),
                received: received.map(timestamp),
            }
        })
        .collect()
}

/// Statuses for every duty of `agreements` that report to `hub`, for the
/// asked period (`(start, end)`), or for each duty's last ended period.
pub fn all_statuses(
    agreements: &[pb::Agreement],
    hub: &str,
    asked: Option<(Date, Date)>,
    held: &[Submission],
    now: OffsetDateTime,
) -> Vec<pb::ReportingStatus> {
    let mut out = Vec::new();
    for a in agreements.iter().filter(|a| a.hub == hub) {
        for d in &a.reporting {
            let every = P::of(d.every).unwrap_or(P::Unspecified);
            let Some(period) = asked.or_else(|| last_ended(every, now)) else { continue };
            let label = match asked {
                Some(p) if period_of(every, p.0) != Some(p) => format!("{}..{}", p.0, p.1),
                _ => period_label(every, period),
            };
            out.extend(statuses(a, d, period, &label, held, now));
        }
    }
    out
}

/// A duty's period as people read it ("every year").
pub fn every_word(d: &pb::ReportingDuty) -> String {
    P::word_of(d.every).replace('_', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> Date {
        crate::record::parse_date("", s).unwrap()
    }
    fn at(s: &str) -> OffsetDateTime {
        day(s).midnight().assume_utc()
    }

    fn agreement() -> pb::Agreement {
        pb::Agreement {
            id: "mca".into(),
            hub: "hub".into(),
            parties: vec!["ng".into(), "bj".into(), "ne".into(), "ngo".into(), "hub".into()],
            roles: vec![
                pb::PartyRole { party: "ngo".into(), role: ActorRole::Ngo as i32, posted_in: String::new() },
                pb::PartyRole { party: "hub".into(), role: ActorRole::Secretariat as i32, posted_in: String::new() },
            ],
            reporting: vec![pb::ReportingDuty {
                name: "annual_country_report".into(),
                title: "Annual country report".into(),
                every: P::Year as i32,
                due_after_seconds: 90 * 86_400,
                remind_before_seconds: 30 * 86_400,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn sub(member: &str, received: &str) -> Submission {
        Submission {
            member: member.into(),
            sent_by: member.into(),
            start: day("2025-01-01"),
            end: day("2025-12-31"),
            received: at(received),
        }
    }

    #[test]
    fn members_default_to_the_law_enforcement_parties() {
        let a = agreement();
        assert_eq!(members(&a, &a.reporting[0]), ["ng", "bj", "ne"]);
    }

    #[test]
    fn on_time_late_missing_and_reminders() {
        let a = agreement();
        let held = [sub("ng", "2026-03-01"), sub("bj", "2026-04-15")];
        let period = (day("2025-01-01"), day("2025-12-31"));
        let states = |now: &str| -> Vec<(String, String)> {
            statuses(&a, &a.reporting[0], period, "2025", &held, at(now))
                .into_iter()
                .map(|s| (s.member, s.state))
                .collect()
        };
        // Due 2026-03-31 (90 days after the year ends); reminders from 2026-03-01.
        let s = states("2026-05-01");
        assert_eq!(s, [("ng".into(), "on_time".into()), ("bj".into(), "late".into()), ("ne".into(), "missing".into())]);
        assert_eq!(states("2026-03-10")[2].1, "reminder");
        assert_eq!(states("2026-02-01")[2].1, "due");
        // A report for another year does not count.
        let other = [Submission { start: day("2024-01-01"), end: day("2024-12-31"), ..sub("ne", "2026-01-05") }];
        let s = statuses(&a, &a.reporting[0], period, "2025", &other, at("2026-05-01"));
        assert_eq!(s[2].state, "missing");
        // Nor does a report another member passed on: the duty is ne's own.
        let relayed = [Submission { sent_by: "ng".into(), ..sub("ne", "2026-01-05") }];
        let s = statuses(&a, &a.reporting[0], period, "2025", &relayed, at("2026-05-01"));
        assert_eq!(s[2].state, "missing");
    }

    #[test]
    fn periods_and_labels() {
        assert_eq!(period_of(P::Quarter, day("2026-05-17")), Some((day("2026-04-01"), day("2026-06-30"))));
        assert_eq!(period_of(P::HalfYear, day("2026-12-31")), Some((day("2026-07-01"), day("2026-12-31"))));
        assert_eq!(last_ended(P::Year, at("2026-03-20")), Some((day("2025-01-01"), day("2025-12-31"))));
        assert_eq!(last_ended(P::Quarter, at("2026-01-02")), Some((day("2025-10-01"), day("2025-12-31"))));
        assert_eq!(period_label(P::Quarter, (day("2025-10-01"), day("2025-12-31"))), "2025-Q4");
        assert_eq!(period_label(P::HalfYear, (day("2025-07-01"), day("2025-12-31"))), "2025-H2");
    }

    #[test]
    fn all_statuses_takes_only_duties_towards_this_hub() {
        let a = agreement();
        let other = pb::Agreement { hub: "elsewhere".into(), ..agreement() };
        let s = all_statuses(&[a, other], "hub", None, &[], at("2026-05-01"));
        assert_eq!(s.len(), 3);
        assert!(s.iter().all(|x| x.state == "missing" && x.period == "2025"));
    }
}
