-- How often does matching find the product a crop's label names? For crops
-- imported with a label that is a directory barcode (labels from our own
-- exports, from `buybuddy shelf sample`, or from a labelling tool that names
-- products by barcode), per embedding model that matched them: how many
-- crops, recall@1 and recall@5 of the suggestions (the nearest products by
-- prototype), and recall@1 against the filmed gallery (the nearest frame of
-- any product is one of the labelled product's). Compare models on the same
-- crops: match again after a new model serves, and both rows are here.
SELECT m.id AS model_id,
       m.name AS model,
       m.kind,
       count(*) AS crops,
       avg((top.product_id = p.id)::int)::float8 AS recall_at_1,
       avg((EXISTS (SELECT 1 FROM shelf_suggestions s
                    WHERE s.box_id = b.id AND s.model_id = c.model_id
                      AND s.product_id = p.id AND s.rank <= 5))::int)::float8 AS recall_at_5,
       avg((c.gallery_product_id IS NOT DISTINCT FROM p.id)::int)::float8 AS gallery_recall_at_1
FROM shelf_boxes b
JOIN products p ON p.barcode = b.label
JOIN shelf_crop_matches c ON c.box_id = b.id
JOIN embedding_models m ON m.id = c.model_id
LEFT JOIN shelf_suggestions top ON top.box_id = b.id AND top.model_id = c.model_id AND top.rank = 1
GROUP BY m.id, m.name, m.kind
ORDER BY m.id;
