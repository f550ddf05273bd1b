"""Settings of the Django example project. Which Stripe and cache: ``example_app.environment``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from example_app import environment

try:
    ENV = environment.from_env()
except ValueError as error:
    raise ImproperlyConfigured(str(error)) from None

SECRET_KEY = "example-app-only-not-a-secret"  # signs nothing here: the demo keeps no sessions
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "example_app.django_app.urls"
USE_TZ = True
DATABASES: dict[str, Any] = {}  # nothing to store: customers come from the fixture or Stripe

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",  # for redirect_to_login, which sends a request without a customer to LOGIN_URL
    "entitlegate_django",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "entitlegate_django.middleware.EntitlementMiddleware",
]
LOGIN_URL = "signin"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [Path(__file__).with_name("templates")],
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "entitlegate_django.context_processors.features",
                "example_app.django_app.views.layout",
            ],
        },
    }
]

ENTITLEGATE: dict[str, Any] = {
    "WEBHOOK_SECRET": ENV.webhook_secret,
    "CUSTOMER": "example_app.django_app.views.demo_customer",
    "DENIED": "example_app.django_app.views.upgrade_offer",
}
if ENV.uses_stripe:
    # The usual set-up: entitlegate builds a StripeSource and the cache from these keys.
    ENTITLEGATE |= {
        "STRIPE_API_KEY": ENV.stripe_api_key,
        "STRIPE_API_BASE": ENV.stripe_api_base,
        "CACHE": ENV.cache_url or "memory",
    }
else:
    # The embedded demo: a ready Resolver on the fixture takes the place of the Stripe keys.
    ENTITLEGATE["RESOLVER"] = "example_app.environment.resolver_from_env"
