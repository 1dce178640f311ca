//! The victim referral workflow (after the Cambodia–Viet Nam joint SOP on
//! identification and repatriation, and the transnational referral
//! mechanisms the sources describe):
//! referral → identification confirmed → assistance → then one outcome:
//! - return planned → in transit (once per transit country, recorded by
//!   that country's node) → returned → reintegration follow-up (repeats);
//! - residence permit (the person stays);
//! - asylum referral (from assistance, or when a return was planned);
//! - service referral (to a service provider), after which any of the
//!   others may still follow.
//!
//! Each step has safeguards taken from the VictimReferral record. Support
//! steps depend only on consent; nothing here takes, or could take, the
//! person's cooperation with prosecution as an input.

use crate::convert::ProtoEnum;
use time::OffsetDateTime;

use crate::convert::timestamp;
use crate::pb::{self, CaseStage as C};
use crate::record::parse_date;

/// Days of reflection before a return, unless the person asks to return earlier.
pub const REFLECTION_DAYS: i64 = 30;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GateError {
    #[error("a case moves one step at a time: {from} → {to} is not a step")]
    InvalidStep { from: String, to: String },
    #[error("safeguard missing: {}", .0.iter().map(|g| format!("{} ({})", g.safeguard, g.detail)).collect::<Vec<_>>().join("; "))]
    Missing(Vec<pb::GateStatus>),
    #[error("{step} is recorded by {by}, the {side} side of the case")]
    OtherSide { step: String, by: String, side: &'static str },
}

impl GateError {
    /// The first missing safeguard's code, e.g. "best_interest_determination".
    pub fn code(&self) -> &str {
        match self {
            GateError::InvalidStep { .. } => "invalid_step",
            GateError::OtherSide { .. } => "other_side",
            GateError::Missing(g) => g.first().map_or("", |g| g.safeguard.as_str()),
        }
    }
}

fn stage_word(s: C) -> String {
    crate::convert::word(s.as_str_name(), "CASE_STAGE_")
}

fn gate(safeguard: &str, met: bool, detail: impl Into<String>) -> pb::GateStatus {
    pb::GateStatus { safeguard: safeguard.into(), met, detail: detail.into() }
}

fn consent_gate(v: &pb::VictimReferral) -> pb::GateStatus {
    let c = v.consent.clone().unwrap_or_default();
    match pb::ConsentStatus::of(c.status) {
        Some(pb::ConsentStatus::Given) => gate("consent", true, format!("given by {}", c.by)),
        Some(pb::ConsentStatus::NotPossible) if !c.guardian_decision.trim().is_empty() => {
            gate("consent", true, format!("not possible; guardian's decision recorded ({})", c.by))
        }
        Some(pb::ConsentStatus::NotPossible) => {
            gate("consent", false, "consent not possible and no guardian's decision recorded")
        }
        Some(pb::ConsentStatus::Refused) => gate("consent", false, "the person refused consent"),
        _ => gate("consent", false, "no consent recorded"),
    }
}

fn return_gates(v: &pb::VictimReferral) -> Vec<pb::GateStatus> {
    let mut g = vec![consent_gate(v)];
    if v.child {
        let bid = v.best_interest_determination.as_ref().and_then(|b| pb::BestInterestOutcome::of(b.outcome));
        g.push(match bid {
            Some(pb::BestInterestOutcome::Return) => {
                gate("best_interest_determination", true, "return is in the child's best interest")
            }
            Some(pb::BestInterestOutcome::NoReturn) => {
                gate("best_interest_determination", false, "the determination says the child must not be returned")
            }
            _ => gate("best_interest_determination", false, "a child's return needs a best-interest determination"),
        });
    }
    g.push(match &v.risk_assessment {
        Some(r) if r.level != 0 => gate("risk_assessment", true, format!("assessed {}", r.date)),
        _ => gate("risk_assessment", false, "no risk assessment recorded"),
    });
    let nr = v.non_refoulement_check.as_ref().and_then(|n| pb::NonRefoulementOutcome::of(n.outcome));
    g.push(match nr {
        Some(pb::NonRefoulementOutcome::Cleared) => gate("non_refoulement", true, "cleared"),
        Some(pb::NonRefoulementOutcome::RiskFound) => gate("non_refoulement", false, "a risk of refoulement was found"),
        _ => gate("non_refoulement", false, "no non-refoulement check recorded"),
    });
    g.push(match pb::Voluntariness::of(v.return_voluntariness) {
        Some(pb::Voluntariness::Voluntary) => gate("voluntariness", true, "return is voluntary"),
        Some(pb::Voluntariness::NotVoluntary) => gate("voluntariness", false, "the person does not agree to return"),
        _ => gate("voluntariness", false, "voluntariness of return not recorded"),
    });
    g
}

fn reflection_gate(v: &pb::VictimReferral, now: OffsetDateTime) -> pb::GateStatus {
    if v.early_return_requested {
        return gate("reflection_period", true, "the person asked to return before the reflection period ended");
    }
    match parse_date("reflection_period_start", &v.reflection_period_start) {
        Ok(start) => {
            // A start near the end of the calendar never ends (and never panics).
            let Some(ends) = start.checked_add(time::Duration::days(REFLECTION_DAYS)) else {
                return gate("reflection_period", false, "the reflection period start is out of range");
            };
            if now.date() >= ends {
                gate("reflection_period", true, format!("ended {ends}"))
            } else {
                gate("reflection_period", false, format!("runs until {ends} ({REFLECTION_DAYS} days)"))
            }
        }
        Err(_) => gate("reflection_period", false, "no reflection period start recorded"),
    }
}

fn asylum_gate(v: &pb::VictimReferral) -> pb::GateStatus {
    match &v.asylum_referral {
        Some(a) => gate(
            "no_asylum_pending",
            false,
            format!("referred to {} on {}: no return while the claim is pending", a.authority, a.date),
        ),
        None => gate("no_asylum_pending", true, "no asylum referral"),
    }
}

fn residence_gates(v: &pb::VictimReferral) -> Vec<pb::GateStatus> {
    let mut g = vec![consent_gate(v)];
    if v.child {
        let bid = v.best_interest_determination.as_ref().and_then(|b| pb::BestInterestOutcome::of(b.outcome));
        g.push(match bid {
            Some(pb::BestInterestOutcome::NoReturn) => {
                gate("best_interest_determination", true, "staying is in the child's best interest")
            }
            _ => gate(
                "best_interest_determination",
                false,
                "a child stays on a best-interest determination against return",
            ),
        });
    }
    let permit = v.residence_permit.as_ref();
    g.push(match permit.and_then(|p| pb::ResidencePermitDecision::of(p.decision)) {
        Some(pb::ResidencePermitDecision::Granted) => {
            gate("residence_permit", true, format!("granted {}", permit.map(|p| p.date.as_str()).unwrap_or_default()))
        }
        Some(pb::ResidencePermitDecision::Refused) => gate("residence_permit", false, "the permit was refused"),
        _ => gate("residence_permit", false, "no residence permit granted"),
    });
    g
}

/// The safeguards for moving the case to `to`, each with whether it is met.
pub fn gates(v: &pb::VictimReferral, to: C, now: OffsetDateTime) -> Vec<pb::GateStatus> {
    match to {
        C::IdentificationConfirmed | C::Assistance => vec![consent_gate(v)],
        C::ReturnPlanned | C::InTransit => {
            let mut g = return_gates(v);
            g.push(asylum_gate(v));
            g
        }
        C::Returned => {
            let mut g = return_gates(v);
            g.push(asylum_gate(v));
            g.push(reflection_gate(v, now));
            g
        }
        C::ReintegrationFollowUp => vec![consent_gate(v)],
        C::ResidencePermit => residence_gates(v),
        C::AsylumReferral => vec![
            consent_gate(v),
            match &v.asylum_referral {
                Some(a) => gate("asylum_referral", true, format!("referred to {} on {}", a.authority, a.date)),
                None => gate("asylum_referral", false, "no referral to the asylum authority recorded"),
            },
        ],
        C::ServiceReferral => vec![
            consent_gate(v),
            match &v.service_referral {
                Some(r) => gate("service_referral", true, format!("{} by {} from {}", r.service, r.provider, r.date)),
                None => gate("service_referral", false, "no referral to a service provider recorded"),
            },
        ],
        C::Referral | C::Unspecified => Vec::new(),
    }
}

/// In-transit steps already recorded (each by the next transit node).
fn transits_done(history: &[pb::CaseEvent]) -> usize {
    history.iter().filter(|e| e.to == C::InTransit as i32).count()
}

/// Whether `from` → `to` is a step, given the history before it.
fn is_step(case: &pb::VictimCase, history: &[pb::CaseEvent], from: C, to: C) -> bool {
    use C::*;
    let transit_left = transits_done(history) < case.transit_nodes.len();
    match (from, to) {
        (Referral, IdentificationConfirmed)
        | (IdentificationConfirmed, Assistance)
        | (Assistance | ServiceReferral, ReturnPlanned | ResidencePermit | AsylumReferral)
        | (Assistance, ServiceReferral)
        | (ReturnPlanned, AsylumReferral)
        | (Returned, ReintegrationFollowUp)
        | (ReintegrationFollowUp, ReintegrationFollowUp) => true,
        (ReturnPlanned | InTransit, InTransit) => transit_left,
        (ReturnPlanned | InTransit, Returned) => !transit_left,
        _ => false,
    }
}

/// Which party records a step, given the history before it. Identification
/// is confirmed by the receiving country, where the person comes from and
/// where identity and nationality can be verified (as the KH–VN joint SOP
/// on identification and repatriation has it), and that side follows up the
/// reintegration; each transit country records its own in-transit step, in
/// order; the sending country, where the person is, records everything else
/// (assistance, the outcome, the return).
fn recorded_by_after<'a>(case: &'a pb::VictimCase, history: &[pb::CaseEvent], to: C) -> (&'a str, &'static str) {
    match to {
        C::IdentificationConfirmed | C::ReintegrationFollowUp => (&case.receiving_node, "receiving"),
        C::InTransit => (case.transit_nodes.get(transits_done(history)).map_or("", String::as_str), "next transit"),
        _ => (&case.sending_node, "sending"),
    }
}

