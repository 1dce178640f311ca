//! Hub decisions: what a regional secretariat's node may hand out of its
//! regional contact-point directory, between whom it may relay, and whose
//! request metadata it may take into the compliance indicators.
//!
//! Pure like the rest of `policy`: the adapter (`crate::hub`) brings the
//! agreements with their states, the membership facts and the time. A hub
//! gains nothing from being a hub; each rule below asks for an active
//! agreement that covers the hub and the members concerned.

use time::OffsetDateTime;

use super::{decide, grant_covers, in_window, label, Decision, Denial, Direction, Exchange, OnwardFacts};
use crate::pb::{self, AgreementState, HandlingCode, Operation, Purpose, RecordKind};

/// Why the hub refuses. Agreement-level reasons are ordered from the first
/// check to the last: with several agreements, the one that got furthest is
/// reported.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum HubDenial {
    NotAMember {
        node: String,
    },
    SameNode,
    NotARequestParty {
        node: String,
    },
    UnknownAgreement {
        agreement: String,
    },
    NoHubAgreement,
    NotHubAgreement {
        agreement: String,
    },
    NotAParty {
        agreement: String,
        node: String,
    },
    AgreementNotActive {
        agreement: String,
        state: AgreementState,
    },
    OutsideValidity {
        agreement: String,
    },
    WrongDirection {
        agreement: String,
    },
    RequestTypeNotDefined {
        agreement: String,
        request_type: String,
    },
    /// The general exchange rules refused (agreement, grant, handling, onward).
    Exchange(Denial),
    /// The grant would redact fields the originator signed in: the hub cannot
    /// change a signed record, so it does not release it.
    NeedsRedaction {
        agreement: String,
        fields: Vec<String>,
    },
}

impl HubDenial {
    pub fn code(&self) -> &'static str {
        match self {
            HubDenial::NotAMember { .. } => "not_a_member",
            HubDenial::SameNode => "same_node",
            HubDenial::NotARequestParty { .. } => "not_a_request_party",
            HubDenial::UnknownAgreement { .. } => "unknown_agreement",
            HubDenial::NoHubAgreement => "no_hub_agreement",
            HubDenial::NotHubAgreement { .. } => "agreement_not_naming_hub",
            HubDenial::NotAParty { .. } => "not_a_party",
            HubDenial::AgreementNotActive { .. } => "agreement_not_active",
            HubDenial::OutsideValidity { .. } => "outside_validity",
            HubDenial::WrongDirection { .. } => "wrong_direction",
            HubDenial::RequestTypeNotDefined { .. } => "request_type_not_defined",
            HubDenial::Exchange(d) => d.code(),
            HubDenial::NeedsRedaction { .. } => "hub_cannot_redact",
        }
    }
}

impl std::fmt::Display for HubDenial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HubDenial::NotAMember { node } => write!(f, "{node} is not a member of this hub"),
            HubDenial::SameNode => write!(f, "sender and recipient are the same node"),
            HubDenial::NotARequestParty { node } => {
                write!(f, "{node} is neither the sender nor the recipient of this request")
            }
            HubDenial::UnknownAgreement { agreement } => write!(f, "this hub holds no agreement {agreement}"),
            HubDenial::NoHubAgreement => {
                write!(f, "no agreement naming this hub as its hub covers these members")
            }
            HubDenial::NotHubAgreement { agreement } => {
                write!(f, "agreement {agreement} does not name this node as its hub")
            }
            HubDenial::NotAParty { agreement, node } => write!(f, "{node} is not a party to agreement {agreement}"),
            HubDenial::AgreementNotActive { agreement, state } => {
                write!(f, "agreement {agreement} is {}", crate::convert::state_word(*state))
            }
            HubDenial::OutsideValidity { agreement } => {
                write!(f, "outside the validity window of agreement {agreement}")
            }
            HubDenial::WrongDirection { agreement } => {
                write!(f, "agreement {agreement} covers nothing in this direction")
            }
            HubDenial::RequestTypeNotDefined { agreement, request_type } => {
                write!(f, "agreement {agreement} defines no {request_type} requests")
            }
            HubDenial::Exchange(d) => d.fmt(f),
            HubDenial::NeedsRedaction { agreement, fields } => write!(
                f,
                "agreement {agreement} redacts {}, which the originator's signed record holds; the hub cannot redact it",
                fields.join(", ")
            ),
        }
    }
}

