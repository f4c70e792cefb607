// Forum ouvert: the figures of an announcement being sent, refreshed while the secretariat watches.
//
// The page already shows the figures of the moment it was served (no script needed); this polls
// /secretariat/annonces/<id>/progression (JSON) every few seconds and updates them, and stops when
// the send is over. When the state changes (paused, resumed, finished) the page is reloaded so that
// its buttons match it.

const EVERY_MS = 3000;

function show(box, figures) {
  for (const el of box.querySelectorAll("[data-figure]")) {
    const key = el.dataset.figure;
    if (key in figures) el.textContent = String(figures[key]);
  }
  const bar = box.querySelector("[data-figure-bar]");
  if (bar) {
    bar.max = Math.max(1, figures.total);
    bar.value = figures.done;
    bar.textContent = `${figures.done} / ${figures.total}`;
  }
}

async function poll(box, state) {
  let figures;
  try {
    const r = await fetch(box.dataset.progressUrl, { headers: { Accept: "application/json" }, credentials: "same-origin" });
    if (!r.ok) { // signed out (stop), or the service is away for a moment (try again later)
      if (r.status >= 500) setTimeout(() => poll(box, state), EVERY_MS * 2);
      return;
    }
    figures = await r.json();
  } catch {
    setTimeout(() => poll(box, state), EVERY_MS * 2);
    return;
  }
  show(box, figures);
  if (figures.state !== state) {
    window.location.reload();
    return;
  }
  if (!figures.finished) setTimeout(() => poll(box, state), EVERY_MS);
}

const box = document.querySelector("[data-progress-url]");
if (box) setTimeout(() => poll(box, box.dataset.state), EVERY_MS);
