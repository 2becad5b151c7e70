-- The cached embedding of one title (recsys_contract::TITLE_EMBEDDING): embedder $1, title $2; no row when the title
-- was never embedded. Titles are keyed by the SHA-256 of their UTF-8 text, as the trainer stores them.
SELECT embedding FROM recsys.title_embeddings
WHERE embedder OPERATOR(pg_catalog.=) $1::pg_catalog.text
  AND text_sha256 OPERATOR(pg_catalog.=) pg_catalog.sha256(pg_catalog.convert_to($2::pg_catalog.text, 'UTF8'))
