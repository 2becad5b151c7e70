//! Adam that updates only the embedding rows a batch touched ("lazy" Adam, as PyTorch's SparseAdam and
//! TensorFlow's LazyAdam): dense tensors get the usual Adam step; sparse row gradients update those rows' moments
//! and values only. The dense update of a million embedding values per batch was a third of the training time.
use crate::training::Parameter;
use tch::{Kind, TchError, Tensor};

/// Moments of one sparse (embedding) table.
struct SparseSlot {
    value: Tensor,
    first_moment: Tensor,
    second_moment: Tensor,
}

/// Every dense parameter lives in one flat buffer (the parameters are views into it), so the dense update is a
/// handful of whole-buffer operations instead of a handful per tensor: at batch 256 libtorch's per-operation cost,
/// not arithmetic, dominated the step.
struct DenseSlots {
    values: Tensor,
    first_moment: Tensor,
    second_moment: Tensor,
}

/// Adam's constants for one step.
#[derive(Clone, Copy)]
struct StepConstants {
    beta1: f64,
    beta2: f64,
    epsilon: f64,
    bias2: f64,
    step_size: f64,
    weight_decay: f64,
}

pub struct LazyAdam {
    dense: DenseSlots,
    dense_positions: Vec<usize>,
    sparse: Vec<(usize, SparseSlot)>,
    learning_rate: f64,
    beta1: f64,
    beta2: f64,
    epsilon: f64,
    /// L2 weight decay added to dense gradients (as torch's Adam `weight_decay`); embeddings are regularised in
    /// the loss instead, row by row.
    weight_decay: f64,
    steps: i32,
    /// Threads the update is spread over (tables are independent).
    threads: usize,
}

impl LazyAdam {
    /// Takes the parameters in order (dense ones are moved into one flat buffer they become views of).
    pub fn new(parameters: Vec<Parameter>, learning_rate: f64, weight_decay: f64) -> Result<Self, TchError> {
        let mut dense_positions = Vec::new();
        let mut sparse = Vec::new();
        let mut dense_values = Vec::new();
        for (position, parameter) in parameters.into_iter().enumerate() {
            if parameter.sparse {
                let slot = SparseSlot { first_moment: parameter.tensor.f_zeros_like()?, second_moment: parameter.tensor.f_zeros_like()?, value: parameter.tensor };
                sparse.push((position, slot));
            } else {
                dense_positions.push(position);
                dense_values.push(parameter.tensor);
            }
        }
        let flat = tch::no_grad(|| -> Result<Tensor, TchError> {
            let pieces = dense_values.iter().map(|t| t.f_detach()?.f_reshape([-1])).collect::<Result<Vec<_>, _>>()?;
            let flat = if pieces.is_empty() { Tensor::f_zeros([0], (Kind::Float, tch::Device::Cpu))? } else { Tensor::f_cat(&pieces, 0)? };
            let mut offset = 0;
            for value in dense_values.iter_mut() {
                let count = value.numel() as i64;
                value.f_set_data(&flat.f_narrow(0, offset, count)?.f_view(value.size().as_slice())?)?;
                offset += count;
            }
            Ok(flat)
        })?;
        let dense = DenseSlots { first_moment: flat.f_zeros_like()?, second_moment: flat.f_zeros_like()?, values: flat };
        Ok(Self { dense, dense_positions, sparse, learning_rate, beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weight_decay, steps: 0, threads: 1 })
    }

    /// Spreads each step over `threads` threads (each running libtorch on one thread).
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }

    /// One update from `gradients`, in the order of the parameters given to `new` (sparse ones as sparse COO
    /// tensors, possibly uncoalesced; an undefined gradient leaves its parameter unchanged).
    pub fn step(&mut self, gradients: &[Tensor]) -> Result<(), TchError> {
        let expected = self.dense_positions.len() + self.sparse.len();
        if gradients.len() != expected {
            return Err(TchError::Shape(format!("{} gradients for {expected} parameters", gradients.len())));
        }
        self.steps += 1;
        let bias1 = 1.0 - self.beta1.powi(self.steps);
        let constants = StepConstants {
            beta1: self.beta1,
            beta2: self.beta2,
            epsilon: self.epsilon,
            bias2: 1.0 - self.beta2.powi(self.steps),
            step_size: -self.learning_rate / bias1,
            weight_decay: self.weight_decay,
        };
        let dense_gradient = tch::no_grad(|| -> Result<Option<Tensor>, TchError> {
            let pieces = self.dense_positions.iter().map(|p| &gradients[*p]).filter(|g| g.defined()).map(|g| g.f_reshape([-1])).collect::<Result<Vec<_>, _>>()?;
            if pieces.len() != self.dense_positions.len() || pieces.is_empty() {
                return Ok(None);
            }
            Ok(Some(Tensor::f_cat(&pieces, 0)?))
        })?;
        let mut groups: Vec<Vec<(&mut SparseSlot, Tensor)>> = (0..self.threads).map(|_| Vec::new()).collect();
        let defined = self.sparse.iter_mut().filter(|(p, _)| gradients[*p].defined());
        for (number, (position, slot)) in defined.enumerate() {
            groups[(number + 1) % self.threads].push((slot, gradients[*position].shallow_clone()));
        }
        let dense = &mut self.dense;
        let mut groups = groups.into_iter();
        let main_group = groups.next().unwrap_or_default();
        std::thread::scope(|scope| {
            let workers: Vec<_> = groups
                .filter(|g| !g.is_empty())
                .map(|group| {
                    scope.spawn(move || {
                        tch::set_num_threads(1);
                        group.into_iter().try_for_each(|(slot, gradient)| update_rows(slot, &gradient, constants))
                    })
                })
                .collect();
            let mut result = match &dense_gradient {
                Some(gradient) => update_dense(dense, gradient, constants),
                None => Ok(()),
            };
            result = result.and_then(|_| main_group.into_iter().try_for_each(|(slot, gradient)| update_rows(slot, &gradient, constants)));
            for worker in workers {
                let outcome = worker.join().unwrap_or_else(|_| Err(TchError::Torch("an optimiser thread panicked".into())));
                result = result.and(outcome);
            }
            result
        })
    }
}

