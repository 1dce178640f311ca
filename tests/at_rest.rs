//! Encryption at rest (issue 12, item 8): a copy of a node's `store/`
//! reveals no victim name, identity document or identifier; the node refuses
//! to start with a wrong or missing key; a store restored from a backup opens
//! with its key and only with it; a store written before encryption at rest is
//! encrypted on its first start with a key.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{configure, copy_dir, create, wait_for, TestNode};
use liaison::config::{Layout, NodeConfig, Storage};
use liaison::pb;
use liaison::record::examples;
use tonic::Code;

const VICTIM: &str = "Ratana Phetcharat";
const VICTIM_DOCUMENT: &str = "AC9917342";
const BROKER: &str = "Boonmee Srisawat";
const BROKER_PASSPORT: &str = "KX 5512 0987";
const BROKER_PASSPORT_NORMALISED: &str = "KX55120987";
const BROKER_PHONE_NORMALISED: &str = "+66815550199";

fn victim(id: &str) -> pb::Record {
    let mut r = examples::victim_referral();
    r.id = id.into();
    if let Some(pb::record::Body::VictimReferral(v)) = r.body.as_mut() {
        if let Some(i) = v.identity.as_mut() {
            i.full_name = VICTIM.into();
            i.identity_document = format!("Passport {VICTIM_DOCUMENT}");
        }
    }
    r
}

fn broker(id: &str) -> pb::Record {
    let mut r = examples::entity();
    r.id = id.into();
    if let Some(pb::record::Body::Entity(e)) = r.body.as_mut() {
        e.names = vec![BROKER.into()];
        e.identifiers[0].value = BROKER_PASSPORT.into();
        e.identifiers[1].value = "+66 81 555 0199".into();
    }
    r
}

/// What must never be found in a store's files.
fn secrets() -> Vec<&'static [u8]> {
    vec![
        VICTIM.as_bytes(),
        VICTIM_DOCUMENT.as_bytes(),
        BROKER.as_bytes(),
        BROKER_PASSPORT.as_bytes(),
        BROKER_PASSPORT_NORMALISED.as_bytes(),
        BROKER_PHONE_NORMALISED.as_bytes(),
    ]
}

/// Files under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else if std::fs::read(&p).unwrap().windows(needle.len()).any(|w| w == needle) {
                hits.push(p);
            }
        }
    }
    hits
}

fn assert_reveals_nothing(store: &Path) {
    assert!(store.join("db").is_file(), "{} holds no sled database", store.display());
    for s in secrets() {
        let hits = files_containing(store, s);
        assert!(hits.is_empty(), "{:?} found in {hits:?}", String::from_utf8_lossy(s));
    }
}

/// `liaison run` for a node that must refuse to start: it exits with a
/// failure (within 30 s); returns what it printed on stderr.
fn start_refused(n: &TestNode) -> String {
    let mut cmd = Command::new(common::BIN);
    cmd.args(["--dir", &n.dir.display().to_string(), "run"]).stdout(Stdio::null()).stderr(Stdio::piped());
    for (k, v) in &n.env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("node {} started instead of refusing", n.id);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success(), "node {} exited with success", n.id);
    String::from_utf8_lossy(&out.stderr).into_owned()
}

async fn get(n: &TestNode, id: &str) -> Result<pb::GetRecordResponse, tonic::Status> {
    n.records()
        .await
        .get_record(pb::GetRecordRequest { id: id.into(), reason: "integration test".into(), ..Default::default() })
        .await
        .map(|r| r.into_inner())
}

fn full_name(r: &pb::GetRecordResponse) -> String {
    match r.record.as_ref().and_then(|r| r.body.as_ref()) {
        Some(pb::record::Body::VictimReferral(v)) => {
            v.identity.as_ref().map(|i| i.full_name.clone()).unwrap_or_default()
        }
        _ => String::new(),
    }
}

