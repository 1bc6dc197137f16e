// Interop of the token issuer with openid-client (panva), a certified
// OpenID Connect relying party library. The issuer is started by the Go
// test TestOpenIDClientInterop (tokenissuer/browser_integration_test.go),
// which runs this file with the issuer URL, the clients (a public SPA, a
// confidential web app, a device) and a user in the environment:
//
//   go test ./tokenissuer/ -run TestOpenIDClientInterop -v
//
// Run alone (npm test) without that environment, every test skips.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as client from 'openid-client';

const env = process.env;
const configured = Boolean(env.APIACCESS_ISSUER);
const skip = configured ? false : 'no issuer: run through go test -run TestOpenIDClientInterop ./tokenissuer/';

const issuer = env.APIACCESS_ISSUER;
const redirectUri = env.APIACCESS_REDIRECT_URI;
const postLogoutUri = env.APIACCESS_POST_LOGOUT_URI;
const spaId = env.APIACCESS_SPA_ID;
const webId = env.APIACCESS_WEB_ID;
const webSecret = env.APIACCESS_WEB_SECRET;
const deviceId = env.APIACCESS_DEVICE_ID;
const username = env.APIACCESS_USERNAME;
const password = env.APIACCESS_PASSWORD;
const userId = env.APIACCESS_USER_ID;
const consentScope = env.APIACCESS_CONSENT_SCOPE;

// The issuer runs on http://localhost: openid-client refuses plain
// HTTP unless told otherwise.
const insecure = { execute: [client.allowInsecureRequests] };

const spaConfig = () => client.discovery(new URL(issuer), spaId, undefined, client.None(), insecure);
const serviceConfig = () => client.discovery(new URL(issuer), env.APIACCESS_SERVICE_ID, undefined, client.ClientSecretBasic(env.APIACCESS_SERVICE_SECRET), insecure);
const webConfig = () => client.discovery(new URL(issuer), webId, undefined, client.ClientSecretBasic(webSecret), insecure);

// A minimal browser: a cookie jar for the issuer and no redirect
// following, so each step can be checked.
class Browser {
  jar = new Map();

  async fetch(url, init = {}) {
    const headers = new Headers(init.headers);
    // A page load, as a browser's top-level navigation announces it
    // (Fetch Metadata; Node's fetch keeps its own Sec-Fetch-Mode cors).
    headers.set('sec-fetch-dest', 'document');
    if (this.jar.size) headers.set('cookie', [...this.jar].map(([k, v]) => `${k}=${v}`).join('; '));
    const res = await fetch(url, { ...init, headers, redirect: 'manual' });
    for (const sc of res.headers.getSetCookie()) {
      const [pair, ...attrs] = sc.split(';');
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      const gone = value === '' || attrs.some((a) => /^\s*max-age\s*=\s*(0|-)/i.test(a));
      if (gone) this.jar.delete(name);
      else this.jar.set(name, value);
    }
    return res;
  }

  // post submits a page's form (its action and hidden fields) with
  // extra fields.
  async post(page, extra) {
    const action = formAction(page);
    return this.fetch(action, { method: 'POST', body: new URLSearchParams({ ...hiddenFields(page), ...extra }) });
  }
}

const unescape = (s) => s.replace(/&#(\d+);/g, (_, n) => String.fromCharCode(Number(n)))
  .replace(/&quot;/g, '"').replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');

function hiddenFields(page) {
  const out = {};
  for (const m of page.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)"/g)) out[m[1]] = unescape(m[2]);
  return out;
}

function formAction(page) {
  const m = page.match(/<form method="post" action="([^"]+)"/);
  assert.ok(m, `no form on the page: ${page.slice(0, 300)}`);
  return new URL(unescape(m[1]));
}

// authorize runs the browser part of the code flow: the authorization
// URL, the sign-in form (unless the SSO session skips it) and the
// consent form when shown. It returns the redirect to the client.
async function authorize(browser, url, { expectSignIn = true } = {}) {
  let res = await browser.fetch(url);
  if (!expectSignIn) {
    assert.equal(res.status, 302, 'the SSO session should skip sign-in');
    return new URL(res.headers.get('location'));
  }
  assert.equal(res.status, 200, 'sign-in page');
  let page = await res.text();
  assert.match(page, /autocomplete="current-password"/);
  assert.ok(browser.jar.has('apiaccess_txn'), 'the txn cookie binds the sign-in to this browser');
  const { txn, csrf } = hiddenFields(page);
  assert.ok(txn && csrf, 'hidden txn and csrf fields');
  assert.equal(formAction(page).pathname, '/oauth2/v1/signin');

  res = await browser.post(page, { username, password });
  assert.ok(browser.jar.has('apiaccess_sid'), 'sign-in starts an SSO session');
  if (res.status === 200) {
    page = await res.text();
    assert.match(page, /Allow access/, 'consent page');
    assert.equal(formAction(page).pathname, '/oauth2/v1/consent');
    res = await browser.post(page, { decision: 'allow' });
  }
  assert.equal(res.status, 302, `redirect to the client, got ${res.status}`);
  const location = new URL(res.headers.get('location'));
  assert.equal(location.origin + location.pathname, redirectUri);
  return location;
}

