//! The pure halves of a regional hub's work: the regional statistics report
//! (and the joint report of a hub above hubs), the SOP-compliance
//! indicators and the members' reporting duties.

pub mod indicators;
pub mod joint;
pub mod report;
pub mod reporting;