/// The step a case goes to next by default (the gates shown for it): the
/// return path, through each transit country; `None` once an outcome other
/// than return ends the case.
pub fn next_step(case: &pb::VictimCase) -> Option<C> {
    let transit_left = transits_done(&case.history) < case.transit_nodes.len();
    Some(match case.stage() {
        C::Referral => C::IdentificationConfirmed,
        C::IdentificationConfirmed => C::Assistance,
        C::Assistance | C::ServiceReferral => C::ReturnPlanned,
        C::ReturnPlanned | C::InTransit if transit_left => C::InTransit,
        C::ReturnPlanned | C::InTransit => C::Returned,
        C::Returned | C::ReintegrationFollowUp | C::Unspecified => C::ReintegrationFollowUp,
        C::ResidencePermit | C::AsylumReferral => return None,
    })
}

/// Which party records the step to `to` on the case as it stands.
pub fn recorded_by(case: &pb::VictimCase, to: C) -> (&str, &'static str) {
    recorded_by_after(case, &case.history, to)
}

/// Every party of the case: sending, receiving, then the transit nodes.
pub fn parties(case: &pb::VictimCase) -> impl Iterator<Item = &str> {
    [case.sending_node.as_str(), case.receiving_node.as_str()]
        .into_iter()
        .chain(case.transit_nodes.iter().map(String::as_str))
}

