"""The site's URLs plus the account page's, for tests, until scenariolab_site/urls.py includes accounts.urls."""

from django.urls import include, path

from scenariolab_site.urls import urlpatterns as site_urlpatterns

already_included = any(getattr(pattern, "namespace", None) == "accounts" for pattern in site_urlpatterns)
urlpatterns = list(site_urlpatterns) + ([] if already_included else [path("accounts/tokens/", include("accounts.urls"))])
