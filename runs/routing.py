"""WebSocket routes of the runs app."""

from django.urls import path

from runs.consumers import RunConsumer, RunStreamConsumer, SeatsConsumer

websocket_urlpatterns = [
    path("ws/runs/<int:pk>/", RunConsumer.as_asgi()),
    path("api/runs/<int:pk>/stream", RunStreamConsumer.as_asgi()),
    path("ws/seats/", SeatsConsumer.as_asgi()),
]
