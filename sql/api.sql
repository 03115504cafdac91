-- The SQL-level API that needs no Rust: integrations, connections, metadata, and sync commands.
-- SECURITY DEFINER with a fixed search_path: a role granted EXECUTE may call them without any right on the
-- tables, and never sees credentials. Errors never echo credential values.

CREATE FUNCTION nango.create_integration(unique_key text, provider text,
                                         client_id text DEFAULT NULL, client_secret text DEFAULT NULL)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF unique_key IS NULL OR unique_key !~ '^[A-Za-z0-9_.-]+$' THEN
        RAISE EXCEPTION 'invalid integration key "%"', unique_key
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Use letters, digits, ., _ and -.';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM nango.providers p WHERE p.name = create_integration.provider) THEN
        RAISE EXCEPTION 'unknown provider "%"', provider
            USING ERRCODE = 'undefined_object', HINT = 'See SELECT name FROM nango.providers, or add it with nango.upsert_providers(yaml).';
    END IF;
    INSERT INTO nango.integrations AS i (unique_key, provider, client_id)
    VALUES (create_integration.unique_key, create_integration.provider, create_integration.client_id)
    ON CONFLICT ON CONSTRAINT integrations_pkey DO UPDATE SET provider = excluded.provider, client_id = excluded.client_id;
    INSERT INTO nango.integration_secrets AS s (unique_key, client_secret)
    VALUES (create_integration.unique_key, create_integration.client_secret)
    ON CONFLICT ON CONSTRAINT integration_secrets_pkey DO UPDATE SET client_secret = excluded.client_secret;
END
$$;

-- nango._check_credentials(credentials jsonb) (src/api/connections.rs) checks a credentials object per auth mode;
-- its error names the missing field, never a value.

