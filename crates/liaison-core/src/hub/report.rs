//! The regional statistics report: members' StatisticsReports aggregated per
//! country and for the region, with small cells suppressed.
//!
//! Suppression: any victim count from 1 to 4 is hidden (shown as "x"),
//! because a figure that small can single out a person. Where exactly one
//! cell of a breakdown is hidden, the next smallest non-zero cell is hidden
//! too, so the hidden figure cannot be recovered from the total. A regional
//! figure is hidden wherever a country figure it sums is hidden (or the
//! region minus the other countries would give it away), and the regional
//! breakdowns get the same secondary suppression. Case counts
//! (investigations, prosecutions, convictions) are about cases, not people,
//! and are shown as they are.

use crate::convert::ProtoEnum;
use std::collections::BTreeMap;

use serde::Serialize;

use crate::pb;
use crate::record::parse_date;

/// Cells below this are suppressed.
pub const THRESHOLD: u64 = 5;

/// A published figure: `None` when suppressed.
pub type Cell = Option<u64>;

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Breakdown {
    pub total: Cell,
    pub by_sex: BTreeMap<String, Cell>,
    pub by_age_group: BTreeMap<String, Cell>,
    pub by_nationality: BTreeMap<String, Cell>,
    pub by_exploitation: BTreeMap<String, Cell>,
    pub investigations: u64,
    pub prosecutions: u64,
    pub convictions: u64,
    /// Framework area → narratives (one per report that covered it).
    pub framework: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Report {
    pub period: String,
    pub countries: BTreeMap<String, Breakdown>,
    pub region: Breakdown,
    pub reports_used: usize,
    /// At a hub above hubs: each region's row as its hub published it.
    pub regions: BTreeMap<String, Breakdown>,
    /// The joint row over `regions` (when there are any).
    pub joint: Option<Breakdown>,
    /// Where each member stands with its reporting duties.
    pub duties: Vec<DutyRow>,
}

/// One member's standing with one reporting duty, for the report.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DutyRow {
    pub member: String,
    pub duty: String,
    pub period: String,
    pub due: String,
    pub state: String,
    pub received: String,
}

impl DutyRow {
    pub fn of(s: &pb::ReportingStatus) -> Self {
        let day = |t: &Option<pbjson_types::Timestamp>| {
            t.as_ref().and_then(crate::convert::from_timestamp).map(|t| t.date().to_string()).unwrap_or_default()
        };
        DutyRow {
            member: s.member.clone(),
            duty: s.duty.clone(),
            period: s.period.clone(),
            due: day(&s.due),
            state: s.state.replace('_', " "),
            received: day(&s.received),
        }
    }
}

