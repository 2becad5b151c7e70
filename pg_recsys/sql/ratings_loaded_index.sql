-- recsys.ratings' index on load numbers: the ratings a model version has not seen are an index range scan above its
-- fingerprint's loaded_until. Run when the extension is created, and by the trainer's first bulk import after its
-- COPY (recsys_contract::RATINGS_LOADED_INDEX), which builds it once instead of row by row.
CREATE INDEX ratings_loaded_idx ON recsys.ratings (loaded);
