"""The public names are a contract (../shared/DESIGN.md): an addition or removal shows up here."""

import entitlegate
import entitlegate.testing


def test_all_lists_the_public_names_sorted() -> None:
    assert entitlegate.__all__ == sorted(entitlegate.__all__)
    assert set(entitlegate.__all__) >= {
        "Resolver",
        "StripeSource",
        "StaticSource",
        "MemoryCache",
        "RedisCache",
        "WebhookHandler",
        "WebhookResult",
        "EntitlegateError",
        "SourceUnavailable",
        "InvalidSignature",
        "InvalidPayload",
        "Catalog",
        "CatalogSource",
        "Feature",
        "Decision",
    }
    for name in entitlegate.__all__:
        assert hasattr(entitlegate, name), name


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
