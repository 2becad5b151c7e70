//! The batch refresh: top-k unrated movies for every user (or one shard of the users) with the active model (new
//! ratings folded in), streamed a chunk of users at a time into recsys.batch_recommendations in the caller's
//! transaction (readers see the previous batch until it commits), plus a monitoring row in recsys.quality_log.
mod outcome;
mod users;

pub use self::users::Shard;
use crate::error::RecsysError;
use crate::serving::fold_in;
use crate::serving::model::LoadedModel;
use crate::serving::snapshot;
use crate::serving::state;
use outcome::Outcome;
use pgrx::prelude::*;
use recsys_model::ranking::{RankOptions, RatingUsers, Retrieval};
use std::collections::HashSet;
use std::time::Instant;
use users::UserRatings;

/// Floats of first-layer activations scored at once (users × movies × head width): 4 MB, so that the layers'
/// intermediate results stay in cache. `cargo bench -p recsys_model --bench catalogue_scoring` at the ML-1M shape
/// (3,706 movies): one user per pass 12.4 s for 6,040 users with 2 threads, 17 users per pass (64 MB) 21.5 s.
const FLOATS_PER_CHUNK: usize = 1 << 20;
/// Approximate scores held at once by a two-stage pass (users × movies): 8 MB.
const APPROXIMATE_FLOATS_PER_CHUNK: usize = 1 << 21;
/// Key of the transaction-level advisory lock of refreshes: exclusive for a whole refresh, shared for a shard's.
const REFRESH_LOCK_KEY: i64 = 0x7265_6373_7973_0001;
/// First key of the (int4, int4) advisory lock a shard's refresh holds exclusively (second key: the shard).
const SHARD_LOCK_KEY: i32 = 0x7265_6373;
/// Largest number of shards.
pub const MAX_SHARDS: i32 = 1024;

/// What a batch refresh did (the row `recsys_refresh_batch_now` returns).
pub struct RefreshSummary {
    /// The model version that scored the batch.
    pub model_version: i64,
    /// Users refreshed.
    pub users: i64,
    /// Rows written.
    pub recommendations: i64,
    /// Share of the catalogue recommended to at least one user.
    pub catalogue_coverage: f64,
    /// Share of (user, movie) recommendations not in the previous batch (None without one).
    pub changed_share: Option<f64>,
    /// RMSE on ratings newer than the model's training data (None without any).
    pub prospective_rmse: Option<f64>,
    /// How many such ratings there were.
    pub prospective_ratings: i64,
    /// Such ratings of movies no longer in the catalogue, left out of the RMSE (quality_log.details).
    pub prospective_unscored: i64,
    /// Wall time of the refresh.
    pub seconds: f64,
}

/// The model on ratings that arrived after its training data.
pub struct Prospective {
    /// Their RMSE (None when there are none yet).
    pub rmse: Option<f64>,
    /// The ratings scored.
    pub ratings: i64,
    /// Ratings of movies no longer in the catalogue, which cannot be scored (reported, not silently dropped).
    pub unscored: i64,
}

/// RMSE of the model on ratings that arrived after its training data; a rating the model fails to score is an error.
pub fn prospective_rmse(model: &LoadedModel) -> Result<Prospective, RecsysError> {
    let has_load_numbers = crate::serving::state::has_load_numbers()?;
    let trained_until = model.trained_until.map(|seconds| seconds as f64);
    let rows = Spi::connect(|client| -> Result<Vec<(i32, i32, f64)>, pgrx::spi::Error> {
        let ratings = match has_load_numbers {
            true => client.select(recsys_contract::RATINGS_AFTER_TRAINING, None, &[model.loaded_until.into(), trained_until.into()])?,
            false => client.select(recsys_contract::RATINGS_AFTER_TRAINING_BY_TIME, None, &[model.version.into()])?,
        };
        ratings
            .map(|row| Ok((row.get::<i32>(1)?.unwrap_or_default(), row.get::<i32>(2)?.unwrap_or_default(), row.get::<f64>(3)?.unwrap_or_default())))
            .collect()
    })
    .map_err(RecsysError::spi("reading ratings newer than the model"))?;
    let (mut sum, mut ratings, mut unscored) = (0.0, 0i64, 0i64);
    for (user, movie, rating) in rows {
        let Some(position) = model.movie_index.get(&movie) else {
            unscored += 1;
            continue;
        };
        let score = model.scorer.score(model.vocabulary.user_row(user) as usize, *position)?;
        sum += (f64::from(score) - rating).powi(2);
        ratings += 1;
    }
    if unscored > 0 {
        pgrx::notice!("pg_recsys: the prospective RMSE leaves out {unscored} new ratings of movies no longer in the catalogue");
    }
    Ok(Prospective { rmse: (ratings > 0).then(|| (sum / ratings as f64).sqrt()), ratings, unscored })
}

