//! The item autoencoder (I-AutoRec) beside the hybrid network: a movie's code is a sigmoid over a linear encoding
//! of its column of training ratings, a user's rating of it a linear decoding of that code. It is trained after the
//! hybrid on the same ratings and kept as tables; warm pairs blend both predictions with coefficients fitted on
//! validation ratings. Unknown users and movies without training ratings get the hybrid alone.
use super::optimiser::LazyAdam;
use super::Parameter;
use crate::network::AutoencoderTables;
use crate::{HybridRecommender, ModelError};
use tch::{nn, Device, Kind, TchError, Tensor};

/// Hyper-parameters of the autoencoder's training.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AutoencoderOptions {
    /// Width of the code while training (the tables keep the product's best approximation of the network's rank).
    pub hidden: i64,
    /// Upper bound on the epochs.
    pub epochs: usize,
    /// Adam's learning rate.
    pub learning_rate: f64,
    /// λ of λ/2·‖weights‖² beside the summed squared error of each batch (AutoRec's regularisation).
    pub l2: f64,
    /// Movies (columns of ratings) per batch.
    pub batch_movies: i64,
    /// Stop after this many epochs without a better validation RMSE.
    pub patience: usize,
}

/// Ratings as embedding rows (int64 [N]) and values (float [N]).
pub struct RatingRows<'a> {
    /// User rows.
    pub users: &'a Tensor,
    /// Movie rows.
    pub movies: &'a Tensor,
    /// The ratings.
    pub values: &'a Tensor,
}

/// What a training run did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AutoencoderReport {
    /// The epoch whose tables were kept.
    pub best_epoch: usize,
    /// Validation RMSE after each epoch.
    pub validation_rmse: Vec<f64>,
    /// (a, b, c) of the fitted blend.
    pub blend: [f32; 3],
    /// Validation RMSE of the hybrid alone and blended, over the pairs the blend applies to.
    pub hybrid_rmse: f64,
    /// Validation RMSE of the blend over the same pairs.
    pub blended_rmse: f64,
}

/// The best epoch's tables.
struct Snapshot {
    user_weight: Tensor,
    user_bias: Tensor,
    movie_code: Tensor,
}

impl AutoencoderTables {
    /// Raw autoencoder predictions for pairs of rows.
    pub(crate) fn predict(&self, users: &Tensor, movies: &Tensor) -> Result<Tensor, TchError> {
        pair_scores(&self.user_weight, &self.user_bias, &self.movie_code, users, movies)
    }

    /// 1 for pairs the blend applies to, else 0.
    pub(crate) fn known(&self, users: &Tensor, movies: &Tensor) -> Result<Tensor, TchError> {
        self.user_known.f_index_select(0, users)?.f_mul(&self.movie_known.f_index_select(0, movies)?)
    }

