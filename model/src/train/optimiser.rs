//! Adam that updates only the embedding rows a batch touched ("lazy" Adam, as PyTorch's SparseAdam and
//! TensorFlow's LazyAdam); dense tensors get the usual Adam step. The update runs as plain Rust loops over the
//! tensors' memory: at batch 256 libtorch's per-operation cost (about 100 small operations per step), not the
//! arithmetic, dominated the step. Gradients of several workers are summed here, in worker order.
use super::Parameter;
use crate::ModelError;
use tch::{Kind, Tensor};

/// A parameter's moments, and for a sparse one the rows the current step touched with their summed gradients.
struct Slot {
    value: Tensor,
    sparse: bool,
    /// Per-occurrence L2 on this table's rows (see `LazyAdam::step`).
    regularised: bool,
    /// Values per row (the last dimension; 1 for a vector).
    width: usize,
    first_moment: Vec<f32>,
    second_moment: Vec<f32>,
    /// Summed gradient of the current step (dense: every value; sparse: the touched rows, zero elsewhere).
    gradient: Vec<f32>,
    /// Sparse: rows with a gradient this step, and a flag per row. Dense: whether any gradient arrived.
    touched: Vec<usize>,
    is_touched: Vec<bool>,
    has_gradient: bool,
}

/// Adam with lazy (touched rows only) updates of embedding tables, an optional per-row L2 penalty on rating rows,
/// and decoupled weight decay on dense layers; steps apply the summed gradients of several workers.
pub struct LazyAdam {
    slots: Vec<Slot>,
    learning_rate: f32,
    beta1: f32,
    beta2: f32,
    epsilon: f32,
    /// L2 weight decay added to dense gradients (as torch's Adam `weight_decay`).
    weight_decay: f32,
    /// L2 penalty λ on the rows of regularised tables, per rating that looks them up: the gradient of
    /// λ·Σ‖row‖² / batch rows, as matrix factorisation regularises.
    row_l2: f32,
    steps: i32,
}

/// The memory of a contiguous f32 CPU tensor.
fn values_of(tensor: &Tensor) -> Result<&[f32], ModelError> {
    if tensor.kind() != Kind::Float || !tensor.is_contiguous() || tensor.device() != tch::Device::Cpu {
        return Err(ModelError::Training(format!("expected a contiguous float32 CPU tensor, got {:?} {:?}", tensor.kind(), tensor.size())));
    }
    if tensor.numel() == 0 {
        // An empty tensor (e.g. the sparse gradient of a table no row of the batch looked up) may have no memory at all.
        return Ok(&[]);
    }
    // SAFETY: checked above: contiguous f32 CPU memory of `numel` (> 0) values, alive as long as `tensor`.
    Ok(unsafe { std::slice::from_raw_parts(tensor.data_ptr() as *const f32, tensor.numel()) })
}

impl LazyAdam {
    /// Takes the parameters in order; each must be a contiguous float32 CPU tensor.
    pub fn new(parameters: Vec<Parameter>, learning_rate: f64, weight_decay: f64, row_l2: f64) -> Result<Self, ModelError> {
        let slots = parameters
            .into_iter()
            .map(|p| {
                let count = values_of(&p.tensor)?.len();
                let width = p.tensor.size().last().copied().unwrap_or(1).max(1) as usize;
                let rows = if p.sparse { count / width } else { 0 };
                Ok(Slot {
                    value: p.tensor,
                    sparse: p.sparse,
                    regularised: p.regularised,
                    width,
                    first_moment: vec![0.0; count],
                    second_moment: vec![0.0; count],
                    gradient: vec![0.0; count],
                    touched: Vec::new(),
                    is_touched: vec![false; rows],
                    has_gradient: false,
                })
            })
            .collect::<Result<_, ModelError>>()?;
        Ok(Self {
            slots,
            learning_rate: learning_rate as f32,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
            weight_decay: weight_decay as f32,
            row_l2: row_l2 as f32,
            steps: 0,
        })
    }

