-- The privacy admin API's ClickHouse user on current releases (SQL users
-- and grants, ClickHouse 20.4 and later; for 18.16 use
-- users.d/privacy-reader.xml instead). The collector answers
-- POST /v1/privacy/exports with it. Run as an administrator, with the
-- SHA-256 of the user's password filled in by render.sh (it fails when the
-- variable is unset or a placeholder; run as it is, ClickHouse refuses the
-- '${...}' as a hash):
--
--   export PRIVACY_READER_PASSWORD_SHA256=$(printf '%s' "$PASSWORD" | sha256sum | cut -d' ' -f1)
--   export PRIVACY_READER_INTL_PASSWORD_SHA256=$(printf '%s' "$PASSWORD_INTL" | sha256sum | cut -d' ' -f1)
--   deployments/clickhouse/render.sh deployments/clickhouse/privacy-reader-user.sql |
--     clickhouse-client --user admin --ask-password --multiquery
--
-- privacy_reader may read the region's events and nothing else, and change
-- nothing; privacy_reader_intl the same of the export destination's copy
-- (privacy.export.abroad).

-- HOST: the addresses the collectors connect from. Loopback until you set
-- the collectors' network (e.g. HOST IP '10.20.0.0/24'); never ANY.
CREATE USER IF NOT EXISTS privacy_reader
    IDENTIFIED WITH sha256_hash BY '${PRIVACY_READER_PASSWORD_SHA256}'
    HOST IP '127.0.0.1', IP '::1'
    SETTINGS readonly = 1;
GRANT SELECT ON analytics_cn.events TO privacy_reader;

CREATE USER IF NOT EXISTS privacy_reader_intl
    IDENTIFIED WITH sha256_hash BY '${PRIVACY_READER_INTL_PASSWORD_SHA256}'
    HOST IP '127.0.0.1', IP '::1'
    SETTINGS readonly = 1;
GRANT SELECT ON analytics_intl.events TO privacy_reader_intl;