fn update_dense(slots: &mut DenseSlots, gradient: &Tensor, c: StepConstants) -> Result<(), TchError> {
    tch::no_grad(|| {
        let gradient = if c.weight_decay > 0.0 { gradient.f_add(&slots.values.f_mul_scalar(c.weight_decay)?)? } else { gradient.shallow_clone() };
        let _ = slots.first_moment.f_lerp_(&gradient, 1.0 - c.beta1)?;
        let _ = slots.second_moment.f_lerp_(&gradient.f_square()?, 1.0 - c.beta2)?;
        let denominator = slots.second_moment.f_div_scalar(c.bias2)?.f_sqrt_()?.f_add_scalar_(c.epsilon)?;
        let _ = slots.values.f_add_(&slots.first_moment.f_div(&denominator)?.f_mul_scalar_(c.step_size)?)?;
        Ok(())
    })
}

fn update_rows(slot: &mut SparseSlot, gradient: &Tensor, c: StepConstants) -> Result<(), TchError> {
    tch::no_grad(|| {
        let gradient = gradient.f_coalesce()?;
        let rows = gradient.f_indices()?.f_select(0, 0)?;
        let values = gradient.f_values()?;
        let first = slot.first_moment.f_index_select(0, &rows)?.f_lerp_(&values, 1.0 - c.beta1)?;
        let mut second = slot.second_moment.f_index_select(0, &rows)?.f_lerp_(&values.f_square()?, 1.0 - c.beta2)?;
        let _ = slot.first_moment.f_index_copy_(0, &rows, &first)?;
        let _ = slot.second_moment.f_index_copy_(0, &rows, &second)?;
        let denominator = second.f_div_scalar_(c.bias2)?.f_sqrt_()?.f_add_scalar_(c.epsilon)?;
        let _ = slot.value.f_index_add_(0, &rows, &first.f_div(&denominator)?.f_mul_scalar_(c.step_size)?)?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{nn, nn::OptimizerConfig, Device, Kind};

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
            vec![Parameter { name: "dense", tensor: dense.shallow_clone(), sparse: false }, Parameter { name: "sparse", tensor: sparse.shallow_clone(), sparse: true }],
            0.05,
            0.0,
        )
        .unwrap()
        .with_threads(2);
        let all_rows = Tensor::from_slice(&[0i64, 1, 2, 3, 1]);
        for _ in 0..20 {
            let loss = |w: &Tensor, sparse: bool| (Tensor::embedding(w, &all_rows, -1, false, sparse) - target.index_select(0, &all_rows)).square().sum(Kind::Float);
            reference_adam.backward_step(&loss(&reference, false));
            let dense_gradient = Tensor::run_backward(&[loss(&dense, false)], &[&dense], false, false);
            let sparse_gradient = Tensor::run_backward(&[loss(&sparse, true)], &[&sparse], false, false);
            assert!(sparse_gradient[0].is_sparse());
            lazy.step(&[dense_gradient[0].shallow_clone(), sparse_gradient[0].shallow_clone()]).unwrap();
        }
        for ours in [&dense, &sparse] {
            let difference = (ours.detach() - reference.detach()).abs().max().double_value(&[]);
            assert!(difference < 1e-5, "differs from torch Adam by {difference}");
        }
    }

    #[test]
    fn rows_a_sparse_gradient_does_not_touch_stay_unchanged() {
        let table = Tensor::ones([5, 2], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let mut lazy = LazyAdam::new(vec![Parameter { name: "table", tensor: table.shallow_clone(), sparse: true }], 0.1, 0.0).unwrap();
        let rows = Tensor::from_slice(&[1i64, 3]);
        let gradient = Tensor::run_backward(&[Tensor::embedding(&table, &rows, -1, false, true).sum(Kind::Float)], &[&table], false, false);
        lazy.step(&gradient).unwrap();
        let values: Vec<Vec<f32>> = Vec::try_from(table.detach()).unwrap();
        assert_eq!(values[0], vec![1.0, 1.0]);
        assert_eq!(values[2], vec![1.0, 1.0]);
        assert!(values[1][0] < 0.95 && values[3][1] < 0.95, "{values:?}");
        assert!(lazy.step(&[]).is_err());
    }
}
