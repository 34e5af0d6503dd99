// opsdesk's own script: small touches that work without it too. Loaded as a file, never inline
// (the Content-Security-Policy allows no inline script).
(function () {
  "use strict";

  // Times are rendered in UTC; show them in the reader's own time zone.
  function localTimes(root) {
    root.querySelectorAll("time[datetime]").forEach(function (t) {
      var d = new Date(t.getAttribute("datetime"));
      if (!isNaN(d.getTime()) && !t.dataset.local) {
        t.title = t.textContent;
        t.textContent = d.toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
        t.dataset.local = "1";
      }
    });
  }

  // "Select all" for the queue's bulk actions.
  function selectAll(root) {
    root.querySelectorAll("input[data-select-all]").forEach(function (box) {
      box.addEventListener("change", function () {
        var form = box.closest("form");
        if (!form) return;
        form.querySelectorAll("input[name='id']").forEach(function (b) { b.checked = box.checked; });
      });
    });
  }

  // A file input that fills a text area (a lens document to import): the form posts the text.
  function fileFills(root) {
    root.querySelectorAll("input[type='file'][data-fills]").forEach(function (input) {
      input.addEventListener("change", function () {
        var target = document.getElementById(input.dataset.fills);
        var file = input.files && input.files[0];
        if (!target || !file) return;
        file.text().then(function (text) { target.value = text; });
      });
    });
  }

  function enhance(root) { localTimes(root); selectAll(root); fileFills(root); }
  document.addEventListener("DOMContentLoaded", function () { enhance(document); });
  // Every element htmx swaps in, out of band too, brings its own times.
  document.addEventListener("htmx:load", function (e) { localTimes(e.target); });

  // A request htmx sent that failed (refused, signed out, server error, no network) would
  // otherwise change nothing on the page: say so at the top of the page.
  function pageError(text) {
    var p = document.getElementById("page-error");
    if (!p) {
      var main = document.querySelector("main") || document.body;
      p = document.createElement("p");
      p.id = "page-error";
      p.className = "error";
      p.setAttribute("role", "alert");
      main.insertBefore(p, main.firstChild);
    }
    p.hidden = false;
    p.textContent = text;
  }
  document.addEventListener("htmx:responseError", function (e) {
    var xhr = e.detail && e.detail.xhr;
    var status = xhr ? xhr.status : 0;
    if (status === 401) {
      pageError("You are signed out: sign in again, then repeat the change.");
    } else if (status === 403) {
      pageError("The change was refused: your session or your role does not allow it. Reload the page and try again.");
    } else {
      pageError("The change was not made (HTTP " + status + "). Reload the page and try again.");
    }
  });
  document.addEventListener("htmx:sendError", function () {
    pageError("opsdesk could not be reached: the change was not made. Try again.");
  });
})();
