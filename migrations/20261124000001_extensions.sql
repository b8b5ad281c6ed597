-- Extensions the platform relies on, and helpers shared by later migrations.
CREATE EXTENSION IF NOT EXISTS vector;   -- embeddings (pgvector)
CREATE EXTENSION IF NOT EXISTS pg_trgm;  -- substring search on names and barcodes

-- Keeps `updated_at` current on every UPDATE, whoever writes the row.
CREATE FUNCTION set_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$$;
