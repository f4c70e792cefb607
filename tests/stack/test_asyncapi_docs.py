"""The committed AsyncAPI documents are what FastStream generates from the code today."""
import json

from forum_ouvert.cli import DOCS_DIR, asyncapi_documents


def test_committed_asyncapi_documents_are_current() -> None:
    for service, text in asyncapi_documents().items():
        path = DOCS_DIR / f"{service}.json"
        assert path.exists(), f"missing {path}: run `forum-ouvert asyncapi`"
        assert path.read_text() == text, f"{path} is stale: run `forum-ouvert asyncapi` and commit it"


def test_registry_document_covers_its_commands_and_events() -> None:
    spec = json.loads(asyncapi_documents()["registry"])
    addresses = {c["address"] for c in spec["channels"].values()}
    assert {"rpc.registry.register", "rpc.registry.approve-member", "registry.member.approved",
            "registry.member.registered", "registry.member.erased"} <= addresses
    assert spec["asyncapi"].startswith("3.")


def test_notifications_document_lists_its_consumers() -> None:
    spec = json.loads(asyncapi_documents()["notifications"])
    addresses = {c["address"] for c in spec["channels"].values()}
    assert {"registry.email_verification.requested", "registry.sign_in.requested",
            "registry.member.approved"} <= addresses


def test_every_consumer_documents_the_envelope_of_its_event() -> None:
    """Batch consumers too: their messages are decoded one by one by the service, not by FastStream,
    and the document must still show each message's envelope (never an empty payload)."""
    for service, text in asyncapi_documents().items():
        spec = json.loads(text)
        for key, message in spec["components"]["messages"].items():
            address = key.split(":", 1)[0]
            if address.startswith("rpc.") or not key.endswith(":SubscribeMessage"):
                continue
            payload = message["payload"].get("$ref", "")
            assert payload.startswith("#/components/schemas/Envelope%5B"), (service, key, message["payload"])