    /// Trains the autoencoder on `fit` (epoch picked on `validation`) and fills the tables; the blend stays as it is.
    fn train(&self, fit: &RatingRows<'_>, validation: &RatingRows<'_>, options: &AutoencoderOptions) -> Result<(usize, Vec<f64>), ModelError> {
        let (user_rows, movie_rows, hidden) = (self.user_weight.size()[0], self.movie_code.size()[0], options.hidden);
        let options_f = (Kind::Float, Device::Cpu);
        let columns = MovieColumns::new(fit, movie_rows)?;
        let store = nn::VarStore::new(Device::Cpu);
        let root = store.root();
        let uniform = |inputs: i64| {
            let bound = 1.0 / (inputs as f64).sqrt();
            nn::Init::Uniform { lo: -bound, up: bound }
        };
        let encoder = (root.var("encoder_weight", &[user_rows, hidden], uniform(user_rows)), root.var("encoder_bias", &[hidden], uniform(user_rows)));
        let decoder = (root.var("decoder_weight", &[user_rows, hidden], uniform(hidden)), root.var("decoder_bias", &[user_rows], uniform(hidden)));
        let dense = |name, tensor: &Tensor| Parameter { name, tensor: tensor.shallow_clone(), sparse: false, regularised: false };
        let parameters = || {
            vec![
                dense("encoder_weight", &encoder.0),
                dense("encoder_bias", &encoder.1),
                dense("decoder_weight", &decoder.0),
                dense("decoder_bias", &decoder.1),
            ]
        };
        let mut optimiser = LazyAdam::new(parameters(), options.learning_rate, 0.0, 0.0)?;
        let parameters = parameters();
        let encode = |batch: &ColumnBatch| {
            let (sums, _, _, _) = Tensor::f_embedding_bag(&encoder.0, &batch.users, &batch.offsets, false, 0, false, Some(&batch.values), false)?;
            sums.f_add(&encoder.1)?.f_sigmoid()
        };
        let (mut best, mut best_epoch, mut history): (Option<Snapshot>, usize, Vec<f64>) = (None, 0, Vec::new());
        let all_movies = columns.batch(&Tensor::f_arange(movie_rows, (Kind::Int64, Device::Cpu))?)?;
        for epoch in 1..=options.epochs {
            let order = Tensor::f_randperm(movie_rows, (Kind::Int64, Device::Cpu))?;
            for index in order.f_split(options.batch_movies, 0)? {
                let batch = columns.batch(&index)?;
                let reconstructed = encode(&batch)?.f_linear(&decoder.0, Some(&decoder.1))?.f_index(&[Some(&batch.bags), Some(&batch.users)])?;
                let penalty =
                    encoder.0.f_square()?.f_sum(Kind::Float)?.f_add(&decoder.0.f_square()?.f_sum(Kind::Float)?)?.f_mul_scalar(options.l2 / 2.0)?;
                let loss = reconstructed.f_sub(&batch.values)?.f_square()?.f_sum(Kind::Float)?.f_add(&penalty)?;
                optimiser.step(&[HybridRecommender::gradients(&loss, &parameters)?], index.size()[0] as usize)?;
            }
            let snapshot = tch::no_grad(|| -> Result<Snapshot, TchError> {
                Ok(Snapshot { user_weight: decoder.0.f_detach_copy()?, user_bias: decoder.1.f_detach_copy()?, movie_code: encode(&all_movies)? })
            })?;
            let rmse = tch::no_grad(|| {
                pair_scores(&snapshot.user_weight, &snapshot.user_bias, &snapshot.movie_code, validation.users, validation.movies)?
                    .f_sub(validation.values)?
                    .f_square()?
                    .f_mean(Kind::Float)?
                    .f_sqrt()
            })?
            .f_double_value(&[])?;
            history.push(rmse);
            if history.iter().all(|previous| rmse <= *previous) {
                (best, best_epoch) = (Some(snapshot), epoch);
            } else if epoch - best_epoch >= options.patience {
                break;
            }
        }
        let Some(best) = best else { return Err(ModelError::Training("the autoencoder ran no epoch".into())) };
        let count = |rows: &Tensor, size: i64| {
            Tensor::f_zeros([size], options_f)?.f_index_add(0, rows, &Tensor::f_ones([rows.size()[0]], options_f)?)?.f_gt(0.0)?.f_to_kind(Kind::Float)
        };
        tch::no_grad(|| -> Result<(), TchError> {
            let (user_weight, movie_code) = truncate(&best.user_weight, &best.movie_code, self.rank())?;
            self.user_weight.shallow_clone().f_copy_(&user_weight)?;
            self.user_bias.shallow_clone().f_copy_(&best.user_bias)?;
            self.movie_code.shallow_clone().f_copy_(&movie_code)?;
            self.user_known.shallow_clone().f_copy_(&count(fit.users, user_rows)?)?;
            self.movie_known.shallow_clone().f_copy_(&count(fit.movies, movie_rows)?)?;
            Ok(())
        })?;
        Ok((best_epoch, history))
    }

