//! The fuzz targets: one function per input a peer, an operator or a file can
//! hand the node. Each takes raw bytes and asserts a property, not only "no
//! panic". `main.rs` runs them under bolero (random inputs on stable inside
//! `cargo test`, libFuzzer under `cargo bolero test` on nightly) and replays
//! the regression inputs in `corpus/`.

use std::collections::{BTreeMap, BTreeSet};

use ed25519_dalek::SigningKey;
use liaison::agreement;
use liaison::demo::scenario::{self, Scenario};
use liaison::envelope::{self, payload};
use liaison::identity;
use liaison::pb;
use liaison::record;
use liaison::redact::{self, RedactionPlan};
use liaison::seal;
use liaison::sop::request::{self as sm, Applied};
use prost::Message;
use time::OffsetDateTime;

use crate::input::{mutate, Input};

const SIGNER: &str = "th-atpd";

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn ts(seconds: i64) -> pbjson_types::Timestamp {
    pbjson_types::Timestamp { seconds, nanos: 0 }
}

/// Times at the edges of what the node can meet.
fn instants() -> [OffsetDateTime; 4] {
    [
        OffsetDateTime::UNIX_EPOCH,
        OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("in range"),
        time::PrimitiveDateTime::MIN.assume_utc(),
        time::PrimitiveDateTime::MAX.assume_utc(),
    ]
}

// ---- envelope open -------------------------------------------------------

/// Payload types the node opens, plus one it never uses.
const TYPES: &[&str] = &[payload::RECORD, payload::REQUEST_EVENT, payload::RELAYED_CALL, payload::NODE_CARD, "x"];

/// An envelope opens only with its signer's key, and only carrying exactly
/// the type and bytes that were signed: any change to the encoded envelope
/// either fails to verify or leaves the signed statement as it was.
pub(crate) fn envelope_open(data: &[u8]) {
    let mut input = Input::new(data);
    let k = key(1);
    let vk = k.verifying_key();
    if input.bool() {
        // Whatever a peer sends: refused or opened, never a panic, and
        // opening implies the signature check passed.
        let Ok(env) = pb::Envelope::decode(input.rest()) else { return };
        for ty in TYPES {
            let opened = envelope::open::<pb::Record>(&env, ty, SIGNER, &vk);
            if opened.is_ok() {
                assert!(envelope::verify_signer(&env, ty, SIGNER, &vk).is_ok());
            }
        }
        return;
    }
    let ty = input.pick(TYPES);
    let body = input.bytes(512).to_vec();
    let mut env = envelope::seal_bytes(ty, body.clone(), SIGNER, &k);
    if input.bool() {
        envelope::add_signature(&mut env, "kh-antht", &key(2));
    }
    assert!(envelope::verify_signer(&env, ty, SIGNER, &vk).is_ok(), "a fresh envelope verifies");
    let bytes = mutate(&env.encode_to_vec(), &mut input, &[]);
    let Ok(changed) = pb::Envelope::decode(bytes.as_slice()) else { return };
    match envelope::verify_signer(&changed, ty, SIGNER, &vk) {
        Ok(()) => {
            assert_eq!(changed.payload_type, ty, "a verified envelope keeps its type");
            assert_eq!(changed.body, body, "a verified envelope keeps the signed bytes");
            let direct = envelope::decode::<pb::RequestEvent>(&changed).ok();
            let opened = envelope::open::<pb::RequestEvent>(&changed, ty, SIGNER, &vk).ok();
            assert_eq!(opened, direct);
        }
        Err(_) => {
            assert!(envelope::open::<pb::RequestEvent>(&changed, ty, SIGNER, &vk).is_err());
        }
    }
    // The other signer's key never opens the first signer's statement.
    assert!(envelope::verify_signer(&changed, ty, SIGNER, &key(2).verifying_key()).is_err());
}

// ---- card verify -----------------------------------------------------------

