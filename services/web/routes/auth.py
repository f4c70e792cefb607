"""Signing in by e-mailed one-time link, and signing out.

The link's page checks the link (a used one says so at once) and shows a "Me connecter" button: the
token is redeemed by a POST, so mail scanners that open links in advance do not use it up. Redeeming it
opens a session in the registry; « Se déconnecter » ends it there, so a copy of the cookie taken before
no longer signs anyone in.
"""
from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from starlette.requests import Request

from shared.contracts.common import ErrorCode
from shared.contracts.registry import CheckSignInLink, EndSession, RedeemSignIn, RequestSignIn
from shared.logging import get_logger
from shared.rpc import RpcError
from services.web.forms import read_form, validate
from services.web.links import link_page, spend_and_sign_in
from services.web.pages import error_page, render, rpc, rpc_error_page, signed_out
from services.web.security import visitor

log = get_logger(__name__)
router = APIRouter(include_in_schema=False)
NEW_LINK_ACTIONS = [("/connexion", "Recevoir un nouveau lien"), ("/", "Retour à l'accueil")]
BAD_LINK = ("Ce lien de connexion n'est pas valable. Vérifiez qu'il a été copié en entier depuis le courriel "
            "reçu, ou demandez-en un nouveau.")


@router.get("/connexion")
async def sign_in_form(request: Request) -> Response:
    return await render(request, "sign_in.html")


@router.post("/connexion")
async def sign_in_submit(request: Request) -> Response:
    form = await read_form(request)
    email = form.get("email", "").strip()
    req, errors = validate(RequestSignIn, {"email": email} if email else {}, limits={"email": 254})
    if req is None:
        return await render(request, "sign_in.html", status_code=422, errors=errors, values={"email": email})
    await rpc(request)(req)
    # Same answer whether or not the address is known: no account enumeration.
    return await render(request, "sign_in_sent.html")


@router.get("/connexion/lien")
async def sign_in_link(request: Request, token: str = "") -> Response:
    """The link's page: checked first (nothing spent), so a used, expired or replaced link says so at once."""
    return await link_page(request, CheckSignInLink, token, _bad_link, "sign_in_link.html")


@router.post("/connexion/lien")
async def sign_in_redeem(request: Request) -> Response:
    return await spend_and_sign_in(request, RedeemSignIn, _bad_link,
                                   lambda name: f"Bonjour {name}, vous êtes connecté·e.")


async def _bad_link(request: Request, exc: RpcError | None = None) -> Response:
    """Why a sign-in link cannot be used (malformed or unknown: 404; used, expired or replaced: 410)."""
    if exc is None:
        return await error_page(request, 404, BAD_LINK, title="Lien de connexion non valable",
                                actions=NEW_LINK_ACTIONS)
    titles = {ErrorCode.NOT_FOUND: "Lien de connexion non valable",
              ErrorCode.EXPIRED: "Lien de connexion expiré ou déjà utilisé",
              ErrorCode.INVALID: "Lien de connexion non valable"}
    if exc.code not in titles:
        raise exc
    return await rpc_error_page(request, exc, title=titles[exc.code], actions=NEW_LINK_ACTIONS,
                                status_code=400 if exc.code == ErrorCode.INVALID else None)


@router.post("/deconnexion")
async def sign_out(request: Request) -> Response:
    """End this browser's session in the registry, then forget it in the cookie."""
    who = visitor(request)
    ended = True
    if who.member_id and who.session_id:
        try:
            await rpc(request)(EndSession(member_id=who.member_id, session=who.session_id))
        except (RpcError, ValidationError) as exc:
            log.warning("session not ended in the registry", error=str(exc))
            ended = False
    signed_out(request)
    if ended:
        who.set_flash("info", "Vous êtes déconnecté·e.")
    else:  # this browser is signed out all the same; say what was not done, and how to finish it
        who.set_flash("warning", "Vous êtes déconnecté·e de ce navigateur, mais le forum n'a pas pu fermer "
                      "votre session. À votre prochaine connexion, utilisez « Se déconnecter partout » "
                      "dans « Mon espace ».")
    return RedirectResponse("/", status_code=303)
