// An Express web app signing its users in with Okta's
// @okta/oidc-middleware 5.5.1, configured as Okta's README shows
// (issuer, client_id, client_secret, appBaseUrl, scope), pointed at the
// token issuer. The Go test TestOktaOIDCMiddleware
// (tokenissuer/oktasdk_interop_test.go) starts it with the settings in
// the environment and walks it with a browser:
//
//   go test ./tokenissuer/ -run TestOktaOIDCMiddleware -v
//
// Routes: / (public), /profile (protected: "Hello {name} ({email})"
// from userinfo), /tokens (protected, test only: the session's access
// and refresh tokens, so the test can see them revoked), and the
// middleware's /login, /authorization-code/callback and POST /logout.

import express from 'express';
import session from 'express-session';
import { randomBytes } from 'node:crypto';
import oidcMiddleware from '@okta/oidc-middleware';

const { ExpressOIDC } = oidcMiddleware;
const env = process.env;
for (const name of ['APIACCESS_ISSUER', 'APIACCESS_CLIENT_ID', 'APIACCESS_CLIENT_SECRET', 'APIACCESS_APP_URL', 'APIACCESS_APP_PORT']) {
  if (!env[name]) {
    console.error(`${name} is not set: run through go test -run TestOktaOIDCMiddleware ./tokenissuer/`);
    process.exit(2);
  }
}

const oidc = new ExpressOIDC({
  issuer: env.APIACCESS_ISSUER,
  client_id: env.APIACCESS_CLIENT_ID,
  client_secret: env.APIACCESS_CLIENT_SECRET,
  appBaseUrl: env.APIACCESS_APP_URL,
  scope: env.APIACCESS_SCOPE || 'openid profile email',
  // The test issuer runs on http://localhost; the SDK insists on https
  // unless told that this is a test.
  testing: { disableHttpsCheck: true },
});

const escape = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const page = (text) => `<!doctype html><title>Okta SDK app</title><p id="text">${escape(text)}</p>`;

const app = express();
app.use(session({ secret: randomBytes(32).toString('hex'), resave: false, saveUninitialized: false }));
app.use(oidc.router);
app.get('/', (req, res) => {
  res.send(page(req.userContext ? `Signed in as ${req.userContext.userinfo?.email}` : 'Signed out'));
});
app.get('/profile', oidc.ensureAuthenticated(), (req, res) => {
  const info = req.userContext.userinfo;
  res.send(page(`Hello ${info.name} (${info.email})`));
});
app.get('/tokens', oidc.ensureAuthenticated(), (req, res) => {
  const { access_token, refresh_token } = req.userContext.tokens;
  res.json({ access_token, refresh_token });
});

// Revocation failures and other errors of the middleware; the Go test
// fails when one is printed. Messages only, never a token.
let ready = false;
oidc.on('error', (err) => {
  console.error(`OIDC error: ${err?.name}: ${err?.message}`);
  if (!ready) process.exit(1); // discovery failed: the app cannot start
});
oidc.on('ready', () => {
  ready = true;
  app.listen(Number(env.APIACCESS_APP_PORT), '127.0.0.1', () => console.log(`listening on ${env.APIACCESS_APP_URL}`));
});
