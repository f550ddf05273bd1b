"""Every Python snippet in README.md runs as written.

How the README is read, so that a snippet added later is covered without touching this file:

- The README is split into sections at its ``## `` headings; a section's ```` ```python ````
  blocks are its snippets, in order.
- Every snippet must compile (top-level ``await`` allowed, as in a notebook or an async REPL).
- A framework's guide (the sections named in ``GUIDES``) is also *run*: its snippets are executed
  in order in one namespace, as a reader pasting them into one module would, and the app they build
  is then driven through the framework's own test client. A function a snippet defines whose name
  starts with ``test_`` is a test the README recommends: it is called, its arguments filled by name
  from ``FIXTURES``.
- A snippet whose first line names a file (``# extensions.py``) is that file of the reader's
  project: it is written to a temporary directory on ``sys.path`` for later snippets to import.
- Names a guide leaves to the reader (their sign-in backend, an endpoint, the app their factory
  makes) come from the guide's fixture (``asgi_prelude``, ``flask_guide``); environment variables
  a snippet reads are set for the run.
- The Django guide runs in a child process (Django's settings belong to a whole process, and this
  one is configured for ``tests/django``): its files make a project, its other snippets one module.
- A snippet that cannot run on its own (a fragment of a settings dict, ``{..., "KEY": ...}``) is
  marked in the README by an HTML comment on the line before its fence, which renders as nothing:
  ``<!-- readme-test: skip (why) -->``. It is neither compiled nor run.
"""

from __future__ import annotations

import ast
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
SKIP = re.compile(r"<!--\s*readme-test:\s*skip\b.*?-->")
FENCE = re.compile(r"^```(\w*)\s*$")
FILE_HEADER = re.compile(r"#\s*([\w/]+\.py)\s*$")  # the first line of a snippet that is a whole file


@dataclass(frozen=True)
class Snippet:
    section: str  # the "## " heading it is under
    line: int  # where its code starts in README.md, for the failure message
    code: str
    skipped: bool

    @property
    def name(self) -> str:
        return f"README.md:{self.line} ({self.section})"


def snippets(text: str) -> list[Snippet]:
    """The README's python blocks, each with its section and whether it is marked to skip."""
    found: list[Snippet] = []
    section = ""
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("## "):
            section = line[3:].strip()
        fence = FENCE.match(line)
        if fence is None:
            index += 1
            continue
        end = next(i for i in range(index + 1, len(lines)) if lines[i].startswith("```"))
        if fence.group(1) == "python":
            before = next((lines[i] for i in range(index - 1, -1, -1) if lines[i].strip()), "")
            code = "\n".join(lines[index + 1 : end]) + "\n"
            found.append(Snippet(section, index + 2, code, SKIP.search(before) is not None))
        index = end + 1
    return found


ALL = snippets(README.read_text(encoding="utf-8"))


def test_the_readme_has_python_snippets_in_every_guide() -> None:
    sections = {snippet.section for snippet in ALL}
    assert set(GUIDES) <= sections, f"a guide's heading changed: {set(GUIDES) - sections}"


@pytest.mark.parametrize("snippet", [s for s in ALL if not s.skipped], ids=lambda s: s.name)
def test_every_snippet_compiles(snippet: Snippet) -> None:
    try:
        compile(snippet.code, snippet.name, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)
    except SyntaxError as error:
        pytest.fail(f"{snippet.name} does not compile ({error}); mark a fragment <!-- readme-test: skip (why) -->")


def run_guide(
    section: str,
    prelude: dict[str, Any],
    files: Path | None = None,
    after_files: Callable[[dict[str, Any]], None] | None = None,
) -> Iterator[tuple[Snippet, dict[str, Any]]]:
    """Execute the section's snippets in order in one namespace; yield the namespace after each.

    A snippet whose first line names a file (``# extensions.py``) is that file: it is written under
    ``files`` (on ``sys.path``) instead, for the snippets after it to import; before the first
    snippet that is no file, ``after_files(namespace)`` sets up what the reader does with them.
    """
    namespace: dict[str, Any] = {"__name__": "readme_guide", **prelude}
    wrote_files = False
    for snippet in ALL:
        if snippet.section != section or snippet.skipped:
            continue
        header = FILE_HEADER.match(snippet.code.splitlines()[0])
        if header is not None and files is not None:
            path = files / header.group(1)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(snippet.code, encoding="utf-8")
            wrote_files = True
            continue
        if wrote_files and after_files is not None:
            after_files(namespace)
            after_files = None
        try:
            exec(compile(snippet.code, snippet.name, "exec", dont_inherit=True), namespace)
        except Exception as error:
            raise AssertionError(f"{snippet.name} fails when run as written: {error!r}") from error
        yield snippet, namespace


