//! Console accounts: passwords (argon2id), one-time sign-in links, sign-in
//! with throttling, and per-user preferences. The console and the local API
//! both call these; neither holds a rule of its own.

use std::time::Duration;

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::Argon2;

use crate::audit::Event;
use crate::node::Node;
use crate::pb;
use crate::refusal;
use crate::store::{self, users::StoredUser, StoreError};

/// How long a one-time sign-in link works.
pub const LINK_VALID: time::Duration = time::Duration::hours(72);
pub const MIN_PASSWORD: usize = 12;
pub const MAX_PASSWORD: usize = 256;
/// The languages the console ships.
pub const LANGUAGES: &[&str] = &["en", "fr", "th", "ar"];

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("user {0} not found")]
    NotFound(String),
    /// Wrong name or password, or a spent or unknown link; deliberately
    /// says no more.
    #[error("the name or password is not right")]
    Refused,
    #[error("too many sign-in attempts; try again in {} s", .0.as_secs().max(1))]
    Throttled(Duration),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn invalid(field: &'static str, reason: impl Into<String>) -> AccountError {
    AccountError::Invalid { field, reason: reason.into() }
}

/// The password rules: length only (NIST SP 800-63B), counted in characters.
pub fn check_password(pw: &str) -> Result<(), AccountError> {
    let n = pw.chars().count();
    if n < MIN_PASSWORD {
        return Err(invalid("password", format!("at least {MIN_PASSWORD} characters")));
    }
    if n > MAX_PASSWORD {
        return Err(invalid("password", format!("at most {MAX_PASSWORD} characters")));
    }
    Ok(())
}

/// An argon2id PHC string for `pw` with a fresh random salt.
pub fn hash_password(pw: &str) -> Result<String, AccountError> {
    check_password(pw)?;
    Argon2::default()
        .hash_password(pw.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| invalid("password", format!("cannot be hashed: {e}")))
}

/// Whether `pw` matches the stored PHC string (false for an empty or
/// unreadable one).
pub fn verify_password(phc: &str, pw: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| Argon2::default().verify_password(pw.as_bytes(), &h).is_ok())
}

/// A PHC string no password matches, checked when the name is unknown so a
/// wrong name costs as much time as a wrong password.
fn decoy() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password(&crate::identity::new_token()).unwrap_or_default())
}

/// Argon2 off the async runtime: it takes tens of milliseconds of CPU.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, AccountError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| AccountError::Store(StoreError::Failed(e.to_string())))
}

fn stored(node: &Node, name: &str) -> Result<StoredUser, AccountError> {
    store::users::get(node.db.store(), name)?.ok_or_else(|| AccountError::NotFound(name.to_string()))
}

/// Sets `name`'s password (the API checks who may).
pub async fn set_password(node: &Node, actor: &str, name: &str, pw: &str) -> Result<(), AccountError> {
    stored(node, name)?;
    let pw = pw.to_string();
    let phc = blocking(move || hash_password(&pw)).await??;
    let name = name.to_string();
    node.db
        .write(|st, tx| {
            let mut u = store::users::get(st, &name)?.ok_or_else(|| AccountError::NotFound(name.clone()))?;
            u.password_hash = phc;
            // A password set another way spends any open link.
            u.link_hash.clear();
            store::users::replace(tx, &u);
            tx.audit(Event::new(actor, "user.password").reason(name.clone()));
            Ok(())
        })
        .await
}

/// Issues a one-time link for `name`: the token (shown once) and when it ends.
pub async fn issue_link(node: &Node, actor: &str, name: &str) -> Result<(String, time::OffsetDateTime), AccountError> {
    stored(node, name)?;
    let token = crate::identity::new_token();
    let until = node.now().saturating_add(LINK_VALID);
    let name = name.to_string();
    let hash = store::users::token_hash(&token);
    node.db
        .write(|st, tx| {
            let mut u = store::users::get(st, &name)?.ok_or_else(|| AccountError::NotFound(name.clone()))?;
            u.link_hash = hash;
            u.link_expires = until.unix_timestamp();
            store::users::replace(tx, &u);
            // The token itself is never logged.
            tx.audit(Event::new(actor, "user.link").reason(name.clone()));
            Ok::<_, AccountError>(())
        })
        .await?;
    Ok((token, until))
}

/// The user a link belongs to, if it is still valid (nothing is spent).
pub fn link_user(node: &Node, token: &str) -> Result<pb::User, AccountError> {
    let u = store::users::by_link(node.db.store(), token)?.ok_or(AccountError::Refused)?;
    if u.link_expires < node.now().unix_timestamp() {
        return Err(AccountError::Refused);
    }
    u.user.ok_or(AccountError::Refused)
}

