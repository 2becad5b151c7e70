//! The extension's settings, all under the `recsys.` prefix, declared in one place and read through getters.
use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting, PostgresGucEnum};
use pgrx::pg_sys;

/// `recsys.torch_threads`: libtorch intra-op threads per backend (default 1), at most the server's cores whatever
/// the value. Every backend has its own libtorch thread pool, so on a server with many connections more than one
/// thread mostly adds contention.
static TORCH_THREADS: GucSetting<i32> = GucSetting::<i32>::new(1);

/// `recsys.fast_exit`: end Postgres child processes without running libtorch's C++ static destructors
/// (default on). They only free memory the kernel reclaims anyway, and cost ~60–95 ms of CPU per exit.
static FAST_EXIT: GucSetting<bool> = GucSetting::<bool>::new(true);

/// `recsys.minilm_dir`: directory of the all-MiniLM-L6-v2 files used to embed titles the trainer has not cached
/// (superuser only: the server reads files there). Empty: the copy installed beside the extension
/// (`$sharedir/extension/pg_recsys_minilm`), else the `.deps/` directory of the build's checkout.
static MINILM_DIR: GucSetting<Option<std::ffi::CString>> = GucSetting::<Option<std::ffi::CString>>::new(None);

/// `recsys.bfloat16`: use bfloat16 arithmetic where the CPU has it natively (AVX512-BF16; default on). It speeds
/// up two things: whole-catalogue ranking (recsys_recommend, the batch refresh), whose candidates within 0.1 of the
/// k-th best are then rescored in float32, so results equal the float32 ones unless the bfloat16 error exceeds 0.05
/// rating points; and the MiniLM embedding of titles not in recsys.title_embeddings (cosine ≥ 0.9999 to float32).
/// Off: float32 throughout.
static BFLOAT16: GucSetting<bool> = GucSetting::<bool>::new(true);

/// `recsys.allow_drop_with_data`: lets `DROP EXTENSION pg_recsys` / `DROP SCHEMA recsys` delete the extension's
/// tables while they hold ratings, movies, users, persons or models (default off: the drop guard refuses, 2BP01).
/// Read by the drop guard (`drop_guard.rs`), whose event trigger loads the library in the session that drops.
static ALLOW_DROP_WITH_DATA: GucSetting<bool> = GucSetting::<bool>::new(false);

/// `recsys.fold_in`: fold a user's ratings that the active model never saw (those newer than its training data,
/// and every rating of a user it was trained without) into the user's vector at query time (default on), for
/// recsys_predict, recsys_recommend and the batch refresh. Off: the trained vector (or the average user).
static FOLD_IN: GucSetting<bool> = GucSetting::<bool>::new(true);

/// `recsys.fold_in_l2`: how firmly fold-in holds on to the starting vector (the trained row, or the average user's):
/// the L2 weight per rating on the distance from it, counted over the ratings the trained row reflects and the new
/// ones. Larger: new ratings move the vector less.
static FOLD_IN_L2: GucSetting<f64> = GucSetting::<f64>::new(FOLD_IN_L2_DEFAULT);

/// Values of `recsys.retrieval`: how recsys_recommend and the batch refresh find the movies they score exactly.
#[derive(PostgresGucEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum RetrievalMode {
    /// Two-stage for catalogues of more than `AUTO_TWO_STAGE_ABOVE` movies, else exhaustive.
    #[name = c"auto"]
    Auto,
    /// Every candidate movie through the whole model.
    #[name = c"exhaustive"]
    Exhaustive,
    /// A cheap approximate pass over the catalogue, then the full model on the best `recsys.retrieval_candidates`.
    #[name = c"two_stage"]
    TwoStage,
}

/// `recsys.retrieval`: exhaustive or two-stage ranking (default auto).
static RETRIEVAL: GucSetting<RetrievalMode> = GucSetting::<RetrievalMode>::new(RetrievalMode::Auto);

/// `recsys.retrieval_candidates`: movies per user that two-stage ranking scores with the full model.
static RETRIEVAL_CANDIDATES: GucSetting<i32> = GucSetting::<i32>::new(RETRIEVAL_CANDIDATES_DEFAULT);

/// Default of `recsys.retrieval_candidates`, chosen with `scripts/bench.sh scale` (recall@10 against exhaustive).
pub const RETRIEVAL_CANDIDATES_DEFAULT: i32 = 200;

