-- pg_nango 0.1.0 → 0.2.0 (ALTER EXTENSION pg_nango UPDATE). An upgrade script brings a database installed at
-- the earlier version to exactly what CREATE EXTENSION installs at the later one: the upgrade test compares
-- the two catalogs object by object, so a change to sql/ or to a #[pg_extern] without its step here fails it.
\echo Use "ALTER EXTENSION pg_nango UPDATE TO '0.2.0'" to load this file. \quit

-- Also in the library: nango.deploy's summary lists the items a deploy added, changed and removed
-- ("changes"), and the pg-nango client.

-- A run worker keeps the deployed modules it compiled from run to run, and reads again only the ones whose
-- hash changed.
ALTER TABLE nango.files ADD COLUMN hash text NOT NULL GENERATED ALWAYS AS (pg_catalog.md5(
    pg_catalog.length(path)::text || ':' || path || pg_catalog.length(js)::text || ':' || js
    || coalesce(source_map, ''))) STORED;

DROP FUNCTION nango._script_context(bigint);
DROP FUNCTION nango._integration_context(text);
CREATE FUNCTION nango._integration_context(provider_config_key text, known_files text[] DEFAULT '{}')
RETURNS jsonb LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT jsonb_build_object(
        'provider_name', i.provider, 'provider', p.definition,
        'client_id', i.client_id, 'client_secret', sec.client_secret,
        'files', (SELECT jsonb_object_agg(f.path, CASE WHEN f.hash = ANY (known_files)
                                                        THEN jsonb_build_object('hash', f.hash)
                                                        ELSE jsonb_build_object('hash', f.hash, 'js', f.js,
                                                                                'source_map', f.source_map) END)
                  FROM nango.files f))
    FROM nango.integrations i
    JOIN nango.providers p ON p.name = i.provider
    LEFT JOIN nango.integration_secrets sec ON sec.unique_key = i.unique_key
    WHERE i.unique_key = _integration_context.provider_config_key
$$;
CREATE FUNCTION nango._script_context(conn bigint, known_files text[] DEFAULT '{}') RETURNS jsonb
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT jsonb_build_object(
        'connection', c.id, 'connection_id', c.connection_id, 'provider_config_key', c.provider_config_key,
        'connection_config', c.connection_config, 'credentials', cr.credentials)
        || nango._integration_context(c.provider_config_key, known_files)
    FROM nango.connections c
    LEFT JOIN nango.credentials cr ON cr.connection = c.id
    WHERE c.id = conn
$$;
REVOKE ALL ON FUNCTION nango._integration_context(text, text[]), nango._script_context(bigint, text[]) FROM PUBLIC;
