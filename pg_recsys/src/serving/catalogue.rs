//! The catalogue a model scores: every movie's content read from the recsys schema (`recsys_contract::READ_CATALOGUE`,
//! the query the trainer runs too), encoded by the model's content encoder, patched movie by movie from the changes
//! recorded in recsys.catalogue_changes, and the catalogue version that triggers bump on every change.
use crate::error::RecsysError;
use pgrx::prelude::*;
use recsys_model::embedder::{EMBEDDER_ID, TITLE_DIM};
use recsys_model::{HybridRecommender, MovieContent, Vocabulary};
use std::collections::HashSet;
use tch::{Device, Kind, Tensor};

/// Embeds titles that `recsys.title_embeddings` does not hold ([titles, 384]): the backend's one MiniLM model.
pub type EmbedTitles = fn(&[&str]) -> Result<Tensor, RecsysError>;

/// A catalogue encoded for one model: movie ids, titles, embedding rows and content vectors by catalogue position.
pub struct EncodedCatalogue {
    /// Movie ids by catalogue position (ascending).
    pub movie_ids: Vec<i32>,
    /// Titles by catalogue position.
    pub titles: Vec<String>,
    /// Embedding row of each movie (0 = scored from content alone).
    pub movie_rows: Vec<i64>,
    /// [movies, content_dim].
    pub content: Tensor,
}

impl EncodedCatalogue {
    /// Reads and encodes every movie of the catalogue.
    pub fn compute(network: &HybridRecommender, vocabulary: &Vocabulary, embed: EmbedTitles) -> Result<Self, RecsysError> {
        let (movie_ids, contents, titles) = read_catalogue(None, embed)?;
        let content = encode(network, vocabulary, &contents, &titles)?;
        let movie_rows = movie_ids.iter().map(|m| vocabulary.movie_row(*m)).collect();
        Ok(Self { movie_ids, titles: contents.into_iter().map(|c| c.title).collect(), movie_rows, content })
    }

    /// This catalogue with the movies in `changed` read and encoded again (or left out when no longer in the
    /// catalogue); every other movie keeps its encoded content.
    pub fn patched(&self, network: &HybridRecommender, vocabulary: &Vocabulary, changed: &[i32], embed: EmbedTitles) -> Result<Self, RecsysError> {
        enum Source {
            Kept(usize),
            Fresh(usize),
        }
        let (fresh_ids, contents, titles) = read_catalogue(Some(changed), embed)?;
        let fresh_content = encode(network, vocabulary, &contents, &titles)?;
        let changed: HashSet<i32> = changed.iter().copied().collect();
        let mut merged: Vec<(i32, Source)> =
            self.movie_ids.iter().enumerate().filter(|(_, id)| !changed.contains(id)).map(|(at, id)| (*id, Source::Kept(at))).collect();
        merged.extend(fresh_ids.iter().enumerate().map(|(at, id)| (*id, Source::Fresh(at))));
        merged.sort_by_key(|(id, _)| *id);
        let kept = self.movie_ids.len() as i64;
        let rows: Vec<i64> = merged
            .iter()
            .map(|(_, source)| match source {
                Source::Kept(at) => *at as i64,
                Source::Fresh(at) => kept + *at as i64,
            })
            .collect();
        let content = Tensor::f_cat(&[&self.content, &fresh_content], 0)?.f_index_select(0, &Tensor::f_from_slice(&rows)?)?;
        let titles = merged
            .iter()
            .map(|(_, source)| match source {
                Source::Kept(at) => self.titles[*at].clone(),
                Source::Fresh(at) => contents[*at].title.clone(),
            })
            .collect();
        let movie_ids: Vec<i32> = merged.iter().map(|(id, _)| *id).collect();
        let movie_rows = movie_ids.iter().map(|m| vocabulary.movie_row(*m)).collect();
        Ok(Self { movie_ids, titles, movie_rows, content })
    }
}

/// Reads the content and title embedding of every movie, or of those in `only` (computing the embeddings not
/// stored yet with `embed`, in memory only).
pub fn read_catalogue(only: Option<&[i32]>, embed: EmbedTitles) -> Result<(Vec<i32>, Vec<MovieContent>, Tensor), RecsysError> {
    type Row = (i32, MovieContent, Option<Vec<f32>>);
    let rows: Vec<Row> = Spi::connect(|client| -> Result<Vec<Row>, pgrx::spi::Error> {
        let mut rows = Vec::new();
        for row in client.select(recsys_contract::READ_CATALOGUE, None, &[EMBEDDER_ID.into(), only.map(<[i32]>::to_vec).into()])? {
            let content = MovieContent {
                title: row.get::<String>(2)?.unwrap_or_default(),
                year: row.get::<f64>(3)?,
                runtime_minutes: row.get::<f64>(4)?,
                genres: row.get::<Vec<String>>(5)?.unwrap_or_default(),
                directors: row.get::<Vec<i32>>(6)?.unwrap_or_default(),
                actors: row.get::<Vec<i32>>(7)?.unwrap_or_default(),
            };
            rows.push((row.get::<i32>(1)?.unwrap_or_default(), content, row.get::<Vec<f32>>(8)?));
        }
        Ok(rows)
    })
    .map_err(RecsysError::spi("reading the movie catalogue"))?;
    let missing: Vec<&str> = rows.iter().filter(|r| r.2.is_none()).map(|r| r.1.title.as_str()).collect();
    let computed = if missing.is_empty() { None } else { Some(embed(&missing)?) };
    let mut next_computed = 0;
    let mut flat = Vec::with_capacity(rows.len() * TITLE_DIM as usize);
    for (_, _, cached) in &rows {
        match cached {
            Some(vector) => flat.extend_from_slice(vector),
            None => {
                let computed = computed.as_ref().ok_or_else(|| RecsysError::internal("a title without a cached embedding was not embedded"))?;
                let vector: Vec<f32> = Vec::try_from(computed.f_get(next_computed)?).map_err(recsys_model::ModelError::from)?;
                flat.extend(vector);
                next_computed += 1;
            }
        }
    }
    let titles = Tensor::f_from_slice(&flat)?.f_reshape([rows.len() as i64, TITLE_DIM])?;
    let (ids, contents) = rows.into_iter().map(|(id, content, _)| (id, content)).unzip();
    Ok((ids, contents, titles))
}

