// My jobs keeps itself up to date: every few seconds it asks /portal/jobs.json whether the
// list changed (a short signature of the jobs), and if so fetches the page again and swaps the
// list in, saying so to screen readers. It waits while the person is working inside the list
// (focus there, a box ticked, a change form open), so nothing moves under their hands.
(function () {
  "use strict";
  var section = document.getElementById("jobs");
  if (!section || !window.fetch) {
    return;
  }
  var live = document.getElementById("jobs-live");
  var every = parseInt(section.getAttribute("data-poll"), 10) || 5000;
  var url = section.getAttribute("data-url");

  function busy() {
    return section.contains(document.activeElement) ||
      section.querySelector("input.pick:checked, details[open]") !== null;
  }

  function swap() {
    return fetch(window.location.pathname, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.getElementById("jobs");
        var form = doc.getElementById("release");
        if (!fresh) {
          return;
        }
        section.innerHTML = fresh.innerHTML;
        section.setAttribute("data-sig", fresh.getAttribute("data-sig"));
        var old = document.getElementById("release");
        if (old && form) {
          old.replaceWith(form);
        } else if (!old && form) {
          section.after(form);
        } else if (old && !form) {
          old.remove();
        }
        if (live) {
          live.textContent = "Your job list was updated.";
        }
      });
  }

  function tick() {
    if (document.hidden || busy()) {
      return setTimeout(tick, every);
    }
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) {
        if (r.redirected || !r.ok) {
          return Promise.reject(r.status);  // signed out: stop asking
        }
        return r.json();
      })
      .then(function (answer) {
        if (answer.sig !== section.getAttribute("data-sig")) {
          return swap();
        }
      })
      .then(function () { setTimeout(tick, every); },
            function () { /* signed out or gone: the page still works as it is */ });
  }
  setTimeout(tick, every);
})();