    /// Least-squares blend coefficients of the hybrid's and the autoencoder's validation predictions.
    fn fit_blend(&self, hybrid: &Tensor, validation: &RatingRows<'_>) -> Result<(f64, f64), TchError> {
        let known = self.known(validation.users, validation.movies)?.f_gt(0.0)?;
        let pick = |t: &Tensor| -> Result<Vec<f64>, TchError> { Vec::try_from(t.f_masked_select(&known)?.f_to_kind(Kind::Double)?) };
        let (h, e, y) = (pick(hybrid)?, pick(&self.predict(validation.users, validation.movies)?)?, pick(validation.values)?);
        let coefficients = least_squares(&h, &e, &y).unwrap_or([1.0, 0.0, 0.0]);
        let rmse = |a: f64, b: f64, c: f64| {
            (h.iter().zip(&e).zip(&y).map(|((h, e), y)| (a * h + b * e + c - y).powi(2)).sum::<f64>() / y.len().max(1) as f64).sqrt()
        };
        let [a, b, c] = coefficients;
        tch::no_grad(|| self.blend.shallow_clone().f_copy_(&Tensor::f_from_slice(&[a as f32, b as f32, c as f32])?))?;
        Ok((rmse(1.0, 0.0, 0.0), rmse(a, b, c)))
    }
}

/// W_u·code_m + c_u for pairs of rows (in chunks: each pair gathers two rows of the tables' width).
pub(crate) fn pair_scores(
    user_weight: &Tensor,
    user_bias: &Tensor,
    movie_code: &Tensor,
    users: &Tensor,
    movies: &Tensor,
) -> Result<Tensor, TchError> {
    let chunk = 8192;
    let mut parts = Vec::new();
    for (users, movies) in users.f_split(chunk, 0)?.iter().zip(movies.f_split(chunk, 0)?.iter()) {
        let products = user_weight.f_index_select(0, users)?.f_mul(&movie_code.f_index_select(0, movies)?)?;
        parts.push(products.f_sum_dim_intlist([1i64].as_slice(), false, Kind::Float)?.f_add(&user_bias.f_index_select(0, users)?)?);
    }
    match parts.len() {
        0 => Tensor::f_zeros([0], (Kind::Float, Device::Cpu)),
        _ => Tensor::f_cat(&parts, 0),
    }
}

/// The fitting ratings grouped by movie (each movie's column of ratings), to gather batches of columns with
/// tensor operations.
struct MovieColumns {
    users: Tensor,
    values: Tensor,
    counts: Tensor,
    starts: Tensor,
}

/// The ratings of a batch of movies: users and values in movie order, where each movie's run starts (`offsets`),
/// and for each rating its movie's position in the batch (`bags`).
struct ColumnBatch {
    users: Tensor,
    values: Tensor,
    offsets: Tensor,
    bags: Tensor,
}

impl MovieColumns {
    fn new(fit: &RatingRows<'_>, movie_rows: i64) -> Result<Self, TchError> {
        let order = fit.movies.f_argsort(0, false)?;
        let counts = fit.movies.f_bincount::<Tensor>(None, movie_rows)?;
        Ok(Self {
            users: fit.users.f_index_select(0, &order)?,
            values: fit.values.f_index_select(0, &order)?,
            starts: counts.f_cumsum(0, Kind::Int64)?.f_sub(&counts)?,
            counts,
        })
    }

    fn batch(&self, movies: &Tensor) -> Result<ColumnBatch, TchError> {
        let lengths = self.counts.f_index_select(0, movies)?;
        let offsets = lengths.f_cumsum(0, Kind::Int64)?.f_sub(&lengths)?;
        let total = lengths.f_sum(Kind::Int64)?.f_int64_value(&[])?;
        let within = Tensor::f_arange(total, (Kind::Int64, Device::Cpu))?.f_sub(&offsets.f_repeat_interleave_self_tensor(&lengths, 0, total)?)?;
        let positions = self.starts.f_index_select(0, movies)?.f_repeat_interleave_self_tensor(&lengths, 0, total)?.f_add(&within)?;
        let bags = Tensor::f_arange(movies.size()[0], (Kind::Int64, Device::Cpu))?.f_repeat_interleave_self_tensor(&lengths, 0, total)?;
        Ok(ColumnBatch { users: self.users.f_index_select(0, &positions)?, values: self.values.f_index_select(0, &positions)?, offsets, bags })
    }
}

