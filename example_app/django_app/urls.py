"""URLs of the Django example project."""

from django.urls import path

from entitlegate_django.views import stripe_webhook
from example_app.django_app import views

urlpatterns = [
    path("", views.home, name="home"),
    path("signin/", views.signin, name="signin"),
    path("signout/", views.signout, name="signout"),
    path("seats/", views.seats, name="seats"),
    path("analytics/", views.analytics, name="analytics"),
    path("team/", views.team, name="team"),
    path("team/seats/", views.add_seat, name="add-seat"),
    path("exports/", views.exports, name="exports"),
    path("exports/run/", views.run_export, name="run-export"),
    path("api/features/", views.features_json, name="features-json"),
    path("upgrade/", views.grant, name="grant"),
    path("reread/", views.reread, name="reread"),
    path("stripe/webhook/", stripe_webhook, name="stripe-webhook"),
]
