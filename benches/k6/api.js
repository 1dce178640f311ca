// k6 load script for a liaison node's local API (gRPC, plain HTTP/2, bearer
// token). `benches/k6/run` starts a throwaway node, seeds it and runs this;
// it also runs on its own against any node:
//
//   k6 run --no-usage-report -e LIAISON_API=127.0.0.1:7701 \
//     -e LIAISON_TOKEN="$(cat liaison-data/admin.token)" benches/k6/api.js
//
// Scenarios, one RPC each, run one after another (PARALLEL=1: all at once):
//   create  RecordService/CreateRecord, a new contact point per iteration
//           (ids unique per run, VU and iteration)
//   get     RecordService/GetRecord of the seeded contact points
//   list    RecordService/ListRecords filtered by kind and text
//   status  NodeService/GetStatus
//
// Environment (k6 `-e NAME=VALUE` or the shell's):
//   LIAISON_API    host:port of the local API (an http:// prefix is dropped); default 127.0.0.1:7701
//   LIAISON_TOKEN  bearer token (required)
//   VUS            virtual users per scenario; default 16
//   DURATION       each scenario's duration, e.g. 30s, 2m; default 30s
//   SCENARIOS      comma-separated subset, e.g. get,list,status (read-only); default all four
//   PARALLEL       1: run the scenarios at the same time instead of in turn
//   SEED_TEXT      text the seeded contact points' names share (get and list use them); default "k6 seed"
//   PROTO_DIR      the repository's proto/ directory; default ../../proto from this file
//
// Every call's status is checked, and `checks: rate==1` makes k6 exit
// non-zero when any call fails. There are no latency thresholds: k6 reports
// the latencies, nothing asserts them.

import grpc from 'k6/net/grpc';
import { check, fail } from 'k6';
import exec from 'k6/execution';
import { Counter } from 'k6/metrics';

