-- The product directory: one row per barcode, reviewed by people.
CREATE TABLE products (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    barcode          text NOT NULL UNIQUE CHECK (barcode <> ''),
    video_id         integer,
    brand_name       text,
    sub_brand        text,
    product_name     text,
    variant_flavor   text,
    category         text,
    container_type   text,
    net_quantity     text,
    nutrition_facts  jsonb,
    claims           text[],
    grounding_prompt text,
    visibility_score integer CHECK (visibility_score BETWEEN 0 AND 100),
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'processing', 'needs_review', 'approved', 'rejected')),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TRIGGER products_updated_at BEFORE UPDATE ON products
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- List pages: newest first, optionally filtered by status.
CREATE INDEX products_created_idx ON products (created_at DESC);
CREATE INDEX products_status_created_idx ON products (status, created_at DESC);
-- Search by part of a name or a barcode.
CREATE INDEX products_name_trgm_idx ON products USING gin (product_name gin_trgm_ops);
CREATE INDEX products_barcode_trgm_idx ON products USING gin (barcode gin_trgm_ops);
