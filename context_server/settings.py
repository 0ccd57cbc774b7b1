"""One settings object, built once at the entry point and passed down.

Every environment variable the server reads is declared here, so `docs/configuration.md` and the
docs test can list them from one place.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs

__all__ = ["ENV_VARS", "PROVIDER_NAMES", "Settings"]

#: The providers this server can be built with (`adapters/providers/`), for settings that name one.
PROVIDER_NAMES = ("placeholder", "openai", "stability", "sd_webui", "replicate")

#: Every setting read from the environment, with what it does (kept in step with docs/configuration.md).
ENV_VARS: dict[str, str] = {
    "CONTEXT_SERVER_HOME": "Data directory (context.db, chroma/, images/). Default: the platform user-data dir.",
    "CONTEXT_SERVER_USER": "User id over stdio (default `local`).",
    "CONTEXT_SERVER_WAIT_SECONDS": "How long generate_image waits before returning status running (default 45).",
    "CONTEXT_SERVER_SESSION_IDLE_SECONDS": "Idle time after which a session's layer expires (default 3600).",
    "CONTEXT_SERVER_RATE_LIMIT_PER_MINUTE": "Generations per user per minute (default 30; 0 disables).",
    "CONTEXT_SERVER_DEFAULT_PROVIDER": "Provider for calls that name none and whose profile sets none: "
    "placeholder (default), openai, stability, sd_webui or replicate.",
    "CONTEXT_SERVER_LOG_LEVEL": "Log level for stderr logs (default INFO).",
    "CONTEXT_SERVER_MAX_FRAME_BYTES": "Largest stdio line (one JSON-RPC frame) accepted, in bytes (default 4194304, "
                                      "4 MiB); a longer line is refused with a JSON-RPC error and never held whole.",
    "CONTEXT_SERVER_EMBED_THREADS": "Threads for torch/BLAS in the embedder (default: cores, at most 2).",
    "CONTEXT_SERVER_ALLOWED_HOSTS": "Comma-separated Host values accepted over HTTP ('name:*' for any port); "
                                    "required off loopback, added to the loopback names on loopback.",
    "CONTEXT_SERVER_ALLOWED_ORIGINS": "Comma-separated Origin values accepted over HTTP; required off loopback.",
    "CHROMA_URL": "Use a Chroma server (http://host:port) instead of the embedded index.",
    "CONTEXT_SERVER_VECTOR_CACHE_MB": "Memory for exact in-process copies of the vector collections in use "
                                      "(default 128; 0 turns them off).",
    "CONTEXT_SERVER_MODEL_CACHE": "Where the embedding model's ONNX export is kept (default: models/ in the "
                                  "user cache dir).",
    "OPENAI_API_KEY": "Key for the openai provider.",
    "OPENAI_BASE_URL": "Base URL for the OpenAI API (default https://api.openai.com/v1).",
    "STABILITY_API_KEY": "Key for the stability provider.",
    "STABILITY_BASE_URL": "Base URL for the Stability API (default https://api.stability.ai).",
    "SD_WEBUI_URL": "Base URL of an AUTOMATIC1111/Forge web UI (enables the sd_webui provider).",
    "REPLICATE_API_TOKEN": "Token for the replicate provider.",
    "REPLICATE_BASE_URL": "Base URL for the Replicate API (default https://api.replicate.com/v1).",
}


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, got {raw!r}") from None


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {raw!r}") from None


def _list(env: Mapping[str, str], name: str) -> list[str]:
    return [part.strip() for part in env.get(name, "").split(",") if part.strip()]


@dataclass(frozen=True)
class Settings:
    home: Path
    user: str = "local"
    wait_seconds: float = 45.0
    session_idle_seconds: float = 3600.0
    rate_limit_per_minute: int = 30
    log_level: str = "INFO"
    #: Largest stdio line accepted (see server/frames.py).
    max_frame_bytes: int = 4 * 1024 * 1024
    #: Provider for calls that name none and whose profile sets none (the bundle's "default provider").
    default_provider: str = "placeholder"
    embed_threads: int = 2
    #: Where the embedding model's ONNX export is kept; None: `models/` in the platform user-cache dir.
    model_cache: Path | None = None
    chroma_url: str | None = None
    #: Budget for exact in-process copies of the vector collections in use (see adapters/vector_cache.py).
    vector_cache_mb: int = 128
    allowed_hosts: list[str] = field(default_factory=list)
    allowed_origins: list[str] = field(default_factory=list)
    #: Provider settings, by environment variable name (keys and base URLs).
    provider_env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        env = os.environ if env is None else env
        home = env.get("CONTEXT_SERVER_HOME") or platformdirs.user_data_dir("context-server", appauthor=False)
        values: dict[str, object] = {
            "home": Path(home).expanduser().resolve(),
            "user": env.get("CONTEXT_SERVER_USER", "").strip() or "local",
            "wait_seconds": _float(env, "CONTEXT_SERVER_WAIT_SECONDS", 45.0),
            "session_idle_seconds": _float(env, "CONTEXT_SERVER_SESSION_IDLE_SECONDS", 3600.0),
            "rate_limit_per_minute": _int(env, "CONTEXT_SERVER_RATE_LIMIT_PER_MINUTE", 30),
            "log_level": env.get("CONTEXT_SERVER_LOG_LEVEL", "INFO").upper(),
            "max_frame_bytes": _int(env, "CONTEXT_SERVER_MAX_FRAME_BYTES", 4 * 1024 * 1024),
            "default_provider": env.get("CONTEXT_SERVER_DEFAULT_PROVIDER", "").strip() or "placeholder",
            "embed_threads": _int(env, "CONTEXT_SERVER_EMBED_THREADS", min(os.cpu_count() or 1, 2)),
            "model_cache": Path(env["CONTEXT_SERVER_MODEL_CACHE"]).expanduser().resolve()
            if env.get("CONTEXT_SERVER_MODEL_CACHE") else None,
            "chroma_url": env.get("CHROMA_URL") or None,
            "vector_cache_mb": _int(env, "CONTEXT_SERVER_VECTOR_CACHE_MB", 128),
            "allowed_hosts": _list(env, "CONTEXT_SERVER_ALLOWED_HOSTS"),
            "allowed_origins": _list(env, "CONTEXT_SERVER_ALLOWED_ORIGINS"),
            "provider_env": {
                k: env[k]
                for k in (
                    "OPENAI_API_KEY",
                    "OPENAI_BASE_URL",
                    "STABILITY_API_KEY",
                    "STABILITY_BASE_URL",
                    "SD_WEBUI_URL",
                    "REPLICATE_API_TOKEN",
                    "REPLICATE_BASE_URL",
                )
                if env.get(k)
            },
        }
        values.update(overrides)
        settings = cls(**values)  # type: ignore[arg-type]
        if settings.wait_seconds < 0:
            raise ValueError("CONTEXT_SERVER_WAIT_SECONDS must be 0 or more")
        if settings.max_frame_bytes < 1024:
            raise ValueError("CONTEXT_SERVER_MAX_FRAME_BYTES must be at least 1024 (bytes)")
        if settings.default_provider not in PROVIDER_NAMES:
            raise ValueError(f"CONTEXT_SERVER_DEFAULT_PROVIDER must be one of {', '.join(PROVIDER_NAMES)}, "
                             f"got {settings.default_provider!r}")
        if settings.vector_cache_mb < 0:
            raise ValueError("CONTEXT_SERVER_VECTOR_CACHE_MB must be 0 (off) or more")
        return settings

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
