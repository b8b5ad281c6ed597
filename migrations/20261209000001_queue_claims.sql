-- What every claimed task costs, and a plan that could stall a worker for seconds.
--
-- `idx_apalis_jobs_lock_by` indexes the worker holding a task. The attempt ledger
-- acknowledges a batch of tasks by id *and* holder (`a.id = f.task_id AND a.lock_by
-- = f.worker`); with its batch estimated at a few rows, the planner may probe this
-- index instead of the primary key, and each probe walks every entry the worker
-- ever left in it: the live tasks it holds and the dead versions of those it has
-- finished, which pile up until vacuum and, while another process holds a snapshot,
-- are never marked dead. With two worker processes one 1,000-task acknowledgement
-- took 17.5 s that way. Tasks are found by id; the few statements that look for a
-- worker's tasks (a dead worker's sweep, a shutdown's hand-back) scan the live
-- tasks instead, which a claimed-then-deleted queue keeps small.
DROP INDEX IF EXISTS apalis.idx_apalis_jobs_lock_by;

-- The key from a task to its holder: every claim checked it row by row (a lookup
-- and a share lock on the worker's row per task). Claims name the worker that is
-- claiming, registered before its first fetch; nothing deletes a worker that
-- holds tasks except `queue::remove`, which deletes its tasks first.
ALTER TABLE apalis.jobs DROP CONSTRAINT IF EXISTS fk_worker_lock_by;

-- Jobs without a barcode (most kinds) put a NULL placeholder in the trigram index
-- on every non-HOT update; barcode searches never look for NULL.
DROP INDEX IF EXISTS jobs_barcode_trgm_idx;
CREATE INDEX jobs_barcode_trgm_idx ON jobs USING gin (barcode gin_trgm_ops)
    WHERE barcode IS NOT NULL;

-- apalis's idempotency keys are unique per lane; no task of ours has one, yet
-- every task put an entry for its NULL key in this index when queued and again
-- when claimed. Only tasks with a key need one.
DROP INDEX IF EXISTS apalis.idx_jobs_idempotency_key;
CREATE UNIQUE INDEX idx_jobs_idempotency_key ON apalis.jobs (job_type, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
