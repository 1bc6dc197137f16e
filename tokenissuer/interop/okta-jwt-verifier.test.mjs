// Okta's Node JWT verifier (@okta/jwt-verifier 4.0.2, used unchanged)
// against tokens of the token issuer. The Go test TestOktaJWTVerifierNode
// (tokenissuer/oktasdk_interop_test.go) starts the issuer, signs a user
// in to a web app at the custom server "default" and at the org server,
// and runs this file with the tokens and nonces in the environment:
//
//   go test ./tokenissuer/ -run TestOktaJWTVerifierNode -v
//
// Run alone without that environment, every test skips.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import OktaJwtVerifier from '@okta/jwt-verifier';

const env = process.env;
const skip = env.APIACCESS_ISSUER ? false : 'no issuer: run through go test -run TestOktaJWTVerifierNode ./tokenissuer/';

const base = env.APIACCESS_BASE; // the org server's issuer
const issuer = env.APIACCESS_ISSUER; // the custom server's issuer
const audience = env.APIACCESS_AUDIENCE;
const clientId = env.APIACCESS_CLIENT_ID;
const userId = env.APIACCESS_USER_ID;
const accessToken = env.APIACCESS_ACCESS_TOKEN;
const idToken = env.APIACCESS_ID_TOKEN;
const nonce = env.APIACCESS_NONCE;
const orgAccessToken = env.APIACCESS_ORG_ACCESS_TOKEN;
const orgIdToken = env.APIACCESS_ORG_ID_TOKEN;
const orgNonce = env.APIACCESS_ORG_NONCE;

// The test issuer runs on http://localhost; the SDK insists on https
// unless told that this is a test. Nothing else differs from Okta's
// documented setup.
const testing = { disableHttpsCheck: true };
const verifier = (options) => new OktaJwtVerifier({ testing, ...options });

// tamper changes one character in the middle of the signature.
function tamper(jwt) {
  const i = jwt.lastIndexOf('.') + 10;
  return jwt.slice(0, i) + (jwt[i] === 'A' ? 'B' : 'A') + jwt.slice(i + 1);
}

// refused expects a rejection whose message matches re.
const refused = (re) => (err) => {
  assert.match(String(err?.message ?? err), re);
  return true;
};

test('custom server: verifyAccessToken', { skip }, async () => {
  const v = verifier({ issuer });
  assert.equal(v.jwksUri, `${issuer}/v1/keys`, 'the SDK derives the JWKS URI from the issuer');
  const jwt = await v.verifyAccessToken(accessToken, audience);
  assert.equal(jwt.header.alg, 'RS256');
  assert.ok(jwt.header.kid);
  assert.equal(jwt.claims.iss, issuer);
  assert.equal(jwt.claims.aud, audience);
  assert.equal(jwt.claims.cid, clientId);
  assert.equal(jwt.claims.uid, userId);
  assert.ok(jwt.claims.scp.includes('orders:read'));
  assert.equal(jwt.isExpired(), false);
  // A list of audiences, one of them ours.
  await v.verifyAccessToken(accessToken, ['api://other', audience]);
});

test('custom server: refused access tokens', { skip }, async () => {
  const v = verifier({ issuer });
  await assert.rejects(v.verifyAccessToken(accessToken, 'api://other'), refused(/audience claim .* does not match/));
  await assert.rejects(v.verifyAccessToken(tamper(accessToken), audience), refused(/[Ss]ignature/));
  // Another issuer's token: the org server signs with a key the custom
  // server's JWKS does not hold.
  await assert.rejects(v.verifyAccessToken(orgAccessToken, audience), refused(/signing key/i));
  // The same key set, but iss is not the configured issuer.
  const wrongIssuer = verifier({ issuer: `${base}/oauth2/other`, jwksUri: `${issuer}/v1/keys` });
  await assert.rejects(wrongIssuer.verifyAccessToken(accessToken, audience), refused(/issuer .* does not match/));
  // An ID token is not an access token for the API.
  await assert.rejects(v.verifyAccessToken(idToken, audience), refused(/audience claim .* does not match/));
});

test('custom server: an access token expires with its rule lifetime', { skip }, async (t) => {
  const v = verifier({ issuer });
  const jwt = await v.verifyAccessToken(accessToken, audience); // keys fetched and cached now
  assert.equal(jwt.claims.exp - jwt.claims.iat, 600, "the access rule's 10 minute lifetime");
  // One second after exp (njwt allows no skew).
  t.mock.timers.enable({ apis: ['Date'], now: (jwt.claims.exp + 1) * 1000 });
  await assert.rejects(v.verifyAccessToken(accessToken, audience), refused(/expired/i));
});

test('custom server: assertClaims', { skip }, async () => {
  const scp = verifier({ issuer, assertClaims: { 'scp.includes': ['orders:read', 'openid'], cid: clientId } });
  await scp.verifyAccessToken(accessToken, audience);
  const notGranted = verifier({ issuer, assertClaims: { 'scp.includes': ['payments:write'] } });
  await assert.rejects(notGranted.verifyAccessToken(accessToken, audience), refused(/does not include expected value 'payments:write'/));
  const otherClient = verifier({ issuer, assertClaims: { cid: 'someone-else' } });
  await assert.rejects(otherClient.verifyAccessToken(accessToken, audience), refused(/claim 'cid'/));
});

test('custom server: verifyIdToken with the nonce', { skip }, async () => {
  const v = verifier({ issuer });
  const jwt = await v.verifyIdToken(idToken, clientId, nonce);
  assert.equal(jwt.claims.sub, userId);
  assert.equal(jwt.claims.aud, clientId);
  assert.equal(jwt.claims.nonce, nonce);
  await assert.rejects(v.verifyIdToken(idToken, clientId, 'another-nonce'), refused(/nonce claim .* does not match/));
  await assert.rejects(v.verifyIdToken(idToken, clientId), refused(/expected nonce is required/));
  await assert.rejects(v.verifyIdToken(idToken, 'someone-else', nonce), refused(/does not match expected client id/));
  await assert.rejects(v.verifyIdToken(tamper(idToken), clientId, nonce), refused(/[Ss]ignature/));
});

test('org server: ID token with jwksUri {base}/oauth2/v1/keys', { skip }, async () => {
  // The SDK would build {base}/v1/keys; the org server's keys are at
  // {base}/oauth2/v1/keys (as Okta's), so the option is needed.
  const v = verifier({ issuer: base, jwksUri: `${base}/oauth2/v1/keys` });
  const jwt = await v.verifyIdToken(orgIdToken, clientId, orgNonce);
  assert.equal(jwt.header.alg, 'RS256');
  assert.equal(jwt.claims.iss, base);
  assert.equal(jwt.claims.sub, userId);
  assert.equal(jwt.claims.nonce, orgNonce);
  // The custom server's ID token is of another issuer with another key.
  await assert.rejects(v.verifyIdToken(idToken, clientId, nonce), refused(/signing key/i));
});
