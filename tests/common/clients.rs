//! What both client kits (examples/python, examples/node) must show: they
//! print the same lines for the same daily operations, checked here once.

use super::TestNode;

/// A new integrator user on `node`, and its token (never the admin's).
pub(crate) fn integrator_token(node: &TestNode, name: &str) -> String {
    let created = node.cli_json(&["user", "add", name, "--role", "integrator"]);
    assert_eq!(created["user"]["role"], "USER_ROLE_INTEGRATOR", "{created}");
    let token = created["token"].as_str().expect("the token, printed once").to_string();
    assert_ne!(token, node.token, "not the admin token");
    token
}

/// The text after `prefix` on the first output line that starts with it.
pub(crate) fn line_after<'a>(out: &'a str, prefix: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.trim_start().strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no line starting with {prefix:?} in:\n{out}"))
}

/// Checks a client's report of the daily operations against TH with KH as
/// the peer: import (3 of 4, `ours` in order) and its retry, query, hit
/// check, request and feed; `done` is its last line. Returns the request id
/// and the hit reference it cites.
pub(crate) fn daily_operations<'a>(out: &'a str, ours: [&str; 3], done: &str) -> (&'a str, &'a str) {
    // Import, and the retry with the same request_id answered from the first call.
    assert!(out.contains("imported 3 of 4"), "{out}");
    assert!(out.contains("problem in record 3: record.contact_point.country"), "{out}");
    let ids: Vec<&str> = line_after(out, "retry answered the same: stored 3, ids ").split(", ").collect();
    assert_eq!(ids.len(), 3, "{out}");
    for (got, want) in ids.iter().zip(ours) {
        assert!(got.ends_with(want), "stored_ids in request order: {ids:?}");
    }
    // Query, hit/no-hit (normalised on both sides), request citing the hit.
    assert!(out.contains("query kh-antht: PEER_OUTCOME_ANSWERED 1 record(s)"), "{out}");
    assert!(out.contains("kh-antht/cp-kh-duty: AHTJP duty desk"), "{out}");
    assert!(out.contains("check kh-antht: PEER_OUTCOME_ANSWERED"), "{out}");
    let hit = line_after(out, "passport:N0123456: hit, reference ").trim();
    assert!(hit.starts_with("hit-"), "{out}");
    assert!(out.contains("passport:X9999999: no hit"), "{out}");
    assert!(!out.contains("Sok Dara"), "no record content crosses in a hit check: {out}");
    let sent = line_after(out, "request ");
    let (id, rest) = sent.split_once(": ").unwrap_or_else(|| panic!("request line: {sent}"));
    assert_eq!(rest, "REQUEST_STATE_SUBMITTED (information_request to kh-antht)", "{out}");
    // The feed showed each record created; the client finished.
    for rid in ours {
        assert!(out.contains(&format!("CHANGE_TYPE_RECORD_CREATED th-atpd/{rid}")), "watch saw {rid}: {out}");
    }
    assert!(out.contains(done), "{out}");
    (id, hit)
}
