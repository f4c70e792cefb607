import json
import uuid

from shared.contracts.envelope import Envelope, make_event
from shared.contracts.registry import MemberApproved
from shared.outbox import UnitOfWork


def test_event_envelope_has_every_field_of_the_contract() -> None:
    env = make_event(MemberApproved(member_id="m1", public_id="p1", college="citizen"), producer="registry",
                     correlation_id="corr-1", actor="sec-1")
    raw = json.loads(env.model_dump_json())
    assert set(raw) == {"event_id", "type", "schema_version", "occurred_at", "producer", "correlation_id",
                        "causation_id", "actor", "data"}
    assert raw["type"] == "registry.member.approved" and raw["producer"] == "registry"
    assert raw["occurred_at"].endswith("Z") or raw["occurred_at"].endswith("+00:00")
    uuid.UUID(raw["event_id"])
    back = Envelope[MemberApproved].model_validate_json(env.model_dump_json())
    assert back.data.public_id == "p1" and back.actor == "sec-1"


def test_unit_of_work_writes_events_to_the_outbox_with_causation() -> None:
    uow = UnitOfWork(None, producer="registry", correlation_id="c", causation_id="e0")  # type: ignore[arg-type]
    env = uow.emit(MemberApproved(member_id="m", public_id="p", college=None))
    later = uow.emit(MemberApproved(member_id="m2", public_id="p2", college=None), correlation_id="c2")
    first, second = uow.outbox_rows()  # in order of emission, as the relay publishes them
    assert first["event_id"] == str(env.event_id) and first["subject"] == "registry.member.approved"
    assert json.loads(first["payload"])["causation_id"] == "e0"
    assert second["event_id"] == str(later.event_id) and second["correlation_id"] == "c2"
