//! The encoded catalogue of a model version — movie ids, titles, embedding rows and encoded content vectors — and
//! its serving snapshot in recsys.model_snapshots, written when the version is activated so that a backend loads a
//! model without re-reading and re-encoding every movie. On load, movies deleted since are dropped and movies added
//! since are read and encoded.
use crate::error::RecsysError;
use crate::model_cache::{encode, read_catalogue};
use pgrx::prelude::*;
use recsys_model::{HybridRecommender, Vocabulary};
use tch::{Kind, Tensor};

pub struct EncodedCatalogue {
    pub movie_ids: Vec<i32>,
    pub titles: Vec<String>,
    /// Embedding row of each movie (0 = scored from content alone).
    pub movie_rows: Vec<i64>,
    /// [movies, content_dim].
    pub content: Tensor,
}

impl EncodedCatalogue {
    /// Reads and encodes the movies `filter` selects (a SQL WHERE clause on `m`, or empty for all).
    pub fn compute(network: &HybridRecommender, vocabulary: &Vocabulary, filter: &str) -> Result<Self, RecsysError> {
        let (movie_ids, contents, titles) = read_catalogue(filter)?;
        let content = encode(network, vocabulary, &contents, &titles)?;
        let movie_rows = movie_ids.iter().map(|m| vocabulary.movie_row(*m)).collect();
        Ok(Self { movie_ids, titles: contents.into_iter().map(|c| c.title).collect(), movie_rows, content })
    }

    /// Keeps only the movies in `ids` (sorted), and returns the ids of `ids` this catalogue does not have.
    pub fn retain_and_report_missing(mut self, ids: &[i32]) -> Result<(Self, Vec<i32>), RecsysError> {
        let keep: Vec<usize> = (0..self.movie_ids.len()).filter(|i| ids.binary_search(&self.movie_ids[*i]).is_ok()).collect();
        let have: std::collections::HashSet<i32> = keep.iter().map(|i| self.movie_ids[*i]).collect();
        let missing = ids.iter().copied().filter(|id| !have.contains(id)).collect();
        if keep.len() < self.movie_ids.len() {
            let index = Tensor::f_from_slice(&keep.iter().map(|i| *i as i64).collect::<Vec<_>>())?;
            self.content = self.content.f_index_select(0, &index)?;
            self.movie_ids = keep.iter().map(|i| self.movie_ids[*i]).collect();
            self.titles = keep.iter().map(|i| std::mem::take(&mut self.titles[*i])).collect();
            self.movie_rows = keep.iter().map(|i| self.movie_rows[*i]).collect();
        }
        Ok((self, missing))
    }

    /// Appends `other`'s movies.
    pub fn extend(mut self, other: Self) -> Result<Self, RecsysError> {
        if other.movie_ids.is_empty() {
            return Ok(self);
        }
        self.content = Tensor::f_cat(&[&self.content, &other.content], 0)?;
        self.movie_ids.extend(other.movie_ids);
        self.titles.extend(other.titles);
        self.movie_rows.extend(other.movie_rows);
        Ok(self)
    }

    /// The snapshot stored for `version`, if its content width matches the network's.
    pub fn read_snapshot(version: i64, content_dim: i64) -> Result<Option<Self>, RecsysError> {
        type Stored = (Vec<i32>, Vec<String>, Vec<i64>, Vec<u8>);
        let stored: Option<Stored> = Spi::connect(|client| -> Result<Option<Stored>, pgrx::spi::Error> {
            let table = client.select(&format!("SELECT movie_ids, titles, movie_rows, content FROM recsys.model_snapshots WHERE version = {version}"), Some(1), &[])?;
            if table.is_empty() {
                return Ok(None);
            }
            let row = table.first();
            Ok(Some((row.get(1)?.unwrap_or_default(), row.get(2)?.unwrap_or_default(), row.get(3)?.unwrap_or_default(), row.get(4)?.unwrap_or_default())))
        })
        .map_err(RecsysError::spi("reading the model snapshot"))?;
        let Some((movie_ids, titles, movie_rows, bytes)) = stored else { return Ok(None) };
        let movies = movie_ids.len();
        if titles.len() != movies || movie_rows.len() != movies || bytes.len() != movies * content_dim as usize * 4 {
            return Ok(None);
        }
        let values: Vec<f32> = bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        let content = Tensor::f_from_slice(&values)?.f_reshape([movies as i64, content_dim])?;
        Ok(Some(Self { movie_ids, titles, movie_rows, content }))
    }

    /// Stores this catalogue as the snapshot of `version`, replacing an older one.
    pub fn write_snapshot(&self, version: i64) -> Result<(), RecsysError> {
        let values = Vec::<f32>::try_from(self.content.f_to_kind(Kind::Float)?.f_contiguous()?.f_flatten(0, -1)?).map_err(recsys_model::ModelError::from)?;
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        Spi::connect_mut(|client| -> Result<(), pgrx::spi::Error> {
            client.update(
                &format!(
                    "INSERT INTO recsys.model_snapshots (version, movie_ids, titles, movie_rows, content) VALUES ({version}, $1, $2, $3, $4)
                     ON CONFLICT (version) DO UPDATE SET built_at = now(), movie_ids = EXCLUDED.movie_ids, titles = EXCLUDED.titles,
                                                         movie_rows = EXCLUDED.movie_rows, content = EXCLUDED.content"
                ),
                None,
                &[self.movie_ids.clone().into(), self.titles.clone().into(), self.movie_rows.clone().into(), bytes.into()],
            )?;
            Ok(())
        })
        .map_err(RecsysError::spi("writing the model snapshot"))
    }
}
