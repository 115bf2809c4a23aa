-- PostgreSQL only: every committed write to what the running gateways hold
-- in memory announces itself on the `bulwark_changes` channel, the payload
-- naming the table and the writing gateway (`bulwark.writer`, set on each of
-- its connections; empty for any other writer), so a replica skips what it
-- wrote and applied itself. Replicas on the same database LISTEN and reload that
-- part at once (src/store/changes.rs). Statement-level, so a bulk restore
-- sends one notification per table, and PostgreSQL folds repeats within a
-- transaction into one. The audit trail is not announced: no replica
-- caches it.
CREATE OR REPLACE FUNCTION bulwark_notify_change() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('bulwark_changes',
        TG_TABLE_NAME || ' ' || coalesce(current_setting('bulwark.writer', true), ''));
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER upstreams_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON upstreams
    FOR EACH STATEMENT EXECUTE FUNCTION bulwark_notify_change();
CREATE TRIGGER projects_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON projects
    FOR EACH STATEMENT EXECUTE FUNCTION bulwark_notify_change();
CREATE TRIGGER api_keys_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON api_keys
    FOR EACH STATEMENT EXECUTE FUNCTION bulwark_notify_change();
-- Only a user's status decides whether their keys hold; logins do not count.
CREATE TRIGGER users_changed AFTER INSERT OR UPDATE OF status OR DELETE OR TRUNCATE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION bulwark_notify_change();
CREATE TRIGGER guardrail_pins_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON guardrail_pins
    FOR EACH STATEMENT EXECUTE FUNCTION bulwark_notify_change();
