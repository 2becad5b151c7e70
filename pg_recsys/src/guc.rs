//! The extension's settings, all under the `recsys.` prefix, declared in one place and read through getters.
use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};

/// `recsys.torch_threads`: libtorch intra-op threads per backend (default 1). Every backend has its own
/// libtorch thread pool, so on a server with many connections more than one thread mostly adds contention.
static TORCH_THREADS: GucSetting<i32> = GucSetting::<i32>::new(1);

/// `recsys.fast_exit`: end Postgres child processes without running libtorch's C++ static destructors
/// (default on). They only free memory the kernel reclaims anyway, and cost ~60–95 ms of CPU per exit.
static FAST_EXIT: GucSetting<bool> = GucSetting::<bool>::new(true);

/// `recsys.minilm_dir`: directory of the all-MiniLM-L6-v2 files used to embed titles the trainer has not cached
/// (superuser only: the server reads files there). Empty: the `.deps/` directory of the build's checkout.
static MINILM_DIR: GucSetting<Option<std::ffi::CString>> = GucSetting::<Option<std::ffi::CString>>::new(None);

/// `recsys.exact_ranking`: rank the whole catalogue in float32 in recsys_recommend and the batch refresh (default
/// off). Off, where the CPU has native bfloat16, every candidate is pre-scored in bfloat16 (about 2× faster) and
/// those within 0.1 of the k-th best are rescored in float32, which gives the same movies and scores unless the
/// bfloat16 error exceeds 0.05 rating points.
static EXACT_RANKING: GucSetting<bool> = GucSetting::<bool>::new(false);

/// Upper bound of `recsys.torch_threads`.
pub const MAX_TORCH_THREADS: i32 = 64;

pub fn register() {
    GucRegistry::define_int_guc(
        c"recsys.torch_threads",
        c"libtorch intra-op threads per backend.",
        c"Each backend runs its own libtorch thread pool; 1 is best when many connections compute at once.",
        &TORCH_THREADS,
        1,
        MAX_TORCH_THREADS,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"recsys.minilm_dir",
        c"Directory of the all-MiniLM-L6-v2 model files for embedding titles.",
        c"Used for titles not yet in recsys.title_embeddings (recsys_predict_new, movies added after training).",
        &MINILM_DIR,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_bool_guc(
        c"recsys.exact_ranking",
        c"Rank the whole catalogue in float32 instead of bfloat16 pre-scoring with exact rescoring.",
        c"Off (the default) is about twice as fast on CPUs with native bfloat16 and returns the same results unless the bfloat16 error exceeds 0.05 rating points.",
        &EXACT_RANKING,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_bool_guc(
        c"recsys.fast_exit",
        c"Skip libtorch's C++ static destructors when a Postgres process exits.",
        c"Saves ~60-95 ms of CPU per connection when pg_recsys is loaded; turn off only to debug exit-time behaviour.",
        &FAST_EXIT,
        GucContext::Suset,
        GucFlags::default(),
    );
}

/// The configured MiniLM directory, or the build-time default.
pub fn minilm_dir() -> std::path::PathBuf {
    match MINILM_DIR.get() {
        Some(dir) if !dir.as_bytes().is_empty() => std::path::PathBuf::from(dir.to_string_lossy().into_owned()),
        _ => recsys_model::embedder::TitleEmbedder::default_dir(),
    }
}

/// The thread count the current session asks libtorch to use.
pub fn torch_threads() -> i32 {
    TORCH_THREADS.get()
}

/// Whether processes leave without libtorch's static destructors.
pub fn fast_exit() -> bool {
    FAST_EXIT.get()
}

/// The arithmetic for whole-catalogue ranking in this session.
pub fn ranking_precision() -> recsys_model::scoring::Precision {
    if EXACT_RANKING.get() {
        recsys_model::scoring::Precision::Float32
    } else {
        recsys_model::scoring::Precision::fastest_available()
    }
}
