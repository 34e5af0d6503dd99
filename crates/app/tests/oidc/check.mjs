// Verifies the OIDC fixture end to end with a plain HTTP client (node's fetch,
// redirects followed by hand, cookies carried by hand), exactly as a Rust
// integration test would. Usage: node check.mjs   (after npm ci in this folder)
//
// Exit code 0 and a final "check.mjs: N passed, 0 failed" line on success.

import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { strict as assert } from 'node:assert';

const CLIENT_ID = 'opsdesk-test';
const CLIENT_SECRET = 'opsdesk-test-secret';
const REDIRECT_URI = 'http://127.0.0.1:1/callback';
const b64url = (buf) => Buffer.from(buf).toString('base64url');

// ---- start provider.mjs and read the OIDC_ISSUER line ----------------------
function startProvider(extraEnv = {}) {
  const child = spawn(process.execPath, [fileURLToPath(new URL('./provider.mjs', import.meta.url))], {
    env: {
      ...process.env,
      OIDC_PORT: '0',
      OIDC_CLIENT_ID: CLIENT_ID,
      OIDC_CLIENT_SECRET: CLIENT_SECRET,
      OIDC_REDIRECT_URI: REDIRECT_URI,
      ...extraEnv,
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout });
  const issuer = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('provider did not start in 15s')), 15000);
    child.once('exit', (code) => reject(new Error(`provider exited early (${code})`)));
    lines.on('line', (line) => {
      const m = /^OIDC_ISSUER=(http:\/\/127\.0\.0\.1:\d+)$/.exec(line);
      if (m) { clearTimeout(timer); resolve(m[1]); } else console.log(`[provider stdout] ${line}`);
    });
  });
  return { child, issuer };
}

