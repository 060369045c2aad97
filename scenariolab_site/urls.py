"""URL routes of the site."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, re_path
from django.views.generic import RedirectView

from scenariolab_site.api import api, not_found

admin.autodiscover()  # here, not at start-up (settings: SimpleAdminConfig)

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="scenarios:list"), name="home"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(next_page="login"), name="logout"),
    path("accounts/tokens/", include("accounts.urls")),
    path("scenarios/", include("scenarios.urls")),
    path("runs/", include("runs.urls")),
    path("batches/", include("batches.urls")),
    path("api/", api.urls),
    re_path(r"^api/(?P<rest>.*)$", not_found),
    path("admin/", admin.site.urls),
]
