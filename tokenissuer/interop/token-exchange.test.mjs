// openid-client 6.9.0 as the service app of Okta's On-Behalf-Of Token
// Exchange (RFC 8693): genericGrantRequest with the token-exchange
// grant type. Run by TestTokenExchangeOpenIDClient
// (tokenissuer/exchange_interop_test.go) with the issuer of the server
// that exchanges (it trusts the one that issued APIACCESS_SUBJECT_TOKEN,
// a user's access token) and the service app's credentials:
//
//   go test ./tokenissuer/ -run TestTokenExchangeOpenIDClient -v
//
// Run alone without that environment, every test skips.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as client from 'openid-client';

const env = process.env;
const skip = env.APIACCESS_ISSUER ? false : 'no issuer: run through go test -run TestTokenExchangeOpenIDClient ./tokenissuer/';
const insecure = { execute: [client.allowInsecureRequests] };
const grant = 'urn:ietf:params:oauth:grant-type:token-exchange';
const accessToken = 'urn:ietf:params:oauth:token-type:access_token';

const config = () => client.discovery(new URL(env.APIACCESS_ISSUER), env.APIACCESS_CLIENT_ID, undefined,
  client.ClientSecretBasic(env.APIACCESS_CLIENT_SECRET), insecure);
const claims = (jwt) => JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString());
// The request of Okta's guide: the user's token, the server's audience.
const params = (over = {}) => ({
  subject_token: env.APIACCESS_SUBJECT_TOKEN, subject_token_type: accessToken,
  audience: 'api://inventory', scope: 'stock:read', ...over,
});

test('discovery lists the token exchange grant', { skip }, async () => {
  const c = await config();
  assert.ok(c.serverMetadata().grant_types_supported.includes(grant), JSON.stringify(c.serverMetadata().grant_types_supported));
});

test('genericGrantRequest: a token of this server for the user, the app acting', { skip }, async () => {
  const c = await config();
  const res = await client.genericGrantRequest(c, grant, params());
  assert.equal(res.issued_token_type, accessToken);
  assert.equal(res.token_type.toLowerCase(), 'bearer');
  assert.equal(res.scope, 'stock:read');
  assert.equal(res.refresh_token, undefined);
  assert.equal(res.id_token, undefined);
  assert.ok(res.expires_in > 0);
  const at = claims(res.access_token);
  assert.equal(at.iss, env.APIACCESS_ISSUER);
  assert.equal(at.aud, 'api://inventory');
  assert.equal(at.uid, env.APIACCESS_USER_ID);
  assert.equal(at.sub, env.APIACCESS_LOGIN);
  assert.equal(at.cid, env.APIACCESS_CLIENT_ID);
  assert.deepEqual(at.scp, ['stock:read']);
  assert.deepEqual(at.act, { sub: env.APIACCESS_CLIENT_ID });
});

test('refusals: another audience, a bad subject token', { skip }, async () => {
  const c = await config();
  const oauthError = (code, description) => (err) => {
    assert.ok(err instanceof client.ResponseBodyError, String(err));
    assert.equal(err.error, code);
    if (description) assert.equal(err.error_description, description);
    return true;
  };
  await assert.rejects(client.genericGrantRequest(c, grant, params({ audience: 'api://default' })), oauthError('invalid_target'));
  await assert.rejects(client.genericGrantRequest(c, grant, params({ subject_token: 'a.b.c' })), oauthError('invalid_grant', 'subject token is invalid'));
  await assert.rejects(client.genericGrantRequest(c, grant, params({ subject_token_type: 'urn:ietf:params:oauth:token-type:id_token' })), oauthError('invalid_request'));
});
