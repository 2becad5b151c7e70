-- recsys.ratings' secondary indexes and foreign keys. Run when the extension is created, and by the trainer's first
-- bulk import after its COPY (recsys_contract::RATINGS_REFERENCES).
CREATE INDEX ratings_movie_idx ON recsys.ratings (movie_id);
CREATE INDEX ratings_rated_at_idx ON recsys.ratings (rated_at);
ALTER TABLE recsys.ratings
    ADD CONSTRAINT ratings_user_id_fkey FOREIGN KEY (user_id) REFERENCES recsys.users ON DELETE CASCADE,
    ADD CONSTRAINT ratings_movie_id_fkey FOREIGN KEY (movie_id) REFERENCES recsys.movies ON DELETE CASCADE;
