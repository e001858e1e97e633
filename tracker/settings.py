"""Settings: every value comes from the environment (see .env.example).

With nothing set the project runs embedded: SQLite in the project folder and
no Redis, postbacks delivered by an in-process loop. DATABASE_URL and
REDIS_URL switch it to PostgreSQL and RQ.
"""

import datetime
import ipaddress
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# A local .env is read when present; real environment variables win.
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set it in the environment, or set DEBUG=true for a "
            "local development run."
        )
    SECRET_KEY = "dev-only-insecure-key-never-use-in-production"

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "tracker.apps.AdminConfig",  # the admin site of tracker/site.py
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_rq",
    "axes",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "tracker",
    "crm",
    "postbacks",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",
    # Last, so it sees a view's exception first: 503 JSON when the database is down.
    "tracker.unavailable.DatabaseUnavailableMiddleware",
]

ROOT_URLCONF = "tracker.urls"
WSGI_APPLICATION = "tracker.wsgi.application"

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

# An empty variable (as in a copied .env.example) means the default.
DATABASE_URL = env.str("DATABASE_URL", default="") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}"
DATABASES = {"default": env.db_url_config(DATABASE_URL)}
_db = DATABASES["default"]
if _db["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web process read while the delivery loop writes; IMMEDIATE
    # takes the write lock at BEGIN so two writers queue instead of failing.
    _db.setdefault("OPTIONS", {}).update(
        {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        }
    )
    # Opening the file and running the PRAGMAs costs more than most queries:
    # each process (and thread) keeps its connection.
    _db["CONN_MAX_AGE"] = None
elif _db["ENGINE"] == "django.db.backends.postgresql":
    # A database that does not answer must fail a request in seconds (the API
    # answers 503, tracker/unavailable.py), not hold it: libpq gives up on a
    # connection attempt after this many seconds (2 is libpq's smallest).
    _db.setdefault("OPTIONS", {})["connect_timeout"] = env.int(
        "DATABASE_CONNECT_TIMEOUT", default=2
    )
    # A server that vanishes mid-query (a network partition, a dead machine)
    # fails the query once sent data stays unacknowledged this many ms, instead
    # of after TCP's retransmissions (about 15 minutes). A busy server still
    # acknowledges, so a slow query is not cut.
    _db["OPTIONS"]["tcp_user_timeout"] = env.int("DATABASE_TCP_USER_TIMEOUT", default=10_000)
    # No JIT: this application's queries are short, and the statistics query
    # over millions of rollup rows spent more compiling (90-200 ms) than running.
    _db["OPTIONS"]["options"] = "-c jit=off"
    if env.bool("DATABASE_POOL", default=True):
        # psycopg 3's pool keeps connections open between requests (CONN_MAX_AGE must be 0).
        _db["OPTIONS"]["pool"] = {
            "min_size": env.int("DATABASE_POOL_MIN", default=1),
            "max_size": env.int("DATABASE_POOL_MAX", default=10),
            # How long a request waits for a connection before it fails.
            "timeout": env.float("DATABASE_POOL_TIMEOUT", default=3.0),
            # The pool retries a failed connection with a doubling delay (1, 2, 4,
            # ... s) until this many seconds, then starts over on the next request:
            # after an outage the delay stays short and requests resume at once.
            "reconnect_timeout": 5.0,
        }
        _db["CONN_MAX_AGE"] = 0
        # The pool checks a connection before handing it out, so the connections
        # a database restart broke are replaced instead of failing requests.
        _db["CONN_HEALTH_CHECKS"] = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
FORMS_URLFIELD_ASSUME_HTTPS = True

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
# The currency statistics sum revenue in; each conversion also keeps its own
# (crm.rates converts at the rate of its day).
REPORTING_CURRENCY = env.str("REPORTING_CURRENCY", default="USD").upper()
if len(REPORTING_CURRENCY) != 3 or not REPORTING_CURRENCY.isalpha():
    raise ImproperlyConfigured("REPORTING_CURRENCY must be a three-letter code, e.g. USD.")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env.str("STATIC_ROOT", default="") or BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# Redis and RQ. Unset REDIS_URL means the embedded mode: no Redis at all.
REDIS_URL = env.str("REDIS_URL", default="")
_rq_url = REDIS_URL or "redis://127.0.0.1:6379/0"
if "socket_connect_timeout" not in _rq_url:
    # An unreachable Redis must fail fast after a commit, not hang the request:
    # the sweep sends what could not be enqueued. (No read timeout: workers block
    # on the queue for minutes by design.)
    _rq_url += ("&" if "?" in _rq_url else "?") + "socket_connect_timeout=2"
# Outgoing postbacks (postbacks/delivery/attempts.py, sender.py, worker.py).
# One attempt ends by its postback's timeout, at most this many seconds.
POSTBACKS_MAX_TIMEOUT = env.float("POSTBACKS_MAX_TIMEOUT", default=60.0)
# A sender's claim on a delivery lasts this long: at least twice the longest
# attempt (a system check says so), so a second sender only follows a dead one.
POSTBACKS_CLAIM_SECONDS = env.float("POSTBACKS_CLAIM_SECONDS", default=120.0)
# RQ's job timeout stays above the claim, so it never cuts an attempt short.
RQ_QUEUES = {"default": {"URL": _rq_url, "DEFAULT_TIMEOUT": int(POSTBACKS_CLAIM_SECONDS) + 60}}
# Workers sweep the database for due deliveries themselves (postbacks/loops/worker.py)
# and run jobs in their own process.
RQ = {"WORKER_CLASS": "postbacks.loops.worker.DeliveryWorker"}
# tracker/admin_rq.py registers the dashboard itself: superusers only, with Redis only.
RQ_SHOW_ADMIN_LINK = False

# Behind a TLS-terminating proxy (the production setup of the README).
if env.bool("BEHIND_PROXY", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    USE_X_FORWARDED_HOST = True
if not DEBUG:
    SESSION_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=True)
    CSRF_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=True)
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
    SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
    # Some affiliate networks call plain http and do not follow redirects:
    # the postback API answers on http too, and so does the health check that
    # load balancers probe over plain http.
    SECURE_REDIRECT_EXEMPT = [r"^api/", r"^healthz$", r"^metrics$"]
    SECURE_CONTENT_TYPE_NOSNIFF = True

