//! What a received version of a record may do to what this node holds,
//! decided without IO. Push, sync and import all store through the node's
//! `exchange::receive::store_received`, which asks [`keep`] first.

use crate::pb;

/// The version of a record this node holds, as far as [`keep`] cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    pub version: u64,
    pub kind: Option<pb::RecordKind>,
}

impl Held {
    pub fn of(rec: &pb::Record) -> Held {
        Held { version: rec.version, kind: crate::record::kind(rec) }
    }
}

/// What becomes of a received record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kept {
    Stored,
    /// The same or a newer version is already held.
    Unchanged,
    /// A later version may never change a record's kind (a referral must not
    /// replace an entity, or its data would reach the identifier index).
    KindChanged {
        held: pb::RecordKind,
    },
    /// The originator withdrew the record (this version or, as this node was
    /// told, a later one): a withdrawn record never comes back live.
    Withdrawn,
    /// The agreement the record was admitted under was revoked, suspended or
    /// ended between the decision and the write (see [`keep_under`]).
    AgreementEnded,
}

/// A received version `rec` against the version `held` (if any), when the
/// originator has (`withdrawal_known`) or has not told us the record is
/// withdrawn. Only a newer version of the same kind of a live record is
/// stored, so replays, reordered deliveries and stale syncs change nothing.
pub fn keep(held: Option<Held>, withdrawal_known: bool, rec: &pb::Record) -> Kept {
    if rec.withdrawn || withdrawal_known {
        return Kept::Withdrawn;
    }
    if let Some(h) = held {
        if let Some(kind) = h.kind {
            if Some(kind) != crate::record::kind(rec) {
                return Kept::KindChanged { held: kind };
            }
        }
        if h.version >= rec.version {
            return Kept::Unchanged;
        }
    }
    Kept::Stored
}

/// [`keep`], asked inside the write that would store `rec`, with whether
/// the agreement it was admitted under is still in force there. The policy
/// decision is taken before the write; a revocation committed in between
/// must still win, or a record would be stored under a revoked agreement
/// after the revocation purge had walked the store.
pub fn keep_under(agreement_in_force: bool, held: Option<Held>, withdrawal_known: bool, rec: &pb::Record) -> Kept {
    if !agreement_in_force {
        return Kept::AgreementEnded;
    }
    keep(held, withdrawal_known, rec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::examples;
    use proptest::prelude::*;

    fn entity(version: u64) -> pb::Record {
        pb::Record { version, ..examples::entity() }
    }

    #[test]
    fn only_a_newer_live_version_of_the_same_kind_is_stored() {
        assert_eq!(keep(None, false, &entity(1)), Kept::Stored);
        assert_eq!(keep(Some(Held::of(&entity(1))), false, &entity(2)), Kept::Stored);
        assert_eq!(keep(Some(Held::of(&entity(2))), false, &entity(2)), Kept::Unchanged);
        assert_eq!(keep(Some(Held::of(&entity(3))), false, &entity(2)), Kept::Unchanged);
        assert_eq!(keep(None, true, &entity(9)), Kept::Withdrawn);
        let gone = pb::Record { withdrawn: true, ..entity(4) };
        assert_eq!(keep(Some(Held::of(&entity(3))), false, &gone), Kept::Withdrawn);
        let referral = pb::Record { version: 5, ..examples::victim_referral() };
        assert_eq!(
            keep(Some(Held::of(&entity(1))), false, &referral),
            Kept::KindChanged { held: pb::RecordKind::Entity }
        );
    }

    #[test]
    fn nothing_is_stored_under_an_agreement_that_ended_before_the_write() {
        for held in [None, Some(Held::of(&entity(1)))] {
            assert_eq!(keep_under(false, held, false, &entity(2)), Kept::AgreementEnded);
            assert_eq!(keep_under(true, held, false, &entity(2)), keep(held, false, &entity(2)));
        }
        // Whatever else holds, an ended agreement refuses first.
        assert_eq!(keep_under(false, None, true, &entity(2)), Kept::AgreementEnded);
    }

    proptest! {
        /// Whatever order versions arrive in, and however often, the node
        /// ends up holding the newest one, and never stores an older one
        /// over a newer.
        #[test]
        fn any_arrival_order_ends_at_the_newest(arrivals in proptest::collection::vec(1u64..20, 1..40)) {
            let mut held: Option<Held> = None;
            for v in &arrivals {
                if keep(held, false, &entity(*v)) == Kept::Stored {
                    prop_assert!(held.is_none_or(|h| h.version < *v));
                    held = Some(Held::of(&entity(*v)));
                }
            }
            prop_assert_eq!(held.map(|h| h.version), arrivals.iter().copied().max());
        }
    }
}
