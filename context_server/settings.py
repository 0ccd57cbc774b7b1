"""One settings object, built once at the entry point and passed down.

Every environment variable the server reads is one field below (pydantic-settings): its name is the
field's alias and its documentation the field's description, so `ENV_VARS`, `docs/configuration.md`
and the docs test all read the same declarations.

`Settings(home=...)` builds settings from its arguments and defaults only; `Settings.from_env()` reads
the environment (or a mapping standing in for it). An empty variable counts as unset.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import platformdirs
from pydantic import Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from context_server.adapters.providers.env import (
    OPENAI,
    PROVIDER_ENVS,
    REPLICATE,
    SD_WEBUI,
    STABILITY,
    ProviderEnv,
)

__all__ = ["ENV_VARS", "PROVIDER_ENV_VARS", "PROVIDER_NAMES", "Settings"]

#: The providers this server can be built with (`adapters/providers/`), for settings that name one.
PROVIDER_NAMES = ("placeholder", "openai", "stability", "sd_webui", "replicate")


def _default_home() -> Path:
    return Path(platformdirs.user_data_dir("context-server", appauthor=False))


def _default_threads() -> int:
    return min(os.cpu_count() or 1, 2)


def _key(env: ProviderEnv) -> str:
    assert env.key is not None, env.provider
    return env.key


def _setting(alias: str, description: str, default: Any = None, **kwargs: Any) -> Any:
    return Field(default, validation_alias=alias, description=description, **kwargs)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(frozen=True, validate_by_name=True, validate_by_alias=True, extra="ignore",
                                      env_ignore_empty=True)

    home: Path = Field(default_factory=_default_home, validation_alias="CONTEXT_SERVER_HOME",
                       description="Data directory (context.db, chroma/, images/). Default: the platform "
                                   "user-data dir.")
    user: str = _setting("CONTEXT_SERVER_USER", "User id over stdio (default `local`).", "local")
    wait_seconds: float = _setting("CONTEXT_SERVER_WAIT_SECONDS", "How long generate_image waits before "
                                   "returning status running (default 45).", 45.0)
    session_idle_seconds: float = _setting("CONTEXT_SERVER_SESSION_IDLE_SECONDS", "Idle time after which a "
                                           "session's layer expires (default 3600).", 3600.0)
    rate_limit_per_minute: int = _setting("CONTEXT_SERVER_RATE_LIMIT_PER_MINUTE", "Paid generations per "
                                          "user per minute (default 30; 0 disables; the free placeholder is not "
                                          "limited).", 30)
    log_level: str = _setting("CONTEXT_SERVER_LOG_LEVEL", "Log level for stderr logs (default INFO).", "INFO")
    #: Largest stdio line accepted (see server/frames.py).
    max_frame_bytes: int = _setting("CONTEXT_SERVER_MAX_FRAME_BYTES", "Largest stdio line (one JSON-RPC frame) "
                                    "accepted, in bytes (default 4194304, 4 MiB); a longer line is refused with a "
                                    "JSON-RPC error and never held whole.", 4 * 1024 * 1024)
    #: Read-only SQLite connections beside the one writer (see adapters/store.py).
    read_connections: int = _setting("CONTEXT_SERVER_READ_CONNECTIONS", "Read-only SQLite connections the server "
                                     "opens beside its one writer, so reads never wait for a write or for each "
                                     "other (default 4, 0 to 64; 0 reads through the writer connection).", 4)
    #: Provider for calls that name none and whose profile sets none (the bundle's "default provider").
    default_provider: str = _setting("CONTEXT_SERVER_DEFAULT_PROVIDER", "Provider for calls that name none and "
                                     "whose profile sets none: placeholder (default), openai, stability, sd_webui "
                                     "or replicate.", "placeholder")
    embed_threads: int = Field(default_factory=_default_threads, validation_alias="CONTEXT_SERVER_EMBED_THREADS",
                               description="Embedding threads: chunks of a bulk list run side by side on ONNX Runtime (each run uses "
                                           "one thread), or torch/BLAS threads (default: cores, at most 2).")
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias="CONTEXT_SERVER_ALLOWED_HOSTS",
        description="Comma-separated Host values accepted over HTTP ('name:*' for any port); required off "
                    "loopback, added to the loopback names on loopback.")
    allowed_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias="CONTEXT_SERVER_ALLOWED_ORIGINS",
        description="Comma-separated Origin values accepted over HTTP; required off loopback.")
    chroma_url: str | None = _setting("CHROMA_URL", "Use a Chroma server (http://host:port) instead of the "
                                      "embedded index.")
    #: Budget for exact in-process copies of the vector collections in use (see adapters/vector_cache.py).
    vector_cache_mb: int = _setting("CONTEXT_SERVER_VECTOR_CACHE_MB", "Memory for exact in-process copies of the "
                                    "vector collections in use (default 128; 0 turns them off).", 128)
    #: Where the embedding model's ONNX export is kept; None: `models/` in the platform user-cache dir.
    model_cache: Path | None = _setting("CONTEXT_SERVER_MODEL_CACHE", "Where the embedding model's ONNX export "
                                        "is kept (default: models/ in the user cache dir).")
    # The provider variables' names and default base URLs are the adapters' (`adapters/providers/env.py`).
    openai_api_key: str | None = _setting(_key(OPENAI), f"Key for the {OPENAI.provider} provider.")
    openai_base_url: str | None = _setting(OPENAI.base, f"Base URL for the OpenAI API (default {OPENAI.default_base}).")
    stability_api_key: str | None = _setting(_key(STABILITY), f"Key for the {STABILITY.provider} provider.")
    stability_base_url: str | None = _setting(STABILITY.base, "Base URL for the Stability API (default "
                                              f"{STABILITY.default_base}).")
    sd_webui_url: str | None = _setting(SD_WEBUI.base, "Base URL of an AUTOMATIC1111/Forge web UI (enables the "
                                        f"{SD_WEBUI.provider} provider).")
    replicate_api_token: str | None = _setting(_key(REPLICATE), f"Token for the {REPLICATE.provider} provider.")
    replicate_base_url: str | None = _setting(REPLICATE.base, "Base URL for the Replicate API (default "
                                              f"{REPLICATE.default_base}).")

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Arguments only: the environment is read by `from_env`, from the mapping it is given."""
        return (init_settings,)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Settings from `env` (default: `os.environ`); `overrides` win. Bad values raise ValueError naming
        the variable and what it must be."""
        values = _EnvMapping(cls, os.environ if env is None else env)()
        try:
            return cls(**{**values, **overrides})
        except ValidationError as exc:
            raise ValueError(_explain(exc)) from None

    @field_validator("home", "model_cache")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        return None if value is None else value.expanduser().resolve()

    @field_validator("user")
    @classmethod
    def _user(cls, value: str) -> str:
        return value.strip() or "local"

    @field_validator("log_level")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()

    @field_validator("allowed_hosts", "allowed_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("default_provider")
    @classmethod
    def _known_provider(cls, value: str) -> str:
        value = value.strip() or "placeholder"
        if value not in PROVIDER_NAMES:
            raise ValueError(f"must be one of {', '.join(PROVIDER_NAMES)}")
        return value

    @field_validator("max_frame_bytes")
    @classmethod
    def _frame_floor(cls, value: int) -> int:
        if value < 1024:
            raise ValueError("must be at least 1024 (bytes)")
        return value

    @field_validator("read_connections")
    @classmethod
    def _read_pool(cls, value: int) -> int:
        if not 0 <= value <= 64:
            raise ValueError("must be from 0 to 64 (connections)")
        return value

    @field_validator("wait_seconds", "vector_cache_mb")
    @classmethod
    def _not_negative(cls, value: float) -> float:
        if value < 0:
            raise ValueError("must be 0 or more")
        return value

    @property
    def provider_env(self) -> dict[str, str]:
        """Provider keys and base URLs that are set, by environment variable name (what the provider adapters
        read)."""
        return {alias: getattr(self, name) for name, alias in PROVIDER_ENV_VARS.items() if getattr(self, name)}

    @property
    def db_path(self) -> Path:
        return self.home / "context.db"

    @property
    def models_path(self) -> Path:
        """The ONNX export of the embedding model: derived from the installed weights, the same for every
        data directory, so it is kept once per machine (per user) rather than once per data directory."""
        if self.model_cache is not None:
            return self.model_cache
        return Path(platformdirs.user_cache_dir("context-server", appauthor=False)) / "models"

    @property
    def chroma_path(self) -> Path:
        return self.home / "chroma"

    @property
    def images_path(self) -> Path:
        return self.home / "images"


class _EnvMapping(EnvSettingsSource):
    """pydantic-settings' environment source over a given mapping (a test's or a CLI override's) instead of
    `os.environ`."""

    def __init__(self, settings_cls: type[BaseSettings], env: Mapping[str, str]) -> None:
        self._mapping = env
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {name if self.case_sensitive else name.lower(): value for name, value in self._mapping.items()
                if not (self.env_ignore_empty and value == "")}


def _alias(name: str) -> str:
    alias = Settings.model_fields[name].validation_alias
    assert isinstance(alias, str)
    return alias


_WHAT = {"int_parsing": "a whole number", "float_parsing": "a number"}


def _explain(exc: ValidationError) -> str:
    """`CONTEXT_SERVER_WAIT_SECONDS must be a number, got 'soon'`: the variable, not pydantic's field path."""
    parts = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else ""
        name = _alias(field) if field in Settings.model_fields else field
        what = _WHAT.get(error["type"])
        if what:
            parts.append(f"{name} must be {what}, got {error['input']!r}")
        else:
            parts.append(f"{name} {error['msg'].removeprefix('Value error, ')}")
    return "; ".join(parts)


#: Every setting read from the environment, with what it does (the docs test checks each is documented).
ENV_VARS: dict[str, str] = {_alias(name): field.description or "" for name, field in Settings.model_fields.items()}

#: The provider settings, field name → environment variable name (every variable `env.PROVIDER_ENVS` names).
PROVIDER_ENV_VARS: dict[str, str] = {
    name: _alias(name) for name in Settings.model_fields
    if _alias(name) in {var for env in PROVIDER_ENVS for var in (env.key, env.base)}
}
