//! `trainer synth`: deterministic synthetic data in MovieLens and IMDb formats, from the hand-written demo
//! catalogue or a generated one: ML-1M-shaped by default (6,040 users, 3,706 movies, 1,000,209 ratings), or
//! ML-25M-shaped with `--shape ml-25m` (162,541 users, 62,423 movies, 25,000,095 ratings).
pub mod catalogue;
pub mod taste;
pub mod write;

use anyhow::Result;
use clap::{Args, ValueEnum};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::path::PathBuf;
use std::time::Instant;
use taste::RatingPlan;

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum Format {
    /// ml-latest style: movies.csv, ratings.csv (half stars), links.csv.
    Csv,
    /// ML-1M style: movies.dat, ratings.dat (whole stars), users.dat with demographics; Latin-1.
    Dat,
}

/// A MovieLens release whose size a generated set takes.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum Shape {
    /// 6,040 users, 3,706 movies, 1,000,209 ratings.
    #[value(name = "ml-1m")]
    Ml1m,
    /// 162,541 users, 62,423 movies, 25,000,095 ratings.
    #[value(name = "ml-25m")]
    Ml25m,
}

impl Shape {
    /// (users, movies, ratings) of the release.
    pub fn size(self) -> (usize, usize, usize) {
        match self {
            Shape::Ml1m => (6_040, 3_706, 1_000_209),
            Shape::Ml25m => (162_541, 62_423, 25_000_095),
        }
    }
}

#[derive(Args, Debug)]
pub struct SynthArgs {
    /// Output directory; MovieLens files go to OUT/movielens, IMDb files to OUT/imdb.
    #[arg(long)]
    pub out: PathBuf,
    /// A hand-written catalogue (TSV: title, year, runtime, genres, directors, actors) instead of generated movies.
    #[arg(long)]
    pub catalogue: Option<PathBuf>,
    /// The release whose size the set takes (users, movies, ratings); `--scale` multiplies it.
    #[arg(long, value_enum, default_value_t = Shape::Ml1m)]
    pub shape: Shape,
    /// Multiplies the shape (users, movies, ratings); e.g. 10 × ML-1M for a larger benchmark set.
    #[arg(long, default_value_t = 1)]
    pub scale: usize,
    /// Number of users (default: the shape's × scale).
    #[arg(long)]
    pub users: Option<usize>,
    /// Number of generated movies (default: the shape's × scale; ignored with --catalogue).
    #[arg(long)]
    pub movies: Option<usize>,
    /// Target number of ratings (default: the shape's × scale).
    #[arg(long)]
    pub ratings: Option<usize>,
    /// Every user rates at least this many movies (ML-1M: 20).
    #[arg(long, default_value_t = 20)]
    pub min_ratings_per_user: usize,
    #[arg(long, value_enum, default_value_t = Format::Csv)]
    pub format: Format,
    /// Random seed: the same arguments and seed give byte-identical files.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Id of the first generated user (use a higher one to add new users to an existing set).
    #[arg(long, default_value_t = 1)]
    pub first_user_id: i32,
    /// Unix time of the earliest possible rating (default 2000-01-01).
    #[arg(long, default_value_t = 946_684_800)]
    pub first_timestamp: i64,
}