/// Most transit countries on one way back.
pub const MAX_TRANSIT: usize = 4;

/// A new case at the referral stage.
pub fn open(
    id: &str,
    referral_record_id: &str,
    sending: &str,
    receiving: &str,
    actor: &str,
    now: OffsetDateTime,
) -> pb::VictimCase {
    pb::VictimCase {
        id: id.into(),
        referral_record_id: referral_record_id.into(),
        sending_node: sending.into(),
        receiving_node: receiving.into(),
        transit_nodes: Vec::new(),
        stage: C::Referral as i32,
        history: vec![pb::CaseEvent {
            referral_version: 0,
            from: C::Unspecified as i32,
            to: C::Referral as i32,
            actor: actor.into(),
            time: Some(timestamp(now)),
            note: String::new(),
        }],
    }
}

/// Moves the case one step forward if every safeguard for that step is met.
pub fn advance(
    case: &pb::VictimCase,
    v: &pb::VictimReferral,
    to: C,
    actor: &str,
    note: &str,
    now: OffsetDateTime,
) -> Result<pb::VictimCase, GateError> {
    let from = case.stage();
    if !is_step(case, &case.history, from, to) {
        return Err(GateError::InvalidStep { from: stage_word(from), to: stage_word(to) });
    }
    let (by, side) = recorded_by(case, to);
    if actor != by {
        return Err(GateError::OtherSide { step: stage_word(to), by: by.to_string(), side });
    }
    let missing: Vec<pb::GateStatus> = gates(v, to, now).into_iter().filter(|g| !g.met).collect();
    if !missing.is_empty() {
        return Err(GateError::Missing(missing));
    }
    let mut out = case.clone();
    out.stage = to as i32;
    out.history.push(pb::CaseEvent {
        referral_version: 0,
        from: from as i32,
        to: to as i32,
        actor: actor.into(),
        time: Some(timestamp(now)),
        note: note.into(),
    });
    Ok(out)
}

/// Why a received case update is refused before anything else is looked at.
pub fn check_update(case: &pb::VictimCase, me: &str, caller: &str) -> Result<(), &'static str> {
    if case.id.is_empty() || case.id.len() > 64 || case.history.len() > 1000 {
        return Err("malformed case");
    }
    if case.transit_nodes.len() > MAX_TRANSIT {
        return Err("too many transit nodes");
    }
    let all: Vec<&str> = parties(case).collect();
    let distinct: std::collections::BTreeSet<&str> = all.iter().copied().collect();
    if distinct.len() != all.len() {
        return Err("a party appears twice in the case");
    }
    if !all.contains(&me) || !all.contains(&caller) {
        return Err("the case is not between the caller and this node");
    }
    if case.history.last().map(|e| e.actor.as_str()) != Some(caller) {
        return Err("the last step is not the caller's");
    }
    Ok(())
}

