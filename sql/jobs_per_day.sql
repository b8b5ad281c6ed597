-- How many jobs finished per day and kind over the last 30 days, how many of
-- them failed, and how long the completed ones took (median and 95th percentile).
SELECT date_trunc('day', completed_at)::date AS day,
       kind,
       count(*) FILTER (WHERE status = 'completed') AS completed,
       count(*) FILTER (WHERE status = 'failed') AS failed,
       count(*) FILTER (WHERE status = 'cancelled') AS cancelled,
       round((percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM completed_at - started_at))
              FILTER (WHERE status = 'completed'))::numeric, 2) AS median_s,
       round((percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM completed_at - started_at))
              FILTER (WHERE status = 'completed'))::numeric, 2) AS p95_s
FROM jobs
WHERE completed_at >= now() - interval '30 days'
GROUP BY 1, 2
ORDER BY 1 DESC, 2;
