"""Entry point of the minutes service (minutes and the public record): `forum-ouvert serve minutes`.

Today it keeps the public record (transparency log, `services/minutes/handlers.py`); minutes
themselves come with their own issue.
"""
from services.minutes.handlers import build_service

svc = build_service()
app = svc.app


@app.on_startup
async def _signing_key() -> None:
    """Fail at start, not later, if the ledger key file is unusable (creates it at first start)."""
    svc.ledger.signer()  # type: ignore[attr-defined]
