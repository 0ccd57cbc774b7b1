"""build_remote_providers returns every remote adapter and says which are configured."""

from __future__ import annotations

import httpx
import pytest

from context_server.adapters.providers.remote import build_remote_providers

ENV_FOR = {
    "openai": {"OPENAI_API_KEY": "k"},
    "stability": {"STABILITY_API_KEY": "k"},
    "sd_webui": {"SD_WEBUI_URL": "http://127.0.0.1:7860"},
    "replicate": {"REPLICATE_API_TOKEN": "k"},
}


def test_all_four_are_returned_unconfigured_with_a_setup_hint_naming_the_variable() -> None:
    providers = build_remote_providers({}, httpx.AsyncClient())
    assert [p.name for p in providers] == ["openai", "stability", "sd_webui", "replicate"]
    for provider in providers:
        info = provider.info()
        assert info.configured is False
        assert next(iter(ENV_FOR[provider.name])) in info.setup_hint
        assert info.model(None) is not None, "the default model must be in the table"


@pytest.mark.parametrize("name", sorted(ENV_FOR))
def test_each_is_configured_by_its_own_variable_only(name: str) -> None:
    providers = {p.name: p for p in build_remote_providers(ENV_FOR[name], httpx.AsyncClient())}
    assert {n for n, p in providers.items() if p.info().configured} == {name}
    assert providers[name].info().setup_hint == ""


def test_model_tables_describe_capabilities_and_cost() -> None:
    for provider in build_remote_providers({}, httpx.AsyncClient()):
        for model in provider.info().models:
            described = model.as_dict()
            assert described["cost_usd"] is not None and model.cost_usd >= 0
            assert model.text_to_image or model.mask, f"{provider.name}/{model.name} can do nothing"
