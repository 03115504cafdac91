-- pg_nango 0.1.0 → 0.2.0 (ALTER EXTENSION pg_nango UPDATE). An upgrade script brings a database installed at
-- the earlier version to exactly what CREATE EXTENSION installs at the later one: the upgrade test compares
-- the two catalogs object by object, so a change to sql/ or to a #[pg_extern] without its step here fails it.
\echo Use "ALTER EXTENSION pg_nango UPDATE TO '0.2.0'" to load this file. \quit

-- 0.2.0 changes no SQL object. What it adds lives in the library: nango.deploy's summary lists the items a
-- deploy added, changed and removed ("changes"), and the pg-nango client.
