#!/usr/bin/env node
// A small liaison integrator in Node.js: the daily operations of a case
// system against its own unit's node.
//
//   .ci/node-tools                       # node + @grpc/grpc-js + @grpc/proto-loader (pinned)
//   LIAISON_API=127.0.0.1:7701 LIAISON_TOKEN=... \
//     node examples/node/liaison_client.js --peer kh-antht --text duty \
//       --identifier passport:N0123456 --identifier passport:X9999999
//
// It follows the change feed, imports a batch (and retries it safely with the
// same request_id), queries a peer, runs a hit/no-hit check and sends a formal
// request citing the hits. Everything goes through the node's local gRPC API
// with a bearer token (an integrator's is enough); the node applies its
// agreements, so the script never decides what may be shared.
'use strict';

const crypto = require('node:crypto');
const path = require('node:path');
const { parseArgs } = require('node:util');

const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const PROTO_DIR = process.env.LIAISON_PROTO_DIR || path.resolve(__dirname, '..', '..', 'proto');

// keepCase: field names exactly as in the .proto files (snake_case), as the
// Python example has them. uint64 (change seq) as strings, enums as their
// names. google/protobuf/{timestamp,field_mask}.proto, which the liaison
// protos import, come bundled with protobufjs.
const definition = protoLoader.loadSync(
  ['records', 'exchange', 'changes', 'requests'].map((f) => `liaison/v1/${f}.proto`),
  { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true, includeDirs: [PROTO_DIR] },
);
const v1 = grpc.loadPackageDefinition(definition).liaison.v1;

const CALL_TIMEOUT_MS = 30_000;
const FEED_TIMEOUT_MS = 20_000;

function usage() {
  return `usage: liaison_client.js [--peer ID] [--text TEXT] [--identifier TYPE:VALUE]...
                          [--purpose PURPOSE] [--request-type TYPE] [--subject TEXT]

  env LIAISON_API (default 127.0.0.1:7701), LIAISON_TOKEN (required),
      LIAISON_COUNTRY (country of the imported contact points, default TH)

  --peer          peer to query, check and send the request to
                  (query and check: default every peer an agreement allows;
                  the request needs a peer)
  --text          text to query the peer's contact points for (default duty)
  --identifier    TYPE:VALUE to check, e.g. passport:N0123456 (repeatable);
                  TYPE is passport, national_id, phone, email,
                  company_registration or bank_account
  --purpose       purpose of the check and the request (default investigation)
  --request-type  an SOP request type of the agreement (default information_request)
  --subject       the request's subject`;
}

