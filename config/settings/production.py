"""Production: PostgreSQL + Redis, gunicorn behind TLS. Passes `manage.py check --deploy`.

Refuses to start (one ``Configuration error: …`` line per problem) without PostgreSQL, a shared
cache, a shared broker, an https public base URL and a CONSENT_HASH_KEY of its own."""

from config.environment import configuration_errors, production_problems

from .base import *  # noqa: F403
from .base import env

DEBUG = False
SECRET_KEY = env.str("SECRET_KEY")
_problems = production_problems(
    database=DATABASES["default"],  # noqa: F405
    cache=CACHES["default"],  # noqa: F405
    broker_url=CELERY_BROKER_URL,  # noqa: F405
    public_base_url=CIBLE_PUBLIC_BASE_URL,  # noqa: F405
    consent_hash_key=CONSENT_HASH_KEY,  # noqa: F405
    secret_key=SECRET_KEY,
)
if _problems:
    configuration_errors(_problems)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS")
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=60 * 60 * 24 * 365)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
# STORAGES: base.py's (WhiteNoise, compressed and hashed static files). The image collects
# them at build time, so a file missing from the manifest is a bug to see at once.
WHITENOISE_MANIFEST_STRICT = True

# Probes answer over plain HTTP inside the network (healthchecks, Prometheus).
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]

# Structured logs: one JSON object per line (time, level, logger, message, extras), for a log
# shipper; LOG_FORMAT=plain keeps the human format.
if env.str("LOG_FORMAT", default="json") == "json":
    LOGGING["formatters"]["json"] = {  # noqa: F405
        "()": "pythonjsonlogger.json.JsonFormatter",
        "fmt": "%(asctime)s %(levelname)s %(name)s %(process)d %(message)s",
        "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
    }
    LOGGING["handlers"]["console"]["formatter"] = "json"  # noqa: F405

# Database metrics (queries, errors, connections) for Prometheus, through django-prometheus'
# instrumented PostgreSQL backend (same driver and behaviour).
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":  # noqa: F405
    DATABASES["default"]["ENGINE"] = "django_prometheus.db.backends.postgresql"  # noqa: F405
