# PostgreSQL 15 from Debian, for compose.yaml where no image registry is reachable. It honours
# the official image's settings (POSTGRES_PASSWORD, POSTGRES_USER, POSTGRES_DB, PGDATA), so
# POSTGRES_IMAGE=docker.io/library/postgres:15 can replace it where a registry is.
ARG BASE_IMAGE=localhost/eventshop-base:bookworm
FROM ${BASE_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-15 \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/apt /var/log/dpkg.log \
 && mkdir -p /var/lib/postgresql/data /var/run/postgresql \
 && chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql
COPY container/postgres-entrypoint /usr/local/bin/postgres-entrypoint
ENV PATH=/usr/lib/postgresql/15/bin:$PATH PGDATA=/var/lib/postgresql/data
USER postgres
EXPOSE 5432
ENTRYPOINT ["postgres-entrypoint"]
CMD ["postgres"]
