// Live updates: when the server says new mail was ingested, re-fetch this page and swap in
// its content. No inline script (the CSP forbids it); the HTML comes from our own server,
// already escaped, and is parsed inertly by DOMParser (scripts in it never run).
(function () {
  "use strict";
  var main = document.getElementById("content");
  if (!main || !main.hasAttribute("data-live") || !window.EventSource) return;
  var pending = null;
  function refresh() {
    pending = null;
    fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (!html) return;
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("content");
        if (fresh) {
          main.replaceChildren.apply(main, Array.prototype.slice.call(fresh.childNodes).map(function (n) {
            return document.importNode(n, true);
          }));
          main.setAttribute("data-updated", String(Date.now()));
        }
      })
      .catch(function () {});
  }
  var source = new EventSource("/events");
  source.addEventListener("ingested", function () {
    if (pending === null) pending = setTimeout(refresh, 200);
  });
  source.addEventListener("open", function () { document.documentElement.setAttribute("data-live", "open"); });
})();
