"""Settings for Scenario Lab, read from the environment.

Two profiles from one code base, chosen by what the environment names:
- embedded (default, nothing to set): SQLite in WAL mode, a SQLite-backed Huey queue and a SQLite-backed
  channel layer, each in its own file under SCENARIOLAB_DATA_DIR, so several processes (the web server,
  workers, `manage.py run_scenario`) share them without any server;
- scale-out: DATABASE_URL=postgres://… switches the database to PostgreSQL, REDIS_URL=redis://… switches
  Huey and the channel layer to Redis, so workers can run on several machines.
"""

import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url

from scenariolab_site.lazy import import_without

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    return default if value is None else value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("SCENARIOLAB_DEBUG", True)
# The development key is only for a local, DEBUG, single-user install; a deployment must set its own.
DEVELOPMENT_SECRET_KEY = "scenariolab-insecure-local-development-key"
SECRET_KEY = os.environ.get("SCENARIOLAB_SECRET_KEY", "").strip() or (DEVELOPMENT_SECRET_KEY if DEBUG else "")


def secret_key_problem(key: str) -> str | None:
    """Why a key must not sign a deployment's sessions, if it must not (stricter than `check --deploy`)."""
    if not key:
        return "is not set"
    if key.startswith(("scenariolab-insecure", "django-insecure")):
        return "is a development key"
    if len(key) < 50:
        return f"has {len(key)} characters, fewer than 50"
    if len(set(key)) < 10:
        return f"uses only {len(set(key))} distinct characters"
    return None


if not DEBUG and (problem := secret_key_problem(SECRET_KEY)):
    # One line and no traceback: every request would otherwise answer 500, or sessions be forgeable.
    sys.exit(f"SCENARIOLAB_SECRET_KEY {problem}: with SCENARIOLAB_DEBUG off set it to a long random value, "
             "made with: python -c 'import secrets; print(secrets.token_urlsafe(50))'")
ALLOWED_HOSTS = env_list("SCENARIOLAB_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
# Where people reach the site: the terminal prints run page links with it, and forms posted from it pass the
# CSRF origin check even when a proxy hands the site another Host.
SITE_URL = os.environ.get("SCENARIOLAB_SITE_URL", "http://127.0.0.1:8000").rstrip("/")

# ---- behind a reverse proxy, over TLS ------------------------------------------------------------------------
# A TLS-terminating proxy talks plain HTTP to the site: with SCENARIOLAB_BEHIND_PROXY the site believes its
# X-Forwarded-Proto (so an https:// Origin matches, cookies stay Secure, redirects say https) and takes the
# client's address from X-Forwarded-For (login throttling). Only turn it on behind a proxy that sets them.
BEHIND_PROXY = env_bool("SCENARIOLAB_BEHIND_PROXY", False)
if BEHIND_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
PROXY_COUNT = int(os.environ.get("SCENARIOLAB_PROXY_COUNT", "1" if BEHIND_PROXY else "0"))
CSRF_TRUSTED_ORIGINS = env_list("SCENARIOLAB_CSRF_TRUSTED_ORIGINS") or ["{0.scheme}://{0.netloc}".format(urlsplit(SITE_URL))]
# Cookies only over HTTPS once debug is off (Chromium and Firefox also keep Secure cookies on http://localhost).
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env_bool("SCENARIOLAB_SECURE_COOKIES", not DEBUG)
SECURE_SSL_REDIRECT = env_bool("SCENARIOLAB_SSL_REDIRECT", False)
# HSTS is opt-in: once a browser has seen it, the site cannot go back to plain HTTP for that long.
SECURE_HSTS_SECONDS = int(os.environ.get("SCENARIOLAB_HSTS_SECONDS", "0"))
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SCENARIOLAB_HSTS_INCLUDE_SUBDOMAINS", SECURE_HSTS_SECONDS > 0)
SECURE_HSTS_PRELOAD = env_bool("SCENARIOLAB_HSTS_PRELOAD", SECURE_HSTS_SECONDS > 0)

DATA_DIR = Path(os.environ.get("SCENARIOLAB_DATA_DIR", BASE_DIR / "var"))
DATA_DIR.mkdir(parents=True, exist_ok=True)  # SQLite cannot create its own folder
DATABASE_URL = os.environ.get("DATABASE_URL", "")
REDIS_URL = os.environ.get("REDIS_URL", "")
PROFILE = "scale-out" if DATABASE_URL or REDIS_URL else "embedded"

INSTALLED_APPS = [
    # The admin without autodiscovery at start-up: the site's URL configuration imports each app's admin
    # module (scenariolab_site/urls.py), so commands that serve no page (run_scenario, run_huey) skip them
    # and what they import (branching, V1 import, downloads, batch statistics).
    "django.contrib.admin.apps.SimpleAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "servestatic",
    "axes",
    "channels",
    "ninja",  # serves /api/docs from its own static files (no CDN)
    "rules.apps.AutodiscoverRulesConfig",  # loads each app's rules.py: object permissions (who may see or steer a run)
    "accounts",
    "scenarios",
    "runs",
    "batches",
    "scenariolab_site",  # `migrate` for every database of the profile; deployment checks
    # After the apps: of two apps with a command of one name the first wins, and runs has its own run_huey.
    "huey.contrib.djhuey",
]
# `manage.py runserver` is daphne's (websockets, and static files in DEBUG) when the daphne app comes first.
# Only that command gets it: the app imports Twisted and autobahn on start-up (0.2-0.7 s), which every other
# command (run_scenario, run_huey, migrate…) would pay for nothing. Tests and `daphne` itself serve the
# ASGI application without the app.
if sys.argv[1:2] == ["runserver"]:
    INSTALLED_APPS.insert(0, "daphne")

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # The collected static files (compressed, names with their hash), from the ASGI application itself.
    "servestatic.middleware.ServeStaticMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # last, as django-axes asks: turns a lockout into its answer
]

