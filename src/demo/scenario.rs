//! Scenarios as data (`deploy/scenarios/*.toml`): the nodes of a federation,
//! the agreements they sign, the records they start with and the steps of the
//! walk-through. Pure: parsing, validation and agreement resolution, so a
//! broken scenario fails in a unit test rather than halfway through a demo.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use crate::pb;

/// Scenarios shipped with liaison, embedded so `liaison demo` runs from anywhere.
pub const BUILT_IN: &[(&str, &str)] = &[
    ("commit-mekong", include_str!("../../deploy/scenarios/commit-mekong.toml")),
    ("saarc", include_str!("../../deploy/scenarios/saarc.toml")),
    ("ecowas-eccas", include_str!("../../deploy/scenarios/ecowas-eccas.toml")),
    ("asean", include_str!("../../deploy/scenarios/asean.toml")),
    ("kh-vn", include_str!("../../deploy/scenarios/kh-vn.toml")),
    ("ecowas-eccas-joint", include_str!("../../deploy/scenarios/ecowas-eccas-joint.toml")),
    ("oas-contacts", include_str!("../../deploy/scenarios/oas-contacts.toml")),
    ("las-hub", include_str!("../../deploy/scenarios/las-hub.toml")),
    ("bali-process", include_str!("../../deploy/scenarios/bali-process.toml")),
    ("transnational-referral", include_str!("../../deploy/scenarios/transnational-referral.toml")),
    ("see-exchange", include_str!("../../deploy/scenarios/see-exchange.toml")),
];

/// Agreement templates a scenario may name as `base`.
pub const TEMPLATES: &[(&str, &str)] = &[
    ("commit-bilateral-mou", include_str!("../../deploy/agreements/commit-bilateral-mou.toml")),
    ("commit-multilateral-mou", include_str!("../../deploy/agreements/commit-multilateral-mou.toml")),
    ("saarc-sop", include_str!("../../deploy/agreements/saarc-sop.toml")),
    ("ecowas-child-protection", include_str!("../../deploy/agreements/ecowas-child-protection.toml")),
    ("ecowas-eccas-multilateral", include_str!("../../deploy/agreements/ecowas-eccas-multilateral.toml")),
    ("asean-hsu", include_str!("../../deploy/agreements/asean-hsu.toml")),
    ("kh-vn-victim-return", include_str!("../../deploy/agreements/kh-vn-victim-return.toml")),
    ("ecowas-eccas-reporting", include_str!("../../deploy/agreements/ecowas-eccas-reporting.toml")),
    ("ecowas-eccas-joint-commission", include_str!("../../deploy/agreements/ecowas-eccas-joint-commission.toml")),
    ("oas-contact-points", include_str!("../../deploy/agreements/oas-contact-points.toml")),
    ("las-arab-network", include_str!("../../deploy/agreements/las-arab-network.toml")),
    ("bali-embassy-liaison", include_str!("../../deploy/agreements/bali-embassy-liaison.toml")),
    ("see-trm", include_str!("../../deploy/agreements/see-trm.toml")),
    ("see-riem", include_str!("../../deploy/agreements/see-riem.toml")),
];

pub const DEFAULT: &str = "commit-mekong";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("scenario {scenario}: {field}: {reason}")]
pub struct ScenarioError {
    pub scenario: String,
    pub field: String,
    pub reason: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    pub title: String,
    #[serde(default)]
    pub intro: String,
    pub nodes: Vec<NodeSpec>,
    #[serde(default)]
    pub agreements: Vec<AgreementSpec>,
    #[serde(default)]
    pub records: Vec<RecordSpec>,
    #[serde(default)]
    pub steps: Vec<Step>,
    /// Where the demo's shared clock starts (RFC 3339), so the scenario's
    /// dates and deadlines fall the same way whenever it runs.
    #[serde(default)]
    pub clock: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub organisation: String,
    pub country: String,
    #[serde(default)]
    pub region: String,
    #[serde(default = "national")]
    pub role: String,
    /// Hubs this member joins (it learns the other members from their
    /// directories); a hub may join a higher hub.
    #[serde(default)]
    pub hubs: Vec<String>,
    /// What kind of body the node is (`actor::receivable`): law_enforcement
    /// (default; secretariat for hubs), ngo, service_provider,
    /// international_org, nhri or embassy. Written into every agreement's roles.
    #[serde(default)]
    pub actor: String,
    /// For an embassy: the host country.
    #[serde(default)]
    pub posted_in: String,
}

