//! Fitting the preference part: for batches of users, a softmax over every trained movie whose targets are the
//! movies each user picked (`Positives`; the loss gathers the picked logits, no users × movies target matrix), the
//! user built from a random half of their rated movies (so it learns to predict movies it was not shown); the movies' own rows hidden at random so the content projections learn to rank
//! movies without ratings; Adam; the epoch and the rating blend chosen on a validation share's Recall@10.
use super::blend::{BlendChoice, BlendTried};
use super::similarity_choice::RepresentationChoice;
use super::validation::{CheckedUsers, Histories};
use crate::config::{NeighbourInput, Positives, PreferenceChoices};
use crate::network::{normalise_user, HybridRecommender};
use crate::ranking::top_k;
use crate::ModelError;
use serde::Serialize;
use tch::{Device, Kind, Tensor};

/// How the preference part is fitted.
#[derive(Debug, Clone, Serialize)]
pub struct PreferenceOptions {
    /// Passes over the users at most.
    pub epochs: usize,
    /// Users per optimiser step.
    pub batch_users: usize,
    /// Adam's learning rate.
    pub learning_rate: f64,
    /// Share of a user's rated movies hidden from the user's vector in each step.
    pub input_dropout: f64,
    /// Share of movies whose own rows are hidden in each step (content projections alone).
    pub id_dropout: f64,
    /// Decoupled weight decay per step.
    pub weight_decay: f64,
    /// Stop after this many validation checks without a better Recall@10.
    pub patience: usize,
    /// Validation users the rating blend is chosen on (each needs a pass of the rating head over every movie).
    pub blend_users: usize,
    /// Seed of the batch order and the masks.
    pub seed: u64,
}

/// Validation users each epoch's check ranks the catalogue for at most (an even sample of them above it), so that the
/// check's cost and memory stay bounded at any number of users.
const EPOCH_CHECK_USERS: usize = 20_000;

/// At most `limit` of `users` (with their relevant movies), evenly spaced: all of them when they are fewer.
fn evenly_sampled(users: &[usize], relevant: &[Vec<i64>], limit: usize) -> (Vec<usize>, Vec<Vec<i64>>) {
    let step = users.len().div_ceil(limit.max(1)).max(1);
    users.iter().zip(relevant).step_by(step).map(|(user, relevant)| (*user, relevant.clone())).unzip()
}

/// Users whose stored preference vectors are computed at once.
const USERS_PER_FILL: usize = 4096;

impl PreferenceReport {
    /// The choices to store with the network.
    pub fn choices(&self) -> PreferenceChoices {
        PreferenceChoices {
            similar_movies: self.similar_movies.chosen,
            similar_users: self.similar_users.chosen,
            neighbour_input: self.neighbour_input,
        }
    }
}

/// What fitting the preference part did and measured on validation.
#[derive(Debug, Clone, Serialize)]
pub struct PreferenceReport {
    /// Epochs run.
    pub epochs_run: usize,
    /// The epoch whose weights were kept.
    pub best_epoch: usize,
    /// (epoch, validation Recall@10) at each check.
    pub validation_recall: Vec<(usize, f64)>,
    /// The chosen weight of the predicted rating in the order.
    pub blend: f32,
    /// The chosen weight of the item neighbourhood in the preference score.
    pub neighbour_weight: f32,
    /// The chosen way of counting a user's rated movies in the neighbourhood score.
    pub neighbour_input: NeighbourInput,
    /// Every combination tried with the mean of its validation Recall@10 and NDCG@10.
    pub blend_recall: Vec<BlendTried>,
    /// Validation users with a liked movie.
    pub validation_users: usize,
    /// The validation users each epoch's check ranked for (all of them up to `EPOCH_CHECK_USERS`, else an even
    /// sample).
    pub epoch_check_users: usize,
    /// The validation users the blend was chosen on.
    pub blend_users: usize,
    /// The representation similar movies are served from, and how each did on validation.
    pub similar_movies: RepresentationChoice,
    /// The representation similar users are served from, and how each did on validation.
    pub similar_users: RepresentationChoice,
    /// Wall time of the fit, blend included.
    pub seconds: f64,
    /// Where that wall time went.
    pub spent: PreferenceSeconds,
}

