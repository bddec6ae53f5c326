-- 0005_search_at_scale: BM25 statistics kept at write time, and postings readable best-first.
--
-- Why: BM25 counted each query lexeme's document frequency (df) per query and summed every
-- posting of every query lexeme. Both grow with the tenant: a common lexeme of a 1M-chunk
-- tenant has ~10^5 postings. Now
-- * tenant_terms holds df per (tenant, lexeme), moved by the same transactions that add or
--   remove postings (PostgresDocumentStore: complete_document, store_part, start_parts,
--   purge_document), so a query reads one row per lexeme;
-- * each posting carries its BM25 term-frequency part ("impact") for a fixed reference
--   length, and idx_chunk_terms_impact returns a lexeme's postings best-first, so the search
--   reads the top postings of each lexeme and rescores the candidates exactly with the
--   tenant's current statistics (querio.adapters.postgres.search).
-- impact = tf·(k1+1) / (tf + k1·(1 - b + b·dl/100)), k1 = 1.2, b = 0.75 (as BM25_K1/BM25_B),
-- reference length 100 lexemes (BM25_IMPACT_AVGDL): ~ the average chunk of 1,000 characters.

CREATE TABLE tenant_terms (
    tenant_id text NOT NULL,
    lexeme    text NOT NULL,
    -- the tenant's chunks holding the lexeme; no CHECK (df >= 0): an upsert's proposed row carries
    -- a negative delta, and CHECKs apply to it before ON CONFLICT; updates clamp at 0 instead
    df        integer NOT NULL,
    PRIMARY KEY (tenant_id, lexeme)
);
INSERT INTO tenant_terms (tenant_id, lexeme, df)
SELECT tenant_id, lexeme, count(*) FROM chunk_terms GROUP BY tenant_id, lexeme;

ALTER TABLE chunk_terms ADD COLUMN impact real
    GENERATED ALWAYS AS ((2.2::float8 * tf / (tf + 0.3::float8 + 0.009::float8 * dl))::real) STORED;

-- (chunk_id, lexeme) serves the cascade from document_chunks and the rescoring probes;
-- (tenant_id, lexeme, ...) prefix scans are served by the impact index, so the old primary
-- key and idx_chunk_terms_chunk go (one index fewer to maintain per posting).
ALTER TABLE chunk_terms DROP CONSTRAINT chunk_terms_pkey;
DROP INDEX idx_chunk_terms_chunk;
ALTER TABLE chunk_terms ADD PRIMARY KEY (chunk_id, lexeme);
CREATE INDEX idx_chunk_terms_impact ON chunk_terms (tenant_id, lexeme, impact DESC) INCLUDE (chunk_id, tf, dl);

-- Page-range filters inside the vector and full-text legs (a tenant's chunks on pages a..b).
CREATE INDEX idx_chunks_tenant_page ON document_chunks (tenant_id, page_number);

-- Keep each chunk's vector in its row. pgvector stores vector columns EXTERNAL (out of line), so
-- an exact scan (small tenants, filtered fallbacks) fetched every vector from the TOAST table:
-- 12K rows of a 100K-chunk tenant took 136 ms of distance work, ~11 µs a row. PLAIN keeps the
-- 1.5 KB vector inline (the text columns are compressed or moved out instead). Rows written
-- before this migration keep their layout until they are rewritten (reprocess, VACUUM FULL).
ALTER TABLE document_chunks ALTER COLUMN embedding SET STORAGE PLAIN;
