//! Feature encoding: the vocabularies fitted on training data (user, movie, genre, director and actor rows;
//! runtime/year statistics) and the encoding of movies' content into the network's input tensors.
use crate::network::ContentInputs;
use crate::{Cardinalities, ModelError};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use tch::{Device, Kind, Tensor};

/// A movie's content as the database holds it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MovieContent {
    /// The title as stored (the title embedding is computed from it).
    pub title: String,
    /// Genre names.
    pub genres: Vec<String>,
    /// Director person ids, in credit order.
    pub directors: Vec<i32>,
    /// Person ids, top billed first.
    pub actors: Vec<i32>,
    /// Runtime in minutes, when known.
    pub runtime_minutes: Option<f64>,
    /// Release year, when known.
    pub year: Option<f64>,
}

/// Mean and standard deviation of a numeric feature.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Standardiser {
    /// Mean of the fitted values.
    pub mean: f64,
    /// Standard deviation of the fitted values (1 when they do not vary).
    pub std: f64,
}

impl Standardiser {
    /// Mean and standard deviation of `values` (0 and 1 without any).
    pub fn fit(values: impl Iterator<Item = f64>) -> Self {
        let values: Vec<f64> = values.filter(|v| v.is_finite()).collect();
        if values.is_empty() {
            return Self { mean: 0.0, std: 1.0 };
        }
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64;
        Self { mean, std: if variance > 0.0 { variance.sqrt() } else { 1.0 } }
    }

    /// Standardised value; 0 (the mean) when unknown or not finite.
    pub fn apply(&self, value: Option<f64>) -> f32 {
        match value {
            Some(v) if v.is_finite() => ((v - self.mean) / self.std) as f32,
            _ => 0.0,
        }
    }
}

/// Ids known to the model, each list's position + 1 being the embedding row (row 0 = unknown).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vocabulary {
    /// User ids in row order (row = index + 1; row 0 is the unknown user).
    pub users: Vec<i32>,
    /// Movie ids in row order (row = index + 1; row 0 is a movie scored from content alone).
    pub movies: Vec<i32>,
    /// Genre names in column order of the multi-hot vector.
    pub genres: Vec<String>,
    /// Director person ids in row order (row 0: unknown).
    pub directors: Vec<i32>,
    /// Actor person ids in row order (row 0: unknown).
    pub actors: Vec<i32>,
    /// Runtime standardisation.
    pub runtime: Standardiser,
    /// Year standardisation.
    pub year: Standardiser,
    #[serde(skip)]
    index: Indexes,
}

#[derive(Debug, Clone, Default, PartialEq)]
struct Indexes {
    users: HashMap<i32, i64>,
    movies: HashMap<i32, i64>,
    genres: HashMap<String, i64>,
    directors: HashMap<i32, i64>,
    actors: HashMap<i32, i64>,
}

fn rows<K: std::hash::Hash + Eq + Clone>(keys: &[K]) -> HashMap<K, i64> {
    keys.iter().enumerate().map(|(i, k)| (k.clone(), i as i64 + 1)).collect()
}

impl Vocabulary {
    /// The vocabularies from their ids and names in row order, and the feature statistics.
    pub fn new(
        users: Vec<i32>,
        movies: Vec<i32>,
        genres: Vec<String>,
        directors: Vec<i32>,
        actors: Vec<i32>,
        runtime: Standardiser,
        year: Standardiser,
    ) -> Self {
        let mut vocabulary = Self { users, movies, genres, directors, actors, runtime, year, index: Indexes::default() };
        vocabulary.rebuild_index();
        vocabulary
    }

    /// Rebuilds the lookup maps (after deserialising).
    pub fn rebuild_index(&mut self) {
        self.index = Indexes {
            users: rows(&self.users),
            movies: rows(&self.movies),
            genres: rows(&self.genres),
            directors: rows(&self.directors),
            actors: rows(&self.actors),
        };
    }

    /// Vocabulary sizes, as the network's configuration records them.
    pub fn cardinalities(&self) -> Cardinalities {
        Cardinalities {
            users: self.users.len() as i64,
            movies: self.movies.len() as i64,
            genres: self.genres.len() as i64,
            directors: self.directors.len() as i64,
            actors: self.actors.len() as i64,
        }
    }

    /// Embedding row of a user, 0 when the model never saw them.
    pub fn user_row(&self, user_id: i32) -> i64 {
        self.index.users.get(&user_id).copied().unwrap_or(0)
    }

