// A throwaway CI identity issuer, the grants that accept its id tokens,
// and an Entra-like federated-credential token endpoint, for keygate's
// CI-identity tests (tests/it/ci_identity.rs). Loaded by server.mjs when
// CI_IDENTITY=on. See ../README.md, section 2a.
//
// The CI issuer lives at ISSUER/ci with its own ES256 key and JWKS (a
// second, "untrusted" key signs tokens no JWKS vouches for). It mints
// GitHub-Actions-style id tokens at /ci/oidctoken (ACTIONS_ID_TOKEN_REQUEST_URL
// semantics), hangs at /ci/hang/oidctoken, and mints to order at
// /ci/__test/mint. Every token it mints is appended to DIR/ci-minted.txt,
// so a test can look for it where it must not be; the event log gets the
// jti only.

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { SignJWT, createLocalJWKSet, exportJWK, generateKeyPair, jwtVerify } from 'jose';

const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
const CLIENT_ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const ID_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:id_token';
const JWT_TYPE = 'urn:ietf:params:oauth:token-type:jwt';

export const clients = [
  // RFC 8693 / RFC 7523 §2.1 from CI: public, no secret.
  {
    client_id: 'keygate-ci-exchange',
    token_endpoint_auth_method: 'none',
    grant_types: [TOKEN_EXCHANGE, JWT_BEARER],
    response_types: [],
    redirect_uris: [],
  },
  // What the Entra-like endpoint mints tokens for.
  {
    client_id: 'keygate-entra',
    client_secret: 'entra-side-secret-never-used-by-keygate',
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
  },
];

export const grantTypes = [TOKEN_EXCHANGE, JWT_BEARER];

/**
 * Installs the CI issuer and the grants on `provider`; returns the handler
 * for /ci/* and /entra/* requests (or null for other paths).
 */
