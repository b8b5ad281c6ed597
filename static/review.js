// Keyboard shortcuts of the review screens (shelf crops, merchant lines):
// a button with data-key="k" in the #review panel is pressed by the key k,
// and / focuses the product search. Every action is also a plain button.
(function () {
  "use strict";

  document.addEventListener("keydown", (e) => {
    const review = document.getElementById("review");
    if (!review || e.ctrlKey || e.metaKey || e.altKey) return;
    const target = e.target;
    if (target && /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName)) {
      if (e.key === "Escape") target.blur();
      return;
    }
    if (e.key === "/") {
      const pick = document.getElementById("pick");
      if (pick) {
        pick.focus();
        e.preventDefault();
      }
      return;
    }
    const button = review.querySelector('button[data-key="' + CSS.escape(e.key) + '"]');
    if (button && !button.disabled) {
      e.preventDefault();
      button.click();
    }
  });

})();
