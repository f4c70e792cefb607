# syntax=docker/dockerfile:1
#
# Forum ouvert: one image for every process of the forum. The command picks the process:
#   forum-ouvert serve registry|forum|minutes|notifications|web    (the long-running services)
#   forum-ouvert migrate SERVICE                                    (one-shot schema migrations)
# Build:  docker compose build      or      docker build -t forum-ouvert .
# See deploy/README.md for the whole stack.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG NODE_IMAGE=node:22-bookworm-slim

# ---------------------------------------------------------------------------------------------
# 1. Front-end assets: the French State design system (npm @gouvfr/dsfr), runtime dependencies
#    only, exactly as locked in package-lock.json. Source maps are dropped (they weigh ~60 MB).
FROM ${NODE_IMAGE} AS assets
WORKDIR /build
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && find node_modules/@gouvfr/dsfr/dist -name '*.map' -delete \
 && test -f node_modules/@gouvfr/dsfr/dist/dsfr.min.css

# ---------------------------------------------------------------------------------------------
# 2. The Python application, installed (not editable) into its own virtualenv.
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/forum-ouvert
ENV PATH=/opt/forum-ouvert/bin:$PATH
WORKDIR /src
# The whole source tree (pyproject.toml and the packages it lists); .dockerignore keeps the local
# venv, data, node_modules, tests, secrets (.env) and VCS files out of the build context.
COPY . .
# Install, then check from outside the source tree that the installed package works: the CLI
# starts, every service imports, and each service's Alembic migrations made it into the package.
RUN pip install . \
 && cd / \
 && forum-ouvert --help > /dev/null \
 && python -c "import services.registry.service, services.forum.service, services.minutes.service, services.notifications.service, services.web.app" \
 && python -c "import pathlib, services; root = pathlib.Path(services.__file__).parent; missing = [s for s in ('registry', 'forum', 'minutes', 'notifications') if not list((root / s / 'migrations' / 'versions').glob('*.py'))]; assert not missing, f'migrations missing from the package: {missing}'"

# ---------------------------------------------------------------------------------------------
# 3. Runtime: slim Python, the virtualenv, the DSFR assets, an unprivileged user.
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="Forum ouvert" \
      org.opencontainers.image.description="Le forum permanent du Partenariat pour un gouvernement ouvert (PGO)." \
      org.opencontainers.image.licenses="EUPL-1.2"

RUN groupadd --system --gid 10001 forum \
 && useradd --system --uid 10001 --gid forum --home-dir /app --no-create-home --shell /usr/sbin/nologin forum \
 && mkdir -p /app /var/lib/forum-ouvert \
 && chown forum:forum /var/lib/forum-ouvert

COPY --from=build /opt/forum-ouvert /opt/forum-ouvert
# The web front looks for node_modules/@gouvfr/dsfr/dist in its working directory (services/web/app.py).
COPY --from=assets /build/node_modules/@gouvfr/dsfr/dist /app/node_modules/@gouvfr/dsfr/dist

ENV PATH=/opt/forum-ouvert/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    FORUM_DATA_DIR=/var/lib/forum-ouvert \
    FORUM_LOG_FORMAT=json \
    FORUM_WEB_HOST=0.0.0.0 \
    FORUM_WEB_PORT=8000

WORKDIR /app
USER forum:forum
EXPOSE 8000
ENTRYPOINT ["forum-ouvert"]
CMD ["--help"]
