// @okta/okta-sdk-nodejs 8.1.0 (Okta's management SDK, unchanged) reads
// the issuer's System Log, GET /api/v1/logs: a bounded query paged by
// the SDK's Collection through the Link header's rel="next", a filter on
// eventType, and a wrong API token. Run by TestSystemLogOktaSDKs
// (tokenissuer/syslog_sdk_interop_test.go), which makes the grants and
// passes what it expects in APIACCESS_WANT: [{eventType, result, actor}]
// in publishing order.
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
const since = env('APIACCESS_SINCE');
const until = env('APIACCESS_UNTIL');
const want = JSON.parse(env('APIACCESS_WANT'));
const limit = 2;

// list iterates the SDK's collection across every page, counting the
// requests the SDK makes.
async function list(client, params) {
  const collection = await client.systemLogApi.listLogEvents({ since, until, limit, ...params });
  const events = [];
  for await (const ev of collection) {
    events.push(ev);
  }
  return events;
}

// countingClient is a Client whose request executor (a documented
// Client option; it emits "request") records the URLs fetched.
function countingClient(apiToken) {
  const requestExecutor = new okta.DefaultRequestExecutor();
  const pages = [];
  requestExecutor.on('request', (request) => pages.push(request.url));
  return { client: new okta.Client({ orgUrl, token: apiToken, requestExecutor }), pages };
}

test('every event of the window, once, in order, across pages of 2', async () => {
  assert.ok(want.length > limit, `want more events (${want.length}) than one page (${limit})`);
  const { client, pages } = countingClient(token);
  const events = await list(client, {});
  assert.deepEqual(
    events.map((e) => ({ eventType: e.eventType, result: e.outcome?.result, actor: e.actor?.id })),
    want,
  );
  assert.equal(new Set(events.map((e) => e.uuid)).size, events.length, 'an event came twice');
  assert.ok(pages.length >= Math.ceil(want.length / limit), `fetched ${pages.length} pages for ${want.length} events`);
  assert.ok(pages.slice(1).every((u) => new URL(u).searchParams.get('after')), `next pages without after: ${pages}`);
  let last = 0;
  for (const e of events) {
    // Okta's fields, as the SDK's LogEvent model holds them.
    assert.ok(e instanceof okta.LogEvent, 'not a LogEvent');
    assert.ok(e.published instanceof Date && !isNaN(e.published), `published ${e.published}`);
    assert.ok(e.published.getTime() >= last, 'out of publishing order');
    last = e.published.getTime();
    assert.ok(e.actor?.id && e.actor?.type, `actor ${JSON.stringify(e.actor)}`);
    assert.ok(e.client?.ipAddress, `client ${JSON.stringify(e.client)}`);
    assert.ok(e.transaction?.id, `transaction ${JSON.stringify(e.transaction)}`);
    assert.ok(e.displayMessage && e.severity && e.uuid, `event ${JSON.stringify(e)}`);
  }
  assert.equal(new Set(events.map((e) => e.transaction.id)).size, events.length, 'two grants share a transaction id');
});

test('a filter on eventType returns only those events', async () => {
  const type = 'app.oauth2.as.token.grant';
  const expected = want.filter((w) => w.eventType === type);
  assert.ok(expected.length > 0 && expected.length < want.length, 'the filter must select some but not all');
  const { client } = countingClient(token);
  const events = await list(client, { filter: `eventType eq "${type}"` });
  assert.deepEqual(
    events.map((e) => ({ eventType: e.eventType, result: e.outcome?.result, actor: e.actor?.id })),
    expected,
  );
});

test('a wrong API token: the SDK error with E0000011', async () => {
  const { client } = countingClient('wrong-' + token);
  await assert.rejects(list(client, {}), (err) => {
    assert.equal(err.name, 'OktaApiError', `${err.name}: ${err.message}`);
    assert.equal(err.status, 401);
    assert.equal(err.errorCode, 'E0000011');
    assert.equal(err.errorSummary, 'Invalid token provided');
    assert.ok(err.errorId, 'no errorId');
    return true;
  });
});
