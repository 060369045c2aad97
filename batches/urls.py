"""URLs of the batch pages and their controls."""

from django.urls import path

from batches import views

app_name = "batches"

urlpatterns = [
    path("", views.batch_list, name="list"),
    path("new/", views.batch_new, name="new"),
    path("<int:pk>/", views.batch_detail, name="detail"),
    path("<int:pk>/live/", views.batch_live, name="live"),
    path("<int:pk>/results.csv", views.batch_results_csv, name="results_csv"),  # one row per run
    path("<int:pk>/results.json", views.batch_results_json, name="results_json"),
    path("<int:pk>/pause/", views.batch_pause, name="pause"),
    path("<int:pk>/resume/", views.batch_resume, name="resume"),
    path("<int:pk>/cancel/", views.batch_cancel, name="cancel"),
]
