"""The public names are a contract (../shared/DESIGN.md): an addition or removal shows up here."""

import importlib

import pytest

import entitlegate
import entitlegate.testing

# Exactly what each package exports, sorted: an addition or a removal is a change to the contract
# and shows up in review as a change to its line here.
PUBLIC_NAMES = {
    "entitlegate": [
        "AsyncSource",
        "Cache",
        "CacheUnavailable",
        "Catalog",
        "CatalogSource",
        "Decision",
        "EntitlegateError",
        "Entry",
        "Feature",
        "InvalidPayload",
        "InvalidSignature",
        "MemoryCache",
        "MeterEvent",
        "MeterRejected",
        "PortalSessions",
        "RedisCache",
        "Resolver",
        "ResolverStats",
        "Source",
        "SourceUnavailable",
        "StaticSource",
        "StripeSource",
        "WebhookHandler",
        "WebhookResult",
        "__version__",
    ],
    "entitlegate.testing": [
        "customer_deleted_event",
        "override_features",
        "sign",
        "signed",
        "subscription_event",
        "summary_event",
    ],
    "entitlegate.gate": [
        "Answers",
        "Cause",
        "DeniedFeature",
        "Outcome",
        "PortalSessions",
        "Requirement",
        "Rules",
        "Shortfall",
        "UsageShortfall",
        "Verdict",
        "acheck",
        "aportal_url",
        "check",
        "customer_failed",
        "denial_body",
        "denial_cause",
        "denial_shortfall",
        "denial_usage",
        "judge",
        "judge_limit",
        "judge_usage",
        "portal_url",
        "prefers_json",
        "read_customer",
        "safe_features",
        "safe_has_feature",
        "upgrade_body",
    ],
    "entitlegate.entitlements": ["CustomerLookup", "Entitlements"],
    "entitlegate.registry": ["limit_names", "lookup_keys", "names", "register_limit", "register_lookup_keys"],
    "entitlegate.limits": ["LimitRequirement", "UsageRequirement"],
    "entitlegate_django": [
        "FeatureDenied",
        "FeatureRequiredMixin",
        "get_resolver",
        "requires_feature",
        "requires_limit",
        "requires_usage",
    ],
    "entitlegate_flask": [
        "Entitlements",
        "EntitlementsExtension",
        "current_entitlements",
        "portal_redirect",
        "requires_feature",
        "requires_limit",
        "requires_usage",
    ],
    "entitlegate_asgi": [
        "EntitlementMiddleware",
        "Entitlements",
        "RequiresFeature",
        "RequiresLimit",
        "RequiresUsage",
        "portal_upgrade",
        "requires_feature",
        "requires_limit",
        "requires_usage",
        "webhook_app",
    ],
}


@pytest.mark.parametrize("module", sorted(PUBLIC_NAMES))
def test_all_lists_exactly_the_public_names_sorted(module: str) -> None:
    imported = importlib.import_module(module)
    assert imported.__all__ == PUBLIC_NAMES[module]
    assert imported.__all__ == sorted(imported.__all__)
    for name in imported.__all__:
        assert hasattr(imported, name), name


def test_errors_share_one_base() -> None:
    for error in (entitlegate.SourceUnavailable, entitlegate.InvalidSignature, entitlegate.InvalidPayload):
        assert issubclass(error, entitlegate.EntitlegateError)


def test_version_comes_from_the_installed_metadata() -> None:
    from importlib.metadata import version

    assert entitlegate.__version__ == version("entitlegate")


def test_override_features_is_exported_from_testing() -> None:
    from entitlegate.testing import override_features

    assert "override_features" in entitlegate.testing.__all__
    resolver = entitlegate.Resolver(entitlegate.StaticSource({"cus_1": ["basic"]}))
    with override_features(resolver, {"cus_1": {"pinned"}}):
        assert resolver.features("cus_1") == {"pinned"}
    assert resolver.features("cus_1") == {"basic"}


def test_redis_cache_is_exported_lazily() -> None:
    # `import entitlegate` must work without the redis extra; the name imports it on first use.
    from entitlegate.cache.redis import RedisCache

    assert entitlegate.RedisCache is RedisCache
