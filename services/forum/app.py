"""Entry point of the forum service (sessions, RSVPs, decisions): `forum-ouvert serve forum`.

No features yet: it starts, declares its streams, migrates its database and answers health checks.
"""
from shared.service import Service

svc = Service("forum", title="Séances et décisions")
app = svc.app
