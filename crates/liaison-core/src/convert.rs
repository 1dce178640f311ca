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