// codeFlow: a full authorization code flow with PKCE, state and nonce.
async function codeFlow(config, browser, scope, opts) {
  const pkceCodeVerifier = client.randomPKCECodeVerifier();
  const expectedState = client.randomState();
  const expectedNonce = client.randomNonce();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope,
    code_challenge: await client.calculatePKCECodeChallenge(pkceCodeVerifier),
    code_challenge_method: 'S256',
    state: expectedState,
    nonce: expectedNonce,
  });
  const location = await authorize(browser, url, opts);
  assert.equal(location.searchParams.get('iss'), issuer, 'RFC 9207 iss in the response');
  const tokens = await client.authorizationCodeGrant(config, location, { pkceCodeVerifier, expectedState, expectedNonce },
    undefined, opts?.DPoP ? { DPoP: opts.DPoP } : undefined);
  return { tokens, location };
}

test('discovery', { skip }, async () => {
  const config = await spaConfig();
  const md = config.serverMetadata();
  assert.equal(md.issuer, issuer);
  assert.equal(md.authorization_endpoint, `${issuer}/v1/authorize`);
  assert.equal(md.token_endpoint, `${issuer}/v1/token`);
  assert.equal(md.userinfo_endpoint, `${issuer}/v1/userinfo`);
  assert.equal(md.jwks_uri, `${issuer}/v1/keys`);
  assert.equal(md.introspection_endpoint, `${issuer}/v1/introspect`);
  assert.equal(md.revocation_endpoint, `${issuer}/v1/revoke`);
  assert.equal(md.end_session_endpoint, `${issuer}/v1/logout`);
  assert.deepEqual(md.code_challenge_methods_supported, ['S256']);
  assert.ok(md.response_types_supported.includes('code'));
  assert.ok(md.grant_types_supported.includes('authorization_code'));
  assert.ok(md.grant_types_supported.includes('refresh_token'));
  assert.equal(md.authorization_response_iss_parameter_supported, true);
  assert.ok(config.serverMetadata().supportsPKCE());

  // RFC 8414 discovery (/.well-known/oauth-authorization-server/oauth2/{id}).
  const oauth2 = await client.discovery(new URL(issuer), spaId, undefined, client.None(), { ...insecure, algorithm: 'oauth2' });
  assert.equal(oauth2.serverMetadata().issuer, issuer);
  assert.equal(oauth2.serverMetadata().token_endpoint, md.token_endpoint);
});

test('public client: code flow with PKCE, userinfo, refresh, logout', { skip }, async () => {
  const config = await spaConfig();
  const browser = new Browser();
  const { tokens } = await codeFlow(config, browser, `openid profile email offline_access ${consentScope}`);
  assert.equal(tokens.token_type.toLowerCase(), 'bearer');
  assert.ok(tokens.access_token && tokens.id_token && tokens.refresh_token);
  assert.ok(tokens.expiresIn() > 0);
  const claims = tokens.claims();
  assert.equal(claims.sub, userId);
  assert.equal(claims.aud, spaId);
  assert.equal(claims.iss, issuer);
  assert.equal(claims.email, username);
  assert.ok(tokens.scope.split(' ').includes(consentScope));

  const info = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
  assert.equal(info.sub, userId);
  assert.equal(info.email, username);
  assert.equal(info.name, 'Alice Smith');
  await assert.rejects(client.fetchUserInfo(config, tokens.access_token, 'someone-else'), 'userinfo for another subject');

  // Refresh: new tokens, a rotated refresh token, an ID token for the
  // same user (openid-client checks iss, aud and sub against the first).
  const fresh = await client.refreshTokenGrant(config, tokens.refresh_token);
  assert.ok(fresh.access_token && fresh.access_token !== tokens.access_token);
  assert.ok(fresh.refresh_token && fresh.refresh_token !== tokens.refresh_token);
  if (fresh.id_token) assert.equal(fresh.claims().sub, userId);
  const again = await client.fetchUserInfo(config, fresh.access_token, userId);
  assert.equal(again.sub, userId);
  // A public client revokes its own refresh token (RFC 7009 section 5).
  await client.tokenRevocation(config, fresh.refresh_token);
  await assert.rejects(client.refreshTokenGrant(config, fresh.refresh_token), (err) => err.error === 'invalid_grant');

  // SSO: the session and the remembered consent skip both pages.
  const sso = await codeFlow(config, browser, `openid email ${consentScope}`, { expectSignIn: false });
  assert.equal(sso.tokens.claims().sub, userId);

  // RP-initiated logout, then prompt=none reports login_required.
  const end = client.buildEndSessionUrl(config, {
    id_token_hint: sso.tokens.id_token, post_logout_redirect_uri: postLogoutUri, state: 'bye',
  });
  const res = await browser.fetch(end);
  assert.equal(res.status, 302);
  const back = new URL(res.headers.get('location'));
  assert.equal(back.origin + back.pathname, postLogoutUri);
  assert.equal(back.searchParams.get('state'), 'bye');
  assert.ok(!browser.jar.has('apiaccess_sid'), 'logout clears the session cookie');

  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri, scope: 'openid', prompt: 'none', state,
    code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256',
  });
  const none = await browser.fetch(url);
  assert.equal(none.status, 302);
  await assert.rejects(
    client.authorizationCodeGrant(config, new URL(none.headers.get('location')), { pkceCodeVerifier: verifier, expectedState: state }),
    (err) => err.error === 'login_required',
  );
});

