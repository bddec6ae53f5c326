-- 0001_initial: the design card's schema (section 4, "Metadata Storage"), adapted for
-- tenancy, content-addressed dedupe, pgvector and generated full-text vectors.
--
-- Conventions: every timestamp is timestamptz (the card's TIMESTAMP is zone-less and reads
-- back differently per session time zone); sizes are bytes; pages are 1-based physical
-- page indices. Applied by querio.adapters.postgres.migrate, inside one transaction.
-- Never edit this file once released: add 0002_*.sql instead (the runner checks checksums).

-- pgvector >= 0.6 is required for the HNSW index below (HNSW since 0.5, parallel builds since
-- 0.6); where it is >= 0.8, vector search also uses iterative index scans. RDS PostgreSQL 16
-- ships 0.8.0, the embedded server (pgserver) 0.6.2: see PgVectorStore for both paths.
-- gen_random_uuid() is built in since PostgreSQL 13, so the card's pgcrypto is not needed.
CREATE EXTENSION IF NOT EXISTS vector;

-- Users -------------------------------------------------------------------------------------
-- Authentication is delegated to a JWT issuer, so a user is identified by (tenant, subject);
-- email/username are optional profile fields, unique per tenant (not globally: two tenants
-- may know the same person), and password_hash is nullable (no local passwords).
CREATE TABLE users (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id     text NOT NULL,
    subject       text NOT NULL,
    email         varchar(255),
    username      varchar(100),
    password_hash varchar(255),
    created_at    timestamptz NOT NULL DEFAULT now(),
    is_active     boolean NOT NULL DEFAULT true,
    CONSTRAINT users_tenant_subject_key UNIQUE (tenant_id, subject),
    CONSTRAINT users_tenant_email_key UNIQUE (tenant_id, email),
    CONSTRAINT users_tenant_username_key UNIQUE (tenant_id, username)
);

-- Documents ---------------------------------------------------------------------------------
CREATE TABLE documents (
    id                      uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id               text NOT NULL,
    filename                varchar(255) NOT NULL,
    original_filename       varchar(255) NOT NULL,
    file_size               bigint NOT NULL CHECK (file_size >= 0),
    mime_type               varchar(50) NOT NULL DEFAULT 'application/pdf',
    -- lower-case hex SHA-256 of the bytes: the dedupe key (see the partial unique index)
    content_sha256          char(64) NOT NULL CHECK (content_sha256 ~ '^[0-9a-f]{64}$'),

    -- storage references
    storage_type            varchar(20) NOT NULL DEFAULT 'filesystem',  -- filesystem | s3
    storage_path            varchar(500),                               -- local path or S3 key
    s3_bucket               varchar(100),
    s3_key                  varchar(500),
    storage_class           text NOT NULL DEFAULT 'STANDARD',           -- S3 class after archiving
    archived_at             timestamptz,
    accessed_at             timestamptz,                                -- drives the archive policy

    -- processing status
    processed               boolean NOT NULL DEFAULT false,
    processing_status       varchar(50) NOT NULL DEFAULT 'pending'
                            CHECK (processing_status IN ('pending', 'processing', 'completed', 'failed')),
    processing_started_at   timestamptz,
    processing_completed_at timestamptz,
    error_code              text,
    error_message           text,

    -- document metadata (read from the PDF)
    page_count              integer,
    word_count              integer,
    empty_page_count        integer,
    chunk_count             integer NOT NULL DEFAULT 0,
    language                varchar(10),
    author                  varchar(255),
    title                   varchar(500),
    created_date            date,

    -- system metadata
    uploaded_by             uuid REFERENCES users(id) ON DELETE SET NULL,
    uploaded_at             timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),

    -- flexible metadata
    tags                    text[] NOT NULL DEFAULT '{}',
    metadata                jsonb NOT NULL DEFAULT '{}',

    -- soft delete: set first, the row is purged after the blob is gone
    deleted_at              timestamptz,

    -- target of document_chunks' composite foreign key (keeps the denormalised
    -- document_chunks.tenant_id equal to its document's tenant)
    CONSTRAINT documents_id_tenant_key UNIQUE (id, tenant_id)
);

-- One LIVE document per (tenant, bytes): concurrent uploads of the same file race on this
-- index and exactly one INSERT wins (ON CONFLICT ... WHERE deleted_at IS NULL DO NOTHING).
-- Soft-deleted rows do not count, so a deleted file can be uploaded again.
CREATE UNIQUE INDEX uq_documents_tenant_sha256_live
    ON documents (tenant_id, content_sha256) WHERE deleted_at IS NULL;
-- the listing query: one tenant's live documents, newest first
CREATE INDEX idx_documents_tenant_uploaded
    ON documents (tenant_id, uploaded_at DESC) WHERE deleted_at IS NULL;
