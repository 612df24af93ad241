// Drives a running authward with openid-client 6 (an OpenID-certified relying party library)
// through every flow the server advertises, and the error paths a client reads.
//
// Usage: node run.mjs CONFIG_JSON. The browser steps (sign-in, consent, device approval) are
// the caller's: this script writes one JSON line per request on stdout ({"type": "authorize",
// "url"} or {"type": "device", "url", "decision"}) and reads the answer as one JSON line on
// stdin ({"callback": URL} or {"done": true}). Every scenario ends in one line
// {"type": "result", "name", "ok", "detail"}; the last line is {"type": "end"}.
//
// Spec: RFC 6749 (code, refresh, client credentials, errors), RFC 7636 (PKCE), RFC 9126 (PAR),
// RFC 9449 (DPoP), RFC 7662 (introspection), RFC 7009 (revocation), RFC 8628 (device grant),
// RFC 7523 (private_key_jwt), OpenID Connect Core (ID token, UserInfo) and RP-Initiated Logout.

import * as oidc from 'openid-client';
import readline from 'node:readline';

const cfg = JSON.parse(process.argv[2]);
const input = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();

function send(message) {
  process.stdout.write(JSON.stringify(message) + '\n');
}

async function ask(request) {
  send(request);
  const { value, done } = await input.next();
  if (done) throw new Error('the driver closed stdin');
  return JSON.parse(value);
}

function check(condition, message) {
  if (!condition) throw new Error(message);
}

// The OAuth error code a client application sees for a failed request: the body's `error`,
// or the `error` of the WWW-Authenticate challenge openid-client reads from a 401.
function oauthError(error) {
  if (error instanceof oidc.ResponseBodyError || error instanceof oidc.AuthorizationResponseError) {
    return error.error;
  }
  if (error instanceof oidc.WWWAuthenticateChallengeError) {
    const challenges = Array.isArray(error.cause) ? error.cause : [];
    for (const challenge of challenges) {
      if (challenge?.parameters?.error) return challenge.parameters.error;
    }
  }
  return `not an OAuth error: ${error?.name}: ${error?.message}`;
}

async function expectError(promise, code) {
  try {
    await promise;
  } catch (error) {
    const seen = oauthError(error);
    check(seen === code, `expected ${code}, got ${seen}`);
    return error;
  }
  throw new Error(`expected ${code}, the request succeeded`);
}

async function discover(clientId, metadata = {}, auth = undefined) {
  return oidc.discovery(new URL(cfg.issuer), clientId, metadata, auth, {
    execute: [oidc.allowInsecureRequests],
  });
}

// The suite's confidential clients are registered for client_secret_basic, so it is named:
// openid-client's default for a client with a secret is client_secret_post.
const web = () => discover(cfg.web.id, {}, oidc.ClientSecretBasic(cfg.web.secret));

async function authorize(config, { scope = 'openid profile email offline_access', par = false,
  dpop = undefined, pkce = true } = {}) {
  const verifier = oidc.randomPKCECodeVerifier();
  const nonce = oidc.randomNonce();
  const state = oidc.randomState();
  const params = { redirect_uri: cfg.redirect_uri, scope, nonce, state };
  if (pkce) {
    params.code_challenge = await oidc.calculatePKCECodeChallenge(verifier);
    params.code_challenge_method = 'S256';
  }
  const url = par
    ? await oidc.buildAuthorizationUrlWithPAR(config, params, { DPoP: dpop })
    : oidc.buildAuthorizationUrl(config, params);
  const { callback } = await ask({ type: 'authorize', url: url.href });
  return { callback: new URL(callback), checks: { pkceCodeVerifier: verifier, expectedNonce: nonce,
    expectedState: state, idTokenExpected: scope.split(' ').includes('openid') } };
}

async function codeFlow(config, options = {}) {
  const { callback, checks } = await authorize(config, options);
  const tokens = await oidc.authorizationCodeGrant(config, callback, checks, undefined,
    { DPoP: options.dpop });
  return { tokens, callback, checks };
}

function checkIdToken(tokens, clientId) {
  const claims = tokens.claims();
  check(claims !== undefined, 'no ID token');
  check(claims.sub === cfg.subject, `sub ${claims.sub}`);
  check(claims.iss === cfg.issuer, `iss ${claims.iss}`);
  check(claims.aud === clientId || (Array.isArray(claims.aud) && claims.aud.includes(clientId)),
    `aud ${claims.aud}`);
  return claims;
}

