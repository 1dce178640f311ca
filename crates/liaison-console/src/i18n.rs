//! Translations (Fluent catalogues embedded in the binary) and the user's
//! time zone. Every string a page shows comes through [`Tr`].

use std::borrow::Cow;
use std::collections::HashMap;

use fluent_templates::fluent_bundle::FluentValue;
use fluent_templates::{LanguageIdentifier, Loader};

fluent_templates::static_loader! {
    pub static LOCALES = {
        locales: "./locales",
        fallback_language: "en",
        // Pages isolate values themselves (<bdi>); marks inside attribute
        // values and tests would only get in the way.
        customise: |bundle| bundle.set_use_isolating(false),
    };
}

/// The languages shipped, with their own names and writing direction.
pub const LANGUAGES: &[(&str, &str, bool)] =
    &[("en", "English", false), ("fr", "Français", false), ("th", "ไทย", false), ("ar", "العربية", true)];

#[derive(Debug, Clone)]
pub struct Tr {
    id: LanguageIdentifier,
    code: &'static str,
    rtl: bool,
}

impl Tr {
    /// The shipped language for a tag ("fr", "fr-CA", "ar-EG"), else English.
    pub fn new(tag: &str) -> Tr {
        let primary = tag.split(['-', '_']).next().unwrap_or("").to_ascii_lowercase();
        let (code, _, rtl) = LANGUAGES.iter().find(|(c, _, _)| *c == primary).copied().unwrap_or(LANGUAGES[0]);
        let id = code.parse().unwrap_or_default();
        Tr { id, code, rtl }
    }

    /// The best shipped language for an `Accept-Language` header.
    pub fn negotiate(accept: &str) -> Tr {
        let mut tags: Vec<(f32, &str)> = accept
            .split(',')
            .filter_map(|part| {
                let mut it = part.trim().split(';');
                let tag = it.next()?.trim();
                let q = it.find_map(|p| p.trim().strip_prefix("q=")?.parse().ok()).unwrap_or(1.0);
                Some((q, tag))
            })
            .collect();
        tags.sort_by(|a, b| b.0.total_cmp(&a.0));
        tags.iter()
            .map(|(_, t)| t.split('-').next().unwrap_or(""))
            .find_map(|p| LANGUAGES.iter().find(|(c, _, _)| c.eq_ignore_ascii_case(p)))
            .map_or_else(|| Tr::new("en"), |(c, _, _)| Tr::new(c))
    }

    pub fn code(&self) -> &'static str {
        self.code
    }

    pub fn dir(&self) -> &'static str {
        if self.rtl {
            "rtl"
        } else {
            "ltr"
        }
    }

    pub fn t(&self, key: &str) -> String {
        LOCALES.lookup(&self.id, key)
    }

    /// A message with one argument.
    pub fn t1(&self, key: &str, name: &str, value: impl std::fmt::Display) -> String {
        self.ta(key, &[(name, value.to_string())])
    }

    /// A message with arguments.
    pub fn ta(&self, key: &str, args: &[(&str, String)]) -> String {
        let map: HashMap<Cow<'static, str>, FluentValue> =
            args.iter().map(|(k, v)| (Cow::Owned(k.to_string()), FluentValue::from(v.clone()))).collect();
        LOCALES.lookup_with_args(&self.id, key, &map)
    }

    /// An enum value's label, `enum-<prefix>-<word>` (e.g. `enum-state-answered`).
    pub fn word(&self, prefix: &str, word: &str) -> String {
        let key = format!("enum-{prefix}-{}", word.replace('_', "-"));
        LOCALES.try_lookup(&self.id, &key).unwrap_or_else(|| word.replace('_', " "))
    }
}

/// A time zone by IANA name; UTC when unknown or empty.
pub fn zone(name: &str) -> jiff::tz::TimeZone {
    if name.is_empty() {
        return jiff::tz::TimeZone::UTC;
    }
    jiff::tz::db().get(name).unwrap_or(jiff::tz::TimeZone::UTC)
}

/// `2026-11-24 14:05 +07` in the zone, or "" for no time.
pub fn when(ts: Option<&pbjson_types::Timestamp>, tz: &jiff::tz::TimeZone) -> String {
    let Some(ts) = ts else { return String::new() };
    let Ok(t) = jiff::Timestamp::new(ts.seconds, ts.nanos.clamp(0, 999_999_999)) else {
        return String::new();
    };
    t.to_zoned(tz.clone()).strftime("%Y-%m-%d %H:%M %Z").to_string()
}