impl Report {
    pub fn with_duties(mut self, statuses: &[pb::ReportingStatus]) -> Self {
        self.duties = statuses.iter().map(DutyRow::of).collect();
        self
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("period: {0}")]
pub struct PeriodError(pub String);

/// "2025" or "2025-01-01..2025-06-30".
pub fn parse_period(p: &str) -> Result<(time::Date, time::Date), PeriodError> {
    let p = p.trim();
    if let Some((a, b)) = p.split_once("..") {
        let a = parse_date("period", a).map_err(|e| PeriodError(e.reason))?;
        let b = parse_date("period", b).map_err(|e| PeriodError(e.reason))?;
        if b < a {
            return Err(PeriodError("ends before it starts".into()));
        }
        return Ok((a, b));
    }
    let year: i32 =
        p.parse().map_err(|_| PeriodError(format!("{p:?} is not a year or a range YYYY-MM-DD..YYYY-MM-DD")))?;
    let a = time::Date::from_calendar_date(year, time::Month::January, 1).map_err(|e| PeriodError(e.to_string()))?;
    let b = time::Date::from_calendar_date(year, time::Month::December, 31).map_err(|e| PeriodError(e.to_string()))?;
    Ok((a, b))
}

/// Suppresses small cells in one breakdown (primary and secondary suppression).
pub fn suppress(raw: &BTreeMap<String, u64>) -> BTreeMap<String, Cell> {
    let out = raw.iter().map(|(k, v)| (k.clone(), cell(*v))).collect();
    secondary(raw, out)
}

/// Secondary suppression over published cells alone (a joint row whose
/// hidden cells have no figure): where exactly one is hidden, hides the
/// next smallest visible non-zero one.
pub fn secondary_hidden(out: BTreeMap<String, Cell>) -> BTreeMap<String, Cell> {
    let raw = out.iter().map(|(k, v)| (k.clone(), v.unwrap_or(0))).collect();
    secondary(&raw, out)
}

/// Where exactly one cell is hidden, hides the next smallest non-zero one.
fn secondary(raw: &BTreeMap<String, u64>, mut out: BTreeMap<String, Cell>) -> BTreeMap<String, Cell> {
    if out.values().filter(|c| c.is_none()).count() == 1 {
        let next = raw
            .iter()
            .filter(|(k, v)| **v > 0 && out.get(*k).is_some_and(Option::is_some))
            .min_by_key(|(_, v)| **v)
            .map(|(k, _)| k.clone());
        if let Some(k) = next {
            out.insert(k, None);
        }
    }
    out
}

fn cell(v: u64) -> Cell {
    if v > 0 && v < THRESHOLD {
        None
    } else {
        Some(v)
    }
}

#[derive(Default)]
struct Raw {
    total: u64,
    sex: BTreeMap<String, u64>,
    age: BTreeMap<String, u64>,
    nationality: BTreeMap<String, u64>,
    exploitation: BTreeMap<String, u64>,
    investigations: u64,
    prosecutions: u64,
    convictions: u64,
    framework: BTreeMap<String, Vec<String>>,
}

/// Adds `n` to `key`'s count (saturating: counts come from members' reports).
fn bump(counts: &mut BTreeMap<String, u64>, key: String, n: u64) {
    let c = counts.entry(key).or_default();
    *c = c.saturating_add(n);
}

impl Raw {
    fn add(&mut self, s: &pb::StatisticsReport) {
        for v in &s.victims {
            let n = u64::from(v.count);
            self.total = self.total.saturating_add(n);
            let sex = pb::Sex::word_of(v.sex);
            bump(&mut self.sex, sex, n);
            let age = pb::AgeGroup::word_of(v.age_group);
            bump(&mut self.age, age, n);
            bump(&mut self.nationality, v.nationality.clone(), n);
            let exploitation = pb::ExploitationType::word_of(v.exploitation_type);
            bump(&mut self.exploitation, exploitation, n);
        }
        self.investigations = self.investigations.saturating_add(u64::from(s.investigations));
        self.prosecutions = self.prosecutions.saturating_add(u64::from(s.prosecutions));
        self.convictions = self.convictions.saturating_add(u64::from(s.convictions));
        for f in &s.framework {
            let area = pb::FrameworkArea::word_of(f.area);
            if !f.narrative.is_empty() {
                self.framework.entry(area).or_default().push(format!("{}: {}", s.country, f.narrative));
            }
        }
    }

