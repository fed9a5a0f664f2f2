// A real OpenID provider for sso-sidecar's tests and demo: the OpenID Certified npm package
// `oidc-provider`, configured from a JSON document in the IDP_CONFIG environment variable
// (or a file named as the first argument). It listens on 127.0.0.1 and prints one JSON line
// {"issuer": ..., "port": ...} when ready.
//
// Settings (all optional):
//   port            listen port; 0 (default) picks a free one
//   issuerPath      path of the issuer, e.g. "/v2.0" to mimic Azure AD's v2 issuer format
//   clients         [{client_id, client_secret, redirect_uris, post_logout_redirect_uris,
//                     token_endpoint_auth_method, backchannel_logout_uri}]
//   ttl             {AccessToken, IdToken, RefreshToken, Session} in seconds
//   rotateRefreshToken  true: every refresh returns a new refresh token and the old one dies
//   refreshTokens   false: never issue refresh tokens
//   users           {"<login>": {claims...}}; unknown logins get claims derived from the name
//   azure           true: add Azure AD's `oid` claim (a stable UUID per user)
//   idTokenClaims   "full" (default: profile and email in the ID token) or "minimal"
//                   (only sub; the rest must come from userinfo)
//   keys            a JWKS {"keys": [...]} of private keys; a fresh RS256 key otherwise
//   jwtAccessTokens an audience (e.g. "api://shop"): access tokens become RS256 JWTs for it
//                   (resource indicators), carrying `oid` and `groups` like Azure AD's
//   acrValues       e.g. ["urn:shop:pwd", "urn:shop:mfa"]: published as acr_values_supported;
//                   the login form gets a one-time code field, and the sign-in's `acr` is the
//                   last value when a code was entered (amr ["pwd", "otp"]), else the first
//                   (amr ["pwd"]). The claims parameter (an essential `acr`) makes the login
//                   form come back until the sign-in is strong enough.
//   claimsParameter false: the claims parameter is not supported (acr_values only a wish)
//   requirePar      true: every authorization request must be pushed (RFC 9126)
//   dpopNonce       true: DPoP proofs must carry a nonce the provider hands out (RFC 9449 §8)
//   resources       ["https://api.example", ...]: resource indicators (RFC 8707) accepted;
//                   access tokens become JWTs whose `aud` is the requested resource
//   issuerOrigin    e.g. "https://127.0.0.1:8443": the provider runs behind a TLS proxy there
//                   (it trusts X-Forwarded-* headers then)
//   mtlsHeader      true: tls_client_auth and certificate-bound access tokens (RFC 8705),
//                   with the client certificate passed by the TLS proxy in
//                   X-SSL-Client-Cert (URL-escaped PEM) and its check in X-SSL-Client-Verify,
//                   as nginx's $ssl_client_escaped_cert and $ssl_client_verify give them
//   Clients may carry any client metadata oidc-provider knows: token_endpoint_auth_method
//   (client_secret_jwt, private_key_jwt with jwks_uri), dpop_bound_access_tokens,
//   require_pushed_authorization_requests.
//
// Test helpers: GET /_test/stats counts grants by type (and `par`, `dpop` proofs seen at the
// token endpoint, `client_auth` methods, `resources` asked for at the token endpoint); POST /_test/rotate-keys adds a new
// signing key in front of the old ones; POST /_test/forge?mode=M makes the token endpoint
// hand out a forged ID token (wrong_key, wrong_aud, wrong_iss, wrong_nonce, expired,
// alg_none), to prove the relying party rejects it; mode=off ends that.
// POST /_test/garble?target=discovery|token|jwks|userinfo|introspection&mode=html|json|slow|off makes an
// endpoint answer an HTML error page, broken JSON, or only after 5 s.
// POST /_test/sign with JSON {claims, mode, typ} signs arbitrary claims (typ: the header's
// `typ`, none by default): mode "valid" (the
// provider's key), "wrong_key" (a foreign key under the same kid), "unknown_kid",
// "hs256_public" (HMAC keyed with the public key: the classic algorithm confusion), "none".
// GET /_test/sid?session=<_session cookie>&client=shop gives the sid of a browser session.
// POST /_test/user with JSON {login, claims} replaces a user's configured claims (the next
// token or refresh carries them: a user who changed departments).
// POST /_test/logout-token with JSON {sub, sid, aud, nonce, wrongKey, noEvent, iat} returns a
// back-channel logout token signed with the provider's key (or a foreign one).
import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
import { createHash, generateKeyPairSync, randomBytes, randomUUID, X509Certificate } from 'node:crypto';
import Provider, { errors } from 'oidc-provider';
import * as jose from 'jose';

