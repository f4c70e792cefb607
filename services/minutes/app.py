"""Entry point of the minutes service (minutes and the public record): `forum-ouvert serve minutes`.

No features yet: it starts, declares its streams, migrates its database and answers health checks.
"""
from shared.service import Service

svc = Service("minutes", title="Comptes rendus et registre public")
app = svc.app