    fn publish(&self) -> Breakdown {
        Breakdown {
            total: cell(self.total),
            by_sex: suppress(&self.sex),
            by_age_group: suppress(&self.age),
            by_nationality: suppress(&self.nationality),
            by_exploitation: suppress(&self.exploitation),
            investigations: self.investigations,
            prosecutions: self.prosecutions,
            convictions: self.convictions,
            framework: self.framework.clone(),
        }
    }
}

/// Aggregates the reports whose period lies inside `period`.
pub fn aggregate(reports: &[pb::StatisticsReport], period: &str) -> Result<Report, PeriodError> {
    let (from, to) = parse_period(period)?;
    let mut by_country: BTreeMap<String, Raw> = BTreeMap::new();
    let mut region = Raw::default();
    let mut used: usize = 0;
    for s in reports {
        let (Ok(a), Ok(b)) = (parse_date("", &s.period_start), parse_date("", &s.period_end)) else { continue };
        if a < from || b > to {
            continue;
        }
        used = used.saturating_add(1);
        by_country.entry(s.country.clone()).or_default().add(s);
        region.add(s);
    }
    let countries: BTreeMap<String, Breakdown> = by_country.iter().map(|(c, r)| (c.clone(), r.publish())).collect();
    let region = publish_region(&region, &countries);
    Ok(Report { period: period.to_string(), countries, region, reports_used: used, ..Default::default() })
}

/// Picks one breakdown out of a published row.
type Dimension = fn(&Breakdown) -> &BTreeMap<String, Cell>;

fn region_dimension(
    of: Dimension,
    raw: &BTreeMap<String, u64>,
    countries: &BTreeMap<String, Breakdown>,
) -> BTreeMap<String, Cell> {
    let hidden = raw
        .iter()
        .map(|(k, v)| {
            let hidden_somewhere = countries.values().any(|c| of(c).get(k).is_some_and(Option::is_none));
            (k.clone(), if hidden_somewhere { None } else { cell(*v) })
        })
        .collect();
    secondary(raw, hidden)
}

/// The regional row: a figure is hidden where any country figure it sums is
/// hidden, since the region minus the published countries would reveal it.
fn publish_region(raw: &Raw, countries: &BTreeMap<String, Breakdown>) -> Breakdown {
    let mut b = raw.publish();
    if countries.values().any(|c| c.total.is_none()) {
        b.total = None;
    }
    b.by_sex = region_dimension(|c| &c.by_sex, &raw.sex, countries);
    b.by_age_group = region_dimension(|c| &c.by_age_group, &raw.age, countries);
    b.by_nationality = region_dimension(|c| &c.by_nationality, &raw.nationality, countries);
    b.by_exploitation = region_dimension(|c| &c.by_exploitation, &raw.exploitation, countries);
    b
}

fn show(c: &Cell) -> String {
    c.map_or("x".to_string(), |v| v.to_string())
}

const DIMENSIONS: [&str; 4] = ["sex", "age group", "nationality", "form of exploitation"];

fn dims(b: &Breakdown) -> [&BTreeMap<String, Cell>; 4] {
    [&b.by_sex, &b.by_age_group, &b.by_nationality, &b.by_exploitation]
}

fn rows(r: &Report) -> Vec<(&str, &Breakdown)> {
    let mut v: Vec<(&str, &Breakdown)> = r.countries.iter().map(|(c, b)| (c.as_str(), b)).collect();
    v.push(("REGION", &r.region));
    v
}

/// The per-country and regional tables of a regional report.
fn country_tables(r: &Report, s: &mut String) {
    s.push_str("| country | victims | investigations | prosecutions | convictions |\n|---|---|---|---|---|\n");
    for (c, b) in rows(r) {
        s.push_str(&format!(
            "| {c} | {} | {} | {} | {} |\n",
            show(&b.total),
            b.investigations,
            b.prosecutions,
            b.convictions
        ));
    }
    for (i, name) in DIMENSIONS.iter().enumerate() {
        s.push_str(&format!("\n## Victims by {name}\n\n| country | category | victims |\n|---|---|---|\n"));
        for (c, b) in rows(r) {
            for (k, v) in dims(b).get(i).copied().into_iter().flatten() {
                s.push_str(&format!("| {c} | {k} | {} |\n", show(v)));
            }
        }
    }
}

pub fn markdown(r: &Report) -> String {
    // A joint body above hubs holds the regions' aggregates, not members' reports.
    let joint_only = r.reports_used == 0 && r.joint.is_some();
    let mut s = format!(
        "# {} — {}\n\n{} x: hidden (a figure under {THRESHOLD}, or one that would reveal such a figure).\n\n",
        if joint_only { "Joint report" } else { "Regional report" },
        r.period,
        if joint_only {
            format!("{} regional aggregate(s).", r.regions.len())
        } else {
            format!("{} country report(s).", r.reports_used)
        }
    );
    if !joint_only {
        country_tables(r, &mut s);
    }
    if let Some(j) = &r.joint {
        s.push_str("\n## Regions, as their hubs published them\n\n| region | victims | investigations | prosecutions | convictions |\n|---|---|---|---|---|\n");
        for (name, b) in r.regions.iter().map(|(n, b)| (n.as_str(), b)).chain([("JOINT", j)]) {
            s.push_str(&format!(
                "| {name} | {} | {} | {} | {} |\n",
                show(&b.total),
                b.investigations,
                b.prosecutions,
                b.convictions
            ));
        }
        for (i, name) in DIMENSIONS.iter().enumerate() {
            s.push_str(&format!("\n### Joint: victims by {name}\n\n| category | victims |\n|---|---|\n"));
            for (k, v) in dims(j).get(i).copied().into_iter().flatten() {
                s.push_str(&format!("| {k} | {} |\n", show(v)));
            }
        }
    }
    if !r.duties.is_empty() {
        s.push_str(
            "\n## Reporting duties\n\n| member | duty | period | due | state | received |\n|---|---|---|---|---|---|\n",
        );
        for d in &r.duties {
            s.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} |\n",
                d.member,
                d.duty,
                d.period,
                d.due,
                d.state,
                if d.received.is_empty() { "—" } else { &d.received }
            ));
        }
    }
    s.push_str("\n## Country report framework (ECOWAS/ECCAS)\n");
    for (area, notes) in &r.region.framework {
        s.push_str(&format!("\n### {}\n\n", area.replace('_', " ")));
        for n in notes {
            s.push_str(&format!("- {n}\n"));
        }
    }
    s
}

