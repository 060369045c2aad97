"""WebSocket routes of the runs app."""

from django.urls import path

from runs.consumers import RunConsumer

websocket_urlpatterns = [
    path("ws/runs/<int:pk>/", RunConsumer.as_asgi()),
]
