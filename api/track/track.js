// Privalytics tracking snippet: first-party, no cookies, consent-aware.
//
//   <script src="/track.js" data-key="pvk_…" async></script>
//   <script>
//     window.privalytics = window.privalytics || {q: []};
//     privalytics.q.push(["consent", {analytics: true, marketing: false}]);
//     privalytics.q.push(["identify", "customer-123"]);
//     privalytics.q.push(["track", "view", {product: "SKU-1"}, {purpose: "analytics"}]);
//   </script>
//
// It stores nothing in the browser (no cookies, no localStorage): the customer
// identifier is what the shop passes to identify() on each page, as the privacy
// unit is the customer, and a visitor the shop does not know is not tracked.
// Each event names a purpose; it is sent only if the visitor granted that
// purpose. A refused purpose, or one not yet answered (unless the page sets
// data-default-consent="granted"), sends nothing at all.
(function () {
  "use strict";
  var script = document.currentScript;
  var attr = function (name) { return script ? script.getAttribute(name) : null; };
  var key = attr("data-key");
  var endpoint = attr("data-endpoint") || (script ? new URL("/v1/track", script.src).href : "/v1/track");
  var defaultGranted = attr("data-default-consent") === "granted";
  var consent = {};      // purpose → true (granted) | false (refused)
  var customer = null;   // set by identify(); kept in memory only
  var sent = 0, dropped = 0;

  function allowed(purpose) {
    if (Object.prototype.hasOwnProperty.call(consent, purpose)) return consent[purpose] === true;
    return defaultGranted;
  }

  function send(body) {
    var url = endpoint + (endpoint.indexOf("?") < 0 ? "?" : "&") + "key=" + encodeURIComponent(key);
    var text = JSON.stringify(body);
    // text/plain keeps it a simple request: no preflight, and sendBeacon
    // delivers it even when the page is closing.
    if (navigator.sendBeacon && navigator.sendBeacon(url, new Blob([text], {type: "text/plain"}))) return;
    fetch(url, {method: "POST", body: text, headers: {"Content-Type": "text/plain"}, credentials: "omit", keepalive: true, mode: "cors"})
      .catch(function () { /* analytics never breaks the page */ });
  }

  var api = {
    // consent({analytics: true, marketing: false}) records the visitor's answers.
    consent: function (answers) {
      for (var p in answers) if (Object.prototype.hasOwnProperty.call(answers, p)) consent[p] = answers[p] === true;
    },
    // identify(id) names the customer the next events belong to.
    identify: function (id) { customer = id == null ? null : String(id); },
    // track(type, fields, {purpose}) sends one event if its purpose is granted.
    track: function (type, fields, opts) {
      var purpose = (opts && opts.purpose) || "analytics";
      if (!key || !customer || !allowed(purpose)) { dropped++; return false; }
      var body = {customer_id: customer, ts: new Date().toISOString(), type: type, channel: "web"};
      for (var f in fields) if (Object.prototype.hasOwnProperty.call(fields, f)) body[f] = fields[f];
      send(body);
      sent++;
      return true;
    },
    stats: function () { return {sent: sent, dropped: dropped}; }
  };

  // Calls queued before the script loaded run now, in order.
  var queued = (window.privalytics && window.privalytics.q) || [];
  var run = function (call) { return api[call[0]].apply(null, call.slice(1)); };
  window.privalytics = {q: {push: run}, consent: api.consent, identify: api.identify, track: api.track, stats: api.stats};
  for (var i = 0; i < queued.length; i++) run(queued[i]);
})();
