//! Safetensors files as tensors over a memory mapping, so the pages live in the page cache and every process that
//! maps the same file shares one copy (MiniLM's weights, a model's and a catalogue's serving tables), and the atomic
//! write of such a file (renamed into place, so a reader never sees a partial one).
use crate::ModelError;
use memmap2::{MmapMut, MmapOptions};
use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

/// A read-only mapping of a safetensors file. Tensors made by [`MappedWeights::tensor`] point into the mapping:
/// whoever holds them must keep this value alive longer (its holders keep an `Arc` of it after their tensors).
pub(crate) struct MappedWeights {
    path: PathBuf,
    map: MmapMut,
}

impl MappedWeights {
    /// Maps `path` read-only and checks that its header parses.
    pub(crate) fn open(path: &Path) -> Result<Self, ModelError> {
        let unreadable = |source| ModelError::Unreadable { path: path.to_path_buf(), source };
        let file = File::open(path).map_err(unreadable)?;
        // SAFETY: a private copy-on-write mapping: the files are written once (renamed into place) and never modified
        // in place, and a write through the mapping (none is made) would change this process's copy of a page only.
        let map = unsafe { MmapOptions::new().map_copy(&file) }.map_err(unreadable)?;
        let mapped = Self { path: path.to_path_buf(), map };
        mapped.parse()?;
        Ok(mapped)
    }

    pub(crate) fn parse(&self) -> Result<SafeTensors<'_>, ModelError> {
        SafeTensors::deserialize(&self.map).map_err(|e| ModelError::MappedFile(format!("{}: {e:?}", self.path.display())))
    }

    /// The tensor `name` as a view of the mapped bytes (no copy), in the file's own dtype.
    pub(crate) fn tensor(&self, name: &str) -> Result<Tensor, ModelError> {
        let tensors = self.parse()?;
        let view = tensors.tensor(name).map_err(|_| ModelError::MappedFile(format!("{} has no tensor {name}", self.path.display())))?;
        let kind = match view.dtype() {
            Dtype::F32 => Kind::Float,
            Dtype::BF16 => Kind::BFloat16,
            Dtype::I64 => Kind::Int64,
            other => return Err(ModelError::MappedFile(format!("{name} in {} is {other:?}", self.path.display()))),
        };
        let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
        if !(view.data().as_ptr() as usize).is_multiple_of(kind.elt_size_in_bytes()) {
            return Err(ModelError::MappedFile(format!("{name} in {} is not aligned", self.path.display())));
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
    pub(crate) fn metadata(&self, key: &str) -> Option<String> {
        let (_, metadata) = SafeTensors::read_metadata(&self.map).ok()?;
        metadata.metadata().as_ref()?.get(key).cloned()
    }

    /// Whether the file holds a tensor `name`.
    pub(crate) fn has(&self, name: &str) -> bool {
        self.parse().is_ok_and(|tensors| tensors.tensor(name).is_ok())
    }

    /// The file's bytes, as mapped.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.map
    }
}

/// Writes `tensors` (float32, bfloat16 or int64, any layout) and `metadata` as the safetensors file `target`,
/// atomically (`replace_atomically`).
pub(crate) fn write_atomically(target: &Path, tensors: &[(&str, &Tensor)], metadata: HashMap<String, String>) -> Result<(), ModelError> {
    let mut contents: Vec<(&str, Dtype, Vec<usize>, Vec<u8>)> = Vec::with_capacity(tensors.len());
    for (name, tensor) in tensors {
        let dtype = match tensor.kind() {
            Kind::Float => Dtype::F32,
            Kind::BFloat16 => Dtype::BF16,
            Kind::Int64 => Dtype::I64,
            other => return Err(ModelError::MappedFile(format!("{name} is {other:?}, only float32, bfloat16 and int64 are written"))),
        };
        let tensor = tensor.f_contiguous()?;
        let mut bytes = vec![0u8; tensor.numel() * tensor.kind().elt_size_in_bytes()];
        tensor.f_copy_data_u8(&mut bytes, tensor.numel())?;
        contents.push((name, dtype, tensor.size().iter().map(|d| *d as usize).collect(), bytes));
    }
    let views = contents
        .iter()
        .map(|(name, dtype, shape, bytes)| {
            TensorView::new(*dtype, shape.clone(), bytes).map(|view| (*name, view)).map_err(|e| ModelError::MappedFile(format!("{name}: {e:?}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    replace_atomically(target, |partial| {
        safetensors::serialize_to_file(views, &Some(metadata), partial)
            .map_err(|e| ModelError::MappedFile(format!("writing {}: {e:?}", partial.display())))
    })
}

/// Writes `bytes` as the file `target`, atomically (`replace_atomically`).
pub(crate) fn write_bytes_atomically(target: &Path, bytes: &[u8]) -> Result<(), ModelError> {
    replace_atomically(target, |partial| {
        std::fs::write(partial, bytes).map_err(|source| ModelError::Unreadable { path: partial.to_path_buf(), source })
    })
}

/// Runs `write` on a partial file beside `target` (named after this process), then renames it into place, so
/// concurrent writers and readers never see a partial file; creates the directory if needed.
fn replace_atomically(target: &Path, write: impl FnOnce(&Path) -> Result<(), ModelError>) -> Result<(), ModelError> {
    let failed = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ModelError::Unreadable { path, source }
    };
    let directory = target.parent().ok_or_else(|| ModelError::MappedFile(format!("{} has no directory", target.display())))?;
    std::fs::create_dir_all(directory).map_err(failed(directory))?;
    let file_name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let partial = directory.join(format!(".{file_name}.{}.partial", std::process::id()));
    if let Err(e) = write(&partial) {
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    std::fs::rename(&partial, target).map_err(failed(target))
}
