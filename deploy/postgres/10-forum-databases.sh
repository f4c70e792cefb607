#!/bin/sh
# First start of an empty PostgreSQL volume only (mounted into /docker-entrypoint-initdb.d).
#
# One database AND one login role per service: the role owns its database, PUBLIC may not even
# connect to it, so the registry's credentials cannot read the forum's tables: each service owns its
# data and the others learn it only from its events.
# Each role's password comes from PG_PASSWORD_<SERVICE>, the same value docker-compose.yml puts in
# that service's FORUM_DATABASE_URL. Tables are then created by `forum-ouvert migrate <service>`
# (the migrate-* one-shot containers), connected as that role, in that database's public schema.
#
# To add databases to an existing volume later, run this script by hand:
#   docker compose exec postgres sh /docker-entrypoint-initdb.d/10-forum-databases.sh
# (it skips roles and databases that already exist).
set -e
SERVICES="registry forum minutes notifications"

# Check every password before creating anything: all or nothing.
for svc in $SERVICES; do
    var="PG_PASSWORD_$(echo "$svc" | tr '[:lower:]' '[:upper:]')"
    eval "password=\${$var:-}"
    if [ -z "$password" ]; then
        echo "10-forum-databases.sh: $var is empty; set it (see deploy/README.md)" >&2
        exit 1
    fi
done

for svc in $SERVICES; do
    var="PG_PASSWORD_$(echo "$svc" | tr '[:lower:]' '[:upper:]')"
    eval "password=\${$var}"
    # psql variables (:"name" quotes an identifier, :'name' a literal) keep the password out of
    # the SQL text and safely quoted. \gexec runs the generated statement only when needed.
    psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-postgres}" \
         -v svc="$svc" -v password="$password" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', :'svc', :'password')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'svc') \gexec
SELECT format('ALTER ROLE %I LOGIN PASSWORD %L', :'svc', :'password') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'svc', :'svc')
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'svc') \gexec
REVOKE ALL ON DATABASE :"svc" FROM PUBLIC;
GRANT ALL ON DATABASE :"svc" TO :"svc";
SQL
    echo "10-forum-databases.sh: database and role \"$svc\" ready"
done
