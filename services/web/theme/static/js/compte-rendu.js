// Forum ouvert: the minutes editor of the secretariat (/secretariat/comptes-rendus/{id}).
//
// - Live preview: the text is sent to /secretariat/comptes-rendus/apercu, which renders it with the
//   very sanitiser the published versions go through, and the HTML it answers replaces the preview.
// - Autosave: every few seconds when the text changed, and when the page is left (keepalive), each
//   save carrying the revision the text was loaded at (`base_revision`). A save refused because the
//   draft changed elsewhere stops the autosave and says so; the text typed stays in the editor.
// - Nothing typed is lost: every change is also kept in this browser (localStorage) until the forum
//   has it, so a closed tab or an expired sign-in leaves a copy the page offers to take back.
// Without JavaScript the form still works: « Enregistrer le brouillon » posts it.

const SAVE_EVERY_MS = 4000;
const PREVIEW_AFTER_MS = 500;

const form = document.getElementById("form-brouillon");
if (form) {
  const area = form.querySelector("textarea[name=markdown]");
  const revision = form.querySelector("input[name=base_revision]");
  const status = document.getElementById("etat-enregistrement");
  const preview = document.getElementById("apercu");
  const conflictBox = document.getElementById("conflit-direct");
  const copyBox = document.getElementById("copie-locale");
  const key = `forum-compte-rendu-${form.dataset.minutesId}`;
  let saved = area.value;
  let saving = false;
  let stopped = false;
  let previewTimer = null;
  let previewAbort = null;

  const say = (text) => { status.textContent = text; };

  const keepCopy = () => {
    try {
      localStorage.setItem(key, JSON.stringify({ text: area.value, revision: revision.value, at: Date.now() }));
    } catch (e) { /* private browsing or full: the autosave still runs */ }
  };
  const dropCopy = () => { try { localStorage.removeItem(key); } catch (e) { /* nothing kept */ } };
  const readCopy = () => {
    try { return JSON.parse(localStorage.getItem(key) || "null"); } catch (e) { return null; }
  };

  // A copy left by an earlier visit, different from the text the forum has: offer it back.
  const copy = readCopy();
  if (copy && typeof copy.text === "string" && copy.text !== area.value) {
    copyBox.hidden = false;
    document.getElementById("restaurer-copie").addEventListener("click", () => {
      area.value = copy.text;
      copyBox.hidden = true;
      say("Texte repris de ce navigateur : il va être enregistré.");
      refreshPreview();
      save();
    });
    document.getElementById("oublier-copie").addEventListener("click", () => {
      dropCopy();
      copyBox.hidden = true;
    });
  } else if (copy) {
    dropCopy();
  }

  async function refreshPreview() {
    if (previewAbort) previewAbort.abort();
    previewAbort = new AbortController();
    const body = new FormData();
    body.append("csrf_token", form.querySelector("input[name=csrf_token]").value);
    body.append("markdown", area.value);
    try {
      const r = await fetch(form.dataset.previewUrl, { method: "POST", body, signal: previewAbort.signal,
                                                       credentials: "same-origin" });
      if (r.ok) preview.innerHTML = await r.text(); // sanitised by the server, like a published version
    } catch (e) { /* aborted by a newer keystroke, or offline: the previous preview stays */ }
  }

  function showConflict(data) {
    stopped = true;
    conflictBox.querySelector("[data-role=message]").textContent = data.message;
    conflictBox.querySelector("[data-role=texte]").textContent = data.markdown || "";
    conflictBox.dataset.revision = String(data.revision);
    conflictBox.hidden = false;
    say("Non enregistré : le brouillon a été modifié ailleurs.");
    conflictBox.scrollIntoView({ block: "center" });
  }

  async function save(keepalive = false) {
    if (saving || stopped) return;
    saving = true;
    const text = area.value;
    try {
      const r = await fetch(form.dataset.saveUrl, { method: "POST", body: new FormData(form), keepalive,
                                                    headers: { Accept: "application/json" },
                                                    credentials: "same-origin" });
      let data = {};
      try { data = await r.json(); } catch (e) { /* not JSON: an error page */ }
      if (r.ok && typeof data.revision === "number") {
        revision.value = String(data.revision);
        saved = text;
        if (area.value === text) dropCopy(); else keepCopy();
        say(data.message);
      } else if (r.status === 409 && data.conflict) {
        showConflict(data);
      } else if (r.status === 401 || r.status === 403) {
        stopped = true;
        say(data.message || "Ce formulaire n'est plus valable (connexion expirée) : votre texte est gardé dans ce "
            + "navigateur. Reconnectez-vous dans un autre onglet, puis rechargez cette page pour le retrouver.");
      } else if (r.status === 413) {
        say("Le texte est trop long pour être enregistré d'un coup : il est gardé dans ce navigateur.");
      } else {
        say(data.message || "Le brouillon n'a pas pu être enregistré : nouvel essai dans quelques secondes. Votre "
            + "texte est gardé dans ce navigateur.");
      }
    } catch (e) {
      say("Pas de connexion avec le forum : nouvel essai dans quelques secondes. Votre texte est gardé dans ce navigateur.");
    } finally {
      saving = false;
    }
  }

  area.addEventListener("input", () => {
    keepCopy();
    if (!stopped) say("Modifications en cours d'enregistrement…");
    clearTimeout(previewTimer);
    previewTimer = setTimeout(refreshPreview, PREVIEW_AFTER_MS);
  });

  setInterval(() => { if (area.value !== saved) save(); }, SAVE_EVERY_MS);

  // Leaving the page (or its tab): one last save that outlives the page (`keepalive`). Its answer is
  // still read when the page stays, so the next save carries the new revision; the copy in this
  // browser covers a refusal.
  const lastSave = () => { if (area.value !== saved) save(true); };
  window.addEventListener("pagehide", lastSave);
  document.addEventListener("visibilitychange", () => { if (document.visibilityState === "hidden") lastSave(); });

  document.getElementById("garder-mon-texte").addEventListener("click", () => {
    revision.value = conflictBox.dataset.revision; // the clerk saw the other text and chose theirs
    conflictBox.hidden = true;
    stopped = false;
    save();
  });

  // The form posted without the script's help (« Enregistrer le brouillon »): the server answers a page.
  form.addEventListener("submit", () => { stopped = true; });
}
