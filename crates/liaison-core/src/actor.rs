//! What kind of body a party to an agreement is, and what each kind may
//! ever receive. An agreement names each party's role (all parties sign
//! it, so a peer cannot claim a role it was not given); the policy engine
//! refuses any record kind outside the receiver's role, whatever a grant
//! says, on the sending and on the receiving side.

use crate::convert::ProtoEnum;
use crate::pb::{self, ActorRole as R, RecordKind as K};

/// A party's role under `a` (a party not listed is a law-enforcement unit).
pub fn role_of(a: &pb::Agreement, party: &str) -> R {
    a.roles
        .iter()
        .find(|r| r.party == party)
        .and_then(|r| R::of(r.role))
        .filter(|r| *r != R::Unspecified)
        .unwrap_or(R::LawEnforcement)
}

/// The record kinds a role may receive. An NHRI monitors independently and
/// sees aggregates only; NGO desks and service providers see contact points
/// and (pseudonymised unless released) victim referrals, never intelligence;
/// embassies and liaison officers share intelligence but not statistics.
pub fn receivable(role: R) -> &'static [K] {
    match role {
        R::Unspecified | R::LawEnforcement => &[
            K::ContactPoint,
            K::IntelligenceReport,
            K::Entity,
            K::VictimReferral,
            K::StatisticsReport,
            K::RegionalAggregate,
        ],
        R::Secretariat => &[K::ContactPoint, K::StatisticsReport, K::RegionalAggregate],
        R::Embassy => &[K::ContactPoint, K::IntelligenceReport, K::Entity, K::VictimReferral],
        R::InternationalOrg => &[K::ContactPoint, K::VictimReferral, K::StatisticsReport, K::RegionalAggregate],
        R::Ngo | R::ServiceProvider => &[K::ContactPoint, K::VictimReferral],
        R::Nhri => &[K::StatisticsReport, K::RegionalAggregate],
    }
}

pub fn may_receive(role: R, kind: K) -> bool {
    receivable(role).contains(&kind)
}

/// How a role is named to people.
pub fn title(role: R) -> &'static str {
    match role {
        R::Unspecified | R::LawEnforcement => "law-enforcement unit",
        R::Secretariat => "regional secretariat",
        R::Ngo => "NGO referral desk",
        R::ServiceProvider => "service provider",
        R::InternationalOrg => "international organisation",
        R::Nhri => "national human rights institution",
        R::Embassy => "embassy or liaison officer abroad",
    }
}

/// The kinds a role may receive, as words ("contact_point, victim_referral").
pub fn receivable_words(role: R) -> String {
    receivable(role).iter().map(|k| crate::redact::kind_prefix(*k)).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_nhri_receives_aggregates_only_and_an_ngo_no_intelligence() {
        assert!(may_receive(R::Nhri, K::StatisticsReport));
        assert!(may_receive(R::Nhri, K::RegionalAggregate));
        for k in [K::ContactPoint, K::IntelligenceReport, K::Entity, K::VictimReferral] {
            assert!(!may_receive(R::Nhri, k), "{k:?}");
        }
        for r in [R::Ngo, R::ServiceProvider] {
            assert!(may_receive(r, K::VictimReferral));
            assert!(!may_receive(r, K::IntelligenceReport));
            assert!(!may_receive(r, K::Entity));
        }
        assert!(may_receive(R::Embassy, K::IntelligenceReport));
        assert!(!may_receive(R::Secretariat, K::VictimReferral));
    }

    #[test]
    fn an_unlisted_party_is_law_enforcement() {
        let mut a = pb::Agreement { parties: vec!["a".into(), "b".into()], ..Default::default() };
        a.roles.push(pb::PartyRole { party: "b".into(), role: R::Nhri as i32, posted_in: String::new() });
        assert_eq!(role_of(&a, "a"), R::LawEnforcement);
        assert_eq!(role_of(&a, "b"), R::Nhri);
    }
}
