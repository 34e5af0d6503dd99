// Test OpenID Connect provider for opsdesk's Rust integration tests.
//
// Runs panva's certified `oidc-provider` on 127.0.0.1 with one confidential
// client, two fixed accounts and a minimal, browserless login interaction.
// See README.md in this folder for the env vars and the exact HTTP exchange.
//
// Prints exactly one line `OIDC_ISSUER=http://127.0.0.1:PORT` on stdout when
// ready, then serves until SIGTERM/SIGINT.

import { generateKeyPairSync, randomUUID } from 'node:crypto';
import http from 'node:http';

import Provider from 'oidc-provider';

function env(name, fallback) {
  const value = process.env[name];
  if (value === undefined || value === '') {
    if (fallback !== undefined) return fallback;
    process.stderr.write(`oidc fixture: missing required env var ${name}\n`);
    process.exit(2);
  }
  return value;
}

function positiveInt(name, fallback) {
  const raw = env(name, String(fallback));
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n <= 0) {
    process.stderr.write(`oidc fixture: ${name} must be a positive integer, got ${raw}\n`);
    process.exit(2);
  }
  return n;
}

const PORT = Number(env('OIDC_PORT', '0'));
const CLIENT_ID = env('OIDC_CLIENT_ID');
const CLIENT_SECRET = env('OIDC_CLIENT_SECRET');
const REDIRECT_URI = env('OIDC_REDIRECT_URI');
const ID_TOKEN_TTL = positiveInt('OIDC_ID_TOKEN_TTL', 3600);
const AUTH_METHOD = env('OIDC_TOKEN_AUTH_METHOD', 'client_secret_basic');
// Optional second client with the same redirect URI: its ID tokens carry another audience.
const EXTRA_CLIENT_ID = process.env.OIDC_EXTRA_CLIENT_ID || '';
const EXTRA_CLIENT_SECRET = process.env.OIDC_EXTRA_CLIENT_SECRET || '';

if (!Number.isInteger(PORT) || PORT < 0 || PORT > 65535) {
  process.stderr.write(`oidc fixture: bad OIDC_PORT ${process.env.OIDC_PORT}\n`);
  process.exit(2);
}
if (!['client_secret_basic', 'client_secret_post'].includes(AUTH_METHOD)) {
  process.stderr.write(`oidc fixture: OIDC_TOKEN_AUTH_METHOD must be client_secret_basic or client_secret_post\n`);
  process.exit(2);
}

// Fixed accounts, keyed by login. Any other login is refused.
const ACCOUNTS = {
  'ana@example.com': {
    sub: 'ana',
    email: 'ana@example.com',
    email_verified: true,
    name: 'Ana Silva',
    groups: ['ops-admins', 'sre'],
  },
  'bo@example.com': {
    sub: 'bo',
    email: 'bo@example.com',
    email_verified: true,
    name: 'Bo Chen',
    groups: ['requesters'],
  },
  'cy@example.com': {
    sub: 'cy',
    email: 'cy@example.com',
    email_verified: true,
    name: 'Cy Park',
    groups: [],
  },
  // The provider says it has not verified this email.
  'dee@example.com': {
    sub: 'dee',
    email: 'dee@example.com',
    email_verified: false,
    name: 'Dee Unverified',
    groups: ['ops-admins'],
  },
  // The provider says nothing about this email: no email_verified claim at all.
  'eve@example.com': {
    sub: 'eve',
    email: 'eve@example.com',
    name: 'Eve Unsaid',
    groups: ['ops-admins'],
  },
};
const ACCOUNTS_BY_SUB = Object.fromEntries(Object.values(ACCOUNTS).map((a) => [a.sub, a]));

// Fresh RS256 signing key per process; clients must fetch it from jwks_uri.
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingJwk = {
  ...privateKey.export({ format: 'jwk' }),
  kid: `opsdesk-test-${randomUUID()}`,
  alg: 'RS256',
  use: 'sig',
};

// Listen first (so OIDC_PORT=0 gets a real port without a race), then build the
// provider with the issuer derived from the bound port, then attach handlers.
let handler = (_req, res) => {
  res.statusCode = 503;
  res.end('starting');
};
const server = http.createServer((req, res) => handler(req, res));
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(PORT, '127.0.0.1', resolve);
});
const { port } = server.address();
const ISSUER = `http://127.0.0.1:${port}`;

