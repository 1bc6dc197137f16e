// The DPoP test app: one OktaAuth with `dpop: true` at /dpop/ (the
// "dpop" profile of the Go side's sdkTab), against the custom
// authorization server of window.DPOP_CONFIG. window.app has what
// app.js's has for signing in (signIn, tokens) plus calls of the
// DPoP-required API; its functions settle to {ok, value} or
// {ok: false, error}.
"use strict";

const cfg = window.DPOP_CONFIG;
const home = "/dpop/";

// issuer, clientId, redirectUri and scopes, as in app.js, and dpop:
// every other option is the SDK's default (dpopOptions.allowBearerTokens
// false: a token_type other than DPoP fails the sign-in).
const authClient = new OktaAuth({
	issuer: cfg.issuer,
	clientId: cfg.clientId,
	redirectUri: location.origin + home + "callback",
	scopes: cfg.scopes,
	dpop: true,
});

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

// summary is app.js's, plus the token type the SDK recorded and the id
// of the DPoP key pair (in IndexedDB) each token is tied to.
function summary(tokens) {
	tokens = tokens || {};
	return {
		accessToken: tokens.accessToken ? tokens.accessToken.accessToken : "",
		tokenType: tokens.accessToken ? tokens.accessToken.tokenType : "",
		scopes: tokens.accessToken ? tokens.accessToken.scopes : null,
		idClaims: tokens.idToken ? tokens.idToken.claims : null,
		hasRefreshToken: !!tokens.refreshToken,
		accessKeyPair: tokens.accessToken ? tokens.accessToken.dpopPairId || "" : "",
		refreshKeyPair: tokens.refreshToken ? tokens.refreshToken.dpopPairId || "" : "",
	};
}

async function answer(res) {
	return {
		status: res.status, body: await res.text(),
		challenge: res.headers.get("WWW-Authenticate") || "",
		nonce: res.headers.get("DPoP-Nonce") || "",
	};
}

// dpopFetch GETs url (this origin's path, or another origin's URL)
// with the SDK's DPoP headers for it (nonce, when given, goes into the
// proof).
async function dpopFetch(url, nonce) {
	const params = { url: new URL(url, location.origin).href, method: "GET" };
	if (nonce) {
		params.nonce = nonce;
	}
	return fetch(params.url, { headers: await authClient.getDPoPAuthorizationHeaders(params) });
}

// The DPoP key pairs the SDK keeps (IndexedDB OktaAuthJs, store
// DPoPKeys): their ids and public keys as JWKs.
function keyPairs() {
	return new Promise((resolve, reject) => {
		const open = indexedDB.open("OktaAuthJs", 1);
		open.onerror = () => reject(open.error);
		open.onupgradeneeded = () => open.result.createObjectStore("DPoPKeys");
		open.onsuccess = () => {
			const db = open.result;
			const store = db.transaction("DPoPKeys", "readonly").objectStore("DPoPKeys");
			const ids = store.getAllKeys(), pairs = store.getAll();
			pairs.onerror = () => reject(pairs.error);
			pairs.onsuccess = async () => {
				db.close();
				try {
					const out = {};
					for (let i = 0; i < ids.result.length; i++) {
						out[ids.result[i]] = await crypto.subtle.exportKey("jwk", pairs.result[i].publicKey);
					}
					resolve(out);
				} catch (e) {
					reject(e);
				}
			};
		};
	});
}

window.app = {
	profile: "dpop",

	// signIn leaves the page: it returns before the browser navigates.
	signIn(params) {
		authClient.signInWithRedirect(Object.assign({ originalUri: home }, params || {}))
			.catch((e) => show("failed", e));
		return { ok: true };
	},

	tokens: () => summary(authClient.tokenManager.getTokensSync()),
	getUser: () => settle(() => authClient.getUser()),
	renewTokens: () => settle(async () => {
		const t = await authClient.token.renewTokens();
		authClient.tokenManager.setTokens(t);
		return summary(t);
	}),
	keyPairs: () => settle(keyPairs),

	// callDPoP: a URL with the SDK's DPoP headers.
	callDPoP: (path) => settle(async () => answer(await dpopFetch(path))),

	// callBearer: the API with the same access token as a bearer token.
	callBearer: (path) => settle(async () => answer(await fetch(path, {
		headers: { Authorization: "Bearer " + authClient.getAccessToken() },
	}))),

	// callReplay: the API twice with the same DPoP headers (one proof).
	callReplay: (path) => settle(async () => {
		const headers = await authClient.getDPoPAuthorizationHeaders({ url: location.origin + path, method: "GET" });
		const first = await answer(await fetch(path, { headers }));
		const second = await answer(await fetch(path, { headers }));
		return { first, second };
	}),

	// callWithNonce: a URL that wants a server nonce in the proof, as
	// Okta's DPoP guide does it: the use_dpop_nonce answer goes through
	// parseUseDPoPNonceError, then a new proof with the nonce.
	callWithNonce: (url) => settle(async () => {
		const res = await dpopFetch(url);
		const first = await answer(res);
		const nonce = authClient.parseUseDPoPNonceError(res.headers);
		const second = nonce ? await answer(await dpopFetch(url, nonce)) : null;
		return { first, parsedNonce: nonce || "", second };
	}),
};

async function start() {
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
