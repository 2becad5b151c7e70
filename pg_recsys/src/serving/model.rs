//! A model version as a backend serves it: its network, vocabularies, the encoded catalogue and the scorer tables
//! over it (private or mapped from shared files), built from `recsys.models` and patched movie by movie when the
//! catalogue changes. Which version is current, and when to look again, is `state`'s; nothing here writes.
use super::catalogue::{self, EmbedTitles, EncodedCatalogue};
use super::shared_tables;
use crate::error::RecsysError;
use recsys_model::preference::PreferenceScorer;
use recsys_model::scoring::{CatalogueScorer, SharedFile};
use recsys_model::{HybridRecommender, Vocabulary};
use std::collections::HashMap;
use std::rc::Rc;
use tch::{nn, Tensor};

/// The active model as this backend serves it: network, vocabularies, the encoded catalogue it was loaded with and
/// the scorer over that catalogue.
pub struct LoadedModel {
    /// The model version (`recsys.models.version`).
    pub version: i64,
    /// The vocabularies fitted at training: user and movie rows, genres, people.
    pub vocabulary: Rc<Vocabulary>,
    /// Unix seconds of the newest rating in the model's training data (its fingerprint): for versions trained
    /// before 0.7.0 (without `loaded_until`), ratings given later are the ones it never saw.
    pub trained_until: Option<i64>,
    /// The last load number (`ratings.loaded`) among the ratings the model was trained on: ratings loaded later are
    /// the ones it never saw (`recsys.rating_unseen`).
    pub loaded_until: Option<i64>,
    /// `recsys.catalogue_state.version` when the catalogue was read: any other value means it changed since.
    pub catalogue_version: i64,
    /// Whether the catalogue was read while this backend's own transaction had changed it, uncommitted: such a
    /// catalogue is never patched (the change may still roll back); the next catalogue version reloads it whole.
    pub catalogue_uncommitted: std::cell::Cell<bool>,
    /// The catalogue when the model was loaded, by catalogue position.
    pub catalogue: EncodedCatalogue,
    /// Catalogue position of each movie id.
    pub movie_index: HashMap<i32, usize>,
    /// The scorer over the catalogue: single pairs, pair lists and whole-catalogue passes.
    pub scorer: CatalogueScorer,
    /// The preference part over the catalogue, which orders lists (None: a model trained before 0.7).
    pub preference: Option<PreferenceScorer>,
    /// The network; private and last, so that every table above built from its weights is dropped before it.
    served: Rc<ServedNetwork>,
}

/// The network, the store its variables live in, and the shared file they may be mapped from, owned together so
/// that nothing can hold the network without the mapping: fields drop in declaration order, the file last.
struct ServedNetwork {
    network: HybridRecommender,
    _store: nn::VarStore,
    shared_weights: Option<SharedFile>,
}

impl LoadedModel {
    /// The network, for encoding content and cold-start scoring (borrowed: it lives as long as this model).
    pub fn network(&self) -> &HybridRecommender {
        &self.served.network
    }

    /// Whether a shared file this model maps (its weights, its catalogue tables) was changed in place.
    pub fn files_changed_on_disk(&self) -> bool {
        self.served.shared_weights.as_ref().is_some_and(SharedFile::changed_on_disk) || self.scorer.shared_file_changed_on_disk()
    }

