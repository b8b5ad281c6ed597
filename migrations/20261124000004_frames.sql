-- The 518x518 training images of a product, one row per sampled video frame.
CREATE TABLE frames (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    product_id  uuid NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    job_id      uuid NOT NULL REFERENCES jobs (id),
    frame_index integer NOT NULL CHECK (frame_index >= 0),
    storage_key text NOT NULL,
    mask_key    text,
    width       integer NOT NULL CHECK (width > 0),
    height      integer NOT NULL CHECK (height > 0),
    -- The product's mask in the source frame: area in pixels and bounding box.
    mask_area   integer CHECK (mask_area >= 0),
    bbox_x      integer,
    bbox_y      integer,
    bbox_w      integer,
    bbox_h      integer,
    -- Per-frame quality figures (sharpness, exposure, ...), added to as the pipeline learns.
    quality     jsonb NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (job_id, frame_index)
);

CREATE INDEX frames_product_idx ON frames (product_id, frame_index);