pub fn csv(r: &Report) -> String {
    let mut s = String::from("country,dimension,category,value\n");
    let q = |x: &str| {
        if x.contains(',') || x.contains('"') {
            format!("\"{}\"", x.replace('"', "\"\""))
        } else {
            x.to_string()
        }
    };
    for (c, b) in rows(r) {
        s.push_str(&format!("{c},victims,total,{}\n", show(&b.total)));
        for (i, name) in DIMENSIONS.iter().enumerate() {
            for (k, v) in dims(b).get(i).copied().into_iter().flatten() {
                s.push_str(&format!("{c},{},{},{}\n", q(name), q(k), show(v)));
            }
        }
        s.push_str(&format!(
            "{c},cases,investigations,{}\n{c},cases,prosecutions,{}\n{c},cases,convictions,{}\n",
            b.investigations, b.prosecutions, b.convictions
        ));
    }
    let joint = r.joint.iter().map(|j| ("JOINT".to_string(), j));
    for (region, b) in r.regions.iter().map(|(n, b)| (n.clone(), b)).chain(joint) {
        s.push_str(&format!("{},victims,total,{}\n", q(&region), show(&b.total)));
    }
    for d in &r.duties {
        s.push_str(&format!("{},reporting,{},{}\n", q(&d.member), q(&d.duty), q(&d.state)));
    }
    s
}

