//! One copy per server of a model's large tables: the network's weights and a catalogue's serving tables as
//! safetensors files, written once by the first process that needs them and memory-mapped by every other, so their
//! pages are the page cache's, shared by every backend, and private memory stays flat as the catalogue grows.
use crate::mapped::{self, MappedWeights};
use crate::ModelError;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;
use tch::{nn, Tensor};

/// Metadata key of a catalogue file: the identity of the weights file its tables were computed with.
pub(crate) const WEIGHTS_KEY: &str = "pg_recsys_weights";

/// A mapped shared file. Tensors pointing into it must be dropped before its last holder: each holder declares it
/// after the tensors it keeps.
#[derive(Clone)]
pub struct SharedFile {
    pub(crate) mapping: Arc<MappedWeights>,
}

impl SharedFile {
    /// The mapped file.
    pub fn path(&self) -> &Path {
        self.mapping.path()
    }

    /// Whether the file was changed in place since it was mapped: its pages must not be read again.
    pub fn changed_on_disk(&self) -> bool {
        self.mapping.changed_on_disk()
    }

    /// Identifies this file's contents for the files derived from it: device, inode, length and modification time
    /// (a rewritten file is a new inode, as every write renames a new file into place).
    pub(crate) fn identity(&self) -> Result<String, ModelError> {
        let metadata = std::fs::metadata(self.path()).map_err(|source| ModelError::Unreadable { path: self.path().to_path_buf(), source })?;
        Ok(format!("{}:{}:{}:{}", metadata.dev(), metadata.ino(), metadata.len(), metadata.mtime_nsec() + metadata.mtime() * 1_000_000_000))
    }
}

/// Points every variable of `store` into the file `file`, which must hold exactly `weights` (the artefact's
/// safetensors bytes the store was built from): mapped when it already does, else written first. The variables'
/// own memory is released; they read the shared pages from then on (never written: the network serves only).
pub fn share_variables(store: &nn::VarStore, weights: &[u8], file: &Path) -> Result<SharedFile, ModelError> {
    let mapping = match MappedWeights::open(file) {
        Ok(mapping) if mapping.bytes() == weights => mapping,
        _ => {
            mapped::write_bytes_atomically(file, weights)?;
            let written = MappedWeights::open(file)?;
            if written.bytes() != weights {
                return Err(ModelError::MappedFile(format!("{} does not hold what was written", file.display())));
            }
            written
        }
    };
    tch::no_grad(|| -> Result<(), ModelError> {
        for (name, mut variable) in store.variables() {
            // SAFETY: the variable reads the mapping from now on; the returned SharedFile owns it, and its holder
            // drops the store (and the network built on it) before it (see `SharedFile`).
            let mapped = unsafe { mapping.tensor(&name) }?;
            if mapped.size() != variable.size() || mapped.kind() != variable.kind() {
                return Err(ModelError::MappedFile(format!("{name} in {} does not match the network", file.display())));
            }
            variable.set_data(&mapped);
        }
        Ok(())
    })?;
    Ok(SharedFile { mapping: Arc::new(mapping) })
}

/// The catalogue file `file` when it was computed from the weights file `identity`, `movie_rows` and `content`.
pub(crate) fn matching_catalogue(file: &Path, identity: &str, movie_rows: &Tensor, content: &Tensor) -> Option<MappedWeights> {
    let mapping = MappedWeights::open_verified(file).ok()?;
    if mapping.metadata(WEIGHTS_KEY).as_deref() != Some(identity) {
        return None;
    }
    // SAFETY: each mapped tensor is compared and dropped while `mapping` is alive.
    let same = |name: &str, expected: &Tensor| {
        unsafe { mapping.tensor(name) }.is_ok_and(|mapped| mapped.size() == expected.size() && mapped.equal(expected))
    };
    (same("movie_rows", movie_rows) && same("content", content)).then_some(mapping)
}

#[cfg(all(test, feature = "train"))]
mod tests {
    use super::*;
    use crate::network::tests::{content, small_config};
    use crate::scoring::{CatalogueScorer, Precision};
    use crate::HybridRecommender;
    use std::collections::HashMap;
    use std::os::unix::fs::MetadataExt;
    use tch::Device;
    use tch::Kind;