def call_readme_tests(namespace: dict[str, Any], fixtures: dict[str, Any]) -> list[str]:
    """Call every ``test_*`` function the snippets defined, arguments by name; the names called."""
    called = []
    for name, value in list(namespace.items()):
        if name.startswith("test_") and callable(value) and getattr(value, "__module__", None) == "readme_guide":
            arguments = value.__code__.co_varnames[: value.__code__.co_argcount]
            value(**{argument: fixtures[argument] for argument in arguments})
            called.append(name)
    return called


# -- Starlette, FastAPI and any ASGI app -----------------------------------------------------------

ASGI = "Starlette, FastAPI and any ASGI app (`entitlegate_asgi`)"


def asgi_prelude() -> dict[str, Any]:
    """What the ASGI guide leaves to the reader: a sign-in backend and an endpoint."""
    from starlette.authentication import AuthCredentials, AuthenticationBackend, SimpleUser
    from starlette.requests import HTTPConnection, Request
    from starlette.responses import PlainTextResponse, Response

    class Customer(SimpleUser):
        def __init__(self, stripe_customer_id: str) -> None:
            super().__init__(stripe_customer_id)
            self.stripe_customer_id = stripe_customer_id

    class MyBackend(AuthenticationBackend):
        """Signs the request in as the customer named by an ``x-customer`` header."""

        async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, SimpleUser] | None:
            customer = conn.headers.get("x-customer")
            return None if customer is None else (AuthCredentials(["authenticated"]), Customer(customer))

    async def pro_home(request: Request) -> Response:
        return PlainTextResponse("pro")

    return {"MyBackend": MyBackend, "pro_home": pro_home}


def signed_in_as(customer: str) -> dict[str, str]:
    return {"x-customer": customer}


