-- How well do the filmed frames cover each product as it looks on real
-- shelves? For every product with confirmed real crops, by the serving
-- embedding model:
--   real_crops       confirmed crops of the product;
--   crops_scored     those with vectors of the serving model (match the rest);
--   mean_similarity  cosine similarity of its crops to the product's prototype;
--   mean_margin      per crop, that similarity minus the nearest other
--                    product's (below 0: the crop looks more like another
--                    product), averaged; worst_margin is the lowest;
--   recall_at_1      the share of its crops whose nearest filmed frame (of
--                    every product's frames) is one of its own;
--   confused         crops whose nearest filmed frame is another product's.
-- Worst covered first: the products to film again, or to collect more real
-- images of. The Coverage page and GET /api/coverage show these rows.
WITH model AS (
    SELECT id FROM embedding_models WHERE serving
),
scored AS (
    SELECT b.id AS box_id,
           b.product_id,
           1 - (m.embedding <=> pe.embedding) AS own_similarity,
           (SELECT max(s.similarity) FROM shelf_suggestions s
            WHERE s.box_id = b.id AND s.model_id = m.model_id
              AND s.product_id <> b.product_id) AS best_other,
           m.gallery_product_id IS NOT DISTINCT FROM b.product_id AS found
    FROM shelf_boxes b
    JOIN shelf_crop_matches m ON m.box_id = b.id AND m.model_id = (SELECT id FROM model)
    JOIN product_embeddings pe ON pe.product_id = b.product_id AND pe.model_id = m.model_id
    WHERE b.status = 'confirmed'
),
confirmed AS (
    SELECT product_id, count(*) AS real_crops
    FROM shelf_boxes WHERE status = 'confirmed'
    GROUP BY product_id
)
SELECT p.id AS product_id,
       p.barcode,
       p.product_name,
       p.brand_name,
       p.category,
       c.real_crops,
       count(s.box_id) AS crops_scored,
       avg(s.own_similarity)::float8 AS mean_similarity,
       avg(s.own_similarity - s.best_other)::float8 AS mean_margin,
       min(s.own_similarity - s.best_other)::float8 AS worst_margin,
       avg(s.found::int)::float8 AS recall_at_1,
       count(s.box_id) FILTER (WHERE NOT s.found) AS confused
FROM confirmed c
JOIN products p ON p.id = c.product_id
LEFT JOIN scored s ON s.product_id = c.product_id
GROUP BY p.id, c.real_crops
ORDER BY recall_at_1 ASC NULLS LAST, mean_margin ASC NULLS LAST, p.barcode;
