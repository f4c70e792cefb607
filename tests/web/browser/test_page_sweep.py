"""Every page of the demo forum, on a 360 px phone, as a visitor, an approved member and the secretariat.

The pages are found by crawling the links of the pages themselves (GET only, from `/`, `/espace` and
`/secretariat`), so that a page added later is swept without editing this test. Pages of one route are
told apart by what they show (their section headings, badges, forms and tables): one is checked for each
distinct look, so a past, a future and a cancelled session, an open and a closed vote… are each checked
once. Each form page is also submitted empty once (its required fields cleared) to check its error state.

On each page: no horizontal scroll of the page at 360 px (a failure names the widest elements that stick
out), no serious or critical axe-core violation at 360 px and at desktop width, no server error, no broken
link, no Content-Security-Policy error. All problems are collected and reported together at the end.
"""
from __future__ import annotations

import re
import time
from collections import defaultdict
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

import pytest
from playwright.sync_api import Browser, Error as PlaywrightError

from forum_ouvert.demo import PEOPLE, SECRETARIAT_EMAIL, _email
from forum_ouvert.launcher import Stack
from tests.web.browser.conftest import DemoForum
from tests.web.browser.test_registration_journey import Visitor
from tests.web.browser.test_waitlist_journey import sign_in

pytestmark = pytest.mark.browser

PHONE = {"width": 360, "height": 740}
DESKTOP = {"width": 1280, "height": 900}
SEEDS = ("/", "/espace", "/secretariat")
# Not pages: actions, machine-readable documents and downloads, the developer's mail catcher.
SKIP_PATH = re.compile(r"^/(dev|static|ledger|api|flux|tiles)(/|$)|^/(deconnexion|sante|favicon\.ico)$"
                       r"|\.(ics|json|xml|csv|atom|rss|pdf|txt|zip|gz|md|png|svg)$|^/donnees/.+|^/espace/donnees$")
# Forms never submitted empty: they end the session or erase the account.
SKIP_FORM = re.compile(r"/deconnexion|/suppression|/effacer")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
MAX_LOADS_PER_ROUTE = 5  # per person: enough to meet each kind of session, decision, vote…
MAX_CHECKS_PER_ROUTE = 3  # per person: the looks of a route beyond these are checked no more


def route_of(path_and_query: str) -> str:
    """/seances/<uuid>?page=2 -> /seances/{id}?page: one route per pattern (filters keep their value)."""
    parts = urlsplit(path_and_query)
    path = re.sub(r"/v\d+(?=/|$)", "/v{n}", re.sub(r"/\d+(?=/|$)", "/{n}", UUID.sub("{id}", parts.path)))
    query = sorted((k if (k in ("page", "q", "token") or v.isdigit() or UUID.search(v)) else f"{k}={v}")
                   for k, v in parse_qsl(parts.query, keep_blank_values=True))
    return path + ("?" + "&".join(query) if query else "")


# What a page shows, to tell two pages of one route apart (ids and numbers left out); its same-origin links
# (`download` ones left out), each with the badges of the row or card it sits in (to pick a cancelled session,
# a closed vote… from a list without opening every item); the actions of its forms that have required fields.
LOOK_JS = """() => {
  const main = document.querySelector('#contenu') || document.body;
  const norm = s => s.replace(/[0-9a-f]{8}-[0-9a-f-]{27}/g, '{id}').replace(/\\d+/g, '#').replace(/\\s+/g, ' ').trim();
  const look = [];
  for (const h of main.querySelectorAll('h2')) look.push('h2:' + norm(h.textContent));
  for (const b of main.querySelectorAll('.fr-badge')) look.push('badge:' + norm(b.textContent));
  for (const f of main.querySelectorAll('form')) look.push('form:' + f.method + ' ' + norm(new URL(f.action, location.href).pathname));
  for (const t of main.querySelectorAll('table')) look.push('table:' + norm(t.closest('[id]') ? t.closest('[id]').id : ''));
  const links = [];
  for (const a of document.querySelectorAll('a[href]')) {
    if (a.hasAttribute('download')) continue;
    const u = new URL(a.getAttribute('href'), location.href);
    if (u.origin !== location.origin) continue;
    const item = a.closest('tr, li, .fr-card, .fr-tile, article');
    const badges = item ? [...item.querySelectorAll('.fr-badge')].map(b => norm(b.textContent)).sort().join('|') : '';
    links.push([u.pathname + u.search, badges]);
  }
  const forms = [...main.querySelectorAll('form')]
    .filter(f => f.method === 'post' && f.querySelector(REQUIRED))
    .map(f => new URL(f.action, location.href).pathname);
  return {look: [...new Set(look)].sort(), links, forms: [...new Set(forms)]};
}""".replace("REQUIRED", "'input[required]:not([type=checkbox]):not([type=radio]):not([type=hidden]), textarea[required]'")

