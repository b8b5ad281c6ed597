-- What every dataset version holds per split: products, frames as filmed,
-- augmented draws, shelf composites, real shelf crops, images, rendered images and labelled
-- boxes, and how many of the split's products also appear in another split
-- of the same version (always 0 for versions split by product: a non-zero
-- figure there is a leak).
WITH per_product AS (
    SELECT i.version_id, i.split, s ->> 'product_id' AS product_id
    FROM dataset_items i, jsonb_array_elements(i.sources) s
    GROUP BY 1, 2, 3
),
shared AS (
    SELECT a.version_id, a.split, count(*) AS products_in_other_splits
    FROM per_product a
    WHERE EXISTS (
        SELECT 1 FROM per_product b
        WHERE b.version_id = a.version_id AND b.product_id = a.product_id AND b.split <> a.split
    )
    GROUP BY 1, 2
)
SELECT d.name AS dataset,
       v.number AS version,
       v.rule,
       i.split,
       (SELECT count(*) FROM per_product p WHERE p.version_id = v.id AND p.split = i.split) AS products,
       count(*) FILTER (WHERE i.kind = 'frame') AS frames,
       count(*) FILTER (WHERE i.kind = 'augmented') AS augmented,
       count(*) FILTER (WHERE i.kind = 'composite') AS composites,
       count(*) FILTER (WHERE i.kind = 'real') AS real_crops,
       count(*) AS images,
       count(*) FILTER (WHERE i.rendered_at IS NOT NULL) AS rendered,
       coalesce(sum(jsonb_array_length(i.objects)), 0)::bigint AS boxes,
       coalesce(max(sh.products_in_other_splits), 0) AS products_in_other_splits
FROM dataset_items i
JOIN dataset_versions v ON v.id = i.version_id
JOIN datasets d ON d.id = v.dataset_id
LEFT JOIN shared sh ON sh.version_id = v.id AND sh.split = i.split
GROUP BY d.name, v.id, v.number, v.rule, i.split
ORDER BY d.name, v.number, array_position(ARRAY['train', 'val', 'test'], i.split);
