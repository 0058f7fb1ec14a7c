// Print from the browser: a PDF dropped on the box goes into the file field (the form then
// uploads it as if chosen), and a file over the limit or not named .pdf is flagged before it
// is sent. The server checks both again: these are only quicker answers.
(function () {
  "use strict";
  var form = document.getElementById("upload");
  var drop = document.getElementById("drop");
  var input = document.getElementById("document");
  var chosen = document.getElementById("chosen");
  if (!form || !drop || !input) {
    return;
  }
  var max = parseInt(form.getAttribute("data-max"), 10) || 0;

  function show() {
    var file = input.files && input.files[0];
    chosen.textContent = file ? "Chosen: " + file.name + " (" + Math.ceil(file.size / 1024) +
      " KB)" : "";
    if (file && max && file.size > max) {
      chosen.textContent += " - too large: at most " + form.getAttribute("data-max-text") + ".";
    }
  }

  ["dragenter", "dragover"].forEach(function (name) {
    drop.addEventListener(name, function (e) {
      e.preventDefault();
      drop.classList.add("over");
    });
  });
  ["dragleave", "drop"].forEach(function (name) {
    drop.addEventListener(name, function () { drop.classList.remove("over"); });
  });
  drop.addEventListener("drop", function (e) {
    e.preventDefault();
    if (e.dataTransfer && e.dataTransfer.files.length) {
      input.files = e.dataTransfer.files;
      show();
    }
  });
  input.addEventListener("change", show);
})();