fn esc(x: &str) -> String {
    x.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A horizontal bar chart as inline SVG (suppressed cells drawn hatched, without a number).
fn bars(title: &str, data: &[(String, Cell)]) -> String {
    let max = data.iter().filter_map(|(_, v)| *v).max().unwrap_or(1).max(1) as f64;
    let h = data.len().saturating_mul(22).saturating_add(30);
    let mut s = format!(
        "<figure><figcaption>{}</figcaption><svg width=\"560\" height=\"{h}\" role=\"img\" aria-label=\"{}\">",
        esc(title),
        esc(title)
    );
    for (i, (k, v)) in data.iter().enumerate() {
        let y = i.saturating_mul(22).saturating_add(20);
        let (w, label, fill) = match v {
            Some(n) => ((*n as f64 / max * 360.0).max(1.0), n.to_string(), "#2b6cb0"),
            None => (18.0, "x".to_string(), "url(#hatch)"),
        };
        s.push_str(&format!(
            "<text x=\"0\" y=\"{}\" font-size=\"12\">{}</text><rect x=\"150\" y=\"{}\" width=\"{w:.0}\" height=\"16\" fill=\"{fill}\"/><text x=\"{:.0}\" y=\"{}\" font-size=\"12\">{}</text>",
            y.saturating_add(12), esc(k), y, 156.0 + w, y.saturating_add(12), esc(&label)
        ));
    }
    s.push_str("</svg></figure>");
    s
}

pub fn html(r: &Report) -> String {
    let mut s = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Regional report {p}</title><style>body{{font-family:sans-serif;max-width:960px;margin:2em auto}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px}}</style></head><body><svg width=\"0\" height=\"0\"><defs><pattern id=\"hatch\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\"><path d=\"M0,6 l6,-6\" stroke=\"#999\"/></pattern></defs></svg><h1>Regional report — {p}</h1><p>{n} country report(s). x: hidden (a figure under {THRESHOLD}, or one that would reveal such a figure).</p><table><tr><th>country</th><th>victims</th><th>investigations</th><th>prosecutions</th><th>convictions</th></tr>",
        p = esc(&r.period),
        n = r.reports_used
    );
    for (c, b) in rows(r) {
        s.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(c),
            esc(&show(&b.total)),
            b.investigations,
            b.prosecutions,
            b.convictions
        ));
    }
    s.push_str("</table>");
    let victims: Vec<(String, Cell)> = r.countries.iter().map(|(c, b)| (c.clone(), b.total)).collect();
    s.push_str(&bars("Victims identified by country", &victims));
    for (i, name) in DIMENSIONS.iter().enumerate() {
        let d: Vec<(String, Cell)> =
            dims(&r.region).get(i).copied().into_iter().flatten().map(|(k, v)| (k.clone(), *v)).collect();
        s.push_str(&bars(&format!("Region: victims by {name}"), &d));
    }
    if let Some(j) = &r.joint {
        s.push_str("<h2>Regions, as their hubs published them</h2><table><tr><th>region</th><th>victims</th><th>investigations</th></tr>");
        for (name, b) in r.regions.iter().map(|(n, b)| (n.as_str(), b)).chain([("JOINT", j)]) {
            s.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(name),
                esc(&show(&b.total)),
                b.investigations
            ));
        }
        s.push_str("</table>");
    }
    if !r.duties.is_empty() {
        s.push_str("<h2>Reporting duties</h2><table><tr><th>member</th><th>duty</th><th>period</th><th>due</th><th>state</th><th>received</th></tr>");
        for d in &r.duties {
            s.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&d.member),
                esc(&d.duty),
                esc(&d.period),
                esc(&d.due),
                esc(&d.state),
                esc(&d.received)
            ));
        }
        s.push_str("</table>");
    }
    s.push_str("<h2>Country report framework</h2>");
    for (area, notes) in &r.region.framework {
        s.push_str(&format!("<h3>{}</h3><ul>", esc(&area.replace('_', " "))));
        for n in notes {
            s.push_str(&format!("<li>{}</li>", esc(n)));
        }
        s.push_str("</ul>");
    }
    s.push_str("</body></html>");
    s
}

