//! What a local user's token may do. Every local API method needs one
//! scope; a role is a named bundle of scopes, and a user may be created
//! with a narrower set than their role's bundle (an integration that only
//! reads the change feed gets `feed` and nothing else).
//!
//! The table of which method needs which scope is in `docs/INTEGRATION.md`,
//! checked against the running node by `tests/scopes.rs`.

use crate::convert::ProtoEnum;
use crate::pb::UserRole;

/// One permission of the local API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// The node's card and status; one's own console password.
    Status,
    /// Read records (victims' identities masked), look up identifiers.
    RecordsRead,
    /// See a victim's identity (with a reason, audited).
    RecordsIdentity,
    /// Create, update, withdraw and import records.
    RecordsWrite,
    /// The change feed.
    Feed,
    /// Query peers through the node; regional contact search.
    Query,
    /// Hit/no-hit identifier checks at peers.
    Check,
    /// Share records, sync, onward-sharing consent.
    Shares,
    /// Read the outbox, receipts and consent requests.
    SharesRead,
    /// Send requests and move them along.
    Requests,
    /// Read requests.
    RequestsRead,
    /// Open and advance victim cases.
    Cases,
    /// Read victim cases.
    CasesRead,
    /// Read agreements; ask whether an exchange would be allowed.
    AgreementsRead,
    /// Draft, sign, propose, accept, amend agreements and issue notices.
    AgreementsManage,
    /// Read and verify the audit log.
    Audit,
    /// List and ping peers.
    PeersRead,
    /// Pin, remove and route peers.
    PeersManage,
    /// List users.
    UsersRead,
    /// Create and delete users, set others' passwords, issue sign-in links.
    UsersManage,
    /// Hub members, regional reports and compliance.
    HubRead,
    /// Refresh the member directory, send aggregates up.
    HubExchange,
    /// Admit and remove members, join a hub.
    HubManage,
    /// Read this node's TAXII collections as a partner (`User.peer`).
    Taxii,
}

impl Scope {
    pub const ALL: [Scope; 24] = [
        Scope::Status,
        Scope::RecordsRead,
        Scope::RecordsIdentity,
        Scope::RecordsWrite,
        Scope::Feed,
        Scope::Query,
        Scope::Check,
        Scope::Shares,
        Scope::SharesRead,
        Scope::Requests,
        Scope::RequestsRead,
        Scope::Cases,
        Scope::CasesRead,
        Scope::AgreementsRead,
        Scope::AgreementsManage,
        Scope::Audit,
        Scope::PeersRead,
        Scope::PeersManage,
        Scope::UsersRead,
        Scope::UsersManage,
        Scope::HubRead,
        Scope::HubExchange,
        Scope::HubManage,
        Scope::Taxii,
    ];

    /// The name tokens and documents use.
    pub fn name(self) -> &'static str {
        match self {
            Scope::Status => "status",
            Scope::RecordsRead => "records.read",
            Scope::RecordsIdentity => "records.identity",
            Scope::RecordsWrite => "records.write",
            Scope::Feed => "feed",
            Scope::Query => "query",
            Scope::Check => "check",
            Scope::Shares => "shares",
            Scope::SharesRead => "shares.read",
            Scope::Requests => "requests",
            Scope::RequestsRead => "requests.read",
            Scope::Cases => "cases",
            Scope::CasesRead => "cases.read",
            Scope::AgreementsRead => "agreements.read",
            Scope::AgreementsManage => "agreements.manage",
            Scope::Audit => "audit",
            Scope::PeersRead => "peers.read",
            Scope::PeersManage => "peers.manage",
            Scope::UsersRead => "users.read",
            Scope::UsersManage => "users.manage",
            Scope::HubRead => "hub.read",
            Scope::HubExchange => "hub.exchange",
            Scope::HubManage => "hub.manage",
            Scope::Taxii => "taxii",
        }
    }

    pub fn parse(name: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|s| s.name() == name)
    }

    fn bit(self) -> u32 {
        1u32 << (self as u32)
    }
}

/// A set of scopes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scopes(u32);

const OFFICER: &[Scope] = &[
    Scope::Status,
    Scope::RecordsRead,
    Scope::RecordsIdentity,
    Scope::RecordsWrite,
    Scope::Feed,
    Scope::Query,
    Scope::Check,
    Scope::Shares,
    Scope::SharesRead,
    Scope::Requests,
    Scope::RequestsRead,
    Scope::Cases,
    Scope::CasesRead,
    Scope::AgreementsRead,
    Scope::PeersRead,
    Scope::HubRead,
    Scope::HubExchange,
];

/// A case-management system: the daily operations, without victims'
/// identities (an integration that needs them gets an officer account
/// narrowed to what it uses), victim cases or administration.
const INTEGRATOR: &[Scope] = &[
    Scope::Status,
    Scope::RecordsRead,
    Scope::RecordsWrite,
    Scope::Feed,
    Scope::Query,
    Scope::Check,
    Scope::Shares,
    Scope::SharesRead,
    Scope::Requests,
    Scope::RequestsRead,
    Scope::AgreementsRead,
];

