-- Embeddings: the models that made vectors, one vector per frame and one
-- prototype per product for each model. Vectors of two models never mix: every
-- search names its model, and each model has its own HNSW indexes (partial
-- expression indexes at its dimension, created when the model is registered,
-- see src/db/embeddings.rs), as models differ in dimension.
CREATE TABLE embedding_models (
    id           integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- classic: the CPU descriptor; dinov2: a DINOv2 folder.
    kind         text NOT NULL CHECK (kind IN ('classic', 'dinov2')),
    name         text NOT NULL CHECK (name <> ''),
    dims         integer NOT NULL CHECK (dims BETWEEN 1 AND 2000),
    config       jsonb NOT NULL DEFAULT '{}',
    weights_hash text NOT NULL,
    -- New vectors are made with the active model.
    active       boolean NOT NULL DEFAULT false,
    -- Searches answer from the serving model: the active one once every
    -- product has its vectors, until then the one before.
    serving      boolean NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (kind, name, weights_hash)
);

CREATE UNIQUE INDEX embedding_models_one_active ON embedding_models (active) WHERE active;
CREATE UNIQUE INDEX embedding_models_one_serving ON embedding_models (serving) WHERE serving;

CREATE TABLE frame_embeddings (
    model_id   integer NOT NULL REFERENCES embedding_models (id) ON DELETE CASCADE,
    frame_id   bigint NOT NULL REFERENCES frames (id) ON DELETE CASCADE,
    product_id uuid NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    embedding  vector NOT NULL,
    PRIMARY KEY (model_id, frame_id)
);

CREATE INDEX frame_embeddings_product_idx ON frame_embeddings (model_id, product_id);

CREATE TABLE product_embeddings (
    model_id    integer NOT NULL REFERENCES embedding_models (id) ON DELETE CASCADE,
    product_id  uuid NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    -- The mean of the product's frame vectors, re-normalised.
    embedding   vector NOT NULL,
    frame_count integer NOT NULL CHECK (frame_count > 0),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (model_id, product_id)
);

CREATE INDEX product_embeddings_product_idx ON product_embeddings (product_id);