async function privateKeyJwtAuth() {
  const { d, x, y, crv, kty, kid } = cfg.jwt.jwk;
  const key = await crypto.subtle.importKey('jwk', { d, x, y, crv, kty },
    { name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign']);
  return oidc.PrivateKeyJwt({ key, kid });
}

const scenarios = {
  async discovery() {
    const config = await web();
    const metadata = config.serverMetadata();
    check(metadata.issuer === cfg.issuer, `issuer ${metadata.issuer}`);
    for (const name of ['authorization_endpoint', 'token_endpoint', 'jwks_uri', 'userinfo_endpoint',
      'revocation_endpoint', 'introspection_endpoint', 'pushed_authorization_request_endpoint',
      'device_authorization_endpoint', 'end_session_endpoint']) {
      check(typeof metadata[name] === 'string', `no ${name}`);
    }
    check(metadata.code_challenge_methods_supported?.includes('S256'), 'no S256');
    return 'the metadata names every endpoint the suite uses';
  },

  async code_confidential_basic_with_userinfo() {
    const config = await web();
    const { tokens } = await codeFlow(config);
    checkIdToken(tokens, cfg.web.id);
    check(tokens.token_type.toLowerCase() === 'bearer', `token_type ${tokens.token_type}`);
    check(typeof tokens.refresh_token === 'string', 'no refresh token');
    const info = await oidc.fetchUserInfo(config, tokens.access_token, cfg.subject);
    check(info.email === cfg.email, `userinfo email ${info.email}`);
    return 'ID token validated by openid-client; UserInfo answered for the same subject';
  },

  async code_reuse_is_invalid_grant() {
    const config = await web();
    const { callback, checks } = await codeFlow(config);
    await expectError(oidc.authorizationCodeGrant(config, callback, checks), 'invalid_grant');
    return 'a second redemption of one code is invalid_grant';
  },

  async code_public_client_pkce() {
    const config = await discover(cfg.spa.id, {}, oidc.None());
    const { tokens } = await codeFlow(config);
    checkIdToken(tokens, cfg.spa.id);
    return 'public client, PKCE S256, no secret';
  },

  async pkce_is_required() {
    const config = await web();
    const { callback, checks } = await authorize(config, { pkce: false });
    await expectError(oidc.authorizationCodeGrant(config, callback, checks), 'invalid_request');
    return 'an authorization request without code_challenge comes back as invalid_request';
  },

  async code_private_key_jwt() {
    const config = await discover(cfg.jwt.id, {}, await privateKeyJwtAuth());
    const { tokens } = await codeFlow(config, { scope: 'openid offline_access' });
    checkIdToken(tokens, cfg.jwt.id);
    const cc = await oidc.clientCredentialsGrant(config, { scope: 'api' });
    check(typeof cc.access_token === 'string', 'no access token');
    return 'client assertions signed by openid-client accepted at the token endpoint';
  },

  async pushed_authorization_request() {
    const config = await discover(cfg.par.id, {}, oidc.ClientSecretBasic(cfg.par.secret));
    const { tokens } = await codeFlow(config, { scope: 'openid offline_access', par: true });
    checkIdToken(tokens, cfg.par.id);
    return 'PAR-only client: request pushed, then redeemed';
  },

  async dpop_bound_tokens() {
    const config = await discover(cfg.dpop.id, {}, oidc.None());
    const dpop = oidc.getDPoPHandle(config, await oidc.randomDPoPKeyPair('ES256'));
    const { tokens } = await codeFlow(config, { scope: 'openid profile offline_access', dpop });
    check(tokens.token_type.toLowerCase() === 'dpop', `token_type ${tokens.token_type}`);
    const info = await oidc.fetchUserInfo(config, tokens.access_token, cfg.subject, { DPoP: dpop });
    check(info.sub === cfg.subject, 'userinfo sub');
    const refreshed = await oidc.refreshTokenGrant(config, tokens.refresh_token, undefined,
      { DPoP: dpop });
    check(refreshed.token_type.toLowerCase() === 'dpop', 'refresh token_type');
    return 'DPoP-bound code, UserInfo and refresh with the same key';
  },

  async refresh_rotation_and_reuse_detection() {
    const config = await web();
    const { tokens } = await codeFlow(config);
    const first = tokens.refresh_token;
    const rotated = await oidc.refreshTokenGrant(config, first);
    check(rotated.refresh_token && rotated.refresh_token !== first, 'not rotated');
    await expectError(oidc.refreshTokenGrant(config, first), 'invalid_grant');
    await expectError(oidc.refreshTokenGrant(config, rotated.refresh_token), 'invalid_grant');
    return 'rotation; presenting the old token again is invalid_grant and revokes the family';
  },

  async client_credentials() {
    const config = await web();
    const tokens = await oidc.clientCredentialsGrant(config, { scope: 'api' });
    check(tokens.scope === 'api', `scope ${tokens.scope}`);
    check(tokens.refresh_token === undefined, 'a refresh token was issued');
    return 'client_secret_basic, scope api';
  },

  async wrong_secret_is_invalid_client() {
    const config = await discover(cfg.web.id, {}, oidc.ClientSecretBasic('not-the-secret'));
    await expectError(oidc.clientCredentialsGrant(config, { scope: 'api' }), 'invalid_client');
    return 'the application sees invalid_client (from the 401 challenge)';
  },

  async introspection_and_revocation() {
    const config = await web();
    const rs = await discover(cfg.rs.id, {}, oidc.ClientSecretPost(cfg.rs.secret));
    const tokens = await oidc.clientCredentialsGrant(config, { scope: 'api', resource: cfg.rs.id });
    const active = await oidc.tokenIntrospection(rs, tokens.access_token);
    check(active.active === true, 'introspection: not active');
    check(active.client_id === cfg.web.id, `introspection client_id ${active.client_id}`);
    const garbage = await oidc.tokenIntrospection(rs, 'not-a-token');
    check(garbage.active === false, 'garbage is active');
    const { tokens: user } = await codeFlow(config);
    await oidc.tokenRevocation(config, user.refresh_token);
    await expectError(oidc.refreshTokenGrant(config, user.refresh_token), 'invalid_grant');
    return 'introspection by a resource server; a revoked refresh token is invalid_grant';
  },

  async device_flow_approved() {
    const config = await discover(cfg.device.id, {}, oidc.None());
    const response = await oidc.initiateDeviceAuthorization(config, { scope: 'openid' });
    await ask({ type: 'device', url: response.verification_uri_complete, decision: 'approve' });
    const tokens = await oidc.pollDeviceAuthorizationGrant(config, response);
    checkIdToken(tokens, cfg.device.id);
    return 'device authorization, approval in the browser, polling until tokens';
  },

  async device_flow_denied_is_access_denied() {
    const config = await discover(cfg.device.id, {}, oidc.None());
    const response = await oidc.initiateDeviceAuthorization(config, { scope: 'openid' });
    await ask({ type: 'device', url: response.verification_uri_complete, decision: 'deny' });
    await expectError(oidc.pollDeviceAuthorizationGrant(config, response), 'access_denied');
    return 'a denied device request ends the polling with access_denied';
  },

  async device_polling_too_fast_is_slow_down() {
    const config = await discover(cfg.device.id, {}, oidc.None());
    const response = await oidc.initiateDeviceAuthorization(config, { scope: 'openid' });
    const grant = 'urn:ietf:params:oauth:grant-type:device_code';
    const poll = () => oidc.genericGrantRequest(config, grant, { device_code: response.device_code });
    await expectError(poll(), 'authorization_pending');
    await expectError(poll(), 'slow_down');
    return 'pending, then slow_down for a poll inside the interval';
  },

  async end_session_url() {
    const config = await web();
    const { tokens } = await codeFlow(config);
    const url = oidc.buildEndSessionUrl(config, { id_token_hint: tokens.id_token });
    const endpoint = config.serverMetadata().end_session_endpoint;
    check(url.href.startsWith(endpoint), `end session URL ${url.href}`);
    const { status } = await ask({ type: 'logout', url: url.href });
    check(status === 200, `the end-session page answered ${status}`);
    return 'RP-initiated logout URL built by openid-client is served';
  },
};

const only = cfg.only ? new Set(cfg.only) : null;
for (const [name, run] of Object.entries(scenarios)) {
  if (only && !only.has(name)) continue;
  try {
    const detail = await run();
    send({ type: 'result', name, ok: true, detail });
  } catch (error) {
    const body = error?.cause && typeof error.cause === 'object' ? JSON.stringify(error.cause) : '';
    send({ type: 'result', name, ok: false,
      detail: `${error?.name}: ${error?.message} [${oauthError(error)}] ${body}`.slice(0, 2000) });
  }
}
send({ type: 'end' });
process.exit(0);
