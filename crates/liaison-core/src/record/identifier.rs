//! Identifier normalisation, identical on every node so hit/no-hit checks match.
//!
//! - passport, national id, company registration: uppercase; spaces, hyphens,
//!   dots and slashes removed; 3–32 letters and digits.
//! - phone: spaces, hyphens, dots and parentheses removed, a leading `00`
//!   becomes `+`; then `+` and 7–15 digits (E.164). Numbers without an
//!   international prefix are refused: `081…` means different things in
//!   different countries.
//! - e-mail: trimmed, lowercased; one `@`, a non-empty local part, a dotted domain.
//! - bank account: uppercase, spaces and hyphens removed, 6–34 letters and digits (IBAN-like).

use super::FieldError;
use crate::pb::IdentifierType;

pub fn identifier_type_name(t: IdentifierType) -> &'static str {
    match t {
        IdentifierType::Unspecified => "unspecified",
        IdentifierType::Passport => "passport",
        IdentifierType::NationalId => "national_id",
        IdentifierType::Phone => "phone",
        IdentifierType::Email => "email",
        IdentifierType::CompanyRegistration => "company_registration",
        IdentifierType::BankAccount => "bank_account",
    }
}

pub fn parse_identifier_type(s: &str) -> Option<IdentifierType> {
    [
        IdentifierType::Passport,
        IdentifierType::NationalId,
        IdentifierType::Phone,
        IdentifierType::Email,
        IdentifierType::CompanyRegistration,
        IdentifierType::BankAccount,
    ]
    .into_iter()
    .find(|t| identifier_type_name(*t) == s.trim().to_lowercase())
}

fn err(reason: impl Into<String>) -> FieldError {
    FieldError { field: "value".into(), reason: reason.into() }
}

fn alnum_id(value: &str, strip: &[char], min: usize, max: usize, what: &str) -> Result<String, FieldError> {
    let v: String = value.trim().chars().filter(|c| !strip.contains(c)).collect::<String>().to_uppercase();
    if v.len() < min || v.len() > max || !v.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(err(format!("{what} must be {min}-{max} letters and digits after removing separators")));
    }
    Ok(v)
}

/// Longest identifier, before and after normalisation, in characters.
const MAX_IDENTIFIER: usize = 256;

pub fn normalize_identifier(t: IdentifierType, value: &str) -> Result<String, FieldError> {
    if value.chars().count() > MAX_IDENTIFIER {
        return Err(err("at most 256 characters"));
    }
    let n = normalize(t, value)?;
    // Lowercasing can lengthen a value ('İ' becomes two characters): the
    // bound holds for the result too, so normalising it again gives it back.
    if n.chars().count() > MAX_IDENTIFIER {
        return Err(err("at most 256 characters"));
    }
    Ok(n)
}

fn normalize(t: IdentifierType, value: &str) -> Result<String, FieldError> {
    match t {
        IdentifierType::Unspecified => {
            Err(FieldError { field: "type".into(), reason: "identifier type is required".into() })
        }
        IdentifierType::Passport => alnum_id(value, &[' ', '-', '.', '/'], 3, 32, "a passport number"),
        IdentifierType::NationalId => alnum_id(value, &[' ', '-', '.', '/'], 3, 32, "a national id"),
        IdentifierType::CompanyRegistration => alnum_id(value, &[' ', '-', '.', '/'], 3, 32, "a company registration"),
        IdentifierType::BankAccount => alnum_id(value, &[' ', '-'], 6, 34, "a bank account"),
        IdentifierType::Phone => {
            let mut v: String = value.trim().chars().filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')')).collect();
            if let Some(rest) = v.strip_prefix("00") {
                v = format!("+{rest}");
            }
            let Some(digits) = v.strip_prefix('+') else {
                return Err(err("a phone number needs an international prefix (+66... or 0066...)"));
            };
            if !(7..=15).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err("a phone number must be + and 7-15 digits (E.164)"));
            }
            Ok(v)
        }
        IdentifierType::Email => {
            let v = value.trim().to_lowercase();
            let (local, domain) = v.split_once('@').ok_or_else(|| err("an e-mail address needs an @"))?;
            let ok = !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !v.chars().any(|c| c.is_whitespace() || c.is_control());
            if !ok {
                return Err(err("not an e-mail address"));
            }
            Ok(v)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn normalisation_table() {
        let p = IdentifierType::Phone;
        assert_eq!(normalize_identifier(p, "+66 81-234-5678").unwrap(), "+66812345678");
        assert_eq!(normalize_identifier(p, "0066812345678").unwrap(), "+66812345678");
        assert_eq!(normalize_identifier(p, "(+855) 12.345.678").unwrap(), "+85512345678");
        assert!(normalize_identifier(p, "081 234 5678").unwrap_err().reason.contains("international prefix"));
        assert!(normalize_identifier(p, "+12").is_err());
        assert_eq!(normalize_identifier(IdentifierType::Passport, "ab 123-456").unwrap(), "AB123456");
        assert_eq!(normalize_identifier(IdentifierType::NationalId, "1-2345.6789/0").unwrap(), "1234567890");
        assert!(normalize_identifier(IdentifierType::Passport, "A1").is_err());
        assert!(normalize_identifier(IdentifierType::Passport, "AB_123456").is_err());
        assert_eq!(normalize_identifier(IdentifierType::Email, " Foo@Example.ORG ").unwrap(), "foo@example.org");
        assert!(normalize_identifier(IdentifierType::Email, "foo@bar").is_err());
        assert!(normalize_identifier(IdentifierType::Email, "a@b@c.org").is_err());
        assert_eq!(
            normalize_identifier(IdentifierType::BankAccount, "gb82 west 1234 5698 7654 32").unwrap(),
            "GB82WEST12345698765432"
        );
        assert!(normalize_identifier(IdentifierType::Unspecified, "x").is_err());
    }

    #[test]
    fn type_names_round_trip() {
        for t in [
            IdentifierType::Passport,
            IdentifierType::NationalId,
            IdentifierType::Phone,
            IdentifierType::Email,
            IdentifierType::CompanyRegistration,
            IdentifierType::BankAccount,
        ] {
            assert_eq!(parse_identifier_type(identifier_type_name(t)), Some(t));
        }
        assert_eq!(parse_identifier_type("nope"), None);
    }

    /// Fuzzing finding (identifier_normalize): an e-mail address of 256
    /// characters or fewer with 'İ' in it lowercased to more than 256, so
    /// the normalised value no longer normalised (hit keys stored from it
    /// could never be matched again).
    #[test]
    fn the_length_bound_holds_after_lowercasing() {
        let e = IdentifierType::Email;
        let long = format!("{}@example.org", "İ".repeat(200));
        assert!(long.chars().count() <= 256);
        assert!(normalize_identifier(e, &long).is_err());
        let fits = format!("{}@example.org", "İ".repeat(100));
        let n = normalize_identifier(e, &fits).unwrap();
        assert_eq!(normalize_identifier(e, &n).unwrap(), n);
    }

    proptest! {
        #[test]
        fn normalisation_is_idempotent(t in 1i32..=6, v in "\\PC{0,40}") {
            let t = IdentifierType::try_from(t).unwrap();
            if let Ok(n) = normalize_identifier(t, &v) {
                prop_assert_eq!(normalize_identifier(t, &n).unwrap(), n);
            }
        }
    }
}
