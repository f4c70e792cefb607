"""Entry point of the registry service: `forum-ouvert serve registry`."""
from services.registry.handlers import svc

app = svc.app
