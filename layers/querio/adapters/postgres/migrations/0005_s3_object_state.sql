-- 0005_s3_object_state: one S3 key is one live document; stale events never win (issue 11).
--
-- * s3_objects: the last applied S3 event per (tenant, bucket, key). S3 orders the events of
--   one key by `sequencer` (hex, compared after left-padding to equal length); an event whose
--   sequencer is lower than the one recorded here is stale (out of order or replayed) and is
--   acknowledged as a no-op. Kept after an ObjectRemoved, so a late PUT event cannot revive it.
-- * documents.s3_sequencer / s3_etag: the event (and the object's ETag) a document was built
--   from. Completing a document retires any other live document of the same key with a lower
--   sequencer in the same transaction; the eTag lets a copy of bytes Querio already holds (the
--   archive's in-place copy to GLACIER) be recognised without a GetObject.
-- * processing_status 'indexing': chunks are committed in PostgreSQL but the vector store that
--   serves queries (Pinecone) does not have them yet; not searchable, re-synced automatically.

CREATE TABLE s3_objects (
    tenant_id   text NOT NULL,
    bucket      text NOT NULL,
    key         text NOT NULL,
    sequencer   text NOT NULL CHECK (sequencer ~ '^[0-9A-F]{1,64}$'),
    event_name  text NOT NULL,
    etag        text,
    version_id  text,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, bucket, key)
);

ALTER TABLE documents ADD COLUMN s3_sequencer text, ADD COLUMN s3_etag text;

ALTER TABLE documents DROP CONSTRAINT documents_processing_status_check;
ALTER TABLE documents ADD CONSTRAINT documents_processing_status_check
    CHECK (processing_status IN ('pending', 'processing', 'indexing', 'completed', 'failed'));

CREATE INDEX idx_documents_indexing ON documents (id) WHERE processing_status = 'indexing' AND deleted_at IS NULL;
