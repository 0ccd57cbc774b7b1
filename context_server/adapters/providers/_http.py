"""One way to call a provider over HTTP: timeouts, safe retries, and errors a user can act on.

The rule that shapes everything here: a retry must never pay twice. So a call is retried only when
the provider cannot have started work on it:

    connect error / connect or pool timeout      retried (the request never left)
    HTTP 429 (rate limit) / HTTP 503              retried, honouring Retry-After (capped)
    HTTP 429 "insufficient_quota"                 not retried: quota
    read timeout, dropped connection, other 5xx   NOT retried: ProviderError(may_have_charged=True)
    401 / 403 / 402 / content policy / other 4xx  not retried: a plain message naming what to fix

Idempotent calls (a GET that polls a job) may also be retried after a read timeout or a 5xx, since
reading a job's state cannot start a second one. Secrets never reach a message: provider error
text is scrubbed of the key values and anything shaped like a key.
"""

from __future__ import annotations

import email.utils
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import anyio
import httpx

from context_server.adapters.providers.base import ProviderHealth
from context_server.adapters.providers.env import ProviderEnv
from context_server.errors import ProviderError

__all__ = [
    "DEFAULT_TIMEOUT",
    "HttpCaller",
    "KeyedHttpProvider",
    "RetryPolicy",
    "SleepFn",
    "error_text",
    "is_content_policy",
]

logger = logging.getLogger(__name__)

SleepFn = Callable[[float], Awaitable[None]]

#: Generation can take a couple of minutes (gpt-image-1 high quality); connecting must not.
DEFAULT_TIMEOUT = httpx.Timeout(connect=10.0, read=180.0, write=60.0, pool=10.0)

_KEYLIKE = re.compile(r"\b(sk-[A-Za-z0-9_\-*]{6,}|r8_[A-Za-z0-9]{6,}|Bearer\s+\S+)")
_CONTENT_POLICY_CODES = {"content_policy_violation", "moderation_blocked", "content_moderation"}
_QUOTA_WORDS = ("insufficient_quota", "billing_hard_limit", "insufficient_balance", "payment required")


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try. `attempts` counts every try, the first one included."""

    attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 8.0
    #: A Retry-After longer than this is not waited for: the caller is told to come back later.
    max_retry_after: float = 30.0


def error_text(response: httpx.Response, limit: int = 300) -> str:
    """The provider's own explanation from an error body, in whichever shape that provider uses."""
    try:
        body: Any = response.json()
    except ValueError:
        return response.text.strip()[:limit]
    parts: list[str] = []
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            parts.append(str(err.get("message") or err.get("code") or ""))
        elif isinstance(err, str):
            parts.append(err)
        errors = body.get("errors")
        if isinstance(errors, list):
            parts.extend(str(e) for e in errors)
        for key in ("detail", "message", "title"):
            if isinstance(body.get(key), str) and not parts:
                parts.append(body[key])
    text = "; ".join(p for p in parts if p) or response.text.strip()
    return text[:limit]


def is_content_policy(response: httpx.Response) -> bool:
    """OpenAI: 400 code content_policy_violation / moderation_blocked; Stability: 403 content_moderation."""
    try:
        body: Any = response.json()
    except ValueError:
        return False
    if not isinstance(body, dict):
        return False
    codes: set[str] = set()
    err = body.get("error")
    if isinstance(err, dict):
        codes.update(str(err.get(k) or "") for k in ("code", "type"))
    codes.add(str(body.get("name") or ""))
    return bool(codes & _CONTENT_POLICY_CODES)


def _retry_after(response: httpx.Response) -> float | None:
    raw = response.headers.get("retry-after")
    if raw is None:
        return None
    raw = raw.strip()
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    parsed = email.utils.parsedate_to_datetime(raw) if raw else None
    if parsed is None:
        return None
    return max(0.0, parsed.timestamp() - time.time())


