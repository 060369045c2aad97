"""ASGI entry point (Channels routing joins it in the live-pages issue)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scenariolab_site.settings")
application = get_asgi_application()