/// Catalogue size above which `recsys.retrieval = auto` ranks in two stages.
pub const AUTO_TWO_STAGE_ABOVE: usize = 20_000;

/// `recsys.refresh_users_per_round`: users the batch refresh reads, scores and writes at a time; bounds its memory
/// whatever the number of users (progress NOTICEs come at every tenth of the users, between rounds).
static REFRESH_USERS_PER_ROUND: GucSetting<i32> = GucSetting::<i32>::new(2_000);

/// `recsys.shared_tables`: keep the active model's weights and the catalogue's serving tables in files under
/// `$PGDATA/pg_recsys` that every backend maps (default on), so their memory is the page cache's, one copy per
/// server, instead of a private copy per connection. The first backend to load a model or catalogue version writes
/// its file; the others map it. Off: private copies (nothing written).
static SHARED_TABLES: GucSetting<bool> = GucSetting::<bool>::new(true);

/// Default of `recsys.fold_in_l2`, chosen with `scripts/bench.sh fold-in` on ml-latest-small.
pub const FOLD_IN_L2_DEFAULT: f64 = 2.0;

/// Upper bound of `recsys.torch_threads` and of the refresh's `threads` argument; values above the server's cores
/// run with as many threads as it has cores.
pub const MAX_TORCH_THREADS: i32 = 64;

/// Upper bound of `recsys.retrieval_candidates` and `recsys.refresh_users_per_round`, which any role may set: each
/// multiplies the memory one statement uses (candidates or users × the catalogue's scoring tables).
const MAX_PER_STATEMENT_ROWS: i32 = 20_000;

/// The threads libtorch may use in one backend: the server's cores.
pub fn machine_threads() -> i32 {
    static CORES: std::sync::OnceLock<i32> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |cores| cores.get().min(MAX_TORCH_THREADS as usize) as i32))
}

