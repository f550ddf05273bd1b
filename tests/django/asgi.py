"""The test project as an ASGI application, as ``uvicorn project.asgi:application`` serves a site."""

from django.core.asgi import get_asgi_application

application = get_asgi_application()