/// Oversight: reads everything about what the node did, but no record
/// contents and no victim's identity.
const AUDITOR: &[Scope] = &[
    Scope::Status,
    Scope::SharesRead,
    Scope::RequestsRead,
    Scope::CasesRead,
    Scope::AgreementsRead,
    Scope::Audit,
    Scope::PeersRead,
    Scope::UsersRead,
    Scope::HubRead,
];

/// A partner's system: its TAXII collections and nothing else.
const PARTNER: &[Scope] = &[Scope::Taxii];

/// A scope a narrowed token names that its role does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    #[error("unknown scope {0:?}")]
    Unknown(String),
    #[error("scope {scope} is not in role {role}'s bundle")]
    NotInRole { scope: &'static str, role: String },
}

impl Scopes {
    pub fn of(scopes: &[Scope]) -> Scopes {
        Scopes(scopes.iter().fold(0, |acc, s| acc | s.bit()))
    }

    /// The bundle a role stands for (nothing for an unknown role).
    pub fn of_role(role: UserRole) -> Scopes {
        match role {
            UserRole::Admin => Scopes::of(&Scope::ALL),
            UserRole::Officer => Scopes::of(OFFICER),
            UserRole::Integrator => Scopes::of(INTEGRATOR),
            UserRole::Auditor => Scopes::of(AUDITOR),
            UserRole::Partner => Scopes::of(PARTNER),
            UserRole::Unspecified => Scopes::default(),
        }
    }

    /// A user's scopes: the names they were created with (stored scopes
    /// are re-checked against the role, so an unknown or widened entry
    /// grants nothing), or their role's bundle when none were given.
    pub fn of_user(role: UserRole, names: &[String]) -> Scopes {
        if names.is_empty() {
            return Scopes::of_role(role);
        }
        let bundle = Scopes::of_role(role);
        let named = names.iter().filter_map(|n| Scope::parse(n)).fold(Scopes::default(), |acc, s| acc.with(s));
        Scopes(named.0 & bundle.0)
    }

    /// Validates the scopes a new user is created with: each known and in
    /// the role's bundle. The error names the index of the first bad one.
    pub fn narrow(role: UserRole, names: &[String]) -> Result<Scopes, (usize, ScopeError)> {
        let bundle = Scopes::of_role(role);
        let mut out = Scopes::default();
        for (i, n) in names.iter().enumerate() {
            let s = Scope::parse(n.trim()).ok_or_else(|| (i, ScopeError::Unknown(n.clone())))?;
            if !bundle.contains(s) {
                return Err((i, ScopeError::NotInRole { scope: s.name(), role: role.to_word() }));
            }
            out = out.with(s);
        }
        Ok(out)
    }

    pub fn with(self, s: Scope) -> Scopes {
        Scopes(self.0 | s.bit())
    }

    pub fn contains(self, s: Scope) -> bool {
        self.0 & s.bit() != 0
    }

    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL.into_iter().filter(move |s| self.contains(*s))
    }

    pub fn names(self) -> Vec<String> {
        self.iter().map(|s| s.name().to_string()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        for s in Scope::ALL {
            assert_eq!(Scope::parse(s.name()), Some(s));
        }
        let mut names: Vec<_> = Scope::ALL.iter().map(|s| s.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Scope::ALL.len());
    }

    #[test]
    fn an_integrator_does_the_daily_operations_but_sees_no_identity() {
        let s = Scopes::of_role(UserRole::Integrator);
        for need in [Scope::RecordsWrite, Scope::Feed, Scope::Query, Scope::Check, Scope::Requests] {
            assert!(s.contains(need), "{need:?}");
        }
        for never in [Scope::RecordsIdentity, Scope::UsersManage, Scope::AgreementsManage, Scope::Cases] {
            assert!(!s.contains(never), "{never:?}");
        }
    }

    #[test]
    fn an_auditor_reads_no_record_and_an_admin_holds_everything() {
        let a = Scopes::of_role(UserRole::Auditor);
        assert!(!a.contains(Scope::RecordsRead) && !a.contains(Scope::RecordsIdentity) && a.contains(Scope::Audit));
        assert_eq!(Scopes::of_role(UserRole::Admin).iter().count(), Scope::ALL.len());
        assert_eq!(Scopes::of_role(UserRole::Unspecified), Scopes::default());
    }

    #[test]
    fn narrowing_stays_within_the_role() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let s = Scopes::narrow(UserRole::Integrator, &names(&["feed", "records.read"])).unwrap();
        assert_eq!(s.names(), names(&["records.read", "feed"]));
        assert_eq!(
            Scopes::narrow(UserRole::Integrator, &names(&["feed", "records.identity"])),
            Err((1, ScopeError::NotInRole { scope: "records.identity", role: "integrator".into() }))
        );
        assert_eq!(
            Scopes::narrow(UserRole::Officer, &names(&["everything"])),
            Err((0, ScopeError::Unknown("everything".into())))
        );
    }

    #[test]
    fn stored_scopes_never_widen_the_role() {
        // A store edited to grant more than the role: the role still bounds it.
        let s = Scopes::of_user(UserRole::Integrator, &["feed".into(), "users.manage".into(), "bogus".into()]);
        assert_eq!(s.names(), vec!["feed".to_string()]);
        assert_eq!(Scopes::of_user(UserRole::Auditor, &[]), Scopes::of_role(UserRole::Auditor));
    }
}
