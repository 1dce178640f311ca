//! The pure halves of a regional hub's work: the regional statistics report
//! and the SOP-compliance indicators.

pub mod indicators;
pub mod report;