    /// This model over the catalogue as of `catalogue_version`, which differs from the loaded one in the movies
    /// `changed` only: those are read and encoded again (or dropped), the others keep their encoded content.
    pub fn with_changes(&self, changed: &[i32], catalogue_version: i64, uncommitted: bool, embed: EmbedTitles) -> Result<Self, RecsysError> {
        let _float_mode = crate::torch_runtime::prepare()?;
        let started = std::time::Instant::now();
        let network = self.network();
        let mut catalogue = self.catalogue.patched(network, &self.vocabulary, changed, embed)?;
        let served = Served { version: self.version, catalogue_version, uncommitted, weights: self.served.shared_weights.as_ref() };
        let (movie_index, scorer) = index_and_scorer(network, &mut catalogue, &served)?;
        let preference = preference_scorer(network, &catalogue)?;
        pgrx::debug1!(
            "pg_recsys: catalogue {} -> {catalogue_version} patched in {:.1} ms: {} changed movies re-encoded, {} movies kept",
            self.catalogue_version,
            started.elapsed().as_secs_f64() * 1e3,
            changed.len(),
            catalogue.movie_ids.len().saturating_sub(changed.len())
        );
        Ok(Self {
            version: self.version,
            vocabulary: self.vocabulary.clone(),
            trained_until: self.trained_until,
            loaded_until: self.loaded_until,
            catalogue_version,
            catalogue_uncommitted: uncommitted.into(),
            catalogue,
            movie_index,
            scorer,
            preference,
            served: self.served.clone(),
        })
    }

    /// A raw score as the rating a SQL function returns: clipped to the model's scale; a non-finite score (features
    /// the model cannot encode) is an error, never a NaN rating.
    pub fn rating(&self, raw: f32) -> Result<f32, RecsysError> {
        if raw.is_finite() {
            Ok(self.scorer.rating(raw))
        } else {
            Err(RecsysError::internal(format!("the model produced the score {raw}; the inputs are outside what it can encode")))
        }
    }
}

/// What a model is loaded with: the catalogue version, whether this backend's own transaction changed it
/// (uncommitted), whether the database records catalogue changes, and how titles not yet embedded are embedded.
pub struct LoadContext {
    /// `recsys.catalogue_state.version` as the running statement sees it.
    pub catalogue_version: i64,
    /// Whether the catalogue's latest change is this backend's own, uncommitted.
    pub uncommitted: bool,
    /// Whether `recsys.catalogue_changes` exists (0.4.0 and later), so a stored snapshot can be patched.
    pub changes_recorded: bool,
    /// Embeds titles that `recsys.title_embeddings` does not hold.
    pub embed: EmbedTitles,
}

/// Loads `version` with the catalogue as of `context.catalogue_version` (`catalogue_from_snapshot`; titles not yet
/// embedded are embedded in memory).
pub fn load(version: i64, context: &LoadContext) -> Result<LoadedModel, RecsysError> {
    let LoadContext { catalogue_version, uncommitted, .. } = *context;
    let _float_mode = crate::torch_runtime::prepare()?;
    let started = std::time::Instant::now();
    let artefact = super::artefact::read_artefact(version)?;
    let read_ms = started.elapsed().as_secs_f64() * 1e3;
    let (store, network) = artefact.build().map_err(|e| RecsysError::corrupt_model(version, e))?;
    let shared_weights = shared_tables::share_network(&store, &artefact.weights, version);
    drop(artefact.weights);
    let build_ms = started.elapsed().as_secs_f64() * 1e3;
    let vocabulary = artefact.manifest.vocabulary;
    let trained_until = artefact.manifest.fingerprint.max_rated_at;
    let loaded_until = artefact.manifest.fingerprint.loaded_until;
    let mut catalogue = catalogue_from_snapshot(&network, &vocabulary, version, context)?;
    let catalogue_ms = started.elapsed().as_secs_f64() * 1e3;
    let served = Served { version, catalogue_version, uncommitted, weights: shared_weights.as_ref() };
    let (movie_index, scorer) = index_and_scorer(&network, &mut catalogue, &served)?;
    let preference = preference_scorer(&network, &catalogue)?;
    // SAFETY: returns the heap's free memory (the artefact's bytes, the tables computed before they were written
    // to their shared files) to the kernel; no allocation is live across the call from another thread.
    unsafe { libc::malloc_trim(0) };
    let total_ms = started.elapsed().as_secs_f64() * 1e3;
    pgrx::debug1!(
        "pg_recsys: model version {version} loaded in {total_ms:.1} ms (artefact read {read_ms:.1}, network built {:.1}, catalogue {:.1}, scorer {:.1}; tables {})",
        build_ms - read_ms,
        catalogue_ms - build_ms,
        total_ms - catalogue_ms,
        scorer.shared_file().map_or_else(|| "private".to_string(), |file| format!("mapped from {}", file.display()))
    );
    Ok(LoadedModel {
        version,
        vocabulary: Rc::new(vocabulary),
        trained_until,
        loaded_until,
        catalogue_version,
        catalogue_uncommitted: uncommitted.into(),
        catalogue,
        movie_index,
        scorer,
        preference,
        served: Rc::new(ServedNetwork { network, _store: store, shared_weights }),
    })
}