# Clears the required fields of the form posting to `action` and submits it; form.submit() skips the browser's
# own checks: the server's error messages are what is swept.
FIND_FORM_JS = """(action) => [...document.querySelectorAll('#contenu form')]
  .some(f => f.method === 'post' && new URL(f.action, location.href).pathname === action)"""
SUBMIT_EMPTY_JS = """(action) => {
  const form = [...document.querySelectorAll('#contenu form')]
    .find(f => f.method === 'post' && new URL(f.action, location.href).pathname === action);
  for (const el of form.querySelectorAll('input[required], textarea[required]'))
    if (!['checkbox', 'radio', 'hidden'].includes(el.type)) el.value = '';
  form.submit();
}"""

# The page scrolls sideways when the document is wider than the viewport. What sticks out: the outermost
# elements whose box passes the viewport's right edge without an ancestor that clips or scrolls them.
OVERFLOW_JS = """() => {
  const vw = window.innerWidth, doc = document.documentElement;
  if (doc.scrollWidth <= vw) return null;
  // Clipped by an ancestor that scrolls or hides its overflow and fits the screen; an absolutely positioned
  // box escapes the ancestors up to its containing block (a positioned one): a classic way out of a scroller.
  const clipped = el => {
    let escaping = ['absolute', 'fixed'].includes(getComputedStyle(el).position);
    for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
      const cs = getComputedStyle(p);
      if (escaping && cs.position === 'static') continue;
      if (cs.overflowX !== 'visible' && p.getBoundingClientRect().right <= vw + 1) return true;
      escaping = ['absolute', 'fixed'].includes(cs.position);
    }
    return false;
  };
  const name = el => {
    let s = el.tagName.toLowerCase();
    if (el.id) s += '#' + el.id;
    for (const c of [...el.classList].slice(0, 3)) s += '.' + c;
    return s;
  };
  const path = el => {
    const bits = [];
    for (let e = el; e && e !== document.body && bits.length < 4; e = e.parentElement) bits.unshift(name(e));
    return bits.join(' > ');
  };
  const out = [];
  for (const el of document.body.querySelectorAll('*')) {
    const r = el.getBoundingClientRect();
    if (r.width === 0 || r.right <= vw + 1 || clipped(el)) continue;
    const parent = el.parentElement && el.parentElement.getBoundingClientRect();
    if (parent && parent.right > vw + 1 && !clipped(el.parentElement)) continue;  // the parent is reported
    out.push({selector: path(el), width: Math.round(r.width), right: Math.round(r.right)});
  }
  out.sort((a, b) => b.right - a.right);
  return {scrollWidth: doc.scrollWidth, innerWidth: vw, offenders: out.slice(0, 6)};
}"""


