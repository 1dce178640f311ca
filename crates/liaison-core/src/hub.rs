//! The pure halves of a regional hub's work: the regional statistics report
//! (and the joint report of a hub above hubs), the SOP-compliance
//! indicators, the members' reporting duties, and the order relayed
//! messages are forwarded in.

pub mod indicators;
pub mod joint;
pub mod relay;
pub mod report;
pub mod reporting;