/// Whether a contact point with these hours is reachable at `now`: always,
/// or `HH:MM-HH:MM` in its own zone (an overnight span wraps midnight).
pub fn reachable(always: bool, hours: &str, time_zone: &str, now: jiff::Timestamp) -> Option<bool> {
    if always {
        return Some(true);
    }
    let tz = jiff::tz::db().get(time_zone).ok()?;
    let local = now.to_zoned(tz);
    let minutes = |s: &str| -> Option<i32> {
        let (h, m) = s.split_once(':')?;
        h.parse::<i32>().ok()?.checked_mul(60)?.checked_add(m.parse::<i32>().ok()?)
    };
    let (a, b) = hours.split_once('-')?;
    let (a, b) = (minutes(a)?, minutes(b)?);
    let m = i32::from(local.hour()) * 60 + i32::from(local.minute());
    let weekend = matches!(local.weekday(), jiff::civil::Weekday::Saturday | jiff::civil::Weekday::Sunday);
    let within = if a < b { (a..b).contains(&m) } else { m >= a || m < b };
    Some(within && !weekend)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn languages_are_negotiated_from_the_header() {
        assert_eq!(Tr::negotiate("fr-CA,fr;q=0.9,en;q=0.8").code(), "fr");
        assert_eq!(Tr::negotiate("de, ar;q=0.5").code(), "ar");
        assert_eq!(Tr::negotiate("de").code(), "en");
        assert_eq!(Tr::new("ar").dir(), "rtl");
        assert_eq!(Tr::new("th-TH").code(), "th");
    }

    #[test]
    fn reachable_now_follows_the_contacts_own_zone() {
        // 2026-11-24 (a Tuesday) 03:00 UTC is 10:00 in Bangkok.
        let t: jiff::Timestamp = "2026-11-24T03:00:00Z".parse().unwrap();
        assert_eq!(reachable(false, "08:30-17:00", "Asia/Bangkok", t), Some(true));
        assert_eq!(reachable(false, "08:30-17:00", "Europe/Paris", t), Some(false));
        assert_eq!(reachable(true, "", "", t), Some(true));
        assert_eq!(reachable(false, "22:00-06:00", "UTC", t), Some(true), "overnight span");
        assert_eq!(reachable(false, "08:30-17:00", "Nowhere/Else", t), None);
        // Saturday office hours are closed.
        let sat: jiff::Timestamp = "2026-11-28T03:00:00Z".parse().unwrap();
        assert_eq!(reachable(false, "08:30-17:00", "Asia/Bangkok", sat), Some(false));
    }

    #[test]
    fn times_show_in_the_users_zone() {
        let ts = pbjson_types::Timestamp { seconds: 1_795_489_200, nanos: 0 };
        let s = when(Some(&ts), &zone("Asia/Bangkok"));
        assert!(s.ends_with("+07"), "{s}");
        assert_eq!(when(None, &zone("UTC")), "");
    }
}

#[cfg(test)]
mod catalogues {
    use std::collections::BTreeSet;

    fn ids(lang: &str) -> BTreeSet<String> {
        let path = format!("{}/locales/{lang}/console.ftl", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        text.lines()
            .filter(|l| l.starts_with(|c: char| c.is_ascii_lowercase()))
            .filter_map(|l| l.split_once(" = ").map(|(k, _)| k.trim().to_string()))
            .collect()
    }

    /// Every key a template or a page names, and every form label and
    /// enum value the forms show.
    fn used() -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let dirs =
            [concat!(env!("CARGO_MANIFEST_DIR"), "/templates"), concat!(env!("CARGO_MANIFEST_DIR"), "/src/pages")];
        for dir in dirs {
            for entry in std::fs::read_dir(dir).unwrap() {
                let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
                for call in [".t(\"", ".t1(\"", ".ta(\""] {
                    for part in text.split(call).skip(1) {
                        if let Some(key) = part.split('"').next() {
                            if key.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                                && !key.is_empty()
                            {
                                out.insert(key.to_string());
                            }
                        }
                    }
                }
            }
        }
        let tr = super::Tr::new("en");
        for k in 1..=5 {
            let kind = <liaison_node::pb::RecordKind as liaison_node::convert::ProtoEnum>::of(k).unwrap();
            for f in crate::forms::views(&tr, kind, &Default::default(), &Default::default()) {
                out.insert(crate::forms::label_key(&without_index(&f.name)));
            }
        }
        out
    }

    /// `a.rows[2].b` → `a.rows.b`.
    fn without_index(name: &str) -> String {
        let mut out = String::new();
        let mut skip = false;
        for c in name.chars() {
            match c {
                '[' => skip = true,
                ']' => skip = false,
                _ if !skip => out.push(c),
                _ => {}
            }
        }
        out
    }

    #[test]
    fn every_catalogue_has_every_key_of_the_english_one() {
        let en = ids("en");
        assert!(en.len() > 300);
        for lang in ["fr", "th", "ar"] {
            let other = ids(lang);
            let missing: Vec<_> = en.difference(&other).collect();
            let extra: Vec<_> = other.difference(&en).collect();
            assert!(missing.is_empty(), "{lang} lacks {missing:?}");
            assert!(extra.is_empty(), "{lang} has keys English lacks: {extra:?}");
        }
    }

    #[test]
    fn every_key_the_pages_use_is_in_the_catalogue() {
        let en = ids("en");
        let missing: Vec<_> = used().into_iter().filter(|k| !en.contains(k)).collect();
        assert!(missing.is_empty(), "keys used but not in en: {missing:?}");
    }

    /// Each message's variables, from the English catalogue.
    fn variables() -> Vec<(String, Vec<String>)> {
        let path = format!("{}/locales/en/console.ftl", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .filter_map(|l| l.split_once(" = "))
            .filter(|(k, _)| k.starts_with(|c: char| c.is_ascii_lowercase()))
            .map(|(k, v)| {
                let vars = v.split("{ $").skip(1).filter_map(|p| p.split(' ').next()).map(String::from).collect();
                (k.trim().to_string(), vars)
            })
            .collect()
    }

    #[test]
    fn every_message_formats_in_every_language() {
        for lang in ["en", "fr", "th", "ar"] {
            let tr = super::Tr::new(lang);
            for (k, vars) in variables() {
                let args: Vec<(&str, String)> = vars.iter().map(|v| (v.as_str(), "7".to_string())).collect();
                let s = tr.ta(&k, &args);
                assert!(!s.starts_with("Unknown localization key"), "{lang}: {k}");
                assert!(!s.contains("{$") && !s.contains("{ $"), "{lang}: {k} left a variable: {s}");
            }
        }
    }
}
