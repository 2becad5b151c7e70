# pg_recsys on the official postgres:15 image (Debian bookworm). NOT BUILT IN CI: Docker cannot run on the build
# machines, so this file is checked only by reading; its build stage runs the same scripts/bootstrap.sh and
# `scripts/cluster.sh install` that CI runs on a fresh Debian 12 machine.
#   docker build -t pg_recsys .
#   docker run -e POSTGRES_PASSWORD=secret -p 5432:5432 pg_recsys
#   psql -h localhost -U postgres -c 'CREATE EXTENSION pg_recsys'
FROM postgres:15-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends curl ca-certificates build-essential \
    && rm -rf /var/lib/apt/lists/*
ENV RUSTUP_HOME=/usr/local/rustup CARGO_HOME=/usr/local/cargo PATH=/usr/local/cargo/bin:$PATH
RUN curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --default-toolchain 1.95.0
WORKDIR /opt/pg_recsys
COPY . .
# Installs the extension with libtorch beside it ($libdir/pg_recsys_libtorch) and MiniLM beside its control file
# ($sharedir/extension/pg_recsys_minilm), as on a Debian machine; the trainer is built against the same libtorch.
RUN scripts/bootstrap.sh && scripts/cluster.sh install && cargo build --release -p trainer

# Runtime: no Rust toolchain, no build tree, no MLflow virtualenv, one libtorch copy (the extension's, which the
# trainer's wrapper also loads).
FROM postgres:15-bookworm
RUN apt-get update && apt-get install -y --no-install-recommends postgresql-15-cron && rm -rf /var/lib/apt/lists/*
COPY --from=build /usr/lib/postgresql/15/lib/pg_recsys.so /usr/lib/postgresql/15/lib/
COPY --from=build /usr/lib/postgresql/15/lib/pg_recsys_libtorch /usr/lib/postgresql/15/lib/pg_recsys_libtorch
COPY --from=build /usr/share/postgresql/15/extension/ /usr/share/postgresql/15/extension/
COPY --from=build /opt/pg_recsys/target/release/trainer /usr/local/lib/pg_recsys/trainer
COPY --from=build /opt/pg_recsys/scripts/weekly.sh /usr/local/lib/pg_recsys/weekly.sh
RUN printf '#!/bin/sh\nLD_LIBRARY_PATH=/usr/lib/postgresql/15/lib/pg_recsys_libtorch exec /usr/local/lib/pg_recsys/trainer "$@"\n' \
        > /usr/local/bin/trainer && chmod 755 /usr/local/bin/trainer
ENV RECSYS_MINILM_DIR=/usr/share/postgresql/15/extension/pg_recsys_minilm RECSYS_TRAINER=/usr/local/bin/trainer
# libtorch loads once in the postmaster; pg_cron runs the weekly refresh in the default database.
CMD ["postgres", "-c", "shared_preload_libraries=pg_cron,pg_recsys", "-c", "cron.database_name=postgres", \
     "-c", "cron.use_background_workers=on", "-c", "max_worker_processes=16"]