# Signing in to the admin (tracker/signin.py). django-axes counts failed
# sign-ins per username and address: LOGIN_FAILURE_LIMIT in a row lock that
# username out from that address for LOGIN_LOCKOUT_MINUTES (a failure while
# locked starts the wait again); a superuser lifts a lockout by deleting it
# under Axes > Access attempts. Only the admin's sign-in is counted: the
# public endpoints never authenticate a user.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = datetime.timedelta(minutes=env.int("LOGIN_LOCKOUT_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = (
    "tracker.addresses.client_addr"  # the address PROXY_HOPS says is the caller's
)
AXES_LOCKOUT_CALLABLE = "tracker.signin.locked_out"
AXES_HTTP_RESPONSE_CODE = 429
AXES_VERBOSE = False  # no banner on every start; lockouts are still logged as warnings
AXES_SENSITIVE_PARAMETERS = []  # a lockout's log line names the username and address
# A second factor (TOTP, with recovery codes) is open to every staff user;
# with TWO_FACTOR_REQUIRED superusers and team leads cannot use the admin
# without one.
TWO_FACTOR_REQUIRED = env.bool("TWO_FACTOR_REQUIRED", default=False)
OTP_TOTP_ISSUER = env.str("TWO_FACTOR_ISSUER", default="Postback tracker")
OTP_ADMIN_HIDE_SENSITIVE_DATA = True

# Public base URL used for absolute links in the admin (incoming postback URLs)
# when they are shown outside a request; the request's host is used otherwise.
PUBLIC_URL = env.str("PUBLIC_URL", default="")

# Proxies of ours in front of the app that append the caller's address to
# X-Forwarded-For: the incoming postback IP allowlist checks the address the
# outermost one saw. 0: REMOTE_ADDR is the caller.
PROXY_HOPS = env.int("PROXY_HOPS", default=1 if env.bool("BEHIND_PROXY", default=False) else 0)

