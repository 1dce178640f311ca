//! Signed-in sessions, kept in memory and bounded: a random id in an
//! HttpOnly, SameSite=Strict cookie; a CSRF token per session; an idle
//! timeout and a lifetime. Kept here rather than in a session crate because
//! the bounds (per user, in all, reaped on every sign-in) are the point: no
//! client can grow them.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use sha2::{Digest, Sha256};

/// Sessions in all; beyond it the longest-idle one ends.
pub const MAX_SESSIONS: usize = 4096;
/// Sessions per user; beyond it their longest-idle one ends.
pub const PER_USER: usize = 8;
/// A session ends this long after sign-in, however active.
pub const LIFETIME: Duration = Duration::from_secs(12 * 3600);

pub const COOKIE: &str = "liaison_session";
/// The pre-sign-in CSRF cookie (double submit on the sign-in forms).
pub const PRE_COOKIE: &str = "liaison_pre";

#[derive(Debug, Clone)]
pub struct Session {
    pub user: String,
    pub csrf: String,
    last: Instant,
    created: Instant,
    flash: Vec<String>,
}

#[derive(Debug)]
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
    idle: Duration,
}

/// 32 random bytes, base64url.
pub fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::fill(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// Sessions are found by a hash of their id, so the table holds nothing a
/// cookie could be rebuilt from.
fn key(id: &str) -> String {
    hex_of(&Sha256::digest(id.as_bytes()))
}

fn hex_of(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Equal without an early exit (tokens compared against a guess).
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Sessions {
    pub fn new(idle: Duration) -> Sessions {
        Sessions { map: Mutex::new(HashMap::new()), idle }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.map.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn live(&self, s: &Session, now: Instant) -> bool {
        now.duration_since(s.last) < self.idle && now.duration_since(s.created) < LIFETIME
    }

    /// Starts a session for `user`; the cookie value.
    pub fn start(&self, user: &str) -> String {
        let now = Instant::now();
        let id = random_token();
        let mut map = self.lock();
        map.retain(|_, s| self.live(s, now));
        let oldest = |map: &HashMap<String, Session>, only: Option<&str>| {
            map.iter()
                .filter(|(_, s)| only.is_none_or(|u| s.user == u))
                .min_by_key(|(_, s)| s.last)
                .map(|(k, _)| k.clone())
        };
        while map.values().filter(|s| s.user == user).count() >= PER_USER {
            let Some(k) = oldest(&map, Some(user)) else { break };
            map.remove(&k);
        }
        while map.len() >= MAX_SESSIONS {
            let Some(k) = oldest(&map, None) else { break };
            map.remove(&k);
        }
        let s = Session { user: user.to_string(), csrf: random_token(), last: now, created: now, flash: Vec::new() };
        map.insert(key(&id), s);
        id
    }

    /// The live session with cookie value `id`, touched.
    pub fn get(&self, id: &str) -> Option<Session> {
        let now = Instant::now();
        let mut map = self.lock();
        let k = key(id);
        let s = map.get_mut(&k)?;
        if !self.live(s, now) {
            map.remove(&k);
            return None;
        }
        s.last = now;
        Some(s.clone())
    }

    pub fn end(&self, id: &str) {
        self.lock().remove(&key(id));
    }

    /// Ends every session of `user` (password changed, user deleted).
    pub fn end_user(&self, user: &str) {
        self.lock().retain(|_, s| s.user != user);
    }

    /// A message shown once on the next page.
    pub fn flash(&self, id: &str, msg: String) {
        if let Some(s) = self.lock().get_mut(&key(id)) {
            if s.flash.len() < 8 {
                s.flash.push(msg);
            }
        }
    }

    pub fn take_flash(&self, id: &str) -> Vec<String> {
        self.lock().get_mut(&key(id)).map(|s| std::mem::take(&mut s.flash)).unwrap_or_default()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie(headers: &http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, Path=/, Secure when asked.
pub fn set_cookie(name: &str, value: &str, secure: bool, clear: bool) -> String {
    let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict");
    if secure {
        c.push_str("; Secure");
    }
    if clear {
        c.push_str("; Max-Age=0");
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_found_by_its_cookie_only() {
        let s = Sessions::new(Duration::from_secs(60));
        let id = s.start("ana");
        assert_eq!(s.get(&id).unwrap().user, "ana");
        assert!(s.get("not-a-session").is_none());
        s.end(&id);
        assert!(s.get(&id).is_none());
    }

    #[test]
    fn idle_sessions_end() {
        let s = Sessions::new(Duration::from_millis(0));
        let id = s.start("ana");
        assert!(s.get(&id).is_none(), "an idle timeout of zero ends it at once");
    }

    #[test]
    fn sessions_are_bounded_per_user() {
        let s = Sessions::new(Duration::from_secs(60));
        let ids: Vec<String> = (0..PER_USER + 3).map(|_| s.start("ana")).collect();
        assert_eq!(s.len(), PER_USER);
        assert!(s.get(ids.last().unwrap()).is_some(), "the newest stays");
        s.start("ben");
        s.end_user("ana");
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn each_session_has_its_own_csrf_token() {
        let s = Sessions::new(Duration::from_secs(60));
        let (a, b) = (s.start("ana"), s.start("ana"));
        assert_ne!(s.get(&a).unwrap().csrf, s.get(&b).unwrap().csrf);
        assert!(same("abc", "abc") && !same("abc", "abd") && !same("abc", "ab"));
    }

    #[test]
    fn cookies_are_read_from_any_header() {
        let mut h = http::HeaderMap::new();
        h.append(http::header::COOKIE, "a=1; liaison_session=xyz".parse().unwrap());
        assert_eq!(cookie(&h, COOKIE).as_deref(), Some("xyz"));
        assert_eq!(cookie(&h, "b"), None);
        let c = set_cookie(COOKIE, "v", true, false);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.contains("Secure"));
    }
}
