//! The walk-through's voice: numbered sections, short explanations, one line
//! per thing that happened, and a summary of what was exchanged and refused.

use std::io::Write;

use crate::pb;

const WIDTH: usize = 92;

#[derive(Default)]
pub struct Narrator {
    section: usize,
    pub exchanged: Vec<String>,
    pub refused: Vec<String>,
    pub escalated: Vec<String>,
}

/// Greedy word wrap; the demo's prose is plain text.
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    for para in text.split("\n\n") {
        let mut line = String::new();
        for word in para.split_whitespace() {
            if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
                lines.push(std::mem::take(&mut line));
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
        if !line.is_empty() {
            lines.push(line);
        }
        lines.push(String::new());
    }
    while lines.last().is_some_and(String::is_empty) {
        lines.pop();
    }
    lines
}

impl Narrator {
    fn out(&self, s: &str) {
        let mut o = std::io::stdout().lock();
        let _ = writeln!(o, "{s}");
        let _ = o.flush();
    }

    pub fn banner(&self, title: &str, intro: &str) {
        self.out(&format!("\n{}\n{title}\n{}", "═".repeat(WIDTH), "═".repeat(WIDTH)));
        for l in wrap(intro, WIDTH) {
            self.out(&l);
        }
    }

    pub fn section(&mut self, title: &str, why: &str) {
        self.section += 1;
        self.out(&format!("\n{}. {title}\n{}", self.section, "─".repeat(WIDTH.min(title.chars().count() + 4))));
        for l in wrap(why, WIDTH - 3) {
            self.out(&format!("   {l}"));
        }
    }

    pub fn ok(&self, s: &str) {
        self.out(&format!("   ✔ {s}"));
    }

    pub fn no(&self, s: &str) {
        self.out(&format!("   ✘ {s}"));
    }

    pub fn info(&self, s: &str) {
        self.out(&format!("   · {s}"));
    }

    pub fn detail(&self, s: &str) {
        for l in s.lines() {
            self.out(&format!("       {l}"));
        }
    }

    pub fn exchanged(&mut self, s: impl Into<String>) {
        let s = s.into();
        self.ok(&s);
        self.exchanged.push(s);
    }

    pub fn refused(&mut self, s: impl Into<String>) {
        let s = s.into();
        self.no(&s);
        self.refused.push(s);
    }

    pub fn escalated(&mut self, s: impl Into<String>) {
        let s = s.into();
        self.out(&format!("   ⚑ {s}"));
        self.escalated.push(s);
    }

    pub fn summary(&self) {
        self.out(&format!("\n{}\nSummary\n{}", "═".repeat(WIDTH), "═".repeat(WIDTH)));
        self.out(&format!("Exchanged ({}):", self.exchanged.len()));
        for e in &self.exchanged {
            self.out(&format!("  ✔ {e}"));
        }
        self.out(&format!("Refused ({}), each by the policy or a safeguard, with its reason:", self.refused.len()));
        for r in &self.refused {
            self.out(&format!("  ✘ {r}"));
        }
        if !self.escalated.is_empty() {
            self.out(&format!("Escalated under the SOP ({}):", self.escalated.len()));
            for e in &self.escalated {
                self.out(&format!("  ⚑ {e}"));
            }
        }
    }
}

/// One line describing a record as a user would name it.
pub fn describe(r: &pb::Record) -> String {
    use pb::record::Body;
    let what = match &r.body {
        Some(Body::ContactPoint(c)) => format!("contact point {} — {} ({})", c.name, c.agency, c.country),
        Some(Body::IntelligenceReport(i)) => format!("intelligence report “{}”", i.title),
        Some(Body::Entity(e)) => {
            let names = if e.names.is_empty() { "(names withheld)".to_string() } else { e.names.join(", ") };
            format!("entity {names} ({})", e.country)
        }
        Some(Body::VictimReferral(v)) => format!(
            "victim referral {} ({})",
            v.pseudonym,
            if v.identity.is_some() { "identity released" } else { "pseudonymised" }
        ),
        Some(Body::StatisticsReport(s)) => {
            format!("statistics report {} {}..{}", s.country, s.period_start, s.period_end)
        }
        Some(Body::RegionalAggregate(a)) => {
            format!(
                "regional aggregate {} {}..{} (as published, small figures hidden)",
                a.region, a.period_start, a.period_end
            )
        }
        None => "record".into(),
    };
    let redacted = if r.redacted_fields.is_empty() {
        String::new()
    } else {
        format!(" [redacted: {}]", r.redacted_fields.join(", "))
    };
    format!("{what}{redacted}")
}

/// An enum or config word as prose: `PURPOSE_VICTIM_IDENTIFICATION` → `victim identification`.
pub fn spoken(name: &str, prefix: &str) -> String {
    crate::convert::word(name, prefix).replace('_', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_keeps_words_and_paragraphs() {
        let w = wrap("one two three four\n\nfive", 9);
        assert_eq!(w, vec!["one two", "three", "four", "", "five"]);
        assert!(wrap("", 10).is_empty());
        assert_eq!(wrap("averyveryverylongword x", 5), vec!["averyveryverylongword", "x"]);
    }

    #[test]
    fn records_are_described_with_their_redactions() {
        let mut e = crate::record::examples::entity();
        e.redacted_fields = vec!["entity.evidence_basis".into()];
        assert_eq!(describe(&e), "entity Sok Dara (KH) [redacted: entity.evidence_basis]");
        let mut v = crate::record::examples::victim_referral();
        assert!(describe(&v).contains("identity released"));
        v.body = match v.body {
            Some(pb::record::Body::VictimReferral(mut x)) => {
                x.identity = None;
                Some(pb::record::Body::VictimReferral(x))
            }
            b => b,
        };
        assert!(describe(&v).contains("pseudonymised"));
        assert_eq!(spoken("PURPOSE_VICTIM_IDENTIFICATION", "PURPOSE_"), "victim identification");
    }
}
