-- Registers a trained artefact as a new model version (recsys_contract::REGISTER_MODEL): $1 the manifest (jsonb,
-- whose params, metrics and fingerprint fill their columns), $2 the safetensors weights (bytea). Returns the version.
-- Used by the trainer and by recsys_load_artefact.
INSERT INTO recsys.models (params, metrics, fingerprint, manifest, weights)
SELECT m OPERATOR(pg_catalog.->) 'params', m OPERATOR(pg_catalog.->) 'metrics', m OPERATOR(pg_catalog.->) 'fingerprint', m, $2::pg_catalog.bytea
FROM (SELECT $1::pg_catalog.jsonb AS m) s
RETURNING version