struct Batch {
    users: Vec<i32>,
    ranks: Vec<i16>,
    movies: Vec<i32>,
    scores: Vec<f32>,
}

/// Users scored per libtorch pass.
fn users_per_pass(model: &LoadedModel, options: RankOptions) -> usize {
    let movies = model.scorer.movies().max(1);
    match options.retrieval {
        Retrieval::Exhaustive => FLOATS_PER_CHUNK / (movies * model.scorer.width()),
        Retrieval::TwoStage { .. } => APPROXIMATE_FLOATS_PER_CHUNK / movies,
    }
    .max(1)
}

fn compute(model: &LoadedModel, users: &[UserRatings], options: RankOptions) -> Result<Batch, RecsysError> {
    let movies = model.scorer.movies();
    let chunk = users_per_pass(model, options);
    let mut batch = Batch { users: Vec::new(), ranks: Vec::new(), movies: Vec::new(), scores: Vec::new() };
    let ids = &model.catalogue.movie_ids;
    let (folded, trained): (Vec<&UserRatings>, Vec<&UserRatings>) = users.iter().partition(|u| !u.unseen.is_empty());
    for (group, fold) in trained.chunks(chunk).map(|g| (g, false)).chain(folded.chunks(chunk).map(|g| (g, true))) {
        let candidates = |index: usize| {
            let mut allowed = vec![true; movies];
            group[index].rated.iter().for_each(|(p, _)| allowed[*p] = false);
            (0..movies).filter(|p| allowed[*p]).collect()
        };
        let rated: Vec<&[(usize, f32)]> = group.iter().map(|user| user.rated.as_slice()).collect();
        let rankings = if fold {
            let vectors = group
                .iter()
                .map(|user| {
                    let start = model.scorer.trained_user(model.vocabulary.user_row(user.user_id) as usize)?;
                    model.scorer.fold_in(&start, user.reflected, &user.unseen, fold_in::options())
                })
                .collect::<Result<Vec<_>, _>>()?;
            model.rank_lists(RatingUsers::Folded(&vectors), &rated, candidates, options)?
        } else {
            let rows: Vec<i64> = group.iter().map(|user| model.vocabulary.user_row(user.user_id)).collect();
            model.rank_lists(RatingUsers::Rows(&rows), &rated, candidates, options)?
        };
        for (user, ranking) in group.iter().zip(rankings) {
            for (rank, (position, score)) in ranking.into_iter().enumerate() {
                batch.users.push(user.user_id);
                batch.ranks.push(rank as i16 + 1);
                batch.movies.push(ids[position]);
                batch.scores.push(score);
            }
        }
        pgrx::check_for_interrupts!();
    }
    Ok(batch)
}

