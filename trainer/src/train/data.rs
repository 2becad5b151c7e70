//! Loading training data from PostgreSQL in bulk: all ratings through one COPY, the catalogue's content
//! (genres, directors, top-billed actors, runtime, year, title) in one query.
use anyhow::{bail, Context, Result};
use postgres::Client;
use recsys_model::MovieContent;
use std::collections::HashMap;
use std::io::{BufRead, BufReader};

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
    for row in client.query(recsys_contract::READ_CATALOGUE, &[&recsys_model::embedder::EMBEDDER_ID])? {
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
