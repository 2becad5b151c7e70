//! The model artefact: weights as safetensors bytes plus a JSON manifest (format version, config, vocabularies,
//! feature statistics, training-data fingerprint, metrics, trainer version, creation time, weights checksum).
//! Loading validates everything and fails with a clear error on a corrupt, truncated or mismatched artefact.
use crate::{HybridRecommender, ModelConfig, ModelError, Vocabulary};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::Path;
use tch::{nn, Device, Kind, Tensor};

/// Version 2 added the optional item autoencoder's tables, version 3 the optional preference part; older artefacts
/// still load.
pub const FORMAT_VERSION: u32 = 3;
const OLDEST_READABLE_VERSION: u32 = 1;
/// File name of the manifest in an artefact directory.
pub const MANIFEST_FILE: &str = "manifest.json";
/// File name of the weights in an artefact directory.
pub const WEIGHTS_FILE: &str = "weights.safetensors";

/// What the model was trained on, to tell later whether the data has moved on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DataFingerprint {
    /// Ratings in the training data.
    pub ratings: i64,
    /// Distinct users with ratings.
    pub users: i64,
    /// Distinct rated movies.
    pub movies: i64,
    /// Latest `rated_at` among the training ratings, as Unix seconds.
    pub max_rated_at: Option<i64>,
    /// The last load number (`recsys.ratings.loaded`) among the training ratings, read in the same snapshot: ratings
    /// loaded later are new to the model whatever their `rated_at`. None for artefacts written before 0.7.0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loaded_until: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
/// The description of an artefact's weights: the configuration that builds the network, the vocabularies that
/// turn ids and names into rows, the data it was trained on, its metrics and the weights' checksum.
pub struct Manifest {
    /// Version of the artefact format (`FORMAT_VERSION`); loading refuses newer ones.
    pub format_version: u32,
    /// The network's architecture.
    pub config: ModelConfig,
    /// Ids and names to embedding rows, and the feature statistics.
    pub vocabulary: Vocabulary,
    /// The training data it saw.
    pub fingerprint: DataFingerprint,
    /// Evaluation results (free-form JSON written by the trainer).
    pub metrics: serde_json::Value,
    /// Training parameters (free-form JSON written by the trainer).
    pub params: serde_json::Value,
    /// Version of the trainer that wrote it.
    pub trainer_version: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Hex SHA-256 of the weights bytes.
    pub weights_sha256: String,
}

/// A trained model as bytes: what the registry stores and what files hold.
#[derive(Debug, Clone)]
pub struct Artefact {
    /// The manifest (stored as JSON).
    pub manifest: Manifest,
    /// The safetensors bytes.
    pub weights: Vec<u8>,
}