/// The agreement that covers an allowed hub action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Covered {
    pub agreement_id: String,
    pub agreement_version: u32,
}

impl Covered {
    fn of(a: &pb::Agreement) -> Self {
        Self { agreement_id: a.id.clone(), agreement_version: a.version }
    }
}

impl std::fmt::Display for Covered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} v{}", self.agreement_id, self.agreement_version)
    }
}

fn worse(worst: &mut HubDenial, d: HubDenial) {
    if d > *worst {
        *worst = d;
    }
}

/// One entry of the regional contact-point directory, offered to a member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactRelease {
    pub hub: String,
    pub caller: String,
    pub caller_is_member: bool,
    pub handling: HandlingCode,
    /// The onward rule the record arrived at the hub under.
    pub onward: pb::OnwardSharing,
    pub originator: String,
    /// Fields the originator already removed from the signed record.
    pub redacted: Vec<String>,
    pub at: OffsetDateTime,
}

/// The agreement under which the hub may hand an entry on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Released {
    pub agreement_id: String,
    pub agreement_version: u32,
    pub onward: pb::OnwardSharing,
    pub retention_days: u32,
}

fn contact_exchange(hub: &str, caller: &str, handling: HandlingCode, at: OffsetDateTime) -> Exchange {
    Exchange {
        local: hub.to_string(),
        peer: caller.to_string(),
        direction: Direction::Outgoing,
        operation: Operation::Query,
        kind: RecordKind::ContactPoint,
        purpose: Purpose::Coordination,
        handling,
        at,
        victim: None,
        into_kind: None,
        onward: None,
    }
}

/// May `caller` search this hub's regional directory at all? A member with an
/// active agreement granting it contact points for coordination by query
/// from the hub. Each entry is then decided on its own ([`release_contact`]).
pub fn may_search(
    agreements: &[(pb::Agreement, AgreementState)],
    hub: &str,
    caller: &str,
    caller_is_member: bool,
    at: OffsetDateTime,
) -> Result<(), HubDenial> {
    if !caller_is_member {
        return Err(HubDenial::NotAMember { node: caller.to_string() });
    }
    match decide(agreements, &contact_exchange(hub, caller, HandlingCode::Clear, at)) {
        Decision::Allow { .. } => Ok(()),
        Decision::Deny(d) => Err(HubDenial::Exchange(d)),
    }
}

/// May the hub hand this received contact point on to `caller`? This is
/// onward sharing from the hub: the record's own onward rule must allow it,
/// and an active agreement between the hub and the caller must grant contact
/// points by query for coordination at the record's handling code. The hub
/// forwards the originator's signed envelope unchanged, so a grant that
/// would redact something still in the record refuses it.
pub fn release_contact(
    agreements: &[(pb::Agreement, AgreementState)],
    c: &ContactRelease,
) -> Result<Released, HubDenial> {
    if !c.caller_is_member {
        return Err(HubDenial::NotAMember { node: c.caller.clone() });
    }
    let mut ex = contact_exchange(&c.hub, &c.caller, c.handling, c.at);
    // A directory has no per-member consent from the originator: "with consent" stays closed.
    ex.onward = Some(OnwardFacts { rule: c.onward, originator: c.originator.clone(), originator_consent: false });
    match decide(agreements, &ex) {
        Decision::Deny(d) => Err(HubDenial::Exchange(d)),
        Decision::Allow { agreement_id, agreement_version, plan, onward, retention_days } => {
            let still_held: Vec<String> = plan
                .remove
                .iter()
                .filter(|f| !c.redacted.iter().any(|r| r == *f || f.starts_with(&format!("{r}."))))
                .cloned()
                .collect();
            if !still_held.is_empty() {
                return Err(HubDenial::NeedsRedaction {
                    agreement: format!("{agreement_id} v{agreement_version}"),
                    fields: still_held,
                });
            }
            Ok(Released { agreement_id, agreement_version, onward, retention_days })
        }
    }
}

/// A sealed message one member asks the hub to relay to another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayFacts {
    pub hub: String,
    pub from: String,
    pub to: String,
    pub from_is_member: bool,
    pub to_is_member: bool,
    pub at: OffsetDateTime,
}

