-- 0003_ingest_parts: the serverless ingest path (issue 3).
--
-- * S3 uploads: ObjectRemoved finds the document by the key it was uploaded under.
-- * Archive: the daily run scans live, STANDARD documents by last access, and soft-deleted
--   ones by deletion time, across all tenants, in id order (keyset batches).

CREATE INDEX idx_documents_tenant_s3_key
    ON documents (tenant_id, s3_key) WHERE s3_key IS NOT NULL AND deleted_at IS NULL;
CREATE INDEX idx_documents_archive_due
    ON documents ((COALESCE(accessed_at, uploaded_at)))
    WHERE deleted_at IS NULL AND storage_class = 'STANDARD';
CREATE INDEX idx_documents_deleted_at
    ON documents (deleted_at) WHERE deleted_at IS NOT NULL;

-- Large PDFs are ingested in page-range parts, each by its own invocation (see
-- querio.ingest.parts). One row per part; the part that commits last (all rows 'done')
-- marks the document completed, in the same transaction, under the document's row lock.
CREATE TABLE ingest_parts (
    document_id     uuid NOT NULL,
    tenant_id       text NOT NULL,
    part_no         integer NOT NULL CHECK (part_no >= 0),
    page_from       integer NOT NULL CHECK (page_from >= 1),
    page_to         integer NOT NULL CHECK (page_to >= page_from),
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'processing', 'done', 'failed')),
    chunk_count     integer NOT NULL DEFAULT 0,
    word_count      integer NOT NULL DEFAULT 0,
    empty_pages     integer NOT NULL DEFAULT 0,
    info            jsonb NOT NULL DEFAULT '{}',   -- title/author/language read by part 0
    attempts        integer NOT NULL DEFAULT 0,
    error_message   text,
    started_at      timestamptz,
    finished_at     timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (document_id, part_no),
    CONSTRAINT ingest_parts_document_fkey FOREIGN KEY (document_id, tenant_id)
        REFERENCES documents (id, tenant_id) ON DELETE CASCADE
);
