// Forum ouvert: checks, in the reader's browser, that one record is in the public record.
//
// Trusts only the verifier key of /ledger/key (an auditor compares it with the one the forum
// publishes elsewhere) and WebCrypto:
//   1. /ledger/checkpoint: C2SP signed note, Ed25519 signature by that key, origin = key name;
//   2. /ledger/entries?start=i&end=i+1: the leaf bytes are the record shown (event id, decision id);
//   3. /ledger/proof/inclusion?index=i&size=N: the RFC 9162 §2.1.3.2 root recomputed from
//      SHA-256(0x00 || leaf) and the path equals the signed root.
// Sets data-verification="ok" on #preuve-inclusion (or "failed", with why). A record not yet in
// the log (or not yet under a signed checkpoint) is retried a few times.

const RETRIES = 10;
const RETRY_MS = 1500;
const enc = new TextEncoder();

class Pending extends Error {}

function b64decode(text) {
  if (typeof text !== "string" || !/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4) {
    throw new Error("base64 invalide");
  }
  const bin = atob(text);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}

const leafHash = (leaf) => sha256(concat(new Uint8Array([0]), leaf));
const nodeHash = (l, r) => sha256(concat(new Uint8Array([1]), l, r));

function equal(a, b) {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
  return d === 0;
}

const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");

// RFC 9162 §2.1.3.2. Indices may exceed 2^53 in theory: BigInt throughout.
async function rootFromInclusion(index, size, leaf, path) {
  let fn = BigInt(index), sn = BigInt(size) - 1n;
  if (fn > sn) throw new Error("indice hors de l'arbre");
  let r = leaf;
  for (const p of path) {
    if (sn === 0n) throw new Error("chemin d'inclusion trop long");
    if ((fn & 1n) === 1n || fn === sn) {
      r = await nodeHash(p, r);
      while ((fn & 1n) === 0n && fn !== 0n) { fn >>= 1n; sn >>= 1n; }
    } else {
      r = await nodeHash(r, p);
    }
    fn >>= 1n; sn >>= 1n;
  }
  if (sn !== 0n) throw new Error("chemin d'inclusion trop court");
  return r;
}

// Note verifier key: <name>+<key id hex8>+<base64(0x01 || 32-byte Ed25519 key)>
async function parseKey(text) {
  // base64 may itself hold "+": split on the first two only
  const line = text.trim();
  const a = line.indexOf("+"), b = line.indexOf("+", a + 1);
  const name = line.slice(0, Math.max(a, 0)), id = line.slice(a + 1, b), data = line.slice(b + 1);
  if (a <= 0 || b < 0 || !/^[0-9a-fA-F]{8}$/.test(id)) throw new Error("clé de vérification mal formée");
  const raw = b64decode(data);
  if (raw.length !== 33 || raw[0] !== 1) throw new Error("clé de vérification : Ed25519 attendu");
  const pub = raw.slice(1);
  const digest = await sha256(concat(enc.encode(name + "\n"), raw));
  if (hex(digest.slice(0, 4)) !== id.toLowerCase()) throw new Error("identifiant de clé incohérent");
  return { name, id: digest.slice(0, 4), pub };
}

// C2SP signed note + tlog-checkpoint: body = origin, size, base64 root (+ extensions).
async function openCheckpoint(note, key) {
  const split = note.lastIndexOf("\n\n");
  if (split < 0 || !note.endsWith("\n")) throw new Error("point de contrôle mal formé");
  const text = note.slice(0, split + 1);
  const lines = note.slice(split + 2, -1).split("\n");
  const cryptoKey = await crypto.subtle.importKey("raw", key.pub, { name: "Ed25519" }, false, ["verify"]);
  let verified = false;
  for (const line of lines) {
    const prefix = "\u2014 " + key.name + " ";
    if (!line.startsWith(prefix)) continue;
    const sig = b64decode(line.slice(prefix.length));
    if (sig.length !== 68 || !equal(sig.slice(0, 4), key.id)) continue;
    const ok = await crypto.subtle.verify({ name: "Ed25519" }, cryptoKey, sig.slice(4), enc.encode(text));
    if (!ok) throw new Error("la signature du point de contrôle est invalide");
    verified = true;
  }
  if (!verified) throw new Error("le point de contrôle n'est pas signé par la clé de vérification du registre");
  const body = text.split("\n");
  if (body[0] !== key.name) throw new Error("le point de contrôle concerne un autre registre");
  if (!/^(0|[1-9][0-9]*)$/.test(body[1] || "")) throw new Error("taille de l'arbre mal formée");
  const root = b64decode(body[2] || "");
  if (root.length !== 32) throw new Error("racine mal formée");
  return { size: BigInt(body[1]), sizeText: body[1], root };
}

function contains(value, wanted) {
  if (typeof value === "string") return value === wanted;
  if (Array.isArray(value)) return value.some((v) => contains(v, wanted));
  if (value && typeof value === "object") return Object.values(value).some((v) => contains(v, wanted));
  return false;
}

async function get(url, kind) {
  const resp = await fetch(url, { cache: "no-store", headers: { Accept: kind === "json" ? "application/json" : "text/plain" } });
  if (resp.status === 503) throw new Pending("le registre public est momentanément indisponible");
  if (!resp.ok) throw new Error(`${url} a répondu ${resp.status}`);
  return kind === "json" ? resp.json() : resp.text();
}

