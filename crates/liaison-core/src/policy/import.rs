//! Importing a received record from an export (`liaison export` →
//! `liaison import`): when a record another node originated may be taken
//! back, and only ever as *received*.
//!
//! A received record is the originator's, held under the terms of the
//! agreement it came under. Importing it must never make it the importer's
//! own (re-signed, without retention or onward terms), and must never bring
//! back what the holder has already let go. So only the node that held it
//! takes it back (its own signed holding statement says so), exactly under
//! the terms it held it with, and only where it would still hold it now: not
//! withdrawn by its originator, retention not ended, agreement not revoked
//! with purging. Any other node is refused: passing a record on is onward
//! sharing, which only the exchange paths decide (with the originator's
//! terms and consent), never a file.
//!
//! Pure like the rest of `policy`: the adapter (`crate::exchange::import`)
//! verifies signatures and brings the facts.

use time::OffsetDateTime;

use crate::pb::{self, AgreementState};

/// Why an exported received record is not taken back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportDenial {
    /// The record is this node's own: own records come back as plain records.
    OwnRecord,
    /// Another node held it: importing it here would be an onward share.
    HeldElsewhere { holder: String, originator: String },
    /// The originator withdrew it (the exported version, or a later one this node was told of).
    Withdrawn { originator: String },
    /// The holding statement carries no receive time, or one after now.
    NoReceiveTime,
    /// Its retention under the agreement ended: the holder purged it.
    RetentionEnded { agreement: String },
    /// The agreement it was held under is not held here (at that version).
    UnknownAgreement { agreement: String },
    /// The agreement was revoked and says to purge on revocation.
    AgreementRevoked { agreement: String },
}

impl ImportDenial {
    pub fn code(&self) -> &'static str {
        match self {
            ImportDenial::OwnRecord => "own_record",
            ImportDenial::HeldElsewhere { .. } => "held_elsewhere",
            ImportDenial::Withdrawn { .. } => "withdrawn",
            ImportDenial::NoReceiveTime => "no_receive_time",
            ImportDenial::RetentionEnded { .. } => "retention_ended",
            ImportDenial::UnknownAgreement { .. } => "unknown_agreement",
            ImportDenial::AgreementRevoked { .. } => "agreement_revoked",
        }
    }
}

impl std::fmt::Display for ImportDenial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ImportDenial::OwnRecord => {
                write!(f, "this node originated the record: its own records are imported as plain records")
            }
            ImportDenial::HeldElsewhere { holder, originator } => write!(
                f,
                "held by {holder}, not by this node: a received record is never imported onwards (only {originator} can share it with this node)"
            ),
            ImportDenial::Withdrawn { originator } => {
                write!(f, "{originator} withdrew the record: it is not stored again")
            }
            ImportDenial::NoReceiveTime => write!(f, "the holding statement has no valid receive time"),
            ImportDenial::RetentionEnded { agreement } => {
                write!(f, "its retention under agreement {agreement} has ended")
            }
            ImportDenial::UnknownAgreement { agreement } => {
                write!(f, "this node holds no agreement {agreement} to keep it under")
            }
            ImportDenial::AgreementRevoked { agreement } => {
                write!(f, "agreement {agreement} was revoked and purges what came under it")
            }
        }
    }
}

/// The facts of one exported received record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportFacts {
    /// The importing node.
    pub local: String,
    /// Who signed the holding statement (checked by the adapter when it is `local`).
    pub holder: String,
    pub originator: String,
    /// The exported version is itself a withdrawal.
    pub withdrawn: bool,
    /// This node was told by the originator that the record is withdrawn.
    pub withdrawal_known: bool,
    /// The terms from the holding statement.
    pub agreement_id: String,
    pub agreement_version: u32,
    pub receive_time: Option<OffsetDateTime>,
    pub retain_until: Option<OffsetDateTime>,
    pub at: OffsetDateTime,
}

/// May this node take the record back, as received, under the terms it
/// held it with? See the module documentation.
pub fn decide(agreements: &[(pb::Agreement, AgreementState)], f: &ImportFacts) -> Result<(), ImportDenial> {
    if f.originator == f.local {
        return Err(ImportDenial::OwnRecord);
    }
    if f.holder != f.local {
        return Err(ImportDenial::HeldElsewhere { holder: f.holder.clone(), originator: f.originator.clone() });
    }
    if f.withdrawn || f.withdrawal_known {
        return Err(ImportDenial::Withdrawn { originator: f.originator.clone() });
    }
    if f.receive_time.is_none_or(|t| t > f.at) {
        return Err(ImportDenial::NoReceiveTime);
    }
    let label = format!("{} v{}", f.agreement_id, f.agreement_version);
    if f.retain_until.is_some_and(|u| u <= f.at) {
        return Err(ImportDenial::RetentionEnded { agreement: label });
    }
    if !agreements.iter().any(|(a, _)| a.id == f.agreement_id && a.version == f.agreement_version) {
        return Err(ImportDenial::UnknownAgreement { agreement: label });
    }
    if purged_on_revoke(agreements, &f.agreement_id) {
        return Err(ImportDenial::AgreementRevoked { agreement: label });
    }
    Ok(())
}

/// Whether agreement `id` was revoked in a version that purges what was
/// received under it (as `exchange::retention::purge_revoked` reads it).
pub fn purged_on_revoke(agreements: &[(pb::Agreement, AgreementState)], id: &str) -> bool {
    agreements.iter().any(|(a, s)| {
        a.id == id && *s == AgreementState::Revoked && a.retention.as_ref().is_some_and(|r| r.purge_on_revoke)
    })
}

#[cfg(test)]
mod tests;