/// The catalogue at `catalogue_version` for model `version`: its stored snapshot when encoded at that version; the
/// snapshot patched with the movies changed since when it is older and they can be patched (each new backend then
/// encodes those movies only, not the whole catalogue); else every movie read and encoded.
fn catalogue_from_snapshot(
    network: &HybridRecommender,
    vocabulary: &Vocabulary,
    version: i64,
    context: &LoadContext,
) -> Result<EncodedCatalogue, RecsysError> {
    let catalogue_version = context.catalogue_version;
    let changed_since =
        |encoded_at: i64, movies: usize| if context.changes_recorded { catalogue::changed_movies(encoded_at, movies) } else { Ok(None) };
    match EncodedCatalogue::read_snapshot(version, network.config().content_dim())? {
        Some((snapshot, encoded_at)) if encoded_at == catalogue_version => Ok(snapshot),
        Some((snapshot, encoded_at)) if encoded_at < catalogue_version => match changed_since(encoded_at, snapshot.movie_ids.len())? {
            Some(changed) => {
                pgrx::debug1!(
                    "pg_recsys: snapshot at catalogue {encoded_at} patched to {catalogue_version}: {} changed movies re-encoded",
                    changed.len()
                );
                snapshot.patched(network, vocabulary, &changed, context.embed)
            }
            None => EncodedCatalogue::compute(network, vocabulary, context.embed),
        },
        _ => EncodedCatalogue::compute(network, vocabulary, context.embed),
    }
}

/// What a scorer is built for: the model and catalogue versions, whether the catalogue is uncommitted, and the
/// network's shared weights file (if it has one).
struct Served<'a> {
    version: i64,
    catalogue_version: i64,
    uncommitted: bool,
    weights: Option<&'a SharedFile>,
}

/// The position of each movie id in `catalogue`, and the scorer over it: its tables mapped from the shared
/// catalogue file when the network's weights are shared (`catalogue.content` then points into that file too), else
/// private.
fn index_and_scorer(
    network: &HybridRecommender,
    catalogue: &mut EncodedCatalogue,
    served: &Served,
) -> Result<(HashMap<i32, usize>, CatalogueScorer), RecsysError> {
    let movie_index = catalogue.movie_ids.iter().enumerate().map(|(position, id)| (*id, position)).collect();
    if let Some(weights) = served.weights {
        if let Some(scorer) = shared_tables::shared_scorer(network, weights, catalogue, served.version, served.catalogue_version, served.uncommitted)?
        {
            return Ok((movie_index, scorer));
        }
    }
    Ok((movie_index, network.catalogue_scorer(&Tensor::f_from_slice(&catalogue.movie_rows)?, &catalogue.content)?))
}

/// The preference part's tables over `catalogue` (private to the backend: two vectors and a bias per movie).
fn preference_scorer(network: &HybridRecommender, catalogue: &EncodedCatalogue) -> Result<Option<PreferenceScorer>, RecsysError> {
    Ok(network.preference_scorer(&Tensor::f_from_slice(&catalogue.movie_rows)?, &catalogue.content)?)
}