const configuration = {
  clients: [{
    client_id: CLIENT_ID,
    client_secret: CLIENT_SECRET,
    redirect_uris: [REDIRECT_URI],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: AUTH_METHOD,
    id_token_signed_response_alg: 'RS256',
  }, ...(EXTRA_CLIENT_ID ? [{
    client_id: EXTRA_CLIENT_ID,
    client_secret: EXTRA_CLIENT_SECRET,
    redirect_uris: [REDIRECT_URI],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: AUTH_METHOD,
    id_token_signed_response_alg: 'RS256',
  }] : [])],
  jwks: { keys: [signingJwk] },
  // cookies.keys deliberately unset: cookies stay unsigned (no extra `.sig`
  // cookies) so the exchange is simple; oidc-provider warns about it on stderr.
  // Every authorization request must carry a PKCE S256 code_challenge.
  pkce: { required: () => true, methods: ['S256'] },
  scopes: ['openid', 'email', 'profile', 'groups'],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name'],
    groups: ['groups'],
  },
  // Put all claims of the granted scopes into the ID token itself.
  conformIdTokenClaims: false,
  features: {
    devInteractions: { enabled: false },
    // Keep the surface minimal and deterministic.
    revocation: { enabled: false },
    introspection: { enabled: false },
    userinfo: { enabled: true },
  },
  ttl: {
    IdToken: ID_TOKEN_TTL,
    AccessToken: 3600,
    AuthorizationCode: 60,
    Interaction: 600,
    Session: 3600,
    Grant: 3600,
  },
  interactions: {
    url: (_ctx, interaction) => `/interaction/${interaction.uid}`,
  },
  // Auto-consent: always (re)use a grant that covers whatever was requested,
  // so no consent prompt is ever shown.
  async loadExistingGrant(ctx) {
    const { provider, client, session } = ctx.oidc;
    const grantId = ctx.oidc.result?.consent?.grantId || session.grantIdFor(client.clientId);
    let grant = grantId ? await provider.Grant.find(grantId) : undefined;
    if (!grant) {
      grant = new provider.Grant({ clientId: client.clientId, accountId: session.accountId });
    }
    const scopes = [...ctx.oidc.requestParamOIDCScopes];
    if (scopes.length) grant.addOIDCScope(scopes.join(' '));
    const claims = [...ctx.oidc.requestParamClaims];
    if (claims.length) grant.addOIDCClaims(claims);
    await grant.save();
    return grant;
  },
  async findAccount(_ctx, id) {
    const account = ACCOUNTS_BY_SUB[id];
    if (!account) return undefined;
    return {
      accountId: id,
      async claims(_use, _scope) {
        return { ...account, groups: [...account.groups] };
      },
    };
  },
  renderError(ctx, out, _error) {
    ctx.type = 'html';
    ctx.body = `<!DOCTYPE html><title>oidc error</title><pre>${escapeHtml(JSON.stringify(out, null, 2))}</pre>`;
  },
};

const provider = new Provider(ISSUER, configuration);
provider.on('server_error', (_ctx, err) => {
  process.stderr.write(`oidc fixture server_error: ${err?.stack || err}\n`);
});

function escapeHtml(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({
    '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;',
  }[c]));
}

function readForm(req) {
  return new Promise((resolve, reject) => {
    let data = '';
    req.setEncoding('utf8');
    req.on('data', (chunk) => {
      data += chunk;
      if (data.length > 64 * 1024) reject(new Error('body too large'));
    });
    req.on('end', () => resolve(new URLSearchParams(data)));
    req.on('error', reject);
  });
}

function send(res, status, body, type = 'text/html; charset=utf-8') {
  res.statusCode = status;
  res.setHeader('Content-Type', type);
  res.setHeader('Cache-Control', 'no-store');
  res.end(body);
}

function loginPage(uid, message) {
  return `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Sign-in</title></head><body>
<h1>opsdesk test IdP</h1>
${message ? `<p class="error">${escapeHtml(message)}</p>` : ''}
<form method="post" action="/interaction/${escapeHtml(uid)}/login">
  <input type="text" name="login" placeholder="login (email)" required>
  <input type="password" name="password" placeholder="any password" required>
  <button type="submit">Sign-in</button>
</form>
<form method="post" action="/interaction/${escapeHtml(uid)}/abort"><button type="submit">Cancel</button></form>
</body></html>`;
}

// Minimal browserless interaction routes:
//   GET  /interaction/:uid        -> 200 login form (or auto-finishes a consent prompt)
//   POST /interaction/:uid/login  -> 303 Location: {issuer}/auth/:uid
//   POST /interaction/:uid/abort  -> 303 Location: {issuer}/auth/:uid (ends in access_denied)
async function interactions(req, res, path) {
  const m = /^\/interaction\/([^/]+)(?:\/(login|abort))?$/.exec(path);
  if (!m) return send(res, 404, 'not found', 'text/plain');
  const [, uid, action] = m;

  let details;
  try {
    details = await provider.interactionDetails(req, res);
  } catch (err) {
    return send(res, 400, `interaction session not found: ${escapeHtml(err.message)}`, 'text/plain');
  }
  if (details.uid !== uid) return send(res, 400, 'interaction uid mismatch', 'text/plain');

  if (!action) {
    if (req.method !== 'GET') return send(res, 405, 'method not allowed', 'text/plain');
    if (details.prompt.name === 'login') return send(res, 200, loginPage(uid));
    // Consent is auto-granted by loadExistingGrant; finish any other prompt.
    return provider.interactionFinished(req, res, {}, { mergeWithLastSubmission: true });
  }

  if (req.method !== 'POST') return send(res, 405, 'method not allowed', 'text/plain');
  const form = await readForm(req);

  if (action === 'abort') {
    return provider.interactionFinished(req, res, {
      error: 'access_denied',
      error_description: 'End-User aborted interaction',
    }, { mergeWithLastSubmission: false });
  }

  // action === 'login'
  const login = (form.get('login') || '').trim().toLowerCase();
  // The password field is accepted but not checked (any password works).
  const account = ACCOUNTS[login];
  if (!account) {
    // Refused: the authorization request ends with error=access_denied at the redirect_uri.
    return provider.interactionFinished(req, res, {
      error: 'access_denied',
      error_description: 'unknown user',
    }, { mergeWithLastSubmission: false });
  }
  return provider.interactionFinished(req, res, {
    login: { accountId: account.sub },
  }, { mergeWithLastSubmission: false });
}

const providerCallback = provider.callback();
handler = (req, res) => {
  const path = new URL(req.url, ISSUER).pathname;
  if (path.startsWith('/interaction/')) {
    interactions(req, res, path).catch((err) => {
      process.stderr.write(`oidc fixture interaction error: ${err?.stack || err}\n`);
      if (!res.headersSent) send(res, 500, 'interaction error', 'text/plain');
      else res.end();
    });
    return;
  }
  providerCallback(req, res);
};

function shutdown() {
  server.close(() => process.exit(0));
  server.closeAllConnections?.();
  setTimeout(() => process.exit(0), 1000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);

process.stdout.write(`OIDC_ISSUER=${ISSUER}\n`);