    fn inode(path: &Path) -> u64 {
        std::fs::metadata(path).unwrap().ino()
    }

    fn inside(tensor: &Tensor, file: &SharedFile) -> bool {
        let bytes = file.mapping.bytes();
        (bytes.as_ptr() as usize..bytes.as_ptr() as usize + bytes.len()).contains(&(tensor.data_ptr() as usize))
    }

    #[test]
    fn scorers_over_shared_files_score_as_private_ones_and_later_loads_map_without_writing() {
        tch::manual_seed(11);
        let dir = std::env::temp_dir().join(format!("recsys-shared-tables-{}", std::process::id()));
        let (weights_file, catalogue_file) = (dir.join("model.safetensors"), dir.join("catalogue.safetensors"));
        let store = nn::VarStore::new(Device::Cpu);
        let mut config = small_config();
        (config.cardinalities.movies, config.cardinalities.users, config.dot_product) = (50, 30, true);
        let network = HybridRecommender::new(&store.root(), &config);
        let rows = Tensor::arange(50, (Kind::Int64, Device::Cpu));
        let encoded = network.encode_content(&content(50, &config)).unwrap();
        let users: Vec<i64> = (0..=30).collect();
        let private = network.catalogue_scorer(&rows, &encoded).unwrap();
        let expected = |scorer: &CatalogueScorer| {
            let pairs = scorer.score_pairs(&[3, 0, 30], &[49, 0, 7]).unwrap();
            let catalogue = |precision| Vec::<f32>::try_from(scorer.score_catalogue(&users, precision).unwrap().flatten(0, -1)).unwrap();
            (catalogue(Precision::Float32), catalogue(Precision::Bfloat16), pairs, scorer.raw_score(4, 9).unwrap())
        };
        let reference = expected(&private);
        drop(private);

        let variables: Vec<(String, Tensor)> = store.variables().into_iter().collect();
        let named: Vec<(&str, &Tensor)> = variables.iter().map(|(name, tensor)| (name.as_str(), tensor)).collect();
        mapped::write_atomically(&weights_file, &named, HashMap::new()).unwrap();
        let weights = std::fs::read(&weights_file).unwrap();
        std::fs::remove_file(&weights_file).unwrap();
        let shared = share_variables(&store, &weights, &weights_file).unwrap();
        assert_eq!(std::fs::read(&weights_file).unwrap(), weights, "the weights file is written from the artefact's bytes");
        assert!(store.variables().values().all(|v| inside(v, &shared)), "every variable reads the mapped file");

        let (scorer, mapped_content) = network.shared_catalogue_scorer(&shared, &rows, &encoded, &catalogue_file).unwrap();
        assert_eq!(scorer.shared_file(), Some(catalogue_file.as_path()));
        assert!(mapped_content.equal(&encoded));
        assert_eq!(expected(&scorer), reference, "scores over the mapped tables are the private scorer's, bit for bit");
        let written = inode(&catalogue_file);
        drop(scorer);

        let again = share_variables(&store, &weights, &weights_file).unwrap();
        let (scorer, _) = network.shared_catalogue_scorer(&again, &rows, &encoded, &catalogue_file).unwrap();
        assert_eq!(inode(&catalogue_file), written, "the second load maps the file the first wrote");
        assert_eq!(expected(&scorer), reference);

        let edited = &encoded * 1.5;
        let (scorer, _) = network.shared_catalogue_scorer(&again, &rows, &edited, &catalogue_file).unwrap();
        assert_ne!(inode(&catalogue_file), written, "another catalogue's content is written afresh");
        assert_ne!(expected(&scorer).0, reference.0);

        let mut damaged = weights.clone();
        *damaged.last_mut().unwrap() ^= 0x40;
        std::fs::write(&weights_file, &damaged).unwrap();
        let repaired = share_variables(&store, &weights, &weights_file).unwrap();
        assert_eq!(std::fs::read(&weights_file).unwrap(), weights, "a weights file that differs from the artefact is rewritten");
        let before = inode(&catalogue_file);
        let (scorer, _) = network.shared_catalogue_scorer(&repaired, &rows, &encoded, &catalogue_file).unwrap();
        assert_ne!(inode(&catalogue_file), before, "a catalogue computed with another weights file is rewritten");
        assert_eq!(expected(&scorer), reference);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