/// Factors (A [users, rank], B [movies, rank]) with A·Bᵀ the best rank-`rank` approximation of W·Cᵀ (W [users, h],
/// C [movies, h]), from the SVD of the small product of the two QR factors' triangular parts; zero columns pad a lower rank.
fn truncate(w: &Tensor, c: &Tensor, rank: i64) -> Result<(Tensor, Tensor), TchError> {
    let (q1, r1) = Tensor::f_linalg_qr(w, "reduced")?;
    let (q2, r2) = Tensor::f_linalg_qr(c, "reduced")?;
    let (u, s, v) = r1.f_matmul(&r2.f_tr()?)?.f_svd(true, true)?;
    let kept = rank.min(s.size()[0]);
    let scale = s.f_narrow(0, 0, kept)?.f_sqrt()?;
    let pad = |t: Tensor| -> Result<Tensor, TchError> {
        let missing = rank - kept;
        if missing == 0 {
            return Ok(t);
        }
        let zeros = Tensor::f_zeros([t.size()[0], missing], (Kind::Float, Device::Cpu))?;
        Tensor::f_cat(&[t, zeros], 1)
    };
    let a = q1.f_matmul(&u.f_narrow(1, 0, kept)?)?.f_mul(&scale)?;
    let b = q2.f_matmul(&v.f_narrow(1, 0, kept)?)?.f_mul(&scale)?;
    Ok((pad(a)?, pad(b)?))
}

/// (a, b, c) minimising Σ (a·h + b·e + c − y)², or `None` when the system is singular.
fn least_squares(h: &[f64], e: &[f64], y: &[f64]) -> Option<[f64; 3]> {
    let mut m = [[0.0f64; 4]; 3];
    for ((h, e), y) in h.iter().zip(e).zip(y) {
        let x = [*h, *e, 1.0];
        for i in 0..3 {
            for j in 0..3 {
                m[i][j] += x[i] * x[j];
            }
            m[i][3] += x[i] * y;
        }
    }
    for column in 0..3 {
        let pivot = (column..3).max_by(|a, b| m[*a][column].abs().total_cmp(&m[*b][column].abs()))?;
        if m[pivot][column].abs() < 1e-9 {
            return None;
        }
        m.swap(column, pivot);
        let pivot_row = m[column];
        for (_, values) in m.iter_mut().enumerate().filter(|(row, _)| *row != column) {
            let factor = values[column] / pivot_row[column];
            for (value, pivot_value) in values.iter_mut().zip(pivot_row).skip(column) {
                *value -= factor * pivot_value;
            }
        }
    }
    Some([m[0][3] / m[0][0], m[1][3] / m[1][1], m[2][3] / m[2][2]])
}

