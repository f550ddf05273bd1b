"""The test project with a typo in ENTITLEGATE (RULSE for RULES), for the start-up tests."""

from tests.django.settings import *  # noqa: F403
from tests.django.settings import ENTITLEGATE as _ENTITLEGATE

ENTITLEGATE = {key: value for key, value in _ENTITLEGATE.items() if key != "RULES"}
ENTITLEGATE["RULSE"] = _ENTITLEGATE["RULES"]