    /// One update from the gradients of one or more workers, each list in the order of the parameters given to
    /// `new` (sparse ones as sparse COO tensors, possibly uncoalesced; an undefined gradient contributes nothing).
    /// `batch_rows`: the ratings in the batch (the row penalty is per rating, averaged like the loss).
    pub fn step(&mut self, per_worker: &[Vec<Tensor>], batch_rows: usize) -> Result<(), ModelError> {
        if let Some(bad) = per_worker.iter().find(|g| g.len() != self.slots.len()) {
            return Err(ModelError::Training(format!("{} gradients for {} parameters", bad.len(), self.slots.len())));
        }
        self.steps += 1;
        let constants = Constants {
            beta1: self.beta1,
            beta2: self.beta2,
            epsilon: self.epsilon,
            bias2_sqrt: (1.0 - f64::from(self.beta2).powi(self.steps)).sqrt() as f32,
            step_size: self.learning_rate / (1.0 - f64::from(self.beta1).powi(self.steps)) as f32,
            weight_decay: self.weight_decay,
            row_decay: 2.0 * self.row_l2 / batch_rows.max(1) as f32,
        };
        // Two groups of equal arithmetic: a helper thread takes dense tensors only (plain Rust, no libtorch call
        // that could start a thread pool); this thread takes the sparse tables and the remaining dense tensors.
        let (mut helper, mut here): (Vec<Job>, Vec<Job>) = (Vec::new(), Vec::new());
        let (mut helper_load, mut here_load) = (0usize, SPARSE_LOAD_ESTIMATE);
        let mut jobs: Vec<Job> = self
            .slots
            .iter_mut()
            .enumerate()
            .map(|(position, slot)| (slot, per_worker.iter().map(|g| g[position].shallow_clone()).collect()))
            .collect();
        jobs.sort_by_key(|(slot, _)| std::cmp::Reverse(if slot.sparse { 0 } else { slot.gradient.len() }));
        for job in jobs {
            let load = job.0.gradient.len();
            if !job.0.sparse && helper_load < here_load {
                helper_load += load;
                helper.push(job);
            } else {
                here_load += if job.0.sparse { 0 } else { load };
                here.push(job);
            }
        }
        std::thread::scope(|scope| {
            let helper = scope.spawn(move || run_jobs(helper, constants));
            let result = run_jobs(here, constants);
            let helper_result = helper.join().unwrap_or_else(|_| Err(ModelError::Training("an optimiser thread panicked".into())));
            result.and(helper_result)
        })
    }
}

/// A slot and its gradients from each worker.
type Job<'a> = (&'a mut Slot, Vec<Tensor>);

/// Arithmetic of the sparse tables per step, in dense values, for balancing the two threads.
const SPARSE_LOAD_ESTIMATE: usize = 40_000;

fn run_jobs(jobs: Vec<Job<'_>>, constants: Constants) -> Result<(), ModelError> {
    for (slot, gradients) in jobs {
        for gradient in &gradients {
            slot.accumulate(gradient, constants.row_decay)?;
        }
        slot.update(constants)?;
    }
    Ok(())
}

#[derive(Clone, Copy)]
struct Constants {
    beta1: f32,
    beta2: f32,
    epsilon: f32,
    bias2_sqrt: f32,
    step_size: f32,
    weight_decay: f32,
    row_decay: f32,
}