/// Renders in `format` (md, csv, json, html): content and media type.
pub fn render(r: &Report, format: &str) -> Result<(String, &'static str), PeriodError> {
    Ok(match format {
        "md" | "" => (markdown(r), "text/markdown"),
        "csv" => (csv(r), "text/csv"),
        "json" => (serde_json::to_string_pretty(r).map_err(|e| PeriodError(e.to_string()))?, "application/json"),
        "html" => (html(r), "text/html"),
        other => return Err(PeriodError(format!("format {other:?} is not md, csv, json or html"))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vc(sex: pb::Sex, age: pb::AgeGroup, nat: &str, ex: pb::ExploitationType, count: u32) -> pb::VictimCount {
        pb::VictimCount {
            sex: sex as i32,
            age_group: age as i32,
            nationality: nat.into(),
            exploitation_type: ex as i32,
            count,
        }
    }

    fn reports() -> Vec<pb::StatisticsReport> {
        use pb::{AgeGroup as A, ExploitationType as E, Sex as S};
        vec![
            pb::StatisticsReport {
                country: "TH".into(),
                period_start: "2025-01-01".into(),
                period_end: "2025-12-31".into(),
                victims: vec![
                    vc(S::Female, A::AgeGroup1824, "MM", E::Sexual, 40),
                    vc(S::Male, A::AgeGroup2539, "KH", E::Labour, 57),
                    vc(S::Female, A::AgeGroup1217, "LA", E::Sexual, 3),
                ],
                investigations: 312,
                prosecutions: 201,
                convictions: 144,
                framework: vec![pb::FrameworkEntry {
                    area: pb::FrameworkArea::Prosecution as i32,
                    narrative: "Specialised courts".into(),
                }],
            },
            pb::StatisticsReport {
                country: "KH".into(),
                period_start: "2025-01-01".into(),
                period_end: "2025-06-30".into(),
                victims: vec![
                    vc(S::Female, A::AgeGroup1824, "KH", E::Sexual, 2),
                    vc(S::Male, A::AgeGroup2539, "KH", E::Labour, 2),
                ],
                investigations: 4,
                prosecutions: 3,
                convictions: 1,
                framework: vec![],
            },
            // Outside the period: ignored.
            pb::StatisticsReport {
                country: "LA".into(),
                period_start: "2024-01-01".into(),
                period_end: "2024-12-31".into(),
                victims: vec![vc(S::Male, A::AgeGroup2539, "LA", E::Labour, 99)],
                ..Default::default()
            },
        ]
    }

    #[test]
    fn aggregation_and_suppression_on_known_inputs() {
        let r = aggregate(&reports(), "2025").unwrap();
        assert_eq!(r.reports_used, 2);
        let th = &r.countries["TH"];
        assert_eq!(th.total, Some(100));
        assert_eq!(th.by_nationality["LA"], None, "3 victims: suppressed");
        assert_eq!(th.by_nationality["MM"], None, "the next smallest goes too, or LA = 100 - 40 - 57");
        assert_eq!(th.by_nationality["KH"], Some(57));
        assert_eq!(
            (th.by_age_group["12_17"], th.by_age_group["18_24"], th.by_age_group["25_39"]),
            (None, None, Some(57))
        );
        assert_eq!((th.investigations, th.prosecutions, th.convictions), (312, 201, 144));
        let kh = &r.countries["KH"];
        assert_eq!(kh.total, None, "4 victims in total: suppressed");
        assert_eq!(kh.by_sex["female"], None);
        assert_eq!(kh.by_sex["male"], None);
        assert_eq!(kh.investigations, 4, "case counts are not suppressed");
        // The region hides what the region minus the countries would reveal.
        assert_eq!(r.region.total, None, "104 - TH's 100 would give KH's hidden 4");
        assert_eq!(r.region.by_nationality["KH"], None, "61 - TH's 57 would give KH's hidden 4");
        assert_eq!(r.region.by_nationality["MM"], None, "hidden in TH");
        assert_eq!(r.region.by_exploitation["sexual"], None);
        assert_eq!(r.region.by_exploitation["labour"], None, "secondary: the other of the two cells");
        assert_eq!(r.region.investigations, 316, "case counts add up as they are");
        // Where no country hides anything, the region shows its sums.
        let mut big = reports();
        big.truncate(1);
        big[0].victims[2].count = 30;
        let mut other = big[0].clone();
        other.country = "VN".into();
        big.push(other);
        let r = aggregate(&big, "2025").unwrap();
        assert_eq!(r.region.total, Some(254));
        assert_eq!(r.region.by_nationality["LA"], Some(60));
        assert!(!r.countries.contains_key("LA"));
    }

    proptest::proptest! {
        /// No hidden figure can be worked out from the published ones: a
        /// visible regional cell sums only visible country cells, and no
        /// breakdown (or total against its breakdown) hides exactly one cell.
        #[test]
        fn hidden_figures_cannot_be_recovered(
            rows in proptest::collection::vec((0usize..3, 0usize..2, 0usize..3, 0u32..12), 1..12)
        ) {
            use pb::{AgeGroup as A, ExploitationType as E, Sex as S};
            let countries = ["TH", "KH", "LA"];
            let sexes = [S::Female, S::Male];
            let nats = ["MM", "KH", "VN"];
            let reports: Vec<pb::StatisticsReport> = rows.iter().map(|(c, s, n, count)| pb::StatisticsReport {
                country: countries[*c].into(),
                period_start: "2025-01-01".into(),
                period_end: "2025-12-31".into(),
                victims: vec![vc(sexes[*s], A::AgeGroup2539, nats[*n], E::Labour, *count)],
                ..Default::default()
            }).collect();
            let r = aggregate(&reports, "2025").unwrap();
            for b in r.countries.values().chain(std::iter::once(&r.region)) {
                for d in dims(b) {
                    // With the total hidden too, nothing is left to subtract from.
                    let hidden = d.values().filter(|c| c.is_none()).count();
                    proptest::prop_assert!(b.total.is_none() || hidden != 1, "one hidden cell in {d:?} could be recovered");
                }
            }
            for (of_region, of_country) in [
                (&r.region.by_sex, (|b: &Breakdown| b.by_sex.clone()) as fn(&Breakdown) -> BTreeMap<String, Cell>),
                (&r.region.by_nationality, |b: &Breakdown| b.by_nationality.clone()),
            ] {
                for (k, v) in of_region {
                    if v.is_some() {
                        for c in r.countries.values() {
                            proptest::prop_assert!(of_country(c).get(k).is_none_or(Option::is_some), "region {k} reveals a hidden country cell");
                        }
                    }
                }
            }
            if r.region.total.is_some() {
                proptest::prop_assert!(r.countries.values().all(|c| c.total.is_some()));
            }
        }
    }

    #[test]
    fn suppression_rules() {
        let m = |v: &[(&str, u64)]| v.iter().map(|(k, n)| (k.to_string(), *n)).collect::<BTreeMap<_, _>>();
        // One small cell: it and the next smallest go.
        let s = suppress(&m(&[("a", 2), ("b", 10), ("c", 20)]));
        assert_eq!((s["a"], s["b"], s["c"]), (None, None, Some(20)));
        // Two small cells already hide each other; zeros are shown.
        let s = suppress(&m(&[("a", 2), ("b", 3), ("c", 20), ("d", 0)]));
        assert_eq!((s["a"], s["b"], s["c"], s["d"]), (None, None, Some(20), Some(0)));
        let s = suppress(&m(&[("a", 5), ("b", 6)]));
        assert_eq!((s["a"], s["b"]), (Some(5), Some(6)));
    }

    #[test]
    fn renderings() {
        let r = aggregate(&reports(), "2025-01-01..2025-12-31").unwrap();
        let md = render(&r, "md").unwrap().0;
        assert!(md.contains("| TH | 100 | 312 | 201 | 144 |") && md.contains("| KH | x |"), "{md}");
        let csv = render(&r, "csv").unwrap().0;
        assert!(csv.contains("TH,nationality,LA,x") && csv.contains("REGION,victims,total,x"), "{csv}");
        let html = render(&r, "html").unwrap().0;
        assert!(html.contains("<svg") && html.contains("Victims identified by country") && !html.contains("<script"));
        let json: serde_json::Value = serde_json::from_str(&render(&r, "json").unwrap().0).unwrap();
        assert!(json["region"]["total"].is_null());
        assert_eq!(json["region"]["investigations"], 316);
        assert!(json["countries"]["KH"]["total"].is_null());
        assert!(render(&r, "pdf").is_err());
        assert!(parse_period("2025-13-01..2025-12-31").is_err());
        assert!(parse_period("last year").is_err());
    }
}