// The leaf index, when the page did not know it yet: ask the page again (the server locates it).
async function findIndex(section) {
  if (section.dataset.index) return section.dataset.index;
  const resp = await fetch(location.href, { cache: "no-store" });
  if (resp.ok) {
    const doc = new DOMParser().parseFromString(await resp.text(), "text/html");
    const fresh = doc.getElementById("preuve-inclusion");
    if (fresh && fresh.dataset.index) {
      section.dataset.index = fresh.dataset.index;
      const link = fresh.querySelector("#lien-feuille");
      if (link && !section.querySelector("#lien-feuille")) {
        const p = document.createElement("p");
        p.append("Enregistrement ", link.cloneNode(true), ".");
        section.querySelector("h2, h3")?.after(p);
      }
      return fresh.dataset.index;
    }
  }
  throw new Pending("inscription au registre public en cours");
}

async function verify(section) {
  const index = await findIndex(section);
  const key = await parseKey(await get("/ledger/key", "text"));
  const cp = await openCheckpoint(await get("/ledger/checkpoint", "text"), key);
  if (BigInt(index) >= cp.size) throw new Pending("inscription au registre public en cours (pas encore sous un point de contrôle signé)");
  const page = await get(`/ledger/entries?start=${index}&end=${BigInt(index) + 1n}`, "json");
  const entry = page.entries && page.entries[0];
  if (!entry || String(entry.index) !== String(index)) throw new Pending("inscription au registre public en cours");
  const leaf = b64decode(entry.leaf);
  let record;
  try { record = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(leaf)); }
  catch { throw new Error("la feuille n'est pas un enregistrement JSON"); }
  if (section.dataset.eventId && record.event_id !== section.dataset.eventId) {
    throw new Error(`la feuille n° ${index} n'est pas l'enregistrement affiché`);
  }
  if (section.dataset.expect && !contains(record.data, section.dataset.expect)) {
    throw new Error(`la feuille n° ${index} ne concerne pas cette décision`);
  }
  const proof = await get(`/ledger/proof/inclusion?index=${index}&size=${cp.sizeText}`, "json");
  if (String(proof.leaf_index) !== String(index) || String(proof.tree_size) !== cp.sizeText) {
    throw new Error("la preuve reçue ne concerne pas cette feuille");
  }
  const root = await rootFromInclusion(index, cp.sizeText, await leafHash(leaf), proof.hashes.map(b64decode));
  if (!equal(root, cp.root)) throw new Error("la preuve d'inclusion ne redonne pas la racine signée");
  return { index, size: cp.sizeText };
}

// The page's own word on its record (« en cours d'inscription »…) was written before the browser checked the
// proof: once it is verified, take the page's fresh copy of that status, so the two never disagree.
async function refreshStatus(index) {
  const status = document.getElementById("statut-registre");
  if (!status || status.dataset.recordStatus === "ok") return;
  try {
    const resp = await fetch(location.href, { cache: "no-store" });
    if (resp.ok) {
      const fresh = new DOMParser().parseFromString(await resp.text(), "text/html").getElementById("statut-registre");
      if (fresh && fresh.dataset.recordStatus === "ok") {
        status.replaceWith(document.importNode(fresh, true));
        return;
      }
    }
  } catch { /* the sentence below says it as well */ }
  const p = document.createElement("p");
  p.className = "fr-badge fr-badge--success fr-mb-1w";
  p.textContent = `Inscrite au registre public : enregistrement n° ${index}`;
  status.replaceChildren(p);
  status.dataset.recordStatus = "ok";
}

function show(section, state, message) {
  section.dataset.verification = state;
  const box = section.querySelector("#preuve-navigateur");
  if (!box) return;
  box.hidden = false;
  box.classList.remove("fr-alert--info", "fr-alert--success", "fr-alert--error");
  box.classList.add(state === "ok" ? "fr-alert--success" : state === "failed" ? "fr-alert--error" : "fr-alert--info");
  box.querySelector("[data-role=status]").textContent = message;
}

async function run(section) {
  for (let attempt = 0; ; attempt++) {
    try {
      const { index, size } = await verify(section);
      show(section, "ok", `Preuve vérifiée : l'enregistrement n° ${index} est inclus dans le registre de ${size} enregistrements dont la racine est signée (SHA-256 et Ed25519 recalculés par votre navigateur).`);
      await refreshStatus(index);
      return;
    } catch (err) {
      if (err instanceof Pending && attempt < RETRIES) {
        show(section, "pending", `${err.message}…`);
        await new Promise((r) => setTimeout(r, RETRY_MS));
        continue;
      }
      if (err instanceof Pending) {
        show(section, "pending", `${err.message[0].toUpperCase()}${err.message.slice(1)}. Rechargez la page dans un instant.`);
      } else {
        show(section, "failed", `Preuve non vérifiée : ${err.message}.`);
      }
      return;
    }
  }
}

const section = document.getElementById("preuve-inclusion");
if (section) {
  if (!window.crypto || !crypto.subtle) {
    show(section, "failed", "Preuve non vérifiée : votre navigateur ne permet pas le calcul cryptographique (WebCrypto) sur cette page.");
  } else {
    run(section);
  }
}