// DPoP (RFC 9449) with openid-client's own proofs and nonce handling
// (it retries once on use_dpop_nonce, which the issuer sends first, as
// Okta does): tokens bound to the client's key, userinfo with a proof,
// the public client's refresh token usable with that key only.
test('DPoP: a public client binds its tokens to its key', { skip }, async () => {
  const config = await spaConfig();
  const browser = new Browser();
  assert.ok(config.serverMetadata().dpop_signing_alg_values_supported.includes('ES256'));
  const DPoP = client.getDPoPHandle(config, await client.randomDPoPKeyPair('ES256'));
  const { tokens } = await codeFlow(config, browser, 'openid email offline_access', { DPoP });
  assert.equal(tokens.token_type.toLowerCase(), 'dpop');
  const payload = JSON.parse(Buffer.from(tokens.access_token.split('.')[1], 'base64url'));
  assert.ok(payload.cnf && payload.cnf.jkt, 'the access token names the key (cnf.jkt)');
  const sub = tokens.claims().sub;

  const info = await client.fetchUserInfo(config, tokens.access_token, sub, { DPoP });
  assert.equal(info.sub, userId);
  await assert.rejects(client.fetchUserInfo(config, tokens.access_token, sub), 'a bound token as a bearer token');

  const fresh = await client.refreshTokenGrant(config, tokens.refresh_token, undefined, { DPoP });
  assert.equal(fresh.token_type.toLowerCase(), 'dpop');
  const other = client.getDPoPHandle(config, await client.randomDPoPKeyPair('ES256'));
  await assert.rejects(client.refreshTokenGrant(config, fresh.refresh_token, undefined, { DPoP: other }),
    (err) => err.error === 'invalid_dpop_proof', 'the refresh token with another key');
  await assert.rejects(client.refreshTokenGrant(config, fresh.refresh_token),
    (err) => err.error === 'invalid_dpop_proof', 'the refresh token without a proof');
  const again = await client.refreshTokenGrant(config, fresh.refresh_token, undefined, { DPoP });
  assert.ok(again.access_token);
});

// client_credentials with DPoP: a confidential service's token is bound
// to its key after the nonce round trip.
test('DPoP: client_credentials binds the service token', { skip }, async () => {
  const config = await serviceConfig();
  const DPoP = client.getDPoPHandle(config, await client.randomDPoPKeyPair('ES256'));
  const tokens = await client.clientCredentialsGrant(config, { scope: 'orders:read' }, { DPoP });
  assert.equal(tokens.token_type.toLowerCase(), 'dpop');
  assert.equal(tokens.scope, 'orders:read');
  const payload = JSON.parse(Buffer.from(tokens.access_token.split('.')[1], 'base64url'));
  assert.ok(payload.cnf && payload.cnf.jkt, 'the service token names the key (cnf.jkt)');
  assert.equal(payload.cid, env.APIACCESS_SERVICE_ID);
  const plain = await client.clientCredentialsGrant(config, { scope: 'orders:read' });
  assert.equal(plain.token_type.toLowerCase(), 'bearer', 'without DPoP, a bearer token');
});

test('public client: a code is redeemed once, and only with its verifier', { skip }, async () => {
  const config = await spaConfig();
  const browser = new Browser();
  const pkceCodeVerifier = client.randomPKCECodeVerifier();
  const expectedState = client.randomState();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri, scope: 'openid', state: expectedState,
    code_challenge: await client.calculatePKCECodeChallenge(pkceCodeVerifier), code_challenge_method: 'S256',
  });
  const location = await authorize(browser, url);
  await assert.rejects(
    client.authorizationCodeGrant(config, location, { pkceCodeVerifier: client.randomPKCECodeVerifier(), expectedState }),
    (err) => err.error === 'invalid_grant',
  );
  // A wrong state never reaches the token endpoint.
  await assert.rejects(client.authorizationCodeGrant(config, location, { pkceCodeVerifier, expectedState: 'other' }));
});

