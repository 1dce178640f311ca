//! Hubs above hubs: a regional hub sends its published report up as a
//! `RegionalAggregate` (already suppressed), and a joint body combines the
//! regions' rows. A joint figure is hidden wherever a region hid a figure it
//! sums, and the same secondary suppression applies, so the joint report
//! can never reveal what a region withheld.

use std::collections::BTreeMap;

use crate::hub::report::{parse_period, secondary_hidden, Breakdown, Cell, PeriodError, Report, THRESHOLD};
use crate::pb;
use crate::record::FieldError;

/// Breakdown dimensions as named in an aggregate's cells.
pub const DIMENSIONS: [&str; 4] = ["sex", "age_group", "nationality", "exploitation"];

fn dim<'a>(b: &'a Breakdown, name: &str) -> Option<&'a BTreeMap<String, Cell>> {
    match name {
        "sex" => Some(&b.by_sex),
        "age_group" => Some(&b.by_age_group),
        "nationality" => Some(&b.by_nationality),
        "exploitation" => Some(&b.by_exploitation),
        _ => None,
    }
}

fn dim_mut<'a>(b: &'a mut Breakdown, name: &str) -> Option<&'a mut BTreeMap<String, Cell>> {
    match name {
        "sex" => Some(&mut b.by_sex),
        "age_group" => Some(&mut b.by_age_group),
        "nationality" => Some(&mut b.by_nationality),
        "exploitation" => Some(&mut b.by_exploitation),
        _ => None,
    }
}

fn cell_pb(dimension: &str, key: &str, c: Cell) -> pb::AggregateCell {
    pb::AggregateCell { dimension: dimension.into(), key: key.into(), value: c.unwrap_or(0), suppressed: c.is_none() }
}

fn row(area: &str, b: &Breakdown) -> pb::AggregateRow {
    let mut cells = Vec::new();
    for d in DIMENSIONS {
        for (k, c) in dim(b, d).into_iter().flatten() {
            cells.push(cell_pb(d, k, *c));
        }
    }
    pb::AggregateRow {
        area: area.into(),
        total: Some(cell_pb("total", "", b.total)),
        cells,
        investigations: b.investigations,
        prosecutions: b.prosecutions,
        convictions: b.convictions,
    }
}

/// The regional hub's published report as the record it sends up.
pub fn to_aggregate(r: &Report, region: &str, (start, end): (time::Date, time::Date)) -> pb::RegionalAggregate {
    let mut rows: Vec<pb::AggregateRow> = r.countries.iter().map(|(c, b)| row(c, b)).collect();
    rows.push(row("REGION", &r.region));
    pb::RegionalAggregate {
        region: region.into(),
        period_start: start.to_string(),
        period_end: end.to_string(),
        rows,
        reports_used: u32::try_from(r.reports_used).unwrap_or(u32::MAX),
    }
}

fn from_cell(c: &pb::AggregateCell) -> Cell {
    (!c.suppressed).then_some(c.value)
}

/// An aggregate's row as a breakdown (figures as the region published them).
pub fn breakdown(r: &pb::AggregateRow) -> Breakdown {
    let mut b = Breakdown {
        total: r.total.as_ref().and_then(from_cell),
        investigations: r.investigations,
        prosecutions: r.prosecutions,
        convictions: r.convictions,
        ..Default::default()
    };
    for c in &r.cells {
        if let Some(m) = dim_mut(&mut b, &c.dimension) {
            m.insert(c.key.clone(), from_cell(c));
        }
    }
    b
}

/// A received aggregate must arrive already suppressed: a visible figure
/// under the threshold means the sender did not apply the rule.
pub fn validate(a: &pb::RegionalAggregate) -> Result<(), FieldError> {
    let fail = |field: String, reason: String| Err(FieldError { field, reason });
    if a.region.trim().is_empty() || a.region.chars().count() > 100 {
        return fail("regional_aggregate.region".into(), "1-100 characters".into());
    }
    crate::record::parse_date("regional_aggregate.period_start", &a.period_start)?;
    crate::record::parse_date("regional_aggregate.period_end", &a.period_end)?;
    if a.rows.is_empty() || a.rows.len() > 300 {
        return fail("regional_aggregate.rows".into(), "1-300 rows".into());
    }
    for (i, r) in a.rows.iter().enumerate() {
        let f = format!("regional_aggregate.rows[{i}]");
        if r.area != "REGION" && !crate::record::is_country(&r.area) {
            return fail(format!("{f}.area"), format!("{:?} is not a country code or REGION", r.area));
        }
        if r.cells.len() > 2000 {
            return fail(format!("{f}.cells"), "at most 2000 cells".into());
        }
        for (j, c) in r.total.iter().chain(&r.cells).enumerate() {
            let cf = format!("{f}.cells[{j}]");
            if c.dimension != "total" && !DIMENSIONS.contains(&c.dimension.as_str()) {
                return fail(format!("{cf}.dimension"), format!("{:?} is not a dimension", c.dimension));
            }
            if c.key.chars().count() > 64 {
                return fail(format!("{cf}.key"), "at most 64 characters".into());
            }
            if c.suppressed && c.value != 0 {
                return fail(format!("{cf}.value"), "a suppressed cell carries no figure".into());
            }
            if !c.suppressed && c.value > 0 && c.value < THRESHOLD {
                return fail(
                    format!("{cf}.value"),
                    format!("{} is under {THRESHOLD} and must arrive suppressed", c.value),
                );
            }
        }
    }
    Ok(())
}

