-- 0004_vector_migrations: checkpoints of `querio vectors migrate` (issue 5).
--
-- A migration copies every live vector (chunk rows of completed, undeleted documents) from
-- pgvector to Pinecone in chunk-id order, one batch at a time; after each batch it records
-- the last chunk id copied here, in its own transaction, so a killed run resumes after that
-- id. Upserts are idempotent (the Pinecone id is the chunk id), so a batch copied twice (a
-- crash between the upsert and this update) creates no duplicates.

CREATE TABLE vector_migrations (
    name           text PRIMARY KEY,           -- 'pgvector->pinecone:{index}:{namespace prefix}'
    source         text NOT NULL,
    target         text NOT NULL,
    status         text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'completed')),
    last_chunk_id  uuid,                       -- keyset cursor: ids <= this one are copied
    copied         bigint NOT NULL DEFAULT 0,  -- vectors copied by this pass (all runs)
    batches        integer NOT NULL DEFAULT 0,
    runs           integer NOT NULL DEFAULT 0, -- how many times the pass was started or resumed
    started_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    finished_at    timestamptz
);
