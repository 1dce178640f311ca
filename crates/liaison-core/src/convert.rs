//! Conversions between protobuf and domain types live here, and only here.

use time::OffsetDateTime;

/// `to - from`. The difference of two `OffsetDateTime`s always fits a
/// `Duration` (the time crate never panics on it), so this is the one
/// place that subtraction is allowed.
#[allow(clippy::arithmetic_side_effects)]
pub fn between(from: OffsetDateTime, to: OffsetDateTime) -> time::Duration {
    to - from
}

/// `OffsetDateTime` → protobuf `Timestamp`.
pub fn timestamp(t: OffsetDateTime) -> pbjson_types::Timestamp {
    pbjson_types::Timestamp { seconds: t.unix_timestamp(), nanos: t.nanosecond() as i32 }
}

/// Protobuf `Timestamp` → `OffsetDateTime`; `None` when out of range.
pub fn from_timestamp(ts: &pbjson_types::Timestamp) -> Option<OffsetDateTime> {
    let nanos = i128::from(ts.seconds).saturating_mul(1_000_000_000).saturating_add(i128::from(ts.nanos));
    OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()
}

/// `t + d`, saturating at the ends of the representable range instead of
/// panicking: durations can come from agreements and peers.
pub fn after(t: OffsetDateTime, d: time::Duration) -> OffsetDateTime {
    t.checked_add(d).unwrap_or_else(|| {
        let end = if d.is_negative() { time::PrimitiveDateTime::MIN } else { time::PrimitiveDateTime::MAX };
        end.assume_utc()
    })
}

/// `t` plus `secs` seconds (saturating).
pub fn after_secs(t: OffsetDateTime, secs: u64) -> OffsetDateTime {
    after(t, time::Duration::seconds(i64::try_from(secs).unwrap_or(i64::MAX)))
}

/// Microseconds since the epoch, big-endian, for ordered keys.
pub fn micros_key(t: OffsetDateTime) -> [u8; 8] {
    let micros = (t.unix_timestamp_nanos() / 1000).clamp(0, i128::from(i64::MAX)) as u64;
    micros.to_be_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip() {
        let t = OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_123_456_789).unwrap();
        assert_eq!(from_timestamp(&timestamp(t)), Some(t));
        assert_eq!(from_timestamp(&pbjson_types::Timestamp { seconds: i64::MAX, nanos: 0 }), None);
    }

    proptest::proptest! {
        #[test]
        fn after_never_panics_and_never_goes_back(secs in proptest::prelude::any::<u64>(), base in 0i64..7_000_000_000) {
            let t = OffsetDateTime::from_unix_timestamp(base).unwrap();
            let later = after_secs(t, secs);
            proptest::prop_assert!(later >= t);
            let days = after(t, time::Duration::days(i64::from(u32::MAX)));
            proptest::prop_assert!(days >= t);
            // Whatever the sum, it still converts to a timestamp and back.
            proptest::prop_assert_eq!(from_timestamp(&timestamp(later)), Some(later));
        }
    }
}

use crate::pb;

/// Lower-case word for an enum's proto name without its prefix
/// (`PURPOSE_VICTIM_IDENTIFICATION` → `victim_identification`).
pub fn word(proto_name: &str, prefix: &str) -> String {
    proto_name.trim_start_matches(prefix).to_lowercase()
}

/// A protobuf enum, as it crosses the boundary: the one place numbers,
/// proto names and words meet. Every enum of `liaison.v1` is one (its zero
/// value is `<PREFIX>UNSPECIFIED`, which gives the prefix).
pub trait ProtoEnum: Copy + TryFrom<i32> {
    fn proto_name(self) -> &'static str;
    fn from_proto_name(name: &str) -> Option<Self>;

    /// The prefix every value's proto name starts with (`PURPOSE_`).
    fn prefix() -> &'static str {
        Self::try_from(0).ok().and_then(|z| z.proto_name().strip_suffix("UNSPECIFIED")).unwrap_or("")
    }

    /// Lower-case word (`PURPOSE_VICTIM_IDENTIFICATION` → `victim_identification`).
    fn to_word(self) -> String {
        word(self.proto_name(), Self::prefix())
    }

    /// A stored or received number as this enum, if it is one of its
    /// values (the unspecified one included).
    fn of(v: i32) -> Option<Self> {
        Self::try_from(v).ok()
    }

    /// The word for a stored or received number; empty when it is none of ours.
    fn word_of(v: i32) -> String {
        Self::try_from(v).map(Self::to_word).unwrap_or_default()
    }

    /// The value a word names (any case, `-` or space for `_`), never the unspecified one.
    fn from_word(w: &str) -> Option<Self> {
        from_word(w, Self::prefix(), Self::from_proto_name).filter(|v| !v.proto_name().ends_with("_UNSPECIFIED"))
    }

    /// A number from a peer or a client, checked: an error naming `field`
    /// when it is not a value of this enum, or is the unspecified one.
    fn known(field: &str, v: i32) -> Result<Self, crate::record::FieldError> {
        Self::try_from(v).ok().filter(|e| !e.proto_name().ends_with("_UNSPECIFIED")).ok_or_else(|| {
            crate::record::FieldError { field: field.into(), reason: format!("{v} is not a known value") }
        })
    }
}

