-- Is the queue keeping up? Per queue: tasks waiting (now, and scheduled for a
-- retry later), tasks claimed by workers, the age of the oldest waiting task,
-- and workers seen in the last minute.
SELECT q.job_type AS queue,
       count(*) FILTER (WHERE q.status = 'Pending' AND q.run_at <= now()) AS waiting,
       count(*) FILTER (WHERE q.status IN ('Pending', 'Failed') AND q.attempts < q.max_attempts
                          AND q.run_at > now()) AS scheduled_retries,
       count(*) FILTER (WHERE q.status IN ('Queued', 'Running')) AS claimed,
       max(now() - q.run_at) FILTER (WHERE q.status = 'Pending' AND q.run_at <= now()) AS oldest_waiting,
       (SELECT count(*) FROM apalis.workers w
         WHERE w.worker_type = q.job_type AND w.last_seen > now() - interval '1 minute') AS live_workers
FROM apalis.jobs q
GROUP BY q.job_type
ORDER BY q.job_type;
