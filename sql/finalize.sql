-- Only roles granted EXECUTE may deploy, connect or trigger.
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA nango FROM PUBLIC;
