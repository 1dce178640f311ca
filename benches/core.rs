//! Figures for the hot paths of the core, each beside a baseline measured in
//! the same run, so the ratio means something on a shared, noisy machine:
//!
//! - envelope: sealing and opening a record vs a bare Ed25519 sign/verify of the same bytes;
//! - policy: a decision among 50 agreements vs among the one that applies;
//! - redaction: redacting a victim referral vs cloning it;
//! - audit: appending to the hash chain vs hashing the entry alone;
//! - store: a flushed batch of 100 writes vs a flushed single write (per write);
//!   the same batch is what a hit check on 100 identifiers now costs (one write);
//! - outbox: the deliverer's scan of pending items through their index vs
//!   decoding every item (10 pending among 10,000 delivered);
//!
//! `cargo bench --bench core` prints them; nothing here is asserted.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ed25519_dalek::{Signer, SigningKey, Verifier};
use liaison::audit::{Chain, Event};
use liaison::envelope::{self, payload};
use liaison::pb::{self, AgreementState, HandlingCode, Operation, Purpose, RecordKind};
use liaison::policy::{decide, Decision, Direction, Exchange, VictimFacts};
use liaison::store::{Batch, SealedStore, SledStore, Store, StoreKey, Tree};
use prost::Message;

const MOU: &str = include_str!("../deploy/agreements/commit-bilateral-mou.toml");

fn at() -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

fn exchange() -> Exchange {
    Exchange {
        local: "th-atpd".into(),
        peer: "kh-antht".into(),
        direction: Direction::Outgoing,
        operation: Operation::Push,
        kind: RecordKind::VictimReferral,
        purpose: Purpose::VictimIdentification,
        handling: HandlingCode::Red,
        at: at(),
        victim: Some(VictimFacts {
            consent: pb::ConsentStatus::Given,
            guardian_decision: false,
            child: false,
            best_interest: pb::BestInterestOutcome::Unspecified,
            identity_requested: true,
            return_step: false,
        }),
        into_kind: None,
        onward: None,
    }
}

fn envelope(c: &mut Criterion) {
    let key = SigningKey::from_bytes(&[7; 32]);
    let record = liaison::record::examples::intelligence_report();
    let bytes = record.encode_to_vec();
    let sealed = envelope::seal(payload::RECORD, &record, "th-atpd", &key);
    let vk = key.verifying_key();
    let mut g = c.benchmark_group("envelope");
    g.bench_function("baseline: ed25519 sign + verify of the bytes", |b| {
        b.iter(|| {
            let sig = key.sign(black_box(&bytes));
            vk.verify(&bytes, &sig).is_ok()
        })
    });
    g.bench_function("seal a record", |b| {
        b.iter(|| envelope::seal(payload::RECORD, black_box(&record), "th-atpd", &key))
    });
    g.bench_function("open a record (verify, then decode)", |b| {
        b.iter(|| envelope::open::<pb::Record>(black_box(&sealed), payload::RECORD, "th-atpd", &vk).is_ok())
    });
    g.finish();
}

fn policy(c: &mut Criterion) {
    let mou = liaison::agreement::parse_toml(MOU).unwrap_or_default();
    let one = vec![(mou.clone(), AgreementState::Active)];
    // 49 agreements between other parties in front of the one that applies.
    let mut many: Vec<(pb::Agreement, AgreementState)> = (0..49)
        .map(|i| {
            let mut a = mou.clone();
            a.id = format!("other-{i}");
            a.parties = vec![format!("aa-{i}"), format!("bb-{i}")];
            (a, AgreementState::Active)
        })
        .collect();
    many.push((mou, AgreementState::Active));
    let ex = exchange();
    assert!(matches!(decide(&one, &ex), Decision::Allow { .. }), "the bench exchange must be allowed");
    let mut g = c.benchmark_group("policy");
    g.bench_function("baseline: decide among 1 agreement", |b| b.iter(|| decide(black_box(&one), &ex)));
    g.bench_function("decide among 50 agreements", |b| b.iter(|| decide(black_box(&many), &ex)));
    g.finish();

    let plan = match decide(&one, &ex) {
        Decision::Allow { plan, .. } => plan,
        Decision::Deny(_) => return,
    };
    let referral = liaison::record::examples::victim_referral();
    let mut g = c.benchmark_group("redaction");
    g.bench_function("baseline: clone a victim referral", |b| b.iter(|| black_box(&referral).clone()));
    g.bench_function("redact a victim referral", |b| b.iter(|| liaison::redact::redact(black_box(&referral), &plan)));
    g.finish();
}

fn audit(c: &mut Criterion) {
    let mut chain = Chain::default();
    let probe = chain.append(Event::new("user:somchai", "record.share").record("th-atpd/ir-1"), at());
    let bytes = probe.encode_to_vec();
    let mut g = c.benchmark_group("audit");
    g.bench_function("baseline: blake3 of an encoded entry", |b| b.iter(|| blake3::hash(black_box(&bytes))));
    g.bench_function("append to the hash chain", |b| {
        b.iter(|| chain.append(Event::new("user:somchai", "record.share").record("th-atpd/ir-1"), at()))
    });
    // `audit verify` checks one entry at a time, in pages.
    let mut fresh = Chain::default();
    let entries: Vec<_> = (0..1000)
        .map(|_| fresh.append(Event::new("user:somchai", "record.share").record("th-atpd/ir-1"), at()))
        .collect();
    g.throughput(Throughput::Elements(entries.len() as u64));
    g.bench_function("verify 1000 entries one at a time", |b| {
        b.iter(|| {
            let mut v = liaison::audit::Verifier::default();
            entries.iter().all(|e| v.push(e).is_ok())
        })
    });
    g.finish();
}

