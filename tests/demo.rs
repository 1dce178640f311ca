//! End to end: every built-in scenario starts its federation (real servers on
//! 127.0.0.1 with mutual TLS) and runs its walk-through with `--exit`; and
//! without `--exit` the federation stays up for the CLI until SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_liaison");

fn walk(scenario: &str) -> String {
    let out = Command::new(BIN).args(["demo", "--scenario", scenario, "--exit"]).output().expect("run liaison demo");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "demo {scenario} failed\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for always in ["Summary", "Exchanged (", "Refused (", "every chain intact", "Reach the nodes"] {
        assert!(stdout.contains(always), "{scenario}: no {always:?} in\n{stdout}");
    }
    stdout
}

fn has(out: &str, scenario: &str, needles: &[&str]) {
    for n in needles {
        assert!(out.contains(n), "{scenario}: expected {n:?} in\n{out}");
    }
}

#[test]
fn commit_mekong_walks_through_everything_the_brief_promises() {
    let out = walk("commit-mekong");
    has(
        &out,
        "commit-mekong",
        &[
            "signed by all 7 parties, active, monitored by commit-hub",
            "th-atpd joined; directory v6 pinned",
            "found 6 entries for “duty desk” in the regional directory",
            "entity Sok Vanna (KH) [redacted: entity.evidence_basis]",
            "kh-antht refused th-atpd's query: denied here (purpose_not_granted)",
            "HIT at kh-antht for passport:N0123456",
            "ir-th-fishing delivered to mm-atipd under mm-th-mou",
            "th-atpd may not share ir-th-fishing with cn-yn-psd: denied (operation_not_granted)",
            "la-dcta routes everything for vn-c02 through commit-hub",
            "Nam Phao border liaison office — Anti-Human Trafficking Department, Ministry of Public Security (LA) arrived at vn-c02 through commit-hub",
            "commit-hub's log: ",
            "escalated once to kh-antht's unit head, Pol. Maj. Gen. Dara Sok",
            "return planned blocked — safeguard missing: best_interest_determination",
            "returned (handed over to the receiving social workers)",
            "kh-antht records reintegration follow-up",
            "# Regional report — 2025",
            "| REGION |",
            "th-atpd → kh-antht: 1 request(s), 0% acknowledged on time",
        ],
    );
    // Nothing on screen shows the boy's name: the hub's report and the
    // narration carry pseudonyms and counts only.
    assert!(!out.contains("Chea Rith"), "a victim's name reached the narration");
}

#[test]
fn saarc_members_learn_each_other_only_from_the_task_force() {
    let out = walk("saarc");
    has(
        &out,
        "saarc",
        &[
            "signed by all 9 parties, active, monitored by saarc-rtf",
            "in-ahtu answered np-ahtb's investigation query",
            "HIT at in-ahtu for phone:",
            "in-ahtu refused pk-fia's query: denied here (operation_not_granted)",
            "escalated once to in-ahtu's focal point, Shri R. Menon",
            "return planned blocked — safeguard missing: risk_assessment",
            "# Regional report — 2025",
        ],
    );
    assert!(!out.contains("Units swap node cards"), "no pairwise card exchange in SAARC");
}

#[test]
fn ecowas_eccas_runs_two_hubs_and_the_bilateral_child_protection_agreements() {
    let out = walk("ecowas-eccas");
    has(
        &out,
        "ecowas-eccas",
        &[
            "ecowas-eccas-mca",
            "ng-bj-child-protection",
            "ml-sn-child-protection",
            "ecowas-hub signed member directory version 6",
            "eccas-hub signed member directory version 3",
            "HIT at ng-naptip for passport:A07755331",
            "best_interest_determination",
            "escalated once to bj-ocpm's central authority, no contact on file",
            "legal framework",
        ],
    );
    assert_eq!(out.matches("# Regional report — 2025").count(), 2, "one report per hub");
}

#[test]
fn asean_units_pin_each_other_directly() {
    let out = walk("asean");
    has(
        &out,
        "asean",
        &[
            "signed by all 10 parties, active",
            "ph-nbi answered my-rmp's investigation query",
            "HIT at ph-nbi for phone:",
            "ir-ph-scam-recruitment delivered to id-bareskrim",
            "ph-nbi refused sg-spf's query: denied here (kind_not_granted)",
            "escalated once to id-bareskrim's unit head",
        ],
    );
}

#[test]
fn kh_vn_returns_a_child_only_when_every_safeguard_is_met() {
    let out = walk("kh-vn");
    has(
        &out,
        "kh-vn",
        &[
            "escalated once to vn-c02's focal point, Lt. Col. Nguyen Thi Hoa",
            "vr-kh-2026-0311 delivered to vn-c02 under kh-vn-victim-return",
            "return planned blocked — safeguard missing: best_interest_determination",
            "return planned blocked — safeguard missing: voluntariness",
            "vn-c02 records reintegration follow-up",
        ],
    );
}

#[test]
fn bali_process_embassies_share_intelligence_and_an_ngo_desk_gets_none() {
    let out = walk("bali-process");
    has(
        &out,
        "bali-process",
        &[
            "denied (role_may_not_receive)",
            "id-ngo-desk (role: NGO referral desk) may receive only contact_point, victim_referral",
        ],
    );
}

#[test]
fn a_transnational_referral_ends_in_a_stay_a_return_through_transit_an_asylum_referral_and_services() {
    let out = walk("transnational-referral");
    has(
        &out,
        "transnational-referral",
        &[
            "residence permit blocked — safeguard missing: best_interest_determination",
            "residence permit (she stays, with a residence permit)",
            "asylum referral blocked — safeguard missing: asylum_referral",
            "(transit: ro-dcco)",
            "ro-dcco escorts her through its territory and records the in-transit step",
            "returned (handed over to the receiving social workers)",
            "service referral (referred to a service provider",
            "no return will be planned",
        ],
    );
}

#[test]
fn ecowas_eccas_joint_commission_sees_who_reported_and_what_each_region_published() {
    let out = walk("ecowas-eccas-joint");
    has(
        &out,
        "ecowas-eccas-joint",
        &[
            "ng-naptip annual_country_report: 2025 on time",
            "sn-cnltp annual_country_report: 2025 late",
            "ga-dgdi annual_country_report: 2025 missing",
            "joint-commission found 5 entries",
            "reached joint-commission: the region's rows as published",
            "# Joint report — 2025",
            "| JOINT | 1253 |",
        ],
    );
}

#[test]
fn see_exchange_shows_members_that_did_not_report() {
    let out = walk("see-exchange");
    has(&out, "see-exchange", &["annual_statistics_report: 2025 on time", "2025 late", "2025 missing"]);
}

#[test]
fn oas_points_of_contact_exchange_training_information_and_an_nhri_sees_aggregates_only() {
    let out = walk("oas-contacts");
    has(
        &out,
        "oas-contacts",
        &["training information", "(role: national human rights institution) may receive only statistics_report"],
    );
}

#[test]
fn las_hub_refers_pseudonymised_victims_to_its_ngo_and_keeps_intelligence_from_it() {
    let out = walk("las-hub");
    has(&out, "las-hub", &["pseudonymised", "las-ngo (role: NGO referral desk) may receive only"]);
}

#[test]
fn without_exit_the_federation_stays_up_for_the_cli_until_sigterm() {
    let root = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args(["demo", "--scenario", "kh-vn", "--root", &root.path().display().to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn demo");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains("Press Ctrl-C") {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(120)).expect("the walk-through finishes and waits");

    // The nodes answer the ordinary CLI while the demo waits.
    let dir = root.path().join("vn-c02");
    let out = Command::new(BIN)
        .args(["--dir", &dir.display().to_string(), "--json", "case", "list"])
        .output()
        .expect("run liaison case list");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("CASE_STAGE_REINTEGRATION_FOLLOW_UP"));

    let status = Command::new("bash").args(["-c", &format!("kill -TERM {}", child.id())]).status().unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            assert!(s.success(), "demo exits cleanly on SIGTERM: {s}");
            break;
        }
        assert!(Instant::now() < deadline, "demo did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!root.path().join("vn-c02").join("run.toml").exists(), "every node shut down and removed run.toml");
}