/// A self-signed card verifies only as signed, and what verifies obeys the
/// card rules (node id, certificate, endpoint, role, name).
pub(crate) fn card_verify(data: &[u8]) {
    let mut input = Input::new(data);
    if input.bool() {
        let Ok(env) = pb::Envelope::decode(input.rest()) else { return };
        if let Ok(card) = identity::verify_card(&env) {
            check_card(&env, &card);
        }
        return;
    }
    let k = key(input.u8());
    let card = pb::NodeCard {
        node_id: input.pick(&["th-atpd", "kh-antht", "x", "-a", "a-", "hub-01", "TH"]).to_string(),
        display_name: input.text(40),
        organisation: input.text(20),
        country: input.text(3),
        region: String::new(),
        role: i32::from(input.u8() % 5),
        federation_endpoint: input.text(40),
        tls_certificate: input.bytes(64).to_vec(),
        signing_public_key: k.verifying_key().to_bytes().to_vec(),
        issue_time: Some(ts(i64::from(input.u32()))),
        sealing_public_key: input.bytes(40).to_vec(),
    };
    let env = envelope::seal(payload::NODE_CARD, &card, &card.node_id, &k);
    let first = identity::verify_card(&env);
    if let Ok(c) = &first {
        assert_eq!(c, &card);
        check_card(&env, c);
    }
    let bytes = mutate(&env.encode_to_vec(), &mut input, &[]);
    let Ok(changed) = pb::Envelope::decode(bytes.as_slice()) else { return };
    if let Ok(c) = identity::verify_card(&changed) {
        assert_eq!(changed.body, env.body, "a verified card keeps the signed bytes");
        assert_eq!(c, card);
        check_card(&changed, &c);
    }
}

fn check_card(env: &pb::Envelope, card: &pb::NodeCard) {
    let key = envelope::verifying_key(&card.signing_public_key).expect("a verified card has a valid key");
    assert!(envelope::verify_signer(env, payload::NODE_CARD, &card.node_id, &key).is_ok());
    assert_eq!(envelope::decode::<pb::NodeCard>(env).as_ref(), Ok(card));
    assert!(liaison::config::valid_node_id(&card.node_id), "{:?}", card.node_id);
    assert!(!card.tls_certificate.is_empty() && card.tls_certificate.len() <= 16 * 1024);
    assert!(!card.federation_endpoint.is_empty() && card.federation_endpoint.len() <= 255);
    assert!(matches!(pb::NodeRole::try_from(card.role), Ok(r) if r != pb::NodeRole::Unspecified));
    assert!(!card.display_name.trim().is_empty() && card.display_name.chars().count() <= 200);
}

// ---- agreement TOML --------------------------------------------------------

/// Values that sit on or past the edges of what the agreement rules allow.
const TOML_DICT: &[&str] = &[
    "\"99999999w\"",
    "\"366d\"",
    "\"367d\"",
    "\"0s\"",
    "\"18446744073709551615s\"",
    "\"1s\"",
    "\"9999-12-31\"",
    "\"1999-12-31\"",
    "\"2199-12-31T23:59:59Z\"",
    "\"2200-01-01\"",
    "\"2000-01-01T00:00:00-23:59\"",
    "4294967295",
    "36600",
    "36601",
    "-1",
    "0",
    "1e308",
    "nan",
    "true",
    "[]",
    "[\"*\"]",
    "\"*\"",
    "\"\"",
    "\"\\u0000\"",
    "\"İİİİ\"",
    "\"victim_referral.identity\"",
    "\"victim_referral.notes\"",
    "\"red\"",
    "\"amber+strict\"",
    "\"with_consent\"",
    "\"th-atpd\"",
    "\"kh-antht\"",
    "\n[[grants]]\n",
    "\n[[sop.request_types]]\n",
    "\n[retention]\n",
    "{}",
    "'''",
    "\"\"\"",
];