# Everything is printed by one console handler whose filter masks the spot's
# postback token in incoming URLs (tracker/logmask.py). Django's own handlers
# for its loggers (a DEBUG-only console, mail_admins, runserver's request
# lines) would print paths unmasked: the "django" loggers go through ours.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"mask_tokens": {"()": "tracker.logmask.MaskTokens"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "filters": ["mask_tokens"]}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django": {"handlers": [], "level": "INFO"},
        "django.server": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "django.db.backends": {"level": "WARNING"},
    },
}

# At most this many outgoing postbacks per spot (seed 000 says 5).
POSTBACKS_MAX_PER_SPOT = env.int("POSTBACKS_MAX_PER_SPOT", default=5)
# Attempts before a delivery is failed (the first send included).
POSTBACKS_MAX_ATTEMPTS = env.int("POSTBACKS_MAX_ATTEMPTS", default=10)
# Multiplies every retry delay; tests set it small so retries take milliseconds.
POSTBACKS_DELAY_SCALE = env.float("POSTBACKS_DELAY_SCALE", default=1.0)
# A receiver's Retry-After is honoured up to this many seconds.
POSTBACKS_RETRY_AFTER_MAX = env.int("POSTBACKS_RETRY_AFTER_MAX", default=3600)
# After this many failed attempts in a row a postback is disabled (0: never).
POSTBACKS_DISABLE_AFTER = env.int("POSTBACKS_DISABLE_AFTER", default=50)
# After a signing secret is rotated the old one keeps signing this many hours.
POSTBACKS_SIGNING_GRACE_HOURS = env.float("POSTBACKS_SIGNING_GRACE_HOURS", default=24.0)
# Each worker's sweeper sends due deliveries from the database this often (seconds).
POSTBACKS_SWEEP_INTERVAL = env.int("POSTBACKS_SWEEP_INTERVAL", default=60)
# /healthz says "late" when a delivery has been overdue this long (seconds).
POSTBACKS_HEALTH_MAX_LAG = env.int("POSTBACKS_HEALTH_MAX_LAG", default=900)
# The embedded delivery loop (no REDIS_URL) wakes when a delivery falls due or
# is written in its process, and looks at least this often for those that
# other processes wrote.
POSTBACKS_EMBEDDED_POLL = env.float("POSTBACKS_EMBEDDED_POLL", default=1.0)
# Requests each delivery loop has in flight at most (one thread each): a slow
# receiver holds only threads, the other receivers' deliveries go on. A loop
# claims twice this many at a time, so it also sets how many deliveries share
# one claim's and one record's statements (bench/deliver.py: 64 sends about
# half as fast again as 32 on PostgreSQL). A receiver that takes fewer at once
# is given a max requests per second.
POSTBACKS_SENDER_THREADS = env.int("POSTBACKS_SENDER_THREADS", default=64)
POSTBACKS_CONNECT_TIMEOUT = env.float("POSTBACKS_CONNECT_TIMEOUT", default=5.0)
POSTBACKS_RESPONSE_CAP = env.int("POSTBACKS_RESPONSE_CAP", default=10_000)
POSTBACKS_ID_HEADER = "X-Delivery-Id"
POSTBACKS_USER_AGENT = "postback-tracker/0.1"
# Targets in private, loopback, link-local, multicast or reserved networks are
# refused unless allowed here (all of them, or a comma separated list of CIDRs).
# A local DEBUG run allows them, so the demo's postback to 127.0.0.1 arrives.
POSTBACKS_ALLOW_PRIVATE_NETWORKS = env.bool("POSTBACKS_ALLOW_PRIVATE_NETWORKS", default=DEBUG)
POSTBACKS_ALLOWED_NETWORKS = env.list("POSTBACKS_ALLOWED_NETWORKS", default=[])
# Base URLs of the ad networks' APIs.
POSTBACKS_PIXEL_URLS = {
    "facebook": env.str("FACEBOOK_API_URL", default="https://graph.facebook.com"),
    "tiktok": env.str("TIKTOK_API_URL", default="https://business-api.tiktok.com"),
    "google": env.str("GA4_API_URL", default="https://www.google-analytics.com"),
    "yandex": env.str("YANDEX_API_URL", default="https://api-metrika.yandex.net"),
}

