//! The one serving state of a backend and the one rule for when it is current: the active model (network,
//! vocabularies, encoded catalogue, scorer tables, shared mappings), the users folded into it, the title embedder and
//! its titles, and what the database's schema has. Re-checked whenever the running statement may see other data
//! than the last check did (`freshness`): every statement execution, once for a statement over any number of rows.
use super::catalogue;
use super::fold_in::{self, FoldedUsers, NewRatingsPlan, UserVector};
use super::freshness::{self, VisibleData};
use super::model::{self, LoadContext, LoadedModel};
use super::titles::{self, TitleEmbeddings};
use crate::error::RecsysError;
use pgrx::prelude::*;
use std::cell::RefCell;
use std::rc::Rc;
use tch::Tensor;

/// Everything a backend keeps to serve. Parts tied to the data (`model`, `folded`, `any_rating_unseen`) hold for
/// `checked_with` or are dropped with the model they belong to; `titles` and `schema` cannot go stale.
#[derive(Default)]
struct ServingState {
    /// The key of what the statement that last read the active and catalogue versions could see.
    checked_with: Option<VisibleData>,
    /// The statement that last checked the model's mapped files on disk.
    files_checked_at: Option<pg_sys::TimestampTz>,
    /// The active model as of `checked_with`.
    model: Option<Rc<LoadedModel>>,
    /// Users' vectors fitted against `model` (emptied whenever `model` is replaced).
    folded: FoldedUsers,
    /// Whether a rating `model` has not seen is visible under the key it was asked with.
    any_rating_unseen: Option<(VisibleData, bool)>,
    /// The new-ratings query, planned once.
    new_ratings_plan: Option<NewRatingsPlan>,
    /// The MiniLM model and the titles it embedded.
    titles: TitleEmbeddings,
    /// What the database's schema is known to have.
    schema: SchemaFeatures,
}

/// Schema objects seen in this database; each can appear (`ALTER EXTENSION … UPDATE`) but never go, so a yes is kept.
#[derive(Default)]
struct SchemaFeatures {
    current: bool,
    load_numbers: bool,
    changes_recorded: Option<bool>,
}

thread_local! {
    static STATE: RefCell<ServingState> = RefCell::new(ServingState::default());
}

/// Runs `f` on the state; never across an SPI call or a load (they may re-enter serving).
fn with_state<R>(f: impl FnOnce(&mut ServingState) -> R) -> R {
    STATE.with(|state| f(&mut state.borrow_mut()))
}

impl ServingState {
    /// The model when it is current for a statement seeing `visible`. Checks the mapped files once per statement
    /// first: a model whose file was changed in place is dropped (its pages are never read again).
    fn current_model(&mut self, visible: Option<VisibleData>) -> Option<Rc<LoadedModel>> {
        // SAFETY: reads the start time of the current statement, set by Postgres for every statement.
        let statement = unsafe { pg_sys::GetCurrentStatementStartTimestamp() };
        if self.files_checked_at != Some(statement) {
            self.files_checked_at = Some(statement);
            if self.model.as_ref().is_some_and(|model| model.files_changed_on_disk()) {
                pgrx::warning!("pg_recsys: a shared table file under $PGDATA/pg_recsys was changed in place; loading the model again");
                self.replace_model(None, None);
            }
        }
        (visible.is_some() && self.checked_with == visible).then(|| self.model.clone()).flatten()
    }

    /// Whether `model` is the one kept here (the folded users belong to it).
    fn holds(&self, model: &LoadedModel) -> bool {
        self.model.as_deref().is_some_and(|kept| std::ptr::eq(kept, model))
    }

    /// Makes `model` the current one as checked under `visible`; the folded users go with a model that is replaced.
    fn replace_model(&mut self, model: Option<Rc<LoadedModel>>, visible: Option<VisibleData>) {
        let same = match (&self.model, &model) {
            (Some(kept), Some(new)) => Rc::ptr_eq(kept, new),
            _ => false,
        };
        if !same {
            self.folded = FoldedUsers::default();
            self.any_rating_unseen = None;
        }
        self.model = model;
        self.checked_with = visible;
    }
}

/// The model version cached in this backend, if any (for `recsys_version_info`); does not query the database.
pub fn cached_version() -> Option<i64> {
    with_state(|state| state.model.as_ref().map(|model| model.version))
}

/// The active model for the running statement: the kept one when the statement sees what the last check saw; else
/// the active and catalogue versions are read again and the model is kept, patched with the changed movies, or
/// loaded.
pub fn active_model() -> Result<Rc<LoadedModel>, RecsysError> {
    let visible = freshness::visible_data();
    if let Some(model) = with_state(|state| state.current_model(visible)) {
        return Ok(model);
    }
    require_current_schema()?;
    let (version, catalogue_version, catalogue_writer) = Spi::connect(|client| -> Result<(Option<i64>, i64, Option<i64>), pgrx::spi::Error> {
        let table = client.select(
            "SELECT (SELECT version FROM recsys.models WHERE status OPERATOR(pg_catalog.=) 'active'), version, xmin::pg_catalog.text::pg_catalog.int8
             FROM recsys.catalogue_state",
            Some(1),
            &[],
        )?;
        let row = table.first();
        Ok((row.get::<i64>(1)?, row.get::<i64>(2)?.unwrap_or(0), row.get::<i64>(3)?))
    })
    .map_err(RecsysError::spi("reading the active model and catalogue versions"))?;
    let version = version.ok_or(RecsysError::NoActiveModel)?;
    // SAFETY: asks whether an xid belongs to this backend's transaction (or one of its subtransactions).
    let uncommitted =
        catalogue_writer.is_some_and(|xid| unsafe { pg_sys::TransactionIdIsCurrentTransactionId(pg_sys::TransactionId::from_inner(xid as u32)) });
    let context = LoadContext { catalogue_version, uncommitted, changes_recorded: catalogue_changes_recorded()?, embed: embed_titles };
    let model = match with_state(|state| state.model.clone()) {
        Some(model) if model.version == version && model.catalogue_version == catalogue_version => {
            model.catalogue_uncommitted.set(model.catalogue_uncommitted.get() && uncommitted);
            model
        }
        Some(model) if model.version == version && catalogue_version > model.catalogue_version && !model.catalogue_uncommitted.get() => {
            let changed = match context.changes_recorded {
                true => catalogue::changed_movies(model.catalogue_version, model.catalogue.movie_ids.len())?,
                false => None,
            };
            match changed {
                Some(changed) => Rc::new(model.with_changes(&changed, catalogue_version, uncommitted, embed_titles)?),
                None => Rc::new(model::load(version, &context)?),
            }
        }
        _ => Rc::new(model::load(version, &context)?),
    };
    with_state(|state| state.replace_model(Some(model.clone()), visible));
    Ok(model)
}

