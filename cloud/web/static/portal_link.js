// Links from the cloud carry their token in the URL fragment (#invitation=, #installer=,
// #request=), which never reaches the server. This moves it into the page's form, takes it out
// of the address bar (and so out of the history), and hides the "paste your link" field.
// A form with data-keep also keeps the token in this tab's sessionStorage, so it survives a
// sign-in in between (Authenticate-on-Print); data-auto submits the form once it is filled.
(function () {
  "use strict";
  var hash = new URLSearchParams(window.location.hash.replace(/^#/, ""));
  document.querySelectorAll("form[data-fragment]").forEach(function (form) {
    var key = form.getAttribute("data-fragment");
    var stored = "mfd-" + key;
    var field = form.querySelector("[name='" + key + "']");
    var value = hash.get(key);
    if (value) {
      history.replaceState(null, "", window.location.pathname + window.location.search);
      if (form.hasAttribute("data-keep")) {
        try { sessionStorage.setItem(stored, value); } catch (e) { /* private mode: paste */ }
      }
    } else if (form.hasAttribute("data-keep")) {
      try { value = sessionStorage.getItem(stored); } catch (e) { value = null; }
    }
    if (!value || !field || field.disabled) {
      return;
    }
    if (!field.value) {
      field.value = value;
    }
    var paste = form.querySelector(".paste");
    var ready = form.querySelector(".ready");
    if (paste && ready) {
      paste.hidden = true;
      ready.hidden = false;
    }
    form.addEventListener("submit", function () {
      try { sessionStorage.removeItem(stored); } catch (e) { /* nothing kept */ }
    });
    if (form.hasAttribute("data-auto")) {
      try { sessionStorage.removeItem(stored); } catch (e) { /* nothing kept */ }
      form.requestSubmit ? form.requestSubmit() : form.submit();
    }
  });
})();
