//! The record-delivery promises, property-tested in the in-memory
//! federation: exactly once and in order over a network that loses,
//! duplicates, delays and reorders; and nothing stored that the receiver's
//! own agreements do not allow, whatever a hostile peer sends.

use liaison_core::pb;
use liaison_core::policy::{self, Decision, Direction, Exchange};
use liaison_core::record::examples;
use liaison_sim::{Faults, Msg, Sim};
use proptest::prelude::*;
use time::{Duration, OffsetDateTime};

const MOU: &str = include_str!("../../../deploy/agreements/commit-bilateral-mou.toml");
const TH: &str = "th-atpd";
const KH: &str = "kh-antht";

fn t0() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap() // 2027-01-15, inside the MOU
}

fn mou() -> Vec<(pb::Agreement, pb::AgreementState)> {
    vec![(liaison_core::agreement::parse_toml(MOU).unwrap(), pb::AgreementState::Active)]
}

fn pair(seed: u64, faults: Faults) -> Sim {
    let mut sim = Sim::new(seed, t0(), faults);
    sim.add_node(TH, mou());
    sim.add_node(KH, mou());
    sim
}

/// Version `v` of entity `n`, originated by `from`.
fn entity(from: &str, n: u8, v: u64) -> pb::Record {
    pb::Record { originator: from.into(), id: format!("en-{n}"), version: v, ..examples::entity() }
}

/// `rec` as an honest sender's decision releases it (redacted as the grant says).
fn as_sent(rec: pb::Record) -> pb::Record {
    let ex =
        Exchange::of_record(TH, KH, Direction::Outgoing, pb::Operation::Push, &rec, pb::Purpose::Investigation, t0());
    match policy::decide(&mou(), &ex) {
        Decision::Allow { plan, .. } => liaison_core::redact::redact(&rec, &plan),
        Decision::Deny(d) => panic!("the MOU allows this share: {d}"),
    }
}

