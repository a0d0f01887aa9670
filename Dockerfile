# syntax=docker/dockerfile:1
# compute_ctl as the entrypoint of a PostgreSQL container.
#
#   docker build -t compute_ctl .                         # builds the binary from source
#   docker build --build-arg PG_MAJOR=18 \
#       --build-arg RUNTIME_IMAGE=debian:forky-slim .     # another Debian postgres
#
# The base images are build arguments so that a test (tests/it/container/image.rs) can build
# offline from a local Debian base and a binary built on the host:
#   BUILDER_IMAGE  image that compiles the release binary (stage "build"); if it
#                  already holds a /compute_ctl, that binary is used as it is
#   RUNTIME_IMAGE  Debian image the product runs on (trixie-slim by default)
# An optional build secret "ca-bundle" (a CA bundle file) is handed to apt for HTTPS
# mirrors; it is mounted for one step and never stored in the image.
ARG BUILDER_IMAGE=docker.io/library/rust:1-trixie
ARG RUNTIME_IMAGE=docker.io/library/debian:trixie-slim

FROM ${BUILDER_IMAGE} AS build
WORKDIR /src
COPY . .
RUN if [ -x /compute_ctl ]; then \
        echo "using the prebuilt /compute_ctl of the builder image"; \
    else \
        cargo build --release --locked --bin compute_ctl \
        && strip target/release/compute_ctl \
        && cp target/release/compute_ctl /compute_ctl; \
    fi

FROM ${RUNTIME_IMAGE}
# Debian's PostgreSQL server package: trixie has 17. Not 15 (bookworm's): there a
# spec role with CREATEROLE can grant itself pg_execute_server_program, and so run
# programs as postgres; PostgreSQL 16 took that power from CREATEROLE.
ARG PG_MAJOR=17
RUN --mount=type=secret,id=ca-bundle \
    set -eu; \
    if [ -s /run/secrets/ca-bundle ]; then \
        echo 'Acquire::https::CAInfo "/run/secrets/ca-bundle";' > /etc/apt/apt.conf.d/99ca-bundle; \
    fi; \
    printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-exclude /usr/share/man/*' \
        'path-exclude /usr/share/info/*' 'path-exclude /usr/share/locale/*' \
        > /etc/dpkg/dpkg.cfg.d/01-slim; \
    # A fixed uid/gid (999, as the official postgres image), so that manifests
    # can name it (runAsUser) before the package makes the user.
    groupadd --system --gid 999 postgres; \
    useradd --system --uid 999 --gid 999 --home-dir /var/lib/postgresql \
        --shell /bin/sh postgres; \
    # compute_ctl makes its own clusters: no "main" cluster from the package.
    mkdir -p /etc/postgresql-common; \
    echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.conf; \
    apt-get update; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        "postgresql-${PG_MAJOR}" ca-certificates \
        pgbouncer "postgresql-${PG_MAJOR}-pgaudit" "postgresql-${PG_MAJOR}-pgauditlogtofile"; \
    rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/apt /var/log/dpkg.log \
        /etc/apt/apt.conf.d/99ca-bundle; \
    # PGDATA lives below a volume (the data directory itself is wiped and recreated,
    # which a mount point cannot be); the template cache sits beside it. Group 0 may
    # write both, for an arbitrary uid (OpenShift runs containers as one in group 0).
    mkdir -p /var/lib/compute /var/cache/compute_ctl; \
    chown postgres:0 /var/lib/compute /var/cache/compute_ctl; \
    chmod 2775 /var/lib/compute /var/cache/compute_ctl; \
    # Remote extensions (-r): archives are unpacked in download_extensions, beside bin/
    # (the file system of the directories their files move to), then moved into the
    # extension and library directories. Group 0 may write the three, for a compute run
    # as an arbitrary uid in group 0 (as postgres' user: with group 0 added); the last two
    # stay root's, so postgres' user cannot change a library under a compute run as root,
    # which takes download_extensions back (its own, 0700) before it unpacks there.
    mkdir -p "/usr/lib/postgresql/${PG_MAJOR}/download_extensions"; \
    chown postgres:0 "/usr/lib/postgresql/${PG_MAJOR}/download_extensions"; \
    chgrp 0 "/usr/share/postgresql/${PG_MAJOR}/extension" "/usr/lib/postgresql/${PG_MAJOR}/lib"; \
    chmod 2775 "/usr/lib/postgresql/${PG_MAJOR}/download_extensions" \
        "/usr/share/postgresql/${PG_MAJOR}/extension" "/usr/lib/postgresql/${PG_MAJOR}/lib"

COPY --from=build /compute_ctl /usr/local/bin/compute_ctl
# pgbouncer's defaults, which --pgbouncer writes its ini from (docs/edge.md).
COPY deploy/pgbouncer.ini /etc/compute_ctl/pgbouncer.ini

ENV PATH=/usr/lib/postgresql/${PG_MAJOR}/bin:$PATH \
    COMPUTE_CTL_PGDATA=/var/lib/compute/pgdata \
    COMPUTE_CTL_CONNSTR=postgresql://cloud_admin@127.0.0.1:55432/postgres \
    COMPUTE_CTL_TEMPLATE_CACHE=/var/cache/compute_ctl \
    COMPUTE_CTL_LOG_FORMAT=json

# The initdb template for the default superuser, made now: a container's first
# start copies it (tens of ms) instead of running initdb (about a second). It is
# root's and nobody else may change it; anyone may read it (--user postgres, or an
# arbitrary uid in group 0). The cache directory goes back to postgres and group 0,
# where a compute that is not root makes its spare copies; one run as root takes it
# back at its start.
RUN compute_ctl template \
    && chgrp -R 0 /var/cache/compute_ctl \
    && chmod -R go+rX /var/cache/compute_ctl \
    && chown postgres /var/cache/compute_ctl && chmod 2775 /var/cache/compute_ctl

LABEL org.opencontainers.image.title="compute_ctl" \
      org.opencontainers.image.description="PostgreSQL compute node supervised by compute_ctl" \
      org.opencontainers.image.licenses="Apache-2.0"

VOLUME /var/lib/compute
# postgres, the external HTTP API (control plane, probes, metrics).
EXPOSE 55432 3080
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s \
    CMD ["compute_ctl", "probe", "/healthz"]
ENTRYPOINT ["compute_ctl"]
