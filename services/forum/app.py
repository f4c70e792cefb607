"""Entry point of the forum service (sessions, agendas, RSVPs with waitlist, attendance):
`forum-ouvert serve forum`."""
from services.forum.handlers import svc

app = svc.app
