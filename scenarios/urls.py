"""URLs of the scenario pages."""

from django.urls import path

from scenarios import views

app_name = "scenarios"

urlpatterns = [
    path("", views.scenario_list, name="list"),
    path("gallery/", views.scenario_gallery, name="gallery"),
    path("new/", views.scenario_new, name="new"),
    path("check/", views.scenario_check, name="check"),
    path("<slug:slug>/", views.scenario_detail, name="detail"),
    path("<slug:slug>/versions/", views.scenario_versions, name="versions"),
    path("<slug:slug>/duplicate/", views.scenario_duplicate, name="duplicate"),
    path("<slug:slug>/edit/", views.scenario_edit, name="edit"),
    path("<slug:slug>/try/", views.scenario_try, name="try"),
    path("<slug:slug>/preview/", views.scenario_preview, name="preview"),
]
