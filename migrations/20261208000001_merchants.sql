-- Merchants and their product lists: each line of a merchant's list is to be
-- assigned to a product of the directory, or marked as not there. Imports
-- update lines by the merchant's SKU; suggestions come from barcodes, names
-- and images; every decision is kept (the line points at its newest one).

-- The comparable form of a barcode: digits without their leading zeros (so
-- an EAN-13 and the same UPC-A, or a GTIN-14 with a zero indicator, compare
-- equal), or the upper-cased code when it is not all digits; NULL when empty.
CREATE FUNCTION barcode_key(code text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN c = '' THEN NULL
        WHEN c ~ '^[0-9]+$' THEN coalesce(nullif(ltrim(c, '0'), ''), '0')
        ELSE upper(c)
    END
    FROM (SELECT regexp_replace(coalesce(code, ''), '[\s-]', '', 'g') AS c) t
$$;

-- Whether a barcode is a GTIN (8, 12, 13 or 14 digits) whose GS1 check digit
-- holds: from the right, the digits before the check digit weigh 3, 1, 3, ...
CREATE FUNCTION gtin_valid(code text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT c ~ '^[0-9]+$' AND length(c) IN (8, 12, 13, 14)
       AND (10 - (SELECT sum(substr(c, length(c) - i, 1)::int * CASE WHEN i % 2 = 1 THEN 3 ELSE 1 END)
                  FROM generate_series(1, length(c) - 1) i) % 10) % 10
           = substr(c, length(c), 1)::int
    FROM (SELECT regexp_replace(coalesce(code, ''), '[\s-]', '', 'g') AS c) t
$$;

-- A product name as matching compares it: lower case, accents and
-- punctuation gone, and sizes spelled one way (`500 ml`, `0.5L`, `50cl` and
-- `500ML` all become `500ml`; `1 kg`, `1000 gr` become `1000g`).
CREATE FUNCTION normalize_name(name text) RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    t text := lower(coalesce(name, ''));
    m text[];
    amount numeric;
    unit text;
    canonical text;
BEGIN
    t := translate(t, 'áàâäãåçéèêëíìîïıñóòôöõøşúùûüğýÿ', 'aaaaaaceeeeiiiiinoooooosuuuugyy');
    -- Decimal commas between digits become points before punctuation goes.
    t := regexp_replace(t, '([0-9]),([0-9])', '\1.\2', 'g');
    t := regexp_replace(t, '[^a-z0-9.]+', ' ', 'g');
    t := regexp_replace(t, '(^|\s)\.+|\.+(\s|$)', ' ', 'g');
    FOR m IN SELECT regexp_matches(t, '([0-9]+(?:\.[0-9]+)?)\s*(ml|millilitre|milliliter|cl|dl|lt|ltr|litre|liter|l|kg|kgs|gr|grs|g|gram|grams|mg)(?![a-z])', 'g')
    LOOP
        amount := m[1]::numeric;
        unit := m[2];
        canonical := CASE
            WHEN unit IN ('ml', 'millilitre', 'milliliter') THEN trim_scale(amount) || 'ml'
            WHEN unit = 'cl' THEN trim_scale(amount * 10) || 'ml'
            WHEN unit = 'dl' THEN trim_scale(amount * 100) || 'ml'
            WHEN unit IN ('l', 'lt', 'ltr', 'litre', 'liter') THEN trim_scale(amount * 1000) || 'ml'
            WHEN unit IN ('kg', 'kgs') THEN trim_scale(amount * 1000) || 'g'
            WHEN unit = 'mg' THEN trim_scale(amount / 1000) || 'g'
            ELSE trim_scale(amount) || 'g'
        END;
        t := regexp_replace(t, '(^|\s)' || replace(m[1], '.', '\.') || '\s*' || m[2] || '(?![a-z])', '\1' || canonical);
    END LOOP;
    RETURN btrim(regexp_replace(t, '\s+', ' ', 'g'));
END
$$;

-- The first size a text names, as `normalize_name` spells it (`500ml`, `1000g`).
CREATE FUNCTION quantity_key(text text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (regexp_match(normalize_name(text), '(^|\s)([0-9]+(?:\.[0-9]+)?(?:ml|g))(\s|$)'))[2]
$$;

-- What matching compares of each directory product, kept beside it.
ALTER TABLE products
    ADD COLUMN barcode_key text GENERATED ALWAYS AS (barcode_key(barcode)) STORED,
    ADD COLUMN match_name text GENERATED ALWAYS AS (normalize_name(
        coalesce(brand_name, '') || ' ' || coalesce(sub_brand, '') || ' ' ||
        coalesce(product_name, '') || ' ' || coalesce(variant_flavor, '') || ' ' ||
        coalesce(net_quantity, ''))) STORED,
    ADD COLUMN quantity_key text GENERATED ALWAYS AS (quantity_key(
        coalesce(net_quantity, '') || ' ' || coalesce(product_name, ''))) STORED,
    ADD COLUMN brand_key text GENERATED ALWAYS AS (nullif(normalize_name(brand_name), '')) STORED;

CREATE INDEX products_barcode_key_idx ON products (barcode_key);
-- Nearest names by trigram distance (`<->`), for suggestions. A longer
-- signature than the default 12 bytes tells names apart in the index itself
-- (three times faster nearest-name searches on 20,000 products).
CREATE INDEX products_match_name_trgm_idx ON products
    USING gist (match_name gist_trgm_ops (siglen = 128));

CREATE TABLE merchants (
    id         integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code       text NOT NULL UNIQUE CHECK (code ~ '^[A-Za-z0-9._-]{1,40}$'),
    name       text NOT NULL CHECK (btrim(name) <> ''),
    -- The column mapping of the last import, offered again for the next:
    -- {"sku": "Item code", "name": "Description", ...}.
    mapping    jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE merchant_imports (
    id          integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    merchant_id integer NOT NULL REFERENCES merchants (id) ON DELETE CASCADE,
    file_name   text NOT NULL,
    encoding    text NOT NULL,
    delimiter   text NOT NULL,
    mapping     jsonb NOT NULL,
    -- Lines read (data rows), and what the import did with them.
    rows        integer NOT NULL,
    added       integer NOT NULL,
    changed     integer NOT NULL,
    unchanged   integer NOT NULL,
    removed     integer NOT NULL,
    -- The lines left out: [{"line", "sku", "reason"}].
    skipped     jsonb NOT NULL DEFAULT '[]',
    imported_by uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE merchant_lines (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    merchant_id   integer NOT NULL REFERENCES merchants (id) ON DELETE CASCADE,
    sku           text NOT NULL CHECK (sku <> ''),
    name          text,
    brand         text,
    size          text,
    barcode       text,
    image_url     text,
    price         numeric,
    -- The columns no field takes, by their header.
    extra         jsonb NOT NULL DEFAULT '{}',
    barcode_key   text GENERATED ALWAYS AS (barcode_key(barcode)) STORED,
    match_name    text GENERATED ALWAYS AS (normalize_name(
        coalesce(brand, '') || ' ' || coalesce(name, '') || ' ' || coalesce(size, ''))) STORED,
    quantity_key  text GENERATED ALWAYS AS (quantity_key(
        coalesce(size, '') || ' ' || coalesce(name, ''))) STORED,
    brand_key     text GENERATED ALWAYS AS (nullif(normalize_name(brand), '')) STORED,
    -- The line's image, fetched by a job: none, queued, stored or failed.
    image_state   text NOT NULL DEFAULT 'none'
                  CHECK (image_state IN ('none', 'queued', 'stored', 'failed')),
    image_key     text,
    image_error   text,
    -- Set when the newest import no longer has the SKU (the line and its
    -- history stay; it is left out of review).
    removed_at    timestamptz,
    -- When suggestions were last made for the line (NULL: waiting).
    suggested_at  timestamptz,
    -- A skipped line goes to the back of the review queue.
    skipped_at    timestamptz,
    -- The newest decision about the line.
    assignment_id bigint,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (merchant_id, sku)
);

CREATE TRIGGER merchant_lines_updated_at BEFORE UPDATE ON merchant_lines
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE INDEX merchant_lines_waiting_idx ON merchant_lines (id) WHERE suggested_at IS NULL;
CREATE INDEX merchant_lines_merchant_idx ON merchant_lines (merchant_id, id);

-- A line's image vector of one model.
CREATE TABLE merchant_line_embeddings (
    line_id   bigint NOT NULL REFERENCES merchant_lines (id) ON DELETE CASCADE,
    model_id  integer NOT NULL REFERENCES embedding_models (id) ON DELETE CASCADE,
    embedding vector NOT NULL,
    PRIMARY KEY (line_id, model_id)
);

-- What matching compares of a line and a product, for the suggestion job and
-- sql/merchant_candidates.sql (src/actions/merchants/score.rs weighs it):
-- barcodes (GTIN-normalised) and whether the line's check digit holds, the
-- trigram similarity and the shared words of the normalised names, brand and
-- size agreement, and the similarity of the line's image to the product's
-- prototype by `model`. NULL where one side lacks what is compared.
CREATE FUNCTION merchant_pair(line bigint, product uuid, model integer)
RETURNS TABLE (
    barcode_match boolean,
    barcode_valid boolean,
    name_similarity real,
    word_overlap real,
    brand_agrees boolean,
    quantity_agrees boolean,
    image_similarity real
)
LANGUAGE sql STABLE AS $$
    SELECT
        CASE WHEN l.barcode_key IS NULL OR p.barcode_key IS NULL THEN NULL
             ELSE l.barcode_key = p.barcode_key END,
        CASE WHEN l.barcode IS NULL THEN NULL ELSE gtin_valid(l.barcode) END,
        CASE WHEN l.match_name = '' OR p.match_name = '' THEN NULL
             ELSE similarity(l.match_name, p.match_name) END,
        CASE WHEN l.match_name = '' OR p.match_name = '' THEN NULL
             ELSE (SELECT count(*) FROM (SELECT unnest(string_to_array(l.match_name, ' '))
                                         INTERSECT
                                         SELECT unnest(string_to_array(p.match_name, ' '))) shared)::real
                  / (SELECT count(*) FROM (SELECT unnest(string_to_array(l.match_name, ' '))
                                           UNION
                                           SELECT unnest(string_to_array(p.match_name, ' '))) every)
        END,
        -- A brand given on both sides must agree; a line without one agrees
        -- when the product's brand is in its name, and says nothing otherwise.
        CASE WHEN p.brand_key IS NULL THEN NULL
             WHEN l.brand_key IS NOT NULL
                 THEN l.brand_key = p.brand_key
                      OR position(l.brand_key IN p.brand_key) = 1
                      OR position(p.brand_key IN l.brand_key) = 1
             WHEN position(p.brand_key IN l.match_name) > 0 THEN true
        END,
        CASE WHEN l.quantity_key IS NULL OR p.quantity_key IS NULL THEN NULL
             ELSE l.quantity_key = p.quantity_key END,
        (SELECT (1 - (e.embedding <=> pe.embedding))::real
         FROM merchant_line_embeddings e
         JOIN product_embeddings pe ON pe.model_id = e.model_id AND pe.product_id = p.id
         WHERE e.line_id = l.id AND e.model_id = model)
    FROM merchant_lines l, products p
    WHERE l.id = line AND p.id = product
$$;

-- A line's candidates, best first, with the parts of their score:
-- {"barcode": ..., "name": ..., "words": ..., "brand": ..., "quantity": ..., "image": ...}.
CREATE TABLE merchant_suggestions (
    line_id    bigint NOT NULL REFERENCES merchant_lines (id) ON DELETE CASCADE,
    rank       smallint NOT NULL CHECK (rank >= 1),
    product_id uuid NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    score      real NOT NULL,
    parts      jsonb NOT NULL,
    -- The barcodes are the same and the names agree: what "accept every
    -- exact barcode match" takes.
    exact      boolean NOT NULL DEFAULT false,
    PRIMARY KEY (line_id, rank)
);

CREATE INDEX merchant_suggestions_product_idx ON merchant_suggestions (product_id);

-- Every decision about a line, never overwritten: assigned to a product, not
-- in the directory, or cleared (back to undecided).
CREATE TABLE merchant_assignments (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    line_id     bigint NOT NULL REFERENCES merchant_lines (id) ON DELETE CASCADE,
    status      text NOT NULL CHECK (status IN ('assigned', 'absent', 'cleared')),
    -- The product as it was: a product deleted later leaves its barcode here.
    product_id  uuid REFERENCES products (id) ON DELETE SET NULL,
    barcode     text,
    -- Whether it was the top suggestion taken as it was, with its score.
    suggested   boolean NOT NULL DEFAULT false,
    score       real,
    -- bulk: the "accept every exact barcode match" action.
    via         text NOT NULL DEFAULT 'review' CHECK (via IN ('review', 'bulk', 'api', 'cli')),
    decided_by  uuid REFERENCES users (id) ON DELETE SET NULL,
    decided_at  timestamptz NOT NULL DEFAULT now(),
    CHECK ((status = 'assigned') = (barcode IS NOT NULL))
);

CREATE INDEX merchant_assignments_line_idx ON merchant_assignments (line_id, id DESC);

ALTER TABLE merchant_lines ADD CONSTRAINT merchant_lines_assignment_fk
    FOREIGN KEY (assignment_id) REFERENCES merchant_assignments (id) ON DELETE SET NULL;
