//! Safetensors files as tensors over a memory mapping, so the pages live in the page cache and every process that
//! maps the same file shares one copy (MiniLM's weights, a model's and a catalogue's serving tables), and the atomic,
//! checksummed write of such a file (flushed and renamed into place, so a reader never sees a partial one).
use crate::ModelError;
use memmap2::{MmapMut, MmapOptions};
use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;
use std::collections::HashMap;
use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

/// Metadata key of the CRC-32 of a written file's data section (8 hex digits), checked before a file is reused.
const CHECKSUM_KEY: &str = "pg_recsys_crc32";

/// The checksum field's value while the data section is being written; its 8 characters are then overwritten
/// with the CRC-32 in hex (same length, so no offset moves).
const UNFILLED_CHECKSUM: &str = "________";

/// A read-only mapping of a safetensors file. Tensors made by [`MappedWeights::tensor`] point into the mapping, so
/// making one is `unsafe`: its holder must keep this value alive longer (see `scoring::SharedFile`).
pub(crate) struct MappedWeights {
    path: PathBuf,
    file: File,
    map: MmapMut,
    modified: Option<std::time::SystemTime>,
}

impl MappedWeights {
    /// Maps `path` read-only and checks that its header parses (for files installed by others, such as MiniLM's).
    pub(crate) fn open(path: &Path) -> Result<Self, ModelError> {
        let unreadable = |source| ModelError::Unreadable { path: path.to_path_buf(), source };
        let file = File::open(path).map_err(unreadable)?;
        let modified = file.metadata().and_then(|m| m.modified()).ok();
        // SAFETY: a private copy-on-write mapping: the files are written once (renamed into place) and never modified
        // in place, and a write through the mapping (none is made) would change this process's copy of a page only.
        // A file changed in place anyway is noticed by `changed_on_disk` between statements, before it is read again.
        let map = unsafe { MmapOptions::new().map_copy(&file) }.map_err(unreadable)?;
        let mapped = Self { path: path.to_path_buf(), file, map, modified };
        mapped.parse()?;
        Ok(mapped)
    }

    /// Maps a file this crate wrote (`write_atomically`): its size must match its header and its data section its
    /// checksum, so a truncated, corrupted or foreign file is refused (and rebuilt by the caller), never served.
    pub(crate) fn open_verified(path: &Path) -> Result<Self, ModelError> {
        let mapped = Self::open(path)?;
        let data = data_section(&mapped.map).ok_or_else(|| mapped.damaged("its size does not match its header"))?;
        match mapped.metadata(CHECKSUM_KEY) {
            Some(stored) if stored == format!("{:08x}", crc32fast::hash(data)) => Ok(mapped),
            Some(_) => Err(mapped.damaged("its data does not match its checksum")),
            None => Err(mapped.damaged("it has no checksum")),
        }
    }

    fn damaged(&self, why: &str) -> ModelError {
        ModelError::MappedFile(format!("{}: {why}", self.path.display()))
    }

    /// Whether the mapped file was changed in place since it was mapped (its length or modification time differ):
    /// its pages must not be read again (a truncated file's would fault). Files renamed over it do not count.
    pub(crate) fn changed_on_disk(&self) -> bool {
        match self.file.metadata() {
            Ok(now) => now.len() != self.map.len() as u64 || now.modified().ok() != self.modified,
            Err(_) => true,
        }
    }

    pub(crate) fn parse(&self) -> Result<SafeTensors<'_>, ModelError> {
        SafeTensors::deserialize(&self.map).map_err(|e| ModelError::MappedFile(format!("{}: {e:?}", self.path.display())))
    }

    /// The tensor `name` as a view of the mapped bytes (no copy), in the file's own dtype.
    ///
    /// # Safety
    /// The tensor (and every tensor sharing its storage) reads the mapping: it must be dropped before `self`.
    pub(crate) unsafe fn tensor(&self, name: &str) -> Result<Tensor, ModelError> {
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
        Ok(Tensor::f_from_blob(view.data().as_ptr(), &shape, &[], kind, Device::Cpu)?)
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

/// The data section of safetensors bytes (after the 8-byte header length and the header), when the bytes are as
/// long as the header says.
fn data_section(bytes: &[u8]) -> Option<&[u8]> {
    let header = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?) as usize;
    bytes.get(8usize.checked_add(header)?..)
}

