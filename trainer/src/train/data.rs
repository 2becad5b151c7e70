//! Loading training data from PostgreSQL in bulk: all ratings through one COPY, the catalogue's content
//! (genres, directors, top-billed actors, runtime, year, title) in one query.
use anyhow::{bail, Context, Result};
use postgres::Client;
use recsys_model::{ContentInputs, MovieContent, RatingRows, TrainingBatch, Vocabulary};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use tch::Tensor;

/// All ratings as parallel columns.
#[derive(Debug, Default, Clone)]
pub struct Ratings {
    pub users: Vec<i32>,
    pub movies: Vec<i32>,
    pub values: Vec<f32>,
    /// Unix seconds.
    pub rated_at: Vec<i64>,
}

impl Ratings {
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// The rows at `indexes`, in that order.
    pub fn subset(&self, indexes: &[usize]) -> Ratings {
        Ratings {
            users: indexes.iter().map(|i| self.users[*i]).collect(),
            movies: indexes.iter().map(|i| self.movies[*i]).collect(),
            values: indexes.iter().map(|i| self.values[*i]).collect(),
            rated_at: indexes.iter().map(|i| self.rated_at[*i]).collect(),
        }
    }

    pub fn mean(&self) -> f64 {
        self.values.iter().map(|v| *v as f64).sum::<f64>() / self.len().max(1) as f64
    }
}

/// Every movie's content, in `movie_ids` order.
#[derive(Debug, Default)]
pub struct Catalogue {
    pub movie_ids: Vec<i32>,
    pub contents: Vec<MovieContent>,
    /// Title embeddings already in recsys.title_embeddings (None: not embedded yet).
    pub cached_titles: Vec<Option<Vec<f32>>>,
    pub row_of: HashMap<i32, usize>,
}

pub fn load_ratings(client: &mut Client) -> Result<Ratings> {
    let reader = client.copy_out(
        "COPY (SELECT user_id, movie_id, rating, extract(epoch FROM rated_at)::bigint FROM recsys.ratings ORDER BY user_id, movie_id) TO STDOUT",
    )?;
    let mut ratings = Ratings::default();
    for line in BufReader::with_capacity(1 << 20, reader).lines() {
        let line = line?;
        let mut fields = line.split('\t');
        let mut next = || fields.next().context("short COPY row");
        ratings.users.push(next()?.parse()?);
        ratings.movies.push(next()?.parse()?);
        ratings.values.push(next()?.parse()?);
        ratings.rated_at.push(next()?.parse()?);
    }
    if ratings.len() == 0 {
        bail!("recsys.ratings is empty: import ratings first (trainer import movielens DIR)");
    }
    Ok(ratings)
}

pub fn load_catalogue(client: &mut Client) -> Result<Catalogue> {
    let mut catalogue = Catalogue::default();
    for row in client.query(recsys_contract::READ_CATALOGUE, &[&recsys_model::embedder::EMBEDDER_ID, &None::<Vec<i32>>])? {
        let movie_id: i32 = row.get(0);
        catalogue.row_of.insert(movie_id, catalogue.movie_ids.len());
        catalogue.movie_ids.push(movie_id);
        catalogue.contents.push(MovieContent {
            title: row.get(1),
            year: row.get(2),
            runtime_minutes: row.get(3),
            genres: row.get(4),
            directors: row.get(5),
            actors: row.get(6),
        });
        catalogue.cached_titles.push(row.get(7));
    }
    Ok(catalogue)
}

/// Ratings as tensors: embedding rows of users and movies, catalogue rows (for content), targets.
pub struct IndexedRatings {
    /// [N] int64 user rows.
    pub users: Tensor,
    /// [N] int64 movie rows (0: no embedding).
    pub movies: Tensor,
    /// [N] int64 catalogue positions, for content.
    pub catalogue_rows: Tensor,
    /// [N] float ratings.
    pub values: Tensor,
}

impl IndexedRatings {
    /// Indexes `ratings` with the model's vocabulary; an error for a movie not in the catalogue.
    pub fn new(ratings: &Ratings, vocabulary: &Vocabulary, catalogue: &Catalogue) -> Result<Self> {
        let mut catalogue_rows = Vec::with_capacity(ratings.len());
        for movie in &ratings.movies {
            match catalogue.row_of.get(movie) {
                Some(row) => catalogue_rows.push(*row as i64),
                None => bail!("rating of movie {movie}, which is not in recsys.movies"),
            }
        }
        Ok(Self {
            users: Tensor::from_slice(&ratings.users.iter().map(|u| vocabulary.user_row(*u)).collect::<Vec<_>>()),
            movies: Tensor::from_slice(&ratings.movies.iter().map(|m| vocabulary.movie_row(*m)).collect::<Vec<_>>()),
            catalogue_rows: Tensor::from_slice(&catalogue_rows),
            values: Tensor::from_slice(&ratings.values),
        })
    }

    /// Number of ratings.
    pub fn len(&self) -> i64 {
        self.values.size()[0]
    }

    /// The embedding rows and values, as the model crate's autoencoder takes them.
    pub fn rating_rows(&self) -> RatingRows<'_> {
        RatingRows { users: &self.users, movies: &self.movies, values: &self.values }
    }

    pub(super) fn batch(&self, index: &Tensor) -> (Tensor, Tensor, Tensor, Tensor) {
        (
            self.users.index_select(0, index),
            self.movies.index_select(0, index),
            self.catalogue_rows.index_select(0, index),
            self.values.index_select(0, index),
        )
    }

    pub fn shallow_clone(&self) -> Self {
        Self {
            users: self.users.shallow_clone(),
            movies: self.movies.shallow_clone(),
            catalogue_rows: self.catalogue_rows.shallow_clone(),
            values: self.values.shallow_clone(),
        }
    }

    pub fn training_batch(&self, index: &Tensor, content: &ContentInputs) -> Result<TrainingBatch> {
        let (users, movies, rows, targets) = self.batch(index);
        Ok(TrainingBatch { users, movies, content: content.select(&rows)?, targets })
    }
}