@dataclass
class Sweep:
    forum: Stack
    problems: list[str] = field(default_factory=list)
    looks: set[tuple[str, tuple[str, ...]]] = field(default_factory=set)
    checked: list[str] = field(default_factory=list)
    wide_routes: set[str] = field(default_factory=set)  # already checked by axe at desktop width
    route_checks: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))  # (who, route)
    forms: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)  # (route, action) -> (who, page)

    def check(self, v: Visitor, who: str, path: str, name: str | None = None) -> None:
        """Overflow and axe at 360 px; axe at desktop width too on the first page of each route."""
        page = v.page
        where = f"{who} — {name or path}"
        self.checked.append(path)
        overflow = page.evaluate(OVERFLOW_JS)
        if overflow:
            sticking = "\n".join(f"      {o['selector']} : {o['width']} px de large, bord droit à {o['right']} px"
                                 for o in overflow["offenders"]) or "      (aucun élément isolé)"
            self.problems.append(f"{where} : défilement horizontal à {overflow['innerWidth']} px "
                                 f"(page de {overflow['scrollWidth']} px)\n{sticking}")
        sizes = [(PHONE, "360 px")]
        if route_of(path) not in self.wide_routes:
            self.wide_routes.add(route_of(path))
            sizes.append((DESKTOP, "1280 px"))
        for size, label in sizes:
            page.set_viewport_size(size)
            try:
                v.axe(f"{where} ({label})")
            except AssertionError as exc:
                self.problems.append(str(exc).split("\nassert", 1)[0])
        page.set_viewport_size(PHONE)

    def visit(self, v: Visitor, who: str, path: str) -> list[tuple[str, str]] | None:
        """Open a page; check it if it looks new for its route. Returns its links (None: not a page)."""
        try:
            response = v.page.goto(self.forum.web_url + path, wait_until="load")
        except PlaywrightError as exc:  # a download, not a page
            if "Download is starting" in str(exc):
                return None
            raise
        if response is None or "text/html" not in response.headers.get("content-type", ""):
            return None
        if response.status >= 400 and path not in SEEDS:  # a seed may be closed to this person
            self.problems.append(f"{who} — {path} : réponse HTTP {response.status} (lien trouvé dans le site)")
        found = v.page.evaluate(LOOK_JS)
        key = (route_of(path), tuple(found["look"]))
        if key not in self.looks and self.route_checks[who, key[0]] < MAX_CHECKS_PER_ROUTE:
            self.looks.add(key)
            self.route_checks[who, key[0]] += 1
            self.check(v, who, path)
        for action in found["forms"]:
            if not SKIP_FORM.search(action):
                self.forms.setdefault((route_of(path), route_of(action)), (who, path))
        return [tuple(link) for link in found["links"]]

    def crawl(self, v: Visitor, who: str) -> None:
        """Every page `who` reaches by links: each route once per kind of item its links lead from."""
        seen: set[str] = set()
        kinds: set[tuple[str, str]] = set()
        loads: dict[str, int] = defaultdict(int)
        queue: list[tuple[str, str]] = [(seed, "") for seed in SEEDS]
        while queue:
            path, badges = queue.pop(0)
            path = path.split("#", 1)[0]
            route = route_of(path)
            if (path in seen or SKIP_PATH.search(urlsplit(path).path) or (route, badges) in kinds
                    or loads[route] >= MAX_LOADS_PER_ROUTE):
                continue
            seen.add(path)
            kinds.add((route, badges))
            loads[route] += 1
            queue.extend(self.visit(v, who, path) or ())

    def empty_forms(self, v: Visitor, who: str) -> None:
        """The forms with required fields that `who` met, once per route and action: cleared and submitted."""
        for (_, action), (owner, path) in self.forms.items():
            if owner != who:
                continue
            v.page.goto(self.forum.web_url + path)
            if not v.page.evaluate(FIND_FORM_JS, action):  # gone since (an earlier empty form changed the page)
                continue
            with v.page.expect_navigation() as nav:
                v.page.evaluate(SUBMIT_EMPTY_JS, action)
            response = nav.value
            status = response.status if response else 0
            if status >= 500:
                self.problems.append(f"{who} — {path} : le formulaire {action} envoyé vide répond {status}")
            elif response and "text/html" in response.headers.get("content-type", ""):
                self.check(v, who, path, f"{path}, formulaire {action} envoyé vide (HTTP {status})")


def test_every_page_fits_a_phone_and_passes_axe(demo_forum: DemoForum, browser: Browser) -> None:
    demo = demo_forum.stack
    sweep = Sweep(demo)
    member_email = _email(PEOPLE[7][0])  # approved in the demo
    started = time.monotonic()
    for who, email in (("visiteur", None), ("membre", member_email), ("secrétariat", SECRETARIAT_EMAIL)):
        v = Visitor(browser, demo)
        try:
            if email:
                sign_in(v, email)
            v.page.set_viewport_size(PHONE)
            sweep.crawl(v, who)
            sweep.empty_forms(v, who)
            sweep.problems.extend(f"{who} — console : {m}" for m in v.console
                                  if "Content Security Policy" in m or m.startswith("pageerror"))
        finally:
            v.close()
    took = time.monotonic() - started
    routes = {route_of(path) for path in sweep.checked}
    # The crawl reached the three spaces (a crawl that stopped at the home page would pass trivially).
    for expected in ("/seances/{id}", "/decisions/{id}", "/votes/{id}", "/espace", "/secretariat/membres",
                     "/secretariat/seances", "/registre/{n}", "/comptes-rendus/{id}"):
        assert any(r.startswith(expected) for r in routes), f"{expected} never reached: {sorted(routes)}"
    print(f"\npage sweep: {len(sweep.checked)} pages checked ({len(routes)} routes) as visitor, member and "
          f"secretariat, 360 px overflow + axe-core at 360 and 1280 px, in {took:.0f} s: "
          f"{len(sweep.problems)} problem(s)")
    assert not sweep.problems, (f"{len(sweep.problems)} problème(s) sur {len(sweep.checked)} pages vérifiées "
                                f"en {took:.0f} s :\n\n" + "\n\n".join(sweep.problems))
