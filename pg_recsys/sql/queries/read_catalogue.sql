-- Every movie's content as the trainer and the extension read it (recsys_contract::READ_CATALOGUE): movie_id,
-- title, year, runtime, genres (text[]), director ids and actor ids (int[], billing order), and the cached title
-- embedding of embedder $1 (real[], NULL when not cached yet); only the movies in $2 (int[]) unless it is NULL. Every function and operator is schema-qualified, so a
-- caller's search_path cannot redirect them.
SELECT m.movie_id, m.title, m.year::pg_catalog.float8, m.runtime_minutes::pg_catalog.float8,
    COALESCE((SELECT pg_catalog.array_agg(g.name ORDER BY g.name) FROM recsys.movie_genres mg JOIN recsys.genres g USING (genre_id)
              WHERE mg.movie_id OPERATOR(pg_catalog.=) m.movie_id), '{}'),
    COALESCE((SELECT pg_catalog.array_agg(mp.person_id ORDER BY mp.billing_order NULLS LAST, mp.person_id) FROM recsys.movie_persons mp
              WHERE mp.movie_id OPERATOR(pg_catalog.=) m.movie_id AND mp.role OPERATOR(pg_catalog.=) 'director'), '{}'),
    COALESCE((SELECT pg_catalog.array_agg(mp.person_id ORDER BY mp.billing_order NULLS LAST, mp.person_id) FROM recsys.movie_persons mp
              WHERE mp.movie_id OPERATOR(pg_catalog.=) m.movie_id AND mp.role OPERATOR(pg_catalog.=) 'actor'), '{}'),
    (SELECT e.embedding FROM recsys.title_embeddings e
      WHERE e.embedder OPERATOR(pg_catalog.=) $1::pg_catalog.text
        AND e.text_sha256 OPERATOR(pg_catalog.=) pg_catalog.sha256(pg_catalog.convert_to(m.title, 'UTF8')))
FROM recsys.movies m
WHERE $2::pg_catalog.int4[] IS NULL OR m.movie_id OPERATOR(pg_catalog.=) ANY ($2::pg_catalog.int4[])
ORDER BY m.movie_id
