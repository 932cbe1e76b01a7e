#!/usr/bin/env node
// Test-only OAuth 2.0 authorization server for keygate integration tests.
//
//   node tests/support/oidc/server.mjs --dir DIR [--port N]
//
// DIR holds ca.pem/server.pem/server-key.pem (made by ../mkcerts.sh if missing).
// Prints exactly one JSON line on stdout once listening; everything else goes
// to stderr. See ../README.md for the full interface.

import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as https from 'node:https';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

// Everything the provider (or its dependencies) would print goes to stderr:
// stdout carries exactly one JSON line.
console.log = console.error;
console.info = console.error;
console.warn = console.error;

const here = path.dirname(fileURLToPath(import.meta.url));

function parseArgs(argv) {
  const out = { dir: undefined, port: 0 };
  for (let i = 0; i < argv.length; i += 1) {
    const a = argv[i];
    if (a === '--dir') out.dir = argv[++i];
    else if (a.startsWith('--dir=')) out.dir = a.slice(6);
    else if (a === '--port') out.port = Number(argv[++i]);
    else if (a.startsWith('--port=')) out.port = Number(a.slice(7));
    else {
      process.stderr.write(`unknown argument: ${a}\nusage: server.mjs --dir DIR [--port N]\n`);
      process.exit(2);
    }
  }
  if (!out.dir) {
    process.stderr.write('usage: server.mjs --dir DIR [--port N]\n');
    process.exit(2);
  }
  out.dir = path.resolve(out.dir);
  return out;
}

const args = parseArgs(process.argv.slice(2));
fs.mkdirSync(args.dir, { recursive: true });
for (const f of ['ca.pem', 'server.pem', 'server-key.pem']) {
  if (!fs.existsSync(path.join(args.dir, f))) {
    execFileSync(path.join(here, '..', 'mkcerts.sh'), [args.dir], { stdio: ['ignore', 2, 2] });
    break;
  }
}

const ACCESS_TOKEN_TTL = Number(process.env.ACCESS_TOKEN_TTL || 30);
const REFRESH_TOKEN_TTL = Number(process.env.REFRESH_TOKEN_TTL || 14 * 24 * 3600);
const EVENTS = path.join(args.dir, 'events.jsonl');
// oidc-provider answers access_denied ("no scope was granted") to an
// authorization request that ends up with no known scope, so requests to
// /auth and /device/auth without a scope parameter get this one injected.
const DEFAULT_SCOPE = process.env.DEFAULT_SCOPE || 'git';
const EXTRA_SCOPES = (process.env.EXTRA_SCOPES || '').split(/[\s,]+/).filter(Boolean);
// "interval" added to device authorization responses (RFC 8628 default is 5s).
const DEVICE_INTERVAL = Number(process.env.DEVICE_INTERVAL || 1);
// Dynamic client registration (RFC 7591, with RFC 7592 management), off
// unless asked for: REGISTRATION=open lets any client register;
// REGISTRATION_TOKEN=T also requires T as the initial access token.
const REGISTRATION = process.env.REGISTRATION === 'open';
const REGISTRATION_TOKEN = process.env.REGISTRATION_TOKEN || false;
// The CI identity issuer, its exchange grants and the Entra-like endpoint
// (ci.mjs), off unless asked for: they change the discovery document.
const ci = process.env.CI_IDENTITY === 'on' ? await import('./ci.mjs') : null;

function logEvent(obj) {
  fs.appendFileSync(EVENTS, `${JSON.stringify({ ts: new Date().toISOString(), ...obj })}\n`);
}

// ---------------------------------------------------------------------------
// In-memory adapter we control (so /__test/revoke-all can wipe tokens).
// ---------------------------------------------------------------------------
const stores = new Map(); // model name -> Map(id -> { payload, expiresAt })
const grantIndex = new Map(); // grantId -> Set of [model, id]
const userCodeIndex = new Map(); // userCode -> id
const uidIndex = new Map(); // session uid -> id

function storeFor(name) {
  if (!stores.has(name)) stores.set(name, new Map());
  return stores.get(name);
}

class TestAdapter {
  constructor(name) {
    this.name = name;
    this.store = storeFor(name);
  }

  async upsert(id, payload, expiresIn) {
    const expiresAt = typeof expiresIn === 'number' ? Date.now() + expiresIn * 1000 : Infinity;
    this.store.set(id, { payload: structuredClone(payload), expiresAt });
    if (payload.grantId) {
      if (!grantIndex.has(payload.grantId)) grantIndex.set(payload.grantId, new Set());
      grantIndex.get(payload.grantId).add(JSON.stringify([this.name, id]));
    }
    if (payload.userCode) userCodeIndex.set(payload.userCode, id);
    if (payload.uid) uidIndex.set(payload.uid, id);
  }

