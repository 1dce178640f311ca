//! Multi-node sandbox for integration tests: real `liaison` processes on
//! 127.0.0.1 with real mutual TLS, each in its own temporary directory.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use liaison::pb;
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Request, Status};

pub(crate) mod clients;
pub(crate) mod fake_peer;
pub(crate) mod slow_link;

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_liaison");

/// A free port below the kernel's ephemeral range (32768+), so outgoing
/// connections of running nodes can never take it before its node binds it.
pub(crate) fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let base = 20_000 + (std::process::id() % 600) * 20;
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (base + n % 12_000) as u16;
        let port = if port >= 32_000 { port - 12_000 } else { port };
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

pub(crate) struct TestNode {
    pub id: String,
    pub dir: PathBuf,
    pub fed: SocketAddr,
    pub api: SocketAddr,
    pub metrics: SocketAddr,
    pub token: String,
    child: Option<Child>,
    pub env: Vec<(String, String)>,
}

impl TestNode {
    /// `liaison init` with fixed free ports so restarts keep their addresses.
    pub(crate) fn init(root: &Path, id: &str, country: &str) -> TestNode {
        Self::init_role(root, id, country, "national")
    }

    pub(crate) fn init_role(root: &Path, id: &str, country: &str, role: &str) -> TestNode {
        let (node, out) = Self::init_with(root, id, country, role, &[], &[]);
        node.unwrap_or_else(|| panic!("init failed: {}", String::from_utf8_lossy(&out.stderr)))
    }

    /// `liaison init` with extra arguments and environment; the node, or
    /// None when init failed, and init's output.
    pub(crate) fn init_with(
        root: &Path,
        id: &str,
        country: &str,
        role: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> (Option<TestNode>, Output) {
        liaison::tls::install_provider();
        let dir = root.join(id);
        let fed: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let api: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let mut args: Vec<String> = vec![
            "--dir".into(),
            dir.display().to_string(),
            "init".into(),
            "--id".into(),
            id.into(),
            "--name".into(),
            format!("Unit {id}"),
            "--organisation".into(),
            "Test police".into(),
            "--role".into(),
            role.into(),
            "--listen".into(),
            fed.to_string(),
            "--api-listen".into(),
            api.to_string(),
            "--metrics-listen".into(),
            metrics.to_string(),
            // Any free port: tests run many nodes side by side.
            "--console-listen".into(),
            "127.0.0.1:0".into(),
        ];
        if country.len() == 2 {
            args.extend(["--country".into(), country.into()]);
        } else {
            args.extend(["--region".into(), country.into()]);
        }
        args.extend(extra.iter().map(|a| a.to_string()));
        let out = Command::new(BIN).args(&args).envs(env.iter().copied()).output().expect("run liaison init");
        if !out.status.success() {
            return (None, out);
        }
        let token = std::fs::read_to_string(dir.join("admin.token")).unwrap().trim().to_string();
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        (Some(TestNode { id: id.into(), dir, fed, api, metrics, token, child: None, env }), out)
    }

    /// Starts `liaison run` and waits until its API answers.
    pub(crate) fn start(&mut self) {
        assert!(self.child.is_none(), "already running");
        let _ = std::fs::remove_file(self.dir.join("run.toml"));
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join("node.log")).unwrap();
        let mut cmd = Command::new(BIN);
        cmd.args(["--dir", &self.dir.display().to_string(), "run"])
            .env("LIAISON_LOG", "info,liaison=debug")
            .stdout(Stdio::null())
            .stderr(log);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn liaison run");
        let pid = child.id();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(text) = std::fs::read_to_string(self.dir.join("run.toml")) {
                if text.contains(&format!("pid = {pid}")) {
                    break;
                }
            }
            if let Some(Some(status)) = self.child.as_mut().map(|c| c.try_wait().ok().flatten()) {
                panic!("node {} exited at start: {status}\n{}", self.id, self.log());
            }
            assert!(Instant::now() < deadline, "node {} did not start:\n{}", self.id, self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("node.log")).unwrap_or_default()
    }

