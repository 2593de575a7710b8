from django.urls import path

from dashboard import views

app_name = "dashboard"
urlpatterns = [
    path("", views.overview, name="overview"),
    path("state.json", views.state, name="state"),
    path("invariants.json", views.invariants, name="invariants"),
    path("deadletters/replay", views.DeadLettersReplay.as_view(), name="deadletters-replay"),
    path("deadletters/discard", views.DeadLettersDiscard.as_view(), name="deadletters-discard"),
]
