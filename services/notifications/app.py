"""Entry point of the notifications service: `forum-ouvert serve notifications`."""
from services.notifications.handlers import svc

app = svc.app