impl HybridRecommender {
    /// Trains the network's autoencoder on `fit`, then fits the blend on `validation` given the hybrid's raw
    /// predictions there (`hybrid`, from this network before the blend). An error when the network has none.
    pub fn train_autoencoder(
        &self,
        fit: &RatingRows<'_>,
        validation: &RatingRows<'_>,
        hybrid: &Tensor,
        options: &AutoencoderOptions,
    ) -> Result<AutoencoderReport, ModelError> {
        let tables = self.autoencoder.as_ref().ok_or_else(|| ModelError::Training("the network has no autoencoder".into()))?;
        let (best_epoch, validation_rmse) = tables.train(fit, validation, options)?;
        let (hybrid_rmse, blended_rmse) = tables.fit_blend(hybrid, validation)?;
        Ok(AutoencoderReport { best_epoch, validation_rmse, blend: tables.coefficients()?, hybrid_rmse, blended_rmse })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::network::tests::{content, small_config};
    use crate::ModelConfig;

    /// Random tables, a non-trivial blend, and some users and movies marked unknown to the blend.
    pub(crate) fn fill_randomly(tables: &AutoencoderTables) {
        tch::no_grad(|| {
            for table in [&tables.user_weight, &tables.movie_code, &tables.user_bias] {
                table.shallow_clone().copy_(&(Tensor::randn_like(table) + 0.5));
            }
            for known in [&tables.user_known, &tables.movie_known] {
                known.shallow_clone().copy_(&Tensor::rand_like(known).gt(0.3).to_kind(Kind::Float));
                let _ = known.get(0).fill_(0.0);
            }
            tables.blend.shallow_clone().copy_(&Tensor::from_slice(&[0.6f32, 0.5, 0.2]));
        });
    }

    #[test]
    fn least_squares_recovers_an_exact_blend_and_refuses_a_singular_one() {
        let h = [3.0, 4.0, 2.5, 5.0, 1.0];
        let e = [3.5, 3.0, 2.0, 4.0, 2.0];
        let y: Vec<f64> = h.iter().zip(&e).map(|(h, e)| 0.4 * h + 0.7 * e - 0.3).collect();
        let [a, b, c] = least_squares(&h, &e, &y).unwrap();
        assert!((a - 0.4).abs() < 1e-9 && (b - 0.7).abs() < 1e-9 && (c + 0.3).abs() < 1e-9, "{a} {b} {c}");
        assert!(least_squares(&h, &h, &y).is_none(), "two identical predictors have no unique blend");
    }

    #[test]
    fn truncation_keeps_the_product_at_full_rank_and_its_best_approximation_below() {
        tch::manual_seed(9);
        let (w, c) = (Tensor::randn([20, 6], (Kind::Float, Device::Cpu)), Tensor::randn([15, 6], (Kind::Float, Device::Cpu)));
        let product = w.matmul(&c.tr());
        let (a, b) = truncate(&w, &c, 8).unwrap();
        assert_eq!((a.size(), b.size()), (vec![20, 8], vec![15, 8]), "a rank above the product's is padded");
        assert!((a.matmul(&b.tr()) - &product).abs().max().double_value(&[]) < 1e-4);
        let (a, b) = truncate(&w, &c, 2).unwrap();
        let error = (a.matmul(&b.tr()) - &product).square().sum(Kind::Float).double_value(&[]);
        let (_, singular, _) = product.svd(true, false);
        let optimal = singular.narrow(0, 2, 4).square().sum(Kind::Float).double_value(&[]);
        assert!((error - optimal).abs() < 1e-3 * optimal.max(1.0), "rank-2 error {error}, Eckart-Young {optimal}");
    }

    #[test]
    fn the_blend_changes_known_pairs_only() {
        tch::manual_seed(7);
        let store = nn::VarStore::new(Device::Cpu);
        let config = ModelConfig { autoencoder_rank: Some(3), ..small_config() };
        let network = HybridRecommender::new(&store.root(), &config);
        let tables = network.autoencoder.as_ref().unwrap();
        let (users, movies) = (Tensor::from_slice(&[1i64, 2, 3, 4, 5, 0]), Tensor::from_slice(&[1i64, 2, 3, 4, 0, 1]));
        let encoded = network.encode_content(&content(6, &config)).unwrap();
        let untouched = network.raw_scores_for_rows(&users, &movies, &encoded).unwrap();
        let hybrid_alone =
            network.training_forward(&users, &movies, &encoded, &crate::Noise::none(6, &config), crate::scoring::Precision::Float32).unwrap();
        let largest_difference = (&untouched - hybrid_alone).abs().max().double_value(&[]);
        assert!(largest_difference < 1e-5, "an unfitted blend is the identity: {largest_difference}");
        fill_randomly(tables);
        let blended: Vec<f32> = Vec::try_from(network.raw_scores_for_rows(&users, &movies, &encoded).unwrap()).unwrap();
        let hybrid: Vec<f32> = Vec::try_from(&untouched).unwrap();
        let known: Vec<f32> = Vec::try_from(tables.known(&users, &movies).unwrap()).unwrap();
        let autoencoder: Vec<f32> = Vec::try_from(tables.predict(&users, &movies).unwrap()).unwrap();
        for pair in 0..6 {
            let expected = if known[pair] > 0.0 { 0.6 * hybrid[pair] + 0.5 * autoencoder[pair] + 0.2 } else { hybrid[pair] };
            assert!((blended[pair] - expected).abs() < 1e-5, "pair {pair}: {} vs {expected}", blended[pair]);
        }
        assert!(known[4] == 0.0 && known[5] == 0.0, "the unknown user and the unseen movie row are never blended");
    }

    /// Low-rank ratings: the autoencoder learns them from half the entries and the blend leans on it when the
    /// hybrid's predictions are uninformative.
    #[test]
    fn training_learns_held_out_ratings_and_fits_the_blend() {
        tch::manual_seed(8);
        let (users, movies) = (30i64, 24i64);
        let config = ModelConfig {
            autoencoder_rank: Some(6),
            cardinalities: crate::Cardinalities { users, movies, ..small_config().cardinalities },
            ..small_config()
        };
        let store = nn::VarStore::new(Device::Cpu);
        let network = HybridRecommender::new(&store.root(), &config);
        let (user_factors, movie_factors) =
            (Tensor::randn([users + 1, 2], (Kind::Float, Device::Cpu)), Tensor::randn([movies + 1, 2], (Kind::Float, Device::Cpu)));
        let mut pairs: Vec<(i64, i64)> = (1..users).flat_map(|u| (1..=movies).map(move |m| (u, m))).collect();
        let shuffled: Vec<i64> = Vec::try_from(Tensor::randperm(pairs.len() as i64, (Kind::Int64, Device::Cpu))).unwrap();
        pairs = shuffled.iter().map(|i| pairs[*i as usize]).collect();
        let rows = |pairs: &[(i64, i64)]| {
            let (u, m): (Vec<i64>, Vec<i64>) = pairs.iter().copied().unzip();
            let (u, m) = (Tensor::from_slice(&u), Tensor::from_slice(&m));
            let values =
                (user_factors.index_select(0, &u) * movie_factors.index_select(0, &m)).sum_dim_intlist([1i64].as_slice(), false, Kind::Float) * 0.7
                    + 3.0;
            (u, m, values.clamp(0.5, 5.0))
        };
        let (fit, validation) = (rows(&pairs[..pairs.len() / 2]), rows(&pairs[pairs.len() / 2..]));
        let options = AutoencoderOptions { hidden: 12, epochs: 300, learning_rate: 0.01, l2: 0.1, batch_movies: 8, patience: 300 };
        let uninformative = Tensor::randn_like(&validation.2) * 0.3 + 3.0;
        let report = network
            .train_autoencoder(
                &RatingRows { users: &fit.0, movies: &fit.1, values: &fit.2 },
                &RatingRows { users: &validation.0, movies: &validation.1, values: &validation.2 },
                &uninformative,
                &options,
            )
            .unwrap();
        let best = report.validation_rmse[report.best_epoch - 1];
        assert!(best < 0.7 * report.hybrid_rmse, "autoencoder {best} vs uninformative hybrid {}", report.hybrid_rmse);
        assert!(report.blended_rmse <= best + 1e-6 && report.blend[1] > 0.5, "{report:?}");
        let tables = network.autoencoder.as_ref().unwrap();
        let known: Vec<f32> = Vec::try_from(&tables.user_known).unwrap();
        assert_eq!((known[0], known[users as usize], known[1]), (0.0, 0.0, 1.0), "only users with training ratings are known");
    }
}
