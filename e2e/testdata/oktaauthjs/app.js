// The test app: one OktaAuth per profile, the first path segment
// (/custom/ for the custom authorization server, /org/ for the org
// server, /fragment/ for the custom one with response_mode fragment).
// The test drives it through window.app, whose functions settle to
// {ok, value} or {ok: false, error} so that the Go side sees what the
// SDK saw. The callback page finishes the sign-in by itself, as apps
// built on okta-react do.
"use strict";

const profileName = location.pathname.split("/")[1];
const profile = window.APP_CONFIG.profiles[profileName];
const home = "/" + profileName + "/";

let authClient = null;
if (profile) {
	// Only issuer, clientId, redirectUri and scopes (and responseMode
	// for the fragment profile): every other option is the SDK's default.
	const options = {
		issuer: profile.issuer,
		clientId: window.APP_CONFIG.clientId,
		redirectUri: location.origin + home + "callback",
		scopes: profile.scopes,
	};
	if (profile.responseMode) {
		options.responseMode = profile.responseMode;
	}
	authClient = new OktaAuth(options);
}

function describe(e) {
	return {
		name: e && e.name, message: String((e && e.message) || e),
		errorCode: e && e.errorCode, errorSummary: e && e.errorSummary,
		status: e && e.xhr ? e.xhr.status : undefined,
	};
}

async function settle(f) {
	try {
		return { ok: true, value: await f() };
	} catch (e) {
		return { ok: false, error: describe(e) };
	}
}

// show says where the app is: #state's data-state is one of ready,
// signed-in, finishing, failed or no-profile, which the test awaits.
function show(state, err) {
	const st = document.getElementById("state");
	st.textContent = state;
	st.dataset.state = state;
	if (err) {
		const el = document.getElementById("error");
		el.hidden = false;
		el.textContent = JSON.stringify(describe(err));
	}
}

// summary is what the test reads of a set of tokens: the raw access
// token (the SDK keeps no claims of it: the test decodes it), the ID
// token's claims, the scopes the SDK recorded, and whether there is a
// refresh token (never the token itself).
function summary(tokens) {
	tokens = tokens || {};
	return {
		accessToken: tokens.accessToken ? tokens.accessToken.accessToken : "",
		scopes: tokens.accessToken ? tokens.accessToken.scopes : null,
		idClaims: tokens.idToken ? tokens.idToken.claims : null,
		hasRefreshToken: !!tokens.refreshToken,
	};
}

window.app = {
	profile: profileName,

	// discover: what the SDK prepares for an authorize request, which
	// needs the server's metadata (it checks that the server supports
	// the PKCE method, S256).
	discover: () => settle(() => authClient.token.prepareTokenParams()),

	// signIn leaves the page: it returns before the browser navigates.
	signIn(params) {
		authClient.signInWithRedirect(Object.assign({ originalUri: home }, params || {}))
			.catch((e) => show("failed", e));
		return { ok: true };
	},

	tokens: () => summary(authClient.tokenManager.getTokensSync()),
	getUser: () => settle(() => authClient.getUser()),

	async callAPI(withToken) {
		const headers = {};
		if (withToken) {
			headers.Authorization = "Bearer " + authClient.getAccessToken();
		}
		const res = await fetch("/api/whoami", { headers });
		return { status: res.status, body: await res.text(), challenge: res.headers.get("WWW-Authenticate") };
	},

	renew: () => settle(async () => summary({ accessToken: await authClient.tokenManager.renew("accessToken"), refreshToken: authClient.tokenManager.getTokensSync().refreshToken })),
	renewTokens: () => settle(async () => summary(await authClient.token.renewTokens())),
	getWithoutPrompt: (params) => settle(async () => summary((await authClient.token.getWithoutPrompt(params)).tokens)),

	revokeAccessToken: () => settle(() => authClient.token.revoke(authClient.tokenManager.getTokensSync().accessToken)),
	revokeRefreshToken: () => settle(() => authClient.token.revoke(authClient.tokenManager.getTokensSync().refreshToken)),
	introspect: (kind) => settle(() => authClient.token.introspect(kind, authClient.tokenManager.getTokensSync()[kind])),

	sessionExists: () => settle(() => authClient.session.exists()),
	sessionGet: () => settle(async () => {
		const s = await authClient.session.get();
		return Object.assign({}, s, { refresh: undefined, user: undefined, canRefresh: typeof s.refresh === "function" });
	}),
	// sessionRefreshLink is the refresh of the session object that
	// session.get() returns (its _links.refresh).
	sessionRefreshLink: () => settle(async () => (await authClient.session.get()).refresh()),
	sessionRefresh: () => settle(() => authClient.session.refresh()),
	closeSession: () => settle(() => authClient.closeSession()),

	// signOut leaves the page too.
	signOut() {
		authClient.signOut().catch((e) => show("failed", e));
		return { ok: true };
	},
};

async function start() {
	if (!authClient) {
		show("no-profile");
		return;
	}
	// start() as Okta's guides and okta-react do: it also drops the
	// tokens signOut() marked for removal.
	await authClient.start();
	if (authClient.isLoginRedirect()) {
		show("finishing");
		try {
			await authClient.handleLoginRedirect();
		} catch (e) {
			show("failed", e);
		}
		return;
	}
	show(authClient.tokenManager.getTokensSync().accessToken ? "signed-in" : "ready");
}

start();