/// What a received case update does to the copy this node holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Update {
    /// Nothing new: the same or a shorter history (a repeat, or a late copy).
    AlreadyHeld,
    /// Exactly one step on top of what is held (or the referral, for a new case).
    Extends,
    /// The caller's step on top of steps this node does not hold yet, each
    /// recorded by another party (a transit country confirming its leg, the
    /// other side's step before it): that party's own delivery is still on
    /// its way, as three parties' deliveries cross. Nothing is taken; the
    /// sender tries again, in order, once the step before has arrived.
    Behind,
    /// A history that rewrites what is held, skips a step, or starts elsewhere.
    Refused(&'static str),
}

/// Whether `incoming` extends `held` by exactly one step. Histories are
/// append-only, so a peer can neither rewrite a step both nodes hold nor
/// skip one; a step that arrives before another party's step it follows is
/// [`Update::Behind`], never taken out of order.
pub fn update(held: Option<&pb::VictimCase>, incoming: &pb::VictimCase) -> Update {
    let Some(h) = held else {
        if incoming.history.first().is_none_or(|e| e.to != C::Referral as i32) {
            return Update::Refused("a case starts at its referral");
        }
        return match incoming.history.len() {
            1 => side_of_last_step(incoming),
            _ if others_before_last(incoming, 0) => Update::Behind,
            _ => Update::Refused("a case starts at its referral"),
        };
    };
    // Who the case is between, and about whom, never changes.
    if (&h.referral_record_id, &h.sending_node, &h.receiving_node, &h.transit_nodes)
        != (&incoming.referral_record_id, &incoming.sending_node, &incoming.receiving_node, &incoming.transit_nodes)
    {
        return Update::Refused("the update changes whom the case is about or between");
    }
    let n = h.history.len();
    if incoming.history.len() <= n {
        return Update::AlreadyHeld;
    }
    if incoming.history.get(..n) != Some(&h.history[..]) {
        return Update::Refused("the update does not extend the case as held here");
    }
    if incoming.history.len() == n.saturating_add(1) {
        side_of_last_step(incoming)
    } else if others_before_last(incoming, n) {
        Update::Behind
    } else {
        Update::Refused("the update does not extend the case as held here")
    }
}

/// Whether every step of `case` from `held` up to its last was recorded by
/// a party other than the last step's (the caller's). A caller's own
/// earlier step would have reached this node first (a sender delivers to
/// each peer in order), so a gap holding one can never fill: refused.
fn others_before_last(case: &pb::VictimCase, held: usize) -> bool {
    let Some((last, before)) = case.history.split_last() else { return false };
    before.get(held..).is_some_and(|gap| !gap.is_empty() && gap.iter().all(|e| e.actor != last.actor))
}

