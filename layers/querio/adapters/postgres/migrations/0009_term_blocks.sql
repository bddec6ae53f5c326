-- 0009_term_blocks: BM25 postings packed per (lexeme, document), so a query reads a few rows
-- per lexeme instead of one row per posting.
--
-- Why: on a 10K-chunk tenant a typical question's 7 lexemes have ~12,800 postings in
-- chunk_terms; reading, scoring and grouping them row by row was ~10 ms of a 17.6 ms hybrid
-- search. Packed, the same postings are ~7 rows per document (a few hundred rows), and the
-- adapter scores them exactly with numpy (querio.adapters.postgres.search.block_text_leg)
-- while their total stays under BLOCK_MAX_POSTINGS; past it the impact-ordered chunk_terms
-- path answers, as before.
--
-- One row per (tenant, lexeme, document, chunk_lo): chunk_lo is the first chunk_index of the
-- write that made the row (0 for a whole document, the part's range start for a page-range
-- part), so re-storing a part replaces exactly its rows. postings: 20 bytes per chunk holding
-- the lexeme, big-endian int4 each (int4send): chunk_index, tf, dl (the chunk's term_count),
-- first page, last page (a chunk without a page: first 2^31-1, last -2^31, so no page range
-- keeps it, as search_filter_sql). Written by the transactions that write chunk_terms
-- (PostgresDocumentStore: complete_document, store_part, start_parts, bulk_load); removed
-- with the document by cascade. Liveness is the document's, read at query time.

CREATE TABLE term_blocks (
    tenant_id   text NOT NULL,
    lexeme      text NOT NULL,
    document_id uuid NOT NULL,
    chunk_lo    integer NOT NULL,
    postings    bytea NOT NULL,
    PRIMARY KEY (tenant_id, lexeme, document_id, chunk_lo),
    CONSTRAINT term_blocks_document_fkey FOREIGN KEY (document_id, tenant_id)
        REFERENCES documents (id, tenant_id) ON DELETE CASCADE
);
-- rewrites and the cascade find a document's rows
CREATE INDEX idx_term_blocks_document ON term_blocks (document_id, chunk_lo);
-- packed integers barely compress: skip the attempt on write and the inflate on read
ALTER TABLE term_blocks ALTER COLUMN postings SET STORAGE EXTERNAL;

-- Back-fill from the chunks (the same statement as the ingest path, one block per document).
INSERT INTO term_blocks (tenant_id, lexeme, document_id, chunk_lo, postings)
SELECT c.tenant_id, u.lexeme, c.document_id, 0,
       string_agg(int4send(c.chunk_index) || int4send(LEAST(cardinality(u.positions), 32767))
                  || int4send(COALESCE(c.term_count, 0)) || int4send(COALESCE(c.page_number, 2147483647))
                  || int4send(COALESCE(c.page_end, c.page_number, -2147483648)), ''::bytea ORDER BY c.chunk_index)
  FROM document_chunks c CROSS JOIN LATERAL unnest(c.content_tsv) u
 GROUP BY c.tenant_id, u.lexeme, c.document_id;