/// The wall time of each stage of fitting the preference part (the similarity choices report their own).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct PreferenceSeconds {
    /// Optimiser steps over every epoch.
    pub steps: f64,
    /// The validation checks between epochs.
    pub checks: f64,
    /// Choosing the order's neighbourhood input and weights.
    pub blend: f64,
    /// Filling the stored user vectors.
    pub user_vectors: f64,
}

struct Adam {
    parameters: Vec<Tensor>,
    first: Vec<Tensor>,
    second: Vec<Tensor>,
    steps: i32,
    learning_rate: f64,
    weight_decay: f64,
}

impl Adam {
    fn new(parameters: Vec<Tensor>, learning_rate: f64, weight_decay: f64) -> Self {
        let zeros = parameters.iter().map(Tensor::zeros_like).collect::<Vec<_>>();
        Self { first: zeros.iter().map(Tensor::zeros_like).collect(), second: zeros, parameters, steps: 0, learning_rate, weight_decay }
    }

    fn step(&mut self, gradients: &[Tensor]) -> Result<(), tch::TchError> {
        self.steps += 1;
        let (beta1, beta2) = (0.9f64, 0.999f64);
        let correction1 = 1.0 - beta1.powi(self.steps);
        let correction2 = 1.0 - beta2.powi(self.steps);
        tch::no_grad(|| -> Result<(), tch::TchError> {
            for ((parameter, gradient), (first, second)) in
                self.parameters.iter_mut().zip(gradients).zip(self.first.iter_mut().zip(self.second.iter_mut()))
            {
                let _ = first.f_mul_scalar_(beta1)?.f_add_(&gradient.f_mul_scalar(1.0 - beta1)?)?;
                let _ = second.f_mul_scalar_(beta2)?.f_add_(&gradient.f_square()?.f_mul_scalar(1.0 - beta2)?)?;
                let denominator = second.f_div_scalar(correction2)?.f_sqrt()?.f_add_scalar(1e-8)?;
                let update = first.f_div_scalar(correction1)?.f_div(&denominator)?;
                let _ = parameter.f_mul_scalar_(1.0 - self.learning_rate * self.weight_decay)?;
                let _ = parameter.f_sub_(&update.f_mul_scalar(self.learning_rate)?)?;
            }
            Ok(())
        })
    }
}

/// A batch of users' rated movies as parallel columns: the user's index in the batch, the movie's column (row − 1)
/// and the rating.
struct Pairs {
    users: Vec<i64>,
    columns: Vec<i64>,
    ratings: Vec<f32>,
}

impl Pairs {
    fn of(histories: &[&Vec<(i64, f32)>]) -> Self {
        let mut pairs = Pairs { users: Vec::new(), columns: Vec::new(), ratings: Vec::new() };
        for (user, history) in histories.iter().enumerate() {
            for (row, rating) in history.iter() {
                pairs.users.push(user as i64);
                pairs.columns.push(row - 1);
                pairs.ratings.push(*rating);
            }
        }
        pairs
    }

    /// [users, dim]: each user's preference vector from the input vectors of its pairs where `keep` is 1.
    fn user_vectors(&self, users: usize, inputs: &Tensor, keep: Option<&[f32]>) -> Result<Tensor, tch::TchError> {
        let weights = Tensor::f_from_slice(keep.unwrap_or(&vec![1.0; self.columns.len()]))?;
        let index = Tensor::f_from_slice(&self.users)?;
        let rows = inputs.f_index_select(0, &Tensor::f_from_slice(&self.columns)?)?.f_mul(&weights.f_unsqueeze(1)?)?;
        let sum = Tensor::f_zeros([users as i64, inputs.size()[1]], (Kind::Float, Device::Cpu))?.f_index_add(0, &index, &rows)?;
        let count = Tensor::f_zeros([users as i64], (Kind::Float, Device::Cpu))?.f_index_add(0, &index, &weights)?;
        normalise_user(&sum, &count)
    }
}