/// The new step must be a step from the stage before it, recorded by its
/// own side ([`recorded_by`]), whether or not this node holds the referral
/// to check the step's safeguards.
fn side_of_last_step(case: &pb::VictimCase) -> Update {
    let Some((last, before)) = case.history.split_last() else { return Update::Refused("empty history") };
    let Some(to) = C::of(last.to) else { return Update::Refused("unknown stage") };
    if let Some(prev) = before.last() {
        let from = C::of(prev.to).unwrap_or(C::Unspecified);
        if !is_step(case, before, from, to) {
            return Update::Refused("invalid_step: the update is not a step from the stage before it");
        }
    }
    if recorded_by_after(case, before, to).0 == last.actor {
        Update::Extends
    } else {
        Update::Refused("other_side: the step is not recorded by the side it belongs to")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn now() -> OffsetDateTime {
        OffsetDateTime::parse("2026-11-01T00:00:00Z", &time::format_description::well_known::Rfc3339).unwrap()
    }

    fn ready_adult() -> pb::VictimReferral {
        let mut v = match crate::record::examples::victim_referral().body {
            Some(pb::record::Body::VictimReferral(v)) => v,
            _ => unreachable!(),
        };
        v.reflection_period_start = "2026-09-01".into();
        v.risk_assessment = Some(pb::RiskAssessment {
            level: pb::RiskLevel::Low as i32,
            date: "2026-10-01".into(),
            summary: String::new(),
        });
        v.non_refoulement_check = Some(pb::NonRefoulementCheck {
            outcome: pb::NonRefoulementOutcome::Cleared as i32,
            date: "2026-10-02".into(),
            by: "UNHCR liaison".into(),
        });
        v.return_voluntariness = pb::Voluntariness::Voluntary as i32;
        v
    }

    /// The side that records `to` on `c`.
    fn who(c: &pb::VictimCase, to: C) -> String {
        recorded_by(c, to).0.to_string()
    }

    #[test]
    fn each_step_is_recorded_by_its_side() {
        let v = ready_adult();
        let c = open("case-1", "th-atpd/vr-1", "th-atpd", "kh-antht", "th-atpd", now());
        // The sending side cannot confirm the identification for the receiving side.
        let err = advance(&c, &v, C::IdentificationConfirmed, "th-atpd", "", now()).unwrap_err();
        assert_eq!(err.code(), "other_side");
        assert!(err.to_string().contains("kh-antht, the receiving side"), "{err}");
        let c = advance(&c, &v, C::IdentificationConfirmed, "kh-antht", "", now()).unwrap();
        assert_eq!(advance(&c, &v, C::Assistance, "kh-antht", "", now()).unwrap_err().code(), "other_side");
        assert_eq!(advance(&c, &v, C::Assistance, "la-dcta", "", now()).unwrap_err().code(), "other_side");
        let c = advance(&c, &v, C::Assistance, "th-atpd", "", now()).unwrap();
        let c = advance(&c, &v, C::ReturnPlanned, "th-atpd", "", now()).unwrap();
        let c = advance(&c, &v, C::Returned, "th-atpd", "", now()).unwrap();
        assert_eq!(advance(&c, &v, C::ReintegrationFollowUp, "th-atpd", "", now()).unwrap_err().code(), "other_side");
        assert!(advance(&c, &v, C::ReintegrationFollowUp, "kh-antht", "", now()).is_ok());
    }

    fn to_assistance(v: &pb::VictimReferral) -> pb::VictimCase {
        let c = open("case-1", "th-atpd/vr-1", "th-atpd", "kh-antht", "th-atpd", now());
        let c = advance(&c, v, C::IdentificationConfirmed, "kh-antht", "", now()).unwrap();
        advance(&c, v, C::Assistance, "th-atpd", "", now()).unwrap()
    }

    #[test]
    fn the_whole_path_when_every_safeguard_is_met() {
        let v = ready_adult();
        let c = to_assistance(&v);
        let c = advance(&c, &v, C::ReturnPlanned, &who(&c, C::ReturnPlanned), "", now()).unwrap();
        let c = advance(&c, &v, C::Returned, &who(&c, C::Returned), "", now()).unwrap();
        let c =
            advance(&c, &v, C::ReintegrationFollowUp, &who(&c, C::ReintegrationFollowUp), "3 months", now()).unwrap();
        let c =
            advance(&c, &v, C::ReintegrationFollowUp, &who(&c, C::ReintegrationFollowUp), "6 months", now()).unwrap();
        assert_eq!(c.history.len(), 7);
        assert!(matches!(
            advance(&c, &v, C::Returned, &who(&c, C::Returned), "", now()),
            Err(GateError::InvalidStep { .. })
        ));
    }

    #[test]
    fn each_gate_refuses_until_its_safeguard_is_met() {
        let base = ready_adult();
        let check = |mutate: &dyn Fn(&mut pb::VictimReferral), to: C, code: &str| {
            let mut v = base.clone();
            mutate(&mut v);
            let mut c = to_assistance(&base);
            if to == C::Returned {
                c = advance(&c, &base, C::ReturnPlanned, &who(&c, C::ReturnPlanned), "", now()).unwrap();
            }
            let err = advance(&c, &v, to, &who(&c, to), "", now()).unwrap_err();
            assert_eq!(err.code(), code, "{err}");
            assert!(advance(&c, &base, to, &who(&c, to), "", now()).is_ok(), "allowed once {code} is met");
        };
        check(&|v| v.consent = None, C::ReturnPlanned, "consent");
        check(&|v| v.consent.as_mut().unwrap().status = pb::ConsentStatus::Refused as i32, C::ReturnPlanned, "consent");
        check(&|v| v.risk_assessment = None, C::ReturnPlanned, "risk_assessment");
        check(&|v| v.non_refoulement_check = None, C::ReturnPlanned, "non_refoulement");
        check(
            &|v| v.non_refoulement_check.as_mut().unwrap().outcome = pb::NonRefoulementOutcome::RiskFound as i32,
            C::ReturnPlanned,
            "non_refoulement",
        );
        check(&|v| v.return_voluntariness = pb::Voluntariness::Undecided as i32, C::ReturnPlanned, "voluntariness");
        check(&|v| v.reflection_period_start = "2026-10-20".into(), C::Returned, "reflection_period");
        check(&|v| v.reflection_period_start.clear(), C::Returned, "reflection_period");
        // The person may ask to return earlier.
        let mut early = base.clone();
        early.reflection_period_start = "2026-10-20".into();
        early.early_return_requested = true;
        let c = advance(&to_assistance(&base), &early, C::ReturnPlanned, "th-atpd", "", now()).unwrap();
        assert!(advance(&c, &early, C::Returned, &who(&c, C::Returned), "", now()).is_ok());
        // Consent not possible: the guardian's decision is needed.
        let mut g = base.clone();
        g.consent = Some(pb::Consent {
            status: pb::ConsentStatus::NotPossible as i32,
            by: "guardian".into(),
            date: String::new(),
            guardian_decision: String::new(),
        });
        let c = open("c", "r", "a", "b", "a", now());
        assert_eq!(
            advance(&c, &g, C::IdentificationConfirmed, &who(&c, C::IdentificationConfirmed), "", now())
                .unwrap_err()
                .code(),
            "consent"
        );
        g.consent.as_mut().unwrap().guardian_decision = "agrees to identification and assistance".into();
        assert!(advance(&c, &g, C::IdentificationConfirmed, &who(&c, C::IdentificationConfirmed), "", now()).is_ok());
    }

    #[test]
    fn a_child_needs_a_best_interest_determination_for_return() {
        let mut child = ready_adult();
        child.child = true;
        child.age_group = pb::AgeGroup::AgeGroup1217 as i32;
        let c = to_assistance(&child);
        assert_eq!(
            advance(&c, &child, C::ReturnPlanned, &who(&c, C::ReturnPlanned), "", now()).unwrap_err().code(),
            "best_interest_determination"
        );
        child.best_interest_determination = Some(pb::BestInterestDetermination {
            outcome: pb::BestInterestOutcome::NoReturn as i32,
            date: "2026-10-03".into(),
            by: "BID panel".into(),
        });
        assert_eq!(
            advance(&c, &child, C::ReturnPlanned, &who(&c, C::ReturnPlanned), "", now()).unwrap_err().code(),
            "best_interest_determination"
        );
        child.best_interest_determination.as_mut().unwrap().outcome = pb::BestInterestOutcome::Return as i32;
        assert!(advance(&c, &child, C::ReturnPlanned, &who(&c, C::ReturnPlanned), "", now()).is_ok());
    }

    proptest! {
        #[test]
        fn no_path_returns_a_child_without_a_favourable_determination(
            steps in proptest::collection::vec(1i32..=6, 1..20),
            bid in prop_oneof![Just(None), Just(Some(pb::BestInterestOutcome::NoReturn)), Just(Some(pb::BestInterestOutcome::Unspecified))],
            early in any::<bool>(),
        ) {
            let mut child = ready_adult();
            child.child = true;
            child.early_return_requested = early;
            child.best_interest_determination = bid.map(|o| pb::BestInterestDetermination { outcome: o as i32, date: "2026-10-01".into(), by: String::new() });
            let mut c = open("c", "r", "a", "b", "a", now());
            for s in steps {
                if let Ok(next) = advance(&c, &child, C::try_from(s).unwrap(), &who(&c, C::try_from(s).unwrap()), "", now()) {
                    c = next;
                }
                prop_assert!(!matches!(C::try_from(c.stage), Ok(C::ReturnPlanned | C::Returned | C::ReintegrationFollowUp)));
            }
        }

        /// Dates at the ends of the calendar (a received referral may carry
        /// them) and any clock reading: the gates answer, never panic.
        #[test]
        fn gates_never_panic_on_extreme_dates(
            year in 0i32..=9999,
            month in 1u8..=12,
            day in 1u8..=31,
            now in 0i64..253_402_300_799,
        ) {
            let d = format!("{year:04}-{month:02}-{day:02}");
            let mut v = ready_adult();
            v.reflection_period_start = d.clone();
            v.risk_assessment.as_mut().unwrap().date = d.clone();
            v.non_refoulement_check.as_mut().unwrap().date = d;
            let now = OffsetDateTime::from_unix_timestamp(now).unwrap();
            for to in [C::IdentificationConfirmed, C::Assistance, C::ReturnPlanned, C::Returned, C::ReintegrationFollowUp] {
                let g = gates(&v, to, now);
                prop_assert!(!g.is_empty() || to != C::Returned);
            }
        }
    }

    fn case_with(steps: usize) -> pb::VictimCase {
        pb::VictimCase {
            id: "case-1".into(),
            sending_node: "th-atpd".into(),
            receiving_node: "kh-antht".into(),
            history: (0..steps)
                .map(|i| {
                    let path = [C::Referral, C::IdentificationConfirmed, C::Assistance, C::ReturnPlanned, C::Returned];
                    let to = path.get(i).copied().unwrap_or(C::ReintegrationFollowUp);
                    let actor = if matches!(to, C::IdentificationConfirmed | C::ReintegrationFollowUp) {
                        "kh-antht"
                    } else {
                        "th-atpd"
                    };
                    pb::CaseEvent {
                        actor: actor.into(),
                        to: to as i32,
                        note: format!("step {i}"),
                        ..Default::default()
                    }
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn a_received_step_from_the_wrong_side_is_refused_without_the_referral() {
        let held = case_with(1);
        let mut forged = case_with(2);
        assert_eq!(update(Some(&held), &forged), Update::Extends);
        forged.history[1].actor = "th-atpd".into();
        assert!(matches!(update(Some(&held), &forged), Update::Refused(r) if r.starts_with("other_side")));
        let mut opened_by_receiver = case_with(1);
        opened_by_receiver.history[0].actor = "kh-antht".into();
        assert!(matches!(update(None, &opened_by_receiver), Update::Refused(_)));
    }

    #[test]
    fn an_update_is_checked_before_it_is_looked_at() {
        assert_eq!(check_update(&case_with(1), "kh-antht", "th-atpd"), Ok(()));
        assert!(check_update(&case_with(1), "vn-police", "th-atpd").is_err(), "not a party");
        assert!(check_update(&case_with(1), "kh-antht", "kh-antht").is_err(), "not the caller's step");
        assert!(check_update(&pb::VictimCase { id: String::new(), ..case_with(1) }, "kh-antht", "th-atpd").is_err());
    }

    proptest! {
        /// Only one more step on top of what is held is taken; repeats and
        /// late copies change nothing; any rewrite or gap is refused.
        #[test]
        fn an_update_extends_by_exactly_one_step(held in 1usize..6, got in 0usize..9, rewrite in proptest::option::of(0usize..9)) {
            let h = case_with(held);
            let mut incoming = case_with(got);
            if let Some(i) = rewrite {
                if let Some(e) = incoming.history.get_mut(i) {
                    e.note = "rewritten".into();
                }
            }
            let rewritten = rewrite.is_some_and(|i| i < held.min(got));
            // A gap may only wait for steps of parties other than the caller.
            let callers_own_gap = incoming
                .history
                .split_last()
                .is_some_and(|(last, before)| before.get(held..).unwrap_or_default().iter().any(|e| e.actor == last.actor));
            let expected = if got <= held {
                Update::AlreadyHeld
            } else if rewritten {
                Update::Refused("the update does not extend the case as held here")
            } else if got == held + 1 {
                Update::Extends
            } else if callers_own_gap {
                Update::Refused("the update does not extend the case as held here")
            } else {
                Update::Behind
            };
            prop_assert_eq!(update(Some(&h), &incoming), expected);
            prop_assert_eq!(update(None, &case_with(1)), Update::Extends);
            // The receiving side's step before the referral has arrived: it waits.
            prop_assert_eq!(update(None, &case_with(2)), Update::Behind);
            prop_assert!(matches!(update(None, &case_with(3)), Update::Refused(_)));
        }
    }

    /// Three parties' deliveries cross: the sending country's return reaches
    /// the receiving country before the transit country's leg it follows.
    /// It waits for that leg and is then taken in order; a gap that holds
    /// the caller's own earlier step can never fill and is refused.
    #[test]
    fn a_step_that_overtakes_another_partys_step_waits_for_it() {
        let v = ready_adult();
        let mut c = to_assistance(&v);
        c.transit_nodes = vec!["la-dcta".into()];
        let planned = advance(&c, &v, C::ReturnPlanned, "th-atpd", "", now()).unwrap();
        let transit = advance(&planned, &v, C::InTransit, "la-dcta", "", now()).unwrap();
        let returned = advance(&transit, &v, C::Returned, "th-atpd", "", now()).unwrap();
        assert_eq!(update(Some(&planned), &returned), Update::Behind);
        assert_eq!(update(Some(&planned), &transit), Update::Extends);
        assert_eq!(update(Some(&transit), &returned), Update::Extends);
        // The caller's own planned return missing below its return: refused.
        assert!(matches!(update(Some(&c), &returned), Update::Refused(_)));
        // A forged leg in the gap is never taken: it only waits, and once the
        // real leg is held, the forgery no longer extends what is held.
        let mut forged = returned.clone();
        forged.history[4].note = "forged".into();
        assert_eq!(update(Some(&planned), &forged), Update::Behind);
        assert!(matches!(update(Some(&transit), &forged), Update::Refused(_)));
        // A rewrite of a step held here is refused at once.
        let mut rewritten = returned.clone();
        rewritten.history[1].note = "rewritten".into();
        assert!(matches!(update(Some(&planned), &rewritten), Update::Refused(_)));
        // The transit country holds nothing yet: the receiving side's
        // confirmation waits for the opening; the sending side's own
        // assistance step, with its own opening missing, is refused.
        let mut confirmed = c.clone();
        confirmed.history.truncate(2);
        assert_eq!(update(None, &confirmed), Update::Behind);
        assert!(matches!(update(None, &c), Update::Refused(_)));
    }

    #[test]
    fn outcomes_other_than_return_each_have_their_safeguards() {
        let v = ready_adult();
        let c = to_assistance(&v);
        // Staying needs a granted permit.
        assert_eq!(advance(&c, &v, C::ResidencePermit, "th-atpd", "", now()).unwrap_err().code(), "residence_permit");
        let mut stay = v.clone();
        stay.residence_permit = Some(pb::ResidencePermit {
            decision: pb::ResidencePermitDecision::Granted as i32,
            date: "2026-10-20".into(),
            by: "immigration".into(),
            valid_until: "2027-10-20".into(),
        });
        let done = advance(&c, &stay, C::ResidencePermit, "th-atpd", "", now()).unwrap();
        // An outcome ends the case: no return is planned after it.
        assert!(matches!(
            advance(&done, &stay, C::ReturnPlanned, "th-atpd", "", now()),
            Err(GateError::InvalidStep { .. })
        ));
        // A child stays only on a determination against return.
        let mut child = stay.clone();
        child.child = true;
        child.age_group = pb::AgeGroup::AgeGroup1217 as i32;
        let cc = to_assistance(&child);
        assert_eq!(
            advance(&cc, &child, C::ResidencePermit, "th-atpd", "", now()).unwrap_err().code(),
            "best_interest_determination"
        );
        // Asylum: a recorded referral, and then no return while it is pending.
        assert_eq!(advance(&c, &v, C::AsylumReferral, "th-atpd", "", now()).unwrap_err().code(), "asylum_referral");
        let mut asylum = v.clone();
        asylum.asylum_referral =
            Some(pb::AsylumReferral { authority: "asylum office".into(), date: "2026-10-21".into() });
        assert!(advance(&c, &asylum, C::AsylumReferral, "th-atpd", "", now()).is_ok());
        assert_eq!(
            advance(&c, &asylum, C::ReturnPlanned, "th-atpd", "", now()).unwrap_err().code(),
            "no_asylum_pending"
        );
        // A planned return can still turn into an asylum referral.
        let planned = advance(&c, &v, C::ReturnPlanned, "th-atpd", "", now()).unwrap();
        assert!(advance(&planned, &asylum, C::AsylumReferral, "th-atpd", "", now()).is_ok());
        // A service provider, after which the case may go on.
        let mut served = v.clone();
        served.service_referral = Some(pb::ServiceReferral {
            provider: "th-ngo".into(),
            service: "shelter".into(),
            date: "2026-10-22".into(),
        });
        assert_eq!(advance(&c, &v, C::ServiceReferral, "th-atpd", "", now()).unwrap_err().code(), "service_referral");
        let s = advance(&c, &served, C::ServiceReferral, "th-atpd", "", now()).unwrap();
        assert!(advance(&s, &served, C::ReturnPlanned, "th-atpd", "", now()).is_ok());
    }

    #[test]
    fn each_transit_country_records_its_own_step_in_order() {
        let v = ready_adult();
        let mut c = to_assistance(&v);
        c.transit_nodes = vec!["la-dcta".into(), "vn-c02".into()];
        let c = advance(&c, &v, C::ReturnPlanned, "th-atpd", "", now()).unwrap();
        // Not returned before every transit country has recorded its step.
        assert!(matches!(advance(&c, &v, C::Returned, "th-atpd", "", now()), Err(GateError::InvalidStep { .. })));
        assert_eq!(advance(&c, &v, C::InTransit, "vn-c02", "", now()).unwrap_err().code(), "other_side");
        assert_eq!(advance(&c, &v, C::InTransit, "th-atpd", "", now()).unwrap_err().code(), "other_side");
        let c = advance(&c, &v, C::InTransit, "la-dcta", "", now()).unwrap();
        let c = advance(&c, &v, C::InTransit, "vn-c02", "", now()).unwrap();
        assert!(matches!(advance(&c, &v, C::InTransit, "vn-c02", "", now()), Err(GateError::InvalidStep { .. })));
        let c = advance(&c, &v, C::Returned, "th-atpd", "", now()).unwrap();
        // Every party takes the update; a party outside the case does not.
        assert_eq!(check_update(&c, "la-dcta", "th-atpd"), Ok(()));
        assert!(check_update(&c, "mm-police", "th-atpd").is_err());
    }

    #[test]
    fn an_update_cannot_change_who_the_case_is_between() {
        let held = case_with(2);
        let mut next = case_with(3);
        assert_eq!(update(Some(&held), &next), Update::Extends);
        next.transit_nodes = vec!["la-dcta".into()];
        assert!(matches!(update(Some(&held), &next), Update::Refused(r) if r.contains("between")));
        let mut swapped = case_with(3);
        std::mem::swap(&mut swapped.sending_node, &mut swapped.receiving_node);
        assert!(matches!(update(Some(&held), &swapped), Update::Refused(_)));
        // A skipped stage is refused even when recorded by the right side.
        let mut skip = case_with(3);
        skip.history[2].to = C::Returned as i32;
        assert!(matches!(update(Some(&held), &skip), Update::Refused(r) if r.starts_with("invalid_step")));
        // A party listed twice is refused before anything else.
        let mut twice = case_with(1);
        twice.transit_nodes = vec!["kh-antht".into()];
        assert!(check_update(&twice, "kh-antht", "th-atpd").is_err());
    }
}