fn store(c: &mut Criterion) {
    let Ok(dir) = tempfile::tempdir() else { return };
    let Ok(st) = SledStore::open(dir.path()) else { return };
    let value = liaison::record::examples::contact_point().encode_to_vec();
    let mut n = 0u64;
    let mut g = c.benchmark_group("store");
    g.measurement_time(Duration::from_secs(4)).sample_size(20);
    g.throughput(Throughput::Elements(1));
    g.bench_function("baseline: one flushed write", |b| {
        b.iter_batched(
            || {
                n += 1;
                let mut batch = Batch::default();
                batch.put(Tree::Records, n.to_be_bytes().to_vec(), value.clone());
                batch
            },
            |batch| st.apply(&batch).is_ok(),
            BatchSize::SmallInput,
        )
    });
    g.throughput(Throughput::Elements(100));
    g.bench_function("100 writes in one flushed batch", |b| {
        b.iter_batched(
            || {
                let mut batch = Batch::default();
                for _ in 0..100 {
                    n += 1;
                    batch.put(Tree::Records, n.to_be_bytes().to_vec(), value.clone());
                }
                batch
            },
            |batch| st.apply(&batch).is_ok(),
            BatchSize::SmallInput,
        )
    });
    // The same through the encryption at rest every node runs.
    let Ok(sealed_dir) = tempfile::tempdir() else { return };
    let Ok(raw) = SledStore::open(sealed_dir.path()) else { return };
    let Ok(sealed) = SealedStore::new(raw, &StoreKey::generate()) else { return };
    g.bench_function("100 writes in one flushed batch, encrypted", |b| {
        b.iter_batched(
            || {
                let mut batch = Batch::default();
                for _ in 0..100 {
                    n += 1;
                    batch.put(Tree::Records, n.to_be_bytes().to_vec(), value.clone());
                }
                batch
            },
            |batch| sealed.apply(&batch).is_ok(),
            BatchSize::SmallInput,
        )
    });
    let mut one = Batch::default();
    one.put(Tree::Records, b"read".to_vec(), value.clone());
    if st.apply(&one).is_err() || sealed.apply(&one).is_err() {
        return;
    }
    g.throughput(Throughput::Elements(1));
    g.bench_function("read one record, encrypted", |b| {
        b.iter(|| sealed.get(Tree::Records, b"read").ok().flatten().map(|v| v.len()))
    });
    g.bench_function("baseline: read one record", |b| {
        b.iter(|| st.get(Tree::Records, b"read").ok().flatten().map(|v| v.len()))
    });
    g.finish();
}

/// The deliverer's scan every half second: the pending items found through
/// their index, against decoding the whole outbox (what it did before),
/// with 10 pending items among 10,000 delivered ones kept as evidence.
fn outbox(c: &mut Criterion) {
    use liaison::exchange::outbox::{self, Stored};
    let Ok(dir) = tempfile::tempdir() else { return };
    let Ok(st) = SledStore::open(dir.path()) else { return };
    let mut batch = Batch::default();
    for i in 0..10_010u32 {
        let state = if i < 10 { pb::OutboxState::Pending } else { pb::OutboxState::Delivered };
        let item = pb::OutboxItem {
            delivery_id: format!("dlv-{i:08}"),
            action: pb::OutboxAction::Share as i32,
            peer: "kh-antht".into(),
            record_key: format!("th-atpd/cp-{i}"),
            version: 1,
            state: state as i32,
            ..Default::default()
        };
        let s = Stored { item: Some(item.clone()), payload: None, terms: None };
        batch.put(Tree::Outbox, item.delivery_id.into_bytes(), s.encode_to_vec());
    }
    if st.apply(&batch).is_err() || outbox::build_indexes(&st).is_err() {
        return;
    }
    let mut g = c.benchmark_group("outbox");
    g.measurement_time(Duration::from_secs(4)).sample_size(20);
    g.bench_function("baseline: decode the whole outbox (10,010 items)", |b| {
        b.iter(|| outbox::all(&st).map(|v| v.len()).unwrap_or(0))
    });
    g.bench_function("pending items through the index (10 of 10,010)", |b| {
        b.iter(|| outbox::pending_in(&st).map(|v| v.len()).unwrap_or(0))
    });
    g.finish();
}

/// The rate-limit check on every call: one caller, and a full table of
/// callers where a new one must evict an idle bucket.
fn limits(c: &mut Criterion) {
    let mut g = c.benchmark_group("limits");
    let mut one = liaison::limits::Buckets::new(1e9, u32::MAX);
    let mut t = 0u64;
    g.bench_function("baseline: take for one caller", |b| {
        b.iter(|| {
            t += 1;
            one.take("kh-antht", Duration::from_nanos(t)).is_ok()
        })
    });
    let mut full = liaison::limits::Buckets::new(1e9, 10);
    let keys: Vec<String> =
        (0..liaison::limits::MAX_KEYS * 2).map(|i| format!("addr:10.0.{}.{}", i / 256, i % 256)).collect();
    let mut i = 0usize;
    g.bench_function("take for a new caller when the table is full", |b| {
        b.iter(|| {
            i = (i + 1) % keys.len();
            t += 1_000_000;
            full.take(&keys[i], Duration::from_nanos(t)).is_ok()
        })
    });
    g.finish();
}

criterion_group!(benches, envelope, policy, audit, store, outbox, limits);
criterion_main!(benches);
