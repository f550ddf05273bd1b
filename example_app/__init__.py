"""Example apps: one Django project, one Flask app and one Starlette app gating the same features.

They share the demo customers in ``customers.json`` and the small modules beside it:
``catalog`` (what is gated), ``environment`` (embedded fixture or Stripe, memory or Redis),
``signin`` (the demo sign-in cookie) and ``webhooks`` (signed Stripe events the upgrade button
sends). ``python -m example_app.demo`` walks through all three; ``make run-django``,
``make run-flask`` and ``make run-asgi`` serve one on http://127.0.0.1:8000.
"""