# Incoming postbacks queued by the web and decided by the workers
# (postbacks/incoming/batches.py): rows per batch, seconds a worker holds a
# batch before another may take it again, seconds a web process keeps a spot
# it read (crm/spots.py), and the age of the oldest queued row
# past which /healthz answers 503.
INCOMING_BATCH = env.int("INCOMING_BATCH", default=200)
# Seconds the loops let queued rows gather into a batch before deciding them
# (postbacks/loops/intake.py); a full batch goes at once.
INCOMING_LINGER = env.float("INCOMING_LINGER", default=0.5)
INCOMING_LEASE = env.float("INCOMING_LEASE", default=60.0)
INCOMING_SPOT_CACHE = env.float("INCOMING_SPOT_CACHE", default=2.0)
INCOMING_BACKLOG_MAX_AGE = env.float("INCOMING_BACKLOG_MAX_AGE", default=120.0)
# The nice value RQ workers take at start: below the web's priority, so that
# on a shared machine the answers come first and the deciding and sending use
# what CPU is left (0: unchanged).
WORKER_NICE = env.int("WORKER_NICE", default=10)

# Log retention (postbacks/loops/retention.py, `manage.py purge_logs`, run daily by
# the delivery loops). Days to keep incoming postback rows and delivery
# attempts; 0 keeps them forever. Never purged: unmatched postbacks younger
# than POSTBACKS_UNMATCHED_LOOKBACK_DAYS (they may still find their client) and
# the attempts of deliveries not finished yet.
INCOMING_KEEP_DAYS = env.int("INCOMING_KEEP_DAYS", default=90)
ATTEMPTS_KEEP_DAYS = env.int("ATTEMPTS_KEEP_DAYS", default=90)
POSTBACKS_UNMATCHED_LOOKBACK_DAYS = env.int("POSTBACKS_UNMATCHED_LOOKBACK_DAYS", default=30)

# Spend pulled from the ad networks' reporting APIs (crm/spend_api.py), per ad
# account of the admin, at the base URLs of POSTBACKS_PIXEL_URLS (the same
# hosts serve the pixels and the reports). Every SPEND_IMPORT_INTERVAL seconds
# the workers pull the last SPEND_IMPORT_DAYS days (today and yesterday: a
# network still corrects yesterday's figures in the morning); 0 turns it off.
SPEND_IMPORT_INTERVAL = env.int("SPEND_IMPORT_INTERVAL", default=3600)
SPEND_IMPORT_DAYS = env.int("SPEND_IMPORT_DAYS", default=2)
# The ECB's daily euro rates (crm/rates.py), fetched by the workers once a day
# from ECB_RATES_URL/eurofxref.zip; a new or changed rate revalues the
# conversions and spend it applies to in the background.
ECB_FETCH = env.bool("ECB_FETCH", default=True)
ECB_RATES_URL = env.str("ECB_RATES_URL", default="https://www.ecb.europa.eu/stats/eurofxref")

# Prometheus metrics at /metrics (tracker/metrics.py), off (404) unless one of
# these is set: a bearer token Prometheus sends (Authorization: Bearer ...),
# and/or the addresses (IPs or CIDR networks, comma separated) that may read
# without it. Under gunicorn every process writes its figures to
# PROMETHEUS_MULTIPROC_DIR (gunicorn.conf.py sets one up when it is not set);
# give the RQ workers the same directory and their deliveries count too.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
METRICS_ALLOWED_IPS = env.list("METRICS_ALLOWED_IPS", default=[])
for _net in METRICS_ALLOWED_IPS:
    try:
        ipaddress.ip_network(_net, strict=False)
    except ValueError as _e:
        raise ImproperlyConfigured(f"METRICS_ALLOWED_IPS: {_e}") from None
