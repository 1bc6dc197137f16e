// webauthn.js: the browser half of tokenissuer/webauthnrp. No inline
// script, no eval: works under Content-Security-Policy script-src 'self'.
//
// Markup (one or more forms on a page):
//
//   <form method="post" action="..." data-webauthn="create"   (or "get")
//         data-webauthn-options="{{.OptionsJSON}}">
//     <input type="hidden" name="webauthn_response">
//     <p data-webauthn-message role="alert" hidden></p>
//     <button type="submit">Use a security key or passkey</button>
//   </form>
//   <script src=".../webauthn.js" defer></script>
//
// data-webauthn-options holds the options JSON that BeginRegistration or
// BeginLogin returned; data-webauthn-options-url instead names a URL
// answering it (fetched same-origin with credentials). On submit the
// script calls navigator.credentials.create/get, writes the credential
// as JSON (ArrayBuffers as base64url, §5.1 toJSON shape) into the
// hidden field (name from data-webauthn-field, default
// "webauthn_response") and submits the form. Failures, the user's
// cancel included, show in the message element and leave the page as it
// is. data-webauthn-autostart starts the ceremony when the page loads
// (a sign-in step right after the password).
(function () {
  "use strict";

  var messages = {
    unsupported: "This browser cannot use security keys or passkeys.",
    cancelled: "The request was cancelled or timed out. Try again.",
    excluded: "This authenticator is already registered.",
    failed: "The security key or passkey could not be used. Try again."
  };

  function b64urlToBuf(s) {
    s = String(s).replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4) { s += "="; }
    var bin = atob(s), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) { out[i] = bin.charCodeAt(i); }
    return out.buffer;
  }

  function bufToB64url(buf) {
    if (!buf) { return undefined; }
    var bytes = new Uint8Array(buf), bin = "";
    for (var i = 0; i < bytes.length; i++) { bin += String.fromCharCode(bytes[i]); }
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function descriptors(list) {
    return (list || []).map(function (d) {
      var o = { type: d.type, id: b64urlToBuf(d.id) };
      if (d.transports) { o.transports = d.transports; }
      return o;
    });
  }

  // decode turns the server's options JSON into what the browser takes.
  function decode(kind, opts) {
    var pk = Object.assign({}, opts.publicKey);
    pk.challenge = b64urlToBuf(pk.challenge);
    if (kind === "create") {
      pk.user = Object.assign({}, pk.user, { id: b64urlToBuf(pk.user.id) });
      pk.excludeCredentials = descriptors(pk.excludeCredentials);
    } else {
      pk.allowCredentials = descriptors(pk.allowCredentials);
    }
    var req = { publicKey: pk };
    if (opts.mediation) { req.mediation = opts.mediation; }
    return req;
  }

  // encode is the credential as JSON (RegistrationResponseJSON or
  // AuthenticationResponseJSON).
  function encode(cred) {
    var r = cred.response, out = {
      id: cred.id,
      rawId: bufToB64url(cred.rawId),
      type: cred.type,
      authenticatorAttachment: cred.authenticatorAttachment || undefined,
      clientExtensionResults: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {},
      response: { clientDataJSON: bufToB64url(r.clientDataJSON) }
    };
    if (r.attestationObject) {
      out.response.attestationObject = bufToB64url(r.attestationObject);
      if (r.getTransports) { out.response.transports = r.getTransports(); }
    } else {
      out.response.authenticatorData = bufToB64url(r.authenticatorData);
      out.response.signature = bufToB64url(r.signature);
      if (r.userHandle && r.userHandle.byteLength) { out.response.userHandle = bufToB64url(r.userHandle); }
    }
    return JSON.stringify(out);
  }

  function show(form, key, err) {
    var el = form.querySelector("[data-webauthn-message]");
    var text = form.getAttribute("data-webauthn-msg-" + key) || messages[key];
    form.setAttribute("data-webauthn-state", key);
    if (el) {
      el.textContent = text;
      el.hidden = false;
    }
    if (err && window.console) { console.info("webauthn: " + key + ": " + (err.name || "") + " " + (err.message || "")); }
  }

  function options(form) {
    var inline = form.getAttribute("data-webauthn-options");
    if (inline) { return Promise.resolve(JSON.parse(inline)); }
    var url = form.getAttribute("data-webauthn-options-url");
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } }).then(function (res) {
      if (!res.ok) { throw new Error("options: HTTP " + res.status); }
      return res.json();
    });
  }

  function run(form) {
    var state = form.getAttribute("data-webauthn-state");
    if (state === "busy" || state === "done") { return; }
    var kind = form.getAttribute("data-webauthn");
    if (!window.PublicKeyCredential || !navigator.credentials) {
      show(form, "unsupported");
      return;
    }
    form.setAttribute("data-webauthn-state", "busy");
    var el = form.querySelector("[data-webauthn-message]");
    if (el) { el.hidden = true; }
    options(form).then(function (opts) {
      var req = decode(kind, opts);
      return kind === "create" ? navigator.credentials.create(req) : navigator.credentials.get(req);
    }).then(function (cred) {
      if (!cred) { throw new DOMException("no credential", "NotAllowedError"); }
      var name = form.getAttribute("data-webauthn-field") || "webauthn_response";
      var field = form.querySelector("input[name='" + name + "']");
      if (!field) {
        field = document.createElement("input");
        field.type = "hidden";
        field.name = name;
        form.appendChild(field);
      }
      field.value = encode(cred);
      form.setAttribute("data-webauthn-state", "done");
      HTMLFormElement.prototype.submit.call(form);
    }).catch(function (err) {
      var name = err && err.name;
      if (name === "NotAllowedError" || name === "AbortError") {
        show(form, "cancelled", err);
      } else if (name === "InvalidStateError" && kind === "create") {
        show(form, "excluded", err);
      } else if (name === "NotSupportedError" || name === "SecurityError") {
        show(form, "unsupported", err);
      } else {
        show(form, "failed", err);
      }
    });
  }

  function init() {
    var forms = document.querySelectorAll("form[data-webauthn]");
    Array.prototype.forEach.call(forms, function (form) {
      form.addEventListener("submit", function (ev) {
        ev.preventDefault();
        run(form);
      });
      if (form.hasAttribute("data-webauthn-autostart")) { run(form); }
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
