// panva's oidc-provider (OpenID Certified) on 127.0.0.1 over TLS, configured for the
// oauth-toolkit interop suite. Started by the Rust tests (crates/interop), which write the
// configuration file named by INTEROP_CONFIG:
//
//   { "port": 12345, "cert": "chain.pem", "key": "key.pem", "clients": [ ...metadata... ] }
//
// and wait for the line {"ready": "<issuer>"} on stdout.
//
// Besides the built-in grants (authorization_code, refresh_token, client_credentials) it
// registers the JWT bearer grant (RFC 7523) and token exchange (RFC 8693) with
// registerGrantType. Resource indicators (RFC 8707): https://api.example/jwt issues JWT access
// tokens, https://api.example/opaque opaque ones, anything else is invalid_target.
//
// Its signing keys (RSA, P-256, Ed25519) are made at start; `POST /__interop/rotate`
// replaces them all (a new Provider over the same storage), as a key rotation does.
//
// Mutual TLS (RFC 8705): the server asks every client for a certificate (`requestCert`), lets
// a connection without one through (`rejectUnauthorized: false`) and hands the peer
// certificate to the provider (`features.mTLS.getCertificate`); `client_ca` (optional) is the
// CA whose certificates count as verified for `tls_client_auth`, and `self_signed_certs`
// maps a `self_signed_tls_client_auth` client to its certificate (PEM), registered as a JWK
// with `x5c`. The mTLS aliases of discovery (`mtls_endpoint_aliases`) are the endpoints under
// `/mtls/` on this listener; `GET /__interop/mtls` counts the requests they received.

import crypto from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';

import { createLocalJWKSet, jwtVerify } from 'jose';
import Provider, { errors } from 'oidc-provider';

const config = JSON.parse(fs.readFileSync(process.env.INTEROP_CONFIG, 'utf8'));
const issuer = `https://127.0.0.1:${config.port}`;

// `self_signed_tls_client_auth` clients: their certificate as a JWK with `x5c`.
for (const client of config.clients) {
  const pemFile = config.self_signed_certs?.[client.client_id];
  if (!pemFile) continue;
  const cert = new crypto.X509Certificate(fs.readFileSync(pemFile));
  client.jwks = {
    keys: [{ ...cert.publicKey.export({ format: 'jwk' }), x5c: [cert.raw.toString('base64')] }],
  };
}

// The provider's default routes, under `/mtls/` for clients that present a certificate.
const MTLS_ALIASES = Object.fromEntries(Object.entries({
  token_endpoint: '/token',
  introspection_endpoint: '/token/introspection',
  revocation_endpoint: '/token/revocation',
  userinfo_endpoint: '/me',
  device_authorization_endpoint: '/device/auth',
  pushed_authorization_request_endpoint: '/request',
}).map(([name, path]) => [name, `${issuer}/mtls${path}`]));
let mtlsAliasRequests = 0;

// `tls_client_auth_*` registered values against the certificate (RFC 8705 §2.1.2).
function certificateSubjectMatches(ctx, property, expected) {
  const cert = ctx.socket.getPeerX509Certificate();
  if (!cert) return false;
  const names = (cert.subjectAltName ?? '').split(', ');
  switch (property) {
    case 'tls_client_auth_san_dns':
      return names.includes(`DNS:${expected}`);
    case 'tls_client_auth_san_ip':
      return names.includes(`IP Address:${expected}`);
    case 'tls_client_auth_subject_dn':
      return cert.subject.split('\n').reverse().join(',') === expected;
    default:
      return false;
  }
}

const RESOURCES = {
  'https://api.example/jwt': 'jwt',
  'https://api.example/opaque': 'opaque',
  // Opaque tokens that live 2 s, for token sources driven through several refreshes.
  'https://api.example/short': 'opaque',
};
const SHORT = 'https://api.example/short';
const SHORT_TTL = 2;

const DPOP_NONCE_SECRET = crypto.randomBytes(32);

// Assertion jtis seen, across rotations.
const seenAssertions = new Set();