test('confidential client: code flow, introspection, revocation', { skip }, async () => {
  const config = await webConfig();
  const browser = new Browser();
  const { tokens } = await codeFlow(config, browser, 'openid email offline_access orders:read');
  assert.equal(tokens.claims().sub, userId);
  assert.equal(tokens.claims().aud, webId);

  let intro = await client.tokenIntrospection(config, tokens.access_token);
  assert.equal(intro.active, true);
  assert.equal(intro.client_id, webId);
  assert.equal(intro.iss, issuer);
  assert.ok(intro.scope.split(' ').includes('orders:read'));
  assert.equal(intro.uid, userId);

  intro = await client.tokenIntrospection(config, tokens.refresh_token, { token_type_hint: 'refresh_token' });
  assert.equal(intro.active, true);
  assert.equal(intro.token_type, 'refresh_token');
  assert.equal(intro.client_id, webId);

  // Revoking the access token ends it for introspection and userinfo.
  await client.tokenRevocation(config, tokens.access_token, { token_type_hint: 'access_token' });
  intro = await client.tokenIntrospection(config, tokens.access_token);
  assert.deepEqual(intro, { active: false });
  await assert.rejects(client.fetchUserInfo(config, tokens.access_token, userId));

  // Revoking the refresh token ends its family: refresh fails.
  await client.tokenRevocation(config, tokens.refresh_token, { token_type_hint: 'refresh_token' });
  intro = await client.tokenIntrospection(config, tokens.refresh_token);
  assert.deepEqual(intro, { active: false });
  await assert.rejects(client.refreshTokenGrant(config, tokens.refresh_token), (err) => err.error === 'invalid_grant');

  // Unknown tokens: revocation answers 200, introspection inactive.
  await client.tokenRevocation(config, 'not-a-token');
  assert.deepEqual(await client.tokenIntrospection(config, 'not-a-token'), { active: false });

  // A wrong secret is refused.
  const bad = await client.discovery(new URL(issuer), webId, undefined, client.ClientSecretBasic('wrong-secret-0123456789'), insecure);
  // RFC 6749 section 5.2: 401 with a challenge for the scheme used;
  // openid-client reports the challenge.
  const refused = await client.tokenIntrospection(bad, tokens.refresh_token).then(() => null, (err) => err);
  assert.ok(refused, 'a wrong secret was accepted');
  assert.equal(refused.status, 401);
  assert.equal(refused.cause?.[0]?.scheme, 'basic', JSON.stringify(refused.cause));
  assert.equal((await refused.response.json()).error, 'invalid_client');
});

test('device flow: a TV signs a user in (RFC 8628)', { skip }, async () => {
  const config = await client.discovery(new URL(issuer), deviceId, undefined, client.None(), insecure);
  assert.equal(config.serverMetadata().device_authorization_endpoint, `${issuer}/v1/device/authorize`);
  const da = await client.initiateDeviceAuthorization(config, { scope: 'openid email offline_access' });
  assert.ok(da.device_code && da.user_code && da.verification_uri && da.expires_in > 0);
  assert.ok(da.verification_uri_complete.startsWith(da.verification_uri));

  // On a phone: the code as a person types it (lower case, no dash),
  // sign-in, then the device confirmation.
  const browser = new Browser();
  const typed = new URL(da.verification_uri);
  typed.searchParams.set('user_code', da.user_code.replaceAll('-', '').toLowerCase());
  let res = await browser.fetch(typed);
  assert.equal(res.status, 200, 'sign-in page');
  let page = await res.text();
  assert.match(page, /autocomplete="current-password"/);
  res = await browser.post(page, { username, password });
  assert.equal(res.status, 200, 'device confirmation page');
  page = await res.text();
  assert.equal(formAction(page).pathname, '/oauth2/v1/device');
  assert.ok(page.includes(da.user_code), 'the approval page shows the user code');
  // The code came in the URL: the user confirms it matches the device.
  res = await browser.post(page, { decision: 'allow', code_matches: 'yes' });
  assert.equal(res.status, 200);
  assert.match(await res.text(), /connected/);

  // The TV polls (openid-client waits the interval first).
  const tokens = await client.pollDeviceAuthorizationGrant(config, da, undefined, { signal: AbortSignal.timeout(30_000) });
  assert.ok(tokens.access_token && tokens.refresh_token);
  assert.equal(tokens.claims().sub, userId);
  assert.equal(tokens.claims().aud, deviceId);
  assert.equal((await client.fetchUserInfo(config, tokens.access_token, userId)).email, username);
  const fresh = await client.refreshTokenGrant(config, tokens.refresh_token);
  assert.ok(fresh.access_token && fresh.access_token !== tokens.access_token);
});
