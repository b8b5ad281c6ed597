-- The Buybuddy catalog as last synced: products filmed in the field, with their
-- videos. `buybuddy sync` upserts it; the video job reads the catalog name as a
-- hint; a product is "unprocessed" while it has neither a product row nor a
-- completed job.
CREATE TABLE catalog_products (
    barcode        text PRIMARY KEY CHECK (barcode <> ''),
    name           text,
    video_url      text NOT NULL,
    video_id       bigint,
    -- What the catalog itself says, which may lag behind this platform.
    processed      boolean NOT NULL DEFAULT false,
    -- The item as the API sent it.
    raw            jsonb NOT NULL DEFAULT '{}',
    first_seen_at  timestamptz NOT NULL DEFAULT now(),
    synced_at      timestamptz NOT NULL DEFAULT now(),
    -- When a sync last found something different (the sync alone writes here).
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX catalog_products_name_trgm_idx ON catalog_products USING gin (name gin_trgm_ops);

