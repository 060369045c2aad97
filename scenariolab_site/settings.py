"""Settings for Scenario Lab, read from the environment.

The embedded default (SQLite, no servers) needs no configuration; the scale-out profile is switched on by
DATABASE_URL and REDIS_URL (the site issue fills that in).
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    return default if value is None else value.strip().lower() in {"1", "true", "yes", "on"}


DEBUG = env_bool("SCENARIOLAB_DEBUG", True)
# The default key is only for a local, DEBUG, single-user install; a deployment must set its own.
SECRET_KEY = os.environ.get("SCENARIOLAB_SECRET_KEY", "scenariolab-insecure-local-development-key")
if not DEBUG and SECRET_KEY.startswith("scenariolab-insecure"):
    raise RuntimeError("Set SCENARIOLAB_SECRET_KEY when SCENARIOLAB_DEBUG is off.")
ALLOWED_HOSTS = [h for h in os.environ.get("SCENARIOLAB_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",") if h]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "scenarios",
    "runs",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

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

DATA_DIR = Path(os.environ.get("SCENARIOLAB_DATA_DIR", BASE_DIR / "var"))
DATA_DIR.mkdir(parents=True, exist_ok=True)  # SQLite cannot create its own folder
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": DATA_DIR / "scenariolab.sqlite3",
    }
}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "static"

# Where run folders (state JSON and Markdown views) are written.
RUNS_OUTPUT_DIR = Path(os.environ.get("SCENARIOLAB_OUTPUT_DIR", BASE_DIR / "output"))
SCENARIO_LIBRARY_DIR = BASE_DIR / "scenarios" / "library"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("SCENARIOLAB_LOG_LEVEL", "WARNING")},
}
