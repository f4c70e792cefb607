#!/bin/sh
# Prints a .env for docker-compose.yml with fresh random secrets:
#   sh deploy/make-env.sh > .env && chmod 600 .env
# Then review FORUM_PUBLIC_URL and the e-mail settings in it (deploy/env.example documents them).
set -e
here=$(dirname "$0")
secret() {
    # URL-safe (the passwords go into database URLs): letters, digits, - and _
    python3 -c 'import secrets; print(secrets.token_urlsafe(32))' 2>/dev/null \
        || head -c 48 /dev/urandom | base64 | tr -d '/+=\n' | cut -c1-43
}
sed -e "s|^POSTGRES_PASSWORD=\$|POSTGRES_PASSWORD=$(secret)|" \
    -e "s|^PG_PASSWORD_REGISTRY=\$|PG_PASSWORD_REGISTRY=$(secret)|" \
    -e "s|^PG_PASSWORD_FORUM=\$|PG_PASSWORD_FORUM=$(secret)|" \
    -e "s|^PG_PASSWORD_MINUTES=\$|PG_PASSWORD_MINUTES=$(secret)|" \
    -e "s|^PG_PASSWORD_NOTIFICATIONS=\$|PG_PASSWORD_NOTIFICATIONS=$(secret)|" \
    -e "s|^FORUM_SECRET_KEY=\$|FORUM_SECRET_KEY=$(secret)$(secret)|" \
    -e "s|^FORUM_NOTICE_LINK_KEY=\$|FORUM_NOTICE_LINK_KEY=$(secret)$(secret)|" \
    -e "s|^NATS_PASSWORD_REGISTRY=\$|NATS_PASSWORD_REGISTRY=$(secret)|" \
    -e "s|^NATS_PASSWORD_FORUM=\$|NATS_PASSWORD_FORUM=$(secret)|" \
    -e "s|^NATS_PASSWORD_MINUTES=\$|NATS_PASSWORD_MINUTES=$(secret)|" \
    -e "s|^NATS_PASSWORD_NOTIFICATIONS=\$|NATS_PASSWORD_NOTIFICATIONS=$(secret)|" \
    -e "s|^NATS_PASSWORD_WEB=\$|NATS_PASSWORD_WEB=$(secret)|" \
    -e "s|^NATS_PASSWORD_ADMIN=\$|NATS_PASSWORD_ADMIN=$(secret)|" \
    "$here/env.example"