fn national() -> String {
    "national".into()
}

fn collect() -> bool {
    true
}

impl NodeSpec {
    /// The node's role word in agreements.
    pub fn actor_word(&self) -> &str {
        match (self.actor.as_str(), self.role.as_str()) {
            ("", "hub") => "secretariat",
            ("", _) => "law_enforcement",
            (a, _) => a,
        }
    }
}

/// An agreement: a template from `deploy/agreements/` with the fields a
/// scenario changes (id, title, legal basis, parties, hub).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgreementSpec {
    pub base: String,
    pub id: Option<String>,
    pub title: Option<String>,
    pub legal_basis: Option<String>,
    pub parties: Option<Vec<String>>,
    pub hub: Option<String>,
}

/// A record a node holds when the walk-through starts, in the proto-JSON
/// form `liaison record add` takes (written as a TOML table).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordSpec {
    pub node: String,
    pub record: toml::Table,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentifierSpec {
    #[serde(rename = "type")]
    pub kind: String,
    pub value: String,
}

/// A safeguard recorded on the referral: fields merged into the
/// `victimReferral` body, then the blocked step is tried again.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SafeguardSpec {
    pub say: String,
    pub set: toml::Table,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "do", rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    /// Pull what the agreements let this node sync from every peer.
    Sync { by: String, say: String },
    /// Ask one peer (or every peer) for records.
    Query {
        by: String,
        #[serde(default)]
        peer: String,
        #[serde(default)]
        kind: String,
        #[serde(default)]
        text: String,
        purpose: String,
        say: String,
    },
    /// Hit/no-hit check of identifiers against every peer.
    Check { by: String, identifiers: Vec<IdentifierSpec>, purpose: String, say: String },
    /// Share one record through the outbox (sealed through hub `via`, if given).
    Share {
        by: String,
        record: String,
        to: String,
        purpose: String,
        #[serde(default)]
        via: String,
        say: String,
    },
    /// Search the regional contact-point directory of the hubs `by` joined.
    Contacts { by: String, text: String, say: String },
    /// Send an SOP request, let `advance` pass unanswered, show the escalation.
    Request {
        by: String,
        to: String,
        #[serde(rename = "type")]
        request_type: String,
        purpose: String,
        subject: String,
        #[serde(default)]
        urgent: bool,
        /// The agreement to send under (default: whichever allows it).
        #[serde(default)]
        agreement: String,
        advance: String,
        say: String,
    },
    /// A victim case from referral to its outcome (return by default, through
    /// `transit` countries; or residence_permit, asylum, service_provider),
    /// blocked until each safeguard is met.
    #[serde(alias = "victim_return")]
    VictimCase {
        by: String,
        with: String,
        referral: String,
        say: String,
        safeguards: Vec<SafeguardSpec>,
        #[serde(default)]
        transit: Vec<String>,
        #[serde(default)]
        outcome: Outcome,
    },
    /// The hub prints its report; with `collect` (default) members first
    /// share their statistics with it.
    Report {
        hub: String,
        period: String,
        say: String,
        #[serde(default = "collect")]
        collect: bool,
    },
    /// The demo's clock moves on.
    Wait { advance: String, say: String },
    /// A regional hub sends its published aggregate to a hub it joined.
    Aggregate { hub: String, to: String, period: String, say: String },
    /// The hub's SOP-compliance indicators.
    Indicators { hub: String, say: String },
}

/// Where a victim case ends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    #[default]
    Return,
    ResidencePermit,
    Asylum,
    ServiceProvider,
}

impl Step {
    pub fn say(&self) -> &str {
        match self {
            Step::Sync { say, .. }
            | Step::Query { say, .. }
            | Step::Check { say, .. }
            | Step::Share { say, .. }
            | Step::Contacts { say, .. }
            | Step::Request { say, .. }
            | Step::VictimCase { say, .. }
            | Step::Report { say, .. }
            | Step::Wait { say, .. }
            | Step::Aggregate { say, .. }
            | Step::Indicators { say, .. } => say,
        }
    }