function options() {
  let parsed;
  try {
    parsed = parseArgs({
      options: {
        peer: { type: 'string', default: '' },
        text: { type: 'string', default: 'duty' },
        identifier: { type: 'string', multiple: true, default: [] },
        purpose: { type: 'string', default: 'investigation' },
        'request-type': { type: 'string', default: 'information_request' },
        subject: { type: 'string', default: 'Identifiers checked by the case system' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (e) {
    fail(`${e.message}\n${usage()}`);
  }
  const o = parsed.values;
  if (o.help) {
    console.log(usage());
    process.exit(0);
  }
  const identifiers = o.identifier.map((s) => {
    const i = s.indexOf(':');
    if (i <= 0 || i === s.length - 1) fail(`--identifier ${s}: expected TYPE:VALUE, e.g. passport:N0123456`);
    return { type: enumName('IdentifierType', 'IDENTIFIER_TYPE_', s.slice(0, i)), value: s.slice(i + 1) };
  });
  return {
    peer: o.peer,
    text: o.text,
    identifiers,
    purpose: enumName('Purpose', 'PURPOSE_', o.purpose),
    requestType: o['request-type'],
    subject: o.subject,
  };
}

// "passport" -> "IDENTIFIER_TYPE_PASSPORT", checked against the proto's enum.
function enumName(enumType, prefix, text) {
  const known = definition[`liaison.v1.${enumType}`].type.value.map((v) => v.name);
  const name = prefix + text.toUpperCase();
  if (!known.includes(name) || name.endsWith('_UNSPECIFIED')) {
    const choices = known.filter((n) => !n.endsWith('_UNSPECIFIED')).map((n) => n.slice(prefix.length).toLowerCase());
    fail(`unknown ${enumType} ${text}; one of ${choices.join(', ')}`);
  }
  return name;
}

function fail(message) {
  console.error(`liaison_client.js: ${message}`);
  process.exit(1);
}

// A unary call as a promise, with the bearer token and a deadline.
function call(client, method, request, meta) {
  return new Promise((resolve, reject) => {
    client[method](request, meta, { deadline: Date.now() + CALL_TIMEOUT_MS }, (err, response) => {
      if (err) {
        err.message = `${method}: ${grpc.status[err.code] || err.code}: ${err.details}`;
        reject(err);
      } else {
        resolve(response);
      }
    });
  });
}

function contactPoint(id, name, hours) {
  return {
    id,
    handling: 'HANDLING_CODE_GREEN',
    contact_point: {
      name,
      role: 'CONTACT_ROLE_FOCAL_POINT',
      agency: 'Provincial anti-trafficking task force',
      country: process.env.LIAISON_COUNTRY || 'TH',
      languages: ['th', 'en'],
      channels: [{ type: 'CHANNEL_TYPE_PHONE', value: '+66 42 000 222' }],
      availability: { hours, time_zone: 'Asia/Bangkok' },
      last_verified: '2026-11-01',
    },
  };
}

// The change feed from now on: what it has shown, and a way to wait for keys.
class Feed {
  constructor(changes, meta) {
    this.changes = changes;
    this.meta = meta;
    this.created = new Set();
    this.waiters = [];
    this.failed = null;
  }

  // The last seq so far (the backlog without following), then follow from it.
  async start() {
    let since = '0';
    const backlog = this.changes.WatchChanges({ no_follow: true }, this.meta);
    for await (const ev of backlog) since = ev.change.seq;
    this.stream = this.changes.WatchChanges({ since_seq: since }, this.meta);
    this.done = this.follow();
  }

  async follow() {
    try {
      for await (const ev of this.stream) {
        const c = ev.change;
        console.log(`watch: #${c.seq} ${c.type} ${c.record_key || c.request_id}`);
        if (c.type === 'CHANGE_TYPE_RECORD_CREATED') this.created.add(c.record_key);
        this.wake();
      }
    } catch (err) {
      if (err.code !== grpc.status.CANCELLED) {
        this.failed = err;
        this.wake();
      }
    }
  }

  wake() {
    this.waiters = this.waiters.filter((w) => !w());
  }

  // Resolves once the feed showed every id (this node's own records:
  // "originator/id") as created.
  waitForCreated(ids) {
    const has = () => ids.every((id) => [...this.created].some((key) => key.endsWith(`/${id}`)));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`the change feed showed only ${[...this.created].join(', ') || 'nothing'}`));
      }, FEED_TIMEOUT_MS);
      const check = () => {
        if (this.failed) {
          clearTimeout(timer);
          reject(this.failed);
          return true;
        }
        if (has()) {
          clearTimeout(timer);
          resolve();
          return true;
        }
        return false;
      };
      if (!check()) this.waiters.push(check);
    });
  }

  async stop() {
    this.stream.cancel();
    await this.done;
  }
}

