-- The privacy admin API's ClickHouse user on current releases (SQL users
-- and grants, ClickHouse 20.4 and later; for 18.16 use
-- users.d/privacy-reader.xml instead). The collector answers
-- POST /v1/privacy/exports with it. Run as an administrator after
-- replacing the password's hash:
--
--   clickhouse-client --user admin --ask-password --multiquery < deployments/clickhouse/privacy-reader-user.sql
--
-- It may read the region's events and nothing else, and change nothing.

-- The password's SHA-256 (printf '%s' "$PASSWORD" | sha256sum), so that
-- no password ships here: all zeros matches none, and the user cannot log
-- in until it is replaced.
CREATE USER IF NOT EXISTS privacy_reader
    IDENTIFIED WITH sha256_hash BY '0000000000000000000000000000000000000000000000000000000000000000'
    SETTINGS readonly = 1;
GRANT SELECT ON analytics_cn.events TO privacy_reader;
