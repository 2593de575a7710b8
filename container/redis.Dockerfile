# Redis 7 from Debian, for compose.yaml where no image registry is reachable;
# REDIS_IMAGE=docker.io/library/redis:7 replaces it where a registry is (compose.yaml gives the
# command line, AOF included).
ARG BASE_IMAGE=localhost/eventshop-base:bookworm
FROM ${BASE_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends redis-server \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/apt /var/log/dpkg.log \
 && mkdir -p /data && chown redis:redis /data
USER redis
WORKDIR /data
EXPOSE 6379
CMD ["redis-server", "--protected-mode", "no", "--dir", "/data"]