CREATE FUNCTION nango.create_connection(provider_config_key text, connection_id text, credentials jsonb,
                                        connection_config jsonb DEFAULT '{}', metadata jsonb DEFAULT '{}')
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    conn bigint;
    validated jsonb;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM nango.integrations i WHERE i.unique_key = create_connection.provider_config_key) THEN
        RAISE EXCEPTION 'integration "%" does not exist', provider_config_key
            USING ERRCODE = 'undefined_object', HINT = 'Create it with nango.create_integration(unique_key, provider), or deploy a nango.yaml that names it.';
    END IF;
    IF connection_id IS NULL OR connection_id = '' OR length(connection_id) > 255 THEN
        RAISE EXCEPTION 'connection_id must be 1 to 255 characters' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF jsonb_typeof(coalesce(connection_config, '{}')) <> 'object' OR jsonb_typeof(coalesce(metadata, '{}')) <> 'object' THEN
        RAISE EXCEPTION 'connection_config and metadata must be JSON objects' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM nango._check_credentials(credentials);
    PERFORM nango._check_connection_config(provider_config_key, coalesce(connection_config, '{}'));
    -- The integration's validate-connection scripts run first, each in a worker that is handed the
    -- connection (nothing is stored yet); one that throws refuses it. They may refresh its token or set its
    -- metadata: what they leave is what is stored.
    validated := nango._validate_connection(provider_config_key, connection_id, credentials,
                                            coalesce(connection_config, '{}'), coalesce(metadata, '{}'));
    INSERT INTO nango.connections AS c (provider_config_key, connection_id, connection_config, metadata)
    VALUES (create_connection.provider_config_key, create_connection.connection_id,
            coalesce(create_connection.connection_config, '{}'),
            coalesce(validated -> 'metadata', create_connection.metadata, '{}'))
    ON CONFLICT ON CONSTRAINT connections_provider_config_key_connection_id_key
    DO UPDATE SET connection_config = excluded.connection_config, metadata = excluded.metadata, updated_at = now()
    RETURNING c.id INTO conn;
    INSERT INTO nango.credentials AS cr (connection, credentials)
    VALUES (conn, coalesce(validated -> 'credentials', create_connection.credentials))
    ON CONFLICT ON CONSTRAINT credentials_pkey DO UPDATE SET credentials = excluded.credentials, updated_at = now();
    PERFORM nango._ensure_syncs(conn);
    -- Its post-connection-creation scripts run once this commits (as on Nango, also when the call replaces
    -- an existing connection's credentials): queued jobs become visible to the scheduler only then.
    INSERT INTO nango.jobs (sync, on_event, integration, connection_id, sync_name, type)
    SELECT NULL, oc.id, oc.provider_config_key, create_connection.connection_id, oc.name, 'ON_EVENT'
    FROM nango.on_event_configs oc
    WHERE oc.provider_config_key = create_connection.provider_config_key AND oc.event = 'post-connection-creation'
    ORDER BY oc.name;
END
$$;

-- Creates the schedule row of every deployed sync for every connection of its integration (a deploy), or
-- for one connection only (`only_connection`: its creation, a webhook for it), so that creating the ten
-- thousandth connection costs what the first did.
CREATE FUNCTION nango._ensure_syncs(only_connection bigint DEFAULT NULL) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF only_connection IS NULL THEN
        INSERT INTO nango.syncs (sync_config, connection, paused, next_run_at)
        SELECT sc.id, c.id, NOT sc.auto_start, CASE WHEN sc.auto_start THEN now() END
        FROM nango.sync_configs sc
        JOIN nango.connections c ON c.provider_config_key = sc.provider_config_key
        ON CONFLICT ON CONSTRAINT syncs_sync_config_connection_key DO NOTHING;
    ELSE
        INSERT INTO nango.syncs (sync_config, connection, paused, next_run_at)
        SELECT sc.id, c.id, NOT sc.auto_start, CASE WHEN sc.auto_start THEN now() END
        FROM nango.connections c
        JOIN nango.sync_configs sc ON sc.provider_config_key = c.provider_config_key
        WHERE c.id = only_connection
        ON CONFLICT ON CONSTRAINT syncs_sync_config_connection_key DO NOTHING;
    END IF;
END
$$;

CREATE FUNCTION nango._connection(provider_config_key text, connection_id text) RETURNS bigint
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    conn bigint;
BEGIN
    SELECT c.id INTO conn FROM nango.connections c
    WHERE c.provider_config_key = _connection.provider_config_key AND c.connection_id = _connection.connection_id;
    IF conn IS NULL THEN
        RAISE EXCEPTION 'connection "%" of integration "%" does not exist', connection_id, provider_config_key
            USING ERRCODE = 'undefined_object', HINT = 'See SELECT provider_config_key, connection_id FROM nango.connections.';
    END IF;
    RETURN conn;
END
$$;

CREATE FUNCTION nango.delete_connection(provider_config_key text, connection_id text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    conn bigint := nango._connection(provider_config_key, connection_id);
BEGIN
    -- Its pre-connection-deletion scripts run first, each in a worker, and are waited for. As on Nango, one
    -- that fails is logged (its job, and a WARNING here) and the connection is deleted all the same.
    PERFORM nango._run_pre_connection_deletion(provider_config_key, connection_id);
    -- Stop its runs; their jobs stay in nango.jobs as history.
    PERFORM nango._cancel_jobs(array_agg(s.id)) FROM nango.syncs s WHERE s.connection = conn;
    UPDATE nango.jobs j SET status = 'CANCELLED', ended_at = now(),
           error = jsonb_build_object('type', 'script_aborted', 'description', 'the connection was deleted')
    WHERE j.type = 'ON_EVENT' AND j.status = 'QUEUED'
      AND j.integration = delete_connection.provider_config_key AND j.connection_id = delete_connection.connection_id;
    DELETE FROM nango.connections c WHERE c.id = conn;
    -- Its records (also deleted by a trigger on a single server; sharded, the trigger is dropped). After the
    -- connection: a run writing records holds its row until it commits, and once it is gone none writes more.
    DELETE FROM nango.stored_records r WHERE r.connection = conn;
END
$$;

-- Runs onWebhook(nango, payload) of each sync of the integration subscribed to `subscription` (a sync
-- subscribed to '*' takes every one; a NULL subscription goes to every sync that has subscriptions), for one
-- connection. As on Nango, each is a queued run (type WEBHOOK), which may run beside the sync's scheduled
-- one: its records are saved and notified as a sync run's. Returns the queued jobs' ids.
CREATE FUNCTION nango.handle_webhook(provider_config_key text, connection_id text, payload jsonb,
                                     subscription text DEFAULT NULL)
RETURNS SETOF bigint LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    conn bigint := nango._connection(provider_config_key, connection_id);
    target record;
    job_id bigint;
BEGIN
    IF octet_length(coalesce(payload, 'null')::text) > nango._max_webhook_payload() THEN
        RAISE EXCEPTION 'the webhook payload is larger than nango.max_response_size' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM nango._ensure_syncs(conn);
    FOR target IN
        SELECT s.id, sc.name FROM nango.sync_configs sc
        JOIN nango.syncs s ON s.sync_config = sc.id AND s.connection = conn
        WHERE sc.provider_config_key = handle_webhook.provider_config_key
          AND cardinality(sc.webhook_subscriptions) > 0
          AND (handle_webhook.subscription IS NULL
               OR handle_webhook.subscription = ANY (sc.webhook_subscriptions)
               OR '*' = ANY (sc.webhook_subscriptions))
        ORDER BY sc.name
    LOOP
        INSERT INTO nango.jobs (sync, integration, connection_id, sync_name, type)
        VALUES (target.id, handle_webhook.provider_config_key, handle_webhook.connection_id, target.name, 'WEBHOOK')
        RETURNING id INTO job_id;
        INSERT INTO nango.webhook_payloads (job, payload) VALUES (job_id, coalesce(payload, 'null'));
        RETURN NEXT job_id;
    END LOOP;
END
$$;
COMMENT ON FUNCTION nango.handle_webhook(text, text, jsonb, text) IS
    'Queues a run of onWebhook(nango, payload) of each sync of the integration subscribed to the subscription (all subscribed syncs when NULL) for one connection; returns their job ids.';

CREATE FUNCTION nango.set_metadata(provider_config_key text, connection_id text, metadata jsonb) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF jsonb_typeof(metadata) IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION 'metadata must be a JSON object' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    UPDATE nango.connections c SET metadata = set_metadata.metadata, updated_at = now()
    WHERE c.id = nango._connection(set_metadata.provider_config_key, set_metadata.connection_id);
END
$$;

CREATE FUNCTION nango.update_metadata(provider_config_key text, connection_id text, metadata jsonb) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF jsonb_typeof(metadata) IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION 'metadata must be a JSON object' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    UPDATE nango.connections c SET metadata = c.metadata || update_metadata.metadata, updated_at = now()
    WHERE c.id = nango._connection(update_metadata.provider_config_key, update_metadata.connection_id);
END
$$;

-- The schedule rows of a sync, for one connection or all of them; errors when there are none.
CREATE FUNCTION nango._syncs_of(provider_config_key text, sync_name text, connection_id text) RETURNS bigint[]
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    ids bigint[];
BEGIN
    IF NOT EXISTS (SELECT 1 FROM nango.sync_configs sc
                   WHERE sc.provider_config_key = _syncs_of.provider_config_key AND sc.name = _syncs_of.sync_name) THEN
        RAISE EXCEPTION 'sync "%" of integration "%" is not deployed', sync_name, provider_config_key
            USING ERRCODE = 'undefined_object';
    END IF;
    IF connection_id IS NOT NULL THEN
        PERFORM nango._connection(provider_config_key, connection_id);
    END IF;
    SELECT array_agg(s.id ORDER BY s.id) INTO ids
    FROM nango.syncs s
    JOIN nango.sync_configs sc ON sc.id = s.sync_config
    JOIN nango.connections c ON c.id = s.connection
    WHERE sc.provider_config_key = _syncs_of.provider_config_key AND sc.name = _syncs_of.sync_name
      AND (_syncs_of.connection_id IS NULL OR c.connection_id = _syncs_of.connection_id);
    IF ids IS NULL THEN
        RAISE EXCEPTION 'sync "%" of integration "%" has no connection yet', sync_name, provider_config_key
            USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'Create one with nango.create_connection.';
    END IF;
    RETURN ids;
END
$$;

CREATE FUNCTION nango.trigger_sync(provider_config_key text, sync_name text, connection_id text DEFAULT NULL,
                                   full_resync boolean DEFAULT false)
RETURNS SETOF bigint LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    sync_id bigint;
    job_id bigint;
BEGIN
    FOREACH sync_id IN ARRAY nango._syncs_of(provider_config_key, sync_name, connection_id) LOOP
        INSERT INTO nango.jobs (sync, integration, connection_id, sync_name, full_resync)
        SELECT s.id, c.provider_config_key, c.connection_id, sc.name, trigger_sync.full_resync
        FROM nango.syncs s JOIN nango.sync_configs sc ON sc.id = s.sync_config JOIN nango.connections c ON c.id = s.connection
        WHERE s.id = sync_id
        ON CONFLICT (sync) WHERE status IN ('QUEUED', 'RUNNING') AND type <> 'WEBHOOK' DO NOTHING
        RETURNING id INTO job_id;
        IF job_id IS NULL THEN
            SELECT j.id INTO job_id FROM nango.jobs j
            WHERE j.sync = sync_id AND j.status IN ('QUEUED', 'RUNNING') AND j.type <> 'WEBHOOK';
        END IF;
        RETURN NEXT job_id;
        job_id := NULL;
    END LOOP;
END
$$;

CREATE FUNCTION nango.pause_sync(provider_config_key text, sync_name text, connection_id text DEFAULT NULL)
RETURNS void LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    UPDATE nango.syncs SET paused = true, next_run_at = NULL
    WHERE id = ANY (nango._syncs_of(provider_config_key, sync_name, connection_id))
$$;

CREATE FUNCTION nango.start_sync(provider_config_key text, sync_name text, connection_id text DEFAULT NULL)
RETURNS void LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    UPDATE nango.syncs SET paused = false, next_run_at = coalesce(next_run_at, now())
    WHERE id = ANY (nango._syncs_of(provider_config_key, sync_name, connection_id)) AND paused
$$;

-- Cancels the queued or running jobs of some schedule rows: a queued job ends CANCELLED at once, a running
-- one is told to stop (its worker ends it CANCELLED).
CREATE FUNCTION nango._cancel_jobs(sync_ids bigint[]) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    job record;
BEGIN
    FOR job IN SELECT j.id, j.status, j.pid FROM nango.jobs j
               WHERE j.sync = ANY (sync_ids) AND j.status IN ('QUEUED', 'RUNNING') FOR UPDATE LOOP
        IF job.status = 'QUEUED' OR job.pid IS NULL THEN
            UPDATE nango.jobs SET status = 'CANCELLED', ended_at = now(),
                   error = jsonb_build_object('type', 'script_aborted', 'description', 'the run was cancelled')
            WHERE id = job.id;
            DELETE FROM nango.webhook_payloads p WHERE p.job = job.id;
        ELSE
            PERFORM pg_terminate_backend(job.pid);
        END IF;
    END LOOP;
END
$$;

CREATE FUNCTION nango.cancel_sync(provider_config_key text, sync_name text, connection_id text DEFAULT NULL)
RETURNS void LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT nango._cancel_jobs(nango._syncs_of(provider_config_key, sync_name, connection_id))
$$;

CREATE FUNCTION nango.wait_for_job(job_id bigint, timeout interval DEFAULT '5 minutes') RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    current_status text;
    queued_here boolean;
    deadline timestamptz := clock_timestamp() + timeout;
BEGIN
    LOOP
        -- A job queued by this very transaction (nango.wait_for_job(nango.trigger_sync(…)) in one statement)
        -- is invisible to the workers until it commits: waiting for it could only time out.
        SELECT j.status, j.xmin::text = (pg_catalog.pg_current_xact_id_if_assigned()::text::numeric % 4294967296)::text
        INTO current_status, queued_here FROM nango.jobs j WHERE j.id = job_id;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'job % does not exist', job_id USING ERRCODE = 'undefined_object';
        END IF;
        IF current_status = 'QUEUED' AND queued_here THEN
            RAISE EXCEPTION 'job % was queued by this transaction, and no worker can start it before it commits', job_id
                USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'Call nango.trigger_sync and nango.wait_for_job in separate statements, outside a transaction block.';
        END IF;
        IF current_status IN ('SUCCESS', 'ERROR', 'CANCELLED') THEN
            RETURN current_status;
        END IF;
        IF clock_timestamp() >= deadline THEN
            RAISE EXCEPTION 'job % is still % after %', job_id, current_status, timeout
                USING ERRCODE = 'query_canceled', HINT = 'Wait again, or pass a longer timeout.';
        END IF;
        PERFORM pg_sleep(0.05);
    END LOOP;
END
$$;

-- batchUpdate: objects merged key by key, recursively; arrays and scalars replaced.
CREATE FUNCTION nango._jsonb_merge(target jsonb, patch jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE
        WHEN jsonb_typeof(target) = 'object' AND jsonb_typeof(patch) = 'object' THEN
            (SELECT coalesce(jsonb_object_agg(key,
                        CASE WHEN target ? key AND patch ? key THEN nango._jsonb_merge(target -> key, patch -> key)
                             WHEN patch ? key THEN patch -> key
                             ELSE target -> key END), '{}'::jsonb)
             FROM (SELECT jsonb_object_keys(target) UNION SELECT jsonb_object_keys(patch)) AS keys(key))
        ELSE patch
    END
$$;

-- What running a script of an integration needs besides the script's own settings and the connection: the
-- provider, the integration's OAuth client and every deployed file (`files`: by path, its hash, and its
-- text unless the hash is in `known_files`, the modules a run worker kept from its last run; read in the
-- same statement as the rest, so all of one deploy). Only for the extension's workers (it returns secrets).
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

-- What running a script of a connection needs besides the script's own settings: the connection, its
-- credentials, and the integration's context (above). Only for the extension's workers (it returns secrets).
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

-- Environment variables (nango.getEnvironmentVariables() in scripts).
CREATE FUNCTION nango.set_environment_variable(name text, value text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF name IS NULL OR name !~ '^[A-Za-z0-9_.-]{1,255}$' THEN
        RAISE EXCEPTION 'invalid environment variable name "%"', left(name, 40)
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Use 1 to 255 letters, digits, ., _ and -.';
    END IF;
    IF value IS NULL THEN
        DELETE FROM nango.environment_variables v WHERE v.name = set_environment_variable.name;
    ELSE
        INSERT INTO nango.environment_variables AS v (name, value)
        VALUES (set_environment_variable.name, set_environment_variable.value)
        ON CONFLICT ON CONSTRAINT environment_variables_pkey DO UPDATE SET value = excluded.value;
    END IF;
END
$$;
COMMENT ON FUNCTION nango.set_environment_variable(text, text) IS
    'Sets (or with a NULL value removes) an environment variable that scripts read with nango.getEnvironmentVariables(); values are readable by scripts and by the extension''s owner only.';

CREATE FUNCTION nango.environment_variable_names() RETURNS SETOF text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT v.name FROM nango.environment_variables v ORDER BY v.name
$$;
COMMENT ON FUNCTION nango.environment_variable_names() IS
    'The names of the environment variables set with nango.set_environment_variable (never their values).';
-- nango.trigger_action with a json input: its text, keys in the caller's order, goes to the text overload
-- (a jsonb input has its keys sorted). Definer's rights: EXECUTE on this overload is enough.
CREATE FUNCTION nango.trigger_action(provider_config_key text, connection_id text, action_name text, input json)
RETURNS jsonb LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN nango.trigger_action(provider_config_key, connection_id, action_name, input::text);
END
$$;