    /// SIGKILL: no chance to flush or clean up.
    pub(crate) fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub(crate) fn stop(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("not running");
        let _ = Command::new("bash").args(["-c", &format!("kill -TERM {}", c.id())]).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(st)) = c.try_wait() {
                return st;
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                panic!("node {} did not stop on SIGTERM", self.id);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the node to exit by itself (a crash the test caused).
    pub(crate) fn wait_exit(&mut self, secs: u64) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("not running");
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Ok(Some(st)) = c.try_wait() {
                return st;
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                panic!("node {} did not exit within {secs} s", self.id);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Restarts the node so that it aborts right after committing the next
    /// write that audits `action` (debug builds' `LIAISON_CRASH_AFTER`).
    pub(crate) fn arm_crash(&mut self, action: &str) {
        self.stop();
        self.env.retain(|(k, _)| k != liaison::store::CRASH_VAR);
        self.env.push((liaison::store::CRASH_VAR.into(), action.into()));
        self.start();
    }

    /// After the armed crash: waits for the exit, then starts it normally.
    pub(crate) fn restart_after_crash(&mut self) {
        let status = self.wait_exit(30);
        assert!(!status.success(), "node {} exited cleanly instead of crashing", self.id);
        self.env.retain(|(k, _)| k != liaison::store::CRASH_VAR);
        self.start();
    }

    pub(crate) fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Runs the CLI against this node.
    pub(crate) fn cli(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(BIN);
        cmd.args(["--dir", &self.dir.display().to_string()]).args(args);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.output().expect("run liaison")
    }

    /// Runs the CLI and returns stdout, panicking with stderr on failure.
    pub(crate) fn cli_ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "liaison {} failed on {}:\nstdout: {}\nstderr: {}",
            args.join(" "),
            self.id,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub(crate) fn cli_json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        serde_json::from_str(&self.cli_ok(&a)).expect("JSON output")
    }

    /// Exports this node's card to `<dir>/../<id>.card.json`.
    pub(crate) fn card_file(&self) -> PathBuf {
        let path = self.dir.parent().unwrap().join(format!("{}.card.json", self.id));
        self.cli_ok(&["card", "export", "--out", &path.display().to_string()]);
        path
    }

    /// This node's card as exported, verified.
    pub(crate) fn card(&self) -> pb::NodeCard {
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(self.card_file()).unwrap()).unwrap();
        liaison::identity::verify_card(&serde_json::from_value(v["envelope"].clone()).unwrap()).unwrap()
    }

    pub(crate) async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.api)).unwrap().connect().await.expect("connect API")
    }

    pub(crate) async fn authed(&self) -> InterceptedService<Channel, Bearer> {
        self.authed_with(&self.token).await
    }

    pub(crate) async fn authed_with(&self, token: &str) -> InterceptedService<Channel, Bearer> {
        InterceptedService::new(self.channel().await, Bearer(format!("Bearer {token}").parse().unwrap()))
    }

    pub(crate) async fn records(
        &self,
    ) -> pb::record_service_client::RecordServiceClient<InterceptedService<Channel, Bearer>> {
        pb::record_service_client::RecordServiceClient::new(self.authed().await)
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        self.kill();
    }
}

#[derive(Clone)]
pub(crate) struct Bearer(pub MetadataValue<tonic::metadata::Ascii>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        req.metadata_mut().insert("authorization", self.0.clone());
        Ok(req)
    }
}

/// Pins each node's card on every other node.
pub(crate) fn pin_all(nodes: &[&TestNode]) {
    let cards: Vec<PathBuf> = nodes.iter().map(|n| n.card_file()).collect();
    for (i, n) in nodes.iter().enumerate() {
        for (j, card) in cards.iter().enumerate() {
            if i != j {
                n.cli_ok(&["peer", "add", &card.display().to_string()]);
            }
        }
    }
}

/// Field named in a status's BadRequest detail.
pub(crate) fn bad_field(s: &Status) -> Option<String> {
    use tonic_types::StatusExt;
    s.get_details_bad_request().and_then(|b| b.field_violations.first().map(|v| v.field.clone()))
}

