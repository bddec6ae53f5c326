-- 0007_embedder_variant: which embedder made each document's vectors (issue 13).
--
-- A quantized model gives vectors close to, but not the same as, the reference's; a corpus is
-- searched only with the variant it was embedded with (querio.embedding.variant_of: model,
-- quantization and, outside the reference family, the export's sha256). Set when a document
-- completes (per part for page-range ingests: parts embedded by different variants make the
-- document 'mixed', which matches no embedder), rewritten by `querio reembed`.
--
-- Every embedder before this migration gave the reference vectors (torch, ONNX fp32, the
-- fp16 Lambda layer: cosine >= 0.99999 to torch), so existing documents get that variant.

ALTER TABLE documents ADD COLUMN embedder_variant text;
ALTER TABLE ingest_parts ADD COLUMN embedder_variant text;

UPDATE documents SET embedder_variant = 'all-MiniLM-L6-v2/fp32' WHERE processing_status IN ('completed', 'indexing');
UPDATE ingest_parts SET embedder_variant = 'all-MiniLM-L6-v2/fp32' WHERE status = 'done';

-- The search-time check reads min() and max() of a tenant's searchable variants: two index probes.
-- `querio reembed` walks documents of other variants in id order.
CREATE INDEX idx_documents_tenant_embedder
    ON documents (tenant_id, embedder_variant) WHERE deleted_at IS NULL AND processing_status = 'completed';