/// A TOML agreement that parses is valid, survives the protobuf round trip
/// a peer sees, and every computation on it (state at any time, due dates
/// from its SOP) is total. The same holds for an agreement a peer delivers
/// as protobuf that `validate` accepts.
pub(crate) fn agreement_toml(data: &[u8]) {
    let mut input = Input::new(data);
    let text = match input.u8() {
        0xff => String::from_utf8_lossy(input.rest()).into_owned(),
        // A received document: any bytes, or a template's encoding, edited.
        mode @ (0xfd | 0xfe) => {
            let bytes = if mode == 0xfe {
                input.rest().to_vec()
            } else {
                let seed = agreement::parse_toml(input.pick(scenario::TEMPLATES).1).expect("templates parse");
                mutate(&seed.encode_to_vec(), &mut input, &[])
            };
            if let Ok(doc) = pb::Agreement::decode(bytes.as_slice()) {
                if agreement::validate(&doc).is_ok() {
                    check_agreement(&doc);
                }
            }
            return;
        }
        _ => {
            let seed = input.pick(scenario::TEMPLATES).1;
            String::from_utf8_lossy(&mutate(seed.as_bytes(), &mut input, TOML_DICT)).into_owned()
        }
    };
    let Ok(doc) = agreement::parse_toml(&text) else { return };
    check_agreement(&doc);
}

fn check_agreement(doc: &pb::Agreement) {
    assert_eq!(agreement::validate(doc), Ok(()), "parse_toml returned an invalid agreement");
    let back = pb::Agreement::decode(doc.encode_to_vec().as_slice()).expect("own encoding decodes");
    assert_eq!(&back, doc);
    assert_eq!(agreement::validate(&back), Ok(()));
    let standing = agreement::Standing {
        signed_by: doc.parties.iter().cloned().collect(),
        notices: Vec::new(),
        superseded: false,
        proposed: true,
    };
    for now in instants() {
        let _ = agreement::state(doc, &standing, now);
        for terms in agreement::request_terms(doc).values() {
            for urgent in [false, true] {
                let (ack, answer) = sm::deadlines(terms, urgent, now);
                assert!(ack >= now && answer >= now, "a due date never lies before the submission");
                if now < time::PrimitiveDateTime::MAX.assume_utc() - time::Duration::days(400) {
                    assert!(ack <= answer, "acknowledgement is due before the answer");
                }
            }
        }
    }
}

// ---- scenario TOML ---------------------------------------------------------

const SCENARIO_DICT: &[&str] = &[
    "\"commit-hub\"",
    "\"th-atpd\"",
    "\"hub\"",
    "\"partner\"",
    "\"national\"",
    "\"nope\"",
    "\"99999999w\"",
    "\"1s\"",
    "\"2026-Q9\"",
    "\"2026\"",
    "\"victim_identification\"",
    "\"passport\"",
    "\"\"",
    "[]",
    "{}",
    "\"İ\"",
    "\n[[steps]]\nkind = \"sync\"\nby = \"th-atpd\"\nsay = \"x\"\n",
    "\n[[records]]\n",
    "\n[[nodes]]\n",
    "\n[[agreements]]\nbase = \"commit-bilateral-mou\"\n",
    "4294967295",
    "-1",
    "1e308",
];

/// A scenario that parses resolves completely: every agreement parses with
/// parties among the nodes, every record validates, and the derived views
/// (pairs, hub members, step texts) are total.
pub(crate) fn scenario_toml(data: &[u8]) {
    let mut input = Input::new(data);
    let text = if input.u8() == 0xff {
        String::from_utf8_lossy(input.rest()).into_owned()
    } else {
        let seed = input.pick(scenario::BUILT_IN).1;
        String::from_utf8_lossy(&mutate(seed.as_bytes(), &mut input, SCENARIO_DICT)).into_owned()
    };
    let Ok(s) = Scenario::parse(&text, "fuzz") else { return };
    for i in 0..s.agreements.len() {
        let a = s.agreement(i).expect("a parsed scenario's agreements resolve");
        check_agreement(&a);
        assert!(a.parties.iter().all(|p| s.node(p).is_some()));
    }
    for i in 0..s.records.len() {
        let r = s.record(i).expect("a parsed scenario's records resolve");
        assert_eq!(record::validate(&r), Ok(()));
        assert!(s.node(&s.records[i].node).is_some());
    }
    let pairs = s.direct_pairs().expect("pairs of a parsed scenario");
    assert!(pairs.iter().all(|(a, b)| a < b && s.node(a).is_some() && s.node(b).is_some()));
    for (hub, members) in s.members() {
        assert!(s.node(&hub).is_some_and(|h| h.role == "hub"), "{hub}");
        assert!(members.iter().all(|m| s.node(m).is_some()));
    }
    for step in &s.steps {
        let _ = step.say();
    }
}

