-- Training runs: metric learning on a dataset version's recognition split, as
-- a `train` job. A run's curve is in training_metrics (one row per logged step
-- and per validation), its checkpoints in storage with a row each here; a run
-- whose worker died resumes from its last checkpoint, dropping the rows logged
-- after it, so the curve neither skips nor repeats a step. A finished run's
-- best checkpoint becomes a model of the embedding registry.
CREATE TABLE training_runs (
    id              integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name            text NOT NULL UNIQUE CHECK (btrim(name) <> ''),
    version_id      integer NOT NULL REFERENCES dataset_versions (id),
    -- The run's settings as given (base model, epochs, P x K, schedule, loss, ...).
    config          jsonb NOT NULL,
    job_id          uuid REFERENCES jobs (id),
    -- Filled when the job has read the version: totals and what the
    -- validation split holds.
    steps_per_epoch integer,
    total_steps     integer,
    data            jsonb,
    -- The base model's and the classic descriptor's figures on the same
    -- validation split, for comparison: {"base": {...}, "classic": {...}}.
    baseline        jsonb,
    -- The registered model (the best checkpoint by validation mAP@R).
    model_id        integer REFERENCES embedding_models (id) ON DELETE SET NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz
);

CREATE INDEX training_runs_version_idx ON training_runs (version_id);

CREATE TABLE training_metrics (
    run_id       integer NOT NULL REFERENCES training_runs (id) ON DELETE CASCADE,
    kind         text NOT NULL CHECK (kind IN ('train', 'val')),
    -- Steps done when the row was written (0: before training).
    step         integer NOT NULL CHECK (step >= 0),
    epoch        integer NOT NULL CHECK (epoch >= 0),
    -- train rows: the mean loss of the steps since the row before, the
    -- learning rate of the last, and the speed over them.
    loss         double precision,
    lr           double precision,
    images_per_s double precision,
    -- val rows.
    recall_at_1  double precision,
    recall_at_5  double precision,
    map_at_r     double precision,
    at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, kind, step)
);

CREATE TABLE training_checkpoints (
    run_id      integer NOT NULL REFERENCES training_runs (id) ON DELETE CASCADE,
    step        integer NOT NULL CHECK (step > 0),
    epoch       integer NOT NULL,
    -- The batch sampler's generator at the start of the epoch `step` is in.
    rng_state   bigint NOT NULL,
    storage_key text NOT NULL,
    size        bigint NOT NULL,
    -- Why it was taken: the end of an epoch (with its validation figure), a
    -- worker shutting down, or a cancel.
    reason      text NOT NULL CHECK (reason IN ('epoch', 'shutdown', 'cancel')),
    map_at_r    double precision,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, step)
);
