"""URLs of the test project."""

from django.urls import path, re_path

from entitlegate_django.views import astripe_webhook, stripe_webhook
from tests.django import views

urlpatterns = [
    path("seats/", views.seats),
    path("analytics-export/", views.analytics_export),
    path("metal/", views.metal),
    path("aseats/", views.aseats),
    path("class-seats/", views.SeatsView.as_view()),
    path("class-aseats/", views.AsyncSeatsView.as_view()),
    path("class-metal/", views.MetalView.as_view()),
    path("class-initkwargs/", views.SeatsView.as_view(required_features=("gold",))),
    path("decorated/", views.DecoratedView.as_view()),
    path("adecorated/", views.AsyncDecoratedView.as_view()),
    path("home/", views.home),
    path("lazy/", views.lazy),
    path("me/features/", views.my_features),
    path("me/seats/", views.my_feature_check),
    path("me/afeatures/", views.amy_features),
    path("team/", views.team),
    path("team-of-three/", views.team_of_three),
    path("ateam/", views.ateam),
    path("class-team/", views.TeamView.as_view()),
    path("class-ateam/", views.AsyncTeamView.as_view()),
    path("me/limit/", views.my_limit),
    path("me/alimit/", views.amy_limit),
    path("limit-page/", views.limit_page),
    path("export/", views.export),
    path("aexport/", views.aexport),
    path("big-export/", views.big_export),
    path("class-export/", views.ExportView.as_view()),
    path("pro/checks/", views.checks),
    path("pro/achecks/", views.achecks),
    path("stripe/webhook/", stripe_webhook),
    path("stripe/awebhook/", astripe_webhook),
    re_path(r"^.*$", views.page),
]