class HttpCaller:
    """Sends one provider's requests. Built per adapter with the provider's name and key variable.

    `sleep` and `rng` are injectable so tests check the backoff without waiting for it.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        provider: str,
        key_env: str | None,
        secrets: Iterable[str] = (),
        policy: RetryPolicy | None = None,
        sleep: SleepFn | None = None,
        rng: Callable[[], float] = random.random,
        paid: bool = True,
    ) -> None:
        self.client = client
        self.provider = provider
        self.key_env = key_env
        self._secrets = [s for s in secrets if s]
        self.policy = policy or RetryPolicy()
        self.sleep: SleepFn = sleep or anyio.sleep
        self._rng = rng
        #: A free local service (sd_webui) cannot charge; so its messages never say "charged".
        self.paid = paid

    def scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return _KEYLIKE.sub("***", text)

    def _backoff(self, attempt: int) -> float:
        delay: float = min(self.policy.max_delay, self.policy.base_delay * (2.0**attempt))
        return delay * (0.5 + self._rng() / 2)

    def _charged_error(self, what: str) -> ProviderError:
        if self.paid:
            tail = (
                "The provider may have accepted the request, so the call may have been charged; "
                f"check your {self.provider} dashboard before trying again."
            )
        else:
            tail = "A local web UI charges nothing; its console shows what went wrong."
        return ProviderError(f"{self.provider}: {what}. {tail}", may_have_charged=self.paid)

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        json: object = None,
        data: Mapping[str, Any] | None = None,
        files: Mapping[str, Any] | None = None,
        idempotent: bool = False,
        timeout: httpx.Timeout | float | None = None,
    ) -> httpx.Response:
        """Send, retrying only where nothing can have been charged; return a 2xx response or raise."""
        attempts = max(1, self.policy.attempts)
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                response = await self.client.request(
                    method,
                    url,
                    headers=headers,
                    json=json,
                    data=data,
                    files=files,
                    timeout=timeout if timeout is not None else DEFAULT_TIMEOUT,
                )
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                if last:
                    raise ProviderError(
                        f"{self.provider}: could not connect ({type(exc).__name__}) after {attempts} tries; "
                        "the provider looks down or unreachable. Nothing was sent, so nothing was charged.",
                        retryable=True,
                    ) from None
                await self._wait(self._backoff(attempt), f"connect failed ({type(exc).__name__})")
                continue
            except httpx.TimeoutException as exc:
                if idempotent and not last:
                    await self._wait(self._backoff(attempt), "timeout on an idempotent call")
                    continue
                raise self._charged_error(
                    f"timed out waiting for the answer ({type(exc).__name__})"
                ) from None
            except httpx.TransportError as exc:
                if idempotent and not last:
                    await self._wait(self._backoff(attempt), "connection dropped on an idempotent call")
                    continue
                raise self._charged_error(
                    f"the connection dropped after the request was sent ({type(exc).__name__})"
                ) from None

            if response.is_success:
                return response
            status = response.status_code
            if status in (429, 503) and not self._is_quota(response):
                wait = _retry_after(response)
                if wait is not None and wait > self.policy.max_retry_after:
                    raise ProviderError(
                        f"{self.provider}: {self._busy_words(status)}; it asks to wait {wait:.0f} s. "
                        "Nothing was charged; try again later.",
                        retryable=True,
                    )
                if not last:
                    await self._wait(wait if wait is not None else self._backoff(attempt), f"HTTP {status}")
                    continue
                raise ProviderError(
                    f"{self.provider}: {self._busy_words(status)} (HTTP {status}) after {attempts} tries. "
                    "Nothing was charged; try again later.",
                    retryable=True,
                )
            if status >= 500 and idempotent and not last:
                await self._wait(self._backoff(attempt), f"HTTP {status} on an idempotent call")
                continue
            raise self.map_status(response)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _wait(self, seconds: float, why: str) -> None:
        logger.info("%s: %s; retrying in %.2f s", self.provider, why, seconds)
        await self.sleep(seconds)

    @staticmethod
    def _busy_words(status: int) -> str:
        return "rate limit reached" if status == 429 else "the service is temporarily unavailable"

    @staticmethod
    def _is_quota(response: httpx.Response) -> bool:
        low = response.text.lower()
        return any(word in low for word in _QUOTA_WORDS)

    def map_status(self, response: httpx.Response) -> ProviderError:
        """Turn a final non-2xx answer into a message that says what to do."""
        status = response.status_code
        detail = self.scrub(error_text(response))
        name = self.provider
        if is_content_policy(response):
            return ProviderError(
                f"{name}: the request was refused by the provider's content policy"
                + (f" ({detail})" if detail else "")
                + ". Rephrase the prompt or use another image."
            )
        if status == 401 or (status == 403 and self.key_env):
            check = f"check {self.key_env}" if self.key_env else "check the service's access settings"
            return ProviderError(f"{name}: the API key was rejected (HTTP {status}); {check}.")
        if status == 402 or self._is_quota(response):
            return ProviderError(
                f"{name}: out of credits or quota (HTTP {status}); add credits or raise the limit "
                "in the provider's billing settings."
            )
        if status >= 500:
            return self._charged_error(
                f"the provider failed with HTTP {status}" + (f" ({detail})" if detail else "")
            )
        return ProviderError(
            f"{name}: the provider rejected the request (HTTP {status})" + (f": {detail}" if detail else "")
        )


def probe(base: str, path: str, headers: Mapping[str, str], *, base_env: str, key_env: str | None,
          transport: httpx.BaseTransport | None, timeout: float) -> ProviderHealth:
    """GET `base + path` once (no retries, a short timeout): the provider adapters' `health_check`."""
    try:
        with httpx.Client(timeout=timeout, transport=transport) as client:
            response = client.get(base + path, headers=dict(headers))
    except httpx.HTTPError as exc:
        return ProviderHealth(base, base + path, base_env, key_env, error=type(exc).__name__)
    return ProviderHealth(base, base + path, base_env, key_env, status_code=response.status_code)