/// A valid contact point record.
pub(crate) fn contact_point(id: &str, name: &str) -> pb::Record {
    pb::Record {
        id: id.into(),
        handling: pb::HandlingCode::Green as i32,
        body: Some(pb::record::Body::ContactPoint(pb::ContactPoint {
            name: name.into(),
            role: pb::ContactRole::UnitHead as i32,
            agency: "Anti-Trafficking in Persons Division".into(),
            country: "TH".into(),
            languages: vec!["th".into(), "en".into()],
            channels: vec![
                pb::Channel { r#type: pb::ChannelType::Phone as i32, value: "+66 2 123 4567".into() },
                pb::Channel { r#type: pb::ChannelType::Email as i32, value: "atpd@police.example.th".into() },
            ],
            availability: Some(pb::Availability {
                always: true,
                hours: String::new(),
                time_zone: "Asia/Bangkok".into(),
            }),
            last_verified: "2026-10-01".into(),
            office: false,
        })),
        ..Default::default()
    }
}

/// GET /metrics from the node's Prometheus exporter.
pub(crate) fn scrape(node: &TestNode) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(node.metrics).expect("connect metrics");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// Drafts `toml` on the first node, proposes it, and has every other node accept it.
pub(crate) fn activate(nodes: &[&TestNode], toml: &str, id: &str) {
    let file = nodes[0].dir.parent().unwrap().join(format!("{id}-{}.toml", free_port()));
    std::fs::write(&file, toml).unwrap();
    nodes[0].cli_ok(&["agreement", "draft", &file.display().to_string()]);
    nodes[0].cli_ok(&["agreement", "propose", id]);
    for n in &nodes[1..] {
        n.cli_ok(&["agreement", "accept", id]);
    }
    for n in nodes {
        let state = n.cli_json(&["agreement", "show", id])["agreement"]["state"].as_str().unwrap().to_string();
        assert_eq!(state, "AGREEMENT_STATE_ACTIVE", "{id} on {}", n.id);
    }
}

/// A bilateral agreement between `a` and `b` with the given grants (TOML `[[grants]]` blocks).
pub(crate) fn bilateral(id: &str, a: &str, b: &str, retention_days: u32, grants: &str) -> String {
    format!(
        r#"
id = "{id}"
version = 1
title = "Test MOU {id}"
legal_basis = "Test"
parties = ["{a}", "{b}"]
valid_from = "2026-01-01"
valid_until = "2036-01-01"

[retention]
days = {retention_days}
purge_on_revoke = true

[sop]
name = "Test SOP"

[[sop.request_types]]
name = "information_request"
ack_within = "24h"
answer_within = "7d"
urgent_ack_within = "8h"
urgent_answer_within = "3d"
escalation_role = "unit_head"

{grants}
"#
    )
}

/// Grants like the COMMIT-style MOU template, both ways.
pub(crate) const MOU_GRANTS: &str = r#"
[[grants]]
from = "*"
to = "*"
record_kinds = ["contact_point"]
purposes = ["coordination"]
operations = ["query", "sync", "push"]
max_handling = "green"
onward_sharing = "allowed"

[[grants]]
from = "*"
to = "*"
record_kinds = ["intelligence_report", "entity"]
purposes = ["investigation"]
operations = ["query", "hit_check", "push"]
max_handling = "amber"
redacted_fields = ["entity.evidence_basis"]
onward_sharing = "with_consent"

[[grants]]
from = "*"
to = "*"
record_kinds = ["victim_referral"]
purposes = ["victim_identification", "return_and_reintegration"]
operations = ["push", "query"]
max_handling = "red"
released_protected_fields = ["victim_referral.identity"]
onward_sharing = "forbidden"
"#;

/// Creates a record through the API and returns it.
/// A Vietnamese child identified in Cambodia, referred for return.
pub(crate) fn child_referral() -> pb::Record {
    let mut r = liaison::record::examples::victim_referral();
    r.id = "vr-child-1".into();
    if let Some(pb::record::Body::VictimReferral(v)) = r.body.as_mut() {
        v.child = true;
        v.age_group = pb::AgeGroup::AgeGroup1217 as i32;
        v.nationality = "VN".into();
        v.identified_in = "KH".into();
        v.reflection_period_start = "2026-11-01".into();
    }
    r
}

pub(crate) async fn create(node: &TestNode, rec: pb::Record) -> pb::Record {
    let mut c = node.records().await;
    c.create_record(pb::CreateRecordRequest { record: Some(rec), ..Default::default() })
        .await
        .expect("create")
        .into_inner()
        .record
        .unwrap()
}

/// Waits until `f` is true (polling), panicking with `what` after `secs`.
pub(crate) fn wait_for(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `liaison request send` of an information request for an investigation; returns the request id.
pub(crate) fn send_information_request(from: &TestNode, to: &str, subject: &str) -> String {
    let sent = from.cli_json(&[
        "request",
        "send",
        "--to",
        to,
        "--type",
        "information_request",
        "--purpose",
        "investigation",
        "--subject",
        subject,
    ]);
    sent["id"].as_str().expect("request id").to_string()
}

/// Thailand and Cambodia running, pinned to each other, under an active
/// bilateral MOU with `MOU_GRANTS`: the starting point of most two-node tests.
pub(crate) fn th_kh_under_mou(root: &Path) -> (TestNode, TestNode) {
    let mut th = TestNode::init(root, "th-atpd", "TH");
    let mut kh = TestNode::init(root, "kh-antht", "KH");
    th.start();
    kh.start();
    pin_all(&[&th, &kh]);
    activate(&[&th, &kh], &bilateral("th-kh", "th-atpd", "kh-antht", 365, MOU_GRANTS), "th-kh");
    (th, kh)
}

/// Now, as a protobuf timestamp.
pub(crate) fn now_ts() -> pbjson_types::Timestamp {
    liaison::convert::timestamp(time::OffsetDateTime::now_utc())
}

/// A record as its originator would sign it (what a hostile peer sends).
pub(crate) fn originated(by: &str, mut rec: pb::Record) -> pb::Record {
    rec.originator = by.into();
    rec.version = 1;
    rec.create_time = Some(now_ts());
    rec.update_time = Some(now_ts());
    rec
}

/// Cambodia and Viet Nam, pinned to each other, under the KH–VN joint SOP
/// template (`kh-vn-victim-return`).
pub(crate) fn kh_vn_under_sop(root: &Path) -> (TestNode, TestNode) {
    let mut nodes = under_victim_return_sop(root, &[("kh-antht", "KH"), ("vn-c02", "VN")]).into_iter();
    let (Some(kh), Some(vn)) = (nodes.next(), nodes.next()) else { unreachable!("two nodes were started") };
    (kh, vn)
}

/// The KH–VN joint SOP (`kh-vn-victim-return`) with `nodes` as its parties
/// (e.g. a transit country beside KH and VN), each started and pinned.
pub(crate) fn under_victim_return_sop(root: &Path, nodes: &[(&str, &str)]) -> Vec<TestNode> {
    let mut started: Vec<TestNode> = nodes.iter().map(|(id, country)| TestNode::init(root, id, country)).collect();
    for n in &mut started {
        n.start();
    }
    let refs: Vec<&TestNode> = started.iter().collect();
    pin_all(&refs);
    let parties: Vec<String> = nodes.iter().map(|(id, _)| format!("{id:?}")).collect();
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/agreements/kh-vn-victim-return.toml"))
            .unwrap()
            .replace(r#"parties = ["kh-antht", "vn-c02"]"#, &format!("parties = [{}]", parties.join(", ")));
    activate(&refs, &text, "kh-vn-victim-return");
    started
}

/// A hostile peer: `attacker`'s own pinned certificate and signing key, with a
/// raw federation client to `target`. It ignores the attacker's node, its
/// agreements and its policy: whatever a test sends goes straight to the
/// target's federation port over real mutual TLS.
pub(crate) struct Hostile {
    pub identity: liaison::identity::Identity,
    pub client: pb::federation_service_client::FederationServiceClient<Channel>,
}

impl Hostile {
    pub(crate) fn new(attacker: &TestNode, target: &TestNode) -> Hostile {
        liaison::tls::install_provider();
        let identity = liaison::identity::Identity::load(&liaison::config::Layout::new(&attacker.dir)).unwrap();
        let channel = liaison::federation::dial(&identity, &target.card()).unwrap();
        Hostile { identity, client: pb::federation_service_client::FederationServiceClient::new(channel) }
    }

    /// Signs `msg` as the attacker (a valid signature by a pinned key).
    pub(crate) fn seal<M: prost::Message>(&self, payload_type: &str, msg: &M) -> pb::Envelope {
        liaison::envelope::seal(payload_type, msg, self.identity.id(), &self.identity.signing_key)
    }

    /// A record originated and signed by the attacker, as a share would carry it.
    pub(crate) fn shared(&self, rec: &pb::Record, agreement: &str) -> pb::SharedRecord {
        pb::SharedRecord {
            record: Some(self.seal(liaison::envelope::payload::RECORD, rec)),
            agreement_id: agreement.into(),
            agreement_version: 1,
            onward_sharing: pb::OnwardSharing::Forbidden as i32,
            retention_days: 0,
        }
    }

    /// A step on request `id` as the attacker's node would make it, following
    /// the other node's first step (its submit).
    pub(crate) fn step(&self, id: &str, seq: u64, t: pb::Transition, text: &str) -> pb::RequestEvent {
        pb::RequestEvent {
            request_id: id.into(),
            actor: self.identity.id().into(),
            seq,
            transition: t as i32,
            time: Some(liaison::convert::timestamp(time::OffsetDateTime::now_utc())),
            text: text.into(),
            peer_seq: 1,
            ..Default::default()
        }
    }

    /// Signs and delivers a request step; the target's signed receipt, decoded.
    pub(crate) async fn deliver_step(&mut self, ev: &pb::RequestEvent) -> Result<pb::Receipt, Status> {
        let req = pb::DeliverRequestEventRequest {
            delivery_id: liaison::exchange::random_id("dlv"),
            event: Some(self.seal(liaison::envelope::payload::REQUEST_EVENT, ev)),
        };
        let r = self.client.deliver_request_event(req).await?.into_inner();
        Ok(liaison::envelope::decode::<pb::Receipt>(&r.receipt.expect("a receipt")).expect("a signed receipt"))
    }
}

/// A request's state on `n` (`REQUEST_STATE_…`), or "" while it has none.
pub(crate) fn request_state(n: &TestNode, id: &str) -> String {
    let out = n.cli(&["--json", "request", "show", id]);
    if !out.status.success() {
        return String::new();
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    v["state"].as_str().unwrap_or_default().to_string()
}

/// Copies a directory tree (a stopped node's store, as a backup would).
pub(crate) fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let target = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &target);
        } else {
            std::fs::copy(&p, &target).unwrap();
        }
    }
}

/// Every outbox item of `n` (`outbox --all`) except agreement documents and
/// notices, which travel through the same outbox.
pub(crate) fn deliveries(n: &TestNode) -> Vec<serde_json::Value> {
    let all = n.cli_json(&["outbox", "--all"])["items"].as_array().cloned().unwrap_or_default();
    all.into_iter()
        .filter(|i| i["action"] != "OUTBOX_ACTION_AGREEMENT" && i["action"] != "OUTBOX_ACTION_AGREEMENT_NOTICE")
        .collect()
}

/// Audit entries of `node` whose action starts with `prefix` (the first 1000).
pub(crate) fn audit_entries(node: &TestNode, prefix: &str) -> Vec<serde_json::Value> {
    let v = node.cli_json(&["audit", "list", "--action", prefix, "--limit", "1000"]);
    v["entries"].as_array().cloned().unwrap_or_default()
}

/// Changes a stopped node's `node.toml`.
pub(crate) fn configure(n: &TestNode, f: impl FnOnce(&mut liaison::config::NodeConfig)) {
    let layout = liaison::config::Layout::new(&n.dir);
    let mut cfg = liaison::config::NodeConfig::load(&layout).unwrap();
    f(&mut cfg);
    std::fs::write(layout.config(), toml::to_string(&cfg).unwrap()).unwrap();
}

/// The COMMIT-Mekong membership MOU between a hub and its members: contact
/// points everywhere, statistics to the hub, intelligence among members.
pub(crate) fn hub_membership(hub: &str, members: &[&str]) -> String {
    let parties: Vec<String> =
        std::iter::once(hub).chain(members.iter().copied()).map(|p| format!("\"{p}\"")).collect();
    format!(
        r#"
id = "commit-membership"
version = 1
title = "COMMIT-Mekong membership and information-sharing MOU"
legal_basis = "COMMIT MOU (2004)"
parties = [{}]
valid_from = "2026-01-01"
valid_until = "2036-01-01"
hub = "{hub}"

[retention]
days = 365
purge_on_revoke = true

[sop]
name = "COMMIT SOP on information and intelligence sharing"

[[sop.request_types]]
name = "information_request"
ack_within = "24h"
answer_within = "7d"
urgent_ack_within = "8h"
urgent_answer_within = "3d"
escalation_role = "unit_head"

[[grants]]
from = "*"
to = "*"
record_kinds = ["contact_point"]
purposes = ["coordination"]
operations = ["query", "sync", "push"]
max_handling = "green"
onward_sharing = "allowed"

[[grants]]
from = "*"
to = "{hub}"
record_kinds = ["statistics_report"]
purposes = ["statistics_and_reporting"]
operations = ["push"]
max_handling = "green"
onward_sharing = "forbidden"

[[grants]]
from = "*"
to = "*"
record_kinds = ["intelligence_report"]
purposes = ["investigation"]
operations = ["query", "push"]
max_handling = "amber"
onward_sharing = "forbidden"
"#,
        parties.join(", ")
    )
}

/// The receiving side confirms the identification once the case reached it,
/// and the sending side sees the step.
pub(crate) fn confirm_identification(receiving: &TestNode, sending: &TestNode, case: &str) {
    wait_for(30, "the case at the receiving node", || receiving.cli(&["case", "show", case]).status.success());
    receiving.cli_ok(&["case", "advance", case, "--to", "identification_confirmed", "--note", "nationality verified"]);
    wait_for(30, "the confirmation at the sending node", || {
        sending.cli_json(&["case", "show", case])["case"]["stage"] == "CASE_STAGE_IDENTIFICATION_CONFIRMED"
    });
}

/// A one-line statistics report for `country` (`count` victims), created
/// at `n` and shared with `hub` for its regional report.
pub(crate) async fn report_statistics(n: &TestNode, hub: &str, country: &str, count: u32) {
    let mut r = liaison::record::examples::statistics_report();
    r.id = format!("sr-{}", country.to_lowercase());
    if let Some(pb::record::Body::StatisticsReport(s)) = r.body.as_mut() {
        s.country = country.into();
        s.victims.truncate(1);
        s.victims[0].count = count;
    }
    create(n, r.clone()).await;
    n.cli_ok(&["record", "share", &r.id, "--to", hub, "--purpose", "statistics_and_reporting"]);
}

/// Waits until `node` holds the record `key` (read masked: no view audited).
pub(crate) fn wait_for_record(node: &TestNode, key: &str) {
    wait_for(30, &format!("{key} at {}", node.id), || {
        futures::executor::block_on(async {
            let req = pb::GetRecordRequest { id: key.into(), masked: true, ..Default::default() };
            node.records().await.get_record(req).await.is_ok()
        })
    });
}

/// The python of the exchange-format tools' venv (`tests/tools/formats_venv.sh`,
/// installed once from PyPI).
pub(crate) fn formats_python() -> &'static str {
    static PY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PY.get_or_init(|| {
        let out = std::process::Command::new("bash")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tools/formats_venv.sh"))
            .output()
            .expect("run tests/tools/formats_venv.sh");
        assert!(out.status.success(), "installing the format tools failed:\n{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).lines().last().expect("python path").trim().to_string()
    })
}