/// Recall@10 (hits over min(10, relevant)) of `scores` [users, movies] with each user's `seen` columns excluded.
fn recall_at_10(scores: &Tensor, seen: &[&Vec<(i64, f32)>], relevant: &[Vec<i64>]) -> Result<Vec<f64>, ModelError> {
    let movies = scores.size()[1] as usize;
    let values: Vec<f32> = Vec::try_from(scores.f_flatten(0, -1)?)?;
    let ids: Vec<i32> = (0..movies as i32).collect();
    Ok(values
        .chunks_exact(movies.max(1))
        .zip(seen.iter().zip(relevant))
        .map(|(row, (seen, relevant))| {
            let mut allowed = vec![true; movies];
            seen.iter().for_each(|(m, _)| allowed[(*m - 1) as usize] = false);
            let candidates = (0..movies).filter(|m| allowed[*m]).collect();
            let top = top_k(row, &ids, candidates, 10);
            let hits = top.iter().filter(|m| relevant.contains(&(**m as i64 + 1))).count();
            hits as f64 / relevant.len().clamp(1, 10) as f64
        })
        .collect())
}

impl HybridRecommender {
    /// Fits the preference part on `fit` (per user row: the ratings it learns from) and picks its epoch and rating
    /// blend on `validation` (per user row: held-out ratings; relevant when liked). `movie_content` [movies + 1, c]:
    /// every trained movie's encoded content by movie row. The rating network is not changed.
    pub fn train_preference(
        &self,
        movie_content: &Tensor,
        fit: &Histories,
        validation: &Histories,
        item_item: Option<&Tensor>,
        options: &PreferenceOptions,
    ) -> Result<PreferenceReport, ModelError> {
        let started = std::time::Instant::now();
        let tables = self.preference.as_ref().ok_or_else(|| ModelError::InvalidArgument("the network has no preference part".into()))?;
        if let (Some(neighbours), Some(item_item)) = (&tables.neighbours, item_item) {
            neighbours.set_from(item_item)?;
        }
        let positives = self.config.preference.map(|p| p.positives).unwrap_or_default();
        let rating_max = self.config.rating_max as f32;
        let movies = self.config.cardinalities.movies;
        let rows = Tensor::f_arange_start(1, movies + 1, (Kind::Int64, Device::Cpu))?;
        let content = movie_content.f_index_select(0, &rows)?.f_detach()?;
        let liked = |rating: f32| Positives::Liked.weight(rating, rating_max) > 0.0;
        let checked: Vec<usize> = (0..validation.len()).filter(|u| !fit[*u].is_empty() && validation[*u].iter().any(|(_, r)| liked(*r))).collect();
        let relevant: Vec<Vec<i64>> = checked.iter().map(|u| validation[*u].iter().filter(|(_, r)| liked(*r)).map(|(m, _)| *m).collect()).collect();
        let trained_users: Vec<usize> = (0..fit.len()).filter(|u| !fit[*u].is_empty()).collect();
        let parameters = vec![
            tables.item_in.shallow_clone(),
            tables.item_out.shallow_clone(),
            tables.item_bias.shallow_clone(),
            tables.content_in.weight.shallow_clone(),
            tables.content_in.bias.shallow_clone(),
            tables.content_out.weight.shallow_clone(),
            tables.content_out.bias.shallow_clone(),
            tables.content_bias.weight.shallow_clone(),
            tables.content_bias.bias.shallow_clone(),
        ];
        let mut adam = Adam::new(parameters.iter().map(Tensor::shallow_clone).collect(), options.learning_rate, options.weight_decay);
        let mut random = crate::MaskRandom::new(options.seed, 0x9EF);
        let scores_for = |keep: Option<&Tensor>, pairs: &Pairs, users: usize, input_keep: Option<&[f32]>| -> Result<Tensor, tch::TchError> {
            let vectors = tables.vectors(&rows, &content, keep)?;
            let user = pairs.user_vectors(users, &vectors.inputs, input_keep)?;
            user.f_matmul(&vectors.outputs.f_tr()?)?.f_add(&vectors.bias.f_unsqueeze(0)?)
        };
        let validate = |subset: &[usize]| -> Result<Vec<Tensor>, ModelError> {
            tch::no_grad(|| {
                subset
                    .chunks(256)
                    .map(|chunk| {
                        let seen: Vec<&Vec<(i64, f32)>> = chunk.iter().map(|u| &fit[*u]).collect();
                        Ok(scores_for(None, &Pairs::of(&seen), chunk.len(), None)?)
                    })
                    .collect()
            })
        };
        let recall_of = |subset: &[usize], relevant: &[Vec<i64>]| -> Result<f64, ModelError> {
            let mut all = Vec::new();
            for (chunk, relevant) in subset.chunks(256).zip(relevant.chunks(256)) {
                let seen: Vec<&Vec<(i64, f32)>> = chunk.iter().map(|u| &fit[*u]).collect();
                let scores = tch::no_grad(|| scores_for(None, &Pairs::of(&seen), chunk.len(), None))?;
                all.extend(recall_at_10(&scores, &seen, relevant)?);
            }
            Ok(all.iter().sum::<f64>() / all.len().max(1) as f64)
        };
        let (epoch_checked, epoch_relevant) = evenly_sampled(&checked, &relevant, EPOCH_CHECK_USERS);
        let every = (options.epochs / 40).max(1);
        let (mut best, mut best_epoch, mut best_weights, mut since_best) = (f64::NEG_INFINITY, 0, None::<Vec<Tensor>>, 0);
        let mut history = Vec::new();
        let mut epochs_run = 0;
        let mut spent = PreferenceSeconds::default();
        for epoch in 1..=options.epochs {
            let steps_started = std::time::Instant::now();
            epochs_run = epoch;
            let order: Vec<usize> = random.permutation(trained_users.len()).into_iter().map(|i| trained_users[i]).collect();
            for batch in order.chunks(options.batch_users.max(1)) {
                let histories: Vec<&Vec<(i64, f32)>> = batch.iter().map(|u| &fit[*u]).collect();
                let pairs = Pairs::of(&histories);
                let input_keep: Vec<f32> = Vec::try_from(random.dropout_mask(&[pairs.columns.len() as i64], options.input_dropout)?)?;
                let input_keep: Vec<f32> = input_keep.iter().map(|k| f32::from(u8::from(*k > 0.0))).collect();
                let keep_ids = random.keep_mask(&[movies], 1.0 - options.id_dropout)?.f_to_kind(Kind::Float)?;
                let logits = scores_for(Some(&keep_ids), &pairs, batch.len(), Some(&input_keep))?;
                let weights: Vec<f32> = pairs.ratings.iter().map(|r| positives.weight(*r, rating_max)).collect();
                let weights = Tensor::f_from_slice(&weights)?;
                let (users_index, columns) = (Tensor::f_from_slice(&pairs.users)?, Tensor::f_from_slice(&pairs.columns)?);
                let flat_index = users_index.f_mul_scalar(movies)?.f_add(&columns)?;
                let picked = logits.f_flatten(0, -1)?.f_index_select(0, &flat_index)?;
                let per_user_weight = Tensor::f_zeros([batch.len() as i64], (Kind::Float, Device::Cpu))?.f_index_add(0, &users_index, &weights)?;
                let normaliser = logits.f_logsumexp([1i64], false)?;
                let loss = per_user_weight
                    .f_mul(&normaliser)?
                    .f_sum(Kind::Float)?
                    .f_sub(&weights.f_mul(&picked)?.f_sum(Kind::Float)?)?
                    .f_div_scalar(batch.len() as f64)?;
                let gradients = Tensor::f_run_backward(&[&loss], &parameters, false, false)?;
                adam.step(&gradients)?;
            }
            spent.steps += steps_started.elapsed().as_secs_f64();
            if epoch % every != 0 && epoch != options.epochs {
                continue;
            }
            let check_started = std::time::Instant::now();
            let recall = recall_of(&epoch_checked, &epoch_relevant)?;
            spent.checks += check_started.elapsed().as_secs_f64();
            history.push((epoch, recall));
            if recall > best || checked.is_empty() {
                (best, best_epoch, since_best) = (recall, epoch, 0);
                best_weights = Some(parameters.iter().map(|p| p.detach().copy()).collect());
            } else {
                since_best += 1;
                if since_best >= options.patience {
                    break;
                }
            }
        }
        if let Some(weights) = best_weights {
            tch::no_grad(|| -> Result<(), tch::TchError> {
                for (parameter, saved) in parameters.iter().zip(&weights) {
                    parameter.shallow_clone().f_copy_(saved)?;
                }
                Ok(())
            })?;
        }
        let count = checked.len().min(options.blend_users);
        let checked_users = CheckedUsers { fit, rows: &checked[..count], relevant: &relevant[..count] };
        let blend_started = std::time::Instant::now();
        let BlendChoice { chosen, tried: blend_recall, users: blend_users } = self.choose_blend(&rows, &content, &checked_users, &validate)?;
        spent.blend = blend_started.elapsed().as_secs_f64();
        let BlendTried { neighbour_input, neighbour_weight, rating_weight: blend, .. } = chosen;
        let _ = tch::no_grad(|| tables.blend.shallow_clone().f_fill_(f64::from(blend)))?;
        let fill_started = std::time::Instant::now();
        self.fill_user_vectors(&rows, &content, fit)?;
        spent.user_vectors = fill_started.elapsed().as_secs_f64();
        let (similar_movies, similar_users) = self.choose_similarities(&rows, &content, &checked_users)?;
        if let Some(neighbours) = &tables.neighbours {
            let _ = tch::no_grad(|| neighbours.weight.shallow_clone().f_fill_(f64::from(neighbour_weight)))?;
        }
        Ok(PreferenceReport {
            epochs_run,
            best_epoch,
            validation_recall: history,
            blend,
            neighbour_weight,
            neighbour_input,
            blend_recall,
            validation_users: checked.len(),
            epoch_check_users: epoch_checked.len(),
            blend_users,
            similar_movies,
            similar_users,
            seconds: started.elapsed().as_secs_f64(),
            spent,
        })
    }