  async find(id) {
    const e = this.store.get(id);
    if (!e) return undefined;
    if (e.expiresAt <= Date.now()) {
      this.store.delete(id);
      return undefined;
    }
    return structuredClone(e.payload);
  }

  async findByUserCode(userCode) {
    const id = userCodeIndex.get(userCode);
    return id ? this.find(id) : undefined;
  }

  async findByUid(uid) {
    const id = uidIndex.get(uid);
    return id ? this.find(id) : undefined;
  }

  async consume(id) {
    const e = this.store.get(id);
    if (e) e.payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) {
    this.store.delete(id);
  }

  async revokeByGrantId(grantId) {
    const members = grantIndex.get(grantId);
    if (!members) return;
    for (const m of members) {
      const [model, id] = JSON.parse(m);
      storeFor(model).delete(id);
    }
    grantIndex.delete(grantId);
  }
}

function revokeAll() {
  const counts = {};
  for (const model of ['AccessToken', 'RefreshToken', 'ClientCredentials', 'Grant', 'Session', 'AuthorizationCode']) {
    const s = storeFor(model);
    counts[model] = s.size;
    s.clear();
  }
  grantIndex.clear();
  uidIndex.clear();
  return counts;
}

// ---------------------------------------------------------------------------
// HTTPS server first (port needed for the issuer), provider second.
// ---------------------------------------------------------------------------
const { default: Provider, errors: oidcErrors } = await import('oidc-provider');

const server = https.createServer({
  key: fs.readFileSync(path.join(args.dir, 'server-key.pem')),
  cert: fs.readFileSync(path.join(args.dir, 'server.pem')),
});

await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(args.port, '127.0.0.1', resolve);
});
const { port } = server.address();
const issuer = `https://127.0.0.1:${port}`;

const NATIVE_REDIRECTS = ['http://127.0.0.1/callback', 'com.example.keygate:/callback'];

const configuration = {
  adapter: TestAdapter,
  clients: [
    {
      client_id: 'keygate-test',
      application_type: 'native',
      token_endpoint_auth_method: 'none',
      redirect_uris: NATIVE_REDIRECTS,
      grant_types: ['authorization_code', 'refresh_token', 'urn:ietf:params:oauth:grant-type:device_code'],
      response_types: ['code'],
    },
    {
      // The client a test package bakes in (tests/support/package/clients),
      // confidential as GitHub's and Bitbucket's apps are.
      client_id: 'keygate-packaged',
      client_secret: 'packaged-public-secret',
      application_type: 'native',
      token_endpoint_auth_method: 'client_secret_basic',
      redirect_uris: NATIVE_REDIRECTS,
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
    },
    {
      client_id: 'keygate-ci',
      client_secret: 'ci-secret-do-not-leak',
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
    },
    {
      client_id: 'keygate-ci-post',
      client_secret: 'ci-secret-do-not-leak',
      token_endpoint_auth_method: 'client_secret_post',
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
    },
    {
      client_id: 'git-server',
      client_secret: 'git-server-secret',
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: [],
      response_types: [],
      redirect_uris: [],
    },
    ...(ci ? ci.clients : []),
  ],
  // Any account id is accepted (login = any username).
  async findAccount(ctx, id) {
    return { accountId: id, async claims() { return { sub: id }; } };
  },
  scopes: [...new Set(['openid', 'offline_access', 'git', 'read', 'write', 'repo', DEFAULT_SCOPE, ...EXTRA_SCOPES])],
  pkce: { required: () => true },
  features: {
    devInteractions: { enabled: true },
    deviceFlow: { enabled: true },
    revocation: { enabled: true },
    introspection: { enabled: true, allowedPolicy: async () => true },
    clientCredentials: { enabled: true },
    registration: { enabled: REGISTRATION, initialAccessToken: REGISTRATION_TOKEN },
    registrationManagement: { enabled: REGISTRATION, rotateRegistrationAccessToken: false },
  },
  rotateRefreshToken: true,
  // Issue refresh tokens for code & device flows even without offline_access.
  async issueRefreshToken(ctx, client, source) {
    return client.grantTypeAllowed('refresh_token');
  },
  // Tokens must not die with the (scripted) browser's session cookie.
  async expiresWithSession() {
    return false;
  },
  ttl: {
    AccessToken: ACCESS_TOKEN_TTL,
    ClientCredentials: ACCESS_TOKEN_TTL,
    AuthorizationCode: 120,
    DeviceCode: 600,
    RefreshToken: REFRESH_TOKEN_TTL,
    Grant: REFRESH_TOKEN_TTL + 3600,
    Interaction: 3600,
    Session: 14 * 24 * 3600,
    IdToken: 3600,
  },
  cookies: { keys: ['keygate-test-cookie-key-not-secret'] },
  // Keep error pages terse and on stderr.
  async renderError(ctx, out, error) {
    ctx.type = 'html';
    ctx.body = `<!DOCTYPE html><html><body><h1>oops</h1><pre id="error">${
      String(out.error).replace(/[<>&]/g, '')}: ${String(out.error_description || '').replace(/[<>&]/g, '')}</pre></body></html>`;
  },
};

