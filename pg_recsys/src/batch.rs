//! The batch refresh: top-k unrated movies for every user with the active model (new ratings folded in), written to
//! recsys.batch_recommendations in the caller's transaction (readers see the previous batch until it commits), plus
//! a monitoring row in recsys.quality_log. Concurrent refreshes are refused, not interleaved.
use crate::error::RecsysError;
use crate::serving::cache::{self, LoadedModel};
use crate::serving::fold_in;
use crate::serving::snapshot;
use pgrx::prelude::*;
use recsys_model::ranking::{rank_folded_users, rank_users};
use std::collections::HashSet;
use std::time::Instant;

/// Floats of first-layer activations scored at once (users × movies × head width): 4 MB, so that the layers'
/// intermediate results stay in cache. `cargo bench -p recsys_model --bench catalogue_scoring` at the ML-1M shape
/// (3,706 movies): one user per pass 12.4 s for 6,040 users with 2 threads, 17 users per pass (64 MB) 21.5 s.
const FLOATS_PER_CHUNK: usize = 1 << 20;
/// Key of the transaction-level advisory lock that serialises refreshes.
const REFRESH_LOCK_KEY: i64 = 0x7265_6373_7973_0001;

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
    /// Wall time of the refresh.
    pub seconds: f64,
}

/// A user to refresh: the catalogue positions they rated, and for fold-in the ratings the model never saw (those
/// newer than its training data; all of them for a user it was trained without) and how many it did.
struct UserRatings {
    user_id: i32,
    rated: Vec<usize>,
    unseen: Vec<(usize, f32)>,
    reflected: usize,
}

/// Every user with their ratings as the refresh needs them.
fn users_and_rated(model: &LoadedModel) -> Result<Vec<UserRatings>, RecsysError> {
    let cutoff = model.trained_until.map(|seconds| seconds as f64);
    Spi::connect(|client| -> Result<Vec<UserRatings>, pgrx::spi::Error> {
        let sql = "SELECT u.user_id, r.movies, r.ratings, r.after_training FROM recsys.users u
                   LEFT JOIN (SELECT user_id, pg_catalog.array_agg(movie_id ORDER BY movie_id) AS movies,
                                     pg_catalog.array_agg(rating::pg_catalog.float4 ORDER BY movie_id) AS ratings,
                                     pg_catalog.array_agg($1::pg_catalog.float8 IS NULL
                                                          OR rated_at OPERATOR(pg_catalog.>) pg_catalog.to_timestamp($1::pg_catalog.float8) ORDER BY movie_id) AS after_training
                              FROM recsys.ratings GROUP BY user_id) r USING (user_id)
                   ORDER BY u.user_id";
        let fold_in = crate::guc::fold_in();
        let mut users = Vec::new();
        for row in client.select(sql, None, &[cutoff.into()])? {
            let user_id = row.get::<i32>(1)?.unwrap_or_default();
            let (movies, ratings, after) =
                (row.get::<Vec<i32>>(2)?.unwrap_or_default(), row.get::<Vec<f32>>(3)?.unwrap_or_default(), row.get::<Vec<bool>>(4)?.unwrap_or_default());
            let known = model.vocabulary.user_row(user_id) != 0;
            let mut user = UserRatings { user_id, rated: Vec::with_capacity(movies.len()), unseen: Vec::new(), reflected: 0 };
            for ((movie, rating), after) in movies.iter().zip(ratings).zip(after) {
                let Some(position) = model.movie_index.get(movie).copied() else { continue };
                user.rated.push(position);
                match fold_in && (!known || (after && model.trained_until.is_some())) {
                    true => user.unseen.push((position, rating)),
                    false => user.reflected += 1,
                }
            }
            users.push(user);
        }
        Ok(users)
    })
    .map_err(RecsysError::spi("reading users and their ratings"))
}

/// (user, movie) pairs of the current batch, to measure how much the new one changes.
fn current_pairs() -> Result<HashSet<(i32, i32)>, RecsysError> {
    Spi::connect(|client| -> Result<HashSet<(i32, i32)>, pgrx::spi::Error> {
        let mut pairs = HashSet::new();
        for row in client.select("SELECT user_id, movie_id FROM recsys.batch_recommendations", None, &[])? {
            pairs.insert((row.get::<i32>(1)?.unwrap_or_default(), row.get::<i32>(2)?.unwrap_or_default()));
        }
        Ok(pairs)
    })
    .map_err(RecsysError::spi("reading the current batch"))
}

/// RMSE of the model on ratings that arrived after its training data (None when there are none yet).
pub fn prospective_rmse(model: &LoadedModel) -> Result<(Option<f64>, i64), RecsysError> {
    let (sum, count) = Spi::connect(|client| -> Result<(f64, i64), pgrx::spi::Error> {
        let (mut sum, mut count) = (0.0, 0i64);
        for row in client.select(recsys_contract::RATINGS_AFTER_TRAINING, None, &[model.version.into()])? {
            let (user, movie, rating) =
                (row.get::<i32>(1)?.unwrap_or_default(), row.get::<i32>(2)?.unwrap_or_default(), row.get::<f64>(3)?.unwrap_or_default());
            let position = model.movie_index.get(&movie);
            if let Some(score) = position.and_then(|p| model.scorer.score(model.vocabulary.user_row(user) as usize, *p)) {
                sum += (f64::from(score) - rating).powi(2);
                count += 1;
            }
        }
        Ok((sum, count))
    })
    .map_err(RecsysError::spi("reading ratings newer than the model"))?;
    Ok(((count > 0).then(|| (sum / count as f64).sqrt()), count))
}

