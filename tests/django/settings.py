"""The Django project the entitlegate_django tests run against (DJANGO_SETTINGS_MODULE)."""

from pathlib import Path

from tests.stripe_events import SECRET

SECRET_KEY = "entitlegate-tests-only"
DEBUG = False
ALLOWED_HOSTS = ["testserver", "shop.example"]
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
ROOT_URLCONF = "tests.django.urls"
LOGIN_URL = "/login/"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "entitlegate_django",
]

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "tests.django.middleware.LoadUser",
    "entitlegate_django.middleware.EntitlementMiddleware",
]

DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [Path(__file__).resolve().parent / "templates"],
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "entitlegate_django.context_processors.features",
            ],
        },
    }
]

# The fake Stripe's address is only known at run time: conftest.py adds STRIPE_API_BASE.
ENTITLEGATE = {
    "STRIPE_API_KEY": "sk_test_fake_123",
    "WEBHOOK_SECRET": SECRET,
    "CUSTOMER": "tests.django.customers.customer_of",
    "RULES": {"/pro": "seats-feature", "/pro/reports": ["analytics", "export"]},
}