    /// Nodes the step names, for validation.
    fn nodes(&self) -> Vec<(&'static str, &str)> {
        match self {
            Step::Sync { by, .. } | Step::Contacts { by, .. } | Step::Check { by, .. } => vec![("by", by)],
            Step::Query { by, peer, .. } => {
                let mut v = vec![("by", by.as_str())];
                if !peer.is_empty() {
                    v.push(("peer", peer));
                }
                v
            }
            Step::Share { by, to, .. } | Step::Request { by, to, .. } => vec![("by", by), ("to", to)],
            Step::VictimCase { by, with, transit, .. } => {
                let mut v = vec![("by", by.as_str()), ("with", with.as_str())];
                v.extend(transit.iter().map(|t| ("transit", t.as_str())));
                v
            }
            Step::Report { hub, .. } | Step::Indicators { hub, .. } => vec![("hub", hub)],
            Step::Aggregate { hub, to, .. } => vec![("hub", hub), ("to", to)],
            Step::Wait { .. } => vec![],
        }
    }
}

impl Scenario {
    /// A built-in scenario by name, or a scenario file by path.
    pub fn load(name_or_path: &str) -> Result<Scenario, ScenarioError> {
        let text = match BUILT_IN.iter().find(|(n, _)| *n == name_or_path) {
            Some((_, t)) => (*t).to_string(),
            None if name_or_path.ends_with(".toml") => {
                std::fs::read_to_string(name_or_path).map_err(|e| err(name_or_path, "--scenario", e.to_string()))?
            }
            None => {
                let known: Vec<&str> = BUILT_IN.iter().map(|(n, _)| *n).collect();
                return Err(err(
                    name_or_path,
                    "--scenario",
                    format!("unknown scenario (built in: {}; or a path to a .toml file)", known.join(", ")),
                ));
            }
        };
        Self::parse(&text, name_or_path)
    }

    pub fn parse(text: &str, origin: &str) -> Result<Scenario, ScenarioError> {
        let s: Scenario = toml::from_str(text).map_err(|e| err(origin, "toml", e.message().to_string()))?;
        s.validate()?;
        Ok(s)
    }

    fn err(&self, field: impl Into<String>, reason: impl Into<String>) -> ScenarioError {
        err(&self.name, field, reason)
    }

    pub fn node(&self, id: &str) -> Option<&NodeSpec> {
        self.nodes.iter().find(|n| n.id == id)
    }

    pub fn hubs(&self) -> impl Iterator<Item = &NodeSpec> {
        self.nodes.iter().filter(|n| n.role == "hub")
    }

    fn validate(&self) -> Result<(), ScenarioError> {
        if self.nodes.is_empty() {
            return Err(self.err("nodes", "a scenario needs at least one node"));
        }
        let mut ids = BTreeSet::new();
        for (i, n) in self.nodes.iter().enumerate() {
            let f = |x: &str| format!("nodes[{i}].{x}");
            if !ids.insert(n.id.as_str()) {
                return Err(self.err(f("id"), format!("duplicate node id {:?}", n.id)));
            }
            if !crate::config::valid_node_id(&n.id) {
                return Err(self.err(f("id"), format!("{:?} is not a valid node id", n.id)));
            }
            if !["national", "hub", "partner"].contains(&n.role.as_str()) {
                return Err(self.err(f("role"), "national, hub or partner"));
            }
            for h in &n.hubs {
                if self.node(h).is_none_or(|x| x.role != "hub") || *h == n.id {
                    return Err(self.err(f("hubs"), format!("{h:?} is not another hub of this scenario")));
                }
            }
            if <crate::pb::ActorRole as crate::convert::ProtoEnum>::from_word(n.actor_word()).is_none() {
                return Err(self.err(
                    f("actor"),
                    "law_enforcement, secretariat, ngo, service_provider, international_org, nhri or embassy",
                ));
            }
            if !n.posted_in.is_empty() && (n.actor != "embassy" || !crate::record::is_country(&n.posted_in)) {
                return Err(self.err(f("posted_in"), "the host country (ISO 3166-1 alpha-2) of an embassy"));
            }
        }
        self.start_time()?;
        let mut agreement_ids = BTreeSet::new();
        for (i, _) in self.agreements.iter().enumerate() {
            let a = self.agreement(i)?;
            if !agreement_ids.insert(a.id.clone()) {
                return Err(self.err(format!("agreements[{i}].id"), format!("duplicate agreement id {:?}", a.id)));
            }
        }
        for (i, r) in self.records.iter().enumerate() {
            if self.node(&r.node).is_none() {
                return Err(self.err(format!("records[{i}].node"), format!("unknown node {:?}", r.node)));
            }
            let rec = self.record(i)?;
            crate::record::validate(&rec).map_err(|e| self.err(format!("records[{i}].record"), e.to_string()))?;
        }
        for (i, s) in self.steps.iter().enumerate() {
            for (field, id) in s.nodes() {
                if self.node(id).is_none() {
                    return Err(self.err(format!("steps[{i}].{field}"), format!("unknown node {id:?}")));
                }
            }
            self.validate_step(i, s)?;
        }
        Ok(())
    }