impl Slot {
    /// Adds one worker's gradient; a regularised table also gets `row_decay` · row for each occurrence of a row.
    fn accumulate(&mut self, gradient: &Tensor, row_decay: f32) -> Result<(), ModelError> {
        if !gradient.defined() {
            return Ok(());
        }
        if !self.sparse {
            let values = gradient.f_to_kind(Kind::Float)?.f_contiguous()?;
            let values = values_of(&values)?;
            if values.len() != self.gradient.len() {
                return Err(ModelError::Training(format!("a gradient of {} values for a parameter of {}", values.len(), self.gradient.len())));
            }
            if self.has_gradient {
                self.gradient.iter_mut().zip(values).for_each(|(sum, g)| *sum += g);
            } else {
                self.gradient.copy_from_slice(values);
                self.has_gradient = true;
            }
            return Ok(());
        }
        if !gradient.is_sparse() {
            return Err(ModelError::Training("an embedding table's gradient is not sparse".into()));
        }
        let rows: Vec<i64> = Vec::try_from(gradient.f_internal_indices()?.f_select(0, 0)?)?;
        let values = gradient.f_internal_values()?.f_to_kind(Kind::Float)?.f_contiguous()?;
        let values = values_of(&values)?;
        if values.len() != rows.len() * self.width {
            return Err(ModelError::Training(format!("{} gradient values for {} rows of width {}", values.len(), rows.len(), self.width)));
        }
        let row_decay = if self.regularised { row_decay } else { 0.0 };
        // SAFETY: `value` is a contiguous f32 CPU tensor of `gradient.len()` values (checked in `new`); nothing writes
        // it while the optimiser runs.
        let table = unsafe { std::slice::from_raw_parts(self.value.data_ptr() as *const f32, self.gradient.len()) };
        for (row, row_values) in rows.iter().zip(values.chunks_exact(self.width)) {
            let row = *row as usize;
            let Some(seen) = self.is_touched.get_mut(row) else {
                return Err(ModelError::Training(format!("gradient row {row} outside the table's {} rows", self.is_touched.len())));
            };
            if !*seen {
                *seen = true;
                self.touched.push(row);
            }
            let range = row * self.width..(row + 1) * self.width;
            self.gradient[range.clone()].iter_mut().zip(row_values).zip(&table[range]).for_each(|((sum, g), value)| *sum += g + row_decay * value);
        }
        Ok(())
    }

    fn update(&mut self, c: Constants) -> Result<(), ModelError> {
        let count = self.gradient.len();
        // SAFETY: `value` is a contiguous f32 CPU tensor of `count` values (checked in `new`); no other thread uses
        // the parameters during an optimiser step and nothing else borrows this memory here.
        let values = unsafe { std::slice::from_raw_parts_mut(self.value.data_ptr() as *mut f32, count) };
        let ranges: Vec<std::ops::Range<usize>> = if self.sparse {
            self.touched.iter().map(|row| row * self.width..(row + 1) * self.width).collect()
        } else if self.has_gradient {
            std::iter::once(0..count).collect()
        } else {
            Vec::new()
        };
        self.has_gradient = false;
        let decay = if self.sparse { 0.0 } else { c.weight_decay };
        for range in ranges {
            let lanes = Lanes {
                values: &mut values[range.clone()],
                first_moment: &mut self.first_moment[range.clone()],
                second_moment: &mut self.second_moment[range.clone()],
                gradient: &self.gradient[range.clone()],
            };
            adam_update(lanes, c, decay);
            if self.sparse {
                self.gradient[range].fill(0.0);
            }
        }
        for row in self.touched.drain(..) {
            if let Some(seen) = self.is_touched.get_mut(row) {
                *seen = false;
            }
        }
        Ok(())
    }
}

/// The values of one contiguous range of a parameter and its state.
struct Lanes<'a> {
    values: &'a mut [f32],
    first_moment: &'a mut [f32],
    second_moment: &'a mut [f32],
    gradient: &'a [f32],
}

/// The Adam update of `lanes`, in AVX2 where the CPU has it (the same arithmetic, no fused multiply-add, so the
/// same results; the default x86-64 target vectorises 4 lanes wide).
fn adam_update(lanes: Lanes<'_>, c: Constants, decay: f32) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2 (checked just above).
        return unsafe { adam_update_avx2(lanes, c, decay) };
    }
    adam_update_portable(lanes, c, decay)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn adam_update_avx2(lanes: Lanes<'_>, c: Constants, decay: f32) {
    adam_update_portable(lanes, c, decay)
}

