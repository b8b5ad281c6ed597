-- Every change to a job, a job's event log or a product is announced on the
-- `buybuddy_events` channel in the same transaction, whoever makes it: the server
-- LISTENs and pushes the changes to browsers. One notification per changed row,
-- sent by statement-level triggers so that batch writes pay one function call.
CREATE FUNCTION notify_job_changes() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('buybuddy_events', json_build_object(
        'topic', 'job', 'op', lower(TG_OP), 'id', c.id, 'kind', c.kind,
        'status', c.status, 'progress', c.progress, 'stage', c.stage)::text)
    FROM changed c;
    RETURN NULL;
END
$$;

CREATE TRIGGER jobs_notify_insert AFTER INSERT ON jobs
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION notify_job_changes();
CREATE TRIGGER jobs_notify_update AFTER UPDATE ON jobs
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION notify_job_changes();
CREATE TRIGGER jobs_notify_delete AFTER DELETE ON jobs
    REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION notify_job_changes();

CREATE FUNCTION notify_job_events() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('buybuddy_events', json_build_object(
        'topic', 'job_event', 'op', 'insert', 'id', e.id, 'job_id', e.job_id,
        'level', e.level, 'stage', e.stage)::text)
    FROM added e;
    RETURN NULL;
END
$$;

CREATE TRIGGER job_events_notify AFTER INSERT ON job_events
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION notify_job_events();

CREATE FUNCTION notify_product_changes() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('buybuddy_events', json_build_object(
        'topic', 'product', 'op', lower(TG_OP), 'id', c.id, 'barcode', c.barcode,
        'status', c.status)::text)
    FROM changed c;
    RETURN NULL;
END
$$;

CREATE TRIGGER products_notify_insert AFTER INSERT ON products
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION notify_product_changes();
CREATE TRIGGER products_notify_update AFTER UPDATE ON products
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION notify_product_changes();
CREATE TRIGGER products_notify_delete AFTER DELETE ON products
    REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION notify_product_changes();
