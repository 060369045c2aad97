"""URLs of the run pages, their controls and downloads."""

from django.urls import path

from runs import views

app_name = "runs"

urlpatterns = [
    path("", views.run_list, name="list"),
    path("compare/", views.run_compare, name="compare"),  # comparison
    path("seats/", views.my_seats, name="my_seats"),  # every seat waiting for the signed-in person
    path("<int:pk>/", views.run_detail, name="detail"),
    path("<int:pk>/events/", views.run_live_events, name="live_events"),  # pages that cannot hold a socket
    path("<int:pk>/calls/", views.run_calls, name="calls"),  # what each model call was sent and answered
    path("<int:pk>/pause/", views.run_pause, name="pause"),
    path("<int:pk>/resume/", views.run_resume, name="resume"),
    path("<int:pk>/cancel/", views.run_cancel, name="cancel"),
    path("<int:pk>/markdown.zip", views.run_markdown_zip, name="markdown_zip"),
    path("<int:pk>/state.json", views.run_state_json, name="state_json"),
    path("<int:pk>/report.html", views.run_report, name="report"),
    path("<int:pk>/search/", views.run_search_page, name="search"),  # its messages, decisions and worlds  # the after-action report, one file
    path("<int:pk>/branch/", views.run_branch, name="branch"),  # branching
    path("<int:pk>/seats/<str:actor>/", views.seat_detail, name="seat"),  # human seats
    path("<int:pk>/seats/<str:actor>/control/", views.seat_control, name="seat_control"),
    path("<int:pk>/seats/<str:actor>/assign/", views.seat_assign, name="seat_assign"),
    path("<int:pk>/seats/<str:actor>/nudge/", views.seat_nudge, name="seat_nudge"),
    path("<int:pk>/notes/", views.run_notes, name="notes"),  # tags and notes
    path("<int:pk>/roles/", views.role_grant, name="role_grant"),  # people with a part in the run
    path("<int:pk>/roles/<int:role_id>/withdraw/", views.role_withdraw, name="role_withdraw"),
]
