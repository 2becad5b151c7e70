//! A catalogue's serving tables shared through a file (`scoring::shared`): the network computes them once, writes
//! them beside its mapped weights, and every later load with the same weights, movie rows and content maps them.
use super::HybridRecommender;
use crate::mapped::{self, MappedWeights};
use crate::scoring::shared::{matching_catalogue, WEIGHTS_KEY};
use crate::scoring::{AutoencoderMovies, CatalogueScorer, Matrix, MovieTables, Precision, SharedFile};
use crate::ModelError;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use tch::{Kind, Tensor};

impl HybridRecommender {
    /// A scorer over the catalogue `movie_rows` with encoded `content` whose catalogue-sized tables (movie inputs,
    /// biases and vectors, the first layer's movie part in float32 and, where the CPU computes it natively,
    /// bfloat16) are mapped from the shared `file`: used when it was computed from the same `weights` file, movie
    /// rows and content, else computed and written first. Returns the scorer and `content` as mapped from the file
    /// (so the caller can drop its own copy).
    pub fn shared_catalogue_scorer(
        &self,
        weights: &SharedFile,
        movie_rows: &Tensor,
        content: &Tensor,
        file: &Path,
    ) -> Result<(CatalogueScorer, Tensor), ModelError> {
        let identity = weights.identity()?;
        let mapping = match matching_catalogue(file, &identity, movie_rows, content) {
            Some(mapping) => mapping,
            None => {
                self.write_catalogue(file, &identity, movie_rows, content)?;
                MappedWeights::open_verified(file)?
            }
        };
        // SAFETY (every `mapping.tensor` below): the tables read the mapping; the scorer returned owns it (in its
        // SharedFile, dropped after its tables) and the caller keeps the content tensor with that scorer.
        let optional = |name: &str| -> Result<Option<Tensor>, ModelError> {
            Ok(match mapping.has(name) {
                true => Some(unsafe { mapping.tensor(name) }?),
                false => None,
            })
        };
        let movies = MovieTables {
            inputs: unsafe { mapping.tensor("movie_inputs") }?,
            bias: unsafe { mapping.tensor("movie_bias") }?,
            vectors: optional("movie_vectors")?,
            autoencoder: match (optional("autoencoder_code")?, optional("autoencoder_known")?) {
                (Some(code), Some(known)) => Some(AutoencoderMovies { code, known }),
                _ => None,
            },
        };
        let (movie_table, movie_table_bf16, mapped_content) =
            (Matrix::share(&unsafe { mapping.tensor("movie_table") }?)?, optional("movie_table_bf16")?, unsafe { mapping.tensor("content") }?);
        let tables = self.scoring_tables_over(&movies)?;
        let file = SharedFile { mapping: Arc::new(mapping) };
        let scale = (self.config().rating_min, self.config().rating_max);
        Ok((CatalogueScorer::over_shared_file(tables, scale, movie_table, movie_table_bf16, file), mapped_content))
    }

    fn write_catalogue(&self, file: &Path, identity: &str, movie_rows: &Tensor, content: &Tensor) -> Result<(), ModelError> {
        let movies = self.movie_tables(movie_rows, content)?;
        let movie_table = tch::no_grad(|| self.scoring_tables_over(&movies)?.movie_layer.forward(&movies.inputs))?;
        let movie_table_bf16 = match Precision::fastest_available() {
            Precision::Bfloat16 => Some(movie_table.f_to_kind(Kind::BFloat16)?),
            Precision::Float32 => None,
        };
        let content = content.f_to_kind(Kind::Float)?;
        let mut tensors: Vec<(&str, &Tensor)> = vec![
            ("movie_rows", movie_rows),
            ("content", &content),
            ("movie_inputs", &movies.inputs),
            ("movie_bias", &movies.bias),
            ("movie_table", &movie_table),
        ];
        if let Some(vectors) = &movies.vectors {
            tensors.push(("movie_vectors", vectors));
        }
        if let Some(autoencoder) = &movies.autoencoder {
            tensors.extend([("autoencoder_code", &autoencoder.code), ("autoencoder_known", &autoencoder.known)]);
        }
        if let Some(half) = &movie_table_bf16 {
            tensors.push(("movie_table_bf16", half));
        }
        mapped::write_atomically(file, &tensors, HashMap::from([(WEIGHTS_KEY.to_string(), identity.to_string())]))
    }
}
