// Pushed authorization requests (RFC 9126) with openid-client (panva)
// 6.9.0's buildAuthorizationUrlWithPAR. The issuer is started by the Go
// test TestOpenIDClientPARInterop (tokenissuer/par_interop_test.go),
// which runs this file with the issuer URL, a confidential client that
// requires pushed requests, a public client and a user in the
// environment:
//
//   go test ./tokenissuer/ -run TestOpenIDClientPARInterop -v
//
// Run alone without that environment, every test skips.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as client from 'openid-client';

const env = process.env;
const skip = env.APIACCESS_ISSUER ? false : 'no issuer: run through go test -run TestOpenIDClientPARInterop ./tokenissuer/';

const issuer = env.APIACCESS_ISSUER;
const redirectUri = env.APIACCESS_REDIRECT_URI;
const username = env.APIACCESS_USERNAME;
const password = env.APIACCESS_PASSWORD;
const userId = env.APIACCESS_USER_ID;

// The issuer runs on http://localhost.
const insecure = { execute: [client.allowInsecureRequests] };
const webConfig = () => client.discovery(new URL(issuer), env.APIACCESS_PAR_WEB_ID, undefined,
  client.ClientSecretBasic(env.APIACCESS_PAR_WEB_SECRET), insecure);
const spaConfig = () => client.discovery(new URL(issuer), env.APIACCESS_PAR_SPA_ID, undefined, client.None(), insecure);

// A minimal browser: the issuer's cookies, no redirect following.
class Browser {
  jar = new Map();

  async fetch(url, init = {}) {
    const headers = new Headers(init.headers);
    headers.set('sec-fetch-dest', 'document');
    if (this.jar.size) headers.set('cookie', [...this.jar].map(([k, v]) => `${k}=${v}`).join('; '));
    const res = await fetch(url, { ...init, headers, redirect: 'manual' });
    for (const sc of res.headers.getSetCookie()) {
      const [pair, ...attrs] = sc.split(';');
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      if (value === '' || attrs.some((a) => /^\s*max-age\s*=\s*(0|-)/i.test(a))) this.jar.delete(name);
      else this.jar.set(name, value);
    }
    return res;
  }

  async post(page, extra) {
    const m = page.match(/<form method="post" action="([^"]+)"/);
    assert.ok(m, `no form on the page: ${page.slice(0, 300)}`);
    const fields = {};
    for (const f of page.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)"/g)) fields[f[1]] = unescape(f[2]);
    return this.fetch(new URL(unescape(m[1])), { method: 'POST', body: new URLSearchParams({ ...fields, ...extra }) });
  }
}

const unescape = (s) => s.replace(/&#(\d+);/g, (_, n) => String.fromCharCode(Number(n)))
  .replace(/&quot;/g, '"').replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');

// signIn follows an authorization URL through the sign-in form (unless
// the SSO session skips it) and the consent form when shown, to the
// redirect back to the client.
async function signIn(browser, url) {
  let res = await browser.fetch(url);
  if (res.status === 200) {
    let page = await res.text();
    assert.match(page, /autocomplete="current-password"/, 'sign-in page');
    // A reload of the sign-in page (its URL holds the request_uri) in
    // this browser shows it again, the same pending request (RFC 9126
    // section 4); another browser is refused.
    const again = await browser.fetch(url);
    assert.equal(again.status, 200, 'reload of the sign-in page');
    const reloaded = await again.text();
    const txn = (p) => p.match(/name="txn" value="([^"]*)"/)?.[1];
    assert.ok(txn(page) && txn(reloaded) === txn(page), 'the same pending request');
    assert.equal((await new Browser().fetch(url)).status, 400, 'another browser is refused');
    page = reloaded;
    res = await browser.post(page, { username, password });
  }
  if (res.status === 200) {
    const page = await res.text();
    assert.match(page, /Allow access/, 'consent page');
    res = await browser.post(page, { decision: 'allow' });
  }
  assert.equal(res.status, 302, `redirect to the client, got ${res.status}`);
  const location = new URL(res.headers.get('location'));
  assert.equal(location.origin + location.pathname, redirectUri);
  return location;
}

