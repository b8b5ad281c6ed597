// Shelf photos in the browser: drawing, moving and resizing boxes on a photo.
// The page works without this script: boxes are listed, added by their
// numbers and deleted with plain forms.
(function () {
  "use strict";

  const MIN_SIDE = 4;

  function post(url, fields, csrf) {
    const body = new URLSearchParams(fields);
    body.set("_csrf", csrf);
    return fetch(url, {
      method: "POST",
      body,
      headers: { "X-CSRF-Token": csrf },
      credentials: "same-origin",
    });
  }

  // After a change: follow the server's redirect, or say why it refused.
  async function settle(response) {
    if (response.ok) {
      window.location.href = response.url;
      return;
    }
    const text = await response.text();
    const page = new DOMParser().parseFromString(text, "text/html");
    const reason = page.querySelector(".field-error, p.error, .error");
    window.alert(reason ? reason.textContent.trim() : "The box was not saved (" + response.status + ").");
    window.location.reload();
  }

  function setupCanvas(canvas) {
    const W = Number(canvas.dataset.width);
    const H = Number(canvas.dataset.height);
    const csrf = canvas.dataset.csrf;
    const img = canvas.querySelector("img");
    let drag = null;
    let selected = null;

    const toPhoto = (e) => {
      const r = img.getBoundingClientRect();
      return {
        x: Math.min(W, Math.max(0, ((e.clientX - r.left) * W) / r.width)),
        y: Math.min(H, Math.max(0, ((e.clientY - r.top) * H) / r.height)),
      };
    };
    const place = (el, b) => {
      el.style.left = (b.x * 100) / W + "%";
      el.style.top = (b.y * 100) / H + "%";
      el.style.width = (b.w * 100) / W + "%";
      el.style.height = (b.h * 100) / H + "%";
    };
    const boxOf = (el) => ({
      x: Number(el.dataset.x),
      y: Number(el.dataset.y),
      w: Number(el.dataset.w),
      h: Number(el.dataset.h),
    });
    const fields = (b) => ({
      x: Math.round(b.x),
      y: Math.round(b.y),
      width: Math.round(b.w),
      height: Math.round(b.h),
    });
    const select = (el) => {
      if (selected) selected.classList.remove("selected");
      selected = el;
      if (el) el.classList.add("selected");
    };

    canvas.addEventListener("pointerdown", (e) => {
      if (e.button !== 0) return;
      const el = e.target.closest(".shelf-box");
      const start = toPhoto(e);
      if (el) {
        select(el);
        const orig = boxOf(el);
        const kind = e.target.classList.contains("handle") ? "resize" : "move";
        drag = { kind, el, start, orig, box: Object.assign({}, orig) };
      } else {
        select(null);
        const drawn = document.createElement("div");
        drawn.className = "shelf-box drawing";
        canvas.appendChild(drawn);
        drag = { kind: "draw", el: drawn, start, box: { x: start.x, y: start.y, w: 0, h: 0 } };
      }
      canvas.setPointerCapture(e.pointerId);
      e.preventDefault();
    });

    canvas.addEventListener("pointermove", (e) => {
      if (!drag) return;
      const p = toPhoto(e);
      const dx = p.x - drag.start.x;
      const dy = p.y - drag.start.y;
      const b = drag.box;
      if (drag.kind === "draw") {
        b.x = Math.min(drag.start.x, p.x);
        b.y = Math.min(drag.start.y, p.y);
        b.w = Math.abs(dx);
        b.h = Math.abs(dy);
      } else if (drag.kind === "move") {
        b.x = Math.min(W - b.w, Math.max(0, drag.orig.x + dx));
        b.y = Math.min(H - b.h, Math.max(0, drag.orig.y + dy));
      } else {
        b.w = Math.min(W - b.x, Math.max(MIN_SIDE, drag.orig.w + dx));
        b.h = Math.min(H - b.y, Math.max(MIN_SIDE, drag.orig.h + dy));
      }
      place(drag.el, b);
    });

    canvas.addEventListener("pointerup", () => {
      if (!drag) return;
      const done = drag;
      drag = null;
      const b = done.box;
      if (done.kind === "draw") {
        if (b.w < MIN_SIDE || b.h < MIN_SIDE) {
          done.el.remove();
          return;
        }
        post(canvas.dataset.addUrl, fields(b), csrf).then(settle);
        return;
      }
      const moved = ["x", "y", "w", "h"].some((k) => Math.round(b[k]) !== Math.round(done.orig[k]));
      if (moved) {
        const url = canvas.dataset.boxUrl.replace("{id}", done.el.dataset.id);
        post(url, fields(b), csrf).then(settle);
      }
    });

    document.addEventListener("keydown", (e) => {
      if (!selected || (e.key !== "Delete" && e.key !== "Backspace")) return;
      if (e.target && /^(INPUT|TEXTAREA|SELECT)$/.test(e.target.tagName)) return;
      e.preventDefault();
      if (!window.confirm("Delete box #" + selected.dataset.id + "?")) return;
      const url = canvas.dataset.boxUrl.replace("{id}", selected.dataset.id) + "/delete";
      post(url, {}, csrf).then(settle);
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    const canvas = document.getElementById("shelf-canvas");
    if (canvas) setupCanvas(canvas);
  });
})();