    fn validate_step(&self, i: usize, s: &Step) -> Result<(), ScenarioError> {
        let f = |x: &str| format!("steps[{i}].{x}");
        let purpose = |p: &str| {
            crate::convert::purpose_from_word(p)
                .map(|_| ())
                .ok_or_else(|| self.err(f("purpose"), format!("unknown purpose {p:?}")))
        };
        match s {
            Step::Query { kind, purpose: p, .. } => {
                purpose(p)?;
                if !kind.is_empty() && crate::convert::kind_from_word(kind).is_none() {
                    return Err(self.err(f("kind"), format!("unknown record kind {kind:?}")));
                }
            }
            Step::Check { identifiers, purpose: p, .. } => {
                purpose(p)?;
                if identifiers.is_empty() {
                    return Err(self.err(f("identifiers"), "at least one"));
                }
                for (j, id) in identifiers.iter().enumerate() {
                    if crate::record::parse_identifier_type(&id.kind).is_none() {
                        return Err(self.err(f(&format!("identifiers[{j}].type")), format!("unknown {:?}", id.kind)));
                    }
                }
            }
            Step::Share { by, record, purpose: p, via, .. } => {
                purpose(p)?;
                self.require_record(by, record, &f("record"))?;
                if !via.is_empty() && self.node(by).is_none_or(|n| !n.hubs.contains(via)) {
                    return Err(self.err(f("via"), format!("{by} does not join a hub {via:?}")));
                }
            }
            Step::Request { purpose: p, advance, .. } => {
                purpose(p)?;
                crate::agreement::parse_duration(&f("advance"), advance)
                    .map_err(|e| self.err(f("advance"), e.to_string()))?;
            }
            Step::VictimCase { by, referral, safeguards, .. } => {
                self.require_record(by, referral, &f("referral"))?;
                let held = (0..self.records.len())
                    .filter(|i| self.records[*i].node == *by)
                    .find_map(|i| self.record(i).ok().filter(|r| r.id == *referral));
                if !matches!(held.as_ref().and_then(|r| r.body.as_ref()), Some(pb::record::Body::VictimReferral(_))) {
                    return Err(self.err(f("referral"), format!("{referral:?} is not a victim referral")));
                }
                for (j, g) in safeguards.iter().enumerate() {
                    let mut record = held.clone().unwrap_or_default();
                    merge_referral(&mut record, &g.set).map_err(|e| self.err(f(&format!("safeguards[{j}].set")), e))?;
                }
            }
            Step::Report { hub, period, .. } => {
                crate::hub::report::parse_period(period).map_err(|e| self.err(f("period"), e.to_string()))?;
                if self.node(hub).is_none_or(|n| n.role != "hub") {
                    return Err(self.err(f("hub"), format!("{hub:?} is not a hub")));
                }
            }
            Step::Wait { advance, .. } => {
                crate::agreement::parse_duration(&f("advance"), advance)
                    .map_err(|e| self.err(f("advance"), e.to_string()))?;
            }
            Step::Aggregate { hub, to, period, .. } => {
                if self.node(hub).is_none_or(|n| n.role != "hub" || !n.hubs.contains(to)) {
                    return Err(self.err(f("to"), format!("{hub:?} is not a hub that joined {to:?}")));
                }
                crate::hub::report::parse_period(period).map_err(|e| self.err(f("period"), e.to_string()))?;
            }
            Step::Sync { .. } | Step::Contacts { .. } | Step::Indicators { .. } => {}
        }
        Ok(())
    }

    /// The instant the demo's clock starts at, if the scenario sets one.
    pub fn start_time(&self) -> Result<Option<time::OffsetDateTime>, ScenarioError> {
        self.clock
            .as_deref()
            .map(|c| {
                time::OffsetDateTime::parse(c, &time::format_description::well_known::Rfc3339)
                    .map_err(|e| self.err("clock", format!("{c:?} is not an RFC 3339 time: {e}")))
            })
            .transpose()
    }

    fn require_record(&self, node: &str, id: &str, field: &str) -> Result<(), ScenarioError> {
        let held =
            (0..self.records.len()).any(|i| self.records[i].node == node && self.record(i).is_ok_and(|r| r.id == id));
        if held {
            Ok(())
        } else {
            Err(self.err(field, format!("{node} holds no record {id:?} in this scenario")))
        }
    }

