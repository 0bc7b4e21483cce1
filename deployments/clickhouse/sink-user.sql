-- The sink's ClickHouse user on current releases (SQL users and grants,
-- ClickHouse 20.4 and later; for 18.16 use users.d/sink.xml instead).
-- Run as an administrator, once per cluster, with the SHA-256 of the sink's
-- password filled in by render.sh (it fails when the variable is unset or a
-- placeholder; run as it is, ClickHouse refuses the '${...}' as a hash), so
-- that the password itself is in neither this file nor the shell history:
--
--   PASSWORD=$(head -c 24 /dev/urandom | base64)   # the sinks' Secret
--   export SINK_PASSWORD_SHA256=$(printf '%s' "$PASSWORD" | sha256sum | cut -d' ' -f1)
--   deployments/clickhouse/render.sh deployments/clickhouse/sink-user.sql |
--     clickhouse-client --user admin --ask-password --multiquery
--
-- The administrator creates the databases; the sink never needs CREATE
-- DATABASE (it runs it only when its database is missing, and it is not
-- missing once this has run). The grants are what the sink's statements
-- need, per database, and nothing on any other database:
--
--   SELECT            resume offsets (max(kafka_offset)), rows already
--                     stored before a retried insert, schema_migrations
--   INSERT            events, schema_migrations
--   CREATE TABLE      CREATE TABLE IF NOT EXISTS events, schema_migrations
--                     (checked even when the table exists)
--   ALTER ADD COLUMN  schema migrations that add columns
--   ALTER DELETE      ALTER TABLE ... DROP PARTITION (retention) and
--                     ALTER TABLE ... DELETE (erasure); it does not allow
--                     DROP TABLE or DROP DATABASE
--
-- It also reads system.columns (every user may), system.parts (to find
-- the months retention drops) and system.mutations (to know an erasure's
-- deletion finished), hence the grants below: needed where
-- access_control_improvements.select_from_system_db_requires_grant is on,
-- the default of current releases; a user sees only the parts of tables
-- it has rights on. SELECT version() needs nothing.

CREATE DATABASE IF NOT EXISTS analytics_cn;
CREATE DATABASE IF NOT EXISTS analytics_intl;

-- HOST: the addresses the sinks connect from. Loopback until you set the
-- sinks' network (e.g. HOST IP '10.20.0.0/24'); never ANY.
CREATE USER IF NOT EXISTS sink
    IDENTIFIED WITH sha256_hash BY '${SINK_PASSWORD_SHA256}'
    HOST IP '127.0.0.1', IP '::1';

GRANT SELECT, INSERT, CREATE TABLE, ALTER ADD COLUMN, ALTER DELETE ON analytics_cn.* TO sink;
GRANT SELECT, INSERT, CREATE TABLE, ALTER ADD COLUMN, ALTER DELETE ON analytics_intl.* TO sink;
GRANT SELECT ON system.parts TO sink;
GRANT SELECT ON system.mutations TO sink;

-- Where access_control_improvements.table_engines_require_grant is on (off
-- by default), creating a table also needs its engine:
--   GRANT TABLE ENGINE ON MergeTree TO sink;
--   GRANT TABLE ENGINE ON ReplacingMergeTree TO sink;