// ---- record validation -----------------------------------------------------

/// A node's own record as it is stored: validated, with the fields the node
/// sets filled in.
fn own(mut r: pb::Record) -> pb::Record {
    r.originator = SIGNER.into();
    r.version = 1;
    r.create_time = Some(ts(1_800_000_000));
    r.update_time = Some(ts(1_800_000_000));
    r.redacted_fields.clear();
    r
}

/// Record bytes as a peer sends them. Validation agrees with the one-body
/// scan of the signed bytes, survives re-encoding, is never weaker for
/// received records than for local writes, and a node's own valid record,
/// redacted under any grant, is a record its peers accept.
pub(crate) fn record_validate(data: &[u8]) {
    let mut input = Input::new(data);
    let mode = input.u8() % 3;
    let bytes = if mode == 0 {
        input.rest().to_vec()
    } else {
        let mut examples = record::examples::all();
        let mut seed = examples.swap_remove(input.below(examples.len()));
        if mode == 1 {
            seed = own(seed);
        }
        mutate(&seed.encode_to_vec(), &mut input, &[])
    };
    let bodies = record::body_fields(&bytes);
    let Ok(rec) = pb::Record::decode(bytes.as_slice()) else { return };
    if let Ok(n) = bodies {
        assert_eq!(n == 0, rec.body.is_none(), "the scan and the decoder agree on a body ({n})");
    }
    let local = record::validate(&rec);
    let received = record::validate_received(&rec);
    let _ = (record::countries(&rec), record::matches_text(&rec, "a"), record::identifier_keys(&rec));
    let _ = redact::pseudonymise(&rec);
    if received.is_ok() && rec.redacted_fields.is_empty() {
        assert_eq!(local, Ok(()), "a received record is held to every local rule");
    }
    for (ok, check) in
        [(local.is_ok(), record::validate as fn(&pb::Record) -> _), (received.is_ok(), record::validate_received)]
    {
        if ok {
            let again = pb::Record::decode(rec.encode_to_vec().as_slice()).expect("own encoding decodes");
            assert_eq!(again, rec);
            assert_eq!(check(&again), Ok(()), "validation survives re-encoding");
            assert_eq!(record::body_fields(&rec.encode_to_vec()), Ok(1));
        }
    }
    if local.is_ok() {
        let mine = own(rec.clone());
        assert_eq!(record::validate_received(&mine), Ok(()), "a node's own valid record is a valid received one");
        let kind = record::kind(&mine).expect("a valid record has a kind");
        let fields: Vec<String> = redact::REDACTABLE_FIELDS.iter().map(|f| f.to_string()).collect();
        let released: Vec<String> = fields.iter().filter(|_| input.bool()).cloned().collect();
        let redacted: Vec<String> = fields.iter().filter(|_| input.bool()).cloned().collect();
        let plan = RedactionPlan::for_grant(kind, &released, &redacted);
        let sent = redact::redact(&mine, &plan);
        assert_eq!(record::validate_received(&sent), Ok(()), "a redacted copy is accepted (plan {plan:?})");
        assert!(redact::carried(&sent, &plan).is_empty(), "nothing withheld is carried");
        assert!(sent.redacted_fields.iter().all(|f| redact::is_known_field(f)));
    }
}

// ---- identifier normalisation ---------------------------------------------

const IDENTIFIERS: &[&str] = &[
    "AB 123-456",
    "1-2345.6789/0",
    "+66 81-234-5678",
    "0066812345678",
    "(+855) 12.345.678",
    "Foo@Example.ORG",
    "a.b@c.d",
    "GB82 WEST 1234 5698 7654 32",
];