/// Writes `tensors` (float32, bfloat16 or int64, any layout) and `metadata` as the safetensors file `target`, with
/// its checksum, atomically (`write_views_atomically`).
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
    write_views_atomically(target, views, metadata)
}

/// Writes tensor `views` and `metadata` as the safetensors file `target` with the CRC-32 of its data section in
/// its header (`open_verified` checks it), atomically: written to a temporary file beside it, its checksum filled
/// in from the bytes on disk, flushed, renamed into place, and the directory flushed, so readers see the whole file
/// or none, also after a crash.
pub(crate) fn write_views_atomically(
    target: &Path,
    views: Vec<(&str, TensorView<'_>)>,
    mut metadata: HashMap<String, String>,
) -> Result<(), ModelError> {
    metadata.insert(CHECKSUM_KEY.to_string(), UNFILLED_CHECKSUM.to_string());
    replace_atomically(target, |partial| {
        let failed = |e: std::io::Error| ModelError::Unreadable { path: partial.to_path_buf(), source: e };
        safetensors::serialize_to_file(views, &Some(metadata), partial)
            .map_err(|e| ModelError::MappedFile(format!("writing {}: {e:?}", partial.display())))?;
        let (digits_at, checksum) = {
            let file = File::open(partial).map_err(failed)?;
            // SAFETY: the temporary file is this process's own until it is renamed; nothing else writes it.
            let written = unsafe { memmap2::Mmap::map(&file) }.map_err(failed)?;
            let data = data_section(&written).ok_or_else(|| ModelError::MappedFile(format!("{} is shorter than its header", partial.display())))?;
            let field = format!("\"{CHECKSUM_KEY}\":\"{UNFILLED_CHECKSUM}\"");
            let header = &written[..written.len() - data.len()];
            let at = header
                .windows(field.len())
                .position(|window| window == field.as_bytes())
                .ok_or_else(|| ModelError::MappedFile(format!("{} has no checksum field", partial.display())))?;
            (at + field.len() - 1 - UNFILLED_CHECKSUM.len(), crc32fast::hash(data))
        };
        let mut file = std::fs::OpenOptions::new().write(true).open(partial).map_err(failed)?;
        file.seek(SeekFrom::Start(digits_at as u64)).map_err(failed)?;
        file.write_all(format!("{checksum:08x}").as_bytes()).map_err(failed)
    })
}

/// Writes `bytes` as the file `target`, atomically (`replace_atomically`).
pub(crate) fn write_bytes_atomically(target: &Path, bytes: &[u8]) -> Result<(), ModelError> {
    replace_atomically(target, |partial| {
        std::fs::write(partial, bytes).map_err(|source| ModelError::Unreadable { path: partial.to_path_buf(), source })
    })
}

/// Runs `write` on a temporary file beside `target`, flushes it to disk, renames it into place and flushes the
/// directory, so concurrent writers and readers never see a partial file, nor does anyone after a crash; creates
/// the directory if needed. A failed write leaves no temporary file behind.
fn replace_atomically(target: &Path, write: impl FnOnce(&Path) -> Result<(), ModelError>) -> Result<(), ModelError> {
    let failed = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ModelError::Unreadable { path, source }
    };
    let directory = target.parent().ok_or_else(|| ModelError::MappedFile(format!("{} has no directory", target.display())))?;
    std::fs::create_dir_all(directory).map_err(failed(directory))?;
    let file_name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let partial = tempfile::Builder::new().prefix(&format!(".{file_name}.")).suffix(".partial").tempfile_in(directory).map_err(failed(directory))?;
    write(partial.path())?;
    partial.as_file().sync_all().map_err(failed(partial.path()))?;
    partial.persist(target).map_err(|e| ModelError::Unreadable { path: target.to_path_buf(), source: e.error })?;
    File::open(directory).and_then(|d| d.sync_all()).map_err(failed(directory))
}