const provider = new Provider(issuer, configuration);
provider.on('server_error', (ctx, err) => process.stderr.write(`server_error: ${err?.stack || err}\n`));
provider.on('grant.error', (ctx, err) => process.stderr.write(`grant.error: ${err?.name}: ${err?.message} ${err?.error_detail || ''}\n`));
const ciRoutes = ci
  ? await ci.install({ provider, errors: oidcErrors, issuer, dir: args.dir, logEvent, readBody })
  : null;
provider.on('authorization.error', (ctx, err) => process.stderr.write(`authorization.error: ${err?.message} ${err?.error_detail || ''}\n`));

// Event log middleware: one synchronous JSON line per request to the token,
// authorization, device, revocation (and introspection) endpoints, written
// after the provider has produced the response but before koa sends it.
const ROUTES = [
  [/^\/token$/, 'token'],
  [/^\/auth$/, 'authorization'],
  [/^\/auth\/[^/]+$/, 'authorization_resume'],
  [/^\/device\/auth$/, 'device_authorization'],
  [/^\/device$/, 'device_verification'],
  [/^\/token\/revocation$/, 'revocation'],
  [/^\/token\/introspection$/, 'introspection'],
  [/^\/\.well-known\//, 'discovery'],
  [/^\/reg(\/[^/]+)?$/, 'registration'],
];

provider.use(async (ctx, next) => {
  const match = ROUTES.find(([re]) => re.test(ctx.path));
  if (!match) {
    await next();
    return;
  }
  const ev = { endpoint: match[1], method: ctx.method };
  try {
    await next();
  } finally {
    ev.status = ctx.status;
    let params;
    try { params = ctx.oidc?.params; } catch { /* not yet */ }
    const clientId = (() => { try { return ctx.oidc?.client?.clientId; } catch { return undefined; } })();
    if (clientId) ev.client_id = clientId;
    if (ev.endpoint === 'token') {
      try { ev.grant_type = params?.grant_type ?? ctx.oidc?.body?.grant_type; } catch { /* ignore */ }
      // Which CI id token an exchange presented: its jti, never the token.
      if (ctx.state?.idTokenJti) ev.id_token_jti = ctx.state.idTokenJti;
    }
    if (ev.endpoint === 'revocation') {
      try { if (params?.token_type_hint) ev.token_type_hint = params.token_type_hint; } catch { /* ignore */ }
    }
    if (ctx.body && typeof ctx.body === 'object' && !Buffer.isBuffer(ctx.body) && typeof ctx.body.pipe !== 'function') {
      if (ctx.body.error) ev.error = ctx.body.error;
      if (ev.endpoint === 'introspection' && 'active' in ctx.body) ev.active = ctx.body.active;
      if (ev.endpoint === 'device_authorization' && ctx.status === 200 && ctx.body.device_code && !ctx.body.interval) {
        ctx.body = { ...ctx.body, interval: DEVICE_INTERVAL };
      }
    }
    const loc = ctx.response.get('location');
    if (loc) {
      try {
        const u = new URL(loc, issuer);
        const err = u.searchParams.get('error');
        if (err) ev.error = err;
        if (!u.href.startsWith(issuer)) ev.redirect = /^https?:$/.test(u.protocol) ? `${u.protocol}//${u.host}${u.pathname}` : `${u.protocol}${u.pathname}`;
      } catch { /* ignore */ }
    }
    try { logEvent(ev); } catch (e) { process.stderr.write(`event log failed: ${e}\n`); }
  }
});

const providerCallback = provider.callback();

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function normalizeUserCode(input) {
  return String(input).toUpperCase().replace(/[^A-Z0-9]/g, '');
}

async function approveDevice(userCodeInput, accountId) {
  const code = await provider.DeviceCode.findByUserCode(normalizeUserCode(userCodeInput), { ignoreExpiration: true });
  if (!code) return [404, { error: 'not_found' }];
  if (code.isExpired) return [410, { error: 'expired' }];
  if (code.error || code.accountId) return [409, { error: 'already_used' }];
  const requested = (code.params?.scope || '').split(' ').filter((s) => configuration.scopes.includes(s));
  const grant = new provider.Grant({ accountId, clientId: code.clientId });
  if (requested.length) grant.addOIDCScope(requested.join(' '));
  const grantId = await grant.save();
  Object.assign(code, {
    accountId,
    authTime: Math.floor(Date.now() / 1000),
    grantId,
    scope: requested.length ? requested.join(' ') : undefined,
  });
  if (!code.scope) delete code.scope;
  await code.save();
  return [200, { approved: true, account: accountId, client_id: code.clientId }];
}

async function denyDevice(userCodeInput) {
  const code = await provider.DeviceCode.findByUserCode(normalizeUserCode(userCodeInput), { ignoreExpiration: true });
  if (!code) return [404, { error: 'not_found' }];
  Object.assign(code, { error: 'access_denied', errorDescription: 'End-User aborted interaction' });
  await code.save();
  return [200, { denied: true }];
}

async function testEndpoint(req, res, url) {
  const send = (status, obj) => {
    res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(`${JSON.stringify(obj)}\n`);
  };
  if (req.method !== 'POST') {
    send(405, { error: 'method_not_allowed' });
    return;
  }
  const body = new URLSearchParams(await readBody(req));
  for (const [k, v] of url.searchParams) if (!body.has(k)) body.set(k, v);
  let status;
  let out;
  switch (url.pathname) {
    case '/__test/revoke-all':
      status = 200;
      out = { revoked: revokeAll() };
      break;
    case '/__test/approve-device':
      if (!body.get('user_code')) [status, out] = [400, { error: 'user_code required' }];
      else [status, out] = await approveDevice(body.get('user_code'), body.get('account') || 'alice');
      break;
    case '/__test/deny-device':
      if (!body.get('user_code')) [status, out] = [400, { error: 'user_code required' }];
      else [status, out] = await denyDevice(body.get('user_code'));
      break;
    default:
      [status, out] = [404, { error: 'not_found' }];
  }
  logEvent({ endpoint: url.pathname.slice(1), status });
  send(status, out);
}

server.on('request', (req, res) => {
  const url = new URL(req.url, issuer);
  if (ciRoutes && /^\/(ci|entra)\//.test(url.pathname)) {
    ciRoutes.handle(req, res, url).catch((e) => {
      process.stderr.write(`ci route error: ${e?.stack || e}\n`);
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
    return;
  }
  if (url.pathname.startsWith('/__test/')) {
    testEndpoint(req, res, url).catch((e) => {
      process.stderr.write(`test endpoint error: ${e?.stack || e}\n`);
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
    return;
  }
  if (url.pathname === '/auth' && req.method === 'GET') {
    if (!url.searchParams.get('scope')) {
      url.searchParams.set('scope', DEFAULT_SCOPE);
      req.url = `${url.pathname}${url.search}`;
    }
    providerCallback(req, res);
    return;
  }
  if ((url.pathname === '/auth' || url.pathname === '/device/auth') && req.method === 'POST'
      && /application\/x-www-form-urlencoded/i.test(req.headers['content-type'] || '')) {
    // Pre-read the form body (oidc-provider then uses req.body) to inject the
    // default scope.
    readBody(req).then((text) => {
      const form = new URLSearchParams(text);
      if (!form.get('scope')) form.set('scope', DEFAULT_SCOPE);
      req.body = form.toString();
      providerCallback(req, res);
    }, () => { res.writeHead(400); res.end(); });
    return;
  }
  providerCallback(req, res);
});

process.stdout.write(`${JSON.stringify({
  issuer,
  port,
  authorization_endpoint: `${issuer}/auth`,
  token_endpoint: `${issuer}/token`,
  device_authorization_endpoint: `${issuer}/device/auth`,
  revocation_endpoint: `${issuer}/token/revocation`,
  introspection_endpoint: `${issuer}/token/introspection`,
  verification_uri: `${issuer}/device`,
  test_revoke_all: `${issuer}/__test/revoke-all`,
  test_approve_device: `${issuer}/__test/approve-device`,
  ...(ciRoutes ? ciRoutes.info : {}),
})}\n`);
process.stderr.write(`oidc test server listening on ${issuer} (ACCESS_TOKEN_TTL=${ACCESS_TOKEN_TTL}s)\n`);

let stopping = false;
function shutdown(sig) {
  if (stopping) return;
  stopping = true;
  process.stderr.write(`oidc test server: ${sig}, exiting\n`);
  // Everything (event log included) is written synchronously: nothing to flush.
  server.close();
  server.closeAllConnections?.();
  process.exit(0);
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
