-- Each job kind now has its own lane in a queue: the apalis queue `{queue}:{kind}`
-- (see src/queue/mod.rs), so that a worker can take only some kinds. Tasks queued
-- before lanes existed move to their kind's lane; workers fetch nothing else.
-- `apalis.jobs.job` holds the queued job as JSON bytes (`{"job_id", "kind", ...}`).
UPDATE apalis.jobs
SET job_type = job_type || ':' || (convert_from(job, 'UTF8')::jsonb ->> 'kind')
WHERE position(':' IN job_type) = 0
  AND convert_from(job, 'UTF8')::jsonb ->> 'kind' IS NOT NULL;
