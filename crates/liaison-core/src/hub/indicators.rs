//! SOP-compliance indicators from request metadata (types, parties, times;
//! never content): per pair and per member as the node asked, the share of
//! requests acknowledged and answered on time and the median times.
//!
//! A request counts towards a deadline's share once it was met or the
//! deadline passed; requests still inside their deadline, and withdrawn
//! requests, are left out. A decline counts as an answer.

use std::collections::BTreeMap;

use time::OffsetDateTime;

use crate::convert::from_timestamp;
use crate::pb;

fn t(ts: &Option<pbjson_types::Timestamp>) -> Option<OffsetDateTime> {
    ts.as_ref().and_then(from_timestamp)
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let mid = v.len() / 2;
    let upper = v.get(mid).copied().unwrap_or_default();
    match mid.checked_sub(1).and_then(|i| v.get(i)) {
        Some(lower) if v.len() % 2 == 0 => (lower + upper) / 2.0,
        _ => upper,
    }
}

#[derive(Default)]
struct Acc {
    requests: u32,
    ack_counted: u32,
    ack_on_time: u32,
    answer_counted: u32,
    answer_on_time: u32,
    ack_hours: Vec<f64>,
    answer_hours: Vec<f64>,
}

impl Acc {
    fn add(&mut self, m: &pb::RequestMetadata, now: OffsetDateTime) {
        let (Some(submit), Some(ack_due), Some(answer_due)) = (t(&m.submit_time), t(&m.ack_due), t(&m.answer_due))
        else {
            return;
        };
        self.requests = self.requests.saturating_add(1);
        // An answer without a separate acknowledgement acknowledges too.
        let acked = t(&m.ack_time).or(t(&m.answer_time));
        match acked {
            Some(a) => {
                self.ack_counted = self.ack_counted.saturating_add(1);
                self.ack_on_time = self.ack_on_time.saturating_add(u32::from(a <= ack_due));
                self.ack_hours.push(crate::convert::between(submit, a).as_seconds_f64() / 3600.0);
            }
            None if now > ack_due => self.ack_counted = self.ack_counted.saturating_add(1),
            None => {}
        }
        match t(&m.answer_time) {
            Some(a) => {
                self.answer_counted = self.answer_counted.saturating_add(1);
                self.answer_on_time = self.answer_on_time.saturating_add(u32::from(a <= answer_due));
                self.answer_hours.push(crate::convert::between(submit, a).as_seconds_f64() / 3600.0);
            }
            None if now > answer_due => self.answer_counted = self.answer_counted.saturating_add(1),
            None => {}
        }
    }

    fn finish(self, from: &str, to: &str) -> pb::PairIndicator {
        let share = |on: u32, of: u32| if of == 0 { 0.0 } else { f64::from(on) / f64::from(of) };
        pb::PairIndicator {
            from: from.into(),
            to: to.into(),
            requests: self.requests,
            acknowledged_on_time: share(self.ack_on_time, self.ack_counted),
            answered_on_time: share(self.answer_on_time, self.answer_counted),
            median_ack_hours: median(self.ack_hours),
            median_answer_hours: median(self.answer_hours),
        }
    }
}

/// Indicators per member (as the node asked) and per pair.
pub fn compute(
    metadata: &[pb::RequestMetadata],
    now: OffsetDateTime,
) -> (Vec<pb::PairIndicator>, Vec<pb::PairIndicator>) {
    let mut pairs: BTreeMap<(String, String), Acc> = BTreeMap::new();
    let mut members: BTreeMap<String, Acc> = BTreeMap::new();
    for m in metadata.iter().filter(|m| m.state != "withdrawn") {
        pairs.entry((m.from_node.clone(), m.to_node.clone())).or_default().add(m, now);
        members.entry(m.to_node.clone()).or_default().add(m, now);
    }
    (
        members.into_iter().map(|(to, a)| a.finish("*", &to)).collect(),
        pairs.into_iter().map(|((f, to), a)| a.finish(&f, &to)).collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::timestamp;

    fn at(h: i64) -> Option<pbjson_types::Timestamp> {
        Some(timestamp(OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap() + time::Duration::hours(h)))
    }

    fn req(id: &str, from: &str, to: &str, ack: Option<i64>, answer: Option<i64>, state: &str) -> pb::RequestMetadata {
        pb::RequestMetadata {
            request_id: id.into(),
            from_node: from.into(),
            to_node: to.into(),
            submit_time: at(0),
            ack_due: at(24),
            answer_due: at(168),
            ack_time: ack.and_then(at),
            answer_time: answer.and_then(at),
            state: state.into(),
            ..Default::default()
        }
    }

    #[test]
    fn known_timelines() {
        let data = vec![
            req("r1", "th", "kh", Some(2), Some(50), "answered"), // both on time
            req("r2", "th", "kh", Some(30), Some(200), "answered"), // both late
            req("r3", "th", "kh", None, None, "submitted"),       // both deadlines passed
            req("r4", "la", "kh", Some(10), None, "acknowledged"), // answer still within its deadline at now=100h
            req("r5", "th", "kh", None, None, "withdrawn"),       // left out
            req("r6", "kh", "th", None, Some(20), "declined"),    // a decline answers and acknowledges
        ];
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap() + time::Duration::hours(300);
        let (members, pairs) = compute(&data, now);
        let th_kh = pairs.iter().find(|p| p.from == "th" && p.to == "kh").unwrap();
        assert_eq!(th_kh.requests, 3);
        assert!((th_kh.acknowledged_on_time - 1.0 / 3.0).abs() < 1e-9);
        assert!((th_kh.answered_on_time - 1.0 / 3.0).abs() < 1e-9);
        assert_eq!(th_kh.median_ack_hours, 16.0); // median of 2 and 30
        assert_eq!(th_kh.median_answer_hours, 125.0); // median of 50 and 200
        let kh = members.iter().find(|p| p.to == "kh").unwrap();
        assert_eq!(kh.requests, 4);
        assert!((kh.acknowledged_on_time - 2.0 / 4.0).abs() < 1e-9); // r1, r4 of r1..r4
        assert!((kh.answered_on_time - 1.0 / 4.0).abs() < 1e-9); // r4 passed its due at 300h too
        assert_eq!(kh.median_ack_hours, 10.0); // 2, 10, 30
        let th = members.iter().find(|p| p.to == "th").unwrap();
        assert_eq!((th.acknowledged_on_time, th.answered_on_time, th.median_answer_hours), (1.0, 1.0, 20.0));
        // Before any deadline passes, open requests are not counted.
        let early = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap() + time::Duration::hours(1);
        let (_, pairs) = compute(&[req("x", "a", "b", None, None, "submitted")], early);
        assert_eq!((pairs[0].requests, pairs[0].acknowledged_on_time), (1, 0.0));
    }

    #[test]
    fn medians() {
        assert_eq!(median(vec![]), 0.0);
        assert_eq!(median(vec![3.0]), 3.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
    }
}