fn lookup(n: &TestNode, ident: &str) -> Vec<String> {
    let v = n.cli_json(&["identifier", ident]);
    v["recordIds"].as_array().map_or(vec![], |a| a.iter().map(|x| x.as_str().unwrap().to_string()).collect())
}

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copied_stores_reveal_no_victim_or_identifier_and_restarted_nodes_still_serve_them() {
    let root = tempfile::tempdir().unwrap();
    let (mut th, mut kh) = common::th_kh_under_mou(root.path());
    for n in [&th, &kh] {
        let key = n.dir.join("store.key");
        assert!(key.is_file(), "init writes the store key");
        #[cfg(unix)]
        assert_eq!(mode(&key), 0o600);
        let cfg = NodeConfig::load(&Layout::new(&n.dir)).unwrap();
        assert_eq!(cfg.storage, Some(Storage::key_file("store.key")));
    }

    create(&th, victim("vr-enc-1")).await;
    create(&th, broker("en-enc-1")).await;
    th.cli_ok(&["record", "share", "vr-enc-1", "--to", "kh-antht", "--purpose", "victim_identification"]);
    th.cli_ok(&["record", "share", "en-enc-1", "--to", "kh-antht", "--purpose", "investigation"]);
    // Request texts are protected too.
    common::send_information_request(&th, "kh-antht", &format!("Whereabouts of {VICTIM}"));
    wait_for(60, "every delivery", || {
        let items = th.cli_json(&["outbox", "--all"])["items"].as_array().cloned().unwrap_or_default();
        // The two shares and the request (the agreement's own delivery aside).
        let ours: Vec<_> = items.iter().filter(|i| i["action"] != "OUTBOX_ACTION_AGREEMENT").collect();
        ours.len() == 3 && items.iter().all(|i| i["state"] == "OUTBOX_STATE_DELIVERED")
    });
    assert_eq!(full_name(&get(&kh, "th-atpd/vr-enc-1").await.unwrap()), VICTIM, "identity released and held");
    // A hit check on the originator goes through its (hashed) identifier index.
    let r = kh.cli_json(&[
        "check",
        "--identifier",
        &format!("passport:{BROKER_PASSPORT}"),
        "--peer",
        "th-atpd",
        "--purpose",
        "investigation",
    ]);
    assert_eq!(r["peers"][0]["results"][0]["hit"], true, "{r}");

    th.stop();
    kh.stop();
    for n in [&th, &kh] {
        assert_reveals_nothing(&n.dir.join("store"));
    }

    th.start();
    kh.start();
    assert_eq!(full_name(&get(&th, "vr-enc-1").await.unwrap()), VICTIM);
    assert_eq!(full_name(&get(&kh, "th-atpd/vr-enc-1").await.unwrap()), VICTIM);
    for n in [&th, &kh] {
        assert_eq!(lookup(n, &format!("passport:{BROKER_PASSPORT}")), vec!["th-atpd/en-enc-1"], "{}", n.id);
        assert_eq!(lookup(n, "phone:0066 81 555 0199"), vec!["th-atpd/en-enc-1"], "{}", n.id);
        assert!(lookup(n, "passport:KX55120988").is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_refuses_to_start_with_a_wrong_or_missing_key() {
    let root = tempfile::tempdir().unwrap();
    let mut n = TestNode::init(root.path(), "th-atpd", "TH");
    n.start();
    create(&n, victim("vr-enc-1")).await;
    n.stop();
    let key_file = n.dir.join("store.key");
    let key = std::fs::read_to_string(&key_file).unwrap();

    // Another key (here: another node's).
    let other = TestNode::init(root.path(), "kh-antht", "KH");
    std::fs::copy(other.dir.join("store.key"), &key_file).unwrap();
    let err = start_refused(&n);
    assert!(err.contains("wrong store key"), "{err}");
    assert!(err.contains(&key_file.display().to_string()) && err.contains("key id"), "{err}");

    // No key file.
    std::fs::remove_file(&key_file).unwrap();
    let err = start_refused(&n);
    assert!(err.contains("store key file") && err.contains("cannot be read without its key"), "{err}");

    // No [storage] section for an encrypted store.
    configure(&n, |c| c.storage = None);
    let err = start_refused(&n);
    assert!(err.contains("is encrypted, but node.toml has no [storage] section"), "{err}");

    // The key from the environment instead of a file.
    configure(&n, |c| c.storage = Some(Storage::key_env("LIAISON_TEST_STORE_KEY")));
    let err = start_refused(&n);
    assert!(err.contains("LIAISON_TEST_STORE_KEY") && err.contains("not set"), "{err}");
    n.env.push(("LIAISON_TEST_STORE_KEY".into(), "0123".into()));
    let err = start_refused(&n);
    assert!(err.contains("not 32 bytes"), "{err}");
    n.env.clear();
    n.env.push(("LIAISON_TEST_STORE_KEY".into(), key.trim().into()));
    n.start();
    assert_eq!(full_name(&get(&n, "vr-enc-1").await.unwrap()), VICTIM);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_backup_serves_the_backed_up_data_with_its_key_and_only_with_it() {
    let root = tempfile::tempdir().unwrap();
    let mut n = TestNode::init(root.path(), "th-atpd", "TH");
    n.start();
    create(&n, victim("vr-enc-1")).await;
    n.stop();

    // Back-up: the stopped node's store, and apart from it the key.
    let backup = root.path().join("backup/store");
    let key_backup = root.path().join("key-safe/store.key");
    copy_dir(&n.dir.join("store"), &backup);
    // The store's head goes with it (restored together, see OPERATIONS.md).
    std::fs::copy(n.dir.join("store.head"), root.path().join("backup/store.head")).unwrap();
    std::fs::create_dir_all(key_backup.parent().unwrap()).unwrap();
    std::fs::copy(n.dir.join("store.key"), &key_backup).unwrap();
    assert_reveals_nothing(&backup);

    // Later changes.
    n.start();
    let mut changed = victim("vr-enc-1");
    if let Some(pb::record::Body::VictimReferral(v)) = changed.body.as_mut() {
        v.notes = "Moved to a shelter.".into();
    }
    n.records()
        .await
        .update_record(pb::UpdateRecordRequest { record: Some(changed), expected_version: 1, ..Default::default() })
        .await
        .unwrap();
    create(&n, victim("vr-enc-2")).await;
    n.stop();

    // Restore onto a machine that lost the key: refused, naming the key.
    std::fs::remove_dir_all(n.dir.join("store")).unwrap();
    copy_dir(&backup, &n.dir.join("store"));
    std::fs::copy(root.path().join("backup/store.head"), n.dir.join("store.head")).unwrap();
    std::fs::remove_file(n.dir.join("store.key")).unwrap();
    let err = start_refused(&n);
    assert!(err.contains("store.key") && err.contains("cannot be read without its key"), "{err}");

    // With the key put back: the backed-up state, nothing later.
    std::fs::copy(&key_backup, n.dir.join("store.key")).unwrap();
    n.start();
    let got = get(&n, "vr-enc-1").await.unwrap();
    assert_eq!(got.record.as_ref().unwrap().version, 1);
    assert_eq!(full_name(&got), VICTIM);
    assert_eq!(get(&n, "vr-enc-2").await.unwrap_err().code(), Code::NotFound);
    let verify = n.cli_json(&["audit", "verify"]);
    assert_eq!(verify["ok"], true, "{verify}");
}

/// Rewrites a stopped node as a node created before encryption at rest:
/// an unencrypted store (identifiers in the index keys), no `[storage]`
/// section, no key file.
fn make_unencrypted(n: &TestNode) {
    use liaison::store::{records, sealed, Batch, SledStore, Store, Tree};
    use prost::Message;
    use std::ops::Bound;

    let layout = Layout::new(&n.dir);
    let cfg = NodeConfig::load(&layout).unwrap();
    let sealed_store = liaison::store::at_rest::open(&layout, cfg.storage.as_ref()).unwrap();
    let plain_path = n.dir.join("store-unencrypted");
    let plain = SledStore::open(&plain_path).unwrap();
    for tree in Tree::ALL {
        if tree == Tree::Identifiers {
            continue;
        }
        let mut b = Batch::default();
        for (k, v) in sealed_store.range(tree, Bound::Unbounded, Bound::Unbounded, usize::MAX).unwrap() {
            if !(tree == Tree::Meta && k == sealed::KEY_CHECK) {
                b.put(tree, k, v);
            }
        }
        plain.apply(&b).unwrap();
    }
    let mut b = Batch::default();
    for (k, v) in plain.range(Tree::Records, Bound::Unbounded, Bound::Unbounded, usize::MAX).unwrap() {
        let rec = records::StoredRecord::decode(v.as_slice()).unwrap().record().unwrap();
        for e in records::index_entries(&plain, std::str::from_utf8(&k).unwrap(), &rec) {
            b.put(Tree::Identifiers, e, Vec::new());
        }
    }
    plain.apply(&b).unwrap();
    drop((sealed_store, plain));
    std::fs::remove_dir_all(layout.store()).unwrap();
    std::fs::rename(&plain_path, layout.store()).unwrap();
    std::fs::remove_file(n.dir.join("store.key")).unwrap();
    configure(n, |c| c.storage = None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_from_before_encryption_is_encrypted_on_its_first_start_with_a_key() {
    let root = tempfile::tempdir().unwrap();
    let mut n = TestNode::init(root.path(), "th-atpd", "TH");
    n.start();
    create(&n, victim("vr-enc-1")).await;
    create(&n, broker("en-enc-1")).await;
    n.stop();
    make_unencrypted(&n);
    let store = n.dir.join("store");
    assert!(!files_containing(&store, VICTIM.as_bytes()).is_empty(), "the old store holds the name in plaintext");
    let in_key = format!("passport:{BROKER_PASSPORT_NORMALISED}");
    assert!(!files_containing(&store, in_key.as_bytes()).is_empty(), "and identifiers in its index keys");

    // Without a key the node does not run on an unencrypted store, and says what to do.
    let err = start_refused(&n);
    assert!(err.contains("no [storage] section") && err.contains("store new-key"), "{err}");

    let out = n.cli_ok(&["store", "new-key"]);
    assert!(out.contains("wrote store key"), "{out}");
    #[cfg(unix)]
    assert_eq!(mode(&n.dir.join("store.key")), 0o600);
    assert_eq!(NodeConfig::load(&Layout::new(&n.dir)).unwrap().storage, Some(Storage::key_file("store.key")));
    let again = n.cli(&["store", "new-key"]);
    assert!(!again.status.success(), "a second key would not open the store");
    assert!(String::from_utf8_lossy(&again.stderr).contains("already names a store key"));

    n.start();
    assert!(n.log().contains("store encrypted"), "{}", n.log());
    assert_eq!(full_name(&get(&n, "vr-enc-1").await.unwrap()), VICTIM);
    assert_eq!(lookup(&n, &format!("passport:{BROKER_PASSPORT}")), vec!["th-atpd/en-enc-1"]);
    let verify = n.cli_json(&["audit", "verify"]);
    assert_eq!(verify["ok"], true, "{verify}");
    n.stop();
    assert_reveals_nothing(&store);
    let leftovers: Vec<_> = std::fs::read_dir(&n.dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|f| f.starts_with("store.") && f != "store.head")
        .collect();
    assert_eq!(leftovers, vec!["store.key"], "no unencrypted copy is left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_takes_the_key_from_the_environment_or_a_provisioned_file() {
    let root = tempfile::tempdir().unwrap();
    let var = "LIAISON_TEST_INIT_STORE_KEY";

    // An environment key that is not there stops init before the directory is a node.
    let (node, out) = TestNode::init_with(root.path(), "th-atpd", "TH", "national", &["--store-key-env", var], &[]);
    assert!(node.is_none(), "init without the key in {var}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(var), "{err}");
    assert!(!root.path().join("th-atpd/node.toml").exists());

    let key = liaison::store::StoreKey::generate().to_hex();
    let (node, out) =
        TestNode::init_with(root.path(), "th-atpd", "TH", "national", &["--store-key-env", var], &[(var, &key)]);
    let mut th = node.unwrap_or_else(|| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(NodeConfig::load(&Layout::new(&th.dir)).unwrap().storage, Some(Storage::key_env(var)));
    assert!(!th.dir.join("store.key").exists(), "no key file when the key comes from the environment");
    th.start();
    create(&th, victim("vr-enc-1")).await;
    th.stop();
    assert_reveals_nothing(&th.dir.join("store"));

    // A key file provisioned elsewhere (another volume) is used as it is.
    let provisioned = root.path().join("keys/kh.key");
    std::fs::create_dir_all(provisioned.parent().unwrap()).unwrap();
    let kh_key = liaison::store::StoreKey::generate();
    std::fs::write(&provisioned, format!("{}\n", kh_key.to_hex())).unwrap();
    let path = provisioned.display().to_string();
    let (node, out) = TestNode::init_with(root.path(), "kh-antht", "KH", "national", &["--store-key-file", &path], &[]);
    let mut kh = node.unwrap_or_else(|| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(std::fs::read_to_string(&provisioned).unwrap().trim(), kh_key.to_hex());
    assert!(!kh.dir.join("store.key").exists());
    kh.start();
    create(&kh, victim("vr-enc-2")).await;
    kh.stop();
    // The store opens with the provisioned key and with no other.
    let s = liaison::store::at_rest::open_with_key(&kh.dir.join("store"), &kh_key).unwrap();
    drop(s);
    assert!(
        liaison::store::at_rest::open_with_key(&kh.dir.join("store"), &liaison::store::StoreKey::generate()).is_err()
    );
}
