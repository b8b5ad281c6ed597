-- Why jobs failed in the last 30 days: the most frequent errors per kind and
-- stage, with how many jobs hit each and the latest occurrence.
SELECT kind,
       coalesce(stage, '-') AS stage,
       error_message,
       count(*) AS jobs,
       max(completed_at) AS latest
FROM jobs
WHERE status = 'failed' AND completed_at >= now() - interval '30 days'
GROUP BY kind, stage, error_message
ORDER BY jobs DESC, latest DESC
LIMIT 50;