/// Characters that case mapping grows, shrinks or turns into ASCII, and
/// white space that trimming treats differently from the separators.
const IDENTIFIER_DICT: &[&str] = &[
    "İ",
    "İİİİİİİİİİİİİİİİİİİİİİİİİİİİİİİİ",
    "ß",
    "ı",
    "ſ",
    "K",
    "ﬀ",
    "１",
    "\u{a0}",
    "\u{2028}",
    "\u{0}",
    " ",
    "-",
    ".",
    "/",
    "(",
    "00",
    "+",
    "@",
    "@.",
    "0000000000000000",
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
];

/// Normalisation is idempotent (both sides of a hit check normalise, and a
/// stored key is normalised again when matched), and what it returns is in
/// the canonical alphabet of its type.
pub(crate) fn identifier_normalize(data: &[u8]) {
    let mut input = Input::new(data);
    let Ok(t) = pb::IdentifierType::try_from(i32::from(input.u8() % 8)) else { return };
    let raw = match input.u8() % 4 {
        0 => String::from_utf8_lossy(input.rest()).into_owned(),
        1 => input.text(300),
        // A valid value of some type, edited: most inputs pass the first
        // checks, so the edge cases of each rule are reached.
        _ => {
            let seed = input.pick(IDENTIFIERS);
            String::from_utf8_lossy(&mutate(seed.as_bytes(), &mut input, IDENTIFIER_DICT)).into_owned()
        }
    };
    let Ok(n) = record::normalize_identifier(t, &raw) else { return };
    assert_eq!(record::normalize_identifier(t, &n).as_ref(), Ok(&n), "{t:?} {raw:?}");
    assert!(!n.is_empty() && n.chars().count() <= 256);
    match t {
        pb::IdentifierType::Email => {
            assert_eq!(n, n.to_lowercase());
            assert!(!n.chars().any(char::is_whitespace));
        }
        pb::IdentifierType::Phone => {
            assert!(n.starts_with('+') && n[1..].bytes().all(|b| b.is_ascii_digit()));
        }
        _ => assert!(n.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()), "{n:?}"),
    }
    // The key a hit check looks up is the same from the raw or the normalised value.
    let name = record::identifier_type_name(t);
    assert_eq!(record::parse_identifier_type(name), Some(t));
}

// ---- sealed-message open ---------------------------------------------------

/// A sealed message opens only with the recipient's key, for exactly the
/// sender and recipient it was sealed for, and unaltered.
pub(crate) fn seal_open(data: &[u8]) {
    let mut input = Input::new(data);
    let (sk, pk) = seal::derive_keypair(&[7; 32]);
    if input.bool() {
        let (sender, recipient) = (input.text(20), input.text(20));
        let enc = input.bytes(40).to_vec();
        let ct = input.rest();
        assert!(seal::open(&sk, &sender, &recipient, &enc, ct).is_err(), "nothing opens that was not sealed");
        let _ = seal::seal(&enc, &sender, &recipient, ct);
        return;
    }
    let (sender, recipient) = (input.text(12), input.text(12));
    let plain = input.bytes(256).to_vec();
    let Ok((enc, ct)) = seal::seal(&seal::public_key_bytes(&pk), &sender, &recipient, &plain) else {
        // Refusing to seal is allowed (ids the binding cannot carry); sealing
        // to a valid key otherwise never fails.
        assert!(sender.contains('\0') || recipient.contains('\0'));
        return;
    };
    assert_eq!(seal::open(&sk, &sender, &recipient, &enc, &ct).as_deref(), Ok(plain.as_slice()));
    let (s2, r2, enc2, ct2) = match input.u8() % 4 {
        // The same bytes split at another NUL: a different sender/recipient pair.
        0 => {
            let joined = format!("{sender}\0{recipient}");
            let cuts: Vec<usize> = joined.match_indices('\0').map(|(i, _)| i).collect();
            let cut = cuts[input.below(cuts.len())];
            (joined[..cut].to_string(), joined[cut + 1..].to_string(), enc.clone(), ct.clone())
        }
        1 => (input.text(12), input.text(12), enc.clone(), ct.clone()),
        2 => (sender.clone(), recipient.clone(), mutate(&enc, &mut input, &[]), ct.clone()),
        _ => (sender.clone(), recipient.clone(), enc.clone(), mutate(&ct, &mut input, &[])),
    };
    let same = s2 == sender && r2 == recipient && enc2 == enc && ct2 == ct;
    match seal::open(&sk, &s2, &r2, &enc2, &ct2) {
        Ok(p) => {
            assert!(same, "opened for {s2:?} -> {r2:?}, sealed for {sender:?} -> {recipient:?}");
            assert_eq!(p, plain);
        }
        Err(_) => assert!(!same),
    }
}

