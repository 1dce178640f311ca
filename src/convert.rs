//! Conversions between protobuf and domain types live here, and only here.

use time::OffsetDateTime;

/// `OffsetDateTime` → protobuf `Timestamp`.
pub fn timestamp(t: OffsetDateTime) -> pbjson_types::Timestamp {
    pbjson_types::Timestamp {
        seconds: t.unix_timestamp(),
        nanos: t.nanosecond() as i32,
    }
}

/// Protobuf `Timestamp` → `OffsetDateTime`; `None` when out of range.
pub fn from_timestamp(ts: &pbjson_types::Timestamp) -> Option<OffsetDateTime> {
    let nanos = i128::from(ts.seconds) * 1_000_000_000 + i128::from(ts.nanos);
    OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()
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
        assert_eq!(
            from_timestamp(&pbjson_types::Timestamp {
                seconds: i64::MAX,
                nanos: 0
            }),
            None
        );
    }
}