/// Encoded content vectors of `contents`, [N, content_dim].
pub fn encode(network: &HybridRecommender, vocabulary: &Vocabulary, contents: &[MovieContent], titles: &Tensor) -> Result<Tensor, RecsysError> {
    let config = network.config();
    let refs: Vec<&MovieContent> = contents.iter().collect();
    let inputs = vocabulary.encode(&refs, titles, config.max_directors, config.max_actors)?;
    Ok(tch::no_grad(|| network.encode_content(&inputs))?.f_to_kind(Kind::Float)?.f_to_device(Device::Cpu)?)
}

/// Whether the database holds this release's schema (`recsys.catalogue_state` exists): false while it still holds an
/// older version's objects (the library was replaced, `ALTER EXTENSION pg_recsys UPDATE` not run yet).
pub fn schema_is_current() -> Result<bool, RecsysError> {
    schema_has("SELECT pg_catalog.to_regclass('recsys.catalogue_state') IS NOT NULL")
}

/// Whether ratings carry load numbers (`recsys.rating_unseen` exists, 0.7.0 and later).
pub fn ratings_have_load_numbers() -> Result<bool, RecsysError> {
    schema_has(recsys_contract::HAS_LOAD_NUMBERS)
}

/// Whether the database records catalogue changes (`recsys.catalogue_changes`, 0.4.0 and later).
pub fn catalogue_changes_recorded() -> Result<bool, RecsysError> {
    schema_has("SELECT pg_catalog.to_regclass('recsys.catalogue_changes') IS NOT NULL")
}

fn schema_has(query: &str) -> Result<bool, RecsysError> {
    Spi::connect(|client| client.select(query, Some(1), &[])?.first().get::<bool>(1))
        .map(|present| present == Some(true))
        .map_err(RecsysError::spi("checking the extension's schema"))
}

/// The catalogue's current version (`recsys.catalogue_state`), bumped by every change of movies, genres or people.
pub fn catalogue_version() -> Result<i64, RecsysError> {
    Spi::connect(|client| client.select("SELECT version FROM recsys.catalogue_state", Some(1), &[])?.first().get::<i64>(1))
        .map(Option::unwrap_or_default)
        .map_err(RecsysError::spi("reading the catalogue version"))
}

/// Largest share of the catalogue patched movie by movie; past it the whole catalogue is read again.
const LARGEST_PATCH_SHARE: f64 = 0.25;

/// The movies inserted, edited or deleted since catalogue version `since`, when the catalogue of `movies` movies can
/// be patched with them: `None` when changes since then were pruned, one of them touched every movie (a TRUNCATE, a
/// genre renamed) or they are too many. Only for a database that records changes (`catalogue_changes_recorded`).
pub fn changed_movies(since: i64, movies: usize) -> Result<Option<Vec<i32>>, RecsysError> {
    let (complete, every_movie, ids) = Spi::connect(|client| {
        let row = client
            .select(
                "SELECT (SELECT changes_from FROM recsys.catalogue_state) OPERATOR(pg_catalog.<=) $1::pg_catalog.int8,
                        COALESCE(pg_catalog.bool_or(movie_id IS NULL), false),
                        COALESCE(pg_catalog.array_agg(DISTINCT movie_id) FILTER (WHERE movie_id IS NOT NULL), '{}')
                 FROM recsys.catalogue_changes WHERE version OPERATOR(pg_catalog.>) $1::pg_catalog.int8",
                Some(1),
                &[since.into()],
            )?
            .first();
        Ok::<_, pgrx::spi::Error>((row.get::<bool>(1)?, row.get::<bool>(2)?, row.get::<Vec<i32>>(3)?))
    })
    .map_err(RecsysError::spi("reading the catalogue changes"))?;
    let ids = ids.unwrap_or_default();
    let patchable = complete == Some(true) && every_movie == Some(false) && (ids.len() as f64) <= LARGEST_PATCH_SHARE * movies.max(1) as f64;
    Ok(patchable.then_some(ids))
}
