//! The BERT encoder of all-MiniLM-L6-v2 for inference: its `Config`, `load` from mapped weights and `forward`.
use crate::mapped::MappedWeights;
use crate::ModelError;
use serde::Deserialize;
use std::path::Path;
use tch::{Kind, Tensor};

/// The encoder's shape, read from the model's `config.json`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Config {
    hidden_size: i64,
    num_attention_heads: i64,
    num_hidden_layers: i64,
    layer_norm_eps: f64,
    hidden_act: String,
}

impl Config {
    /// Reads `config.json`, refusing an architecture this encoder does not implement.
    pub(crate) fn read(path: &Path) -> Result<Self, ModelError> {
        let text = std::fs::read_to_string(path).map_err(|source| ModelError::Unreadable { path: path.to_path_buf(), source })?;
        let config: Self = serde_json::from_str(&text).map_err(|e| ModelError::Embedder(format!("{}: {e}", path.display())))?;
        if config.hidden_act != "gelu" || config.num_attention_heads <= 0 || config.hidden_size % config.num_attention_heads != 0 {
            return Err(ModelError::Embedder(format!("{}: not a BERT encoder this build can run", path.display())));
        }
        Ok(config)
    }
}

struct Linear {
    weight: Tensor,
    bias: Tensor,
}

impl Linear {
    fn load(weights: &Weights, prefix: &str) -> Result<Self, ModelError> {
        Ok(Self { weight: weights.get(&format!("{prefix}.weight"))?, bias: weights.get(&format!("{prefix}.bias"))? })
    }

    fn forward(&self, input: &Tensor) -> Result<Tensor, ModelError> {
        Ok(input.f_linear(&self.weight, Some(&self.bias))?)
    }
}

struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl LayerNorm {
    fn load(weights: &Weights, prefix: &str, eps: f64) -> Result<Self, ModelError> {
        Ok(Self { weight: weights.get(&format!("{prefix}.weight"))?, bias: weights.get(&format!("{prefix}.bias"))?, eps })
    }

    fn forward(&self, input: &Tensor) -> Result<Tensor, ModelError> {
        Ok(input.f_layer_norm([self.weight.size()[0]], Some(&self.weight), Some(&self.bias), self.eps, false)?)
    }
}

struct Layer {
    query: Linear,
    key: Linear,
    value: Linear,
    attention_output: Linear,
    attention_norm: LayerNorm,
    intermediate: Linear,
    output: Linear,
    output_norm: LayerNorm,
}

/// Where the encoder's tensors come from: views of a mapped file, converted to `kind` when it differs.
pub(crate) struct Weights<'a> {
    pub(crate) file: &'a MappedWeights,
    pub(crate) kind: Kind,
}

impl Weights<'_> {
    fn get(&self, name: &str) -> Result<Tensor, ModelError> {
        // SAFETY: a tensor of the file's own kind stays a view of the mapping, which `TitleEmbedder` then keeps
        // after its encoder (`TitleEmbedder::from_file`); one of another kind is converted into its own memory.
        let tensor = unsafe { self.file.tensor(name) }?;
        Ok(if tensor.kind() == self.kind { tensor } else { tensor.f_to_kind(self.kind)? })
    }
}

/// The encoder: token, position and segment embeddings, then the transformer layers.
pub(crate) struct Bert {
    config: Config,
    words: Tensor,
    positions: Tensor,
    segments: Tensor,
    embeddings_norm: LayerNorm,
    layers: Vec<Layer>,
}

impl Bert {
    /// Builds the encoder from `weights` (tensor names as in the sentence-transformers export).
    pub(crate) fn load(config: Config, weights: &Weights) -> Result<Self, ModelError> {
        let eps = config.layer_norm_eps;
        let layers = (0..config.num_hidden_layers)
            .map(|index| {
                let prefix = format!("encoder.layer.{index}");
                Ok(Layer {
                    query: Linear::load(weights, &format!("{prefix}.attention.self.query"))?,
                    key: Linear::load(weights, &format!("{prefix}.attention.self.key"))?,
                    value: Linear::load(weights, &format!("{prefix}.attention.self.value"))?,
                    attention_output: Linear::load(weights, &format!("{prefix}.attention.output.dense"))?,
                    attention_norm: LayerNorm::load(weights, &format!("{prefix}.attention.output.LayerNorm"), eps)?,
                    intermediate: Linear::load(weights, &format!("{prefix}.intermediate.dense"))?,
                    output: Linear::load(weights, &format!("{prefix}.output.dense"))?,
                    output_norm: LayerNorm::load(weights, &format!("{prefix}.output.LayerNorm"), eps)?,
                })
            })
            .collect::<Result<Vec<_>, ModelError>>()?;
        Ok(Self {
            words: weights.get("embeddings.word_embeddings.weight")?,
            positions: weights.get("embeddings.position_embeddings.weight")?,
            segments: weights.get("embeddings.token_type_embeddings.weight")?,
            embeddings_norm: LayerNorm::load(weights, "embeddings.LayerNorm", eps)?,
            layers,
            config,
        })
    }

    /// The element kind of the encoder's weights.
    pub(crate) fn kind(&self) -> Kind {
        self.words.kind()
    }

    /// Hidden states [batch, tokens, hidden] of `token_ids` [batch, tokens] (int64) where `mask` (1 for a token,
    /// 0 for padding) lets attention look.
    pub(crate) fn forward(&self, token_ids: &Tensor, mask: &Tensor) -> Result<Tensor, ModelError> {
        let (batch, length) = token_ids.size2()?;
        let positions = Tensor::f_arange(length, (Kind::Int64, token_ids.device()))?;
        let embedded = Tensor::f_embedding(&self.words, token_ids, -1, false, false)?
            .f_add(&Tensor::f_embedding(&self.positions, &positions, -1, false, false)?.f_unsqueeze(0)?)?
            .f_add(&self.segments.f_get(0)?)?;
        let mut hidden = self.embeddings_norm.forward(&embedded)?;
        let blocked = mask.f_eq(0)?.f_to_kind(hidden.kind())?.f_mul_scalar(-10_000.0)?.f_view([batch, 1, 1, length])?;
        let heads = self.config.num_attention_heads;
        let head_size = self.config.hidden_size / heads;
        let split = |x: Tensor| -> Result<Tensor, ModelError> { Ok(x.f_view([batch, length, heads, head_size])?.f_transpose(1, 2)?) };
        for layer in &self.layers {
            let query = split(layer.query.forward(&hidden)?)?.f_div_scalar((head_size as f64).sqrt())?;
            let key = split(layer.key.forward(&hidden)?)?;
            let value = split(layer.value.forward(&hidden)?)?;
            let scores = query.f_matmul(&key.f_transpose(-1, -2)?)?.f_add(&blocked)?;
            let attention = scores.f_softmax(-1, scores.kind())?;
            let context = attention.f_matmul(&value)?.f_transpose(1, 2)?.f_contiguous()?.f_view([batch, length, self.config.hidden_size])?;
            hidden = layer.attention_norm.forward(&layer.attention_output.forward(&context)?.f_add(&hidden)?)?;
            let expanded = layer.intermediate.forward(&hidden)?.f_gelu("none")?;
            hidden = layer.output_norm.forward(&layer.output.forward(&expanded)?.f_add(&hidden)?)?;
        }
        Ok(hidden)
    }
}
