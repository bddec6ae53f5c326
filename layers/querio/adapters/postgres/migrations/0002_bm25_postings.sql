-- 0002_bm25_postings: an inverted index so full-text search ranks by BM25, not ts_rank.
--
-- Why: ts_rank/ts_rank_cd have no inverse document frequency, so a rare, decisive term
-- ("R_DISABLE_HTTPD") weighs no more than "use". On the eval set (48 paraphrased questions
-- over 604 pages) full-text recall@5 was 0.646 with ts_rank_cd and 0.875 with BM25.
-- PostgreSQL cannot read a term's frequency or document frequency from a GIN index, so
-- the postings are stored explicitly: one row per (tenant, lexeme, chunk) with the term
-- frequency, written from the chunk's own content_tsv (same English stemming as before) in
-- the transaction that writes the chunk, and removed with it by cascade.

ALTER TABLE document_chunks ADD COLUMN term_count integer;  -- BM25 document length |d|

CREATE TABLE chunk_terms (
    tenant_id text NOT NULL,
    lexeme    text NOT NULL,
    chunk_id  uuid NOT NULL REFERENCES document_chunks(id) ON DELETE CASCADE,
    tf        smallint NOT NULL,  -- occurrences in the chunk (tsvector keeps at most 256 positions)
    dl        integer NOT NULL,   -- = document_chunks.term_count, copied so scoring needs no join
    PRIMARY KEY (tenant_id, lexeme, chunk_id)
);
-- the cascade from document_chunks looks postings up by chunk
CREATE INDEX idx_chunk_terms_chunk ON chunk_terms (chunk_id);

-- avgdl = term_occurrences / chunk_rows, kept exact by the same transactions as chunk_rows
ALTER TABLE tenant_usage ADD COLUMN term_occurrences bigint NOT NULL DEFAULT 0;

-- Back-fill chunks written before this migration (same statements as the ingest path).
UPDATE document_chunks c
   SET term_count = COALESCE((SELECT sum(cardinality(u.positions)) FROM unnest(c.content_tsv) u), 0);
INSERT INTO chunk_terms (tenant_id, lexeme, chunk_id, tf, dl)
SELECT c.tenant_id, u.lexeme, c.id, LEAST(cardinality(u.positions), 32767), c.term_count
  FROM document_chunks c CROSS JOIN LATERAL unnest(c.content_tsv) u;
UPDATE tenant_usage t
   SET term_occurrences = (SELECT COALESCE(sum(c.term_count), 0) FROM document_chunks c WHERE c.tenant_id = t.tenant_id);
