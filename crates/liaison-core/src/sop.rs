//! SOP requests and the victim referral and return workflow, as pure state
//! machines: no IO, time passed in.
//!
//! SOP terms map to deadlines like this: the request type names a
//! `RequestTypeTerms` entry in the agreement's SOP; `ack_due` is the submit
//! time plus `ack_within` (or `urgent_ack_within` for urgent requests) and
//! `answer_due` the submit time plus `answer_within` (or its urgent
//! variant). When a deadline passes with the request still waiting for that
//! step, the request is overdue and escalates once per deadline to the
//! contact-point role the terms name.

pub mod request;
pub mod victim;
