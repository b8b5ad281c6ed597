-- Datasets: named selections of products with split and augmentation settings;
-- versions: immutable snapshots of which frames, in which split, drawn how,
-- rendered under the version's own storage prefix so that reprocessing a
-- product never changes a version; exports: archives of a version.

CREATE TABLE datasets (
    id          integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL UNIQUE CHECK (btrim(name) <> ''),
    task        text NOT NULL
                CHECK (task IN ('detect', 'detect_classes', 'segment', 'recognition')),
    -- {"statuses": [...], "categories": [...], "products": [uuid, ...]}
    selection   jsonb NOT NULL,
    -- plan settings: {"ratios": {...}, "seed", "copies", "composites", "per_composite"}
    settings    jsonb NOT NULL,
    -- augmentation and shelf settings: {"augment": {...}, "shelf": {...}}
    render      jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TRIGGER datasets_updated_at BEFORE UPDATE ON datasets
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Uploaded background images, shared by every dataset's background swap.
CREATE TABLE dataset_backgrounds (
    id          integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL,
    storage_key text NOT NULL UNIQUE,
    width       integer NOT NULL CHECK (width >= 64),
    height      integer NOT NULL CHECK (height >= 64),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE dataset_versions (
    id          integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dataset_id  integer NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
    number      integer NOT NULL CHECK (number > 0),
    task        text NOT NULL,
    -- 'by_product' or 'frame_blocks'
    rule        text NOT NULL,
    -- The dataset's selection, settings and render settings as they were, and
    -- the background keys the version draws on.
    config      jsonb NOT NULL,
    -- Class names in order (index = class id - 1 in COCO, = class id in YOLO),
    -- with the products they stand for: [{"name", "product_id", "label"}].
    classes     jsonb NOT NULL,
    guard_frames integer NOT NULL DEFAULT 0,
    -- The render job.
    job_id      uuid REFERENCES jobs (id),
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (dataset_id, number)
);

-- One image of a version. Sources are snapshotted (frame ids and the storage
-- keys they had); objects are filled when the image is rendered.
CREATE TABLE dataset_items (
    version_id  integer NOT NULL REFERENCES dataset_versions (id) ON DELETE CASCADE,
    ordinal     integer NOT NULL CHECK (ordinal >= 0),
    split       text NOT NULL CHECK (split IN ('train', 'val', 'test')),
    kind        text NOT NULL CHECK (kind IN ('frame', 'augmented', 'composite')),
    seed        bigint NOT NULL,
    -- [{"frame_id", "product_id", "class", "image", "mask"}]
    sources     jsonb NOT NULL,
    image_key   text NOT NULL,
    width       integer,
    height      integer,
    -- [{"class", "bbox": {"x","y","w","h"}, "area", "polygons": [[[x, y], ...]]}]
    objects     jsonb,
    rendered_at timestamptz,
    PRIMARY KEY (version_id, ordinal)
);

-- What the render job still has to do.
CREATE INDEX dataset_items_unrendered_idx ON dataset_items (version_id, ordinal)
    WHERE rendered_at IS NULL;

CREATE TABLE dataset_exports (
    id          integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    version_id  integer NOT NULL REFERENCES dataset_versions (id) ON DELETE CASCADE,
    format      text NOT NULL CHECK (format IN ('coco', 'yolo', 'folder')),
    job_id      uuid REFERENCES jobs (id),
    -- Set together when the archive is in storage, and only then.
    storage_key text,
    size        bigint,
    sha256      text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    ready_at    timestamptz,
    CHECK ((storage_key IS NULL) = (ready_at IS NULL))
);

CREATE INDEX dataset_exports_version_idx ON dataset_exports (version_id, created_at DESC);
