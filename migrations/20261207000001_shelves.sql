-- Real shelf photos from the field, with boxes around the products on them.
-- Each box is a real crop, kept in storage beside its photo. Matching embeds a
-- crop with the serving model and records the products and the filmed frame
-- nearest it; a person then confirms which product it is, or that the
-- directory lacks it. Confirmed crops are the field's view of a product:
-- coverage compares them with the product's filmed frames, and recognition
-- datasets can take them as real training and validation images.
CREATE TABLE shelf_images (
    id           integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The client's file name (only ever shown).
    file_name    text NOT NULL,
    -- The photo as uploaded, and upright (EXIF orientation applied) as the
    -- browser shows it: boxes are in the upright photo's pixels.
    original_key text NOT NULL,
    storage_key  text NOT NULL,
    -- Of the uploaded bytes: the same photo is not taken twice.
    sha256       text NOT NULL UNIQUE,
    width        integer NOT NULL CHECK (width > 0),
    height       integer NOT NULL CHECK (height > 0),
    store        text,
    aisle        text,
    taken_on     date,
    notes        text,
    uploaded_by  uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE shelf_boxes (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    image_id    integer NOT NULL REFERENCES shelf_images (id) ON DELETE CASCADE,
    x           integer NOT NULL CHECK (x >= 0),
    y           integer NOT NULL CHECK (y >= 0),
    width       integer NOT NULL CHECK (width > 0),
    height      integer NOT NULL CHECK (height > 0),
    -- drawn: in the browser or given through the API; imported: from a label
    -- file that came with the photo; proposed: by SAM 3.
    source      text NOT NULL CHECK (source IN ('drawn', 'imported', 'proposed')),
    -- The class name a label file gave the box (a barcode, when the labels
    -- come from one of our own exports), or the prompt SAM 3 found it with.
    label       text,
    -- The 518x518 crop (as the video job frames a product: its box with a
    -- margin, squared).
    crop_key    text NOT NULL,
    -- new: not matched yet; suggested: matched, waiting for a person;
    -- confirmed: it is product_id; absent: the directory does not have it.
    status      text NOT NULL DEFAULT 'new'
                CHECK (status IN ('new', 'suggested', 'confirmed', 'absent')),
    product_id  uuid REFERENCES products (id),
    -- Whether the confirmed product was the top suggestion, taken as is.
    took_top    boolean,
    reviewed_by uuid REFERENCES users (id) ON DELETE SET NULL,
    reviewed_at timestamptz,
    -- A skipped crop goes to the back of the review queue.
    skipped_at  timestamptz,
    -- Why a crop is back in review (the product it was confirmed as was deleted).
    note        text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK ((status = 'confirmed') = (product_id IS NOT NULL))
);

CREATE INDEX shelf_boxes_image_idx ON shelf_boxes (image_id, id);
CREATE INDEX shelf_boxes_product_idx ON shelf_boxes (product_id) WHERE product_id IS NOT NULL;
-- The review queue: unreviewed crops, skipped ones last.
CREATE INDEX shelf_boxes_review_idx ON shelf_boxes (skipped_at NULLS FIRST, id)
    WHERE status IN ('new', 'suggested');

-- One crop's vector of one model, with the filmed frame nearest it (of any
-- product): whether that frame is the crop's own product is recall@1 against
-- the synthetic gallery.
CREATE TABLE shelf_crop_matches (
    box_id             bigint NOT NULL REFERENCES shelf_boxes (id) ON DELETE CASCADE,
    model_id           integer NOT NULL REFERENCES embedding_models (id) ON DELETE CASCADE,
    embedding          vector NOT NULL,
    gallery_frame_id   bigint REFERENCES frames (id) ON DELETE SET NULL,
    gallery_product_id uuid REFERENCES products (id) ON DELETE SET NULL,
    gallery_similarity real,
    matched_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (box_id, model_id)
);

CREATE INDEX shelf_crop_matches_model_idx ON shelf_crop_matches (model_id);

-- A crop's nearest products by prototype, best first.
CREATE TABLE shelf_suggestions (
    box_id     bigint NOT NULL,
    model_id   integer NOT NULL,
    rank       smallint NOT NULL CHECK (rank >= 1),
    product_id uuid NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    similarity real NOT NULL,
    PRIMARY KEY (box_id, model_id, rank),
    FOREIGN KEY (box_id, model_id) REFERENCES shelf_crop_matches (box_id, model_id)
        ON DELETE CASCADE
);

-- A product deleted after crops were confirmed as it: the crops go back to
-- review and say why, rather than keep a label that points nowhere.
CREATE FUNCTION shelf_boxes_release_product() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE shelf_boxes b
    SET status = CASE WHEN EXISTS (SELECT 1 FROM shelf_crop_matches m WHERE m.box_id = b.id)
                      THEN 'suggested' ELSE 'new' END,
        product_id = NULL, took_top = NULL, reviewed_by = NULL, reviewed_at = NULL,
        note = format('It was confirmed as %s, which was deleted from the directory; '
                      'review it again.', OLD.barcode)
    WHERE b.product_id = OLD.id;
    RETURN OLD;
END
$$;

CREATE TRIGGER products_release_shelf_boxes BEFORE DELETE ON products
    FOR EACH ROW EXECUTE FUNCTION shelf_boxes_release_product();

-- Datasets take confirmed crops as images of their own kind.
ALTER TABLE dataset_items DROP CONSTRAINT dataset_items_kind_check;
ALTER TABLE dataset_items ADD CONSTRAINT dataset_items_kind_check
    CHECK (kind IN ('frame', 'augmented', 'composite', 'real'));
