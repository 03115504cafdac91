-- pg_nango schema: catalog, deployments, connections, schedule, jobs, logs and records.
-- Nothing here is granted to PUBLIC: an administrator grants USAGE on schema nango and EXECUTE on the
-- functions a role may use. Credentials and client secrets are readable by the extension's owner only.

DO $$
BEGIN
    IF current_setting('shared_preload_libraries') !~ '(^|[\s,"])pg_nango([\s,"]|$)' THEN
        RAISE EXCEPTION 'pg_nango must be loaded when the server starts (it runs background workers)'
            USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'Add pg_nango to shared_preload_libraries in postgresql.conf (shared_preload_libraries = ''pg_nango''), restart PostgreSQL, then run CREATE EXTENSION pg_nango again.';
    END IF;
END
$$;

CREATE SCHEMA IF NOT EXISTS nango_records;
COMMENT ON SCHEMA nango_records IS 'pg_nango: one typed view per deployed model';

-- The provider catalog, one JSON entry per provider: the bundled providers.yaml, loaded by CREATE EXTENSION
-- (`custom` false), and the entries added or replaced with nango.upsert_providers (`custom` true). Backups
-- keep only the custom ones; a restore's CREATE EXTENSION brings the bundled ones back.
CREATE TABLE nango.providers (
    name        text PRIMARY KEY,
    definition  jsonb NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    custom      boolean NOT NULL DEFAULT false
);

-- A custom entry replaces the bundled one of the same name, also when it arrives by a restore's COPY
-- (which knows no ON CONFLICT): the bundled row is deleted first. References to the name stay valid, the
-- replacement being in place when the statement ends.
CREATE FUNCTION nango._replace_bundled_provider() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    DELETE FROM nango.providers p WHERE p.name = NEW.name AND NOT p.custom;
    RETURN NEW;
END
$$;
CREATE TRIGGER replace_bundled_provider BEFORE INSERT ON nango.providers
    FOR EACH ROW WHEN (NEW.custom) EXECUTE FUNCTION nango._replace_bundled_provider();

