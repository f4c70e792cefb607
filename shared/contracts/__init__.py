"""Event and request/reply contracts shared by the services. Pydantic v2, one module per producer."""