/// The vector that scores `user_id` in the running statement with `model` (from `active_model`): the trained row,
/// or one refitted to the ratings the model never saw (`fold_in`), kept until those ratings change.
pub fn user_vector(model: &LoadedModel, user_id: i32) -> Result<UserVector, RecsysError> {
    let row = model.vocabulary.user_row(user_id) as usize;
    if fold_in::without_fold_in(model, row) {
        return Ok(UserVector::Row(row));
    }
    let visible = freshness::visible_data();
    if let Some(kept) = with_state(|state| state.holds(model).then(|| state.folded.checked(user_id, visible)).flatten()) {
        return Ok(kept);
    }
    if row != 0 && !any_rating_unseen(model, visible)? {
        return Ok(UserVector::Row(row));
    }
    let by_load = has_load_numbers()?;
    let plan = with_state(|state| state.new_ratings_plan.take());
    let (new, plan) = fold_in::read_new_ratings(model, user_id, row, by_load, plan)?;
    with_state(|state| state.new_ratings_plan = Some(plan));
    let vector = match with_state(|state| state.holds(model).then(|| state.folded.fitted(user_id, new.key)).flatten()) {
        Some(vector) => vector,
        None => fold_in::fit(model, row, &new)?,
    };
    with_state(|state| {
        if state.holds(model) {
            state.folded.keep(user_id, visible, new.key, vector.clone());
        }
    });
    Ok(vector)
}

/// Whether the running statement (seeing `visible`) may see a rating `model` has not seen (asked once per statement
/// and model).
fn any_rating_unseen(model: &LoadedModel, visible: Option<VisibleData>) -> Result<bool, RecsysError> {
    let kept = with_state(|state| match state.any_rating_unseen {
        Some((asked_with, answer)) if state.holds(model) && Some(asked_with) == visible => Some(answer),
        _ => None,
    });
    if let Some(answer) = kept {
        return Ok(answer);
    }
    let answer = fold_in::any_rating_unseen(model)?;
    with_state(|state| {
        if state.holds(model) {
            state.any_rating_unseen = visible.map(|visible| (visible, answer));
        }
    });
    Ok(answer)
}

/// MiniLM embeddings of `titles` in the session's precision (`recsys.precision`), with the backend's one model.
pub fn embed_titles(titles: &[&str]) -> Result<Tensor, RecsysError> {
    let precision = crate::guc::precision();
    with_state(|state| state.titles.embed(titles, precision))
}

/// The title's embedding: this backend's earlier answer, recsys.title_embeddings, or MiniLM.
pub fn title_embedding(title: &str) -> Result<Tensor, RecsysError> {
    let precision = crate::guc::precision();
    if let Some(kept) = with_state(|state| state.titles.remembered(title, precision)) {
        return Ok(kept);
    }
    let embedding = match titles::stored_embedding(title)? {
        Some(stored) => stored,
        None => embed_titles(&[title])?,
    };
    with_state(|state| state.titles.remember(title, precision, &embedding));
    Ok(embedding)
}

/// Fails with 55000 and the ALTER EXTENSION hint while the database still holds an older version's objects (the
/// library was replaced, the update not run yet); asked until it first succeeds in a backend.
pub fn require_current_schema() -> Result<(), RecsysError> {
    if with_state(|state| state.schema.current) {
        return Ok(());
    }
    if !catalogue::schema_is_current()? {
        return Err(RecsysError::SchemaNotUpdated);
    }
    with_state(|state| state.schema.current = true);
    Ok(())
}

/// Whether ratings carry load numbers (0.7.0 and later): a database not yet updated keeps serving with the rated_at
/// rule until `ALTER EXTENSION pg_recsys UPDATE`. Asked until it first says yes.
pub fn has_load_numbers() -> Result<bool, RecsysError> {
    if with_state(|state| state.schema.load_numbers) {
        return Ok(true);
    }
    let present = catalogue::ratings_have_load_numbers()?;
    with_state(|state| state.schema.load_numbers = present);
    Ok(present)
}

/// Whether this database records catalogue changes (0.4.0 and later; an older schema keeps working without).
fn catalogue_changes_recorded() -> Result<bool, RecsysError> {
    if let Some(recorded) = with_state(|state| state.schema.changes_recorded.filter(|recorded| *recorded)) {
        return Ok(recorded);
    }
    let recorded = catalogue::catalogue_changes_recorded()?;
    with_state(|state| state.schema.changes_recorded = Some(recorded));
    Ok(recorded)
}