pub fn run(args: &SynthArgs) -> Result<()> {
    let started = Instant::now();
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    let (shape_users, shape_movies, shape_ratings) = args.shape.size();
    let movies = match &args.catalogue {
        Some(path) => catalogue::read_catalogue(path)?,
        None => catalogue::generate_catalogue(args.movies.unwrap_or(shape_movies * args.scale), &mut rng),
    };
    let plan = RatingPlan {
        users: args.users.unwrap_or(shape_users * args.scale),
        ratings: args.ratings.unwrap_or(shape_ratings * args.scale),
        min_ratings_per_user: args.min_ratings_per_user,
        whole_stars: args.format == Format::Dat,
        first_timestamp: args.first_timestamp,
        first_user_id: args.first_user_id,
    };
    let movielens_dir = args.out.join("movielens");
    let users = taste::generate_users(&plan, &mut rng);
    match args.format {
        Format::Csv => write::movielens_csv_catalogue(&movielens_dir, &movies)?,
        Format::Dat => write::movielens_dat_catalogue(&movielens_dir, &movies, &users)?,
    }
    write::imdb_files(&args.out.join("imdb"), &movies)?;
    let mut write_rating = write::ratings_writer(&movielens_dir, args.format == Format::Dat)?;
    let mut written = 0usize;
    let mut failure = None;
    taste::generate_ratings(&movies, &plan, &mut rng, |rating| {
        if failure.is_none() {
            match write_rating(&rating) {
                Ok(()) => written += 1,
                Err(error) => failure = Some(error),
            }
        }
    });
    if let Some(error) = failure {
        return Err(error.into());
    }
    drop(write_rating);
    println!(
        "wrote {} movies, {} users, {written} ratings to {} in {:.1} s",
        movies.len(),
        plan.users,
        args.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn args(out: PathBuf) -> SynthArgs {
        SynthArgs {
            out,
            catalogue: Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("../seeds/catalogue.tsv")),
            shape: Shape::Ml1m,
            scale: 1,
            users: Some(600),
            movies: None,
            ratings: Some(24_000),
            min_ratings_per_user: 15,
            format: Format::Csv,
            seed: 20_261_124,
            first_user_id: 1,
            first_timestamp: 946_684_800,
        }
    }

    fn files_under(dir: &Path) -> Vec<(String, Vec<u8>)> {
        let mut files = Vec::new();
        for sub in ["movielens", "imdb"] {
            let mut names: Vec<_> = std::fs::read_dir(dir.join(sub)).unwrap().map(|e| e.unwrap().path()).collect();
            names.sort();
            files.extend(
                names.into_iter().map(|path| (format!("{sub}/{}", path.file_name().unwrap().to_string_lossy()), std::fs::read(&path).unwrap())),
            );
        }
        files
    }

    #[test]
    fn committed_demo_seeds_are_exactly_what_the_generator_writes() {
        let out = std::env::temp_dir().join(format!("recsys_seeds_{}", std::process::id()));
        run(&args(out.clone())).unwrap();
        let generated = files_under(&out);
        std::fs::remove_dir_all(&out).unwrap();
        let committed = files_under(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../seeds/demo"));
        assert_eq!(generated.len(), 7);
        for ((name, bytes), (committed_name, committed_bytes)) in generated.iter().zip(&committed) {
            assert_eq!(name, committed_name);
            assert!(bytes == committed_bytes, "{name} differs from seeds/demo: regenerate it (see seeds/README.md)");
        }
    }

    #[test]
    fn the_ml_25m_shape_is_named_on_the_command_line() {
        #[derive(clap::Parser)]
        struct Command {
            #[command(flatten)]
            synth: SynthArgs,
        }
        let parsed = <Command as clap::Parser>::parse_from(["trainer", "--out", "/tmp/x", "--shape", "ml-25m"]).synth;
        assert_eq!(parsed.shape.size(), (162_541, 62_423, 25_000_095));
        let default = <Command as clap::Parser>::parse_from(["trainer", "--out", "/tmp/x"]).synth;
        assert_eq!(default.shape.size(), (6_040, 3_706, 1_000_209));
    }

    #[test]
    fn generated_catalogue_hits_the_requested_shape() {
        let out = std::env::temp_dir().join(format!("recsys_synth_{}", std::process::id()));
        let mut shape = args(out.clone());
        shape.catalogue = None;
        shape.movies = Some(300);
        shape.users = Some(200);
        shape.ratings = Some(12_345);
        shape.format = Format::Dat;
        run(&shape).unwrap();
        let ratings = std::fs::read_to_string(out.join("movielens/ratings.synthetic.dat")).unwrap();
        let users = std::fs::read_to_string(out.join("movielens/users.synthetic.dat")).unwrap();
        std::fs::remove_dir_all(&out).unwrap();
        assert_eq!(ratings.lines().count(), 12_345);
        assert_eq!(users.lines().count(), 200);
        let mut per_user = std::collections::HashMap::new();
        for line in ratings.lines() {
            let fields: Vec<&str> = line.split("::").collect();
            assert!(matches!(fields[2], "1" | "2" | "3" | "4" | "5"), "whole stars in .dat: {line}");
            *per_user.entry(fields[0].to_string()).or_insert(0) += 1;
        }
        assert!(per_user.values().all(|n| *n >= 15), "every user rates at least the minimum");
    }
}
