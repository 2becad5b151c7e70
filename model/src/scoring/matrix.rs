//! Float32 tables that the plain-Rust scoring path reads as slices, and the small dense-layer arithmetic it runs on
//! them (one pair at a time, a few microseconds, where a libtorch forward costs ~50 µs of per-op dispatch).
use crate::ModelError;
use tch::{Device, Kind, Tensor};

/// A contiguous float32 CPU tensor whose data can also be read as a slice.
pub(crate) struct Matrix {
    pub(crate) tensor: Tensor,
}

impl Matrix {
    /// An owned contiguous float32 copy of `source`.
    pub(crate) fn copy(source: &Tensor) -> Result<Self, ModelError> {
        Ok(Self { tensor: source.f_to_kind(Kind::Float)?.f_contiguous()?.f_detach_copy()?.f_contiguous()? })
    }

    /// `source` itself (detached, same storage) when it already is a contiguous float32 CPU tensor, else a copy.
    /// A shared table must not be written while its slice is read (the network is read-only once trained).
    pub(crate) fn share(source: &Tensor) -> Result<Self, ModelError> {
        if source.kind() == Kind::Float && source.device() == Device::Cpu && source.is_contiguous() {
            return Ok(Self { tensor: source.f_detach()? });
        }
        Self::copy(source)
    }

    pub(crate) fn as_slice(&self) -> &[f32] {
        if self.tensor.numel() == 0 {
            return &[];
        }
        // SAFETY: `tensor` is a contiguous f32 CPU tensor (checked in `copy`/`share`); nothing writes it while the
        // scorer that holds it is alive.
        unsafe { std::slice::from_raw_parts(self.tensor.data_ptr() as *const f32, self.tensor.numel()) }
    }

    /// Row `row` of a [rows, width] table, `None` outside the table.
    pub(crate) fn row(&self, row: usize, width: usize) -> Option<&[f32]> {
        self.as_slice().chunks_exact(width).nth(row)
    }

    /// Value `index` of a one-dimensional table.
    pub(crate) fn value(&self, index: usize) -> Result<f32, ModelError> {
        self.as_slice()
            .get(index)
            .copied()
            .ok_or_else(|| ModelError::InvalidArgument(format!("row {index} is outside a table of {}", self.tensor.numel())))
    }

    /// Columns per row of a [rows, width] table.
    pub(crate) fn width(&self) -> usize {
        self.tensor.size().get(1).copied().unwrap_or(1) as usize
    }
}

/// A dense layer: weights [outputs, inputs] and bias [outputs].
pub(crate) struct Layer {
    pub(crate) weight: Matrix,
    pub(crate) bias: Matrix,
    pub(crate) inputs: usize,
}

impl Layer {
    pub(crate) fn new(weight: Matrix, bias: Matrix) -> Self {
        let inputs = weight.width();
        Self { weight, bias, inputs }
    }

    pub(crate) fn apply(&self, x: &[f32], out: &mut Vec<f32>, relu: bool) {
        out.clear();
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            return unsafe { matrix_vector_avx2(self, x, out, relu) };
        }
        matrix_vector(self, x, out, relu)
    }

    pub(crate) fn apply_boxed(&self, x: &[f32]) -> Box<[f32]> {
        let mut out = Vec::with_capacity(self.bias.tensor.numel());
        self.apply(x, &mut out, false);
        out.into_boxed_slice()
    }

    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor, ModelError> {
        Ok(x.f_linear(&self.weight.tensor, Some(&self.bias.tensor))?)
    }
}

/// `matrix_vector` compiled for AVX2: its eight accumulators become one 256-bit register (about twice the speed of
/// the baseline x86-64 build's two 128-bit ones).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn matrix_vector_avx2(layer: &Layer, x: &[f32], out: &mut Vec<f32>, relu: bool) {
    matrix_vector(layer, x, out, relu)
}

#[inline(always)]
fn matrix_vector(layer: &Layer, x: &[f32], out: &mut Vec<f32>, relu: bool) {
    for (row, bias) in layer.weight.as_slice().chunks_exact(layer.inputs).zip(layer.bias.as_slice()) {
        let sum = dot_portable(row, x) + bias;
        out.push(if relu { sum.max(0.0) } else { sum });
    }
}

/// Dot product of `a` (float32, or int8 rows of a quantised table) with float32 `b`, compiled for AVX2 where the
/// CPU has it (`dot_portable`).
pub(crate) fn dot<T: Copy>(a: &[T], b: &[f32]) -> f32
where
    f32: From<T>,
{
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2 (checked just above).
        return unsafe { dot_avx2(a, b) };
    }
    dot_portable(a, b)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn dot_avx2<T: Copy>(a: &[T], b: &[f32]) -> f32
where
    f32: From<T>,
{
    dot_portable(a, b)
}

/// Dot product with eight independent accumulators, so the compiler can vectorise it (a single running sum
/// forces sequential float additions).
#[inline(always)]
fn dot_portable<T: Copy>(a: &[T], b: &[f32]) -> f32
where
    f32: From<T>,
{
    let mut lanes = [0f32; 8];
    let (a_chunks, b_chunks) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a_chunks.remainder().iter().zip(b_chunks.remainder()).map(|(x, y)| f32::from(*x) * y).sum();
    for (x, y) in a_chunks.zip(b_chunks) {
        for lane in 0..8 {
            lanes[lane] += f32::from(x[lane]) * y[lane];
        }
    }
    lanes.iter().sum::<f32>() + tail
}