const settings = JSON.parse(
  process.argv[2] ? readFileSync(process.argv[2], 'utf8') : (process.env.IDP_CONFIG || '{}'),
);

function newSigningKey() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), alg: 'RS256', use: 'sig' };
}

function uuidFor(name) {
  const h = createHash('sha256').update(`oid:${name}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

function claimsFor(login) {
  const configured = (settings.users || {})[login] || {};
  const local = login.includes('@') ? login.split('@')[0] : login;
  const base = {
    sub: configured.sub || login,
    email: `${local}@example.com`,
    email_verified: true,
    name: local.charAt(0).toUpperCase() + local.slice(1) + ' Tester',
    preferred_username: local,
  };
  if (settings.azure) base.oid = uuidFor(login);
  return { ...base, ...configured };
}

const stats = {
  grants: {}, grant_errors: {}, logouts: 0, backchannel: 0, revocations: 0,
  par: 0, dpop: 0, client_auth: {}, resources: [],
};
let forgeMode = 'off';
// Fault injection: which endpoint misbehaves and how (html, json, slow).
const garble = {};
const GARBLE_PATHS = {
  discovery: '/.well-known/openid-configuration', token: '/token', jwks: '/jwks', userinfo: '/me',
  introspection: '/token/introspection',
};

// Rewrites a genuine ID token the way an attacker or a broken IdP would.
async function forge(idToken) {
  const claims = jose.decodeJwt(idToken);
  const header = jose.decodeProtectedHeader(idToken);
  const now = Math.floor(Date.now() / 1000);
  let signingKey = keys[0];
  switch (forgeMode) {
    case 'wrong_key': signingKey = { ...newSigningKey(), kid: header.kid }; break;
    case 'wrong_aud': claims.aud = 'someone-else'; break;
    case 'wrong_iss': claims.iss = 'https://evil.example'; break;
    case 'wrong_nonce': claims.nonce = 'not-the-nonce'; break;
    case 'expired': claims.iat = now - 7200; claims.exp = now - 3600; break;
    case 'alg_none': {
      const enc = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
      return `${enc({ alg: 'none', typ: 'JWT' })}.${enc(claims)}.`;
    }
    default: return idToken;
  }
  const key = await jose.importJWK(signingKey, 'RS256');
  return new jose.SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid: signingKey.kid }).sign(key);
}
const keys = settings.keys?.keys || [newSigningKey()];
const ttl = settings.ttl || {};
const scopeClaims = {
  openid: ['sub'],
  email: ['email', 'email_verified'],
  profile: ['name', 'given_name', 'family_name', 'preferred_username', 'oid', 'groups', 'realm_access'],
};

function buildProvider(issuer) {
  const provider = new Provider(issuer, {
    clients: (settings.clients || []).map((c) => ({
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      ...c,
    })),
    jwks: { keys },
    clientAuthMethods: [
      'client_secret_basic', 'client_secret_jwt', 'client_secret_post', 'private_key_jwt', 'none',
      ...(settings.mtlsHeader ? ['tls_client_auth'] : []),
    ],
    claims: { ...scopeClaims, amr: null },
    conformIdTokenClaims: settings.idTokenClaims === 'minimal',
    scopes: ['openid', 'offline_access', 'email', 'profile'],
    pkce: { required: () => true },
    ...(settings.acrValues ? { acrValues: settings.acrValues } : {}),
    extraTokenClaims: async (ctx, token) => {
      if (!settings.jwtAccessTokens || !token.accountId) return undefined;
      const claims = claimsFor(token.accountId);
      return { oid: claims.oid, groups: claims.groups || [] };
    },
    features: {
      resourceIndicators: {
        enabled: Boolean(settings.jwtAccessTokens || settings.resources),
        defaultResource: () => settings.jwtAccessTokens,
        useGrantedResource: () => true,
        getResourceServerInfo: (ctx, resource) => {
          if (settings.resources && !settings.resources.includes(resource)) {
            throw new errors.InvalidTarget();
          }
          return {
          scope: 'openid profile email offline_access',
          audience: settings.resources ? resource : settings.jwtAccessTokens,
          accessTokenFormat: 'jwt',
          accessTokenTTL: ttl.AccessToken || 3600,
          jwt: { sign: { alg: 'RS256' } },
          };
        },
      },
      mTLS: {
        enabled: Boolean(settings.mtlsHeader),
        tlsClientAuth: true,
        certificateBoundAccessTokens: true,
        getCertificate: (ctx) => {
          const escaped = ctx.get('x-ssl-client-cert');
          return escaped ? decodeURIComponent(escaped) : undefined;
        },
        certificateAuthorized: (ctx) => ctx.get('x-ssl-client-verify') === 'SUCCESS',
        certificateSubjectMatches: (ctx, property, expected) => {
          if (property !== 'tls_client_auth_subject_dn') return false;
          const certificate = new X509Certificate(decodeURIComponent(ctx.get('x-ssl-client-cert')));
          return certificate.subject.split('\n').join(',') === expected;
        },
      },
      pushedAuthorizationRequests: {
        enabled: true,
        requirePushedAuthorizationRequests: Boolean(settings.requirePar),
      },
      dPoP: {
        enabled: true,
        ...(settings.dpopNonce ? { nonceSecret: randomBytes(32), requireNonce: () => true } : {}),
      },
      devInteractions: { enabled: true },
      claimsParameter: { enabled: Boolean(settings.acrValues) && settings.claimsParameter !== false },
      rpInitiatedLogout: { enabled: true },
      backchannelLogout: { enabled: true },
      revocation: { enabled: true },
      introspection: { enabled: true },
      userinfo: { enabled: true },
    },
    ttl: {
      AccessToken: ttl.AccessToken || 3600,
      IdToken: ttl.IdToken || 3600,
      RefreshToken: ttl.RefreshToken || 86400,
      Session: ttl.Session || 86400,
      Grant: ttl.Session || 86400,
      Interaction: 600,
      AuthorizationCode: 60,
    },
    rotateRefreshToken: Boolean(settings.rotateRefreshToken),
    issueRefreshToken: async (ctx, client) =>
      settings.refreshTokens !== false && client.grantTypeAllowed('refresh_token'),
    findAccount: async (ctx, id) => ({
      accountId: id,
      claims: async () => claimsFor(id),
    }),
    // First-party clients: grant the requested scopes without a consent screen.
    loadExistingGrant: async (ctx) => {
      const { client, session } = ctx.oidc;
      const existing = session.grantIdFor(client.clientId);
      if (existing) {
        const grant = await ctx.oidc.provider.Grant.find(existing);
        if (grant) return grant;
      }
      const grant = new ctx.oidc.provider.Grant({ clientId: client.clientId, accountId: session.accountId });
      grant.addOIDCScope('openid email profile offline_access');
      grant.addOIDCClaims(Object.values(scopeClaims).flat());
      await grant.save();
      session.ensureClientContainer(client.clientId);
      session.grantIdFor(client.clientId, grant.jti);
      return grant;
    },
    cookies: { keys: ['test-idp-cookie-key'] },
    // Back-channel logout calls go to the sidecar on 127.0.0.1, which oidc-provider's
    // SSRF guard blocks by default; this provider only ever runs on loopback.
    fetch: (url, options) => {
      const { dispatcher, ...rest } = options;
      return fetch(url, rest);
    },
  });
  if (settings.acrValues) provider.use(stepUpInteractions(provider));
  provider.use(async (ctx, next) => {
    const target = Object.keys(GARBLE_PATHS).find((k) => GARBLE_PATHS[k] === ctx.path && garble[k]);
    if (target && garble[target] === 'slow') await new Promise((r) => { setTimeout(r, 5000); });
    await next();
    if (target && garble[target] === 'html') {
      ctx.status = 200;
      ctx.type = 'text/html';
      ctx.body = '<html><body>Service temporarily unavailable</body></html>';
      return;
    }
    if (target && garble[target] === 'json') {
      ctx.status = 200;
      ctx.type = 'application/json';
      ctx.body = '{"unexpected": [1, 2';
      return;
    }
    if (ctx.path === '/token/revocation' && ctx.status === 200) stats.revocations += 1;
    if (ctx.path === '/request' && ctx.status === 201) stats.par += 1;
    if (ctx.path === '/token' && ctx.status === 200 && ctx.get('DPoP')) stats.dpop += 1;
    if (ctx.path === '/token/introspection') stats.introspections = (stats.introspections || 0) + 1;
    if (forgeMode !== 'off' && ctx.path === '/token' && ctx.body && ctx.body.id_token) {
      ctx.body = { ...ctx.body, id_token: await forge(ctx.body.id_token) };
    }
  });
  provider.on('grant.success', (ctx) => {
    const type = ctx.oidc.params.grant_type;
    stats.grants[type] = (stats.grants[type] || 0) + 1;
    const method = ctx.oidc.client.tokenEndpointAuthMethod;
    stats.client_auth[method] = (stats.client_auth[method] || 0) + 1;
    const asked = ctx.oidc.params.resource;
    if (asked) stats.resources.push(...[].concat(asked));
  });
  provider.on('grant.error', (ctx, err) => {
    const type = ctx.oidc.params?.grant_type || 'unknown';
    stats.grant_errors[`${type}:${err.error}`] = (stats.grant_errors[`${type}:${err.error}`] || 0) + 1;
    console.error('grant.error', type, err.error, err.error_description, err.error_detail || '');
  });
  provider.on('end_session.success', () => { stats.logouts += 1; });
  provider.on('backchannel.success', () => { stats.backchannel += 1; });
  provider.on('backchannel.error', (ctx, err) => {
    stats.backchannel_errors = (stats.backchannel_errors || 0) + 1;
    console.error('backchannel.error', err);
  });
  provider.on('server_error', (ctx, err) => { console.error('idp server_error', err); });
  return provider;
}

// The login of devInteractions with a second factor: the form gets a one-time code field,
// and a login with a code signs in with the strongest acr value.
function stepUpInteractions(provider) {
  return async (ctx, next) => {
    const interaction = /^\/interaction\/[^/]+$/.test(ctx.path);
    if (interaction && ctx.method === 'POST') {
      let raw = '';
      for await (const chunk of ctx.req) raw += chunk;
      const form = Object.fromEntries(new URLSearchParams(raw));
      if (form.prompt === 'login') {
        const strong = Boolean(form.otp);
        const values = settings.acrValues;
        const login = {
          accountId: form.login,
          acr: strong ? values[values.length - 1] : values[0],
          amr: strong ? ['pwd', 'otp'] : ['pwd'],
        };
        await provider.interactionFinished(ctx.req, ctx.res, { login }, { mergeWithLastSubmission: false });
        ctx.respond = false;
        return;
      }
      // Anything else (consent) goes on to devInteractions with the body read here.
      ctx.req.body = form;
    }
    await next();
    if (interaction && ctx.method === 'GET' && typeof ctx.body === 'string' && ctx.body.includes('name="password"')) {
      ctx.body = ctx.body.replace(
        '<button type="submit"',
        '<input type="text" name="otp" placeholder="one-time code (second factor)" autocomplete="off">\n  <button type="submit"',
      );
    }
  };
}

const server = createServer();
server.listen(settings.port || 0, '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `${settings.issuerOrigin || `http://127.0.0.1:${port}`}${settings.issuerPath || ''}`;
  let provider = buildProvider(issuer);
  if (settings.issuerOrigin) provider.proxy = true;
  let callback = provider.callback();
  server.on('request', (req, res) => {
    if (req.url.startsWith('/_test/sid')) {
      // The sid the provider gave `client` in the browser session of cookie `session`
      // (for front-channel logout, which the provider does not send itself).
      const params = new URL(req.url, issuer).searchParams;
      provider.Session.find(params.get('session')).then((session) => {
        const sid = session?.authorizations?.[params.get('client') || 'shop']?.sid ?? null;
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ sid }));
      });
      return;
    }
    if (req.url === '/_test/stats') {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(stats));
      return;
    }
    if (req.url === '/_test/user' && req.method === 'POST') {
      let raw = '';
      req.on('data', (chunk) => { raw += chunk; });
      req.on('end', () => {
        const { login, claims } = JSON.parse(raw || '{}');
        settings.users = { ...(settings.users || {}), [login]: claims };
        res.end('{}');
      });
      return;
    }
    if (req.url === '/_test/sign' && req.method === 'POST') {
      let raw = '';
      req.on('data', (chunk) => { raw += chunk; });
      req.on('end', async () => {
        const { claims, mode = 'valid', typ } = JSON.parse(raw || '{}');
        const full = { iss: issuer, iat: Math.floor(Date.now() / 1000), ...claims };
        let token;
        if (mode === 'none') {
          const enc = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
          token = `${enc({ alg: 'none', typ: 'JWT' })}.${enc(full)}.`;
        } else if (mode === 'hs256_public') {
          const { createPublicKey } = await import('node:crypto');
          const pem = createPublicKey({ key: keys[0], format: 'jwk' }).export({ type: 'spki', format: 'pem' });
          token = await new jose.SignJWT(full)
            .setProtectedHeader({ alg: 'HS256', kid: keys[0].kid })
            .sign(new TextEncoder().encode(pem));
        } else {
          let signingKey = keys[0];
          if (mode === 'wrong_key') signingKey = { ...newSigningKey(), kid: keys[0].kid };
          if (mode === 'unknown_kid') signingKey = newSigningKey();
          const key = await jose.importJWK(signingKey, 'RS256');
          const header = { alg: 'RS256', kid: signingKey.kid };
          if (typ) header.typ = typ;
          token = await new jose.SignJWT(full).setProtectedHeader(header).sign(key);
        }
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ token }));
      });
      return;
    }
    if (req.url === '/_test/logout-token' && req.method === 'POST') {
      let raw = '';
      req.on('data', (chunk) => { raw += chunk; });
      req.on('end', async () => {
        const spec = JSON.parse(raw || '{}');
        const now = Math.floor(Date.now() / 1000);
        const claims = {
          iss: issuer,
          aud: spec.aud || (settings.clients?.[0]?.client_id ?? 'shop'),
          iat: spec.iat ?? now,
          exp: now + 120,
          jti: spec.jti || randomUUID(),
          events: spec.noEvent ? {} : { 'http://schemas.openid.net/event/backchannel-logout': {} },
        };
        if (spec.sub) claims.sub = spec.sub;
        if (spec.sid) claims.sid = spec.sid;
        if (spec.nonce) claims.nonce = spec.nonce;
        const signingKey = spec.wrongKey ? { ...newSigningKey(), kid: keys[0].kid } : keys[0];
        const key = await jose.importJWK(signingKey, 'RS256');
        const token = await new jose.SignJWT(claims)
          .setProtectedHeader({ alg: 'RS256', kid: signingKey.kid, typ: 'logout+jwt' })
          .sign(key);
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ logout_token: token }));
      });
      return;
    }
    if (req.url.startsWith('/_test/garble') && req.method === 'POST') {
      const params = new URL(req.url, issuer).searchParams;
      garble[params.get('target')] = params.get('mode') === 'off' ? undefined : params.get('mode');
      res.end(JSON.stringify(garble));
      return;
    }
    if (req.url.startsWith('/_test/forge') && req.method === 'POST') {
      forgeMode = new URL(req.url, issuer).searchParams.get('mode') || 'off';
      res.end(JSON.stringify({ forge: forgeMode }));
      return;
    }
    if (req.url === '/_test/rotate-keys' && req.method === 'POST') {
      keys.unshift(newSigningKey());
      provider = buildProvider(issuer);
      if (settings.issuerOrigin) provider.proxy = true;
      callback = provider.callback();
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ kids: keys.map((k) => k.kid) }));
      return;
    }
    if (settings.issuerPath && req.url.startsWith(settings.issuerPath)) {
      // Mounted under the issuer path; oidc-provider derives its URLs from originalUrl.
      req.originalUrl = req.url;
      req.url = req.url.slice(settings.issuerPath.length) || '/';
    }
    callback(req, res);
  });
  process.stdout.write(`${JSON.stringify({ issuer, port })}\n`);
  // stdout carries only the ready line (the reader may stop listening); everything the
  // provider says later goes to stderr.
  console.log = console.error;
  console.info = console.error;
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => process.exit(0));
}