#[inline(always)]
fn adam_update_portable(lanes: Lanes<'_>, c: Constants, decay: f32) {
    let state = lanes.values.iter_mut().zip(lanes.first_moment.iter_mut()).zip(lanes.second_moment.iter_mut()).zip(lanes.gradient);
    for (((value, m), v), gradient) in state {
        let g = *gradient + decay * *value;
        *m = c.beta1 * *m + (1.0 - c.beta1) * g;
        *v = c.beta2 * *v + (1.0 - c.beta2) * g * g;
        *value -= c.step_size * *m / (v.sqrt() / c.bias2_sqrt + c.epsilon);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{nn, nn::OptimizerConfig, Device, Kind};

    #[test]
    fn gradients_that_do_not_fit_the_parameters_are_training_errors() {
        let weight = Tensor::zeros([2, 3], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let parameters = vec![Parameter { name: "w", tensor: weight.shallow_clone(), sparse: false, regularised: false }];
        let mut adam = LazyAdam::new(parameters, 0.1, 0.0, 0.0).unwrap();
        let error = adam.step(&[vec![]], 1).unwrap_err();
        assert!(matches!(&error, ModelError::Training(message) if message.contains("0 gradients for 1 parameters")), "{error:?}");
        let error = adam.step(&[vec![Tensor::zeros([5], (Kind::Float, Device::Cpu))]], 1).unwrap_err();
        assert!(matches!(&error, ModelError::Training(message) if message.contains("5 values")), "{error:?}");
    }

    /// Lazy Adam on rows that every step touches is plain Adam: compare with libtorch's Adam on the same problem.
    #[test]
    fn dense_and_fully_touched_sparse_updates_match_torch_adam() {
        tch::manual_seed(11);
        let target = Tensor::randn([4, 3], (Kind::Float, Device::Cpu));
        let reference_store = nn::VarStore::new(Device::Cpu);
        let reference = reference_store.root().var("w", &[4, 3], nn::Init::Randn { mean: 0.0, stdev: 1.0 });
        let mut reference_adam = nn::Adam::default().build(&reference_store, 0.05).unwrap();
        let dense = reference.detach().copy().set_requires_grad(true);
        let sparse = reference.detach().copy().set_requires_grad(true);
        let mut lazy = LazyAdam::new(
            vec![
                Parameter { name: "dense", tensor: dense.shallow_clone(), sparse: false, regularised: false },
                Parameter { name: "sparse", tensor: sparse.shallow_clone(), sparse: true, regularised: false },
            ],
            0.05,
            0.0,
            0.0,
        )
        .unwrap();
        let all_rows = Tensor::from_slice(&[0i64, 1, 2, 3, 1]);
        for _ in 0..20 {
            let loss = |w: &Tensor, sparse: bool| {
                (Tensor::embedding(w, &all_rows, -1, false, sparse) - target.index_select(0, &all_rows)).square().sum(Kind::Float)
            };
            reference_adam.backward_step(&loss(&reference, false));
            let dense_gradient = Tensor::run_backward(&[loss(&dense, false)], &[&dense], false, false);
            let sparse_gradient = Tensor::run_backward(&[loss(&sparse, true)], &[&sparse], false, false);
            assert!(sparse_gradient[0].is_sparse());
            lazy.step(&[vec![dense_gradient[0].shallow_clone(), sparse_gradient[0].shallow_clone()]], 5).unwrap();
        }
        for ours in [&dense, &sparse] {
            let difference = (ours.detach() - reference.detach()).abs().max().double_value(&[]);
            assert!(difference < 1e-5, "differs from torch Adam by {difference}");
        }
    }

    /// The row penalty equals adding λ·Σ‖looked-up row‖² / batch rows to the loss under torch's Adam.
    #[test]
    fn the_row_penalty_matches_an_l2_term_in_the_loss() {
        tch::manual_seed(12);
        let (rows, lambda) = (Tensor::from_slice(&[0i64, 1, 1, 3]), 0.2);
        let reference_store = nn::VarStore::new(Device::Cpu);
        let reference = reference_store.root().var("w", &[4, 2], nn::Init::Randn { mean: 0.0, stdev: 1.0 });
        let ours = reference.detach().copy().set_requires_grad(true);
        let mut reference_adam = nn::Adam::default().build(&reference_store, 0.05).unwrap();
        let mut lazy =
            LazyAdam::new(vec![Parameter { name: "w", tensor: ours.shallow_clone(), sparse: true, regularised: true }], 0.05, 0.0, lambda).unwrap();
        for _ in 0..10 {
            let looked_up = Tensor::embedding(&reference, &rows, -1, false, false);
            let loss = (looked_up.sum(Kind::Float) - 1.0).square() + looked_up.square().sum(Kind::Float) * lambda / 4.0;
            reference_adam.backward_step(&loss);
            let gradient =
                Tensor::run_backward(&[(Tensor::embedding(&ours, &rows, -1, false, true).sum(Kind::Float) - 1.0).square()], &[&ours], false, false);
            lazy.step(&[gradient], 4).unwrap();
        }
        let difference = (ours.detach() - reference.detach()).abs().max().double_value(&[]);
        assert!(difference < 1e-5, "differs by {difference}");
    }

    #[test]
    fn the_gradients_of_two_workers_are_summed() {
        let start = Tensor::from_slice(&[1.0f32, -2.0, 0.5, 3.0]).view([4, 1]);
        let (whole, split) = (start.copy().set_requires_grad(true), start.copy().set_requires_grad(true));
        let mut one =
            LazyAdam::new(vec![Parameter { name: "whole", tensor: whole.shallow_clone(), sparse: true, regularised: true }], 0.1, 0.0, 0.3).unwrap();
        let mut two =
            LazyAdam::new(vec![Parameter { name: "split", tensor: split.shallow_clone(), sparse: true, regularised: true }], 0.1, 0.0, 0.3).unwrap();
        let gradient = |table: &Tensor, rows: &[i64]| {
            Tensor::run_backward(
                &[Tensor::embedding(table, &Tensor::from_slice(rows), -1, false, true).square().sum(Kind::Float)],
                &[table],
                false,
                false,
            )
        };
        for _ in 0..3 {
            one.step(&[gradient(&whole, &[0, 2, 2, 3])], 4).unwrap();
            two.step(&[gradient(&split, &[0, 2]), gradient(&split, &[2, 3])], 4).unwrap();
        }
        assert_eq!(Vec::<f32>::try_from(whole.detach().view([-1])).unwrap(), Vec::<f32>::try_from(split.detach().view([-1])).unwrap());
        assert_eq!(Vec::<f32>::try_from(whole.detach().view([-1])).unwrap()[1], -2.0, "an untouched row keeps its value");
    }

    #[test]
    fn rows_a_sparse_gradient_does_not_touch_stay_unchanged() {
        let table = Tensor::ones([5, 2], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let mut lazy =
            LazyAdam::new(vec![Parameter { name: "table", tensor: table.shallow_clone(), sparse: true, regularised: true }], 0.1, 0.0, 0.5).unwrap();
        let rows = Tensor::from_slice(&[1i64, 3]);
        let gradient = Tensor::run_backward(&[Tensor::embedding(&table, &rows, -1, false, true).sum(Kind::Float)], &[&table], false, false);
        lazy.step(&[gradient], 2).unwrap();
        let values: Vec<Vec<f32>> = Vec::try_from(table.detach()).unwrap();
        assert_eq!(values[0], vec![1.0, 1.0]);
        assert_eq!(values[2], vec![1.0, 1.0]);
        assert!(values[1][0] < 0.95 && values[3][1] < 0.95, "{values:?}");
        assert!(lazy.step(&[vec![]], 2).is_err());
    }
}