// ---- tiny cookie jar (name -> value; path is ignored, which is harmless) ---
class Jar {
  #cookies = new Map();
  store(res) {
    for (const sc of res.headers.getSetCookie()) {
      const [pair, ...attrs] = sc.split(';');
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      const expired = attrs.some((a) => /^\s*expires=Thu, 01 Jan 1970/i.test(a)) || value === '';
      if (expired) this.#cookies.delete(name); else this.#cookies.set(name, value);
    }
  }
  header() { return [...this.#cookies].map(([k, v]) => `${k}=${v}`).join('; '); }
  names() { return [...this.#cookies.keys()]; }
}

async function request(jar, method, url, { form, headers = {} } = {}) {
  const init = { method, redirect: 'manual', headers: { ...headers } };
  const cookie = jar.header();
  if (cookie) init.headers.cookie = cookie;
  if (form) {
    init.headers['content-type'] = 'application/x-www-form-urlencoded';
    init.body = new URLSearchParams(form).toString();
  }
  const res = await fetch(url, init);
  jar.store(res);
  const location = res.headers.get('location');
  const abs = location ? new URL(location, url).toString() : null;
  console.log(`${method} ${url}\n  -> ${res.status}${abs ? ` Location: ${abs}` : ''}${res.headers.getSetCookie().length ? `\n     Set-Cookie: ${res.headers.getSetCookie().map((c) => c.split('=')[0]).join(', ')}` : ''}`);
  return { res, location: abs, text: await res.text() };
}

// ---- the browserless authorization-code + PKCE flow -----------------------
async function login(issuer, loginName, jar = new Jar()) {

  // 1. discovery
  const disc = await (await fetch(`${issuer}/.well-known/openid-configuration`)).json();
  assert.equal(disc.issuer, issuer);
  assert.ok(disc.code_challenge_methods_supported.includes('S256'));

  // 2. authorization request
  const verifier = b64url(randomBytes(32));
  const challenge = b64url(createHash('sha256').update(verifier).digest());
  const state = b64url(randomBytes(16));
  const nonce = b64url(randomBytes(16));
  const authUrl = new URL(disc.authorization_endpoint);
  authUrl.search = new URLSearchParams({
    client_id: CLIENT_ID,
    redirect_uri: REDIRECT_URI,
    response_type: 'code',
    scope: 'openid email profile groups',
    state,
    nonce,
    code_challenge: challenge,
    code_challenge_method: 'S256',
  }).toString();
  let r = await request(jar, 'GET', authUrl.toString());
  assert.equal(r.res.status, 303);
  const interactionUrl = r.location;
  assert.match(interactionUrl, new RegExp(`^${issuer}/interaction/[^/?]+$`));

  // 3. login form (optional for a client; shows the form fields)
  r = await request(jar, 'GET', interactionUrl);
  assert.equal(r.res.status, 200);
  assert.match(r.text, /name="login"/);

  // 4. submit login
  r = await request(jar, 'POST', `${interactionUrl}/login`, { form: { login: loginName, password: 'anything' } });
  assert.equal(r.res.status, 303);
  const uid = interactionUrl.split('/').pop();
  assert.equal(r.location, `${issuer}/auth/${uid}`);

  // 5. resume authorization -> redirect_uri
  r = await request(jar, 'GET', r.location);
  assert.equal(r.res.status, 303);
  const cb = new URL(r.location);
  assert.equal(`${cb.origin}${cb.pathname}`, REDIRECT_URI);
  console.log(`  cookies held now: ${jar.names().join(', ')}`);
  return { disc, cb, state, verifier, nonce };
}

async function exchange(disc, code, verifier, { method = 'basic', secret = CLIENT_SECRET } = {}) {
  const headers = { 'content-type': 'application/x-www-form-urlencoded' };
  const form = {
    grant_type: 'authorization_code',
    code,
    redirect_uri: REDIRECT_URI,
    code_verifier: verifier,
  };
  if (method === 'basic') {
    // RFC 6749 2.3.1: form-urlencode id and secret, then base64.
    headers.authorization = `Basic ${Buffer.from(`${encodeURIComponent(CLIENT_ID)}:${encodeURIComponent(secret)}`).toString('base64')}`;
  } else {
    form.client_id = CLIENT_ID;
    form.client_secret = secret;
  }
  const res = await fetch(disc.token_endpoint, {
    method: 'POST',
    headers,
    body: new URLSearchParams(form).toString(),
  });
  const body = await res.json();
  console.log(`POST ${disc.token_endpoint}\n  -> ${res.status} keys: ${Object.keys(body).join(', ')}`);
  return { status: res.status, body };
}

const decode = (jwt, i) => JSON.parse(Buffer.from(jwt.split('.')[i], 'base64url').toString());

let passed = 0;
let failed = 0;
async function test(name, fn) {
  console.log(`\n=== ${name}`);
  try { await fn(); passed += 1; console.log(`ok: ${name}`); } catch (err) { failed += 1; console.log(`FAILED: ${name}\n${err.stack}`); }
}

const { child, issuer: issuerP } = startProvider();
let issuer;
try {
  issuer = await issuerP;
  console.log(`provider up at ${issuer}`);

  await test('ana logs in; ID token carries email, name, groups, nonce', async () => {
    const { disc, cb, state, verifier, nonce } = await login(issuer, 'ana@example.com');
    assert.equal(cb.searchParams.get('state'), state);
    assert.equal(cb.searchParams.get('iss'), issuer);
    const code = cb.searchParams.get('code');
    assert.ok(code, 'code in callback');

    const { status, body } = await exchange(disc, code, verifier);
    assert.equal(status, 200);
    assert.equal(body.token_type, 'Bearer');
    const header = decode(body.id_token, 0);
    const payload = decode(body.id_token, 1);
    console.log(`ID token header: ${JSON.stringify(header)}`);
    console.log(`ID token payload: ${JSON.stringify(payload, null, 2)}`);
    assert.equal(header.alg, 'RS256');
    assert.equal(payload.iss, issuer);
    assert.equal(payload.aud, CLIENT_ID);
    assert.equal(payload.sub, 'ana');
    assert.equal(payload.nonce, nonce);
    assert.equal(payload.email, 'ana@example.com');
    assert.equal(payload.email_verified, true);
    assert.equal(payload.name, 'Ana Silva');
    assert.deepEqual(payload.groups, ['ops-admins', 'sre']);
    assert.equal(payload.exp - payload.iat, 3600);

    const jwks = await (await fetch(disc.jwks_uri)).json();
    assert.ok(jwks.keys.some((k) => k.kid === header.kid && k.kty === 'RSA'), 'signing key in JWKS');

    // The code is single-use.
    const again = await exchange(disc, code, verifier);
    assert.equal(again.status, 400);
    assert.equal(again.body.error, 'invalid_grant');
  });

  await test('bo logs in; wrong code_verifier is rejected; right one works', async () => {
    const { disc, cb } = await login(issuer, 'bo@example.com');
    const code = cb.searchParams.get('code');
    const bad = await exchange(disc, code, b64url(randomBytes(32)));
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error, 'invalid_grant');
    // a failed PKCE check invalidates the code, so log in again for the positive case
    const second = await login(issuer, 'bo@example.com');
    const ok = await exchange(second.disc, second.cb.searchParams.get('code'), second.verifier);
    assert.equal(ok.status, 200);
    const payload = decode(ok.body.id_token, 1);
    assert.equal(payload.sub, 'bo');
    assert.equal(payload.name, 'Bo Chen');
    assert.deepEqual(payload.groups, ['requesters']);
  });

  await test('unknown login is refused with access_denied at the redirect_uri', async () => {
    const jar = new Jar();
    const disc = await (await fetch(`${issuer}/.well-known/openid-configuration`)).json();
    const verifier = b64url(randomBytes(32));
    const authUrl = new URL(disc.authorization_endpoint);
    authUrl.search = new URLSearchParams({
      client_id: CLIENT_ID, redirect_uri: REDIRECT_URI, response_type: 'code', scope: 'openid',
      state: 'st', nonce: 'n', code_challenge_method: 'S256',
      code_challenge: b64url(createHash('sha256').update(verifier).digest()),
    }).toString();
    let r = await request(jar, 'GET', authUrl.toString());
    r = await request(jar, 'POST', `${r.location}/login`, { form: { login: 'eve@example.com', password: 'x' } });
    assert.equal(r.res.status, 303);
    r = await request(jar, 'GET', r.location);
    assert.equal(r.res.status, 303);
    const cb = new URL(r.location);
    assert.equal(cb.searchParams.get('error'), 'access_denied');
    assert.equal(cb.searchParams.get('state'), 'st');
    assert.equal(cb.searchParams.get('code'), null);
  });

  await test('authorization request without PKCE is rejected', async () => {
    const disc = await (await fetch(`${issuer}/.well-known/openid-configuration`)).json();
    const authUrl = new URL(disc.authorization_endpoint);
    authUrl.search = new URLSearchParams({
      client_id: CLIENT_ID, redirect_uri: REDIRECT_URI, response_type: 'code', scope: 'openid', state: 'st',
    }).toString();
    const r = await request(new Jar(), 'GET', authUrl.toString());
    assert.equal(r.res.status, 303);
    const cb = new URL(r.location);
    assert.equal(cb.searchParams.get('error'), 'invalid_request');
  });

  await test('wrong client secret is rejected with 401 invalid_client', async () => {
    const { disc, cb, verifier } = await login(issuer, 'ana@example.com');
    const bad = await exchange(disc, cb.searchParams.get('code'), verifier, { secret: 'wrong' });
    assert.equal(bad.status, 401);
    assert.equal(bad.body.error, 'invalid_client');
  });

  await test('existing _session cookie: a second authorization request skips the login form', async () => {
    const jar = new Jar();
    await login(issuer, 'ana@example.com', jar);
    const disc = await (await fetch(`${issuer}/.well-known/openid-configuration`)).json();
    const verifier = b64url(randomBytes(32));
    const authUrl = new URL(disc.authorization_endpoint);
    authUrl.search = new URLSearchParams({
      client_id: CLIENT_ID, redirect_uri: REDIRECT_URI, response_type: 'code',
      scope: 'openid email profile groups', state: 'st2', nonce: 'n2', code_challenge_method: 'S256',
      code_challenge: b64url(createHash('sha256').update(verifier).digest()),
    }).toString();
    const r = await request(jar, 'GET', authUrl.toString());
    assert.equal(r.res.status, 303);
    const cb = new URL(r.location);
    assert.equal(`${cb.origin}${cb.pathname}`, REDIRECT_URI);
    const ok = await exchange(disc, cb.searchParams.get('code'), verifier);
    assert.equal(ok.status, 200);
    assert.equal(decode(ok.body.id_token, 1).nonce, 'n2');
  });
} catch (err) {
  failed += 1;
  console.log(`FAILED: ${err.stack}`);
} finally {
  child.kill('SIGTERM');
  const [code, signal] = await once(child, 'exit');
  console.log(`\nprovider exited after SIGTERM (code ${code}, signal ${signal})`);
  assert.equal(code, 0, 'provider exits 0 on SIGTERM');
}

// Second instance: short-lived ID tokens and client_secret_post.
{
  const { child: child2, issuer: issuer2P } = startProvider({
    OIDC_ID_TOKEN_TTL: '5',
    OIDC_TOKEN_AUTH_METHOD: 'client_secret_post',
  });
  try {
    const issuer2 = await issuer2P;
    console.log(`\nsecond provider up at ${issuer2} (OIDC_ID_TOKEN_TTL=5, client_secret_post)`);
    await test('OIDC_ID_TOKEN_TTL=5 gives exp = iat + 5; client_secret_post works', async () => {
      const { disc, cb, verifier } = await login(issuer2, 'ana@example.com');
      assert.ok(disc.token_endpoint_auth_methods_supported.includes('client_secret_post'));
      const ok = await exchange(disc, cb.searchParams.get('code'), verifier, { method: 'post' });
      assert.equal(ok.status, 200);
      const payload = decode(ok.body.id_token, 1);
      assert.equal(payload.exp - payload.iat, 5);
    });
  } catch (err) {
    failed += 1;
    console.log(`FAILED: ${err.stack}`);
  } finally {
    child2.kill('SIGTERM');
    await once(child2, 'exit');
  }
}

console.log(`check.mjs: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
