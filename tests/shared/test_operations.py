"""Typed operations: every request class names one operation and its reply, every operation is served
by exactly one service, and a service refuses a handler whose request belongs elsewhere."""
from __future__ import annotations

import importlib
import inspect

import pytest
from pydantic import BaseModel

from shared.contracts import common, decisions, forum, minutes, notifications, registry
from shared.contracts.common import ActorRequest, Request
from shared.contracts.envelope import Envelope
from shared.outbox import UnitOfWork
from shared.service import HandlerContext, ServiceDef, consumer
from shared.settings import SERVICES, Settings


def operations() -> list[type[Request]]:
    found = []
    for module in (decisions, forum, minutes, notifications, registry):
        for obj in vars(module).values():
            if inspect.isclass(obj) and issubclass(obj, Request) and obj.OP and obj.__module__ == module.__name__:
                found.append(obj)
    return found


def test_each_operation_has_one_request_class_and_a_reply_model() -> None:
    ops = operations()
    assert len(ops) >= 40
    names = [op.OP for op in ops]
    assert len(names) == len(set(names)), "two request classes name the same operation"
    for op in ops:
        assert op.subject() == f"rpc.{op.OP}" and op.service() in SERVICES
        assert issubclass(op.REPLY, BaseModel) and not issubclass(op.REPLY, Request)


def test_every_operation_is_served_by_exactly_the_service_it_names() -> None:
    served: dict[str, str] = {}
    for name in SERVICES:
        definition = importlib.import_module(f"services.{name}.service").SERVICE
        assert isinstance(definition, ServiceDef) and definition.name == name
        for fn in definition.operations:
            req = next(iter(inspect.signature(fn, eval_str=True).parameters.values())).annotation
            assert req.service() == name
            assert req.OP not in served, f"{req.OP} served twice"
            served[req.OP] = fn.__name__
    assert sorted(served) == sorted(op.OP for op in operations())


def test_a_malformed_operation_name_fails_at_import() -> None:
    class View(BaseModel):
        ok: bool

    with pytest.raises(TypeError, match="<service>.<operation>"):
        class Bad(Request[View], op="no-service"):  # noqa: F841 - the definition itself must fail
            pass

    with pytest.raises(TypeError, match="reply type"):
        class NoReply(ActorRequest, op="forum.nothing"):  # type: ignore[type-arg]  # noqa: F841
            pass


def test_a_service_refuses_a_handler_of_another_services_operation() -> None:
    async def get_member(req: registry.GetMember, ctx: HandlerContext) -> registry.MemberView:
        raise AssertionError("never called")

    with pytest.raises(TypeError, match="operation of registry"):
        ServiceDef("forum", title="t", operations=[get_member]).build(Settings())


def test_health_is_not_an_operation_of_any_one_service() -> None:
    assert not issubclass(common.HealthRequest, Request)


def test_consumers_get_stable_durable_names_and_a_role_tells_two_apart() -> None:
    async def project(event: Envelope[registry.MemberApproved], uow: UnitOfWork) -> None: ...

    async def record(events: list[Envelope[registry.MemberApproved]], uow: UnitOfWork) -> None: ...

    svc = ServiceDef("minutes", title="t", consumers=[consumer(record, batch=True), consumer(project, role="minutes")]
                     ).build(Settings())
    durables = sorted(sub.config.durable_name for sub in svc.broker.subscribers if sub.config.durable_name)
    assert durables == ["minutes--registry-member-approved", "minutes--registry-member-approved--minutes"]
