-- What waits for a reviewer: products that need review, oldest first, with how
-- long they have waited and how many frames they have (ties in barcode order).
SELECT p.barcode,
       p.brand_name,
       p.product_name,
       p.category,
       now() - p.updated_at AS waiting,
       (SELECT count(*) FROM frames f WHERE f.product_id = p.id) AS frames
FROM products p
WHERE p.status = 'needs_review'
ORDER BY p.updated_at, p.barcode
LIMIT 200;
