"""What each remote provider reads from the environment: the one home of those variable names.

`settings.py` declares a setting for each variable below, the adapters read their key and base URL under
these names (`Settings.provider_env`), `doctor` names them in its advice (`ProviderHealth`) and the Claude
Desktop bundle (`packaging/build_bundle.py`) asks the user for them: all of them read this table. It
imports nothing, so reading settings at start-up costs no provider import.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["OPENAI", "PROVIDER_ENVS", "REPLICATE", "SD_WEBUI", "STABILITY", "ProviderEnv"]


@dataclass(frozen=True)
class ProviderEnv:
    provider: str
    #: The variable holding the API key or token; None when the provider needs none.
    key: str | None
    #: The variable holding the base URL.
    base: str
    #: The base URL while `base` is unset; None when setting `base` is what enables the provider.
    default_base: str | None
    #: What the user sets, in words ("OpenAI API key"), and what it is for: the bundle's form shows both.
    title: str
    purpose: str

    @property
    def enabled_by(self) -> str:
        """The variable whose value turns the provider on: its key, or its base URL when it needs no key."""
        return self.key or self.base


OPENAI = ProviderEnv("openai", "OPENAI_API_KEY", "OPENAI_BASE_URL", "https://api.openai.com/v1",
                     "OpenAI API key", "For the openai provider (gpt-image-1, DALL-E).")
STABILITY = ProviderEnv("stability", "STABILITY_API_KEY", "STABILITY_BASE_URL", "https://api.stability.ai",
                        "Stability AI API key", "For the stability provider.")
SD_WEBUI = ProviderEnv("sd_webui", None, "SD_WEBUI_URL", None, "Stable Diffusion web UI address",
                       "For the sd_webui provider: the address of your AUTOMATIC1111/Forge server, "
                       "e.g. http://127.0.0.1:7860.")
REPLICATE = ProviderEnv("replicate", "REPLICATE_API_TOKEN", "REPLICATE_BASE_URL", "https://api.replicate.com/v1",
                        "Replicate API token", "For the replicate provider (FLUX models).")

#: In the order `build_remote_providers` builds them.
PROVIDER_ENVS = (OPENAI, STABILITY, SD_WEBUI, REPLICATE)