function signingKeys() {
  const jwk = (type, options, alg) => {
    const { privateKey } = crypto.generateKeyPairSync(type, options);
    return { ...privateKey.export({ format: 'jwk' }), alg, use: 'sig', kid: crypto.randomUUID() };
  };
  return {
    keys: [
      jwk('rsa', { modulusLength: 2048 }, 'RS256'),
      jwk('ec', { namedCurve: 'P-256' }, 'ES256'),
      jwk('ed25519', {}, 'EdDSA'),
    ],
  };
}

function makeProvider(jwks) {
  const provider = new Provider(issuer, {
    clients: config.clients,
    jwks,
    enabledJWA: {
      idTokenSigningAlgValues: ['RS256', 'ES256', 'EdDSA'],
      userinfoSigningAlgValues: ['RS256', 'ES256', 'EdDSA'],
    },
    cookies: { keys: ['interop-only-cookie-signing-key'] },
    pkce: { required: () => true },
    discovery: { mtls_endpoint_aliases: MTLS_ALIASES },
    // The defaults, and the two mTLS methods (RFC 8705 §2).
    clientAuthMethods: [
      'client_secret_basic', 'client_secret_jwt', 'client_secret_post', 'private_key_jwt', 'none',
      'tls_client_auth', 'self_signed_tls_client_auth',
    ],
    scopes: ['openid', 'offline_access', 'profile', 'api:read', 'api:write'],
    claims: { openid: ['sub'], profile: ['name'] },
    findAccount: (ctx, id) => ({
      accountId: id,
      claims: () => ({ sub: id, name: `User ${id}` }),
    }),
    // Every client allowed the refresh_token grant gets one (the default also wants
    // offline_access, which then forces a consent prompt).
    issueRefreshToken: (ctx, client) => client.grantTypeAllowed('refresh_token'),
    features: {
      devInteractions: { enabled: true },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      jwtUserinfo: { enabled: true },
      deviceFlow: { enabled: true },
      // DPoP (RFC 9449; on by default), with server nonces required for one client.
      dPoP: {
        enabled: true,
        nonceSecret: DPOP_NONCE_SECRET,
        requireNonce: (ctx) => ctx.oidc?.client?.clientId === 'cc-dpop-nonce',
      },
      // Open registration (no initial access token), with RFC 7592 management.
      registration: { enabled: true },
      registrationManagement: { enabled: true },
      revocation: { enabled: true },
      mTLS: {
        enabled: true,
        certificateBoundAccessTokens: true,
        tlsClientAuth: true,
        selfSignedTlsClientAuth: true,
        getCertificate: (ctx) => ctx.socket.getPeerX509Certificate(),
        certificateAuthorized: (ctx) => ctx.socket.authorized === true,
        certificateSubjectMatches,
      },
      // FAPI 2.0 Security Profile for the clients named fapi*: PAR, PKCE S256, sender-
      // constrained tokens, private_key_jwt (aud = the issuer) or mTLS, `iss` on the redirect.
      fapi: {
        enabled: true,
        profile: (ctx, client) => (client?.clientId?.startsWith('fapi') ? '2.0' : undefined),
      },
      // Signed request objects (RFC 9101), by value or pushed.
      requestObjects: { enabled: true },
      // Rich authorization requests (RFC 9396): payment_initiation details, granted as asked
      // (the dev interactions grant what the request holds) and read back on the tokens and
      // in introspection.
      richAuthorizationRequests: {
        enabled: true,
        types: {
          payment_initiation: {
            validate(_ctx, detail) {
              if (!Array.isArray(detail.actions)) {
                throw new errors.InvalidAuthorizationDetails('payment_initiation needs actions');
              }
            },
          },
        },
        authorizationDetailsForGrantSource: (ctx) => ctx.oidc.grant?.rar ?? [],
        authorizationDetailsForAccessToken: (ctx, token, source) => source?.rar ?? [],
        authorizationDetailsForIntrospection: (ctx, token) => token.rar,
      },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => undefined,
        // The FAPI client's code is redeemed for the resource it was granted (its token
        // request names none); the others name theirs.
        useGrantedResource: (ctx) => ctx.oidc.client?.clientId?.startsWith('fapi') ?? false,
        getResourceServerInfo: (ctx, indicator) => {
          const format = RESOURCES[indicator];
          if (!format) throw new errors.InvalidTarget();
          return {
            scope: 'api:read api:write',
            audience: indicator,
            accessTokenFormat: format,
            ...(format === 'jwt' ? { jwt: { sign: { alg: 'ES256' } } } : {}),
            ...(indicator === SHORT ? { accessTokenTTL: SHORT_TTL } : {}),
          };
        },
      },
    },
  });

  async function issue(ctx, scope, extra = {}, expiresIn = undefined) {
    const { ClientCredentials } = provider;
    const token = new ClientCredentials({ client: ctx.oidc.client, scope: scope || undefined, expiresIn });
    const value = await token.save();
    ctx.body = {
      access_token: value,
      token_type: 'Bearer',
      expires_in: token.expiration,
      ...(token.scope ? { scope: token.scope } : {}),
      ...extra,
    };
  }

  // RFC 7523 §2.1: the assertion is signed by a key registered for the client; its issuer is
  // the client, its audience this server. As real servers do (§3, item 7), a `jti` is accepted
  // once.
  provider.registerGrantType('urn:ietf:params:oauth:grant-type:jwt-bearer', async (ctx) => {
    const { client, params } = ctx.oidc;
    const keys = config.assertion_keys?.[client.clientId];
    if (!keys) throw new errors.UnauthorizedClient('no assertion keys registered');
    let payload;
    try {
      ({ payload } = await jwtVerify(params.assertion, createLocalJWKSet(keys), {
        issuer: client.clientId,
        audience: [issuer, `${issuer}/token`],
        requiredClaims: ['sub', 'exp', 'jti'],
      }));
    } catch (e) {
      throw new errors.InvalidGrant(`assertion: ${e.code ?? 'invalid'}`);
    }
    if (seenAssertions.has(payload.jti)) throw new errors.InvalidGrant('assertion replayed');
    seenAssertions.add(payload.jti);
    await issue(ctx, params.scope, {}, params.resource === SHORT ? SHORT_TTL : undefined);
  }, ['assertion', 'scope', 'resource']);

  // RFC 8693: exchange an access token this server issued for another one.
  const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';
  provider.registerGrantType('urn:ietf:params:oauth:grant-type:token-exchange', async (ctx) => {
    const { params } = ctx.oidc;
    if (params.subject_token_type !== ACCESS_TOKEN_TYPE) {
      throw new errors.InvalidRequest('unsupported subject_token_type');
    }
    const subject = await provider.ClientCredentials.find(params.subject_token)
      ?? await provider.AccessToken.find(params.subject_token);
    if (!subject || subject.isExpired) throw new errors.InvalidGrant('subject_token is not active');
    await issue(ctx, params.scope, { issued_token_type: ACCESS_TOKEN_TYPE });
  }, ['subject_token', 'subject_token_type', 'requested_token_type', 'actor_token',
    'actor_token_type', 'audience', 'resource', 'scope'], ['audience', 'resource']);

  return provider;
}

let current = makeProvider(signingKeys()).callback();

const server = https.createServer({
  cert: fs.readFileSync(config.cert),
  key: fs.readFileSync(config.key),
  requestCert: true,
  rejectUnauthorized: false,
  ...(config.client_ca ? { ca: fs.readFileSync(config.client_ca) } : {}),
}, (req, res) => {
  if (req.method === 'GET' && req.url === '/__interop/mtls') {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ mtls_alias_requests: mtlsAliasRequests }));
    return;
  }
  if (req.url.startsWith('/mtls/')) {
    mtlsAliasRequests += 1;
    req.url = req.url.slice('/mtls'.length);
  }
  if (req.method === 'POST' && req.url === '/__interop/rotate') {
    const jwks = signingKeys();
    current = makeProvider(jwks).callback();
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ kids: jwks.keys.map((k) => k.kid) }));
    return;
  }
  current(req, res);
});
server.listen(config.port, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ ready: issuer })}\n`);
});
process.on('SIGTERM', () => process.exit(0));
// The test process holds our stdin: when it exits, so do we.
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