/// Sets the password with a one-time link and spends the link.
pub async fn redeem_link(node: &Node, source: &str, token: &str, pw: &str) -> Result<pb::User, AccountError> {
    let user = match link_user(node, token) {
        Ok(u) => u,
        Err(e) => {
            node.refuse(source, refusal::Kind::SignIn, "unknown or expired sign-in link");
            return Err(e);
        }
    };
    let pw = pw.to_string();
    let phc = blocking(move || hash_password(&pw)).await??;
    let hash = store::users::token_hash(token);
    let name = user.name.clone();
    node.db
        .write(|st, tx| {
            let mut u = store::users::get(st, &name)?.ok_or(AccountError::Refused)?;
            // Checked again in the write: two redemptions cannot both win.
            if u.link_hash != hash {
                return Err(AccountError::Refused);
            }
            u.link_hash.clear();
            u.password_hash = phc;
            store::users::replace(tx, &u);
            tx.audit(Event::new(format!("user:{name}"), "user.password").reason("set with a one-time link"));
            Ok(())
        })
        .await?;
    Ok(user)
}

/// Checks a console sign-in. Every attempt is throttled per source and per
/// account; a failure is refused without saying which part was wrong and
/// counted on the audit log (once per window per source).
pub async fn sign_in(node: &Node, source: &str, name: &str, pw: &str) -> Result<pb::User, AccountError> {
    if name.len() > 64 || pw.chars().count() > MAX_PASSWORD {
        node.refuse(source, refusal::Kind::SignIn, "over-long name or password");
        return Err(AccountError::Refused);
    }
    if let Err(wait) = node.gate.sign_in(source, &format!("user:{name}")) {
        node.refuse(source, refusal::Kind::SignIn, &format!("throttled sign-in as {name}"));
        return Err(AccountError::Throttled(wait));
    }
    let found = store::users::get(node.db.store(), name)?;
    let phc = found.as_ref().map(|u| u.password_hash.clone()).filter(|p| !p.is_empty());
    let known = phc.is_some();
    let pw = pw.to_string();
    // The decoy is made (once) off the runtime too.
    let ok = blocking(move || match &phc {
        Some(phc) => verify_password(phc, &pw),
        None => verify_password(decoy(), &pw),
    })
    .await?;
    match found.and_then(|u| u.user) {
        Some(user) if ok && known => {
            node.db.audit(vec![Event::new(format!("user:{}", user.name), "user.sign_in")]).await?;
            Ok(user)
        }
        _ => {
            node.refuse(source, refusal::Kind::SignIn, &format!("wrong name or password for {name}"));
            Err(AccountError::Refused)
        }
    }
}

/// Whether `tz` names a time zone this node knows.
pub fn known_time_zone(tz: &str) -> bool {
    jiff::tz::db().get(tz).is_ok()
}

/// Sets `name`'s console language and time zone.
pub async fn set_preferences(
    node: &Node,
    name: &str,
    language: &str,
    time_zone: &str,
) -> Result<pb::User, AccountError> {
    if !language.is_empty() && !LANGUAGES.contains(&language) {
        return Err(invalid("language", format!("one of {}", LANGUAGES.join(", "))));
    }
    if !time_zone.is_empty() && !known_time_zone(time_zone) {
        return Err(invalid("time_zone", "an IANA time zone such as Asia/Bangkok or UTC"));
    }
    let name = name.to_string();
    let (language, time_zone) = (language.to_string(), time_zone.to_string());
    node.db
        .write(|st, tx| {
            let mut u = store::users::get(st, &name)?.ok_or_else(|| AccountError::NotFound(name.clone()))?;
            let mut user = u.user.clone().unwrap_or_default();
            user.language = language;
            user.time_zone = time_zone;
            u.user = Some(user.clone());
            store::users::replace(tx, &u);
            Ok(user)
        })
        .await
}

/// The user `name` as the console shows them.
pub fn user(node: &Node, name: &str) -> Result<Option<pb::User>, AccountError> {
    Ok(store::users::get(node.db.store(), name)?.and_then(StoredUser::view))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_as_argon2id_and_verify() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify_password(&h, "correct horse battery"));
        assert!(!verify_password(&h, "correct horse battery!"));
        assert!(!verify_password("", "anything at all"));
        assert!(!verify_password("not a phc string", "anything at all"));
        // Two hashes of one password differ (fresh salt).
        assert_ne!(h, hash_password("correct horse battery").unwrap());
    }

    #[test]
    fn password_length_is_the_rule() {
        assert!(matches!(check_password("short"), Err(AccountError::Invalid { field: "password", .. })));
        assert!(check_password("twelve chars").is_ok());
        assert!(check_password(&"x".repeat(MAX_PASSWORD + 1)).is_err());
        // Characters, not bytes: twelve Thai characters are enough.
        assert!(check_password("รหัสผ่านยาวมากพอ").is_ok());
    }

    #[test]
    fn the_decoy_matches_nothing() {
        assert!(decoy().starts_with("$argon2id$"));
        assert!(!verify_password(decoy(), ""));
    }

    #[test]
    fn time_zones_come_from_the_database() {
        assert!(known_time_zone("Asia/Bangkok"));
        assert!(known_time_zone("UTC"));
        assert!(!known_time_zone("Bangkok time"));
        assert!(!known_time_zone("Mars/Olympus_Mons"));
    }
}