struct Batch {
    users: Vec<i32>,
    ranks: Vec<i16>,
    movies: Vec<i32>,
    scores: Vec<f32>,
}

fn compute(model: &LoadedModel, users: &[UserRatings], k: usize) -> Result<Batch, RecsysError> {
    let movies = model.scorer.movies();
    let chunk = (FLOATS_PER_CHUNK / (movies.max(1) * model.scorer.width())).max(1);
    let mut batch = Batch { users: Vec::new(), ranks: Vec::new(), movies: Vec::new(), scores: Vec::new() };
    let precision = crate::guc::precision();
    let ids = &model.catalogue.movie_ids;
    let (folded, trained): (Vec<&UserRatings>, Vec<&UserRatings>) = users.iter().partition(|u| !u.unseen.is_empty());
    for (group, fold) in trained.chunks(chunk).map(|g| (g, false)).chain(folded.chunks(chunk).map(|g| (g, true))) {
        let candidates = |index: usize| {
            let mut allowed = vec![true; movies];
            group[index].rated.iter().for_each(|p| allowed[*p] = false);
            (0..movies).filter(|p| allowed[*p]).collect()
        };
        let rankings = if fold {
            let vectors = group
                .iter()
                .map(|user| {
                    let start = model.scorer.trained_user(model.vocabulary.user_row(user.user_id) as usize)?;
                    model.scorer.fold_in(&start, user.reflected, &user.unseen, fold_in::options())
                })
                .collect::<Result<Vec<_>, _>>()?;
            rank_folded_users(&model.scorer, &vectors, candidates, ids, k, precision)?
        } else {
            let rows: Vec<i64> = group.iter().map(|user| model.vocabulary.user_row(user.user_id)).collect();
            rank_users(&model.scorer, &rows, candidates, ids, k, precision)?
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

fn lock_refresh() -> Result<(), RecsysError> {
    let locked = Spi::get_one_with_args::<bool>("SELECT pg_catalog.pg_try_advisory_xact_lock($1::pg_catalog.int8)", &[REFRESH_LOCK_KEY.into()])
        .map_err(RecsysError::spi("taking the refresh lock"))?;
    if locked == Some(true) {
        Ok(())
    } else {
        Err(RecsysError::RefreshRunning)
    }
}

fn write(batch: Batch, version: i64) -> Result<(), RecsysError> {
    Spi::connect_mut(|client| -> Result<(), pgrx::spi::Error> {
        client.update("DELETE FROM recsys.batch_recommendations", None, &[])?;
        client.update(
            "INSERT INTO recsys.batch_recommendations (user_id, rank, movie_id, score, model_version, generated_at)
             SELECT u, r, m, s, $5::pg_catalog.int8, pg_catalog.now()
             FROM ROWS FROM (pg_catalog.unnest($1::pg_catalog.int4[]), pg_catalog.unnest($2::pg_catalog.int2[]),
                             pg_catalog.unnest($3::pg_catalog.int4[]), pg_catalog.unnest($4::pg_catalog.float4[])) AS b(u, r, m, s)",
            None,
            &[batch.users.into(), batch.ranks.into(), batch.movies.into(), batch.scores.into(), version.into()],
        )?;
        Ok(())
    })
    .map_err(RecsysError::spi("writing recsys.batch_recommendations"))
}

fn log_run(summary: &RefreshSummary, k: i32, threads: i32) -> Result<(), RecsysError> {
    let sql = "INSERT INTO recsys.quality_log (kind, model_version, started_at, finished_at, duration_seconds, users, recommendations,
                                         catalogue_coverage, changed_share, prospective_rmse, prospective_ratings, details)
         VALUES ('refresh', $1, pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) pg_catalog.make_interval(secs => $2), pg_catalog.clock_timestamp(),
                 $2, $3, $4, $5, $6, $7, $8, pg_catalog.jsonb_build_object('k', $9::pg_catalog.int4, 'threads', $10::pg_catalog.int4))";
    let arguments = [
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
    ];
    Spi::connect_mut(|client| client.update(sql, None, &arguments).map(|_| ()))
        .map_err(RecsysError::spi("recording the refresh in recsys.quality_log"))
}

/// Recomputes the whole batch with `k` movies per user and `threads` libtorch threads.
pub fn refresh(k: i32, threads: i32) -> Result<RefreshSummary, RecsysError> {
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
    let started = Instant::now();
    lock_refresh()?;
    let _float_mode = crate::torch_runtime::use_threads(threads)?;
    let model = cache::active()?;
    snapshot::store_if_stale(model.version, model.catalogue_version, &model.catalogue)?;
    let users = users_and_rated(&model)?;
    let batch = compute(&model, &users, k as usize)?;
    let distinct: HashSet<i32> = batch.movies.iter().copied().collect();
    let previous = current_pairs()?;
    let changed = batch.users.iter().zip(&batch.movies).filter(|(u, m)| !previous.contains(&(**u, **m))).count();
    let recommendations = batch.movies.len() as i64;
    let (prospective_rmse, prospective_ratings) = prospective_rmse(&model)?;
    write(batch, model.version)?;
    let summary = RefreshSummary {
        model_version: model.version,
        users: users.len() as i64,
        recommendations,
        catalogue_coverage: distinct.len() as f64 / model.catalogue.movie_ids.len().max(1) as f64,
        changed_share: (!previous.is_empty() && recommendations > 0).then(|| changed as f64 / recommendations as f64),
        prospective_rmse,
        prospective_ratings,
        seconds: started.elapsed().as_secs_f64(),
    };
    log_run(&summary, k, threads)?;
    Ok(summary)
}
