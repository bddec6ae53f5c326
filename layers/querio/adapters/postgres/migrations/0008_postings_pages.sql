-- 0008_postings_pages: page-range searches read only what they keep. Each posting carries its
-- chunk's page span, so the BM25 leg filters postings without visiting the chunk rows; the chunk
-- rows' page index holds both ends of the span (last section).
--
-- Why: a page-range filter kept 12% of a 100K-chunk tenant; the BM25 leg read each lexeme's
-- best postings through idx_chunk_terms_impact and joined every posting to document_chunks and
-- documents to test its page (12,172 chunks: hybrid p50 310 ms). With the span in the index
-- (INCLUDE), the filter is applied inside the index-only scan and the chunk rows are read only
-- for the few candidates that are ranked (querio.adapters.postgres.search).
--
-- page_first = document_chunks.page_number, page_last = COALESCE(page_end, page_number): the
-- same predicate as search_filter_sql (page_last >= page_from AND page_first <= page_to; a chunk
-- without a page matches no range). Chunk pages never change after the chunk is written, so the
-- copy cannot go stale; the writes that add postings (ingest, parts, bulk load) fill them.
--
-- Cost: the back-fill rewrites every posting once; the index grows by 8 bytes a posting.

ALTER TABLE chunk_terms ADD COLUMN page_first integer, ADD COLUMN page_last integer;

UPDATE chunk_terms t SET page_first = c.page_number, page_last = COALESCE(c.page_end, c.page_number)
  FROM document_chunks c WHERE c.id = t.chunk_id AND c.page_number IS NOT NULL;

DROP INDEX idx_chunk_terms_impact;
CREATE INDEX idx_chunk_terms_impact ON chunk_terms (tenant_id, lexeme, impact DESC)
    INCLUDE (chunk_id, tf, dl, page_first, page_last);

-- A page range on the chunk rows (the vector leg's exact scan of a filter, the probing BM25
-- shape): idx_chunks_tenant_page answered only "page_number <= page_to" and read every such row
-- to test its last page (12,172 chunks kept of 21,992 read: 41 ms of the exact scan's). With the
-- last page in the index, both bounds are index conditions and only kept rows are read (29 ms).
CREATE INDEX idx_chunks_tenant_pages ON document_chunks (tenant_id, page_number, (COALESCE(page_end, page_number)));
DROP INDEX idx_chunks_tenant_page;