-- the card's indexes
CREATE INDEX idx_documents_uploaded_by ON documents (uploaded_by);
CREATE INDEX idx_documents_uploaded_at ON documents (uploaded_at);
CREATE INDEX idx_documents_status ON documents (processing_status);
CREATE INDEX idx_documents_tags ON documents USING gin (tags);
CREATE INDEX idx_documents_metadata ON documents USING gin (metadata);

-- Chunks --------------------------------------------------------------------------------------
CREATE TABLE document_chunks (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    document_id     uuid NOT NULL,
    -- denormalised from documents so tenant-scoped chunk searches filter without a join
    tenant_id       text NOT NULL,
    content         text NOT NULL,
    chunk_index     integer NOT NULL CHECK (chunk_index >= 0),
    page_number     integer,          -- first page of the chunk
    page_end        integer,          -- last page (== page_number while chunks never span pages)
    char_start      integer,          -- offsets into page_number's extracted text, end exclusive
    char_end        integer,
    character_count integer,
    token_count     integer,          -- word pieces of the embedding model
    section         text,
    embedding_id    varchar(100),     -- id in an external vector store, when one is used
    metadata        jsonb NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT now(),

    -- Replaces the card's expression index GIN(to_tsvector('english', content)): a stored
    -- generated column is computed once at insert, ranking reads it instead of re-parsing
    -- the text per row, and queries need not repeat the exact expression to use the index.
    content_tsv     tsvector GENERATED ALWAYS AS (to_tsvector('english', content)) STORED,

    -- all-MiniLM-L6-v2, L2-normalised, float32 (1,536 B a row): the same type locally (pgvector
    -- 0.6.2) and on RDS (0.8.0); halfvec would need pgvector >= 0.7.
    -- NULL when an external vector store holds the vectors.
    embedding       vector(384),

    CONSTRAINT unique_doc_chunk UNIQUE (document_id, chunk_index),
    CONSTRAINT document_chunks_document_fkey FOREIGN KEY (document_id, tenant_id)
        REFERENCES documents (id, tenant_id) ON DELETE CASCADE
);

-- The card's idx_chunks_document_id is omitted: unique_doc_chunk (document_id, chunk_index)
-- already serves every lookup by document_id, and each extra index slows chunk inserts.
CREATE INDEX idx_chunks_tenant_document ON document_chunks (tenant_id, document_id);
CREATE INDEX idx_chunks_content_tsv ON document_chunks USING gin (content_tsv);
-- Cosine distance on normalised vectors; m/ef_construction are pgvector's defaults, measured
-- at recall@10 >= 0.987 with ef_search 100 on 100k x 384-d (notes/measured-limits.md).
-- Small tenants are searched exactly instead (PgVectorStore.exact_scan_max_rows).
CREATE INDEX idx_chunks_embedding_hnsw ON document_chunks
    USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64);

-- Chat ------------------------------------------------------------------------------------------
CREATE TABLE chat_sessions (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id     text NOT NULL,
    user_id       uuid REFERENCES users(id) ON DELETE SET NULL,
    title         varchar(255),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    message_count integer NOT NULL DEFAULT 0,
    metadata      jsonb NOT NULL DEFAULT '{}'
);

CREATE INDEX idx_chat_session_user ON chat_sessions (user_id);
CREATE INDEX idx_chat_sessions_tenant_updated ON chat_sessions (tenant_id, updated_at DESC);

CREATE TABLE chat_messages (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    session_id    uuid NOT NULL REFERENCES chat_sessions(id) ON DELETE CASCADE,
    role          varchar(20) NOT NULL CHECK (role IN ('user', 'assistant', 'system')),
    content       text NOT NULL,
    source_chunks uuid[] NOT NULL DEFAULT '{}',  -- chunk ids cited (no FK: chunks get replaced)
    created_at    timestamptz NOT NULL DEFAULT now(),
    metadata      jsonb NOT NULL DEFAULT '{}'
);

-- the card's session index, extended with created_at so history reads come back in order
CREATE INDEX idx_chat_messages_session ON chat_messages (session_id, created_at);
CREATE INDEX idx_chat_messages_created ON chat_messages (created_at);

-- Analytics --------------------------------------------------------------------------------------
CREATE TABLE query_analytics (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id        text NOT NULL,
    user_id          uuid REFERENCES users(id) ON DELETE SET NULL,
    query            text NOT NULL,
    response_time_ms integer,
    chunks_retrieved integer,
    success          boolean,
    created_at       timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX idx_analytics_user ON query_analytics (user_id);
CREATE INDEX idx_analytics_created ON query_analytics (created_at);
CREATE INDEX idx_analytics_tenant_created ON query_analytics (tenant_id, created_at);

-- Per-tenant usage counters ------------------------------------------------------------------------
-- chunk_rows = the tenant's rows in document_chunks, kept exact by the transactions that add or
-- remove chunks (complete_document, purge_document). Vector search reads it to choose between
-- an exact scan and HNSW in O(1); counting rows per query would cost milliseconds for big tenants.
CREATE TABLE tenant_usage (
    tenant_id  text PRIMARY KEY,
    chunk_rows bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);