    /// The record of `records[i]` as a proto message.
    pub fn record(&self, i: usize) -> Result<pb::Record, ScenarioError> {
        let field = format!("records[{i}].record");
        let json = serde_json::to_value(&self.records[i].record).map_err(|e| self.err(&field, e.to_string()))?;
        serde_json::from_value(json).map_err(|e| self.err(&field, format!("not a liaison.v1.Record: {e}")))
    }

    /// The TOML text of `agreements[i]`: its template with the scenario's fields.
    pub fn agreement_toml(&self, i: usize) -> Result<String, ScenarioError> {
        let spec = &self.agreements[i];
        let field = |x: &str| format!("agreements[{i}].{x}");
        let base = TEMPLATES.iter().find(|(n, _)| *n == spec.base).map(|(_, t)| *t).ok_or_else(|| {
            let known: Vec<&str> = TEMPLATES.iter().map(|(n, _)| *n).collect();
            self.err(field("base"), format!("unknown template {:?} (one of {})", spec.base, known.join(", ")))
        })?;
        let mut doc: toml::Table = toml::from_str(base).map_err(|e| self.err(field("base"), e.to_string()))?;
        let mut set = |k: &str, v: toml::Value| {
            doc.insert(k.into(), v);
        };
        if let Some(x) = &spec.id {
            set("id", x.clone().into());
        }
        if let Some(x) = &spec.title {
            set("title", x.clone().into());
        }
        if let Some(x) = &spec.legal_basis {
            set("legal_basis", x.clone().into());
        }
        if let Some(x) = &spec.parties {
            set("parties", toml::Value::Array(x.iter().cloned().map(toml::Value::from).collect()));
        }
        if let Some(x) = &spec.hub {
            set("hub", x.clone().into());
        }
        // Each party's role, from what kind of body its node is.
        let parties: Vec<String> = doc
            .get("parties")
            .and_then(|p| p.as_array())
            .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        let mut roles = toml::Table::new();
        for p in &parties {
            if let Some(n) = self.node(p) {
                let mut r = toml::Table::new();
                r.insert("role".into(), n.actor_word().into());
                if !n.posted_in.is_empty() {
                    r.insert("posted_in".into(), n.posted_in.clone().into());
                }
                roles.insert(p.clone(), r.into());
            }
        }
        doc.insert("roles".into(), roles.into());
        toml::to_string(&doc).map_err(|e| self.err(field("base"), e.to_string()))
    }

    /// `agreements[i]` parsed and checked, with every party a node of the scenario.
    pub fn agreement(&self, i: usize) -> Result<pb::Agreement, ScenarioError> {
        let a = crate::agreement::parse_toml(&self.agreement_toml(i)?)
            .map_err(|e| self.err(format!("agreements[{i}]"), e.to_string()))?;
        for p in &a.parties {
            if self.node(p).is_none() {
                return Err(
                    self.err(format!("agreements[{i}].parties"), format!("{p:?} is not a node of this scenario"))
                );
            }
        }
        if !a.hub.is_empty() && self.node(&a.hub).is_none_or(|n| n.role != "hub") {
            return Err(self.err(format!("agreements[{i}].hub"), format!("{:?} is not a hub of this scenario", a.hub)));
        }
        Ok(a)
    }

    /// Pairs that swap cards directly: the parties of every agreement without
    /// a hub. Members of a hub's agreement learn each other from its directory.
    pub fn direct_pairs(&self) -> Result<Vec<(String, String)>, ScenarioError> {
        let mut pairs = BTreeSet::new();
        for i in 0..self.agreements.len() {
            let a = self.agreement(i)?;
            if !a.hub.is_empty() {
                continue;
            }
            for (x, p) in a.parties.iter().enumerate() {
                for q in &a.parties[x + 1..] {
                    let (a, b) = if p < q { (p, q) } else { (q, p) };
                    pairs.insert((a.clone(), b.clone()));
                }
            }
        }
        Ok(pairs.into_iter().collect())
    }

    /// Members of each hub, in scenario order.
    pub fn members(&self) -> BTreeMap<String, Vec<String>> {
        let mut out: BTreeMap<String, Vec<String>> = self.hubs().map(|h| (h.id.clone(), Vec::new())).collect();
        for n in &self.nodes {
            for h in &n.hubs {
                out.entry(h.clone()).or_default().push(n.id.clone());
            }
        }
        out
    }
}

