// Checks real answers of the running gateway against docs/openapi.yaml (the contract test).
//
//   node contract.mjs walk                      every operation, good and bad requests
//   node contract.mjs generate COUNT SEED       COUNT generated requests, valid and invalid
//   node contract.mjs check METHOD PATH STATUS HEADERS_FILE BODY_FILE
//                                               one answer captured by a shell test (curl -D)
//
// Environment: KEEL_GATEWAY_URL, KEEL_API_KEY (a key of merchant A), KEEL_API_KEY_B (a key of
// merchant B, for walk), KEEL_OPENAPI (default ../../docs/openapi.yaml). Every answer must
// carry a status the operation documents, a body valid against that response's schema, and
// the headers it marks required (and documented headers must match their schemas). walk and
// generate print a JSON summary on stdout; any violation exits 1 after listing them.
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import Ajv2020 from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import YAML from 'yaml';

const here = dirname(fileURLToPath(import.meta.url));
const specPath = process.env.KEEL_OPENAPI ?? resolve(here, '../../docs/openapi.yaml');
const spec = YAML.parse(readFileSync(specPath, 'utf8'), { maxAliasCount: -1 });
const SPEC_ID = 'keel-openapi';

const ajv = new Ajv2020({ strict: false, allErrors: true });
addFormats(ajv);
ajv.addFormat('int64', true);
ajv.addSchema(spec, SPEC_ID);

const violations = [];
let checked = 0;

function fail(what, detail) {
  violations.push(`${what}: ${detail}`);
}

function pointer(parts) {
  return '#/' + parts.map((p) => String(p).replaceAll('~', '~0').replaceAll('/', '~1')).join('/');
}

