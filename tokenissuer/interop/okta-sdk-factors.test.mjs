// @okta/okta-sdk-nodejs 8.1.0 (Okta's management SDK, unchanged) reads
// and removes a user's factors and ends a lockout through the issuer's
// User Factors API and lifecycle operations (userFactorApi: listFactors,
// getFactor, unenrollFactor; userApi: resetFactors, unlockUser). Run by
// TestUserFactorsOktaSDKs (tokenissuer/factors_sdk_interop_test.go)
// after it enrolled APIACCESS_TOTP_ID (ACTIVE) and APIACCESS_WEBAUTHN_ID
// for APIACCESS_USER_ID, APIACCESS_OTHER_FACTOR_ID for another user, and
// locked the user out with wrong passwords; the tests run in order and
// the last leaves the user unlocked, with no factor.
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
const login = env('APIACCESS_LOGIN');
const totpId = env('APIACCESS_TOTP_ID');
const webauthnId = env('APIACCESS_WEBAUTHN_ID');
const credentialId = env('APIACCESS_CREDENTIAL_ID');
const otherFactorId = env('APIACCESS_OTHER_FACTOR_ID');
const secret = env('APIACCESS_TOTP_SECRET');

const client = new okta.Client({ orgUrl, token });

async function all(collection) {
  const out = [];
  for await (const item of await collection) {
    out.push(item);
  }
  return out;
}

const apiError = (status, code) => (err) => {
  assert.equal(err.name, 'OktaApiError', `${err.name}: ${err.message}`);
  assert.equal(err.status, status);
  assert.equal(err.errorCode, code);
  assert.ok(err.errorId, 'no errorId');
  return true;
};

test('listFactors: the TOTP app and the WebAuthn credential, as Okta UserFactors', async () => {
  const factors = await all(client.userFactorApi.listFactors({ userId }));
  assert.deepEqual(factors.map((f) => f.id), [totpId, webauthnId]);
  const [totp, webauthn] = factors;
  assert.ok(totp instanceof okta.UserFactorTokenSoftwareTOTP, `TOTP factor is a ${totp.constructor.name}`);
  assert.equal(totp.factorType, 'token:software:totp');
  assert.equal(totp.provider, 'GOOGLE');
  assert.equal(totp.vendorName, 'GOOGLE');
  assert.equal(totp.status, 'ACTIVE');
  assert.equal(totp.profile?.credentialId, login);
  assert.ok(totp.created instanceof Date && !isNaN(totp.created), `created ${totp.created}`);
  assert.ok(Math.abs(Date.now() - totp.created.getTime()) < 5 * 60 * 1000, `created ${totp.created.toISOString()}`);
  assert.ok(webauthn instanceof okta.UserFactorWebAuthn, `WebAuthn factor is a ${webauthn.constructor.name}`);
  assert.equal(webauthn.factorType, 'webauthn');
  assert.equal(webauthn.provider, 'FIDO');
  assert.equal(webauthn.status, 'ACTIVE');
  assert.equal(webauthn.profile?.credentialId, credentialId);
  assert.equal(webauthn.profile?.authenticatorName, 'Security key');
  assert.equal(webauthn._links?.self?.href, `${orgUrl}/api/v1/users/${userId}/factors/${webauthnId}`);
  assert.ok(!JSON.stringify(factors).includes(secret), 'the TOTP secret came back');
});

test('getFactor reads one; another user\'s factor, an unknown user and a wrong token are refused', async () => {
  const one = await client.userFactorApi.getFactor({ userId, factorId: totpId });
  assert.equal(one.id, totpId);
  assert.equal(one.factorType, 'token:software:totp');
  await assert.rejects(client.userFactorApi.getFactor({ userId, factorId: otherFactorId }), apiError(404, 'E0000007'));
  await assert.rejects(client.userFactorApi.unenrollFactor({ userId, factorId: otherFactorId }), apiError(404, 'E0000007'));
  await assert.rejects(all(client.userFactorApi.listFactors({ userId: 'no-such-user' })), apiError(404, 'E0000007'));
  const wrong = new okta.Client({ orgUrl, token: 'wrong-' + token });
  await assert.rejects(all(wrong.userFactorApi.listFactors({ userId })), apiError(401, 'E0000011'));
  await assert.rejects(wrong.userApi.resetFactors({ userId }), apiError(401, 'E0000011'));
  await assert.rejects(wrong.userApi.unlockUser({ userId }), apiError(401, 'E0000011'));
});

test('unenrollFactor removes the WebAuthn credential, resetFactors the rest', async () => {
  await client.userFactorApi.unenrollFactor({ userId, factorId: webauthnId });
  assert.deepEqual((await all(client.userFactorApi.listFactors({ userId }))).map((f) => f.id), [totpId]);
  await assert.rejects(client.userFactorApi.getFactor({ userId, factorId: webauthnId }), apiError(404, 'E0000007'));
  await client.userApi.resetFactors({ userId });
  assert.deepEqual(await all(client.userFactorApi.listFactors({ userId })), []);
});

test('unlockUser ends the lockout; a second one is Okta\'s 403 E0000032', async () => {
  await client.userApi.unlockUser({ userId });
  await assert.rejects(client.userApi.unlockUser({ userId }), apiError(403, 'E0000032'));
});
