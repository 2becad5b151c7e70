//! The network's dense layers: a fallible linear layer and an MLP (dense → ReLU → optional dropout mask per layer),
//! whose training forward can run its matrix products in bfloat16.
use crate::scoring::Precision;
use tch::{nn, Kind, TchError, Tensor};

/// A dense layer with fallible forward.
#[derive(Debug)]
pub(crate) struct Dense {
    pub(crate) weight: Tensor,
    pub(crate) bias: Tensor,
}

impl Dense {
    pub(crate) fn new(path: nn::Path, inputs: i64, outputs: i64, random: bool) -> Self {
        let bound = 1.0 / (inputs as f64).sqrt();
        let init = if random { nn::Init::Uniform { lo: -bound, up: bound } } else { nn::Init::Const(0.0) };
        Self { weight: path.var("weight", &[outputs, inputs], init), bias: path.var("bias", &[outputs], init) }
    }

    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor, TchError> {
        x.f_linear(&self.weight, Some(&self.bias))
    }

    #[cfg(feature = "train")]
    pub(crate) fn shallow_clone(&self) -> Self {
        Self { weight: self.weight.shallow_clone(), bias: self.bias.shallow_clone() }
    }
}

/// Dense → ReLU (→ a training step's dropout mask), for each width.
#[derive(Debug)]
pub(crate) struct Mlp {
    pub(crate) layers: Vec<Dense>,
}

impl Mlp {
    pub(crate) fn new(path: nn::Path, inputs: i64, widths: &[i64], random: bool) -> Self {
        let mut layers = Vec::with_capacity(widths.len());
        let mut previous = inputs;
        for (index, width) in widths.iter().enumerate() {
            layers.push(Dense::new(&path / index.to_string(), previous, *width, random));
            previous = *width;
        }
        Self { layers }
    }

    /// `masks` (training only): one scaled dropout mask per layer.
    #[cfg(feature = "train")]
    pub(crate) fn forward(&self, x: &Tensor, masks: Option<&[Tensor]>, precision: Precision) -> Result<Tensor, TchError> {
        self.forward_from(0, x.shallow_clone(), masks, precision)
    }

    /// The layers from `first` on, given `x`: the input of layer `first`, or with `first` > 0 the output of
    /// layer `first - 1` before its ReLU and dropout. With `Precision::Bfloat16` the activations, weights and masks
    /// are bfloat16 from `x` to the last layer (libtorch's autograd returns float32 gradients to the float32
    /// weights) and the result is float32 again.
    pub(crate) fn forward_from(&self, first: usize, x: Tensor, masks: Option<&[Tensor]>, precision: Precision) -> Result<Tensor, TchError> {
        let kind = match precision {
            Precision::Float32 => Kind::Float,
            Precision::Bfloat16 => Kind::BFloat16,
        };
        let cast = |t: &Tensor| if kind == Kind::Float { Ok(t.shallow_clone()) } else { t.f_to_kind(kind) };
        let mut h = cast(&x)?;
        for (index, layer) in self.layers.iter().enumerate() {
            if index >= first {
                h = h.f_linear(&cast(&layer.weight)?, Some(&cast(&layer.bias)?))?;
            }
            if index + 1 >= first {
                h = h.f_relu()?;
                if let Some(mask) = masks.and_then(|m| m.get(index)) {
                    h = h.f_mul(&cast(mask)?)?;
                }
            }
        }
        if kind == Kind::Float {
            Ok(h)
        } else {
            h.f_to_kind(Kind::Float)
        }
    }

    #[cfg(feature = "train")]
    pub(crate) fn widths(&self) -> Vec<i64> {
        self.layers.iter().map(|l| l.bias.size()[0]).collect()
    }

    #[cfg(feature = "train")]
    pub(crate) fn shallow_clone(&self) -> Self {
        Self { layers: self.layers.iter().map(Dense::shallow_clone).collect() }
    }
}
