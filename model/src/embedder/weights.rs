//! The bfloat16 copy of MiniLM's float32 safetensors file, made once per server and memory-mapped by every process
//! that embeds titles in bfloat16 (`crate::mapped`), so its pages are shared.
use crate::mapped::{self, MappedWeights};
use crate::ModelError;
use safetensors::tensor::{Dtype, TensorView};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Metadata key recording the source file a bfloat16 copy was made from (its length and modification time).
const SOURCE_KEY: &str = "pg_recsys_source";

/// The bfloat16 copy of the float32 safetensors file `source`, kept in `directory` (created if needed): reused when
/// it was made from the same source (length and modification time) and its checksum holds, else written afresh
/// (`mapped::write_views_atomically`).
pub(crate) fn bfloat16_copy(source: &Path, directory: &Path) -> Result<PathBuf, ModelError> {
    let unreadable = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ModelError::Unreadable { path, source }
    };
    let stamp = source_stamp(source)?;
    let target = directory.join(format!("{}.bfloat16.safetensors", super::EMBEDDER_ID));
    if target.is_file() && MappedWeights::open_verified(&target).ok().and_then(|copy| copy.metadata(SOURCE_KEY)).as_deref() == Some(stamp.as_str()) {
        return Ok(target);
    }
    std::fs::create_dir_all(directory).map_err(unreadable(directory))?;
    let float32 = MappedWeights::open(source)?;
    let tensors = float32.parse()?;
    let mut converted: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, view) in tensors.tensors() {
        if view.dtype() == Dtype::F32 {
            let values: Vec<f32> = bytemuck::pod_collect_to_vec(view.data());
            let halves: Vec<u16> = values.into_iter().map(bfloat16_bits).collect();
            converted.push((name, view.shape().to_vec(), bytemuck::cast_slice(&halves).to_vec()));
        }
    }
    let views = converted
        .iter()
        .map(|(name, shape, bytes)| {
            TensorView::new(Dtype::BF16, shape.clone(), bytes).map(|view| (name.as_str(), view)).map_err(|e| ModelError::Embedder(format!("{e:?}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    mapped::write_views_atomically(&target, views, HashMap::from([(SOURCE_KEY.to_string(), stamp)]))?;
    Ok(target)
}

/// Identifies a version of `source`: its length and modification time.
fn source_stamp(source: &Path) -> Result<String, ModelError> {
    let metadata = std::fs::metadata(source).map_err(|e| ModelError::Unreadable { path: source.to_path_buf(), source: e })?;
    let modified = metadata.modified().ok().and_then(|time| time.duration_since(std::time::UNIX_EPOCH).ok()).map(|d| d.as_nanos()).unwrap_or(0);
    Ok(format!("{} bytes, modified {modified} ns", metadata.len()))
}

/// The bfloat16 nearest to `value` (ties to even), as libtorch rounds; NaN stays NaN.
fn bfloat16_bits(value: f32) -> u16 {
    if value.is_nan() {
        return 0x7FC0;
    }
    let bits = value.to_bits();
    ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) as u16
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Kind, Tensor};

    #[test]
    fn bfloat16_rounding_is_libtorchs() {
        let values: Vec<f32> = vec![
            0.0,
            -0.0,
            1.0,
            f32::from_bits(0x3F80_8000),
            f32::from_bits(0x3F81_8000),
            -2.71,
            65504.0,
            1e-40,
            f32::MAX,
            f32::INFINITY,
            0.1,
            -7.77e-5,
        ];
        let ours: Vec<u16> = values.iter().map(|&v| bfloat16_bits(v)).collect();
        let theirs = Tensor::from_slice(&values).to_kind(Kind::BFloat16);
        let mut bytes = vec![0u8; values.len() * 2];
        theirs.copy_data_u8(&mut bytes, values.len());
        assert_eq!(ours, bytemuck::cast_slice::<u8, u16>(&bytes).to_vec());
    }
}