// ---- request-step application ----------------------------------------------

const FROM: &str = "th-atpd";
const TO: &str = "kh-antht";
const REQ: &str = "req-fuzz";

fn terms() -> pb::RequestTypeTerms {
    pb::RequestTypeTerms {
        name: "information_request".into(),
        ack_within_seconds: 86_400,
        answer_within_seconds: 7 * 86_400,
        urgent_ack_within_seconds: 3600,
        urgent_answer_within_seconds: 86_400,
        escalation_role: pb::ContactRole::NationalPointOfContact as i32,
        purposes: Vec::new(),
        source: String::new(),
        ..Default::default()
    }
}

fn submitted() -> pb::Request {
    let header = pb::RequestHeader {
        agreement_id: "mou".into(),
        agreement_version: 1,
        request_type: "information_request".into(),
        from_node: FROM.into(),
        to_node: TO.into(),
        purpose: pb::Purpose::Investigation as i32,
        priority: pb::Priority::Normal as i32,
        subject: "s".into(),
        body: "b".into(),
        refs: Vec::new(),
    };
    let submit = pb::RequestEvent {
        request_id: REQ.into(),
        actor: FROM.into(),
        seq: 1,
        transition: pb::Transition::Submit as i32,
        time: Some(ts(1_800_000_000)),
        header: Some(header.clone()),
        ..Default::default()
    };
    let start = time::OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("a valid time");
    sm::open(REQ, header, &terms(), submit, start).expect("a valid submit opens")
}

fn terminal(state: i32) -> bool {
    [pb::RequestState::Answered, pb::RequestState::Declined, pb::RequestState::Withdrawn]
        .iter()
        .any(|s| *s as i32 == state)
}

/// One step as a peer could send it: mostly plausible (right request, the
/// two nodes, sequences near the current ones), sometimes anything.
fn event(input: &mut Input<'_>, req: &pb::Request) -> pb::RequestEvent {
    if input.u8() % 8 == 0 {
        let raw = input.bytes(300);
        return pb::RequestEvent::decode(raw).unwrap_or_default();
    }
    let actor = match input.u8() % 8 {
        0..=2 => FROM.to_string(),
        3..=5 => TO.to_string(),
        6 => "la-lsb".to_string(),
        _ => input.text(8),
    };
    let other = if actor == FROM { TO } else { FROM };
    let near = |input: &mut Input<'_>, base: u64| match input.u8() % 16 {
        15 => input.u64(),
        n => base.saturating_add(u64::from(n % 7)).saturating_sub(1),
    };
    let seq = near(input, sm::last_seq(req, &actor));
    let peer_seq = near(input, sm::last_seq(req, other));
    let text = match input.u8() % 8 {
        0 => String::new(),
        7 => "x".repeat(sm::MAX_TEXT + usize::from(input.u8() % 2)),
        _ => input.text(20),
    };
    let attached = (0..input.below(4)).map(|_| input.text(10)).collect();
    pb::RequestEvent {
        request_id: if input.u8() % 16 == 0 { input.text(10) } else { REQ.into() },
        actor,
        seq,
        transition: i32::from(input.u8() % 7),
        time: Some(ts(i64::from(input.u32()))),
        text,
        attached_record_ids: attached,
        header: None,
        peer_seq,
    }
}

