-- How far each merchant's list is: its lines (those the last import removed
-- aside), how many are assigned, not in the directory, undecided, waiting
-- for suggestions, with an image that could not be fetched; how many
-- products two or more of its lines are assigned to (conflicts); and of the
-- assigned lines, the share that took the top suggestion as it was and the
-- share assigned in bulk (exact barcode matches).
WITH current AS (
    SELECT l.merchant_id, l.id, l.suggested_at, l.image_state,
           CASE WHEN a.status = 'cleared' THEN NULL ELSE a.status END AS status,
           a.product_id, a.suggested, a.via
    FROM merchant_lines l
    LEFT JOIN merchant_assignments a ON a.id = l.assignment_id
    WHERE l.removed_at IS NULL
),
conflicts AS (
    SELECT merchant_id, count(*) AS products
    FROM (SELECT merchant_id, product_id FROM current
          WHERE status = 'assigned'
          GROUP BY merchant_id, product_id HAVING count(*) > 1) shared
    GROUP BY merchant_id
)
SELECT m.code,
       m.name,
       count(c.id) AS lines,
       count(*) FILTER (WHERE c.status = 'assigned') AS assigned,
       count(*) FILTER (WHERE c.status = 'absent') AS absent,
       count(c.id) FILTER (WHERE c.status IS NULL) AS undecided,
       count(c.id) FILTER (WHERE c.suggested_at IS NULL) AS waiting,
       count(*) FILTER (WHERE c.image_state = 'failed') AS images_failed,
       coalesce(max(k.products), 0) AS conflicts,
       avg(c.suggested::int) FILTER (WHERE c.status = 'assigned')::float8 AS took_top_suggestion,
       avg((c.via = 'bulk')::int) FILTER (WHERE c.status = 'assigned')::float8 AS bulk
FROM merchants m
LEFT JOIN current c ON c.merchant_id = m.id
LEFT JOIN conflicts k ON k.merchant_id = m.id
GROUP BY m.id, m.code, m.name
ORDER BY m.code;