    /// Fills the stored user vectors (when the network keeps them) from each user row's `fit` history, as the
    /// preference part builds a user from all their ratings; `rows`/`content`: the trained movies.
    fn fill_user_vectors(&self, rows: &Tensor, content: &Tensor, fit: &Histories) -> Result<(), ModelError> {
        let Some(tables) = &self.preference else { return Ok(()) };
        let Some(users) = &tables.users else { return Ok(()) };
        let inputs = tch::no_grad(|| tables.vectors(rows, content, None))?.inputs;
        let count = (users.size()[0] as usize).min(fit.len());
        for start in (0..count).step_by(USERS_PER_FILL) {
            let end = (start + USERS_PER_FILL).min(count);
            let histories: Vec<&Vec<(i64, f32)>> = fit[start..end].iter().collect();
            tch::no_grad(|| -> Result<(), tch::TchError> {
                let vectors = Pairs::of(&histories).user_vectors(end - start, &inputs, None)?;
                users.f_narrow(0, start as i64, (end - start) as i64)?.f_copy_(&vectors)?;
                Ok(())
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::evenly_sampled;

    #[test]
    fn epoch_checks_sample_users_evenly_above_the_limit() {
        let users: Vec<usize> = (0..10).collect();
        let relevant: Vec<Vec<i64>> = users.iter().map(|u| vec![*u as i64]).collect();
        assert_eq!(evenly_sampled(&users, &relevant, 3).0, vec![0, 4, 8]);
        assert_eq!(evenly_sampled(&users, &relevant, 3).1, vec![vec![0], vec![4], vec![8]]);
        assert_eq!(evenly_sampled(&users, &relevant, 10).0, users, "all of them up to the limit");
    }
}
