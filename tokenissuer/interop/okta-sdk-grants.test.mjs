// @okta/okta-sdk-nodejs 8.1.0 (Okta's management SDK, unchanged) lists
// and revokes a user's consent grants through the issuer's User Grants
// API (userApi: listUserGrants, getUserGrant, listGrantsForUserAndClient,
// listUserClients, revokeUserGrant, revokeGrantsForUserAndClient,
// revokeUserGrants). Run by TestUserGrantsOktaSDKs
// (tokenissuer/grants_sdk_interop_test.go) after the user consented to
// APIACCESS_SCOPE for APIACCESS_CLIENT_ID on APIACCESS_ISSUER; the tests
// run in order and the last leaves no grant.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import okta from '@okta/okta-sdk-nodejs';

const env = (name) => {
  const v = process.env[name];
  assert.ok(v, `${name} is not set`);
  return v;
};
const orgUrl = env('APIACCESS_BASE');
const token = env('APIACCESS_API_TOKEN');
const userId = env('APIACCESS_USER_ID');
const clientId = env('APIACCESS_CLIENT_ID');
const scope = env('APIACCESS_SCOPE');
const issuer = env('APIACCESS_ISSUER');

const client = new okta.Client({ orgUrl, token });

async function all(collection) {
  const out = [];
  for await (const item of await collection) {
    out.push(item);
  }
  return out;
}

let grant;

test('listUserGrants: the consent, as an OAuth2ScopeConsentGrant', async () => {
  const grants = await all(client.userApi.listUserGrants({ userId }));
  assert.equal(grants.length, 1, JSON.stringify(grants));
  [grant] = grants;
  assert.ok(grant instanceof okta.OAuth2ScopeConsentGrant, 'not an OAuth2ScopeConsentGrant');
  assert.match(grant.id, /^oag[A-Za-z0-9_-]{17}$/);
  assert.equal(grant.status, 'ACTIVE');
  assert.equal(grant.userId, userId);
  assert.equal(grant.clientId, clientId);
  assert.equal(grant.scopeId, scope);
  assert.equal(grant.issuer, issuer);
  assert.equal(grant.source, 'END_USER');
  assert.ok(grant.created instanceof Date && !isNaN(grant.created), `created ${grant.created}`);
  assert.ok(Math.abs(Date.now() - grant.created.getTime()) < 5 * 60 * 1000, `created ${grant.created.toISOString()}`);
  assert.equal(grant._links?.self?.href, `${orgUrl}/api/v1/users/${userId}/grants/${grant.id}`);

  const filtered = await all(client.userApi.listUserGrants({ userId, scopeId: 'no-such-scope' }));
  assert.deepEqual(filtered, []);
});

test('getUserGrant, listGrantsForUserAndClient and listUserClients find it', async () => {
  const one = await client.userApi.getUserGrant({ userId, grantId: grant.id, expand: 'scope' });
  assert.equal(one.id, grant.id);
  assert.equal(one._embedded?.scope?.id, scope);
  const byClient = await all(client.userApi.listGrantsForUserAndClient({ userId, clientId }));
  assert.deepEqual(byClient.map((g) => g.id), [grant.id]);
  const clients = await all(client.userApi.listUserClients({ userId }));
  assert.deepEqual(clients.map((c) => c.client_id), [clientId]);
});

test('errors: unknown grant and user 404 E0000007, wrong token 401 E0000011', async () => {
  const apiError = (status, code) => (err) => {
    assert.equal(err.name, 'OktaApiError', `${err.name}: ${err.message}`);
    assert.equal(err.status, status);
    assert.equal(err.errorCode, code);
    assert.ok(err.errorId, 'no errorId');
    return true;
  };
  await assert.rejects(client.userApi.getUserGrant({ userId, grantId: 'oagNoSuchGrant000000' }), apiError(404, 'E0000007'));
  await assert.rejects(all(client.userApi.listUserGrants({ userId: 'no-such-user' })), apiError(404, 'E0000007'));
  const wrong = new okta.Client({ orgUrl, token: 'wrong-' + token });
  await assert.rejects(all(wrong.userApi.listUserGrants({ userId })), apiError(401, 'E0000011'));
  await assert.rejects(wrong.userApi.revokeUserGrant({ userId, grantId: grant.id }), apiError(401, 'E0000011'));
});

test('revokeUserGrant revokes it; revoking a client\'s and the user\'s grants then is a no-op', async () => {
  await client.userApi.revokeUserGrant({ userId, grantId: grant.id });
  assert.deepEqual(await all(client.userApi.listUserGrants({ userId })), []);
  assert.deepEqual(await all(client.userApi.listUserClients({ userId })), []);
  await client.userApi.revokeGrantsForUserAndClient({ userId, clientId });
  await client.userApi.revokeUserGrants({ userId });
});