fn faults() -> impl Strategy<Value = Faults> {
    (0u8..=40, 0u8..=40, 1u32..=5_000).prop_map(|(loss_pct, dup_pct, max_delay_ms)| Faults {
        loss_pct,
        dup_pct,
        max_delay_ms,
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Every share queued is delivered; the receiver applies each delivery
    /// at most once, sees each delivery first in the order it was queued,
    /// and ends up holding the newest version of every record.
    #[test]
    fn shares_arrive_exactly_once_and_in_order(
        seed in any::<u64>(),
        faults in faults(),
        shares in proptest::collection::vec((0u8..3, 0u32..20_000), 1..12),
    ) {
        let mut sim = pair(seed, faults);
        let mut version = [0u64; 3];
        let mut queued = Vec::new();
        for (n, pause_ms) in shares {
            let slot = &mut version[usize::from(n)];
            *slot += 1;
            queued.push(sim.share(TH, KH, entity(TH, n, *slot), pb::Purpose::Investigation));
            sim.run(Duration::milliseconds(i64::from(pause_ms)));
        }
        prop_assert!(sim.run(Duration::days(1)), "the federation did not settle");

        for i in &sim.node(TH).outbox {
            prop_assert_eq!(i.state, pb::OutboxState::Delivered as i32, "{:?}", i);
        }
        let kh = sim.node(KH);
        // Exactly once: no delivery changed the receiver twice.
        let mut applied = kh.applied.clone();
        applied.sort();
        applied.dedup();
        prop_assert_eq!(applied.len(), kh.applied.len());
        // In order: first arrivals follow the queue.
        let mut first: Vec<String> = Vec::new();
        for (from, to, msg) in &sim.arrivals {
            if let (true, Msg::Push { delivery_id, .. }) = (from == TH && to == KH, msg) {
                if !first.contains(delivery_id) {
                    first.push(delivery_id.clone());
                }
            }
        }
        prop_assert_eq!(&first, &queued);
        // The newest version of each record is what the receiver holds.
        for (n, v) in version.iter().enumerate() {
            let held = kh.held.get(&format!("{TH}/en-{n}")).map(|r| r.version);
            prop_assert_eq!(held, (*v > 0).then_some(*v));
        }
    }

    /// A hostile peer sends whatever it likes, as often as it likes, in any
    /// order: kinds and purposes its grant does not cover, records of other
    /// originators, fields the grant withholds, reused delivery ids. The
    /// receiver holds only what its own agreements allow, and every repeat
    /// of a delivery id gets the first answer.
    #[test]
    fn a_hostile_peer_cannot_store_what_the_grant_does_not_allow(
        seed in any::<u64>(),
        faults in faults(),
        sends in proptest::collection::vec((0u8..4, 0u8..4, 0u8..3, 1u64..4, 0u8..6), 1..30),
    ) {
        let mut sim = pair(seed, faults);
        let mut answers: Vec<(String, pb::Receipt)> = Vec::new();
        for (call, (kind, purpose, originator, version, delivery)) in sends.into_iter().enumerate() {
            let mut record = match kind {
                0 => examples::entity(),
                1 => examples::statistics_report(),
                2 => examples::victim_referral(),
                _ => examples::contact_point(),
            };
            record.originator = [KH, TH, "vn-police"][usize::from(originator)].into();
            record.id = format!("rec-{kind}");
            record.version = version;
            let purpose = [
                pb::Purpose::Investigation,
                pb::Purpose::StatisticsAndReporting,
                pb::Purpose::VictimIdentification,
                pb::Purpose::Coordination,
            ][usize::from(purpose)];
            let delivery_id = format!("evil-{delivery}");
            sim.inject(KH, TH, Msg::Push { call: call as u64, delivery_id, record: Box::new(record), purpose });
            sim.run(Duration::minutes(1));
        }
        let th = sim.node(TH);
        for (key, rec) in &th.held {
            prop_assert_eq!(&rec.originator, KH, "{} held from another originator", key);
            let purposes = [pb::Purpose::Investigation, pb::Purpose::StatisticsAndReporting,
                pb::Purpose::VictimIdentification, pb::Purpose::Coordination];
            let allowed = purposes.iter().any(|p| {
                let ex = Exchange::of_record(TH, KH, Direction::Incoming, pb::Operation::Push, rec, *p, t0());
                policy::decide_received(&th.agreements, &ex, rec).is_allowed()
            });
            prop_assert!(allowed, "{} held though no grant allows it", key);
            if let Some(pb::record::Body::Entity(e)) = &rec.body {
                prop_assert!(e.evidence_basis.is_empty(), "a withheld field was stored");
            }
        }
        // Every answer to a delivery id is the first one.
        for (from, to, msg) in &sim.arrivals {
            if let (true, Msg::Receipt { receipt, .. }) = (from == TH && to == KH, msg) {
                match answers.iter().find(|(d, _)| *d == receipt.delivery_id) {
                    Some((_, first)) => prop_assert_eq!(first, receipt),
                    None => answers.push((receipt.delivery_id.clone(), receipt.clone())),
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// A withdrawal is final: queued behind the shares it withdraws, it
    /// reaches the holder after them, and no later replay of any version,
    /// under an old delivery id or a new one, brings the record back.
    #[test]
    fn a_withdrawn_record_never_comes_back(
        seed in any::<u64>(),
        faults in faults(),
        versions in 1u64..5,
        replays in proptest::collection::vec((1u64..5, any::<bool>(), 0u32..5_000), 0..10),
    ) {
        let mut sim = pair(seed, faults);
        let mut ids = Vec::new();
        for v in 1..=versions {
            ids.push(sim.share(TH, KH, entity(TH, 0, v), pb::Purpose::Investigation));
        }
        sim.withdraw(TH, KH, entity(TH, 0, versions + 1));
        prop_assert!(sim.run(Duration::days(1)), "the federation did not settle");
        let key = format!("{TH}/en-0");
        prop_assert!(sim.node(KH).withdrawn.contains(&key));
        for (n, (version, reuse, pause_ms)) in replays.into_iter().enumerate() {
            let delivery_id = if reuse {
                ids[(version as usize - 1) % ids.len()].clone()
            } else {
                format!("replay-{n}")
            };
            // Exactly what the receiver would take, were the record not withdrawn.
            let record = Box::new(as_sent(entity(TH, 0, version)));
            sim.inject(TH, KH, Msg::Push { call: 1_000 + n as u64, delivery_id, record, purpose: pb::Purpose::Investigation });
            sim.run(Duration::milliseconds(i64::from(pause_ms)));
        }
        prop_assert!(sim.run(Duration::days(1)));
        prop_assert!(!sim.node(KH).held.contains_key(&key), "a withdrawn record came back");
        for i in &sim.node(TH).outbox {
            prop_assert_eq!(i.state, pb::OutboxState::Delivered as i32, "{:?}", i);
        }
    }
}

/// Only the originator withdraws: a holder (or anyone) retracting someone
/// else's record changes nothing.
#[test]
fn only_the_originator_withdraws() {
    let mut sim = pair(5, Faults::default());
    sim.share(TH, KH, entity(TH, 0, 1), pb::Purpose::Investigation);
    assert!(sim.run(Duration::minutes(5)));
    let forged = pb::Record { withdrawn: true, ..entity(TH, 0, 2) };
    sim.inject("vn-police", KH, Msg::Retract { call: 9, delivery_id: "forged".into(), record: Box::new(forged) });
    assert!(sim.run(Duration::minutes(5)));
    assert!(sim.node(KH).held.contains_key(&format!("{TH}/en-0")));
    assert!(!sim.node(KH).withdrawn.contains(&format!("{TH}/en-0")));
}

/// Revoke, then try again: a replayed delivery gets its old answer and
/// changes nothing; a new one is refused; the revoking sender sends nothing.
#[test]
fn after_revocation_nothing_new_crosses_either_way() {
    let mut sim = pair(7, Faults::default());
    let first = sim.share(TH, KH, entity(TH, 0, 1), pb::Purpose::Investigation);
    assert!(sim.run(Duration::minutes(5)));
    assert_eq!(sim.node(KH).held.len(), 1);

    sim.node_mut(KH).set_agreement_state("th-kh-mou", pb::AgreementState::Revoked);
    let arrivals = sim.arrivals.len();
    // Replay of the delivered share: the first receipt again, nothing stored.
    sim.inject(
        TH,
        KH,
        Msg::Push {
            call: 1,
            delivery_id: first.clone(),
            record: Box::new(entity(TH, 0, 9)),
            purpose: pb::Purpose::Investigation,
        },
    );
    // A new version under a new delivery id: refused.
    sim.inject(
        TH,
        KH,
        Msg::Push {
            call: 2,
            delivery_id: "new".into(),
            record: Box::new(entity(TH, 0, 2)),
            purpose: pb::Purpose::Investigation,
        },
    );
    assert!(sim.run(Duration::minutes(5)));
    let kh = sim.node(KH);
    assert_eq!(kh.held[&format!("{TH}/en-0")].version, 1);
    assert!(kh.receipts[&(TH.to_string(), first)].delivered, "a replay is answered as the first time");
    assert!(!kh.receipts[&(TH.to_string(), "new".to_string())].delivered);

    // The sender revokes too: what it queues now is refused at home and never sent.
    sim.node_mut(TH).set_agreement_state("th-kh-mou", pb::AgreementState::Revoked);
    let queued = sim.share(TH, KH, entity(TH, 0, 3), pb::Purpose::Investigation);
    assert!(sim.run(Duration::minutes(5)));
    let item = sim.node(TH).outbox.iter().find(|i| i.delivery_id == queued).unwrap().clone();
    assert_eq!(item.state, pb::OutboxState::Refused as i32);
    let late_pushes = sim.arrivals[arrivals..]
        .iter()
        .filter(|(from, _, m)| from == TH && matches!(m, Msg::Push { delivery_id, .. } if *delivery_id == queued))
        .count();
    assert_eq!(late_pushes, 0);
}

/// A share the sender's own grant redacts arrives redacted: the receiver
/// never sees the withheld field, even over a lossy, repeating network.
#[test]
fn what_crosses_is_what_the_senders_decision_released() {
    let mut sim = pair(11, Faults { loss_pct: 30, dup_pct: 30, max_delay_ms: 2_000 });
    sim.share(TH, KH, entity(TH, 1, 1), pb::Purpose::Investigation);
    assert!(sim.run(Duration::hours(1)));
    let held = &sim.node(KH).held[&format!("{TH}/en-1")];
    let Some(pb::record::Body::Entity(e)) = &held.body else { panic!("not an entity") };
    assert!(e.evidence_basis.is_empty());
    let ex =
        Exchange::of_record(KH, TH, Direction::Incoming, pb::Operation::Push, held, pb::Purpose::Investigation, t0());
    assert!(matches!(policy::decide_received(&mou(), &ex, held), Decision::Allow { .. }));
}