# ---- signing in --------------------------------------------------------------------------------------------
# django-axes counts failed sign-ins (the login page and the admin's) per username and client address; past
# the limit that pair is refused (HTTP 429) until the cool-off has passed, even with the right password.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "rules.permissions.ObjectPermissionBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_ENABLED = env_bool("SCENARIOLAB_LOGIN_THROTTLE", True)
AXES_FAILURE_LIMIT = int(os.environ.get("SCENARIOLAB_LOGIN_FAILURE_LIMIT", "10"))
AXES_COOLOFF_TIME = float(os.environ.get("SCENARIOLAB_LOGIN_COOLOFF_MINUTES", "15")) / 60  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_DISABLE_ACCESS_LOG = True  # failures are what it needs; a row per successful sign-in is not
AXES_CLIENT_IP_CALLABLE = "scenariolab_site.proxies.client_address"

ROOT_URLCONF = "scenariolab_site.urls"

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

WSGI_APPLICATION = "scenariolab_site.wsgi.application"
ASGI_APPLICATION = "scenariolab_site.asgi.application"


# ---- database ----------------------------------------------------------------------------------------------
def sqlite(path: Path, *, test_path: str | None = None) -> dict:
    """SQLite shared by several processes: WAL lets readers and one writer work at once; IMMEDIATE
    transactions take the write lock up front, so two writers queue on the busy timeout instead of
    failing with "database is locked" when a read transaction tries to become a write."""
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": path,
        "OPTIONS": {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
        "TEST": {"NAME": test_path},  # None: in memory
    }


if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=True)}
    # Django's default, written out: the live-server tests' daphne process derives the name from this,
    # and would otherwise prefix "test_" to a name that has it already.
    DATABASES["default"]["TEST"] = {"NAME": f"test_{DATABASES['default']['NAME']}"}
else:
    DATABASES = {
        "default": sqlite(
            Path(os.environ.get("SCENARIOLAB_DATABASE_PATH", DATA_DIR / "scenariolab.sqlite3")),
            test_path=os.environ.get("SCENARIOLAB_TEST_DATABASE_PATH"),  # a file, for tests with worker processes
        )
    }

# ---- workers (Huey) ----------------------------------------------------------------------------------------
# `immediate` is set explicitly: djhuey would otherwise run tasks in the web process whenever DEBUG is on.
HUEY_IMMEDIATE = env_bool("SCENARIOLAB_HUEY_IMMEDIATE", False)
HUEY_NAME = os.environ.get("SCENARIOLAB_HUEY_NAME", "scenariolab")
if REDIS_URL:
    HUEY = {
        # Runs of different owners take turns (runs.selectors.run_queue_priority): a priority queue, a sorted set
        # under a name of its own, since a Redis list under the plain name may hold an older version's tasks (a
        # worker moves them over at start: runs/management/commands/run_huey.py).
        "huey_class": "huey.PriorityRedisHuey",
        "name": f"{HUEY_NAME}_fair",
        "url": REDIS_URL,
        "immediate": HUEY_IMMEDIATE,
        "consumer": {"workers": int(os.environ.get("SCENARIOLAB_WORKER_THREADS", "2")), "worker_type": "thread"},
    }
