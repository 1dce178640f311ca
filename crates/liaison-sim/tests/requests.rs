//! Request steps between two nodes over a network that loses, duplicates,
//! delays and reorders: each node takes steps on its own copy whenever its
//! copy allows (so steps cross on the wire), and both copies end the same.

use std::collections::BTreeSet;

use liaison_core::pb;
use liaison_sim::{Faults, Sim};
use proptest::prelude::*;
use time::{Duration, OffsetDateTime};

const TH: &str = "th-atpd";
const KH: &str = "kh-antht";

fn terms() -> pb::RequestTypeTerms {
    pb::RequestTypeTerms {
        name: "information_request".into(),
        ack_within_seconds: 24 * 3600,
        answer_within_seconds: 7 * 24 * 3600,
        ..Default::default()
    }
}

fn steps(sim: &Sim, node: &str) -> BTreeSet<(String, u64, i32)> {
    sim.node(node).requests["r1"].timeline.iter().map(|e| (e.actor.clone(), e.seq, e.transition)).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn crossing_steps_converge_on_both_nodes(
        seed in any::<u64>(),
        loss_pct in 0u8..=40,
        dup_pct in 0u8..=40,
        max_delay_ms in 1u32..=5_000,
        actions in proptest::collection::vec((0u8..4, 0u32..10_000), 1..8),
    ) {
        let t0 = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let mut sim = Sim::new(seed, t0, Faults { loss_pct, dup_pct, max_delay_ms });
        sim.add_node(TH, Vec::new());
        sim.add_node(KH, Vec::new());
        sim.open_request("r1", TH, KH, &terms());
        for (what, pause_ms) in actions {
            let _ = match what {
                0 => sim.take_step(KH, "r1", pb::Transition::Acknowledge, ""),
                1 => sim.take_step(KH, "r1", pb::Transition::Answer, "the answer"),
                2 => sim.take_step(KH, "r1", pb::Transition::Decline, "no grounds"),
                _ => sim.take_step(TH, "r1", pb::Transition::Withdraw, ""),
            };
            sim.run(Duration::milliseconds(i64::from(pause_ms)));
        }
        prop_assert!(sim.run(Duration::days(1)), "the federation did not settle");
        for n in [TH, KH] {
            for i in &sim.node(n).outbox {
                prop_assert_eq!(i.state, pb::OutboxState::Delivered as i32, "{}: {:?}", n, i);
            }
        }
        prop_assert_eq!(sim.node(TH).requests["r1"].state, sim.node(KH).requests["r1"].state);
        prop_assert_eq!(steps(&sim, TH), steps(&sim, KH));
        for n in [TH, KH] {
            let timeline = &sim.node(n).requests["r1"].timeline;
            prop_assert_eq!(timeline.len(), steps(&sim, n).len(), "a step applied twice at {}", n);
        }
    }
}

/// The crossing the rule exists for: the requester withdraws while the
/// answer is on the wire; the answer stands on both nodes.
#[test]
fn an_answer_that_crossed_a_withdrawal_stands_on_both_nodes() {
    let t0 = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
    let mut sim = Sim::new(3, t0, Faults { loss_pct: 0, dup_pct: 0, max_delay_ms: 1_000 });
    sim.add_node(TH, Vec::new());
    sim.add_node(KH, Vec::new());
    sim.open_request("r1", TH, KH, &terms());
    assert!(sim.take_step(KH, "r1", pb::Transition::Answer, "the answer"));
    assert!(sim.take_step(TH, "r1", pb::Transition::Withdraw, ""));
    assert!(sim.run(Duration::hours(1)));
    for n in [TH, KH] {
        assert_eq!(sim.node(n).requests["r1"].state, pb::RequestState::Answered as i32, "{n}");
    }
}
