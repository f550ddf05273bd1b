"""The Django example project: ``python -m django runserver --settings example_app.django_app.settings``.

``entitlegate_django`` as the README's Django guide sets it up: the ``ENTITLEGATE`` settings
dict, a ``CUSTOMER`` function (here, the demo sign-in cookie), ``@requires_feature`` on two
views, a ``DENIED`` handler that offers the upgrade, the ``has_feature`` filter and ``features``
context processor in the templates, and ``stripe_webhook`` at ``/stripe/webhook/``.
"""
