"""Single-use e-mailed links (address verification, sign-in): the link opens a page that checks it and
shows a button, so mail scanners that open links in advance spend nothing; the button spends it and signs
the browser in. Each kind of link says in its own words why one cannot be used (`bad`)."""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from starlette.requests import Request

from services.web.forms import read_form
from services.web.pages import render, rpc
from services.web.security import visitor
from shared.rpc import RpcError

BadLink = Callable[..., Awaitable[Response]]  # (request, RpcError | None = None) -> the page saying why


async def link_page(request: Request, check: type[Any], token: str, bad: BadLink, template: str) -> Response:
    """The link's page: the link checked first (nothing spent), then `template` with its button."""
    try:
        req = check(token=token)
    except ValidationError:
        return await bad(request)
    try:
        await rpc(request)(req)
    except RpcError as exc:
        return await bad(request, exc)
    return await render(request, template, token=req.token)


async def spend_and_sign_in(request: Request, spend: type[Any], bad: BadLink,
                            greeting: Callable[[str], str]) -> Response:
    """The button: the posted link spent and this browser signed in (one registry transaction), then to
    « Mon espace » with `greeting(full_name)`."""
    form = await read_form(request)
    try:
        req = spend(token=form.get("token", ""))
    except ValidationError:
        return await bad(request)
    try:
        signed_in = await rpc(request)(req)
    except RpcError as exc:
        return await bad(request, exc)
    who = visitor(request)
    who.sign_in(signed_in.member.member_id, signed_in.session)
    who.set_flash("success", greeting(signed_in.member.full_name))
    return RedirectResponse("/espace", status_code=303)
