"""Settings shared by every run mode. The environment is read here, and only here.

Defaults give the embedded mode: a SQLite file under ``var/`` and Celery on the kombu
filesystem transport under ``var/broker/``; production sets ``DATABASE_URL`` and
``CELERY_BROKER_URL`` (see docker-compose.yml and docs/operations.md).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

import environ
from django.templatetags.static import static
from django.utils.translation import gettext_lazy as _

from config.environment import broker_settings, database_settings

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(environ.Env().str("CIBLE_VAR_DIR", default=str(BASE_DIR / "var")))

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env.str("SECRET_KEY", default="insecure-embedded-development-key-change-me")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "unfold",  # the workspace design of the admin (docs/decisions.md); before django.contrib.admin
    "unfold.contrib.filters",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",  # runserver leaves /static/ to WhiteNoise (compressed files)
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "django_celery_beat",
    "django_prometheus",
    "ops",
    "contacts",
    "consent",
    "segments",
    "segments.ml",
    "segments.scoring",
    "activation",
    "activation.journeys",
    "experiments",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "contacts.middleware.DatabaseBusyMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

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

DATABASES = {"default": database_settings(env, default_sqlite=VAR_DIR / "cible.sqlite3")}
# The events' (type, occurred_at) index INCLUDEs contact_id on PostgreSQL (an index-only scan for
# segment event conditions); SQLite builds the same index without the included column, which is
# all the warning says.
SILENCED_SYSTEM_CHECKS = ["models.W040"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# Marketers work in French and English; French is the default language of the product.
LANGUAGE_CODE = env.str("LANGUAGE_CODE", default="fr")
LANGUAGES = [("fr", _("French")), ("en", _("English"))]

# --- workspace (django-unfold over the Django admin; docs/decisions.md) ---
# The sidebar groups pages by task and shows each person what their role may open
# (ops/navigation.py); the header carries the language switch and the light/dark theme.
# unfold's login form posts no "next" when the login page was opened directly: land on the
# dashboard, not Django's default /accounts/profile/ (a 404 here).
LOGIN_REDIRECT_URL = "admin:index"
UNFOLD = {
    "SITE_TITLE": _("Cible"),
    "SITE_HEADER": _("Cible"),
    "SITE_SUBHEADER": _("campaign activation"),
    "SITE_SYMBOL": "campaign",
    "DASHBOARD_CALLBACK": "ops.dashboard.dashboard_callback",
    "SHOW_LANGUAGES": True,
    "SHOW_HISTORY": True,
    "STYLES": [lambda request: static("cible/workspace.css")],
    "SIDEBAR": {
        "show_search": True,
        "show_all_applications": False,
        "navigation": "ops.navigation.sidebar",
    },
}
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env.str("TIME_ZONE", default="Europe/Paris")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env.path("STATIC_ROOT", default=VAR_DIR / "static")
STATICFILES_DIRS = [BASE_DIR / "static"]
# Static files are served by WhiteNoise from STATIC_ROOT, collected with their gzip variants and
# content-hashed names (cached for a year); production and the demo run collectstatic first
# (the Dockerfile, run_demo). Tests use plain storage (config/settings/test.py; see
# docs/decisions.md). A file missing from the manifest (collectstatic not run yet, e.g. a
# management command) keeps its plain URL instead of failing the page.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
WHITENOISE_MANIFEST_STRICT = False
# Serve the collected (compressed) files even with DEBUG, not the app folders' originals.
WHITENOISE_USE_FINDERS = False
WHITENOISE_AUTOREFRESH = False
Path(STATIC_ROOT).mkdir(parents=True, exist_ok=True)
MEDIA_URL = "media/"
MEDIA_ROOT = env.path("MEDIA_ROOT", default=VAR_DIR / "media")

CACHES = {"default": env.cache_url("CACHE_URL", default="locmemcache://")}

# --- Celery -------------------------------------------------------------------------------
_broker = broker_settings(env, default_folder=VAR_DIR / "broker")
CELERY_BROKER_URL = _broker["url"]
CELERY_BROKER_TRANSPORT_OPTIONS = _broker["transport_options"]
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default=None)
CELERY_TASK_IGNORE_RESULT = CELERY_RESULT_BACKEND is None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    "contacts.tasks.*": {"queue": "ingest"},
    "segments.ml.*": {"queue": "ml"},
    "segments.tasks.*": {"queue": "segments"},
    "activation.tasks.*": {"queue": "send"},
}
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
# django-celery-beat's DatabaseScheduler, made to survive a database outage (ops/beat.py).
CELERY_BEAT_SCHEDULER = "ops.beat:ResilientDatabaseScheduler"
# Producers give up on an unreachable broker after this many seconds (then say so).
CELERY_BROKER_CONNECTION_TIMEOUT = env.float("CELERY_BROKER_CONNECTION_TIMEOUT", default=4.0)
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE = {
    "worker-heartbeat": {"task": "ops.tasks.record_worker_heartbeat", "schedule": 60.0},
    # The send queue's workers report too: /readyz checks every queue of OPS_READY_QUEUES.
    "worker-heartbeat-send": {
        "task": "ops.tasks.record_worker_heartbeat",
        "schedule": 60.0,
        "options": {"queue": "send"},
    },
}
# --- ops (readiness, beat) ---
# /readyz answers 503 when beat's heartbeat, a queue's freshest worker heartbeat, or the oldest
# due outbox message is older than these (seconds), or when a check fails (see ops/health.py).
OPS_READY_BEAT_MAX_AGE_SECONDS = env.float("OPS_READY_BEAT_MAX_AGE_SECONDS", default=120.0)
# (the send queue's heartbeat can wait behind delivery tasks of up to ACTIVATION_TASK_BUDGET_SECONDS)
OPS_READY_WORKER_MAX_AGE_SECONDS = env.float("OPS_READY_WORKER_MAX_AGE_SECONDS", default=300.0)
OPS_READY_QUEUE_MAX_AGE_SECONDS = env.float("OPS_READY_QUEUE_MAX_AGE_SECONDS", default=900.0)
OPS_READY_QUEUES = env.list("OPS_READY_QUEUES", default=["default", "send"])
OPS_READY_TIMEOUT_SECONDS = env.float("OPS_READY_TIMEOUT_SECONDS", default=2.0)
# Beat: retry interval while the database is down, and how often it records its heartbeat.
OPS_BEAT_DB_RETRY_SECONDS = env.float("OPS_BEAT_DB_RETRY_SECONDS", default=5.0)
OPS_BEAT_HEARTBEAT_SECONDS = env.float("OPS_BEAT_HEARTBEAT_SECONDS", default=15.0)
# /metrics (Prometheus): when set, scrapers must send "Authorization: Bearer <token>".
OPS_METRICS_TOKEN = env.str("OPS_METRICS_TOKEN", default="")

# --- REST API -----------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "ops.api_schema.CibleAutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "contacts.api_keys.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["contacts.api_keys.HasScope"],
    # JSON nested too deeply is a 400, not a RecursionError (config/api_json.py).
    "DEFAULT_PARSER_CLASSES": [
        "config.api_json.BoundedDepthJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Cible API",
    "DESCRIPTION": "Contacts, events, consent, segments and experiment results.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "APPEND_COMPONENTS": {
        "securitySchemes": {"ApiKey": {"type": "apiKey", "in": "header", "name": "Authorization"}}
    },
    "SECURITY": [{"ApiKey": []}],
}

# --- Cible domain defaults ----------------------------------------------------------------
CIBLE_DEFAULT_COUNTRY = env.str("CIBLE_DEFAULT_COUNTRY", default="FR")
CIBLE_PURCHASE_EVENT_TYPE = env.str("CIBLE_PURCHASE_EVENT_TYPE", default="purchase")
CIBLE_PURCHASE_AMOUNT_PROPERTY = env.str("CIBLE_PURCHASE_AMOUNT_PROPERTY", default="amount")
# The home dashboard: contactable audience per channel is counted for this purpose; revenue
# is shown with this currency symbol.
CIBLE_DASHBOARD_PURPOSE = env.str("CIBLE_DASHBOARD_PURPOSE", default="newsletter")
CIBLE_CURRENCY_SYMBOL = env.str("CIBLE_CURRENCY_SYMBOL", default="€")
# The dashboard's audience and send counts are kept this long in the cache (0: always fresh).
CIBLE_DASHBOARD_CACHE_SECONDS = env.int("CIBLE_DASHBOARD_CACHE_SECONDS", default=300)
# Beat recounts them this often into the cache (0: never; visits count on a cache miss).
CIBLE_DASHBOARD_REFRESH_SECONDS = env.int("CIBLE_DASHBOARD_REFRESH_SECONDS", default=240)
if CIBLE_DASHBOARD_REFRESH_SECONDS > 0:
    CELERY_BEAT_SCHEDULE["ops-dashboard-counts"] = {
        "task": "ops.tasks.refresh_dashboard_counts",
        "schedule": float(CIBLE_DASHBOARD_REFRESH_SECONDS),
    }

EMAIL_CONFIG = env.email_url("EMAIL_URL", default="filemail://" + str(VAR_DIR / "mail"))
vars().update(EMAIL_CONFIG)
if EMAIL_BACKEND == "django.core.mail.backends.filebased.EmailBackend":  # noqa: F821
    # Embedded mail sink: one .eml file per message (the admin's "Sent messages" page reads
    # them), in the folder as written in the URL — "filemail:///abs/path" stays absolute
    # (django-environ drops that leading slash).
    EMAIL_BACKEND = "activation.channels.mailsink.EmlDirectoryBackend"
    _mail_url = urlsplit(env.str("EMAIL_URL", default="filemail://" + str(VAR_DIR / "mail")))
    EMAIL_FILE_PATH = unquote(_mail_url.netloc + _mail_url.path)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Cible <no-reply@cible.localhost>")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# --- App sections. Each app's settings live in its own block below (read from the environment
# here, nowhere else). Keep edits inside your app's block.

# --- contacts (ingestion) ---
# Events naming an unknown contact create an anonymous profile (True) or are rejected (False).
CIBLE_INGEST_CREATE_UNKNOWN_CONTACTS = env.bool(
    "CIBLE_INGEST_CREATE_UNKNOWN_CONTACTS", default=True
)
# IANA zone applied to timestamps without UTC offset; empty = such timestamps are rejected.
CIBLE_INGEST_DEFAULT_TIMEZONE = env.str("CIBLE_INGEST_DEFAULT_TIMEZONE", default="")
# Largest request body the bulk API reads (bytes); larger bodies get 413 before parsing.
CIBLE_API_MAX_BODY_BYTES = env.int("CIBLE_API_MAX_BODY_BYTES", default=32 * 1024 * 1024)
# Provider webhooks: per-provider HMAC-SHA256 secrets ("sendgrid=s3cret,twilio=…"), replay window.
CIBLE_WEBHOOK_SECRETS = env.dict("CIBLE_WEBHOOK_SECRETS", default={})
CIBLE_WEBHOOK_TOLERANCE_SECONDS = env.int("CIBLE_WEBHOOK_TOLERANCE_SECONDS", default=300)
# Tracking endpoint /t/e: browser origins allowed (CORS) and requests per minute per client IP.
CIBLE_TRACKING_ALLOWED_ORIGINS = env.list("CIBLE_TRACKING_ALLOWED_ORIGINS", default=[])
CIBLE_TRACKING_RATE_PER_MINUTE = env.int("CIBLE_TRACKING_RATE_PER_MINUTE", default=600)
# Event types a browser may send to /t/e (after the alias table); "web_*" = any type with that
# prefix. Provider feedback (bounces, complaints, deliveries, unsubscribes…) is never accepted there.
CIBLE_TRACKING_EVENT_TYPES = env.list(
    "CIBLE_TRACKING_EVENT_TYPES",
    default=[
        "page_view",
        "product_view",
        "cart_updated",
        "checkout_started",
        "search",
        "form_submit",
        "signup",
        "app_open",
        "web_*",
    ],
)
CELERY_BEAT_SCHEDULE["contacts-duplicate-report"] = {
    "task": "contacts.tasks.duplicate_report",
    "schedule": 24 * 3600.0,
}
# PostgreSQL: events are partitioned by month; beat creates the partitions of the current
# month and this many months ahead (daily, idempotent), so no event lands in the DEFAULT partition.
CONTACTS_EVENT_PARTITIONS_AHEAD = env.int("CONTACTS_EVENT_PARTITIONS_AHEAD", default=3)
CELERY_BEAT_SCHEDULE["contacts-event-partitions-ahead"] = {
    "task": "contacts.tasks.event_partitions_ahead",
    "schedule": 24 * 3600.0,
}

# --- consent ---
# Absolute base of links put in messages (unsubscribe, preference centre, double opt-in,
# tracking). Embedded mode: the address the demo serves (PORT, or run_demo --port).
CIBLE_PUBLIC_BASE_URL = env.str(
    "CIBLE_PUBLIC_BASE_URL", default=f"http://127.0.0.1:{env.int('PORT', default=8000)}"
)
# Key of the HMAC kept for erased people's email/phone (defaults to one derived from SECRET_KEY).
CONSENT_HASH_KEY = env.str("CONSENT_HASH_KEY", default="")
CONSENT_DOUBLE_OPT_IN_MAX_AGE_DAYS = env.int("CONSENT_DOUBLE_OPT_IN_MAX_AGE_DAYS", default=7)
CONSENT_LINK_MAX_AGE_DAYS = env.int("CONSENT_LINK_MAX_AGE_DAYS", default=400)
# Retention (CNIL guidance for prospects): events 25 months, contacts 3 years without interaction.
CONSENT_RETENTION_EVENTS_DAYS = env.int("CONSENT_RETENTION_EVENTS_DAYS", default=761)
CONSENT_RETENTION_INACTIVE_CONTACT_DAYS = env.int(
    "CONSENT_RETENTION_INACTIVE_CONTACT_DAYS", default=1095
)
# The nightly purge only reports (dry run) unless this is true.
CONSENT_RETENTION_APPLY = env.bool("CONSENT_RETENTION_APPLY", default=False)
CONSENT_SMS_STOP_WORDS = env.list(
    "CONSENT_SMS_STOP_WORDS",
    default=["STOP", "STOP SMS", "STOPSMS", "ARRET", "ARRETER", "UNSUBSCRIBE", "DESABONNER"],
)
# Event properties kept (for aggregates) when a contact is erased; everything else is dropped.
CONSENT_ERASURE_KEEP_EVENT_PROPERTIES = env.list(
    "CONSENT_ERASURE_KEEP_EVENT_PROPERTIES", default=["amount", "category", "currency"]
)
CELERY_BEAT_SCHEDULE["consent-retention-purge"] = {
    "task": "consent.tasks.retention_purge",
    "schedule": 24 * 3600.0,
}

# --- segments ---
# Engagement score: sum over events of weight[type] * 0.5 ** (age_days / half_life).
SEGMENTS_ENGAGEMENT_WEIGHTS = env.json(
    "SEGMENTS_ENGAGEMENT_WEIGHTS",
    default={
        "email_open": 1.0,
        "email_click": 3.0,
        "page_view": 0.5,
        "app_open": 1.0,
        "push_click": 2.0,
        "cart_updated": 2.0,
    },
)
SEGMENTS_ENGAGEMENT_HALF_LIFE_DAYS = env.float("SEGMENTS_ENGAGEMENT_HALF_LIFE_DAYS", default=30.0)
# Warnings in the admin: segments smaller than this, or above this share of all contacts.
SEGMENTS_MIN_SIZE = env.int("SEGMENTS_MIN_SIZE", default=50)
SEGMENTS_MAX_SHARE = env.float("SEGMENTS_MAX_SHARE", default=0.9)
# Real-time re-evaluation when events arrive (contacts.signals.events_ingested).
SEGMENTS_REALTIME = env.bool("SEGMENTS_REALTIME", default=True)
CELERY_BEAT_SCHEDULE["segments-refresh-features-incremental"] = {
    "task": "segments.tasks.refresh_features_incremental",
    "schedule": env.float("SEGMENTS_INCREMENTAL_EVERY_SECONDS", default=300.0),
}
CELERY_BEAT_SCHEDULE["segments-refresh-features-full"] = {
    "task": "segments.tasks.refresh_features_full",
    "schedule": env.float("SEGMENTS_FULL_REFRESH_EVERY_SECONDS", default=86_400.0),
}
CELERY_BEAT_SCHEDULE["segments-compute"] = {
    "task": "segments.tasks.compute_segments",
    "schedule": env.float("SEGMENTS_COMPUTE_EVERY_SECONDS", default=900.0),
}

# --- activation ---
# Tracking pixels and click redirects use CIBLE_PUBLIC_BASE_URL (consent block) as their base.
# SMS: "file:///dir" (embedded sink, one JSON line per SMS), "console://", or an https URL of a
# Brevo-shaped transactional SMS endpoint (POST JSON, header "api-key").
SMS_PROVIDER_URL = env.str("SMS_PROVIDER_URL", default="file://" + str(VAR_DIR / "sms"))
SMS_PROVIDER_API_KEY = env.str("SMS_PROVIDER_API_KEY", default="")
SMS_PROVIDER_TIMEOUT = env.float("SMS_PROVIDER_TIMEOUT", default=10.0)
SMS_SENDER_ID = env.str("SMS_SENDER_ID", default="Cible")
SMS_STOP_MENTION = env.str("SMS_STOP_MENTION", default="STOP au 36111")
# Push: with VAPID_PRIVATE_KEY set, Web Push (pywebpush); otherwise "file:///dir" or "console://".
VAPID_PRIVATE_KEY = env.str("VAPID_PRIVATE_KEY", default="")
VAPID_PUBLIC_KEY = env.str("VAPID_PUBLIC_KEY", default="")
VAPID_SUBJECT = env.str("VAPID_SUBJECT", default="mailto:admin@cible.localhost")
PUSH_SINK_URL = env.str("PUSH_SINK_URL", default="file://" + str(VAR_DIR / "push"))
PUSH_TIMEOUT = env.float("PUSH_TIMEOUT", default=10.0)
# Delivery: rows claimed per batch, lease of a claim (renewed every third of it while the worker
# holds the batch, so a dead worker's rows come back within one lease), retries (exponential
# backoff + jitter) for ACTIVATION_RETRY_WINDOW_HOURS after the first attempt (and at most
# ACTIVATION_MAX_ATTEMPTS attempts when that is above 0).
ACTIVATION_BATCH_SIZE = env.int("ACTIVATION_BATCH_SIZE", default=500)
ACTIVATION_LEASE_SECONDS = env.float("ACTIVATION_LEASE_SECONDS", default=30.0)
ACTIVATION_MAX_ATTEMPTS = env.int("ACTIVATION_MAX_ATTEMPTS", default=0)
ACTIVATION_RETRY_WINDOW_HOURS = env.float("ACTIVATION_RETRY_WINDOW_HOURS", default=24.0)
# Consent/suppression re-checked right before hand-off for the next N messages, and again when
# that check is older than ACTIVATION_CONSENT_RECHECK_MS milliseconds.
ACTIVATION_CONSENT_RECHECK_SLICE = env.int("ACTIVATION_CONSENT_RECHECK_SLICE", default=25)
ACTIVATION_CONSENT_RECHECK_MS = env.float("ACTIVATION_CONSENT_RECHECK_MS", default=200.0)
# A lost database connection is retried (reconnect + backoff) this long before a task gives up.
ACTIVATION_DB_RETRY_SECONDS = env.float("ACTIVATION_DB_RETRY_SECONDS", default=120.0)
# Circuit breaker per channel (see activation/breaker.py): N retryable failures in a row within
# the window open it for the cooldown, doubled at each reopening up to the maximum.
ACTIVATION_BREAKER_FAILURES = env.int("ACTIVATION_BREAKER_FAILURES", default=10)
ACTIVATION_BREAKER_WINDOW_SECONDS = env.int("ACTIVATION_BREAKER_WINDOW_SECONDS", default=120)
ACTIVATION_BREAKER_COOLDOWN_SECONDS = env.float("ACTIVATION_BREAKER_COOLDOWN_SECONDS", default=15.0)
ACTIVATION_BREAKER_MAX_COOLDOWN_SECONDS = env.float(
    "ACTIVATION_BREAKER_MAX_COOLDOWN_SECONDS", default=300.0
)
ACTIVATION_RETRY_BASE_SECONDS = env.float("ACTIVATION_RETRY_BASE_SECONDS", default=30.0)
ACTIVATION_RETRY_MAX_SECONDS = env.float("ACTIVATION_RETRY_MAX_SECONDS", default=3600.0)
ACTIVATION_DELIVERY_TASKS = env.int("ACTIVATION_DELIVERY_TASKS", default=4)
ACTIVATION_TASK_BUDGET_SECONDS = env.float("ACTIVATION_TASK_BUDGET_SECONDS", default=120.0)
# Messages per second per channel (token bucket; in Redis when ACTIVATION_RATE_LIMIT_REDIS_URL
# or a redis:// broker is configured, else per process). 0 = unlimited.
ACTIVATION_RATE_LIMITS = {
    "email": env.float("EMAIL_RATE_PER_SECOND", default=0.0),
    "sms": env.float("SMS_RATE_PER_SECOND", default=20.0),
    "push": env.float("PUSH_RATE_PER_SECOND", default=0.0),
}
ACTIVATION_RATE_LIMIT_REDIS_URL = env.str(
    "ACTIVATION_RATE_LIMIT_REDIS_URL",
    default=CELERY_BROKER_URL if CELERY_BROKER_URL.startswith("redis") else "",
)
# Redis unreachable: each process limits itself to this share of the rate (0 = 1 / number of
# delivery tasks) and tries Redis again after this many seconds.
ACTIVATION_RATE_LIMIT_FALLBACK_SHARE = env.float(
    "ACTIVATION_RATE_LIMIT_FALLBACK_SHARE", default=0.0
)
ACTIVATION_RATE_LIMIT_RETRY_SECONDS = env.float("ACTIVATION_RATE_LIMIT_RETRY_SECONDS", default=5.0)
# Frequency caps: at most N messages per window (days), per channel and over all channels.
ACTIVATION_FREQUENCY_CAPS = {
    "email": env.int("FREQUENCY_CAP_EMAIL", default=3),
    "sms": env.int("FREQUENCY_CAP_SMS", default=2),
    "push": env.int("FREQUENCY_CAP_PUSH", default=5),
    "global": env.int("FREQUENCY_CAP_GLOBAL", default=7),
}
ACTIVATION_FREQUENCY_WINDOW_DAYS = env.int("FREQUENCY_CAP_WINDOW_DAYS", default=7)
# Conversions (these event types) are credited to the last message sent within the window.
ACTIVATION_CONVERSION_EVENT_TYPES = env.list(
    "CONVERSION_EVENT_TYPES", default=[CIBLE_PURCHASE_EVENT_TYPE, "conversion"]
)
ACTIVATION_ATTRIBUTION_WINDOW_HOURS = env.int("ATTRIBUTION_WINDOW_HOURS", default=72)
# Opens from these networks / user agents are flagged machine opens (Apple MPP, scanners).
ACTIVATION_MACHINE_OPEN_NETWORKS = env.list("MACHINE_OPEN_NETWORKS", default=["17.0.0.0/8"])
# Apple MPP fetches with the bare user agent "Mozilla/5.0" (exact match); scanners by substring.
ACTIVATION_MACHINE_OPEN_EXACT_USER_AGENTS = env.list(
    "MACHINE_OPEN_EXACT_USER_AGENTS", default=["Mozilla/5.0", ""]
)
ACTIVATION_MACHINE_OPEN_USER_AGENTS = env.list(
    "MACHINE_OPEN_USER_AGENTS", default=["Barracuda", "Mimecast", "Proofpoint", "python-requests"]
)
CELERY_BEAT_SCHEDULE["activation-outbox-sweep"] = {
    "task": "activation.tasks.outbox_sweep",
    "schedule": 30.0,
}

# --- experiments ---
# How often beat asks the auto-winner to decide experiments whose wait is over (seconds).
CELERY_BEAT_SCHEDULE["experiments-auto-winner"] = {
    "task": "experiments.tasks.decide_auto_winners",
    "schedule": env.float("EXPERIMENTS_AUTO_WINNER_EVERY_SECONDS", default=300.0),
}
# Full recompute of assignment outcomes from events (pages refresh incrementally anyway).
CELERY_BEAT_SCHEDULE["experiments-refresh-outcomes"] = {
    "task": "experiments.tasks.refresh_outcomes",
    "schedule": env.float("EXPERIMENTS_REFRESH_OUTCOMES_EVERY_SECONDS", default=3600.0),
}
# Incremental catch-up between the full passes: a results page then refreshes inline only
# the events of the last few minutes.
CELERY_BEAT_SCHEDULE["experiments-catch-up-outcomes"] = {
    "task": "experiments.tasks.catch_up_outcomes",
    "schedule": env.float("EXPERIMENTS_CATCH_UP_OUTCOMES_EVERY_SECONDS", default=300.0),
}

# --- segments.scoring ---
# Predictive scores (CLV, churn, purchase propensity) and cohorts; see docs/predictive.md.
CELERY_TASK_ROUTES["segments.scoring.*"] = {"queue": "ml"}
# CLV: fewest customers (people with a purchase before the calibration end) a fit accepts,
# future horizon of expected purchases / CLV, and the monthly discount rate of the CLV.
SCORING_CLV_MIN_CUSTOMERS = env.int("SCORING_CLV_MIN_CUSTOMERS", default=200)
SCORING_CLV_HORIZON_DAYS = env.int("SCORING_CLV_HORIZON_DAYS", default=365)
SCORING_CLV_MONTHLY_DISCOUNT = env.float("SCORING_CLV_MONTHLY_DISCOUNT", default=0.01)
# Propensity: horizon of the churn label (no purchase within N days), fewest labelled rows per
# period, most training rows (sampled above), and permutation-importance sample size.
SCORING_CHURN_HORIZON_DAYS = env.int("SCORING_CHURN_HORIZON_DAYS", default=90)
SCORING_PURCHASE_HORIZON_DAYS = env.int("SCORING_PURCHASE_HORIZON_DAYS", default=30)
SCORING_MIN_TRAINING_ROWS = env.int("SCORING_MIN_TRAINING_ROWS", default=200)
SCORING_MAX_TRAINING_ROWS = env.int("SCORING_MAX_TRAINING_ROWS", default=200_000)
# PostgreSQL work_mem of the RFM aggregate (it sorts ~2 rows per purchase day in memory) and of
# the cohort aggregates (one hash entry per buyer and month).
SCORING_SQL_WORK_MEM = env.str("SCORING_SQL_WORK_MEM", default="256MB")
# The cohorts page keeps its table this long in the cache (0: computed on every visit).
SCORING_COHORTS_CACHE_SECONDS = env.int("SCORING_COHORTS_CACHE_SECONDS", default=900)
CELERY_BEAT_SCHEDULE["scoring-refresh-clv"] = {
    "task": "segments.scoring.tasks.refresh_clv",
    "schedule": env.float("SCORING_CLV_EVERY_SECONDS", default=86_400.0),
}
# Beat recomputes the cohorts page's default tables this often (below the cache duration, so a
# visitor finds them ready; skipped with a per-process cache).
CELERY_BEAT_SCHEDULE["scoring-refresh-cohorts"] = {
    "task": "segments.scoring.tasks.refresh_cohorts",
    "schedule": env.float("SCORING_COHORTS_REFRESH_SECONDS", default=600.0),
}
CELERY_BEAT_SCHEDULE["scoring-refresh-propensity"] = {
    "task": "segments.scoring.tasks.refresh_propensity",
    "schedule": env.float("SCORING_PROPENSITY_EVERY_SECONDS", default=86_400.0),
}

# --- segments.ml ---
# Stable identities: a new cluster inherits an old id only if their centroids are closer than
# this (root-mean-square distance in standard deviations of the base).
ML_MATCH_MAX_DISTANCE = env.float("ML_MATCH_MAX_DISTANCE", default=1.5)
# Drift: retrain when a feature's PSI exceeds this, or a cluster's share moves by more than this.
ML_DRIFT_PSI_THRESHOLD = env.float("ML_DRIFT_PSI_THRESHOLD", default=0.2)
ML_DRIFT_SHARE_THRESHOLD = env.float("ML_DRIFT_SHARE_THRESHOLD", default=0.05)
# The ML feature snapshot is derived from per-contact counters that each refresh brings up to
# date by reading only the events stored since the last one; they are rebuilt from every event
# when older than this (hours) — which also forgets events removed by retention.
ML_COUNTERS_REBUILD_HOURS = env.float("ML_COUNTERS_REBUILD_HOURS", default=24.0)
# Retrain at least this often (days) when the model's "retrain monthly or on drift" is on.
ML_RETRAIN_EVERY_DAYS = env.int("ML_RETRAIN_EVERY_DAYS", default=30)
# Points drawn for the admin's projections (PCA 2-D) and for t-SNE (slower: keep it small).
ML_PROJECTION_POINTS = env.int("ML_PROJECTION_POINTS", default=2000)
ML_TSNE_POINTS = env.int("ML_TSNE_POINTS", default=500)
# BLAS/OpenMP threads one training may use (scale out with more `ml` worker processes instead).
ML_THREADS = env.int("ML_THREADS", default=1)
# Optional MLflow logging of every training run (the mlflow package must be installed).
ML_MLFLOW_TRACKING_URI = env.str("MLFLOW_TRACKING_URI", default="")
CELERY_BEAT_SCHEDULE["segments-ml-monitor"] = {
    "task": "segments.ml.tasks.monitor_cluster_models",
    "schedule": env.float("ML_MONITOR_EVERY_SECONDS", default=86_400.0),
}

# --- activation.journeys ---
# Schedules, triggers, workflows, approval and calendar of campaigns; see docs/campaigns.md.
CELERY_TASK_ROUTES["activation.journeys.*"] = {"queue": "send"}
# Campaigns whose audience is larger than this need an approval before their first run.
JOURNEYS_APPROVAL_THRESHOLD = env.int("JOURNEYS_APPROVAL_THRESHOLD", default=10_000)
# A scheduled run missed by more than this (beat down) is not launched late.
JOURNEYS_CATCH_UP_HOURS = env.float("JOURNEYS_CATCH_UP_HOURS", default=6.0)
# Contacts enrolled inline by a trigger signal; more go to a worker task.
JOURNEYS_INLINE_ENROLL_LIMIT = env.int("JOURNEYS_INLINE_ENROLL_LIMIT", default=1000)
# Enrolments moved per statement by the sweep (one transaction each).
JOURNEYS_ADVANCE_CHUNK = env.int("JOURNEYS_ADVANCE_CHUNK", default=100_000)
# PostgreSQL work_mem of a sweep step / run preparation (hashes the eligibility subqueries).
JOURNEYS_WORK_MEM = env.str("JOURNEYS_WORK_MEM", default="256MB")
CELERY_BEAT_SCHEDULE["journeys-advance"] = {
    "task": "activation.journeys.tasks.advance",
    "schedule": env.float("JOURNEYS_ADVANCE_EVERY_SECONDS", default=60.0),
}

# --- ops (access control) ---
from datetime import timedelta  # noqa: E402

# Admin logins: django-axes locks a username from one IP address after LOGIN_FAILURE_LIMIT
# failures in a row, for LOGIN_LOCKOUT_MINUTES (429 "Account locked"); a success resets the count.
# Attempts are stored in the database (shared by every web process); see docs/operations.md.
INSTALLED_APPS += ["axes"]
MIDDLEWARE += ["axes.middleware.AxesMiddleware"]  # last, as django-axes requires
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=10)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("LOGIN_LOCKOUT_MINUTES", default=30))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "ops.access.client_ip"
AXES_VERBOSE = False  # no "AXES: BEGIN version …" line on every command
# Reverse proxies of ours in front of gunicorn (each appends to X-Forwarded-For): 0 = none, the
# client address is REMOTE_ADDR; 1 = one TLS proxy/load balancer, and so on.
CIBLE_TRUSTED_PROXIES = env.int("CIBLE_TRUSTED_PROXIES", default=0)
# API keys: more than API_KEY_FAILURES_PER_WINDOW bad keys from one IP within
# API_KEY_FAILURE_WINDOW_SECONDS → 429 with Retry-After until the window ends (shared cache).
CIBLE_API_KEY_FAILURES_PER_WINDOW = env.int("API_KEY_FAILURES_PER_WINDOW", default=20)
CIBLE_API_KEY_FAILURE_WINDOW_SECONDS = env.int("API_KEY_FAILURE_WINDOW_SECONDS", default=300)