fn try_lock(sql: &str, arguments: &[pgrx::datum::DatumWithOid<'_>]) -> Result<(), RecsysError> {
    match Spi::get_one_with_args::<bool>(sql, arguments).map_err(RecsysError::spi("taking the refresh lock"))? {
        Some(true) => Ok(()),
        _ => Err(RecsysError::RefreshRunning),
    }
}

/// A whole refresh excludes every other refresh; a shard's excludes whole refreshes and the same shard's.
fn lock_refresh(shard: Shard) -> Result<(), RecsysError> {
    if shard == Shard::ALL {
        return try_lock("SELECT pg_catalog.pg_try_advisory_xact_lock($1::pg_catalog.int8)", &[REFRESH_LOCK_KEY.into()]);
    }
    try_lock("SELECT pg_catalog.pg_try_advisory_xact_lock_shared($1::pg_catalog.int8)", &[REFRESH_LOCK_KEY.into()])?;
    try_lock("SELECT pg_catalog.pg_try_advisory_xact_lock($1::pg_catalog.int4, $2::pg_catalog.int4)", &[SHARD_LOCK_KEY.into(), shard.index.into()])
}

/// Replaces the rows of `users` in recsys.batch_recommendations by `batch`; returns how many of the new (user,
/// movie) pairs were not there before and how many rows there were.
fn replace_rows(users: &[i32], batch: Batch, version: i64) -> Result<(usize, usize), RecsysError> {
    Spi::connect_mut(|client| -> Result<(usize, usize), pgrx::spi::Error> {
        let mut previous = HashSet::new();
        let deleted = client.update(
            "DELETE FROM recsys.batch_recommendations WHERE user_id OPERATOR(pg_catalog.=) ANY ($1::pg_catalog.int4[]) RETURNING user_id, movie_id",
            None,
            &[users.to_vec().into()],
        )?;
        for row in deleted {
            previous.insert((row.get::<i32>(1)?.unwrap_or_default(), row.get::<i32>(2)?.unwrap_or_default()));
        }
        let changed = batch.users.iter().zip(&batch.movies).filter(|(u, m)| !previous.contains(&(**u, **m))).count();
        client.update(
            "INSERT INTO recsys.batch_recommendations (user_id, rank, movie_id, score, model_version, generated_at)
             SELECT u, r, m, s, $5::pg_catalog.int8, pg_catalog.now()
             FROM ROWS FROM (pg_catalog.unnest($1::pg_catalog.int4[]), pg_catalog.unnest($2::pg_catalog.int2[]),
                             pg_catalog.unnest($3::pg_catalog.int4[]), pg_catalog.unnest($4::pg_catalog.float4[])) AS b(u, r, m, s)",
            None,
            &[batch.users.into(), batch.ranks.into(), batch.movies.into(), batch.scores.into(), version.into()],
        )?;
        Ok((changed, previous.len()))
    })
    .map_err(RecsysError::spi("writing recsys.batch_recommendations"))
}

/// Reports progress at every tenth of the users.
struct Progress {
    total: i64,
    done: i64,
    reported_tenths: i64,
    started: Instant,
    shard: Shard,
}

impl Progress {
    fn advance(&mut self, users: usize) {
        self.done += users as i64;
        let tenths = if self.total > 0 { self.done * 10 / self.total } else { 10 };
        if tenths > self.reported_tenths && self.done < self.total {
            self.reported_tenths = tenths;
            let elapsed = self.started.elapsed().as_secs_f64();
            let remaining = elapsed * (self.total - self.done) as f64 / self.done.max(1) as f64;
            let shard = if self.shard == Shard::ALL { String::new() } else { format!(" (shard {} of {})", self.shard.index, self.shard.count) };
            pgrx::notice!(
                "recsys_refresh_batch{shard}: {} of {} users ({} %) in {elapsed:.0} s, about {remaining:.0} s to go",
                self.done,
                self.total,
                self.done * 100 / self.total.max(1)
            );
        }
    }
}

/// The refresh's quality_log row; `$extra_columns`/`$extra_values`: the previous batch's outcome, where the schema
/// has its columns.
macro_rules! log_refresh {
    ($extra_columns:literal, $extra_values:literal) => {
        concat!(
            "INSERT INTO recsys.quality_log (kind, model_version, started_at, finished_at, duration_seconds, users, recommendations,
                                         catalogue_coverage, changed_share, prospective_rmse, prospective_ratings, details",
            $extra_columns,
            ") VALUES ('refresh', $1, pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) pg_catalog.make_interval(secs => $2), pg_catalog.clock_timestamp(),
                 $2, $3, $4, $5, $6, $7, $8, pg_catalog.jsonb_build_object('k', $9::pg_catalog.int4, 'threads', $10::pg_catalog.int4,
                                                   'shard', $11::pg_catalog.int4, 'shards', $12::pg_catalog.int4, 'retrieval', $13::pg_catalog.text,
                                                   'prospective_unscored', $14::pg_catalog.int8)",
            $extra_values,
            ")"
        )
    };
}

fn log_run(summary: &RefreshSummary, outcome: Option<&Outcome>, k: i32, threads: i32, shard: Shard, retrieval: Retrieval) -> Result<(), RecsysError> {
    let sql = match outcome {
        Some(_) => log_refresh!(
            ", previous_batch_users, previous_batch_recall_at_10, previous_batch_hit_rate, popularity_recall_at_10, popularity_hit_rate",
            ", $15, $16, $17, $18, $19"
        ),
        None => log_refresh!("", ""),
    };
    let mut arguments: Vec<pgrx::datum::DatumWithOid<'_>> = vec![
        summary.model_version.into(),
        summary.seconds.into(),
        summary.users.into(),
        summary.recommendations.into(),
        summary.catalogue_coverage.into(),
        summary.changed_share.into(),
        summary.prospective_rmse.into(),
        summary.prospective_ratings.into(),
        k.into(),
        threads.into(),
        shard.index.into(),
        shard.count.into(),
        match retrieval {
            Retrieval::Exhaustive => "exhaustive".to_string(),
            Retrieval::TwoStage { candidates } => format!("two_stage({candidates})"),
        }
        .into(),
        summary.prospective_unscored.into(),
    ];
    if let Some(outcome) = outcome {
        arguments.extend([
            outcome.users.into(),
            outcome.recall_at_10.into(),
            outcome.hit_rate.into(),
            outcome.popularity_recall_at_10.into(),
            outcome.popularity_hit_rate.into(),
        ]);
    }
    Spi::connect_mut(|client| client.update(sql, None, &arguments).map(|_| ()))
        .map_err(RecsysError::spi("recording the refresh in recsys.quality_log"))
}

