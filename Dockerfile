# pg_recsys on the official postgres:15 image (Debian bookworm). The build stage runs the same scripts/bootstrap.sh
# and `scripts/cluster.sh install` step as a fresh Debian 12 machine (both tested by CI there); Docker itself
# cannot run on our build machines, so this file adds nothing but the Rust toolchain and the copies between stages.
#   docker build -t pg_recsys .
#   docker run -e POSTGRES_PASSWORD=secret -p 5432:5432 pg_recsys
#   psql -h localhost -U postgres -c 'CREATE EXTENSION pg_recsys'
FROM postgres:15-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends curl ca-certificates build-essential \
    && rm -rf /var/lib/apt/lists/*
ENV RUSTUP_HOME=/usr/local/rustup CARGO_HOME=/usr/local/cargo PATH=/usr/local/cargo/bin:$PATH
RUN curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --default-toolchain 1.95.0
# The extension loads libtorch from $libdir/pg_recsys_libtorch (its $ORIGIN rpath); the trainer's rpath points
# into the checkout's .deps/libtorch: keep the same path in the final image.
WORKDIR /opt/pg_recsys
COPY . .
RUN scripts/bootstrap.sh \
    && (cd pg_recsys && cargo pgrx install --release --pg-config /usr/lib/postgresql/15/bin/pg_config) \
    && cargo build --release -p trainer \
    && cp target/release/trainer /usr/local/bin/trainer

FROM postgres:15-bookworm
RUN apt-get update && apt-get install -y --no-install-recommends postgresql-15-cron && rm -rf /var/lib/apt/lists/*
COPY --from=build /usr/lib/postgresql/15/lib/pg_recsys.so /usr/lib/postgresql/15/lib/
COPY --from=build /usr/lib/postgresql/15/lib/pg_recsys_libtorch /usr/lib/postgresql/15/lib/pg_recsys_libtorch
COPY --from=build /usr/share/postgresql/15/extension/pg_recsys* /usr/share/postgresql/15/extension/
COPY --from=build /opt/pg_recsys/.deps /opt/pg_recsys/.deps
COPY --from=build /usr/local/bin/trainer /usr/local/bin/trainer
COPY --from=build /opt/pg_recsys/seeds /opt/pg_recsys/seeds
COPY --from=build /opt/pg_recsys/scripts/weekly.sh /opt/pg_recsys/scripts/weekly.sh
ENV RECSYS_MINILM_DIR=/opt/pg_recsys/.deps/all-MiniLM-L6-v2 RECSYS_TRAINER=/usr/local/bin/trainer
# libtorch loads once in the postmaster; pg_cron runs the weekly refresh in the default database.
CMD ["postgres", "-c", "shared_preload_libraries=pg_cron,pg_recsys", "-c", "cron.database_name=postgres", \
     "-c", "cron.use_background_workers=on", "-c", "max_worker_processes=16"]
