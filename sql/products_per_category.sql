-- How the directory is made up: products per category and review status.
SELECT coalesce(category, '(none)') AS category,
       count(*) AS products,
       count(*) FILTER (WHERE status = 'approved') AS approved,
       count(*) FILTER (WHERE status = 'needs_review') AS needs_review,
       count(*) FILTER (WHERE status = 'rejected') AS rejected
FROM products
GROUP BY 1
ORDER BY products DESC, category;
