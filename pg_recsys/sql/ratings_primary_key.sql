-- recsys.ratings' primary key: one rating per user and movie. Run when the extension is created, and by the
-- trainer's first bulk import after its COPY (recsys_contract::RATINGS_PRIMARY_KEY).
ALTER TABLE recsys.ratings ADD CONSTRAINT ratings_pkey PRIMARY KEY (user_id, movie_id);
