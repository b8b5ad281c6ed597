-- Every change to a job, a job's event log or a product is announced on the
-- `buybuddy_events` channel in the same transaction, whoever makes it: the server
-- LISTENs and pushes the changes to browsers.
CREATE FUNCTION notify_job_change() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    changed jobs := CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
BEGIN
    PERFORM pg_notify('buybuddy_events', json_build_object(
        'topic', 'job', 'op', lower(TG_OP), 'id', changed.id, 'kind', changed.kind,
        'status', changed.status, 'progress', changed.progress, 'stage', changed.stage)::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER jobs_notify AFTER INSERT OR UPDATE OR DELETE ON jobs
    FOR EACH ROW EXECUTE FUNCTION notify_job_change();

CREATE FUNCTION notify_job_event() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('buybuddy_events', json_build_object(
        'topic', 'job_event', 'op', 'insert', 'id', NEW.id, 'job_id', NEW.job_id,
        'level', NEW.level, 'stage', NEW.stage)::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER job_events_notify AFTER INSERT ON job_events
    FOR EACH ROW EXECUTE FUNCTION notify_job_event();

CREATE FUNCTION notify_product_change() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    changed products := CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
BEGIN
    PERFORM pg_notify('buybuddy_events', json_build_object(
        'topic', 'product', 'op', lower(TG_OP), 'id', changed.id, 'barcode', changed.barcode,
        'status', changed.status)::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER products_notify AFTER INSERT OR UPDATE OR DELETE ON products
    FOR EACH ROW EXECUTE FUNCTION notify_product_change();
