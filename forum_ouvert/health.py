"""`forum-ouvert health SERVICE`: the health check of one Forum ouvert process (what each container
runs as its health check).

- registry, forum, minutes, notifications: sends the NATS request `rpc.<service>.health` over
  FORUM_NATS_URL (comma-separated servers, with the service's own user in deployment) and is healthy
  only on `{"ok": true, "data": {"status": "ok", ...}}`: the service answers on NATS and its own
  database answers too. Any replica of the service may answer (they share a queue group), so the check
  tells that the service is available, which is what compose's `depends_on: service_healthy` needs.
- web: GET http://127.0.0.1:<FORUM_WEB_PORT>/sante, the forum's aggregate (200 when every service
  answers, 503 "degraded" otherwise). Healthy on 200, and on 503 as long as at least one service
  answered: the web front is up and reaches NATS, and the failing service's own container is the one
  shown unhealthy. A 503 where no service answers (the web front cannot reach NATS), an error or no
  answer at all is unhealthy.

Exit 0 = healthy, 1 = unhealthy (docker's convention); one line on stdout says why (docker keeps it
in `docker inspect`). A hard timeout: a check never hangs.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import urllib.error
import urllib.request

BACK_END = ("registry", "forum", "minutes", "notifications")


def inbox_prefix(process: str) -> str:
    """Each process receives its replies under its own inbox prefix, so that the deployment's NATS
    permissions can let it read its own replies only (deploy/nats/auth.conf)."""
    return f"_INBOX.{process}"


async def check_service(service: str, nats_url: str, timeout: float) -> tuple[bool, str]:
    import nats
    from nats.errors import NoRespondersError
    from nats.errors import TimeoutError as NatsTimeout

    servers = [s.strip() for s in nats_url.split(",") if s.strip()]
    shown = [_hide_password(s) for s in servers]
    errors: list[str] = []

    async def quiet(exc: Exception) -> None:  # nats-py logs a traceback per failed attempt otherwise
        errors.append(f"{type(exc).__name__}: {exc}")

    try:
        # Each listed server is tried twice at most (max_reconnect_attempts also bounds the first connect).
        nc = await nats.connect(servers=servers, name=f"healthcheck-{service}", connect_timeout=2,
                                allow_reconnect=False, max_reconnect_attempts=1, reconnect_time_wait=0.2,
                                error_cb=quiet, inbox_prefix=inbox_prefix(service))
    except Exception as exc:  # noqa: BLE001 - any failure to connect is "unhealthy"
        return False, f"cannot connect to NATS {shown}: {errors[-1] if errors else type(exc).__name__}"
    try:
        msg = await nc.request(f"rpc.{service}.health", b"{}", timeout=timeout,
                               headers={"content-type": "application/json"})
    except NoRespondersError:
        return False, f"no {service} process answers on rpc.{service}.health"
    except (NatsTimeout, TimeoutError):
        return False, f"{service} did not answer rpc.{service}.health within {timeout:g}s"
    finally:
        with contextlib.suppress(Exception):  # closing is best effort
            await nc.close()
    return judge(service, msg.data)


def judge(service: str, body: bytes) -> tuple[bool, str]:
    """Healthy only when the reply is a typed Reply with ok=true and the service reports status ok."""
    try:
        reply = json.loads(body)
    except ValueError:
        return False, f"{service}: reply is not JSON: {body[:200]!r}"
    if not isinstance(reply, dict) or reply.get("ok") is not True:
        return False, f"{service}: error reply: {json.dumps(reply)[:300]}"
    data = reply.get("data") or {}
    status = data.get("status") if isinstance(data, dict) else None
    if status != "ok":
        database = data.get("database") if isinstance(data, dict) else "?"
        return False, f"{service}: status {status!r}, database {database}"
    return True, f"{service}: ok"


def check_web(port: int, timeout: float) -> tuple[bool, str]:
    url = f"http://127.0.0.1:{port}/sante"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - fixed local URL
            return judge_web(resp.status, resp.read())
    except urllib.error.HTTPError as exc:
        return judge_web(exc.code, exc.read())
    except (urllib.error.URLError, OSError) as exc:
        return False, f"web: GET /sante failed: {exc}"


def judge_web(status: int, body: bytes) -> tuple[bool, str]:
    if status == 200:
        return True, "web: ok"
    try:
        services = json.loads(body).get("services") or {}
    except (ValueError, AttributeError):
        services = {}
    if status == 503 and isinstance(services, dict) and any(v == "ok" for v in services.values()):
        down = sorted(k for k, v in services.items() if v != "ok")
        return True, f"web: ok (forum degraded: {', '.join(down)})"
    return False, f"web: GET /sante -> {status} {body[:300]!r}"


def check(process: str, nats_url: str, web_port: int, timeout: float) -> tuple[bool, str]:
    if process == "web":
        return check_web(web_port, timeout)
    try:
        return asyncio.run(asyncio.wait_for(check_service(process, nats_url, timeout), timeout=timeout + 3))
    except TimeoutError:
        return False, f"{process}: health check timed out"


def _hide_password(url: str) -> str:
    from urllib.parse import urlsplit

    u = urlsplit(url)
    if u.password is None:
        return url
    return u._replace(netloc=f"{u.username}:***@{u.hostname}" + (f":{u.port}" if u.port else "")).geturl()