// A $ref'd object of the spec, followed until it is not a reference; returns [object, parts].
function deref(obj, parts) {
  while (obj && obj.$ref) {
    parts = obj.$ref.replace(/^#\//, '').split('/').map((p) => p.replaceAll('~1', '/').replaceAll('~0', '~'));
    obj = parts.reduce((o, k) => o[k], spec);
  }
  return [obj, parts];
}

const validators = new Map();
function validatorFor(parts) {
  const key = pointer(parts);
  if (!validators.has(key)) {
    const v = ajv.getSchema(`${SPEC_ID}${key}`);
    if (!v) throw new Error(`no schema at ${key}`);
    validators.set(key, v);
  }
  return validators.get(key);
}

// The spec's path template for a concrete path, e.g. /v1/payments/pay_x -> /v1/payments/{id}.
function templateOf(path) {
  const segs = path.split('?')[0].split('/');
  for (const t of Object.keys(spec.paths)) {
    const ts = t.split('/');
    if (ts.length === segs.length && ts.every((s, i) => s.startsWith('{') || s === segs[i])) return t;
  }
  return null;
}

// Checks one answer; headers is a plain object with lower-case names.
export function checkAnswer(method, path, status, headers, body, label = '') {
  checked++;
  const what = `${label ? label + ' ' : ''}${method} ${path} -> ${status}`;
  const template = templateOf(path);
  if (!template) return fail(what, 'path is not in the OpenAPI document');
  const op = spec.paths[template][method.toLowerCase()];
  if (!op) return fail(what, `method not documented for ${template}`);
  const raw = op.responses[String(status)];
  if (!raw) return fail(what, `status ${status} is not documented (documented: ${Object.keys(op.responses).join(', ')})`);
  const [resp, respParts] = deref(raw, ['paths', template, method.toLowerCase(), 'responses', String(status)]);
  for (const [name, hraw] of Object.entries(resp.headers ?? {})) {
    const [h, hParts] = deref(hraw, [...respParts, 'headers', name]);
    const value = headers[name.toLowerCase()];
    if (value === undefined) {
      if (h.required) fail(what, `required header ${name} is missing`);
      continue;
    }
    const v = validatorFor([...hParts, 'schema']);
    if (!v(value)) fail(what, `header ${name}: ${JSON.stringify(value)} ${ajv.errorsText(v.errors)}`);
  }
  const content = resp.content ?? {};
  const ctype = (headers['content-type'] ?? '').split(';')[0].trim();
  if (Object.keys(content).length === 0) return;
  if (!content[ctype]) return fail(what, `content type '${ctype}' not documented (${Object.keys(content).join(', ')})`);
  if (ctype !== 'application/json') return;
  let doc;
  try {
    doc = JSON.parse(body);
  } catch (e) {
    return fail(what, `body is not JSON: ${String(body).slice(0, 200)}`);
  }
  const v = validatorFor([...respParts, 'content', ctype, 'schema']);
  if (!v(doc)) fail(what, `body ${String(body).slice(0, 300)}: ${ajv.errorsText(v.errors)}`);
  return doc;
}

// One HTTP exchange with node's http module (which, unlike fetch, lets a test send odd
// headers and bodies as they are). Resolves to {status, headers, body}.
export function request(method, path, { headers = {}, body = null, timeoutMs = 10000 } = {}) {
  const url = new URL(path, process.env.KEEL_GATEWAY_URL);
  return new Promise((ok, ko) => {
    const req = http.request(url, { method, headers, agent: keepAlive, timeout: timeoutMs }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => ok({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('timeout', () => req.destroy(new Error(`timeout after ${timeoutMs} ms`)));
    req.on('error', ko);
    if (body !== null) req.write(body);
    req.end();
  });
}
const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 8 });

function auth(key) {
  return { Authorization: `Bearer ${key}` };
}
function jsonHeaders(key, idem) {
  const h = { ...auth(key), 'Content-Type': 'application/json' };
  if (idem !== undefined) h['Idempotency-Key'] = idem;
  return h;
}

async function call(label, method, path, opts) {
  const r = await request(method, path, opts);
  const doc = checkAnswer(method, path, r.status, r.headers, r.body, label);
  return { ...r, doc };
}

function expectStatus(label, r, status, code) {
  if (r.status !== status) fail(label, `expected ${status}, got ${r.status}: ${r.body.slice(0, 200)}`);
  else if (code && r.doc?.error?.code !== code) fail(label, `expected code ${code}, got ${r.body.slice(0, 200)}`);
}

const uid = () => `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;

// Every operation with requests that succeed and requests that fail, for two merchants.
async function walk() {
  const A = process.env.KEEL_API_KEY;
  const B = process.env.KEEL_API_KEY_B ?? A;
  const pay = await call('create', 'POST', '/v1/payments', {
    headers: jsonHeaders(A, uid()),
    body: JSON.stringify({ amount: 2500, currency: 'usd', description: 'contract', metadata: { k: 'v' } }),
  });
  expectStatus('create', pay, 202);
  const id = pay.doc?.id;
  const key = uid();
  const body = JSON.stringify({ amount: 100, currency: 'eur' });
  expectStatus('idempotent first', await call('idem 1', 'POST', '/v1/payments', { headers: jsonHeaders(A, key), body }), 202);
  const replay = await call('idem 2', 'POST', '/v1/payments', { headers: jsonHeaders(A, key), body });
  expectStatus('replay', replay, 202);
  if (replay.headers['idempotent-replayed'] !== 'true') fail('replay', 'no Idempotent-Replayed: true');
  expectStatus('reuse', await call('reuse', 'POST', '/v1/payments', { headers: jsonHeaders(A, key), body: JSON.stringify({ amount: 101, currency: 'eur' }) }), 422, 'idempotency_key_reused');
  expectStatus('no key', await call('no key', 'POST', '/v1/payments', { headers: jsonHeaders(A), body }), 400, 'idempotency_key_missing');
  expectStatus('bad body', await call('bad', 'POST', '/v1/payments', { headers: jsonHeaders(A, uid()), body: '{"amount":' }), 400, 'invalid_json');
  expectStatus('extra field', await call('extra', 'POST', '/v1/payments', { headers: jsonHeaders(A, uid()), body: '{"amount":1,"currency":"usd","status":"succeeded"}' }), 400, 'parameter_unknown');
  expectStatus('media type', await call('415', 'POST', '/v1/payments', { headers: { ...auth(A), 'Content-Type': 'text/plain', 'Idempotency-Key': uid() }, body }), 415, 'unsupported_media_type');
  expectStatus('no auth', await call('401', 'POST', '/v1/payments', { headers: { 'Content-Type': 'application/json' }, body }), 401, 'invalid_api_key');
  expectStatus('413', await call('413', 'POST', '/v1/payments', { headers: { ...jsonHeaders(A, uid()), 'Content-Length': '1000000' } }), 413, 'body_too_large');
  expectStatus('431', await call('431', 'GET', '/v1/payments', { headers: { ...auth(A), 'X-Padding': 'p'.repeat(20000) } }), 431, 'headers_too_large');

  expectStatus('get', await call('get', 'GET', `/v1/payments/${id}`, { headers: auth(A) }), 200);
  expectStatus('get other merchant', await call('get B', 'GET', `/v1/payments/${id}`, { headers: auth(B) }), 404, 'resource_missing');
  expectStatus('get missing', await call('get missing', 'GET', '/v1/payments/pay_0000', { headers: auth(A) }), 404);
  expectStatus('list', await call('list', 'GET', '/v1/payments?limit=2&status=pending', { headers: auth(A) }), 200);
  expectStatus('list gte', await call('list gte', 'GET', `/v1/payments?created%5Bgte%5D=${encodeURIComponent('2020-01-01T00:00:00+02:00')}&created%5Blt%5D=4102444800`, { headers: auth(A) }), 200);
  expectStatus('list bad', await call('list bad', 'GET', '/v1/payments?limit=500', { headers: auth(A) }), 400, 'parameter_invalid_integer');
  expectStatus('list unknown', await call('list unknown', 'GET', '/v1/payments?merchant_id=x', { headers: auth(A) }), 400, 'parameter_unknown');
  expectStatus('list cursor B', await call('list B', 'GET', `/v1/payments?starting_after=${id}`, { headers: auth(B) }), 404, 'resource_missing');

  // Refunds need a succeeded payment: wait (bounded) for keel-payments to settle it.
  let status = 'pending';
  for (let i = 0; i < 100 && status === 'pending'; i++) {
    await new Promise((r) => setTimeout(r, 200));
    status = (await call('poll', 'GET', `/v1/payments/${id}`, { headers: auth(A) })).doc?.status;
  }
  const rpath = `/v1/payments/${id}/refunds`;
  expectStatus('refund other merchant', await call('refund B', 'POST', rpath, { headers: jsonHeaders(B, uid()), body: '{}' }), 404, 'resource_missing');
  expectStatus('refund bad', await call('refund bad', 'POST', rpath, { headers: jsonHeaders(A, uid()), body: '{"amount":"1"}' }), 400, 'parameter_invalid_integer');
  if (status === 'succeeded') {
    expectStatus('refund', await call('refund', 'POST', rpath, { headers: jsonHeaders(A, uid()), body: '{"amount":1000,"reason":"contract"}' }), 202);
    expectStatus('over refund', await call('over', 'POST', rpath, { headers: jsonHeaders(A, uid()), body: '{"amount":2000}' }), 400, 'amount_exceeds_refundable');
  } else {
    expectStatus('refund unsettled', await call('refund', 'POST', rpath, { headers: jsonHeaders(A, uid()), body: '{}' }), 400, 'payment_not_refundable');
  }
  expectStatus('refund list', await call('refunds', 'GET', `${rpath}?limit=5`, { headers: auth(A) }), 200);
  expectStatus('refund list B', await call('refunds B', 'GET', rpath, { headers: auth(B) }), 404);
  expectStatus('refund list bad', await call('refunds bad', 'GET', `${rpath}?status=x`, { headers: auth(A) }), 400, 'parameter_unknown');

  // The ledger's and the notifier's endpoints, reached through the gateway.
  const today = new Date().toISOString().slice(0, 10);
  expectStatus('balance', await call('balance', 'GET', '/v1/balance', { headers: auth(A) }), 200);
  expectStatus('balance transactions', await call('txns', 'GET', '/v1/balance/transactions?limit=2', { headers: auth(A) }), 200);
  expectStatus('balance transactions bad', await call('txns bad', 'GET', '/v1/balance/transactions?limit=0', { headers: auth(A) }), 400);
  expectStatus('statement', await call('statement', 'GET', `/v1/statements/${today}`, { headers: auth(A) }), 200);
  expectStatus('statement bad', await call('statement bad', 'GET', '/v1/statements/2026-13-01', { headers: auth(A) }), 400);
  expectStatus('webhook list', await call('webhooks', 'GET', '/v1/webhook_endpoints', { headers: auth(A) }), 200);
  const we = `/v1/webhook_endpoints/we_${'0'.repeat(32)}`;
  expectStatus('webhook get', await call('webhook get', 'GET', we, { headers: auth(A) }), 404);
  expectStatus('webhook delete', await call('webhook delete', 'DELETE', we, { headers: auth(A) }), 404);
  expectStatus('webhook rotate', await call('webhook rotate', 'POST', `${we}/rotate_secret`, { headers: jsonHeaders(A), body: '{}' }), 404);
  expectStatus('webhook create private', await call('webhook create', 'POST', '/v1/webhook_endpoints', {
    headers: jsonHeaders(A), body: JSON.stringify({ url: 'https://10.1.2.3/hook', enabled_events: ['payment.succeeded'] }),
  }), 400);
  expectStatus('webhook no auth', await call('webhook 401', 'GET', '/v1/webhook_endpoints', {}), 401);
  for (const p of ['/healthz', '/readyz', '/metrics']) expectStatus(p, await call(p, 'GET', p, {}), 200);
  return { payment: id, payment_status: status };
}

// A small deterministic generator (mulberry32), so a failing run can be repeated by seed.
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// The currencies of docs/api.md with their exponents and largest amounts.
const currencies = spec.components.schemas.Currency.enum;
const exponent0 = new Set(['clp', 'isk', 'jpy', 'krw', 'pyg', 'ugx', 'vnd', 'xaf', 'xof']);
const exponent3 = new Set(['bhd', 'iqd', 'jod', 'kwd', 'lyd', 'omr', 'tnd']);
const maxAmount = (c) => (exponent0.has(c) || exponent3.has(c) ? 99999999999 : 9999999999);

// One request: a valid payment, or one with exactly one fault and the status and param the
// gateway must name for it.
function generateOne(r, i) {
  const pick = (xs) => xs[Math.floor(r() * xs.length)];
  const currency = pick(currencies);
  const valid = { amount: 1 + Math.floor(r() * Math.min(maxAmount(currency), 1e7)), currency: r() < 0.5 ? currency : currency.toUpperCase() };
  if (r() < 0.5) valid.description = 'gen ' + 'é'.repeat(Math.floor(r() * 50));
  if (r() < 0.5) valid.metadata = { order: String(i), ['k' + 'x'.repeat(Math.floor(r() * 39))]: 'v'.repeat(Math.floor(r() * 500)) };
  if (r() < 0.3) valid.payment_method = 'pm_card_visa';
  const body = { ...valid };
  const req = { method: 'POST', path: '/v1/payments', idem: `gen-${i}-${uid()}`, ctype: 'application/json', auth: true, raw: null, expect: 202, param: null };
  const faults = [
    () => { delete body.amount; req.param = 'amount'; },
    () => { body.amount = 12.5; req.param = 'amount'; },
    () => { body.amount = '1999'; req.param = 'amount'; },
    () => { body.amount = -Math.floor(r() * 1000); req.param = 'amount'; },
    () => { body.amount = maxAmount(currency) + 1; body.currency = currency; req.param = 'amount'; },
    () => { delete body.currency; req.param = 'currency'; },
    () => { body.currency = pick(['xyz', 'us', 'usdd', 'btc', '']); req.param = 'currency'; },
    () => { body.currency = 840; req.param = 'currency'; },
    () => { body.description = 'd'.repeat(1001); req.param = 'description'; },
    () => { body.description = { text: 'x' }; req.param = 'description'; },
    () => { body.metadata = 'order=1'; req.param = 'metadata'; },
    () => { body.metadata = Object.fromEntries(Array.from({ length: 51 }, (_, k) => [`k${k}`, 'v'])); req.param = 'metadata'; },
    () => { body.metadata = { ['k'.repeat(41)]: 'v' }; req.param = 'metadata'; },
    () => { body.metadata = { order: 'v'.repeat(501) }; req.param = 'metadata[order]'; },
    () => { body.metadata = { order: 7 }; req.param = 'metadata[order]'; },
    () => { body.payment_method = ''; req.param = 'payment_method'; },
    () => { const f = pick(['status', 'merchant_id', 'id', 'created_at', 'amount_refunded', 'provider']); body[f] = 'x'; req.param = f; },
    () => { req.raw = JSON.stringify(body).slice(0, -1); },
    () => { req.raw = JSON.stringify([body]); },
    () => { req.raw = '{"amount":1,"amount":2,"currency":"usd"}'; },
    () => { req.raw = '{"metadata":' + '{"a":'.repeat(9) + '1' + '}'.repeat(10); },
    () => { req.raw = Buffer.from('{"amount":1,"currency":"usd","description":"\xff\xfe"}', 'latin1'); },
    () => { req.ctype = pick(['text/plain', 'application/x-www-form-urlencoded', 'application/json; charset=latin1']); req.expect = 415; },
    () => { req.idem = undefined; req.param = 'Idempotency-Key'; },
    () => { req.idem = 'k'.repeat(256); req.param = 'Idempotency-Key'; },
    () => { req.auth = false; req.expect = 401; },
    () => { req.method = 'GET'; req.path = `/v1/payments?limit=${pick(['0', '101', 'abc', '-1', '1.5'])}`; req.param = 'limit'; },
    () => { req.method = 'GET'; req.path = `/v1/payments?status=${pick(['refunded', 'PENDING', ''])}`; req.param = 'status'; },
    () => { req.method = 'GET'; req.path = '/v1/payments?created%5Bgte%5D=yesterday'; req.param = 'created[gte]'; },
    () => { req.method = 'GET'; req.path = '/v1/payments?starting_after=pay_xyz'; req.param = 'starting_after'; },
    () => { req.method = 'GET'; req.path = `/v1/payments/pay_${'0'.repeat(32)}`; req.expect = 404; req.param = 'id'; },
  ];
  if (r() < 0.6) {
    pick(faults)();
    if (req.expect === 202) req.expect = 400;
  } else if (r() < 0.1) {
    req.method = 'GET';
    req.path = '/v1/payments?limit=3';
    req.expect = 200;
  }
  if (req.method === 'POST' && req.raw === null) req.raw = JSON.stringify(body);
  return req;
}

async function generate(count, seed) {
  const A = process.env.KEEL_API_KEY;
  const r = rng(seed);
  const reqs = Array.from({ length: count }, (_, i) => generateOne(r, i));
  const created = [];
  const statuses = {};
  let next = 0;
  async function worker() {
    while (next < reqs.length) {
      const q = reqs[next++];
      const headers = {};
      if (q.auth) headers.Authorization = `Bearer ${A}`;
      if (q.method === 'POST') {
        headers['Content-Type'] = q.ctype;
        if (q.idem !== undefined) headers['Idempotency-Key'] = q.idem;
      }
      const res = await call('generated', q.method, q.path, { headers, body: q.method === 'POST' ? q.raw : null });
      statuses[res.status] = (statuses[res.status] ?? 0) + 1;
      const what = `generated ${q.method} ${q.path} ${typeof q.raw === 'string' ? q.raw.slice(0, 120) : '(bytes)'}`;
      if (res.status !== q.expect) fail(what, `expected ${q.expect}, got ${res.status}: ${res.body.slice(0, 200)}`);
      else if (q.expect >= 400 && res.doc?.error?.param !== q.param) fail(what, `expected param ${JSON.stringify(q.param)}, got ${JSON.stringify(res.doc?.error?.param)}`);
      if (res.status === 202 && q.method === 'POST') created.push(res.doc.id);
    }
  }
  await Promise.all(Array.from({ length: 8 }, worker));
  return { requests: count, statuses, created };
}

async function main() {
  const [mode, ...args] = process.argv.slice(2);
  let summary;
  if (mode === 'walk') {
    summary = await walk();
  } else if (mode === 'generate') {
    summary = await generate(Number(args[0] ?? 1000), Number(args[1] ?? 1));
  } else if (mode === 'check' && args.length === 5) {
    const [method, path, status, headerFile, bodyFile] = args;
    const headers = {};
    for (const line of readFileSync(headerFile, 'utf8').split(/\r?\n/)) {
      const m = line.match(/^([A-Za-z0-9-]+):\s*(.*)$/);
      if (m) headers[m[1].toLowerCase()] = m[2];
    }
    checkAnswer(method, path, Number(status), headers, readFileSync(bodyFile, 'utf8'));
    summary = {};
  } else {
    console.error('usage: node contract.mjs walk | generate COUNT SEED | check METHOD PATH STATUS HEADERS_FILE BODY_FILE');
    process.exit(2);
  }
  keepAlive.destroy();
  console.log(JSON.stringify({ ...summary, checked, violations: violations.length }));
  if (violations.length > 0) {
    for (const v of violations.slice(0, 50)) console.error(`contract: ${v}`);
    process.exit(1);
  }
}

main().catch((e) => {
  console.error(`contract: ${e.stack ?? e}`);
  process.exit(1);
});