const API = (__ENV.LIAISON_API || '127.0.0.1:7701').replace(/^https?:\/\//, '').replace(/\/+$/, '');
const TOKEN = __ENV.LIAISON_TOKEN || '';
const VUS = parseInt(__ENV.VUS || '16', 10);
const DURATION = __ENV.DURATION || '30s';
const PARALLEL = __ENV.PARALLEL === '1';
const SEED_TEXT = __ENV.SEED_TEXT || 'k6 seed';
const PROTO_DIR = __ENV.PROTO_DIR || '../../proto';
const ALL = ['create', 'get', 'list', 'status'];
const SELECTED = (__ENV.SCENARIOS || ALL.join(','))
  .split(',')
  .map((s) => s.trim())
  .filter((s) => s.length > 0);

for (const s of SELECTED) {
  if (!ALL.includes(s)) {
    throw new Error(`unknown scenario "${s}" in SCENARIOS; known: ${ALL.join(', ')}`);
  }
}
if (!TOKEN) {
  throw new Error('LIAISON_TOKEN is not set (the admin token is in the node directory: admin.token)');
}

/** Seconds in a k6 duration such as "30s", "2m", "1m30s", "500ms". */
function seconds(d) {
  const units = { ms: 0.001, s: 1, m: 60, h: 3600 };
  let total = 0;
  let rest = d;
  const part = /^(\d+(?:\.\d+)?)(ms|s|m|h)/;
  while (rest.length > 0) {
    const m = rest.match(part);
    if (!m) throw new Error(`DURATION "${d}" is not a duration like 30s or 2m`);
    total += parseFloat(m[1]) * units[m[2]];
    rest = rest.slice(m[0].length);
  }
  return total;
}

const scenarios = {};
const thresholds = { checks: ['rate==1'] };
SELECTED.forEach((name, i) => {
  scenarios[name] = {
    executor: 'constant-vus',
    exec: name,
    vus: VUS,
    duration: DURATION,
    // In turn, so each RPC's figures are its own.
    startTime: PARALLEL ? '0s' : `${Math.round(i * seconds(DURATION) * 1000)}ms`,
    gracefulStop: '5s',
  };
  // Per-scenario criteria on outcomes only (they also list each scenario in the summary).
  thresholds[`checks{scenario:${name}}`] = ['rate==1'];
  thresholds[`liaison_calls{scenario:${name}}`] = ['count>0'];
});

export const options = {
  scenarios,
  thresholds,
  summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(99)', 'max'],
  setupTimeout: '60s',
};

const client = new grpc.Client();
client.load([PROTO_DIR], 'liaison/v1/records.proto', 'liaison/v1/node.proto');

// k6 counts no gRPC calls of its own (it has only grpc_req_duration): every call, tagged with its scenario.
const calls = new Counter('liaison_calls');
const params = { metadata: { authorization: `Bearer ${TOKEN}` }, timeout: '30s' };
let connected = false;
let failuresLogged = 0;

function connect() {
  if (!connected) {
    client.connect(API, { plaintext: true, timeout: '10s' });
    connected = true;
  }
}

/** Calls one RPC and checks its status (and `more` checks on the response). */
function call(method, req, more) {
  const res = client.invoke(method, req, params);
  calls.add(1);
  const checks = {};
  checks[`${method.split('/')[1]} status is OK`] = (r) => r && r.status === grpc.StatusOK;
  const ok = check(res, Object.assign(checks, more || {}));
  // The first few failures of each VU say why (the checks count them all).
  if (!ok && failuresLogged < 3) {
    failuresLogged += 1;
    const why = res && res.error ? res.error.message || JSON.stringify(res.error) : 'unexpected response';
    console.warn(`${method}: ${why}`);
  }
  return res;
}

// Contact points the run's records are modelled on (deploy/examples/contact-point.json).
function contactPoint(id, name) {
  return {
    id,
    handling: 'HANDLING_CODE_GREEN',
    contactPoint: {
      name,
      role: 'CONTACT_ROLE_NATIONAL_POINT_OF_CONTACT',
      agency: 'Anti-Trafficking in Persons Division, Royal Thai Police',
      country: 'TH',
      languages: ['th', 'en'],
      channels: [
        { type: 'CHANNEL_TYPE_PHONE', value: '+66 2 123 4567' },
        { type: 'CHANNEL_TYPE_EMAIL', value: 'duty@atpd.example.th' },
      ],
      availability: { always: true, timeZone: 'Asia/Bangkok' },
      lastVerified: '2026-11-01',
      office: true,
    },
  };
}

/** Once, before the scenarios: the seeded contact points' ids, and a run id. */
export function setup() {
  connect();
  const ids = [];
  if (SELECTED.includes('get') || SELECTED.includes('list')) {
    let pageToken = '';
    do {
      const res = call('liaison.v1.RecordService/ListRecords', {
        kind: 'RECORD_KIND_CONTACT_POINT',
        text: SEED_TEXT,
        pageSize: 1000,
        pageToken,
      });
      if (!res || res.status !== grpc.StatusOK) fail(`listing the seeded contact points failed at ${API}`);
      for (const r of res.message.records || []) ids.push(r.id);
      pageToken = res.message.nextPageToken || '';
    } while (pageToken && ids.length < 10000);
    if (ids.length === 0) {
      fail(`no contact point at ${API} matches "${SEED_TEXT}": seed some first (benches/k6/run does) or set SEED_TEXT`);
    }
  }
  // Base-36 milliseconds: this run's created ids differ from any earlier run's.
  return { ids, run: Date.now().toString(36) };
}

export function create(data) {
  connect();
  const id = `k6-${data.run}-${exec.vu.idInTest}-${exec.vu.iterationInScenario}`;
  call(
    'liaison.v1.RecordService/CreateRecord',
    { record: contactPoint(id, `k6 load officer ${exec.vu.idInTest}`) },
    { 'CreateRecord stored version 1': (r) => Boolean(r && r.message && r.message.record && r.message.record.version === '1') },
  );
}

export function get(data) {
  connect();
  const id = data.ids[(exec.vu.idInTest * 7919 + exec.vu.iterationInScenario) % data.ids.length];
  call('liaison.v1.RecordService/GetRecord', { id }, {
    'GetRecord returns the record asked for': (r) => Boolean(r && r.message && r.message.record && r.message.record.id === id),
  });
}

export function list() {
  connect();
  call(
    'liaison.v1.RecordService/ListRecords',
    { kind: 'RECORD_KIND_CONTACT_POINT', text: SEED_TEXT, pageSize: 20 },
    { 'ListRecords finds seeded records': (r) => Boolean(r && r.message && (r.message.records || []).length > 0) },
  );
}

export function status() {
  connect();
  call('liaison.v1.NodeService/GetStatus', {}, {
    'GetStatus counts records': (r) => Boolean(r && r.message && Number(r.message.recordCount) > 0),
  });
}
