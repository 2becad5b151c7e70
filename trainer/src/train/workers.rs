//! Gradient workers: long-lived threads, each with its own handle on the network's tensors and libtorch on one
//! thread, that differentiate slices of a batch. Threads live for the whole fit: a thread started per batch paid
//! for MKL's and libgomp's per-thread set-up on every batch.
use super::data::IndexedRatings;
use anyhow::{anyhow, Result};
use recsys_model::scoring::Precision;
use recsys_model::{ContentInputs, HybridRecommender, MaskRandom, Noise, Parameter};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use tch::Tensor;

/// One slice of a batch to differentiate: its rows of the training ratings, its noise, the whole batch's size
/// (the loss normaliser) and the hidden layers' precision.
pub struct Slice {
    pub rows: Tensor,
    pub noise: Noise,
    pub batch_rows: i64,
    pub precision: Precision,
}

/// The slice's share of the batch loss and its gradients, in `HybridRecommender::parameters` order.
pub type SliceGradients = (f64, Vec<Tensor>);

/// Handles on the network and the training data that differentiate slices (each thread gathers its own pairs).
pub struct Differentiator {
    network: HybridRecommender,
    parameters: Vec<Parameter>,
    data: IndexedRatings,
    content: ContentInputs,
}

impl Differentiator {
    pub fn new(network: &HybridRecommender, data: &IndexedRatings, content: &ContentInputs) -> Self {
        let network = network.shallow_clone();
        Self { parameters: network.parameters(), network, data: data.shallow_clone(), content: content.shallow_clone() }
    }

    pub fn differentiate(&self, slice: &Slice) -> Result<SliceGradients> {
        let batch = self.data.training_batch(&slice.rows, &self.content)?;
        let loss = self.network.training_loss(&batch, &slice.noise, slice.batch_rows as f64, slice.precision)?;
        Ok((loss.f_double_value(&[])?, HybridRecommender::gradients(&loss, &self.parameters)?))
    }
}

struct Worker {
    jobs: Sender<Slice>,
    results: Receiver<Result<SliceGradients>>,
    thread: JoinHandle<()>,
}

/// `count` worker threads; `Drop` ends them.
pub struct Workers {
    workers: Vec<Worker>,
    flushing: Arc<AtomicBool>,
}

impl Workers {
    pub fn start(count: usize, network: &HybridRecommender, data: &IndexedRatings, content: &ContentInputs) -> Self {
        let flushing = Arc::new(AtomicBool::new(true));
        let workers = (0..count)
            .map(|_| {
                let (jobs, job_queue) = channel::<Slice>();
                let (result_sender, results) = channel();
                let differentiator = Differentiator::new(network, data, content);
                let flushing = Arc::clone(&flushing);
                let thread = std::thread::spawn(move || {
                    if !recsys_model::float_mode::enabled_on_this_thread() {
                        flushing.store(false, Ordering::Relaxed);
                    }
                    tch::set_num_threads(1);
                    for slice in job_queue {
                        let result = differentiator.differentiate(&slice);
                        if result_sender.send(result).is_err() {
                            break;
                        }
                    }
                });
                Worker { jobs, results, thread }
            })
            .collect();
        Self { workers, flushing }
    }

    pub fn len(&self) -> usize {
        self.workers.len()
    }

    /// Whether every worker thread started with flush-to-zero (inherited from the thread that started them).
    pub fn flush_to_zero(&self) -> bool {
        self.flushing.load(Ordering::Relaxed)
    }

    /// Hands slice `i` to worker `i`.
    pub fn submit(&self, slices: Vec<Slice>) -> Result<usize> {
        let count = slices.len();
        for (worker, slice) in self.workers.iter().zip(slices) {
            worker.jobs.send(slice).map_err(|_| anyhow!("a gradient worker stopped"))?;
        }
        Ok(count.min(self.workers.len()))
    }

    /// The results of the first `count` workers, in worker order.
    pub fn collect(&self, count: usize) -> Vec<Result<SliceGradients>> {
        self.workers.iter().take(count).map(|w| w.results.recv().unwrap_or_else(|_| Err(anyhow!("a gradient worker panicked")))).collect()
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for worker in self.workers.drain(..) {
            drop(worker.jobs);
            let _ = worker.thread.join();
        }
    }
}

/// The noise of an epoch's batches, drawn in batch order by one thread ahead of the training loop from the epoch's
/// own generator, so a seeded run stays reproducible.
pub struct NoiseStream {
    batches: Receiver<Result<Noise>>,
    thread: Option<JoinHandle<()>>,
}

impl NoiseStream {
    pub fn start(network: &HybridRecommender, batch_rows: Vec<i64>, mut random: MaskRandom) -> Self {
        let (sender, batches) = std::sync::mpsc::sync_channel(4);
        let network = network.shallow_clone();
        let thread = std::thread::spawn(move || {
            for rows in batch_rows {
                if sender.send(network.draw_noise(rows, &mut random).map_err(anyhow::Error::from)).is_err() {
                    break;
                }
            }
        });
        Self { batches, thread: Some(thread) }
    }

    pub fn next(&self) -> Result<Noise> {
        self.batches.recv().unwrap_or_else(|_| Err(anyhow!("the noise thread stopped")))
    }
}

impl Drop for NoiseStream {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            while self.batches.recv().is_ok() {}
            let _ = thread.join();
        }
    }
}
