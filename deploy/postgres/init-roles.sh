#!/bin/sh
# First start of the PostgreSQL container only (/docker-entrypoint-initdb.d/): the registry's
# two roles (roles.sql, next to this file), with their passwords from the Docker secrets. The
# superuser (POSTGRES_USER) is for administration only; no registry process connects as it.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -f /registry-postgres/roles.sql
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v owner_password="$(cat /run/secrets/postgres_owner_password)" \
    -v app_password="$(cat /run/secrets/postgres_app_password)" <<'SQL'
ALTER ROLE registry_owner PASSWORD :'owner_password';
ALTER ROLE registry_app PASSWORD :'app_password';
SQL
