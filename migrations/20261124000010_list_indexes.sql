-- The list pages order by (created_at, id) and page by that pair: with both in
-- the index, a page is read straight from it with no sort, and the "before"
-- condition of a later page is an index condition.
DROP INDEX products_created_idx;
DROP INDEX products_status_created_idx;
CREATE INDEX products_created_idx ON products (created_at DESC, id DESC);
CREATE INDEX products_status_created_idx ON products (status, created_at DESC, id DESC);
-- The dashboard's latest products.
CREATE INDEX products_updated_idx ON products (updated_at DESC);

DROP INDEX jobs_created_idx;
DROP INDEX jobs_status_created_idx;
CREATE INDEX jobs_created_idx ON jobs (created_at DESC, id DESC);
CREATE INDEX jobs_status_created_idx ON jobs (status, created_at DESC, id DESC);