// pushedCodeFlow pushes a code flow request with PKCE, state and nonce,
// runs it in the browser and redeems the code.
async function pushedCodeFlow(config, browser) {
  const pkceCodeVerifier = client.randomPKCECodeVerifier();
  const expectedState = client.randomState();
  const expectedNonce = client.randomNonce();
  const url = await client.buildAuthorizationUrlWithPAR(config, {
    redirect_uri: redirectUri,
    scope: 'openid orders:read',
    code_challenge: await client.calculatePKCECodeChallenge(pkceCodeVerifier),
    code_challenge_method: 'S256',
    state: expectedState,
    nonce: expectedNonce,
  });
  // Only client_id and request_uri travel through the browser.
  assert.deepEqual([...url.searchParams.keys()].sort(), ['client_id', 'request_uri']);
  assert.ok(url.searchParams.get('request_uri').startsWith('urn:okta:'), url.searchParams.get('request_uri'));
  assert.equal(url.origin + url.pathname, config.serverMetadata().authorization_endpoint);
  const location = await signIn(browser, url);
  assert.equal(location.searchParams.get('iss'), issuer, 'RFC 9207 iss in the response');
  const tokens = await client.authorizationCodeGrant(config, location, { pkceCodeVerifier, expectedState, expectedNonce });
  return { url, tokens };
}

test('discovery names the par endpoint', { skip }, async () => {
  const md = (await webConfig()).serverMetadata();
  assert.equal(md.pushed_authorization_request_endpoint, `${issuer}/v1/par`);
  assert.equal(md.require_pushed_authorization_requests, false);
});

test('code flow through a pushed request, its request_uri used once', { skip }, async () => {
  const config = await webConfig();
  const browser = new Browser();
  const { url, tokens } = await pushedCodeFlow(config, browser);
  assert.ok(tokens.access_token, 'access token');
  assert.equal(tokens.claims().sub, userId);
  assert.equal(tokens.scope, 'openid orders:read');

  // The same request_uri again, in the same browser (whose SSO session
  // would otherwise answer with a code at once).
  const res = await browser.fetch(url);
  assert.equal(res.status, 400, 'a used request_uri is refused');
  assert.equal(res.headers.get('location'), null, 'and nothing is sent to the client');
  assert.match(await res.text(), /The authorize request_uri is invalid\./);
});

test('a client that requires pushed requests is refused a plain one', { skip }, async () => {
  const config = await webConfig();
  const state = client.randomState();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri, scope: 'openid', state,
    code_challenge: await client.calculatePKCECodeChallenge(client.randomPKCECodeVerifier()), code_challenge_method: 'S256',
  });
  const res = await new Browser().fetch(url);
  assert.equal(res.status, 302);
  const location = new URL(res.headers.get('location'));
  assert.equal(location.origin + location.pathname, redirectUri);
  assert.equal(location.searchParams.get('error'), 'invalid_request');
  assert.equal(location.searchParams.get('state'), state);
  assert.equal(location.searchParams.get('code'), null);
});

test('a public client pushes with its client_id alone', { skip }, async () => {
  const { tokens } = await pushedCodeFlow(await spaConfig(), new Browser());
  assert.ok(tokens.access_token, 'access token');
  assert.equal(tokens.claims().sub, userId);
});

test('a refused push reaches the client as an OAuth error', { skip }, async () => {
  const config = await webConfig();
  await assert.rejects(
    client.buildAuthorizationUrlWithPAR(config, { redirect_uri: 'https://elsewhere.example/cb', scope: 'openid' }),
    (err) => err.error === 'invalid_request' && err.status === 400
      && /Login redirect URI/.test(err.error_description),
  );
});