/// The regions' published rows ("REGION" row of each aggregate covering a
/// span inside the period), keyed by region.
pub fn regions(aggs: &[pb::RegionalAggregate], (from, to): (time::Date, time::Date)) -> BTreeMap<String, Breakdown> {
    let mut out = BTreeMap::new();
    for a in aggs {
        let (Ok(s), Ok(e)) =
            (crate::record::parse_date("", &a.period_start), crate::record::parse_date("", &a.period_end))
        else {
            continue;
        };
        if s < from || e > to {
            continue;
        }
        if let Some(r) = a.rows.iter().find(|r| r.area == "REGION") {
            out.insert(a.region.clone(), breakdown(r));
        }
    }
    out
}

fn sum_cells(cells: &[Cell]) -> Cell {
    cells.iter().try_fold(0u64, |acc, c| c.map(|v| acc.saturating_add(v)))
}

/// The joint row: sums of the regions' rows, hidden where any region hid.
pub fn joint(regions: &BTreeMap<String, Breakdown>) -> Breakdown {
    let totals: Vec<Cell> = regions.values().map(|b| b.total).collect();
    let mut j = Breakdown { total: sum_cells(&totals), ..Default::default() };
    for b in regions.values() {
        j.investigations = j.investigations.saturating_add(b.investigations);
        j.prosecutions = j.prosecutions.saturating_add(b.prosecutions);
        j.convictions = j.convictions.saturating_add(b.convictions);
    }
    for d in DIMENSIONS {
        let mut keys: BTreeMap<String, Vec<Cell>> = BTreeMap::new();
        for b in regions.values() {
            for (k, c) in dim(b, d).into_iter().flatten() {
                keys.entry(k.clone()).or_default().push(*c);
            }
        }
        let out: BTreeMap<String, Cell> = keys.into_iter().map(|(k, cs)| (k, sum_cells(&cs))).collect();
        if let Some(m) = dim_mut(&mut j, d) {
            *m = secondary_hidden(out);
        }
    }
    j
}

/// Adds the regions' published rows and the joint row to a hub's report.
pub fn with_regions(mut r: Report, aggs: &[pb::RegionalAggregate]) -> Result<Report, PeriodError> {
    let period = parse_period(&r.period)?;
    r.regions = regions(aggs, period);
    r.joint = (!r.regions.is_empty()).then(|| joint(&r.regions));
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::report::aggregate;

    fn stats(country: &str, rows: &[(&str, u32)]) -> pb::StatisticsReport {
        pb::StatisticsReport {
            country: country.into(),
            period_start: "2025-01-01".into(),
            period_end: "2025-12-31".into(),
            victims: rows
                .iter()
                .map(|(nat, n)| pb::VictimCount {
                    sex: pb::Sex::Female as i32,
                    age_group: pb::AgeGroup::AgeGroup1217 as i32,
                    nationality: (*nat).into(),
                    exploitation_type: pb::ExploitationType::Labour as i32,
                    count: *n,
                })
                .collect(),
            investigations: 10,
            ..Default::default()
        }
    }

    fn year() -> (time::Date, time::Date) {
        crate::hub::report::parse_period("2025").unwrap()
    }

    #[test]
    fn a_joint_report_never_reveals_what_a_region_hid() {
        let west = aggregate(&[stats("NG", &[("NG", 40), ("BJ", 3)]), stats("BJ", &[("BJ", 20)])], "2025").unwrap();
        let central = aggregate(&[stats("GA", &[("BJ", 22), ("TG", 2)])], "2025").unwrap();
        let up = [to_aggregate(&west, "West Africa", year()), to_aggregate(&central, "Central Africa", year())];
        for a in &up {
            validate(a).unwrap();
            // Nothing under the threshold travels up.
            for r in &a.rows {
                for c in r.total.iter().chain(&r.cells) {
                    assert!(c.suppressed || c.value == 0 || c.value >= THRESHOLD, "{c:?}");
                }
            }
        }
        let regions = regions(&up, year());
        assert_eq!(regions.len(), 2);
        for b in regions.values() {
            assert!(!b.by_nationality.is_empty() && !b.by_sex.is_empty(), "{b:?}");
        }
        let j = joint(&regions);
        // BJ nationality is hidden in West Africa (3 in NG): hidden jointly too.
        assert_eq!(j.by_nationality.get("BJ"), Some(&None));
        assert_eq!(j.by_nationality.get("TG"), Some(&None));
        assert_eq!(j.investigations, 30);
    }

    #[test]
    fn an_unsuppressed_small_figure_is_refused() {
        let west = aggregate(&[stats("NG", &[("NG", 40)])], "2025").unwrap();
        let mut a = to_aggregate(&west, "West Africa", year());
        a.rows[0].cells.push(pb::AggregateCell {
            dimension: "nationality".into(),
            key: "TG".into(),
            value: 2,
            suppressed: false,
        });
        let e = validate(&a).unwrap_err();
        assert!(e.reason.contains("must arrive suppressed"), "{e:?}");
        a.rows[0].cells.pop();
        a.rows[0].area = "Atlantis".into();
        assert_eq!(validate(&a).unwrap_err().field, "regional_aggregate.rows[0].area");
    }
}