class KeyedHttpProvider:
    """The wiring every key-authenticated adapter shares: the key and base URL from its settings, an
    `HttpCaller` that redacts the key from errors, and the bearer header, refused with the setting to set
    while no key is configured. Subclasses name their settings in the class attributes."""

    name: str
    #: Where its key and base URL come from (`env.py`).
    env: ClassVar[ProviderEnv]
    #: An endpoint that costs nothing (listing models, account details), for `health_check`.
    probe_path: ClassVar[str]

    def __init__(
        self,
        settings_env: dict[str, str],
        client: httpx.AsyncClient,
        *,
        sleep: SleepFn | None = None,
        policy: RetryPolicy | None = None,
    ) -> None:
        env = self.env
        if env.key is None or env.default_base is None:
            raise TypeError(f"{type(self).__name__}.env must name a key variable and a default base URL")
        self.key_env, self.base_env = env.key, env.base
        self._key = settings_env.get(env.key, "")
        self._base = (settings_env.get(env.base) or env.default_base).rstrip("/")
        self._http = HttpCaller(
            client, provider=self.name, key_env=self.key_env, secrets=[self._key], policy=policy, sleep=sleep
        )

    def _setup_hint(self, hint: str = "") -> str:
        """Empty when configured, else what to set."""
        return "" if self._key else (hint or f"set {self.key_env}")

    def health_check(self, *, transport: httpx.BaseTransport | None = None,
                     timeout: float = 3.0) -> ProviderHealth | None:
        return probe(self._base, self.probe_path, {"Authorization": f"Bearer {self._key}"}, base_env=self.base_env,
                     key_env=self.key_env, transport=transport, timeout=timeout)

    def _bearer(self) -> dict[str, str]:
        if not self._key:
            raise ProviderError(f"{self.name} is not configured: set {self.key_env}")
        return {"Authorization": f"Bearer {self._key}"}
