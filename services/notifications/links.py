"""The links of a subscription: signed (HMAC, itsdangerous) and expiring, so they need no table and
cannot be forged. A confirmation link also names the subscriber's current nonce: only the latest one
works, and not after an unsubscription."""
from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from pathlib import Path

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from shared.errors import Expired, Invalid
from shared.secret_files import generated_secret
from shared.settings import Settings


class Purpose(StrEnum):
    CONFIRM = "c"
    MANAGE = "m"
    UNSUBSCRIBE = "u"


PATHS = {Purpose.CONFIRM: "/abonnements/confirmer", Purpose.MANAGE: "/abonnements/gerer",
         Purpose.UNSUBSCRIBE: "/abonnements/desabonner"}


def _serializer(settings: Settings) -> URLSafeTimedSerializer:
    return _serializer_for(settings.notice_link_key, str(Path(settings.data_dir) / "notice-links.key"))


@lru_cache(maxsize=8)
def _serializer_for(key: str, key_file: str) -> URLSafeTimedSerializer:
    """Made once per key: the mail sender signs two links per message."""
    return URLSafeTimedSerializer(key or generated_secret(Path(key_file)), salt="forum-ouvert/abonnements")


def _ttl(settings: Settings, purpose: Purpose) -> int:
    return {Purpose.CONFIRM: settings.subscription_confirm_ttl, Purpose.MANAGE: settings.subscription_manage_ttl,
            Purpose.UNSUBSCRIBE: settings.subscription_unsubscribe_ttl}[purpose]


def token(settings: Settings, purpose: Purpose, subscriber_id: str, nonce: str = "") -> str:
    return _serializer(settings).dumps({"s": subscriber_id, "p": purpose.value, "n": nonce})


def url(settings: Settings, purpose: Purpose, subscriber_id: str, nonce: str = "") -> str:
    return f"{settings.public_url.rstrip('/')}{PATHS[purpose]}?token={token(settings, purpose, subscriber_id, nonce)}"


def read(settings: Settings, value: str, *purposes: Purpose) -> tuple[str, Purpose, str]:
    """(subscriber id, purpose, nonce) of a valid link of one of `purposes`; a clear error otherwise."""
    serializer = _serializer(settings)
    try:
        _, data = serializer.loads_unsafe(value)
        purpose = Purpose(data["p"]) if isinstance(data, dict) else None
    except (BadSignature, KeyError, TypeError, ValueError):
        purpose = None
    if purpose not in purposes:
        raise Invalid("Ce lien n'est pas valide : il a peut-être été mal copié. Copiez l'adresse complète "
                      "depuis le courriel, ou demandez un nouveau lien.", field="token")
    try:
        data = serializer.loads(value, max_age=_ttl(settings, purpose))
    except SignatureExpired as exc:
        raise Expired("Ce lien a expiré. Demandez-en un nouveau depuis la page des abonnements.",
                      field="token") from exc
    except BadSignature as exc:
        raise Invalid("Ce lien n'est pas valide : il a peut-être été mal copié. Copiez l'adresse complète "
                      "depuis le courriel, ou demandez un nouveau lien.", field="token") from exc
    return str(data["s"]), purpose, str(data.get("n", ""))