export async function install({ provider, errors, issuer, dir, logEvent, readBody }) {
  const ciIssuer = `${issuer}/ci`;
  const trusted = await generateKeyPair('ES256', { extractable: true });
  const untrusted = await generateKeyPair('ES256', { extractable: true });
  const trustedJwk = { ...(await exportJWK(trusted.publicKey)), kid: 'ci-1', alg: 'ES256', use: 'sig' };
  const jwks = { keys: [trustedJwk] };
  const keySet = createLocalJWKSet(jwks);
  const requestToken = crypto.randomBytes(24).toString('base64url');
  // What the exchange grants expect of an id token.
  const audience = process.env.CI_AUDIENCE || issuer;
  const subjectPattern = new RegExp(process.env.CI_SUBJECT_PATTERN || '^repo:acme/demo:ref:refs/heads/');
  const subject = process.env.CI_SUBJECT || 'repo:acme/demo:ref:refs/heads/main';
  const ttl = Number(process.env.CI_TOKEN_TTL || 300);
  // The Entra-like federated credential: issuer, subject, audience.
  const entraSubject = process.env.ENTRA_SUBJECT || subject;
  const entraAudience = 'api://AzureADTokenExchange';
  const minted = path.join(dir, 'ci-minted.txt');

  async function mint({ aud, sub = subject, lifetime = ttl, key = 'trusted', iss = ciIssuer }) {
    const now = Math.floor(Date.now() / 1000);
    const jti = crypto.randomUUID();
    const signing = key === 'untrusted' ? untrusted.privateKey : trusted.privateKey;
    const jwt = await new SignJWT({ repository: 'acme/demo', ref: 'refs/heads/main', job_workflow_ref: 'acme/demo/.github/workflows/ci.yml@refs/heads/main' })
      .setProtectedHeader({ alg: 'ES256', kid: key === 'untrusted' ? 'ci-untrusted' : 'ci-1', typ: 'JWT' })
      .setIssuer(iss)
      .setSubject(sub)
      .setAudience(aud)
      .setJti(jti)
      .setIssuedAt(now)
      .setNotBefore(now - 5)
      .setExpirationTime(now + lifetime)
      .sign(signing);
    fs.appendFileSync(minted, `${jwt}\n`);
    return { jwt, jti };
  }

  /** Verifies a CI id token; throws `errors.InvalidGrant` with why. */
  async function verify(token, expected, Err = errors.InvalidGrant) {
    let payload;
    try {
      ({ payload } = await jwtVerify(token, keySet, {
        issuer: ciIssuer,
        audience: expected.audience,
        algorithms: ['ES256'],
      }));
    } catch (e) {
      throw new Err(`id token refused: ${e.code || e.message}`);
    }
    if (!expected.subject(payload.sub)) {
      throw new Err(`id token subject ${payload.sub} is not trusted`);
    }
    return payload;
  }

  async function issue(ctx, payload, gty) {
    const { client } = ctx.oidc;
    const scope = (ctx.oidc.params.scope || 'git').split(' ').filter(Boolean).join(' ');
    const grant = new provider.Grant({ accountId: payload.sub, clientId: client.clientId });
    grant.addOIDCScope(scope);
    const grantId = await grant.save();
    const token = new provider.AccessToken({ accountId: payload.sub, client, grantId, scope, gty });
    const value = await token.save();
    ctx.body = {
      access_token: value,
      token_type: 'Bearer',
      expires_in: token.expiration,
      scope,
      ...(gty === 'token_exchange' ? { issued_token_type: 'urn:ietf:params:oauth:token-type:access_token' } : {}),
    };
  }

  const expectations = { audience, subject: (sub) => subjectPattern.test(sub || '') };

  provider.registerGrantType(TOKEN_EXCHANGE, async (ctx) => {
    const { params } = ctx.oidc;
    if (!params.subject_token) throw new errors.InvalidRequest('missing subject_token');
    if (![ID_TOKEN_TYPE, JWT_TYPE].includes(params.subject_token_type)) {
      throw new errors.InvalidRequest('unsupported subject_token_type');
    }
    ctx.state.idTokenJti = jtiOf(params.subject_token);
    const payload = await verify(params.subject_token, expectations);
    await issue(ctx, payload, 'token_exchange');
  }, ['subject_token', 'subject_token_type', 'audience', 'scope', 'requested_token_type', 'actor_token', 'actor_token_type']);

  provider.registerGrantType(JWT_BEARER, async (ctx) => {
    const { params } = ctx.oidc;
    if (!params.assertion) throw new errors.InvalidRequest('missing assertion');
    ctx.state.idTokenJti = jtiOf(params.assertion);
    const payload = await verify(params.assertion, expectations);
    await issue(ctx, payload, 'jwt_bearer');
  }, ['assertion', 'scope']);

  const sendJson = (res, status, body) => {
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
    res.end(JSON.stringify(body));
  };

  // Entra's answers to a federated credential it does not match
  // (AADSTS700211/700212/700213: no matching federated identity record for
  // the assertion's issuer, audience, subject; AADSTS700024: not within its
  // valid time range), modelled from the error texts Entra documents.
  async function entraToken(req, res) {
    const form = new URLSearchParams(await readBody(req));
    const ev = { endpoint: 'entra_token', method: req.method, client_id: form.get('client_id') || undefined };
    const fail = (status, error, code, text) => {
      ev.status = status;
      ev.error = error;
      logEvent(ev);
      sendJson(res, status, {
        error,
        error_description: `AADSTS${code}: ${text} Trace ID: 00000000-0000-0000-0000-000000000000`,
        error_codes: [code],
        timestamp: new Date().toISOString().replace('T', ' ').slice(0, 19) + 'Z',
      });
    };
    if (form.get('grant_type') !== 'client_credentials') return fail(400, 'unsupported_grant_type', 70003, 'The app requested an unsupported grant type.');
    if (form.get('client_id') !== 'keygate-entra') return fail(400, 'unauthorized_client', 700016, `Application with identifier '${form.get('client_id')}' was not found in the directory.`);
    if (form.get('client_assertion_type') !== CLIENT_ASSERTION_TYPE || !form.get('client_assertion')) {
      return fail(401, 'invalid_client', 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.");
    }
    if (form.get('client_secret')) return fail(401, 'invalid_client', 90023, 'Multiple client credentials were presented.');
    if (!(form.get('scope') || '').endsWith('/.default')) return fail(400, 'invalid_scope', 1002012, 'The provided value for scope is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier.');
    const assertion = form.get('client_assertion');
    ev.id_token_jti = jtiOf(assertion);
    let payload;
    try {
      ({ payload } = await jwtVerify(assertion, keySet, { algorithms: ['ES256'] }));
    } catch (e) {
      if (e.code === 'ERR_JWT_EXPIRED') return fail(401, 'invalid_client', 700024, 'Client assertion is not within its valid time range.');
      return fail(401, 'invalid_client', 700211, 'No matching federated identity record found for presented assertion issuer.');
    }
    if (payload.iss !== ciIssuer) return fail(401, 'invalid_client', 700211, `No matching federated identity record found for presented assertion issuer '${payload.iss}'.`);
    const auds = [].concat(payload.aud || []);
    if (!auds.includes(entraAudience)) return fail(401, 'invalid_client', 700212, `No matching federated identity record found for presented assertion audience '${auds.join(',')}'.`);
    if (payload.sub !== entraSubject) return fail(401, 'invalid_client', 700213, `No matching federated identity record found for presented assertion subject '${payload.sub}'.`);
    const client = await provider.Client.find('keygate-entra');
    const token = new provider.ClientCredentials({ client, scope: 'git' });
    const value = await token.save();
    ev.status = 200;
    logEvent(ev);
    sendJson(res, 200, { token_type: 'Bearer', expires_in: token.expiration, ext_expires_in: token.expiration, access_token: value });
  }

  async function handle(req, res, url) {
    const p = url.pathname;
    if (p === '/ci/.well-known/openid-configuration') {
      return sendJson(res, 200, { issuer: ciIssuer, jwks_uri: `${ciIssuer}/.well-known/jwks`, id_token_signing_alg_values_supported: ['ES256'] });
    }
    if (p === '/ci/.well-known/jwks') return sendJson(res, 200, jwks);
    if (p === '/ci/oidctoken' && req.method === 'GET') {
      const ev = { endpoint: 'ci_actions', method: 'GET', audience: url.searchParams.get('audience') };
      if (req.headers.authorization !== `bearer ${requestToken}`) {
        ev.status = 401;
        logEvent(ev);
        return sendJson(res, 401, { message: 'invalid request token' });
      }
      const { jwt, jti } = await mint({ aud: url.searchParams.get('audience') || 'https://github.com/acme' });
      Object.assign(ev, { status: 200, jti });
      logEvent(ev);
      return sendJson(res, 200, { count: jwt.length, value: jwt });
    }
    if (p === '/ci/hang/oidctoken') {
      logEvent({ endpoint: 'ci_hang', method: req.method });
      // Never answers; the server's shutdown closes the socket.
      return undefined;
    }
    if (p === '/ci/__test/mint' && req.method === 'POST') {
      const form = new URLSearchParams(await readBody(req));
      for (const [k, v] of url.searchParams) if (!form.has(k)) form.set(k, v);
      const { jwt, jti } = await mint({
        aud: form.get('aud') || audience,
        sub: form.get('sub') || subject,
        lifetime: form.has('ttl') ? Number(form.get('ttl')) : ttl,
        key: form.get('key') || 'trusted',
        iss: form.get('iss') || ciIssuer,
      });
      logEvent({ endpoint: 'ci_mint', status: 200, jti });
      res.writeHead(200, { 'content-type': 'application/jwt' });
      return res.end(jwt);
    }
    if (/^\/entra\/[^/]+\/oauth2\/v2\.0\/token$/.test(p) && req.method === 'POST') return entraToken(req, res);
    return sendJson(res, 404, { error: 'not_found' });
  }

  return {
    handle,
    info: {
      ci_issuer: ciIssuer,
      ci_actions_url: `${ciIssuer}/oidctoken?api-version=2.0`,
      ci_hang_url: `${ciIssuer}/hang/oidctoken?api-version=2.0`,
      ci_request_token: requestToken,
      ci_mint: `${ciIssuer}/__test/mint`,
      entra_token_endpoint: `${issuer}/entra/tenant-1/oauth2/v2.0/token`,
    },
  };
}

/** The jti of a JWT, unverified, for the event log (never the token). */
function jtiOf(jwt) {
  try {
    return JSON.parse(Buffer.from(String(jwt).split('.')[1], 'base64url').toString('utf8')).jti;
  } catch {
    return undefined;
  }
}