async function main() {
  const opt = options();
  const token = process.env.LIAISON_TOKEN;
  if (!token) fail('set LIAISON_TOKEN (liaison user add NAME --role integrator prints one)');
  const api = (process.env.LIAISON_API || '127.0.0.1:7701').replace(/^http:\/\//, '');
  const meta = new grpc.Metadata();
  meta.add('authorization', `Bearer ${token}`);

  // Plaintext gRPC: the local API belongs on loopback (or behind a TLS proxy).
  // grpc-js lets the four clients share one connection.
  const creds = grpc.credentials.createInsecure();
  const records = new v1.RecordService(api, creds);
  const changes = new v1.ChangeService(api, creds);
  const exchange = new v1.ExchangeService(api, creds);
  const requests = new v1.RequestService(api, creds);

  try {
    // 1. Follow the change feed from now on, in the background.
    const feed = new Feed(changes, meta);
    await feed.start();

    // 2. Import a batch; bad records come back as problems naming the field.
    // The request_id makes the call safe to retry: the node answers a repeat
    // with the first answer instead of storing anything again.
    const batch = [
      contactPoint('cp-js-udonthani', 'Udon Thani task force focal point', '08:30-16:30'),
      contactPoint('cp-js-nongkhai', 'Nong Khai border desk', '06:00-22:00'),
      contactPoint('cp-js-mukdahan', 'Mukdahan task force focal point', '08:30-16:30'),
      {
        id: 'cp-js-bad',
        handling: 'HANDLING_CODE_GREEN',
        contact_point: { name: 'x', role: 'CONTACT_ROLE_FOCAL_POINT', agency: 'a', country: 'ZZ' },
      },
    ];
    const importRequest = { records: batch, request_id: crypto.randomUUID() };
    const first = await call(records, 'ImportRecords', importRequest, meta);
    console.log(`imported ${first.stored} of ${batch.length}`);
    for (const p of first.problems) console.log(`  problem in record ${p.index}: ${p.field}: ${p.reason}`);
    const rejected = new Set(first.problems.map((p) => p.index));
    const stored = batch.filter((_, i) => !rejected.has(i)).map((r) => r.id);

    // The answer was lost (say): send the very same call again.
    const again = await call(records, 'ImportRecords', importRequest, meta);
    const same =
      again.stored === first.stored &&
      again.stored_ids.join(',') === first.stored_ids.join(',') &&
      again.problems.length === first.problems.length;
    if (!same) {
      throw new Error(
        `the retried import answered differently: stored ${again.stored} [${again.stored_ids.join(', ')}], ` +
          `first stored ${first.stored} [${first.stored_ids.join(', ')}]`,
      );
    }
    console.log(`retry answered the same: stored ${again.stored}, ids ${again.stored_ids.join(', ')}`);

    // 3. Ask a peer through the node; the node's agreements decide what comes back.
    const q = await call(
      exchange,
      'Query',
      { peer: opt.peer, kind: 'RECORD_KIND_CONTACT_POINT', text: opt.text, purpose: 'PURPOSE_COORDINATION' },
      meta,
    );
    for (const peer of q.peers) {
      console.log(`query ${peer.peer}: ${peer.outcome} ${peer.records.length} record(s) ${peer.error}`.trimEnd());
      for (const rec of peer.records) console.log(`  ${rec.originator}/${rec.id}: ${rec.contact_point.name}`);
    }

    // 4. Hit/no-hit check: only yes/no and a reference to cite come back.
    const references = [];
    if (opt.identifiers.length > 0) {
      const c = await call(
        exchange,
        'CheckIdentifiers',
        { peer: opt.peer, identifiers: opt.identifiers, purpose: opt.purpose },
        meta,
      );
      for (const peer of c.peers) {
        console.log(`check ${peer.peer}: ${peer.outcome} ${peer.error}`.trimEnd());
        for (const r of peer.results) {
          if (r.hit) {
            console.log(`  ${r.identifier}: hit, reference ${r.reference}`);
            references.push(r.reference);
          } else {
            console.log(`  ${r.identifier}: no hit`);
          }
        }
      }
    }

    // 5. A formal request under the agreement's SOP, citing the hits.
    if (opt.peer) {
      const sent = await call(
        requests,
        'SendRequest',
        {
          to: opt.peer,
          request_type: opt.requestType,
          purpose: opt.purpose,
          subject: opt.subject,
          body: 'Please share what you hold on the identifiers that matched.',
          refs: references,
          request_id: crypto.randomUUID(),
        },
        meta,
      );
      const r = sent.request;
      console.log(`request ${r.id}: ${r.state} (${r.header.request_type} to ${r.header.to_node})`);
    }

    // 6. The feed showed this client's records, each created once.
    await feed.waitForCreated(stored);
    await feed.stop();
    console.log('node client ok');
  } finally {
    for (const client of [records, changes, exchange, requests]) client.close();
  }
}

main().catch((err) => {
  console.error(`liaison_client.js: ${err.message}`);
  process.exit(1);
});