@pytest.fixture
def asgi_guide(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The namespace the ASGI guide builds, with every ``app`` it assigned, in order, under ``apps``."""
    from tests.asgi.support import TestClient  # noqa: F401 - Starlette's TestClient imported as the suite does
    from tests.stripe_events import SECRET

    # A key that is never used (features are pinned), and the secret the tests sign events with.
    monkeypatch.setitem(os.environ, "STRIPE_API_KEY", "sk_test_readme")
    monkeypatch.setitem(os.environ, "STRIPE_WEBHOOK_SECRET", SECRET)
    apps: list[Any] = []
    namespace: dict[str, Any] = {}
    for _, namespace in run_guide(ASGI, asgi_prelude()):
        app = namespace.get("app")
        if app is not None and (not apps or apps[-1] is not app):
            apps.append(app)
    return {**namespace, "apps": apps}


def test_the_asgi_guides_starlette_app_gates_its_rules(asgi_guide: dict[str, Any]) -> None:
    from entitlegate.testing import override_features
    from tests.asgi.support import TestClient

    starlette_app = asgi_guide["apps"][0]
    client = TestClient(starlette_app)
    with override_features(asgi_guide["resolver"], {"cus_1": {"seats-feature"}, "cus_2": set()}):
        assert client.get("/pro").status_code == 401
        assert client.get("/pro", headers=signed_in_as("cus_2")).status_code == 403
        assert client.get("/pro", headers=signed_in_as("cus_1")).text == "pro"


def test_the_asgi_guides_webhook_applies_a_signed_event(asgi_guide: dict[str, Any]) -> None:
    from tests.asgi.support import TestClient
    from tests.stripe_events import signed, summary_event

    body, signature = signed(summary_event("cus_hook", ["seats-feature"]))
    client = TestClient(asgi_guide["apps"][0])

    response = client.post("/stripe/webhook", content=body, headers={"stripe-signature": signature})

    assert response.json()["action"] == "applied"
    assert client.get("/pro", headers=signed_in_as("cus_hook")).text == "pro"


def test_the_asgi_guides_fastapi_app_gates_its_endpoints(asgi_guide: dict[str, Any]) -> None:
    from entitlegate.testing import override_features
    from tests.asgi.support import TestClient

    fastapi_app = asgi_guide["apps"][-1]
    client = TestClient(fastapi_app)
    with override_features(asgi_guide["resolver"], {"cus_1": {"seats-feature", "analytics"}, "cus_2": set()}):
        assert client.get("/seats", headers=signed_in_as("cus_1")).json() == {
            "features": ["analytics", "seats-feature"]
        }
        assert client.get("/seats", headers=signed_in_as("cus_2")).status_code == 403
        assert client.get("/export", headers=signed_in_as("cus_2")).status_code == 403
        assert client.get("/seats").status_code == 401


def test_the_asgi_guides_own_tests_pass(asgi_guide: dict[str, Any]) -> None:
    called = call_readme_tests(asgi_guide, {"signed_in_as": signed_in_as})

    assert called, "the ASGI guide's testing section shows no test"


# -- Flask ----------------------------------------------------------------------------------------

FLASK = "Flask in 5 minutes"


@pytest.fixture
def flask_guide(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """The namespace the Flask guide builds: its files as modules, its views on the reader's app."""
    import importlib
    import sys

    monkeypatch.syspath_prepend(str(tmp_path))

    def reader_sets_up(namespace: dict[str, Any]) -> None:
        # What the guide leaves to the reader: the app made by its factory, Flask-Login's user
        # (here from an x-customer header), and the upgrade.html its denied handler renders.
        from flask_login import LoginManager, UserMixin
        from jinja2 import DictLoader

        app = importlib.import_module("app").create_app()

        class User(UserMixin):
            def __init__(self, stripe_customer_id: str) -> None:
                self.id = self.stripe_customer_id = stripe_customer_id

        login_manager = LoginManager(app)
        login_manager.request_loader(
            lambda request: User(request.headers["x-customer"]) if "x-customer" in request.headers else None
        )
        app.jinja_loader = DictLoader({"upgrade.html": "upgrade for {{ feature }}"})
        namespace.update(app=app, entitlements=importlib.import_module("extensions").entitlements)

    namespace: dict[str, Any] = {}
    try:
        for _, namespace in run_guide(FLASK, {}, tmp_path, reader_sets_up):  # noqa: B007 - the last one
            pass
        yield namespace
    finally:
        if "app" in namespace:
            from entitlegate.cache.redis import RedisCache

            cache = namespace["app"].extensions["entitlegate"].resolver.cache
            if isinstance(cache, RedisCache):  # the guide's ENTITLEGATE_CACHE: release its clients
                cache.close()
        for module in ("app", "extensions"):
            sys.modules.pop(module, None)


def test_the_flask_guides_app_gates_its_views(flask_guide: dict[str, Any]) -> None:
    from entitlegate.testing import override_features

    app = flask_guide["app"]
    client = app.test_client()
    with override_features(app.extensions["entitlegate"].resolver, {"cus_1": {"seats-feature"}, "cus_2": set()}):
        assert client.get("/seats", headers=signed_in_as("cus_1")).status_code == 200
        denied = client.get("/seats", headers=signed_in_as("cus_2"))
        assert (denied.status_code, denied.text) == (403, "upgrade for seats-feature")
        assert client.get("/api/plan", headers=signed_in_as("cus_1")).json == {
            "features": ["seats-feature"],
            "sso": False,
        }


def test_the_flask_guides_own_tests_pass(flask_guide: dict[str, Any]) -> None:
    called = call_readme_tests(flask_guide, {"app": flask_guide["app"], "signed_in_as": signed_in_as})

    assert called, "the Flask guide's testing section shows no test"


# -- Django ---------------------------------------------------------------------------------------

DJANGO = "Django in 5 minutes"

# The reader's side of a Django project built from the guide: settings on top of the guide's
# settings.py, a user signed in from an x-customer header (the reader's own user model has the
# stripe_customer_id field), and URLs for the guide's views beside the guide's urls.py.
DJANGO_PROJECT = """
from django.urls import path
from settings import *  # noqa: F403 - the guide's settings.py

import guide
import urls

SECRET_KEY = "readme-test"
DEBUG = False
ALLOWED_HOSTS = ["testserver"]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
INSTALLED_APPS = ["django.contrib.contenttypes", *INSTALLED_APPS]  # noqa: F405
MIDDLEWARE = [*MIDDLEWARE]  # noqa: F405
MIDDLEWARE.insert(MIDDLEWARE.index("django.contrib.auth.middleware.AuthenticationMiddleware") + 1, "project.signed_in")
ROOT_URLCONF = "project"
USE_TZ = True


class Customer:
    is_authenticated = True

    def __init__(self, stripe_customer_id):
        self.stripe_customer_id = stripe_customer_id


def signed_in(get_response):
    def middleware(request):
        if "x-customer" in request.headers:
            request.user = Customer(request.headers["x-customer"])
        return get_response(request)

    return middleware


urlpatterns = [*urls.urlpatterns, path("seats/", guide.seats), path("account/", guide.account)]
"""

DJANGO_DRIVER = """
import json
import sys

import django

django.setup()

from django.test import Client

import guide
from entitlegate_django.testing import override_features
from tests.stripe_events import signed, summary_event

client = Client()
seen = {}
with override_features({"cus_1": {"seats-feature"}, "cus_2": set()}):
    seen["seats as cus_1"] = client.get("/seats/", HTTP_X_CUSTOMER="cus_1").status_code
    seen["seats as cus_2"] = client.get("/seats/", HTTP_X_CUSTOMER="cus_2").status_code
    seen["seats signed out"] = client.get("/seats/").status_code
    seen["account as cus_1"] = json.loads(client.get("/account/", HTTP_X_CUSTOMER="cus_1").content)
body, signature = signed(summary_event("cus_hook", ["seats-feature"]))
delivered = client.post("/stripe/webhook/", body, content_type="application/json", HTTP_STRIPE_SIGNATURE=signature)
seen["webhook"] = json.loads(delivered.content).get("action")
seen["seats as cus_hook"] = client.get("/seats/", HTTP_X_CUSTOMER="cus_hook").status_code
for name, value in vars(guide).items():
    if name.startswith("test_") and callable(value):
        value(client)
        seen.setdefault("readme tests", []).append(name)
json.dump(seen, sys.stdout)
"""


def test_the_django_guide_runs_as_a_project(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    from tests.stripe_events import SECRET

    guide = []
    for snippet in ALL:
        if snippet.section != DJANGO or snippet.skipped:
            continue
        header = FILE_HEADER.match(snippet.code.splitlines()[0])
        if header is None:
            guide.append(f"# {snippet.name}\n{snippet.code}")
            continue
        path = tmp_path / header.group(1)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(snippet.code, encoding="utf-8")
        for package in path.relative_to(tmp_path).parents:
            if package != Path("."):
                (tmp_path / package / "__init__.py").touch()
    # The snippets that are no file run in one module, as pasted into one views module.
    (tmp_path / "guide.py").write_text("\n".join(guide), encoding="utf-8")
    (tmp_path / "project.py").write_text(DJANGO_PROJECT, encoding="utf-8")
    root = Path(__file__).resolve().parent.parent
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(root), str(root / "integrations")]),
        "DJANGO_SETTINGS_MODULE": "project",
        "STRIPE_API_KEY": "sk_test_readme",
        "STRIPE_WEBHOOK_SECRET": SECRET,
    }

    ran = subprocess.run(
        [sys.executable, "-c", DJANGO_DRIVER], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )

    assert ran.returncode == 0, f"the Django guide fails when run as written:\n{ran.stderr}"
    assert json.loads(ran.stdout) == {
        "seats as cus_1": 200,
        "seats as cus_2": 403,
        "seats signed out": 302,
        "account as cus_1": {"features": ["seats-feature"]},
        "webhook": "applied",
        "seats as cus_hook": 200,
        "readme tests": ["test_team_page"],
    }


GUIDES = (ASGI, FLASK, DJANGO)