fn invalid(message: impl Into<String>) -> ModelError {
    ModelError::InvalidArtefact(message.into())
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

impl Artefact {
    /// Captures a trained network's weights, subnormal values flushed to zero.
    pub fn capture(
        store: &nn::VarStore,
        config: &ModelConfig,
        vocabulary: &Vocabulary,
        fingerprint: DataFingerprint,
        params: serde_json::Value,
        metrics: serde_json::Value,
    ) -> Result<Self, ModelError> {
        let mut named: Vec<(String, Tensor)> = store.variables().into_iter().collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        let mut buffers = Vec::with_capacity(named.len());
        for (name, tensor) in &named {
            let contiguous = tensor.f_detach()?.f_to_kind(Kind::Float)?.f_contiguous()?;
            let mut values: Vec<f32> = Vec::try_from(contiguous.f_flatten(0, -1)?)?;
            crate::float_mode::flush_subnormals(&mut values);
            let shape: Vec<usize> = contiguous.size().iter().map(|d| *d as usize).collect();
            buffers.push((name.clone(), shape, crate::codec::f32_to_le_bytes(&values)));
        }
        let views: Vec<(String, TensorView<'_>)> = buffers
            .iter()
            .map(|(name, shape, bytes)| TensorView::new(Dtype::F32, shape.clone(), bytes).map(|view| (name.clone(), view)))
            .collect::<Result<_, _>>()
            .map_err(|e| invalid(e.to_string()))?;
        let weights = safetensors::serialize(views, &None).map_err(|e| invalid(e.to_string()))?;
        let manifest = Manifest {
            format_version: FORMAT_VERSION,
            config: config.clone(),
            vocabulary: vocabulary.clone(),
            fingerprint,
            metrics,
            params,
            trainer_version: env!("CARGO_PKG_VERSION").to_string(),
            created_at: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0),
            weights_sha256: sha256_hex(&weights),
        };
        Ok(Self { manifest, weights })
    }

    /// Parses an artefact from its manifest JSON and weights bytes, checking format version and checksum.
    pub fn from_parts(manifest_json: &str, weights: Vec<u8>) -> Result<Self, ModelError> {
        let mut manifest: Manifest = serde_json::from_str(manifest_json).map_err(|e| invalid(format!("manifest is not valid: {e}")))?;
        if !(OLDEST_READABLE_VERSION..=FORMAT_VERSION).contains(&manifest.format_version) {
            return Err(invalid(format!(
                "format version {} is not supported (this build reads {OLDEST_READABLE_VERSION} to {FORMAT_VERSION})",
                manifest.format_version
            )));
        }
        if sha256_hex(&weights) != manifest.weights_sha256 {
            return Err(invalid(format!("weights checksum mismatch ({} bytes): the weights are corrupt or truncated", weights.len())));
        }
        manifest.vocabulary.rebuild_index();
        Ok(Self { manifest, weights })
    }

    /// The manifest as pretty JSON.
    pub fn manifest_json(&self) -> Result<String, ModelError> {
        serde_json::to_string_pretty(&self.manifest).map_err(|e| invalid(e.to_string()))
    }

    /// Writes `manifest.json` and `weights.safetensors` into `dir`.
    pub fn save_dir(&self, dir: &Path) -> Result<(), ModelError> {
        std::fs::create_dir_all(dir).map_err(|e| invalid(format!("cannot create {}: {e}", dir.display())))?;
        std::fs::write(dir.join(WEIGHTS_FILE), &self.weights).map_err(|e| invalid(format!("cannot write weights: {e}")))?;
        std::fs::write(dir.join(MANIFEST_FILE), self.manifest_json()?).map_err(|e| invalid(format!("cannot write manifest: {e}")))
    }

    /// Reads an artefact directory (`MANIFEST_FILE`, `WEIGHTS_FILE`) and checks the weights' checksum.
    pub fn load_dir(dir: &Path) -> Result<Self, ModelError> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read(&path).map_err(|source| match source.kind() {
                std::io::ErrorKind::NotFound => ModelError::MissingFile(path),
                _ => ModelError::Unreadable { path, source },
            })
        };
        let manifest = String::from_utf8(read(MANIFEST_FILE)?).map_err(|_| invalid("manifest is not UTF-8"))?;
        Self::from_parts(&manifest, read(WEIGHTS_FILE)?)
    }

    /// Builds the network and loads the weights, checking config, vocabulary sizes, names, shapes and dtypes.
    /// Subnormal weights load as zeros (they would slow every product that reads them ~8×).
    pub fn build(&self) -> Result<(nn::VarStore, HybridRecommender), ModelError> {
        let config = &self.manifest.config;
        config.validate().map_err(|problem| invalid(problem.to_string()))?;
        if config.cardinalities != self.manifest.vocabulary.cardinalities() {
            return Err(invalid(format!(
                "vocabulary sizes {:?} do not match the network's {:?}",
                self.manifest.vocabulary.cardinalities(),
                config.cardinalities
            )));
        }
        let tensors = SafeTensors::deserialize(&self.weights).map_err(|e| invalid(format!("weights are not valid safetensors: {e}")))?;
        let stored: u64 = tensors.tensors().iter().map(|(_, view)| view.shape().iter().map(|d| *d as u64).product::<u64>()).sum();
        match config.parameter_count() {
            Some(needed) if needed == stored => {}
            needed => {
                return Err(invalid(format!(
                    "the manifest's configuration needs {} weights, the weights file holds {stored}",
                    needed.map_or_else(|| "more than 2^64".to_string(), |n| n.to_string())
                )))
            }
        }
        let store = nn::VarStore::new(Device::Cpu);
        let network = HybridRecommender::zeroed(&store.root(), config);
        let mut variables = store.variables();
        if tensors.len() != variables.len() {
            return Err(invalid(format!("weights hold {} tensors, the network has {}", tensors.len(), variables.len())));
        }
        for (name, view) in tensors.tensors() {
            let Some(variable) = variables.get_mut(&name) else { return Err(invalid(format!("unexpected tensor {name:?} in the weights"))) };
            let expected: Vec<usize> = variable.size().iter().map(|d| *d as usize).collect();
            if view.dtype() != Dtype::F32 || view.shape() != expected.as_slice() {
                return Err(invalid(format!("tensor {name:?} is {:?} {:?}, the network needs F32 {expected:?}", view.dtype(), view.shape())));
            }
            let shape: Vec<i64> = expected.iter().map(|d| *d as i64).collect();
            let mut values = crate::codec::f32_from_le_bytes(view.data())?;
            crate::float_mode::flush_subnormals(&mut values);
            let loaded = Tensor::f_from_slice(&values)?.f_reshape(&shape)?;
            tch::no_grad(|| variable.f_copy_(&loaded))?;
        }
        Ok((store, network))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{features::Standardiser, Cardinalities, ContentInputs};

    fn trained() -> (nn::VarStore, HybridRecommender, Vocabulary) {
        trained_with(None)
    }

    fn trained_with(title_rank: Option<i64>) -> (nn::VarStore, HybridRecommender, Vocabulary) {
        let vocabulary = Vocabulary::new(
            vec![1, 2, 3],
            vec![10, 11],
            vec!["Drama".into(), "Comedy".into()],
            vec![100],
            vec![200, 201],
            Standardiser { mean: 100.0, std: 20.0 },
            Standardiser { mean: 1990.0, std: 15.0 },
        );
        let mut config = ModelConfig {
            use_biases: true,
            movie_id_dropout: 0.1,
            content_projection: true,
            ..ModelConfig::seed_architecture(vocabulary.cardinalities())
        };
        config.title_dim = 8;
        config.title_rank = title_rank;
        let store = nn::VarStore::new(Device::Cpu);
        let network = HybridRecommender::new(&store.root(), &config);
        (store, network, vocabulary)
    }

    fn inputs() -> (Tensor, Tensor, ContentInputs) {
        let options = (Kind::Float, Device::Cpu);
        let content = ContentInputs {
            genres: Tensor::ones([3, 2], options),
            titles: Tensor::randn([3, 8], options),
            directors: Tensor::from_slice(&[1i64, 0, 0, 0]).repeat([3, 1]),
            actors: Tensor::from_slice(&[1i64, 2, 0, 0]).repeat([3, 1]),
            numeric: Tensor::randn([3, 2], options),
        };
        (Tensor::from_slice(&[1i64, 2, 0]), Tensor::from_slice(&[1i64, 0, 2]), content)
    }

    fn capture(store: &nn::VarStore, network: &HybridRecommender, vocabulary: &Vocabulary) -> Artefact {
        Artefact::capture(
            store,
            network.config(),
            vocabulary,
            DataFingerprint { ratings: 3, users: 3, movies: 2, max_rated_at: Some(1), loaded_until: Some(3) },
            serde_json::json!({"epochs": 1}),
            serde_json::json!({"rmse": 0.9}),
        )
        .unwrap()
    }

    #[test]
    fn save_and_load_give_identical_predictions() {
        for title_rank in [None, Some(4)] {
            save_and_load_round_trip(title_rank);
        }
    }

    fn save_and_load_round_trip(title_rank: Option<i64>) {
        let (store, network, vocabulary) = trained_with(title_rank);
        let artefact = capture(&store, &network, &vocabulary);
        let dir = std::env::temp_dir().join(format!("recsys_artefact_{}", std::process::id()));
        artefact.save_dir(&dir).unwrap();
        let loaded = Artefact::load_dir(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let (_store, restored) = loaded.build().unwrap();
        let (users, movies, content) = inputs();
        assert!(network.predict(&users, &movies, &content).unwrap().equal(&restored.predict(&users, &movies, &content).unwrap()));
        assert_eq!(loaded.manifest.vocabulary.movie_row(11), 2);
        assert_eq!(loaded.manifest.fingerprint.ratings, 3);
    }

    #[test]
    fn stored_and_loaded_weights_hold_no_subnormal_values() {
        let (store, network, vocabulary) = trained();
        let subnormal_count = |store: &nn::VarStore| {
            store
                .variables()
                .values()
                .map(|t| Vec::<f32>::try_from(t.flatten(0, -1)).unwrap().iter().filter(|v| v.is_subnormal()).count())
                .sum::<usize>()
        };
        tch::no_grad(|| {
            store.variables().values_mut().for_each(|t| {
                let _ = t.fill_(1e-40);
            })
        });
        assert!(subnormal_count(&store) > 0);
        let artefact = capture(&store, &network, &vocabulary);
        let (restored_store, _) = artefact.build().unwrap();
        assert_eq!(subnormal_count(&restored_store), 0);
        let stored = SafeTensors::deserialize(&artefact.weights).unwrap();
        assert!(stored
            .tensors()
            .iter()
            .all(|(_, view)| view.data().chunks_exact(4).all(|b| !f32::from_le_bytes([b[0], b[1], b[2], b[3]]).is_subnormal())));

        let mut unflushed = artefact.clone();
        let names: Vec<String> = stored.names().into_iter().cloned().collect();
        let buffers: Vec<(String, Vec<usize>, Vec<u8>)> = names
            .iter()
            .map(|n| {
                let v = stored.tensor(n).unwrap();
                (n.clone(), v.shape().to_vec(), v.data().chunks_exact(4).flat_map(|_| 1u32.to_le_bytes()).collect())
            })
            .collect();
        let views: Vec<(String, TensorView<'_>)> =
            buffers.iter().map(|(n, shape, bytes)| (n.clone(), TensorView::new(Dtype::F32, shape.clone(), bytes).unwrap())).collect();
        unflushed.weights = safetensors::serialize(views, &None).unwrap();
        unflushed.manifest.weights_sha256 = sha256_hex(&unflushed.weights);
        let (loaded_store, _) = Artefact::from_parts(&unflushed.manifest_json().unwrap(), unflushed.weights.clone()).unwrap().build().unwrap();
        assert_eq!(subnormal_count(&loaded_store), 0, "an artefact written elsewhere with subnormal weights loads without them");
    }

    #[test]
    fn a_file_that_is_there_but_unreadable_is_not_reported_missing() {
        let dir = std::env::temp_dir().join(format!("recsys_unreadable_{}", std::process::id()));
        std::fs::create_dir_all(dir.join(MANIFEST_FILE)).unwrap();
        let error = Artefact::load_dir(&dir).unwrap_err();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(matches!(error, ModelError::Unreadable { .. }), "{error:?}");
        assert!(matches!(Artefact::load_dir(&dir).unwrap_err(), ModelError::MissingFile(_)));
    }

    #[test]
    fn corrupt_truncated_and_mismatched_artefacts_are_refused() {
        let (store, network, vocabulary) = trained();
        let artefact = capture(&store, &network, &vocabulary);
        let manifest = artefact.manifest_json().unwrap();
        let mut flipped = artefact.weights.clone();
        let middle = flipped.len() / 2;
        flipped[middle] ^= 0xFF;
        assert!(Artefact::from_parts(&manifest, flipped).unwrap_err().to_string().contains("checksum"));
        let truncated = artefact.weights[..artefact.weights.len() - 10].to_vec();
        assert!(Artefact::from_parts(&manifest, truncated).is_err());
        assert!(Artefact::from_parts(&manifest[..manifest.len() / 2], artefact.weights.clone())
            .unwrap_err()
            .to_string()
            .contains("manifest is not valid"));
        let newer = manifest.replace("\"format_version\": 3", "\"format_version\": 99");
        assert!(Artefact::from_parts(&newer, artefact.weights.clone()).unwrap_err().to_string().contains("format version 99"));

        let mut mismatched = artefact.clone();
        mismatched.manifest.vocabulary =
            Vocabulary::new(vec![1], vec![10], vec![], vec![], vec![], Standardiser { mean: 0.0, std: 1.0 }, Standardiser { mean: 0.0, std: 1.0 });
        assert!(mismatched.build().unwrap_err().to_string().contains("vocabulary sizes"));
        let mut other_shape = artefact.clone();
        other_shape.manifest.config.person_dim = 8;
        assert!(other_shape.build().unwrap_err().to_string().contains("weights file holds"));
        let mut huge = artefact.clone();
        huge.manifest.config.user_dim = 1 << 40;
        huge.manifest.config.movie_dim = 1 << 40;
        let error = huge.build().unwrap_err();
        assert!(
            matches!(&error, ModelError::InvalidArtefact(message) if message.contains("weights file holds")),
            "refused before allocating: {error}"
        );
        let mut overflowing = artefact.clone();
        overflowing.manifest.config.head_hidden = vec![i64::MAX, i64::MAX];
        assert!(overflowing.build().unwrap_err().to_string().contains("more than 2^64"));
    }

    #[test]
    fn the_parameter_count_is_what_the_network_holds() {
        let cardinalities = Cardinalities { users: 7, movies: 5, genres: 3, directors: 2, actors: 4 };
        for config in [
            ModelConfig { cardinalities: cardinalities.clone(), title_dim: 8, ..ModelConfig::default() },
            ModelConfig { title_dim: 8, ..ModelConfig::seed_architecture(cardinalities.clone()) },
            ModelConfig {
                title_dim: 8,
                autoencoder_rank: None,
                use_biases: false,
                ..ModelConfig { cardinalities: cardinalities.clone(), ..ModelConfig::default() }
            },
        ] {
            let store = nn::VarStore::new(Device::Cpu);
            let _network = HybridRecommender::zeroed(&store.root(), &config);
            let held: i64 = store.variables().values().map(Tensor::numel).map(|n| n as i64).sum();
            assert_eq!(config.parameter_count(), Some(held as u64), "{config:?}");
        }
    }

    #[test]
    fn an_autoencoder_travels_in_the_artefact_and_older_manifests_have_none() {
        let vocabulary = trained().2;
        let config = ModelConfig {
            autoencoder_rank: Some(3),
            title_dim: 8,
            use_biases: true,
            movie_id_dropout: 0.1,
            content_projection: true,
            ..ModelConfig::seed_architecture(vocabulary.cardinalities())
        };
        let store = nn::VarStore::new(Device::Cpu);
        let network = HybridRecommender::new(&store.root(), &config);
        crate::train::autoencoder::tests::fill_randomly(network.autoencoder.as_ref().unwrap());
        let artefact = capture(&store, &network, &vocabulary);
        let (_store, restored) = Artefact::from_parts(&artefact.manifest_json().unwrap(), artefact.weights.clone()).unwrap().build().unwrap();
        let (users, movies, content) = inputs();
        assert!(network.predict(&users, &movies, &content).unwrap().equal(&restored.predict(&users, &movies, &content).unwrap()));
        let mut without = artefact.clone();
        without.manifest.config.autoencoder_rank = None;
        assert!(without.build().unwrap_err().to_string().contains("weights file holds"));
        let (store, network, vocabulary) = trained();
        let plain = capture(&store, &network, &vocabulary).manifest_json().unwrap();
        let version_1 = plain
            .replace("\"format_version\": 3", "\"format_version\": 1")
            .replace("\"autoencoder_rank\": null,", "")
            .replace("\"preference\": null,", "");
        assert!(!version_1.contains("autoencoder") && version_1.contains("\"format_version\": 1"));
        let weights = capture(&store, &network, &vocabulary).weights;
        assert_eq!(Artefact::from_parts(&version_1, weights).unwrap().manifest.config.autoencoder_rank, None);
    }

    #[test]
    fn the_title_rank_must_match_the_weights_and_older_manifests_mean_full_width() {
        let (store, network, vocabulary) = trained_with(Some(4));
        let artefact = capture(&store, &network, &vocabulary);
        let mut full_width = artefact.clone();
        full_width.manifest.config.title_rank = None;
        assert!(full_width.build().unwrap_err().to_string().contains("weights file holds"));
        let (store, network, vocabulary) = trained();
        let artefact = capture(&store, &network, &vocabulary);
        let manifest = artefact.manifest_json().unwrap();
        let older = manifest.replace("\"title_rank\": null,", "");
        assert_ne!(older, manifest, "the manifest names title_rank");
        let loaded = Artefact::from_parts(&older, artefact.weights.clone()).unwrap();
        assert_eq!(loaded.manifest.config.title_rank, None);
        loaded.build().unwrap();
    }
}
