-- The line that says a job completed is now read from the job row (its attempt,
-- worker, start and end) instead of being stored as an event. The stored lines
-- of jobs that completed say the same and would show twice.
DELETE FROM job_events e
USING jobs j
WHERE e.job_id = j.id AND j.status = 'completed'
  AND e.message ~ '^Attempt [0-9]+ of [0-9]+( on .+)? completed in [0-9.]+ m?s$';
