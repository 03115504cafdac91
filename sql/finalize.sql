-- Only roles granted EXECUTE may deploy, connect or trigger.
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA nango FROM PUBLIC;

-- Backups: pg_dump dumps the rows of these tables and the state of these sequences (the tables are the
-- extension's, so without this it would dump none of their rows), and pg_restore brings them back after
-- CREATE EXTENSION. Bundled providers come from the extension itself; only custom ones are dumped.
SELECT pg_catalog.pg_extension_config_dump('nango.providers', 'WHERE custom');
-- (One statement each: every call updates the extension's catalog row.)
SELECT pg_catalog.pg_extension_config_dump('nango.integrations', '');
SELECT pg_catalog.pg_extension_config_dump('nango.integration_secrets', '');
SELECT pg_catalog.pg_extension_config_dump('nango.connections', '');
SELECT pg_catalog.pg_extension_config_dump('nango.credentials', '');
SELECT pg_catalog.pg_extension_config_dump('nango.deployments', '');
SELECT pg_catalog.pg_extension_config_dump('nango.files', '');
SELECT pg_catalog.pg_extension_config_dump('nango.models', '');
SELECT pg_catalog.pg_extension_config_dump('nango.sync_configs', '');
SELECT pg_catalog.pg_extension_config_dump('nango.action_configs', '');
SELECT pg_catalog.pg_extension_config_dump('nango.syncs', '');
SELECT pg_catalog.pg_extension_config_dump('nango.jobs', '');
SELECT pg_catalog.pg_extension_config_dump('nango.logs', '');
SELECT pg_catalog.pg_extension_config_dump('nango.checkpoints', '');
SELECT pg_catalog.pg_extension_config_dump('nango.delete_windows', '');
SELECT pg_catalog.pg_extension_config_dump('nango.seen_records', '');
SELECT pg_catalog.pg_extension_config_dump('nango.stored_records', '');
SELECT pg_catalog.pg_extension_config_dump('nango.record_marks', '');
SELECT pg_catalog.pg_extension_config_dump('nango.environment_variables', '');
SELECT pg_catalog.pg_extension_config_dump('nango.connections_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('nango.deployments_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('nango.sync_configs_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('nango.action_configs_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('nango.syncs_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('nango.jobs_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('nango.logs_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('nango.record_cursor', '');