/// True if `a` contemplates traffic from `from` to `to`: a grant in that
/// direction, or SOP request types (request steps and case updates go both
/// ways between the parties).
fn covers_direction(a: &pb::Agreement, from: &str, to: &str) -> bool {
    let sop = a.sop.as_ref().is_some_and(|s| !s.request_types.is_empty());
    sop || a.grants.iter().any(|g| grant_covers(g, from, to))
}

/// May this hub relay from `from` to `to`? Both must be current members and
/// an active agreement that names this node as its `hub` must have the hub
/// and both members as parties, inside its validity window, and cover that
/// direction. The hub never sees content, so kind, purpose and handling are
/// the recipient's to decide when it opens the message.
pub fn may_relay(agreements: &[(pb::Agreement, AgreementState)], r: &RelayFacts) -> Result<Covered, HubDenial> {
    if r.from == r.to {
        return Err(HubDenial::SameNode);
    }
    if !r.from_is_member {
        return Err(HubDenial::NotAMember { node: r.from.clone() });
    }
    if !r.to_is_member {
        return Err(HubDenial::NotAMember { node: r.to.clone() });
    }
    let mut worst = HubDenial::NoHubAgreement;
    for (a, state) in agreements {
        let has = |n: &str| a.parties.iter().any(|p| p == n);
        if !(has(&r.from) && has(&r.to)) {
            continue;
        }
        let l = label(a);
        let d = if a.hub != r.hub {
            HubDenial::NotHubAgreement { agreement: l }
        } else if !has(&r.hub) {
            HubDenial::NotAParty { agreement: l, node: r.hub.clone() }
        } else if *state != AgreementState::Active {
            HubDenial::AgreementNotActive { agreement: l, state: *state }
        } else if !in_window(a, r.at) {
            HubDenial::OutsideValidity { agreement: l }
        } else if !covers_direction(a, &r.from, &r.to) {
            HubDenial::WrongDirection { agreement: l }
        } else {
            return Ok(Covered::of(a));
        };
        worse(&mut worst, d);
    }
    Err(worst)
}

/// Request metadata a member reports to the hub for the compliance indicators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataFacts {
    pub hub: String,
    pub caller: String,
    pub caller_is_member: bool,
    pub agreement_id: String,
    pub request_type: String,
    pub from: String,
    pub to: String,
    pub at: OffsetDateTime,
}

/// May the hub take this metadata? Only from a member that is the request's
/// sender or recipient, under the agreement it names: held here, naming this
/// node as its `hub`, active and inside its window, with both ends as
/// parties, and defining the request type in its SOP.
pub fn accept_metadata(
    agreements: &[(pb::Agreement, AgreementState)],
    m: &MetadataFacts,
) -> Result<Covered, HubDenial> {
    if !m.caller_is_member {
        return Err(HubDenial::NotAMember { node: m.caller.clone() });
    }
    if m.caller != m.from && m.caller != m.to {
        return Err(HubDenial::NotARequestParty { node: m.caller.clone() });
    }
    if m.from == m.to {
        return Err(HubDenial::SameNode);
    }
    let mut worst = HubDenial::UnknownAgreement { agreement: m.agreement_id.clone() };
    for (a, state) in agreements.iter().filter(|(a, _)| a.id == m.agreement_id) {
        let l = label(a);
        let missing = [&m.from, &m.to].into_iter().find(|n| !a.parties.iter().any(|p| p == *n));
        let d = if a.hub != m.hub {
            HubDenial::NotHubAgreement { agreement: l }
        } else if let Some(n) = missing {
            HubDenial::NotAParty { agreement: l, node: n.clone() }
        } else if *state != AgreementState::Active {
            HubDenial::AgreementNotActive { agreement: l, state: *state }
        } else if !in_window(a, m.at) {
            HubDenial::OutsideValidity { agreement: l }
        } else if !a.sop.iter().flat_map(|s| &s.request_types).any(|t| t.name == m.request_type) {
            HubDenial::RequestTypeNotDefined { agreement: l, request_type: m.request_type.clone() }
        } else {
            return Ok(Covered::of(a));
        };
        worse(&mut worst, d);
    }
    Err(worst)
}

#[cfg(test)]
mod tests;