/// Steps applied in any order, repeated, early, invalid or oversized never
/// move a request backwards: the timeline only grows, each node's steps
/// stay contiguous in its sequence and causally after the steps they
/// follow, the state is the replay of the timeline, a closed request stays
/// closed, and what waits is bounded and can still apply.
pub(crate) fn request_steps(data: &[u8]) {
    let mut input = Input::new(data);
    let mut req = submitted();
    let mut pending: BTreeMap<(String, u64), pb::RequestEvent> = BTreeMap::new();
    for _ in 0..24 {
        if input.is_empty() {
            break;
        }
        let ev = event(&mut input, &req);
        // As the desk does: a refused step changes nothing that is stored.
        let kept = pending.clone();
        match sm::apply_in_order(&req, &mut pending, ev.clone()) {
            Ok(next) => {
                check_step(&req, &next, &pending);
                req = next;
            }
            Err(_) => pending = kept,
        }
        // The one-step function agrees: a duplicate changes nothing, a
        // change adds exactly that step.
        match sm::apply(&req, &ev) {
            Ok(Applied::Duplicate) => assert!(ev.seq <= sm::last_seq(&req, &ev.actor)),
            Ok(Applied::Changed(next)) => {
                assert_eq!(next.timeline.len(), req.timeline.len() + 1);
                assert_eq!(next.timeline.last(), Some(&ev));
                check_timeline(&next);
            }
            Err(_) => {}
        }
        for now in instants() {
            if let Some(esc) = sm::newly_overdue(&req, &terms(), now) {
                let which = esc.deadline.clone();
                let marked = sm::mark_overdue(&req, esc);
                assert!(marked.overdue);
                let again = sm::newly_overdue(&marked, &terms(), now);
                assert!(again.is_none_or(|e| e.deadline != which), "a deadline escalates once");
            }
        }
    }
}

fn check_step(before: &pb::Request, after: &pb::Request, pending: &BTreeMap<(String, u64), pb::RequestEvent>) {
    assert_eq!(after.id, before.id);
    assert_eq!(after.header, before.header);
    assert!(after.timeline.starts_with(&before.timeline), "the timeline only grows");
    let actors: BTreeSet<&str> = after.timeline.iter().map(|e| e.actor.as_str()).collect();
    for a in actors {
        assert!(sm::last_seq(after, a) >= sm::last_seq(before, a), "{a} moved backwards");
    }
    if terminal(before.state) {
        // Closed stays closed. Only a step that crossed the closing one on
        // the wire may still be recorded: an answer or decline made before
        // the withdrawal was seen (it stands), or a withdrawal or
        // acknowledgement that crossed the answer (the state stays).
        use pb::RequestState as S;
        assert!(terminal(after.state), "a closed request was reopened");
        if before.state != S::Withdrawn as i32 {
            assert_eq!(after.state, before.state, "an answered or declined request changed");
        }
    }
    check_timeline(after);
    assert!(pending.len() <= sm::MAX_PENDING, "{} steps waiting", pending.len());
    for ((actor, seq), e) in pending {
        assert_eq!((actor, *seq), (&e.actor, e.seq));
        assert!(e.seq > sm::last_seq(after, actor), "a step that already applied still waits");
        assert!(
            e.seq <= sm::last_seq(after, actor).saturating_add(sm::MAX_AHEAD),
            "only steps that can become next wait"
        );
        assert!(sm::check_bounds(e).is_ok());
    }
}

/// Replays the timeline from the submit: contiguous sequences per node,
/// causal order, only valid transitions, ending in the recorded state.
fn check_timeline(req: &pb::Request) {
    let mut replay =
        pb::Request { timeline: req.timeline[..1].to_vec(), state: pb::RequestState::Submitted as i32, ..req.clone() };
    for ev in &req.timeline[1..] {
        assert!(sm::check_bounds(ev).is_ok());
        assert_eq!(ev.seq, sm::last_seq(&replay, &ev.actor) + 1, "contiguous steps of {}", ev.actor);
        let h = req.header.clone().unwrap_or_default();
        let other = if ev.actor == h.from_node { &h.to_node } else { &h.from_node };
        assert!(ev.peer_seq <= sm::last_seq(&replay, other), "a step applied before one it follows");
        let state = sm::next_state(&replay, ev).expect("every applied step was a valid transition");
        replay.state = state as i32;
        replay.timeline.push(ev.clone());
    }
    assert_eq!(replay.state, req.state, "the state is the replay of the timeline");
}
