"""Entry point of the notifications service: `forum-ouvert serve notifications`."""
from services.notifications import sessions  # noqa: F401 - registers the session notices
from services.notifications.handlers import svc

app = svc.app
