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
    path("stripe/webhook/", stripe_webhook),
    path("stripe/awebhook/", astripe_webhook),
    re_path(r"^.*$", views.page),
]