macro_rules! proto_enums {
    ($($t:ident)*) => {$(
        impl ProtoEnum for pb::$t {
            fn proto_name(self) -> &'static str {
                self.as_str_name()
            }
            fn from_proto_name(name: &str) -> Option<Self> {
                pb::$t::from_str_name(name)
            }
        }
    )*};
}

proto_enums!(NoticeAction AgreementState WitnessOutcome ChangeType HandlingCode Purpose RecordKind Operation OnwardSharing NodeRole ExploitationType Sex AgeGroup PeerOutcome OutboxState OutboxAction UserRole Direction ContactRole ChannelType SourceReliability InformationCredibility EntityType EntityRole IdentifierType ConsentStatus BestInterestOutcome RiskLevel Voluntariness NonRefoulementOutcome FrameworkArea RequestState Priority Transition RequestBox CaseStage ActorRole ReportingPeriod ResidencePermitDecision);

fn from_word<T>(w: &str, prefix: &str, parse: impl Fn(&str) -> Option<T>) -> Option<T> {
    let upper = w.trim().to_uppercase().replace(['-', ' '], "_");
    parse(&format!("{prefix}{upper}"))
}

pub fn purpose_word(p: pb::Purpose) -> String {
    word(p.as_str_name(), "PURPOSE_")
}
pub fn purpose_from_word(w: &str) -> Option<pb::Purpose> {
    from_word(w, "PURPOSE_", pb::Purpose::from_str_name).filter(|p| *p != pb::Purpose::Unspecified)
}
pub fn operation_word(o: pb::Operation) -> String {
    word(o.as_str_name(), "OPERATION_")
}
pub fn operation_from_word(w: &str) -> Option<pb::Operation> {
    from_word(w, "OPERATION_", pb::Operation::from_str_name).filter(|o| *o != pb::Operation::Unspecified)
}
pub fn kind_word(k: pb::RecordKind) -> String {
    word(k.as_str_name(), "RECORD_KIND_")
}
pub fn kind_from_word(w: &str) -> Option<pb::RecordKind> {
    from_word(w, "RECORD_KIND_", pb::RecordKind::from_str_name).filter(|k| *k != pb::RecordKind::Unspecified)
}
/// TLP words: `clear`, `green`, `amber`, `amber+strict` (also `amber_strict`), `red`.
pub fn handling_word(h: pb::HandlingCode) -> String {
    word(h.as_str_name(), "HANDLING_CODE_").replace('_', "+")
}
pub fn handling_from_word(w: &str) -> Option<pb::HandlingCode> {
    from_word(&w.replace('+', "_"), "HANDLING_CODE_", pb::HandlingCode::from_str_name)
        .filter(|h| *h != pb::HandlingCode::Unspecified)
}
pub fn onward_from_word(w: &str) -> Option<pb::OnwardSharing> {
    from_word(w, "ONWARD_SHARING_", pb::OnwardSharing::from_str_name).filter(|o| *o != pb::OnwardSharing::Unspecified)
}
pub fn onward_word(o: pb::OnwardSharing) -> String {
    word(o.as_str_name(), "ONWARD_SHARING_")
}
pub fn contact_role_from_word(w: &str) -> Option<pb::ContactRole> {
    from_word(w, "CONTACT_ROLE_", pb::ContactRole::from_str_name).filter(|r| *r != pb::ContactRole::Unspecified)
}
pub fn contact_role_word(r: pb::ContactRole) -> String {
    word(r.as_str_name(), "CONTACT_ROLE_")
}
pub fn state_word(s: pb::AgreementState) -> String {
    word(s.as_str_name(), "AGREEMENT_STATE_")
}

#[cfg(test)]
mod word_tests {
    use super::*;

    #[test]
    fn every_enum_knows_its_prefix_and_words() {
        assert_eq!(pb::Purpose::prefix(), "PURPOSE_");
        assert_eq!(pb::RequestState::word_of(pb::RequestState::Answered as i32), "answered");
        assert_eq!(pb::CaseStage::word_of(9999), "");
        assert_eq!(pb::ContactRole::from_word("unit head"), Some(pb::ContactRole::UnitHead));
        assert_eq!(pb::ContactRole::from_word("unspecified"), None);
        assert_eq!(pb::RecordKind::known("kind", pb::RecordKind::Entity as i32), Ok(pb::RecordKind::Entity));
        let e = pb::RecordKind::known("kind", 77).unwrap_err();
        assert_eq!(e.field, "kind");
        assert!(pb::RecordKind::known("kind", 0).is_err());
    }

    #[test]
    fn words_round_trip() {
        assert_eq!(handling_from_word("AMBER+STRICT"), Some(pb::HandlingCode::AmberStrict));
        assert_eq!(handling_from_word("amber_strict"), Some(pb::HandlingCode::AmberStrict));
        assert_eq!(handling_word(pb::HandlingCode::AmberStrict), "amber+strict");
        assert_eq!(purpose_from_word("victim_identification"), Some(pb::Purpose::VictimIdentification));
        assert_eq!(purpose_from_word("immigration_enforcement"), None);
        assert_eq!(purpose_from_word("unspecified"), None);
        assert_eq!(operation_from_word("hit-check"), Some(pb::Operation::HitCheck));
        assert_eq!(kind_from_word("contact_point"), Some(pb::RecordKind::ContactPoint));
        assert_eq!(onward_from_word("with_consent"), Some(pb::OnwardSharing::WithConsent));
        assert_eq!(contact_role_from_word("unit_head"), Some(pb::ContactRole::UnitHead));
    }
}