else:
    HUEY = {
        "huey_class": "huey.SqliteHuey",
        "name": HUEY_NAME,
        "filename": str(Path(os.environ.get("SCENARIOLAB_QUEUE_PATH", DATA_DIR / "queue.sqlite3"))),
        "immediate": HUEY_IMMEDIATE,
        "consumer": {"workers": int(os.environ.get("SCENARIOLAB_WORKER_THREADS", "2")), "worker_type": "thread"},
    }
# huey's storages import their clients at start-up; a client this profile's database and queue do not use is
# left out of huey (scenariolab_site/lazy.py) and loaded only by whoever else needs it.
import_without("huey.storage", tuple(name for name, used in (("redis", bool(REDIS_URL)),
                                                              ("psycopg", DATABASE_URL.startswith("postgres"))) if not used))

# ---- channel layer (live pages) ----------------------------------------------------------------------------
# Channels' in-memory layer does not cross processes, and a worker publishes what a web process relays.
# A page that falls behind a burst of events (about 90 a turn) must not overflow: the default of 100 pending
# messages per socket is raised. What a layer drops anyway, pages fetch from RunEvent.
CHANNEL_CAPACITY = 1000
if REDIS_URL:
    # redis-py 8 times a socket read out after 5 s, exactly as long as channels-redis blocks waiting for a
    # message (BZPOPMIN, 5 s): on a quiet socket the two race and the consumer dies. Reads get longer.
    # The prefix keeps two sites (or two test processes) on one Redis database out of each other's "run-N".
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer",
                                  "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 30}],
                                             "capacity": CHANNEL_CAPACITY,
                                             "prefix": os.environ.get("SCENARIOLAB_CHANNELS_PREFIX", "asgi")}}}
else:
    INSTALLED_APPS.append("channels_lite")
    DATABASES["channels"] = sqlite(
        Path(os.environ.get("SCENARIOLAB_CHANNELS_PATH", DATA_DIR / "channels.sqlite3")),
        test_path=os.environ.get("SCENARIOLAB_TEST_CHANNELS_PATH"),
    )
    DATABASE_ROUTERS = ["scenariolab_site.db_routers.ChannelLayerRouter"]
    CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_lite.layers.core.SQLiteChannelLayer",
                    # Polled by one task per web process: 20 ms keeps live pages within 100 ms of a run at 50 small
                    # reads a second (a burst of events waits for the next poll: at 50 ms the p95 was 120 ms).
                    "CONFIG": {"database": "channels", "capacity": CHANNEL_CAPACITY, "polling_interval": 0.02}}
    }

# ---- runs --------------------------------------------------------------------------------------------------
# Markdown views of every run, for experts to read: <RUNS_OUTPUT_DIR>/<scenario>/run-NNN/.
RUNS_OUTPUT_DIR = Path(os.environ.get("SCENARIOLAB_OUTPUT_DIR", BASE_DIR / "output"))
SCENARIO_LIBRARY_DIR = BASE_DIR / "scenarios" / "library"
# A worker writes its heartbeat this often; a running run silent for STALE seconds is shown as crashed.
RUN_HEARTBEAT_SECONDS = float(os.environ.get("SCENARIOLAB_HEARTBEAT_SECONDS", "5"))
RUN_STALE_SECONDS = float(os.environ.get("SCENARIOLAB_STALE_SECONDS", "30"))


def env_limit(name: str, default: str, kind: type = float):
    """A quota from the environment: a number, or "none" for no limit."""
    value = os.environ.get(name, default).strip().lower()
    return None if value in ("", "none", "unlimited") else kind(value)