/// Defines every `recsys.*` setting (called once from `_PG_init`).
pub fn register() {
    GucRegistry::define_bool_guc(
        c"recsys.allow_drop_with_data",
        c"Lets DROP EXTENSION pg_recsys delete the ratings, movies, people and models it holds.",
        c"Off: the drop guard refuses the drop while those tables hold rows. Set it in the session that drops.",
        &ALLOW_DROP_WITH_DATA,
        GucContext::Userset,
        GucFlags::default(),
    );
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
        c"recsys.bfloat16",
        c"Use bfloat16 arithmetic where the CPU has it natively.",
        c"Speeds up catalogue ranking (close candidates are rescored in float32) and the MiniLM embedding of new titles; off: float32 throughout.",
        &BFLOAT16,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_bool_guc(
        c"recsys.shared_tables",
        c"Map the model's weights and the catalogue's serving tables from files shared by every backend.",
        c"One copy per server in $PGDATA/pg_recsys, written by the first backend that loads a model or catalogue version; off: private copies per backend.",
        &SHARED_TABLES,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_bool_guc(
        c"recsys.fold_in",
        c"Fold ratings the active model never saw into the user's vector at query time.",
        c"Ratings newer than the model's training data (all ratings of a user it never saw) refit the user's embedding and bias with the network frozen; off: the trained vector.",
        &FOLD_IN,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_float_guc(
        c"recsys.fold_in_l2",
        c"L2 weight per rating holding a folded-in user's vector near its starting vector.",
        c"Larger values make new ratings move a user's vector less.",
        &FOLD_IN_L2,
        0.0,
        1000.0,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_enum_guc(
        c"recsys.retrieval",
        c"How recsys_recommend and the batch refresh find the movies they score with the full model.",
        c"exhaustive: every movie; two_stage: an approximate pass, then the best recsys.retrieval_candidates exactly; auto: two_stage above 20000 movies.",
        &RETRIEVAL,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"recsys.retrieval_candidates",
        c"Movies per user that two-stage ranking scores with the full model.",
        c"More candidates: recall closer to exhaustive ranking, more time.",
        &RETRIEVAL_CANDIDATES,
        1,
        MAX_PER_STATEMENT_ROWS,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"recsys.refresh_users_per_round",
        c"Users the batch refresh reads, scores and writes at a time.",
        c"Bounds the refresh's memory whatever the number of users; larger rounds mean fewer statements.",
        &REFRESH_USERS_PER_ROUND,
        1,
        MAX_PER_STATEMENT_ROWS,
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
    // SAFETY: called from _PG_init after the settings above are defined; a mistyped `recsys.` name is then an
    // error instead of being accepted silently as an unknown custom setting.
    unsafe { pg_sys::MarkGUCPrefixReserved(c"recsys".as_ptr()) };
}

/// The configured MiniLM directory; else the copy installed beside the extension
/// (`$sharedir/extension/pg_recsys_minilm`, so the installed extension survives its checkout); else the build-time
/// default (the checkout's `.deps`).
pub fn minilm_dir() -> std::path::PathBuf {
    match MINILM_DIR.get() {
        Some(dir) if !dir.as_bytes().is_empty() => std::path::PathBuf::from(dir.to_string_lossy().into_owned()),
        _ => installed_minilm_dir().unwrap_or_else(recsys_model::embedder::TitleEmbedder::default_dir),
    }
}

/// `$sharedir/extension/pg_recsys_minilm` of this server, when it holds the weights.
fn installed_minilm_dir() -> Option<std::path::PathBuf> {
    let mut share = [0 as std::ffi::c_char; pg_sys::MAXPGPATH as usize];
    // SAFETY: my_exec_path is the server's NUL-terminated executable path, set at start-up; get_share_path writes
    // at most MAXPGPATH bytes including the NUL into `share`.
    unsafe { pg_sys::get_share_path(std::ptr::addr_of!(pg_sys::my_exec_path).cast(), share.as_mut_ptr()) };
    // SAFETY: get_share_path always NUL-terminates its output.
    let share = unsafe { std::ffi::CStr::from_ptr(share.as_ptr()) }.to_str().ok()?;
    let dir = std::path::Path::new(share).join("extension").join(INSTALLED_MINILM_DIR);
    dir.join("model.safetensors").is_file().then_some(dir)
}

/// Name of the MiniLM directory `scripts/cluster.sh install` copies into `$sharedir/extension`.
const INSTALLED_MINILM_DIR: &str = "pg_recsys_minilm";

/// The thread count the current session asks libtorch to use.
pub fn torch_threads() -> i32 {
    TORCH_THREADS.get().min(machine_threads())
}

/// Whether this session lets DROP EXTENSION pg_recsys / DROP SCHEMA recsys delete the extension's data.
pub fn allow_drop_with_data() -> bool {
    ALLOW_DROP_WITH_DATA.get()
}

/// Whether this session folds new ratings into users' vectors.
pub fn fold_in() -> bool {
    FOLD_IN.get()
}

/// Whether models and catalogues are served from shared files.
pub fn shared_tables() -> bool {
    SHARED_TABLES.get()
}

/// The fold-in prior's L2 weight per rating.
pub fn fold_in_l2() -> f64 {
    FOLD_IN_L2.get()
}

/// Users per round of the batch refresh.
pub fn refresh_users_per_round() -> i64 {
    i64::from(REFRESH_USERS_PER_ROUND.get())
}

/// Whether processes leave without libtorch's static destructors.
pub fn fast_exit() -> bool {
    FAST_EXIT.get()
}

/// How this session ranks `k` movies per user over a catalogue of `movies`.
pub fn rank_options(k: usize, movies: usize) -> recsys_model::ranking::RankOptions {
    use recsys_model::ranking::Retrieval;
    let candidates = RETRIEVAL_CANDIDATES.get().max(1) as usize;
    let two_stage = match RETRIEVAL.get() {
        RetrievalMode::Auto => movies > AUTO_TWO_STAGE_ABOVE,
        RetrievalMode::Exhaustive => false,
        RetrievalMode::TwoStage => true,
    };
    let retrieval = if two_stage { Retrieval::TwoStage { candidates } } else { Retrieval::Exhaustive };
    recsys_model::ranking::RankOptions { k, precision: precision(), retrieval }
}

/// The fastest arithmetic this session allows: bfloat16 when `recsys.bfloat16` is on and the CPU has it natively.
pub fn precision() -> recsys_model::scoring::Precision {
    if BFLOAT16.get() {
        recsys_model::scoring::Precision::fastest_available()
    } else {
        recsys_model::scoring::Precision::Float32
    }
}
