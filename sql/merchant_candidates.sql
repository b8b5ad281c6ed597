-- The candidates of the merchant lines waiting for suggestions (the next 500,
-- oldest first), and what matching compares of each pair: the products whose
-- barcode is the line's (GTIN-normalised), and the 10 whose normalised names
-- are nearest the line's by trigram distance (through the GiST index on
-- products.match_name; a line whose barcode finds a product with a name like
-- its own needs no search by name), each with the signals of merchant_pair() (barcode
-- and its check digit, name similarity and shared words, brand, size, image
-- against the serving model). The suggestion job runs this, adds the
-- products nearest each line's image from the vector index, and weighs the
-- signals into a score (src/actions/merchants/score.rs). Run by hand, it
-- shows what the next suggestions will be made of.
WITH waiting AS (
    SELECT id, barcode_key, match_name
    FROM merchant_lines
    WHERE suggested_at IS NULL AND removed_at IS NULL
    ORDER BY id
    LIMIT 500
),
found AS (
    SELECT w.id AS line_id, p.id AS product_id, 'barcode' AS found_by
    FROM waiting w
    JOIN products p ON p.barcode_key = w.barcode_key
    UNION ALL
    SELECT w.id, near.id, 'name'
    FROM waiting w
    CROSS JOIN LATERAL (
        SELECT p.id
        FROM products p
        WHERE w.match_name <> ''
        ORDER BY p.match_name <-> w.match_name
        LIMIT 10
    ) near
    WHERE NOT EXISTS (
        SELECT 1 FROM products b
        WHERE b.barcode_key = w.barcode_key AND similarity(b.match_name, w.match_name) >= 0.5
    )
),
candidates AS (
    SELECT line_id, product_id, string_agg(found_by, ',' ORDER BY found_by) AS found_by
    FROM found
    GROUP BY line_id, product_id
),
-- A column rather than a subquery in merchant_pair's arguments, so that the
-- planner inlines the function.
model AS (
    SELECT (SELECT id FROM embedding_models WHERE serving) AS id
)
SELECT c.line_id, c.product_id, c.found_by, s.*
FROM candidates c
CROSS JOIN model
CROSS JOIN LATERAL merchant_pair(c.line_id, c.product_id, model.id) s
ORDER BY c.line_id, c.product_id;