/// Recomputes the batch rows of `shard`'s users (every user for `Shard::ALL`) with `k` movies per user and
/// `threads` libtorch threads.
pub fn refresh(k: i32, threads: i32, shard: Shard) -> Result<RefreshSummary, RecsysError> {
    RecsysError::refuse_on_standby("recsys_refresh_batch")?;
    if !(1..=recsys_contract::MAX_BATCH_K).contains(&k) {
        return Err(RecsysError::invalid_parameter(
            format!("k must be between 1 and {}, got {k}", recsys_contract::MAX_BATCH_K),
            "Ask for the number of recommendations per user, e.g. 10.",
        ));
    }
    if !(1..=crate::guc::MAX_TORCH_THREADS).contains(&threads) {
        return Err(RecsysError::invalid_parameter(
            format!("threads must be between 1 and {}, got {threads}", crate::guc::MAX_TORCH_THREADS),
            "Pass NULL to use recsys.torch_threads.",
        ));
    }
    if !(1..=MAX_SHARDS).contains(&shard.count) || !(0..shard.count).contains(&shard.index) {
        return Err(RecsysError::invalid_parameter(
            format!("shard must be between 0 and shards - 1 and shards between 1 and {MAX_SHARDS}, got shard {} of {}", shard.index, shard.count),
            "Refresh every user with the defaults (shard 0 of 1), or run shard 0, 1, ..., n - 1 of n in separate sessions.",
        ));
    }
    let started = Instant::now();
    lock_refresh(shard)?;
    let _float_mode = crate::torch_runtime::use_threads(threads.min(crate::guc::machine_threads()))?;
    let model = state::active_model()?;
    snapshot::store_if_stale(model.version, model.catalogue_version, &model.catalogue)?;
    let options = crate::guc::rank_options(k as usize, model.scorer.movies());
    users::delete_departed(shard)?;
    let outcome = outcome::previous_batch(shard)?;
    let mut progress = Progress { total: users::count(shard)?, done: 0, reported_tenths: 0, started, shard };
    let (mut distinct, mut changed, mut previous_rows, mut recommendations) = (HashSet::new(), 0, 0, 0i64);
    let mut after = None;
    loop {
        let chunk = users::next_chunk(&model, shard, after, crate::guc::refresh_users_per_round())?;
        let Some(last) = chunk.last() else { break };
        after = Some(last.user_id);
        let batch = compute(&model, &chunk, options)?;
        distinct.extend(batch.movies.iter().copied());
        recommendations += batch.movies.len() as i64;
        let ids: Vec<i32> = chunk.iter().map(|user| user.user_id).collect();
        let (new_pairs, replaced) = replace_rows(&ids, batch, model.version)?;
        (changed, previous_rows) = (changed + new_pairs, previous_rows + replaced);
        progress.advance(chunk.len());
        pgrx::check_for_interrupts!();
    }
    let prospective = prospective_rmse(&model)?;
    let summary = RefreshSummary {
        model_version: model.version,
        users: progress.done,
        recommendations,
        catalogue_coverage: distinct.len() as f64 / model.catalogue.movie_ids.len().max(1) as f64,
        changed_share: (previous_rows > 0 && recommendations > 0).then(|| changed as f64 / recommendations as f64),
        prospective_rmse: prospective.rmse,
        prospective_ratings: prospective.ratings,
        prospective_unscored: prospective.unscored,
        seconds: started.elapsed().as_secs_f64(),
    };
    log_run(&summary, outcome.as_ref(), k, threads, shard, options.retrieval)?;
    Ok(summary)
}
