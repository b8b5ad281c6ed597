-- What the pages need beyond the pipeline's own columns: the link between a
-- failed job and its retry, substring search on job barcodes, and the outcome
-- of a product's review.
ALTER TABLE jobs ADD COLUMN retry_of uuid REFERENCES jobs ON DELETE SET NULL;
CREATE INDEX jobs_retry_of_idx ON jobs (retry_of) WHERE retry_of IS NOT NULL;
CREATE INDEX jobs_barcode_trgm_idx ON jobs USING gin (barcode gin_trgm_ops);

ALTER TABLE products
    ADD COLUMN review_note text,
    ADD COLUMN reviewed_at timestamptz,
    ADD COLUMN reviewed_by text;
CREATE INDEX jobs_completed_idx ON jobs (completed_at) WHERE completed_at IS NOT NULL;