CREATE TABLE nango.integrations (
    unique_key  text PRIMARY KEY,
    provider    text NOT NULL REFERENCES nango.providers (name),
    client_id   text,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE nango.integration_secrets (
    unique_key     text PRIMARY KEY REFERENCES nango.integrations (unique_key) ON DELETE CASCADE,
    client_secret  text
);

CREATE TABLE nango.connections (
    id                   bigserial PRIMARY KEY,
    provider_config_key  text NOT NULL REFERENCES nango.integrations (unique_key) ON DELETE CASCADE,
    connection_id        text NOT NULL,
    connection_config    jsonb NOT NULL DEFAULT '{}',
    metadata             jsonb NOT NULL DEFAULT '{}',
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    UNIQUE (provider_config_key, connection_id)
);

CREATE TABLE nango.credentials (
    connection   bigint PRIMARY KEY REFERENCES nango.connections (id) ON DELETE CASCADE,
    credentials  jsonb NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now()
);
REVOKE ALL ON nango.credentials, nango.integration_secrets FROM PUBLIC;

-- What nango.deploy stored: the config, compiled modules, models, syncs and actions.
CREATE TABLE nango.deployments (
    id           bigserial PRIMARY KEY,
    deployed_at  timestamptz NOT NULL DEFAULT now(),
    deployed_by  text NOT NULL DEFAULT session_user,
    config       text NOT NULL,
    summary      jsonb NOT NULL
);

CREATE TABLE nango.files (
    path        text PRIMARY KEY,
    source      text NOT NULL,
    js          text NOT NULL,
    source_map  text,
    -- What a run worker keeps of a module from run to run (its text and the bytecode it compiled) is
    -- valid while the module's hash is the same: only a changed module is read and compiled again.
    hash        text NOT NULL GENERATED ALWAYS AS (pg_catalog.md5(
                    pg_catalog.length(path)::text || ':' || path || pg_catalog.length(js)::text || ':' || js
                    || coalesce(source_map, ''))) STORED
);

CREATE TABLE nango.models (
    name        text PRIMARY KEY,
    definition  jsonb NOT NULL,
    -- The model's typed view in nango_records (unqualified). Kept across deploys, so a name stays with the
    -- model that had it first when another model would map to the same name.
    view_name   text UNIQUE
);

CREATE TABLE nango.sync_configs (
    id                   bigserial PRIMARY KEY,
    provider_config_key  text NOT NULL REFERENCES nango.integrations (unique_key) ON DELETE CASCADE,
    name                 text NOT NULL,
    description          text NOT NULL DEFAULT '',
    runs                 text NOT NULL,
    frequency            interval NOT NULL,
    models               text[] NOT NULL,
    sync_type            text NOT NULL CHECK (sync_type IN ('full', 'incremental')),
    track_deletes        boolean NOT NULL DEFAULT false,
    auto_start           boolean NOT NULL DEFAULT true,
    endpoints            jsonb NOT NULL DEFAULT '[]',
    entry_file           text NOT NULL,
    version              text NOT NULL DEFAULT '',
    -- The webhook subscriptions whose payloads `onWebhook` handles (nango.handle_webhook).
    webhook_subscriptions text[] NOT NULL DEFAULT '{}',
    -- The model of the connection metadata it reads (zero-YAML `metadata`: SyncMetadata_<integration>_<name>).
    metadata_model       text,
    -- Zero-YAML: `{definitions: {Model: JSON Schema}}` of its models and metadata, as zod wrote them.
    json_schema          jsonb,
    UNIQUE (provider_config_key, name)
);

CREATE TABLE nango.action_configs (
    id                   bigserial PRIMARY KEY,
    provider_config_key  text NOT NULL REFERENCES nango.integrations (unique_key) ON DELETE CASCADE,
    name                 text NOT NULL,
    description          text NOT NULL DEFAULT '',
    input                text,
    output               text[] NOT NULL DEFAULT '{}',
    endpoint             jsonb,
    entry_file           text NOT NULL,
    -- Zero-YAML: `{definitions: {ActionInput_…, ActionOutput_…}}` of its input and output, as zod wrote them.
    json_schema          jsonb,
    UNIQUE (provider_config_key, name)
);

-- Scripts run on a connection's events: after it is created, before it is deleted, to validate it.
CREATE TABLE nango.on_event_configs (
    id                   bigserial PRIMARY KEY,
    provider_config_key  text NOT NULL REFERENCES nango.integrations (unique_key) ON DELETE CASCADE,
    name                 text NOT NULL,
    event                text NOT NULL
                         CHECK (event IN ('post-connection-creation', 'pre-connection-deletion', 'validate-connection')),
    entry_file           text NOT NULL,
    UNIQUE (provider_config_key, name)
);

-- One row per sync and connection: its schedule and where it stands.
CREATE TABLE nango.syncs (
    id               bigserial PRIMARY KEY,
    sync_config      bigint NOT NULL REFERENCES nango.sync_configs (id) ON DELETE CASCADE,
    connection       bigint NOT NULL REFERENCES nango.connections (id) ON DELETE CASCADE,
    paused           boolean NOT NULL,
    schedule_anchor  timestamptz NOT NULL DEFAULT now(),
    next_run_at      timestamptz,
    last_sync_date   timestamptz,
    UNIQUE (sync_config, connection)
);
-- The scheduler's tick looks for due syncs here.
CREATE INDEX syncs_due ON nango.syncs (next_run_at) WHERE NOT paused;

-- A run: of a sync (INITIAL or INCREMENTAL, see SPEC), of a sync's `onWebhook` (WEBHOOK, nango.handle_webhook),
-- or of an on-event script (ON_EVENT: `sync` is NULL, `on_event` its script, `sync_name` the script's name).
CREATE TABLE nango.jobs (
    id             bigserial PRIMARY KEY,
    sync           bigint REFERENCES nango.syncs (id) ON DELETE SET NULL,
    integration    text NOT NULL,
    connection_id  text NOT NULL,
    sync_name      text NOT NULL,
    type           text NOT NULL DEFAULT 'INITIAL' CHECK (type IN ('INITIAL', 'INCREMENTAL', 'WEBHOOK', 'ON_EVENT')),
    status         text NOT NULL DEFAULT 'QUEUED' CHECK (status IN ('QUEUED', 'RUNNING', 'SUCCESS', 'ERROR', 'CANCELLED')),
    full_resync    boolean NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now(),
    started_at     timestamptz,
    ended_at       timestamptz,
    result         jsonb NOT NULL DEFAULT '{}',
    error          jsonb,
    pid            integer,
    on_event       bigint REFERENCES nango.on_event_configs (id) ON DELETE SET NULL,
    -- Where the time of the run went, in milliseconds: wait (queued → its worker began to claim it), connect
    -- (the worker's start, on the first run of a worker), claim (loading the run), start (engine and
    -- modules), script (the script itself). Set when the run ends.
    phases         jsonb,
    -- Where a run stands while it runs, written with each batch it saves: {"records": {model: records
    -- passed to batchSave/batchUpdate/batchDelete so far}, "requests": requests made through the proxy,
    -- "last_batch_at": the time of the last batch}; at its end, the requests made in all.
    progress       jsonb NOT NULL DEFAULT '{}'
);
-- One scheduled or triggered run per sync and connection at a time. Webhook runs are not counted: as on
-- Nango, they run as their webhooks arrive, beside the sync's own runs.
CREATE UNIQUE INDEX jobs_one_active_per_sync ON nango.jobs (sync)
    WHERE status IN ('QUEUED', 'RUNNING') AND type <> 'WEBHOOK';
CREATE INDEX jobs_by_sync ON nango.jobs (sync, id);
-- The queue the run workers take jobs from, oldest first, and the runs in progress the scheduler counts.
CREATE INDEX jobs_active ON nango.jobs (status, id) WHERE status IN ('QUEUED', 'RUNNING');

-- The payload of a queued webhook run (nango.handle_webhook), taken by the run when it starts.
CREATE TABLE nango.webhook_payloads (
    job      bigint PRIMARY KEY REFERENCES nango.jobs (id) ON DELETE CASCADE,
    payload  jsonb NOT NULL
);
REVOKE ALL ON nango.webhook_payloads FROM PUBLIC;

CREATE TABLE nango.logs (
    id       bigserial PRIMARY KEY,
    job      bigint REFERENCES nango.jobs (id) ON DELETE CASCADE,
    -- For an action or a dry run (no job): 'action <integration>/<name> <connection>' or 'dryrun …'.
    run      text,
    time     timestamptz NOT NULL DEFAULT clock_timestamp(),
    level    text NOT NULL,
    message  text NOT NULL,
    payload  jsonb
);
CREATE INDEX logs_by_job ON nango.logs (job, id);
-- The scheduler's cleanup (nango.job_retention) finds expired jobs, and logs of runs without a job, by time.
CREATE INDEX jobs_by_end ON nango.jobs (ended_at) WHERE status IN ('SUCCESS', 'ERROR', 'CANCELLED');
CREATE INDEX logs_without_job_by_time ON nango.logs (time) WHERE job IS NULL;

-- A sync's checkpoint for one connection (`nango.saveCheckpoint`): a flat object, kept across runs until the
-- script clears it or a full resync starts over.
CREATE TABLE nango.checkpoints (
    sync        bigint PRIMARY KEY REFERENCES nango.syncs (id) ON DELETE CASCADE,
    checkpoint  jsonb NOT NULL,
    version     integer NOT NULL DEFAULT 1,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Deletion detection. A window is open for a model of a sync and connection from `trackDeletesStart` (or
-- from the start of a run of a `track_deletes: true` sync) until `trackDeletesEnd` (or that run's success);
-- the ids saved meanwhile are remembered, and at the end the model's other records are marked deleted. An
-- explicit window survives failed runs; an implicit one lives for one run.
-- Both grow with the records and are joined with them, so they carry the connection (the sync's) and every key
-- includes it: sharded by connection (docs/scaling.md), a window, its seen ids and the records it closes over
-- are on one shard. No foreign key to nango.syncs, which stays with the schedule: deleting a schedule row
-- deletes its windows (trigger below).
CREATE TABLE nango.delete_windows (
    sync           bigint NOT NULL,
    connection     bigint NOT NULL,
    model          text NOT NULL,
    opened_by_job  bigint,
    implicit       boolean NOT NULL,
    opened_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sync, model, connection)
);
CREATE TABLE nango.seen_records (
    sync         bigint NOT NULL,
    connection   bigint NOT NULL,
    model        text NOT NULL,
    external_id  text COLLATE "C" NOT NULL,
    PRIMARY KEY (sync, model, external_id, connection),
    FOREIGN KEY (sync, model, connection) REFERENCES nango.delete_windows (sync, model, connection) ON DELETE CASCADE
);
CREATE FUNCTION nango._forget_sync_windows() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    DELETE FROM nango.delete_windows w WHERE w.sync = OLD.id AND w.connection = OLD.connection;
    RETURN OLD;
END
$$;
CREATE TRIGGER forget_sync_windows AFTER DELETE ON nango.syncs
    FOR EACH ROW EXECUTE FUNCTION nango._forget_sync_windows();

-- Records. `cursor` comes from one sequence and is assigned under a per-model lock held to commit, so the
-- cursor order of a model is its commit order: a reader paging by cursor never skips a committed change.
-- Not cached: a session then never draws a cursor below the sequence's last value (nango.record_marks).
CREATE SEQUENCE nango.record_cursor CACHE 1;
-- Ids and model names are compared byte by byte (COLLATE "C"): a batch looks up every record by primary
-- key, and comparing by the database's locale would cost a fifth of that lookup.
CREATE TABLE nango.stored_records (
    model             text COLLATE "C" NOT NULL,
    -- No foreign key (checked for every record it would cost a fifth of an ingest): a write locks its
    -- connection row once, and deleting a connection deletes its records (trigger below).
    connection        bigint NOT NULL,
    external_id       text COLLATE "C" NOT NULL,
    data              jsonb NOT NULL,
    -- md5 of the record's JSON text as the script wrote it (Nango's data_hash): a save with the same hash is
    -- unchanged without parsing it. A save with another hash whose content equals `data` is unchanged too.
    data_hash         uuid NOT NULL,
    first_seen_at     timestamptz NOT NULL,
    last_modified_at  timestamptz NOT NULL,
    deleted_at        timestamptz,
    last_action       text NOT NULL CHECK (last_action IN ('ADDED', 'UPDATED', 'DELETED')),
    cursor            bigint NOT NULL,
    last_job          bigint,
    -- Connection and id first: a lookup's descent then compares a bigint and the id, each at a fixed place
    -- in the index tuple, and the model only on a tie (most models hold few ids in common).
    PRIMARY KEY (connection, external_id, model)
);
-- A model's records of all connections in cursor order. Not unique: cursors are, coming from one sequence, and a
-- unique index without the connection could not be enforced once the records are sharded by connection.
CREATE INDEX stored_records_by_cursor ON nango.stored_records (model, cursor);
-- One connection's records of a model in cursor order: nango.records and the typed views for one connection,
-- a script's getRecords, the last cursor of a connection.
CREATE INDEX stored_records_by_connection ON nango.stored_records (connection, model, cursor);

-- Where a model's changes since a time begin in cursor order, so that nango.records(model, delta) reads the
-- model's records from there by cursor instead of every record being indexed by its modification time
-- (that index cost a tenth of every write). Each transaction that writes records of a model marks, under
-- the model's cursor lock (see nango.record_cursor), the cursor its writes come after, in the mark of its
-- minute: `until` is the end of the minute of its `now()`, which is every written record's
-- last_modified_at, and `after_cursor` the least cursor such a transaction came after. A record modified
-- at or after D thus has a cursor above the `after_cursor` of some mark with `until` > D. The scheduler
-- merges marks older than an hour into hourly ones and older than a day into daily ones (keeping the
-- latest `until` and the least cursor), so a model has a few hundred marks a year, and a delta read never
-- reads more than the changes of its own age again.
CREATE TABLE nango.record_marks (
    model         text COLLATE "C" NOT NULL,
    until         timestamptz NOT NULL,
    after_cursor  bigint NOT NULL,
    PRIMARY KEY (model, until)
);

-- Locks a script takes with nango.tryAcquireLock({key, ttlMs}): one per connection and key, held by one run
-- (`owner`) until that run releases it or ends, or until it expires.
CREATE TABLE nango.locks (
    connection  bigint NOT NULL REFERENCES nango.connections (id) ON DELETE CASCADE,
    key         text NOT NULL,
    owner       text NOT NULL,
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (connection, key)
);
CREATE INDEX locks_by_owner ON nango.locks (owner);

-- The environment's variables, which every script reads with nango.getEnvironmentVariables(); set with
-- nango.set_environment_variable. Readable by the extension's owner only, like credentials.
CREATE TABLE nango.environment_variables (
    name   text PRIMARY KEY,
    value  text NOT NULL
);
REVOKE ALL ON nango.locks, nango.environment_variables FROM PUBLIC;

CREATE FUNCTION nango._forget_connection_records() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    DELETE FROM nango.stored_records WHERE connection = OLD.id;
    RETURN OLD;
END
$$;
CREATE TRIGGER forget_connection_records AFTER DELETE ON nango.connections
    FOR EACH ROW EXECUTE FUNCTION nango._forget_connection_records();

-- Name resolution. Every function here either runs with `SET search_path = pg_catalog, pg_temp` or, when it
-- is a SQL function that the planner inlines into the caller's query (a SET clause would prevent that, and
-- with it index use by `nango.records` and the typed views), names every function, operator and type with
-- its schema: an inlined body is parsed with the caller's search_path, where another role's objects (an
-- exact-typed `public.jsonb_build_object`, say) could otherwise be chosen over the built-in.
-- STABLE, not IMMUTABLE: a timestamptz renders in the session's TimeZone, so jsonb_build_object is STABLE, and
-- the planner inlines a SQL function only if its body is no more volatile than it is declared. Called once
-- per row by nango.records, the inlined body costs half what the call did (the call built the whole row as
-- a composite value and ran the function's executor for each row).
CREATE FUNCTION nango._record_metadata(r nango.stored_records) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT pg_catalog.jsonb_build_object(
        'first_seen_at', r.first_seen_at,
        'last_modified_at', r.last_modified_at,
        'last_action', r.last_action,
        'deleted_at', r.deleted_at,
        'cursor', r.cursor::pg_catalog.text)
$$;

-- Parses the `filter` argument of nango.records: {added, updated, deleted}.
CREATE FUNCTION nango._record_filter(filter text) RETURNS boolean[]
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    flags boolean[] := ARRAY[false, false, false];
    part text;
BEGIN
    IF filter IS NULL THEN
        RETURN ARRAY[true, true, true];
    END IF;
    FOREACH part IN ARRAY string_to_array(lower(filter), ',') LOOP
        CASE btrim(part)
            WHEN 'added' THEN flags[1] := true;
            WHEN 'updated' THEN flags[2] := true;
            WHEN 'deleted' THEN flags[3] := true;
            ELSE RAISE EXCEPTION 'invalid filter "%"', btrim(part)
                USING ERRCODE = 'invalid_parameter_value', HINT = 'Use added, updated, deleted, or a comma list of them.';
        END CASE;
    END LOOP;
    RETURN flags;
END
$$;

CREATE FUNCTION nango._record_cursor(cursor text) RETURNS bigint
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF cursor IS NULL THEN
        RETURN 0;
    END IF;
    IF cursor !~ '^[0-9]{1,18}$' THEN
        RAISE EXCEPTION 'invalid cursor "%"', left(cursor, 40)
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Pass the cursor column of a row returned by nango.records.';
    END IF;
    RETURN cursor::bigint;
END
$$;

-- Where a delta read starts: after the least cursor marked since `delta` (see nango.record_marks); with no
-- mark since then, nothing was modified and the read starts after the last possible cursor. A model with no
-- mark at all (its marks deleted by hand, say) is read from its start. Strict: with no delta it is NULL,
-- which greatest() ignores. A definer's function, so that a reader needs no privilege on the marks beyond
-- those nango.records asks for.
CREATE FUNCTION nango._record_delta_start(model text, delta timestamptz) RETURNS bigint
LANGUAGE sql STABLE STRICT SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce(min(m.after_cursor),
                    CASE WHEN EXISTS (SELECT 1 FROM nango.record_marks k WHERE k.model = $1)
                         THEN 9223372036854775807 ELSE 0 END)
    FROM nango.record_marks m
    WHERE m.model = $1 AND m.until > $2
$$;

CREATE FUNCTION nango.records(
    model text,
    delta timestamptz DEFAULT NULL,
    connection_id text DEFAULT NULL,
    provider_config_key text DEFAULT NULL,
    filter text DEFAULT NULL,
    "limit" integer DEFAULT NULL,
    cursor text DEFAULT NULL)
RETURNS TABLE (id text, data jsonb, _nango_metadata jsonb, cursor text)
LANGUAGE sql STABLE AS $$
    -- Inlined into the caller's query: every operator and type is schema-qualified (see above).
    SELECT r.external_id, r.data, nango._record_metadata(r), r.cursor::pg_catalog.text
    FROM nango.stored_records r
    JOIN nango.connections c ON c.id OPERATOR(pg_catalog.=) r.connection
    -- With `delta`, the read starts after the least cursor marked since then (nango._record_delta_start).
    CROSS JOIN (SELECT nango._record_filter($5) AS f,
                       greatest(nango._record_cursor($7), nango._record_delta_start($1, $2)) AS after) p
    WHERE r.model OPERATOR(pg_catalog.=) $1
      AND r.cursor OPERATOR(pg_catalog.>) p.after
      AND ($2 IS NULL OR r.last_modified_at OPERATOR(pg_catalog.>=) $2)
      AND ($3 IS NULL OR c.connection_id OPERATOR(pg_catalog.=) $3)
      AND ($4 IS NULL OR c.provider_config_key OPERATOR(pg_catalog.=) $4)
      -- The same condition, for one connection, as a key: with the arguments given, the planner reads the
      -- connection's own rows in cursor order (index (connection, model, cursor)) instead of the whole
      -- model's. With either one NULL, this folds away.
      AND ($3 IS NULL OR $4 IS NULL
           OR r.connection OPERATOR(pg_catalog.=) (SELECT k.id FROM nango.connections k
                                                   WHERE k.connection_id OPERATOR(pg_catalog.=) $3
                                                     AND k.provider_config_key OPERATOR(pg_catalog.=) $4))
      AND ((p.f[1] AND r.deleted_at IS NULL AND r.last_action OPERATOR(pg_catalog.=) 'ADDED')
        OR (p.f[2] AND r.deleted_at IS NULL AND r.last_action OPERATOR(pg_catalog.=) 'UPDATED')
        OR (p.f[3] AND r.deleted_at IS NOT NULL))
    ORDER BY r.cursor
    LIMIT $6
$$;
COMMENT ON FUNCTION nango.records IS
    'Records of a model in cursor order with their _nango_metadata; pass the last row''s cursor to continue.';

-- Safe casts for the typed views: a value of the wrong type reads as NULL instead of failing the query.
CREATE FUNCTION nango._as_timestamptz(value text) RETURNS timestamptz
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN value::timestamptz;
EXCEPTION WHEN others THEN
    RETURN NULL;
END
$$;

CREATE FUNCTION nango._as_number(value jsonb) RETURNS double precision
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN pg_catalog.jsonb_typeof(value) OPERATOR(pg_catalog.=) 'number'
                THEN (value OPERATOR(pg_catalog.#>>) '{}'::pg_catalog.text[])::double precision END
$$;

CREATE FUNCTION nango._as_boolean(value jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN pg_catalog.jsonb_typeof(value) OPERATOR(pg_catalog.=) 'boolean'
                THEN (value OPERATOR(pg_catalog.#>>) '{}'::pg_catalog.text[])::boolean END
$$;

CREATE VIEW nango.sync_status AS
SELECT sc.provider_config_key AS integration,
       sc.name AS sync,
       c.connection_id,
       CASE
           WHEN lj.status = 'RUNNING' THEN 'RUNNING'
           WHEN s.paused THEN 'PAUSED'
           WHEN fj.status = 'SUCCESS' THEN 'SUCCESS'
           WHEN fj.status IN ('ERROR', 'CANCELLED') THEN 'ERROR'
       END AS status,
       sc.runs AS frequency,
       s.last_sync_date,
       s.next_run_at,
       lj.id AS last_job_id,
       lj.status AS last_job_status,
       fj.error ->> 'description' AS last_error,
       (SELECT jsonb_object_agg(m.model, (SELECT count(*) FROM nango.stored_records r
                                           WHERE r.model = m.model AND r.connection = s.connection
                                             AND r.deleted_at IS NULL))
          FROM unnest(sc.models) AS m(model)) AS record_counts,
       -- The last run's progress (live while it runs): records saved so far by model, requests made, the
       -- time of its last batch.
       lj.progress -> 'records' AS records_saved,
       (lj.progress ->> 'requests')::bigint AS requests,
       (lj.progress ->> 'last_batch_at')::timestamptz AS last_batch_at
FROM nango.syncs s
JOIN nango.sync_configs sc ON sc.id = s.sync_config
JOIN nango.connections c ON c.id = s.connection
-- The sync's own runs: webhook runs (type WEBHOOK) have their rows in nango.jobs but do not make its status.
LEFT JOIN LATERAL (SELECT j.id, j.status, j.progress FROM nango.jobs j
                   WHERE j.sync = s.id AND j.type IN ('INITIAL', 'INCREMENTAL') ORDER BY j.id DESC LIMIT 1) lj ON true
LEFT JOIN LATERAL (SELECT j.status, j.error FROM nango.jobs j
                   WHERE j.sync = s.id AND j.type IN ('INITIAL', 'INCREMENTAL')
                     AND j.status IN ('SUCCESS', 'ERROR', 'CANCELLED')
                   ORDER BY j.id DESC LIMIT 1) fj ON true;
COMMENT ON VIEW nango.sync_status IS 'One row per sync and connection: where it stands, its schedule and last run.';
