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
    ("/votes/a/b/bulletin", "/"),  # not one of our addresses
    ("/ailleurs", "/"),
])
def test_expired_form_goes_back_to_its_page(posted: str, back: str) -> None:
    assert form_page(posted) == back
