"""Where the « expired form » page sends the person back to: the page that shows the form again."""
from __future__ import annotations

import pytest

from services.web.app import form_page


@pytest.mark.parametrize(("posted", "back"), [
    ("/votes/3f1c-9a/bulletin", "/votes/3f1c-9a"),
    ("/secretariat/decisions/d-1/corriger", "/secretariat/decisions/d-1/corriger"),
    ("/secretariat/decisions/d-1/suivi", "/secretariat/decisions/d-1/suivi"),
    ("/secretariat/decisions/nouvelle", "/secretariat/decisions"),
    ("/secretariat/votes/nouveau", "/secretariat/decisions"),
    ("/secretariat/votes/v-1/cloturer", "/secretariat/votes/v-1/cloturer"),
    ("/secretariat/engagements", "/secretariat/engagements"),
    ("/secretariat/regles", "/secretariat/regles"),
    ("/secretariat/membres/m-1/approuver", "/secretariat/membres"),
    ("/secretariat/seances/s-1/annuler", "/secretariat/seances"),
    ("/seances/s-1/reponse", "/seances"),
    ("/secretariat/comptes-rendus/c-1/publier", "/secretariat/comptes-rendus/c-1"),
    ("/secretariat/comptes-rendus/c-1/commentaires/k-2", "/secretariat/comptes-rendus/c-1"),
    ("/secretariat/comptes-rendus/rediger", "/secretariat/comptes-rendus"),
    ("/comptes-rendus/c-1/relecture", "/comptes-rendus/c-1/relecture"),
    ("/votes/a/b/bulletin", "/"),  # not one of our addresses
    ("/ailleurs", "/"),
])
def test_expired_form_goes_back_to_its_page(posted: str, back: str) -> None:
    assert form_page(posted) == back


@pytest.mark.parametrize(("path", "length", "refused"), [
    ("/secretariat/decisions/nouvelle", 64 * 1024 + 1, True),
    ("/secretariat/comptes-rendus/c-1/brouillon", 600_000, False),  # whole minutes fit
    ("/secretariat/comptes-rendus/c-1/corriger", 600_000, False),
    ("/secretariat/comptes-rendus/c-1/publier", 64 * 1024 + 1, True),  # only the long-text forms get room
    ("/secretariat/comptes-rendus/c-1/brouillon", 1024 * 1024 + 1, True),
])
def test_body_limit_leaves_room_for_whole_minutes_only(path: str, length: int, refused: bool) -> None:
    from starlette.requests import Request

    from services.web.app import _body_too_large

    request = Request({"type": "http", "method": "POST", "path": path,
                       "headers": [(b"content-length", str(length).encode())]})
    assert _body_too_large(request) is refused
