//! PLACEHOLDER replaced by the record validation module.
use crate::pb;
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct FieldError {
    pub field: String,
    pub reason: String,
}
pub fn validate(_r: &pb::Record) -> Result<(), FieldError> {
    Ok(())
}
pub fn validate_id(_id: &str) -> Result<(), FieldError> {
    Ok(())
}
pub fn kind(record: &pb::Record) -> Option<pb::RecordKind> {
    use pb::record::Body;
    Some(match record.body.as_ref()? {
        Body::ContactPoint(_) => pb::RecordKind::ContactPoint,
        Body::IntelligenceReport(_) => pb::RecordKind::IntelligenceReport,
        Body::Entity(_) => pb::RecordKind::Entity,
        Body::VictimReferral(_) => pb::RecordKind::VictimReferral,
        Body::StatisticsReport(_) => pb::RecordKind::StatisticsReport,
    })
}
pub fn countries(_r: &pb::Record) -> Vec<String> {
    vec![]
}
pub fn matches_text(_r: &pb::Record, _n: &str) -> bool {
    true
}
pub fn identifier_keys(_r: &pb::Record) -> Vec<String> {
    vec![]
}
pub fn normalize_identifier(_t: pb::IdentifierType, v: &str) -> Result<String, FieldError> {
    Ok(v.to_string())
}
pub fn parse_identifier_type(_s: &str) -> Option<pb::IdentifierType> {
    None
}
pub fn identifier_type_name(_t: pb::IdentifierType) -> &'static str {
    "x"
}
pub fn is_country(c: &str) -> bool {
    c.len() == 2
}
