//! MiniLM's weights as tensors over a memory-mapped safetensors file, so the pages live in the page cache and every
//! process that maps the same file shares one copy; and the bfloat16 copy of the float32 file those processes map.
use crate::ModelError;
use memmap2::Mmap;
use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

/// Metadata key recording the source file a bfloat16 copy was made from (its length and modification time).
const SOURCE_KEY: &str = "pg_recsys_source";

/// A read-only mapping of a safetensors file. Tensors made by [`MappedWeights::tensor`] point into the mapping:
/// whoever holds them must keep this value alive longer (the embedder keeps an `Arc` of it after its tensors).
pub(crate) struct MappedWeights {
    path: PathBuf,
    map: Mmap,
}

impl MappedWeights {
    /// Maps `path` read-only and checks that its header parses.
    pub(crate) fn open(path: &Path) -> Result<Self, ModelError> {
        let unreadable = |source| ModelError::Unreadable { path: path.to_path_buf(), source };
        let file = File::open(path).map_err(unreadable)?;
        // SAFETY: the mapping is read-only and private; the files are written once (the copy by rename) and never
        // modified in place.
        let map = unsafe { Mmap::map(&file) }.map_err(unreadable)?;
        let mapped = Self { path: path.to_path_buf(), map };
        mapped.parse()?;
        Ok(mapped)
    }

    fn parse(&self) -> Result<SafeTensors<'_>, ModelError> {
        SafeTensors::deserialize(&self.map).map_err(|e| ModelError::Embedder(format!("{}: {e:?}", self.path.display())))
    }

    /// The tensor `name` as a view of the mapped bytes (no copy), in the file's own dtype.
    pub(crate) fn tensor(&self, name: &str) -> Result<Tensor, ModelError> {
        let tensors = self.parse()?;
        let view = tensors.tensor(name).map_err(|_| ModelError::Embedder(format!("{} has no tensor {name}", self.path.display())))?;
        let kind = match view.dtype() {
            Dtype::F32 => Kind::Float,
            Dtype::BF16 => Kind::BFloat16,
            other => return Err(ModelError::Embedder(format!("{name} in {} is {other:?}", self.path.display()))),
        };
        let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
        if !(view.data().as_ptr() as usize).is_multiple_of(kind.elt_size_in_bytes()) {
            return Err(ModelError::Embedder(format!("{name} in {} is not aligned", self.path.display())));
        }
        // SAFETY: the view's bytes hold `shape` elements of `kind` (checked by safetensors when parsing), aligned
        // (checked above), and stay mapped as long as `self`, which the caller keeps alive past the tensor.
        Ok(unsafe { Tensor::f_from_blob(view.data().as_ptr(), &shape, &[], kind, Device::Cpu) }?)
    }

    /// The mapped file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The element kind of the file's tensors (of its first floating-point tensor).
    pub(crate) fn kind(&self) -> Option<Kind> {
        let tensors = self.parse().ok()?;
        let dtype = tensors.tensors().into_iter().map(|(_, view)| view.dtype()).find(|d| matches!(d, Dtype::F32 | Dtype::BF16))?;
        Some(if dtype == Dtype::F32 { Kind::Float } else { Kind::BFloat16 })
    }

    /// The metadata value `key` of the file's header.
    fn metadata(&self, key: &str) -> Option<String> {
        let (_, metadata) = SafeTensors::read_metadata(&self.map).ok()?;
        metadata.metadata().as_ref()?.get(key).cloned()
    }
}

/// The bfloat16 copy of the float32 safetensors file `source`, kept in `directory` (created if needed): reused when
/// it was made from the same source (length and modification time), else written afresh and renamed into place,
/// so concurrent writers never expose a partial file.
pub(crate) fn bfloat16_copy(source: &Path, directory: &Path) -> Result<PathBuf, ModelError> {
    let unreadable = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ModelError::Unreadable { path, source }
    };
    let stamp = source_stamp(source)?;
    let target = directory.join(format!("{}.bfloat16.safetensors", super::EMBEDDER_ID));
    if target.is_file() && MappedWeights::open(&target).ok().and_then(|copy| copy.metadata(SOURCE_KEY)).as_deref() == Some(stamp.as_str()) {
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
    let partial = directory.join(format!(".{}.{}.partial", super::EMBEDDER_ID, std::process::id()));
    let metadata = HashMap::from([(SOURCE_KEY.to_string(), stamp)]);
    safetensors::serialize_to_file(views, &Some(metadata), &partial)
        .map_err(|e| ModelError::Embedder(format!("writing {}: {e:?}", partial.display())))?;
    std::fs::rename(&partial, &target).map_err(unreadable(&target))?;
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