    /// Embedding row of a movie, 0 when the model has no embedding for it (scored from content alone).
    pub fn movie_row(&self, movie_id: i32) -> i64 {
        self.index.movies.get(&movie_id).copied().unwrap_or(0)
    }

    /// Encodes movies' content (with their title embeddings, [N, title_dim]) as network inputs.
    pub fn encode(&self, movies: &[&MovieContent], titles: &Tensor, max_directors: i64, max_actors: i64) -> Result<ContentInputs, ModelError> {
        let n = movies.len();
        let genre_count = self.genres.len();
        let mut genres = vec![0f32; n * genre_count];
        let mut directors = vec![0i64; n * max_directors as usize];
        let mut actors = vec![0i64; n * max_actors as usize];
        let mut numeric = Vec::with_capacity(n * 2);
        for (row, movie) in movies.iter().enumerate() {
            for genre in &movie.genres {
                if let Some(column) = self.index.genres.get(genre) {
                    genres[row * genre_count + (*column as usize - 1)] = 1.0;
                }
            }
            let people = |ids: &[i32], index: &HashMap<i32, i64>, out: &mut [i64]| {
                for (slot, id) in out.iter_mut().zip(ids.iter().filter_map(|id| index.get(id))) {
                    *slot = *id;
                }
            };
            people(&movie.directors, &self.index.directors, &mut directors[row * max_directors as usize..(row + 1) * max_directors as usize]);
            people(&movie.actors, &self.index.actors, &mut actors[row * max_actors as usize..(row + 1) * max_actors as usize]);
            numeric.push(self.runtime.apply(movie.runtime_minutes));
            numeric.push(self.year.apply(movie.year));
        }
        let n = n as i64;
        Ok(ContentInputs {
            genres: Tensor::f_from_slice(&genres)?.f_reshape([n, genre_count as i64])?,
            titles: titles.f_to_kind(Kind::Float)?.f_to_device(Device::Cpu)?,
            directors: Tensor::f_from_slice(&directors)?.f_reshape([n, max_directors])?,
            actors: Tensor::f_from_slice(&actors)?.f_reshape([n, max_actors])?,
            numeric: Tensor::f_from_slice(&numeric)?.f_reshape([n, 2])?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_ids_map_to_row_zero_and_features_encode_in_order() {
        let vocabulary = Vocabulary::new(
            vec![10, 20],
            vec![7],
            vec!["Comedy".into(), "Drama".into()],
            vec![100],
            vec![200, 201],
            Standardiser { mean: 100.0, std: 20.0 },
            Standardiser::fit([1990.0, 2010.0].into_iter()),
        );
        assert_eq!((vocabulary.user_row(20), vocabulary.user_row(99), vocabulary.movie_row(7), vocabulary.movie_row(8)), (2, 0, 1, 0));
        let movie = MovieContent {
            title: "x".into(),
            genres: vec!["Drama".into(), "Horror".into()],
            directors: vec![555, 100],
            actors: vec![201, 999, 200],
            runtime_minutes: Some(140.0),
            year: None,
        };
        let inputs = vocabulary.encode(&[&movie], &Tensor::zeros([1, 4], (Kind::Float, Device::Cpu)), 2, 4).unwrap();
        assert_eq!(Vec::<f32>::try_from(inputs.genres.flatten(0, -1)).unwrap(), [0.0, 1.0]);
        assert_eq!(Vec::<i64>::try_from(inputs.directors.flatten(0, -1)).unwrap(), [1, 0]);
        assert_eq!(Vec::<i64>::try_from(inputs.actors.flatten(0, -1)).unwrap(), [2, 1, 0, 0]);
        assert_eq!(Vec::<f32>::try_from(inputs.numeric.flatten(0, -1)).unwrap(), [2.0, 0.0]);
    }

    #[test]
    fn vocabulary_survives_json_with_its_index() {
        let vocabulary = Vocabulary::new(
            vec![3, 1],
            vec![5],
            vec!["War".into()],
            vec![],
            vec![9],
            Standardiser { mean: 0.0, std: 1.0 },
            Standardiser { mean: 0.0, std: 1.0 },
        );
        let mut restored: Vocabulary = serde_json::from_str(&serde_json::to_string(&vocabulary).unwrap()).unwrap();
        restored.rebuild_index();
        assert_eq!(restored, vocabulary);
        assert_eq!(restored.user_row(1), 2);
    }
}