# What a user may start when no quota of theirs or their groups' says otherwise (accounts.Quota, in the admin).
QUOTA_DEFAULTS = {
    "max_credit_limit": env_limit("SCENARIOLAB_QUOTA_MAX_CREDIT_LIMIT", "10"),
    "max_runs_under_way": env_limit("SCENARIOLAB_QUOTA_MAX_RUNS_UNDER_WAY", "4", int),
    "max_batch_runs": env_limit("SCENARIOLAB_QUOTA_MAX_BATCH_RUNS", "200", int),
    "max_batch_budget": env_limit("SCENARIOLAB_QUOTA_MAX_BATCH_BUDGET", "50"),
    "max_batch_parallel": env_limit("SCENARIOLAB_QUOTA_MAX_BATCH_PARALLEL", "4", int),
}
QUOTA_STAFF_UNLIMITED = env_bool("SCENARIOLAB_QUOTA_STAFF_UNLIMITED", True)
# A worker told to stop (SIGTERM, SIGINT) pauses each of its runs between model calls and queues it again; a call
# still in flight after this many seconds is abandoned (the run paused there, queued all the same).
WORKER_STOP_SECONDS = float(os.environ.get("SCENARIOLAB_WORKER_STOP_SECONDS", "30"))
# Response cache: "run" (answers reused within a run, so a resume never pays twice), "shared", or "off".
LLM_CACHE_SCOPE = os.environ.get("SCENARIOLAB_CACHE", "run")
# Call traces: every answered model call of a run kept with its prompt and answer (the run page's "show the call",
# /api/runs/{id}/calls). Each text (a message, an answer) is cut past CALL_TRACE_MAX_CHARS; traces of runs that
# finished more than CALL_TRACE_DAYS days ago are deleted by a daily task (0: kept as long as their run).
CALL_TRACES = env_bool("SCENARIOLAB_CALL_TRACES", True)
CALL_TRACE_MAX_CHARS = int(os.environ.get("SCENARIOLAB_CALL_TRACE_MAX_CHARS", "100000"))
if CALL_TRACE_MAX_CHARS < 100:
    sys.exit(f"SCENARIOLAB_CALL_TRACE_MAX_CHARS is {CALL_TRACE_MAX_CHARS}: give at least 100 characters a text "
             "(or SCENARIOLAB_CALL_TRACES=false to keep no traces)")
CALL_TRACE_DAYS = int(os.environ.get("SCENARIOLAB_CALL_TRACE_DAYS", "0"))

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
# `manage.py collectstatic` gathers every file here, each under a name holding its hash (so a browser may
# keep it for ever) with gzip and brotli copies beside it; with debug off the site serves them from there.
STATIC_ROOT = Path(os.environ.get("SCENARIOLAB_STATIC_ROOT", DATA_DIR / "static"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "servestatic.storage.CompressedManifestStaticFilesStorage"},
}
# Pages only ever name the hashed copies. Source maps are read by developer tools alone: compressing them
# (brotli at its best, 5 MB of API-docs maps) was most of collectstatic's 19 s.
SERVESTATIC_KEEP_ONLY_HASHED_FILES = True
SERVESTATIC_SKIP_COMPRESS_EXTENSIONS = ["map", "jpg", "jpeg", "png", "gif", "webp", "zip", "gz", "br", "woff", "woff2"]
# The JSON API: with this on, anyone may read (GET) without signing in; changes still need a token or a session.
PUBLIC_READ = env_bool("SCENARIOLAB_PUBLIC_READ", False)

# Email: a seat that starts waiting is mailed to its people (runs.notifications). Printed to the console unless
# SCENARIOLAB_EMAIL_HOST names an SMTP server; its password comes from the environment only.
EMAIL_HOST = os.environ.get("SCENARIOLAB_EMAIL_HOST", "")
EMAIL_BACKEND = ("django.core.mail.backends.smtp.EmailBackend" if EMAIL_HOST
                 else "django.core.mail.backends.console.EmailBackend")
EMAIL_PORT = int(os.environ.get("SCENARIOLAB_EMAIL_PORT", "587"))
EMAIL_HOST_USER = os.environ.get("SCENARIOLAB_EMAIL_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("SCENARIOLAB_EMAIL_PASSWORD", "")
EMAIL_USE_TLS = env_bool("SCENARIOLAB_EMAIL_TLS", True)
EMAIL_TIMEOUT = 10
DEFAULT_FROM_EMAIL = os.environ.get("SCENARIOLAB_EMAIL_FROM", "Scenario Lab <scenariolab@localhost>")

# Request size limits. A request body other than a file (JSON, a form such as the batch YAML) is refused past
# DATA_UPLOAD_MAX_MEMORY_SIZE: the API answers 413 in its error shape. Uploaded files are not counted there;
# each upload has its own limit (a scenario zip 10 MB, a V1 run zip 200 MB unpacked), and files past
# FILE_UPLOAD_MAX_MEMORY_SIZE are spooled to a temporary file rather than held in memory.
DATA_UPLOAD_MAX_MEMORY_SIZE = int(os.environ.get("SCENARIOLAB_MAX_REQUEST_BYTES", str(5 * 1024 * 1024)))
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
# The scenario editor sends every field of a scenario's form: a large scenario (8 actors, dozens of metrics and
# events) passes Django's default of 1,000.
DATA_UPLOAD_MAX_NUMBER_FIELDS = 5000
DATA_UPLOAD_MAX_NUMBER_FILES = 10

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("SCENARIOLAB_LOG_LEVEL", "WARNING")},
}