/// Merges `set` into the record's `victimReferral` body (proto-JSON field names).
pub fn merge_referral(record: &mut pb::Record, set: &toml::Table) -> Result<(), String> {
    let mut json = serde_json::to_value(&*record).map_err(|e| e.to_string())?;
    let set = serde_json::to_value(set).map_err(|e| e.to_string())?;
    let (Some(body), Some(set)) = (json.get_mut("victimReferral").and_then(|b| b.as_object_mut()), set.as_object())
    else {
        return Err("not a victim referral".into());
    };
    for (k, v) in set {
        body.insert(k.clone(), v.clone());
    }
    *record = serde_json::from_value(json).map_err(|e| format!("not victim referral fields: {e}"))?;
    Ok(())
}

fn err(scenario: &str, field: impl Into<String>, reason: impl Into<String>) -> ScenarioError {
    ScenarioError { scenario: scenario.into(), field: field.into(), reason: reason.into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_scenario_is_valid_and_walks_through_what_the_brief_asks() {
        for (name, text) in BUILT_IN {
            let s = Scenario::parse(text, name).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(&s.name, name);
            assert!(!s.agreements.is_empty() && !s.steps.is_empty(), "{name}");
            // Every agreement's parties are nodes, and every node is party to one.
            for n in &s.nodes {
                let party = (0..s.agreements.len()).any(|i| s.agreement(i).unwrap().parties.contains(&n.id));
                assert!(party, "{name}: {} is party to no agreement", n.id);
            }
        }
        let commit = Scenario::load(DEFAULT).unwrap();
        assert_eq!(commit.nodes.len(), 7, "KH, CN-Yunnan, LA, MM, TH, VN and the secretariat");
        let has = |f: fn(&Step) -> bool| commit.steps.iter().any(f);
        assert!(has(|s| matches!(s, Step::Query { .. })));
        assert!(has(|s| matches!(s, Step::Check { .. })));
        assert!(has(|s| matches!(s, Step::Request { .. })));
        assert!(has(|s| matches!(s, Step::VictimCase { .. })));
        assert!(has(|s| matches!(s, Step::Report { .. })));
    }

    #[test]
    fn agreements_take_the_template_with_the_scenarios_fields() {
        let s = Scenario::load(DEFAULT).unwrap();
        let ids: Vec<String> = (0..s.agreements.len()).map(|i| s.agreement(i).unwrap().id).collect();
        for bilateral in ["th-kh-mou", "th-la-mou", "mm-cn-mou", "mm-th-mou", "vn-kh-mou", "vn-th-mou"] {
            assert!(ids.iter().any(|i| i == bilateral), "{bilateral} in {ids:?}");
        }
        let pairs = s.direct_pairs().unwrap();
        assert!(pairs.contains(&("kh-antht".into(), "th-atpd".into())), "{pairs:?}");
        assert_eq!(s.members()["commit-hub"].len(), 6);
    }

    #[test]
    fn errors_name_the_field() {
        let base = Scenario::load("kh-vn").unwrap();
        let text = BUILT_IN.iter().find(|(n, _)| *n == "kh-vn").unwrap().1;
        let e = Scenario::parse(&text.replace("with = \"vn-c02\"", "with = \"xx-nobody\""), "t").unwrap_err();
        assert!(e.field.ends_with(".with") && e.reason.contains("xx-nobody"), "{e}");
        let e = Scenario::parse(&text.replace("base = \"kh-vn-victim-return\"", "base = \"nope\""), "t").unwrap_err();
        assert_eq!(e.field, "agreements[0].base", "{e}");
        let e =
            Scenario::parse(&format!("{text}\n[[nodes]]\nid = \"kh-antht\"\nname = \"x\"\ncountry = \"KH\"\n"), "t")
                .unwrap_err();
        assert!(e.reason.contains("duplicate node id"), "{e}");
        let e = Scenario::parse(&text.replace("purpose = \"victim_identification\"", "purpose = \"gossip\""), "t")
            .unwrap_err();
        assert!(e.field.ends_with(".purpose") && e.reason.contains("gossip"), "{e}");
        assert!(Scenario::load("atlantis").unwrap_err().reason.contains("commit-mekong"));
        let e = Scenario::parse(&text.replace("riskAssessment = {", "riskAsessment = {"), "t").unwrap_err();
        assert!(e.field.ends_with("safeguards[1].set") && e.reason.contains("riskAsessment"), "{e}");
        assert_eq!(base.nodes.len(), 2);
    }
}
