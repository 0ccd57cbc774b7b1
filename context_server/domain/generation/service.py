"""generate_image and edit_image, read top to bottom once:

validate → idempotency check → enrich → resolve provider/model/size → dry run? → budget → job row →
provider (in a background task) → save file → record image (`Images.record`, which queues it for the index),
usage (`UsageLedger.record`) and the completed job (`Jobs.complete`) in one transaction →
index → result with receipt.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import anyio

from context_server.adapters.files import ImageFiles, decode_image, full_size_image, image_pixels
from context_server.adapters.providers.base import ModelInfo, Provider, ProviderRequest
from context_server.adapters.providers.registry import ProviderRegistry
from context_server.adapters.store import Store, now_iso
from context_server.domain.generation.enrichment import Enricher, Enrichment
from context_server.domain.generation.input import GenerationInput, request_hash
from context_server.domain.generation.jobs import JobRow, JobRunner, Jobs
from context_server.domain.generation.limits import RateLimiter, check_budget
from context_server.domain.generation.sizing import resolve_size
from context_server.domain.generation.usage import UsageLedger
from context_server.domain.images import ImageRow, Images
from context_server.domain.memory.references import describe_image
from context_server.domain.memory.service import Memories
from context_server.domain.sessions import Session, Sessions
from context_server.errors import Conflict, ContextServerError, InvalidInput
from context_server.models import MAX_PROMPT, Applied, GenerateResult, Timings, image_uri

__all__ = ["Generations", "ProgressSink"]

log = logging.getLogger(__name__)

ProgressSink = Callable[[float, str | None], Awaitable[None]]


@dataclass
class _Live:
    """What a running job needs that is not in its row: who to tell about progress."""

    sinks: list[ProgressSink] = field(default_factory=list)
    last_saved: float = 0.0
    #: Progress only ever goes up (MCP requires it); a provider that restarts its count is clamped.
    reported: float = -1.0


def _same_request(job: JobRow, inp: GenerationInput) -> None:
    """Raise `Conflict` unless `inp` asks for what the job sharing its `request_id` asked for.

    Rows written before the hash was kept are checked against the request stored in their params.
    """
    first_input = (json.loads(job["params"] or "{}")).get("input") or {}
    stored = job["request_hash"] or (request_hash(first_input) if first_input else None)
    if stored is None or stored == inp.request_hash():
        return
    now = inp.as_dict()
    changed = sorted(k for k in now if k not in ("request_id", "wait") and first_input.get(k) != now[k])
    differs = f" ({', '.join(changed)} differ)" if changed and first_input else ""
    raise Conflict(
        f"request_id {inp.request_id!r} was already used for a different request{differs}, job {job['id']}. "
        "A request_id names one request: repeat it with the same parameters to get that job's result, "
        "or use a new request_id for a new request.")


class Generations:
    def __init__(self, store: Store, files: ImageFiles, providers: ProviderRegistry, enricher: Enricher,
                 jobs: Jobs, runner: JobRunner, sessions: Sessions, rate: RateLimiter,
                 wait_seconds: float, *, images: Images, memories: Memories) -> None:
        self.store = store
        self.files = files
        self.providers = providers
        self.enricher = enricher
        self.jobs = jobs
        self.runner = runner
        self.sessions = sessions
        self.rate = rate
        self.wait_seconds = wait_seconds
        self._live: dict[str, _Live] = {}
        self._claims: dict[tuple[str, str], asyncio.Lock] = {}
        self.images = images
        #: A completed, non-incognito generation counts a use of the memories it applied.
        self.memories = memories

    async def generate(self, user_id: str, session: Session, inp: GenerationInput,
                       progress: ProgressSink | None = None) -> GenerateResult:
        inp.validate()
        if not inp.request_id:
            return await self._generate(user_id, session, inp, progress)
        # Calls sharing a request_id wait for each other up to the job row, so a repeat never counts
        # against the rate limit or enriches again; across processes the unique index decides.
        key = (user_id, inp.request_id)
        lock = self._claims.setdefault(key, asyncio.Lock())
        async with lock:
            existing = self.jobs.by_request(user_id, inp.request_id)
            if existing is None:
                started = await self._generate(user_id, session, inp, progress, start_only=True)
                if started.job_id is None:  # a dry run: nothing was claimed
                    return started
                existing = self.jobs.get(user_id, started.job_id)
                first = True
            else:
                _same_request(existing, inp)
                first = False
        if not lock.locked():  # safe to drop: any later call finds the job row
            self._claims.pop(key, None)
        if first:
            return await self._wait_with(user_id, existing["id"], inp.wait, progress)
        return await self._follow(user_id, existing, inp.wait, progress)

    async def _generate(self, user_id: str, session: Session, inp: GenerationInput,
                        progress: ProgressSink | None, start_only: bool = False) -> GenerateResult:
        started = time.perf_counter()
        enrichment = await self.enricher.enrich(user_id, session, inp)
        provider, model = self.providers.resolve(enrichment.provider, enrichment.model)
        request, notes = self._provider_request(inp, enrichment, model)
        enrich_ms = (time.perf_counter() - started) * 1000
        base = GenerateResult(
            status="running",
            prompt=inp.prompt,
            final_prompt=request.prompt,
            negative_prompt=request.negative_prompt,
            provider=provider.name,
            model=model.name,
            seed=request.seed,
            width=request.width,
            height=request.height,
            parent_id=enrichment.parent_id,
            applied=enrichment.applied,
            cost_usd=model.cost_usd,
            notes=notes,
            incognito=inp.incognito,
            timings_ms=Timings(enrich=round(enrich_ms, 2)),
        )
        if inp.dry_run:
            base.status = "completed"
            base.dry_run = True
            base.timings_ms.total = round((time.perf_counter() - started) * 1000, 2)
            return base
        if model.cost_usd > 0:  # the rate limit protects paid providers; the free ones are not throttled
            self.rate.check(user_id)
        check_budget(self.store, user_id, enrichment.profile.get("daily_budget_usd"), model.cost_usd)
        job_id = secrets.token_hex(16)
        params = {"input": inp.as_dict(), "result": base.model_dump(mode="json"),
                  "used_memory_ids": enrichment.used_memory_ids, "session_id": session.id,
                  "request": {k: v for k, v in vars(request).items() if k not in ("init_image", "mask")}}
        created = self.jobs.create(user_id, job_id, request_id=inp.request_id, kind=inp.kind, params=params,
                                   provider=provider.name, model=model.name, incognito=inp.incognito,
                                   request_hash=inp.request_hash() if inp.request_id else None)
        if not created:  # another process with this request_id won the race
            existing = self.jobs.by_request(user_id, inp.request_id or "")
            assert existing is not None
            _same_request(existing, inp)
            if start_only:
                return self.result(user_id, existing["id"])
            return await self._follow(user_id, existing, inp.wait, progress)
        base.job_id = job_id
        self._live[job_id] = _Live()
        self.runner.spawn(job_id, self._run(user_id, session, job_id, inp.kind, provider, request, base,
                                            enrichment.used_memory_ids, started))
        if start_only:
            return base
        return await self._wait_with(user_id, job_id, inp.wait, progress)

    async def _wait_with(self, user_id: str, job_id: str, wait: bool,
                         progress: ProgressSink | None) -> GenerateResult:
        live = self._live.get(job_id)
        if live is not None and progress is not None:
            live.sinks.append(progress)
        try:
            return await self._wait_for(user_id, job_id, wait)
        finally:
            if live is not None and progress in live.sinks:
                live.sinks.remove(progress)

    def _provider_request(self, inp: GenerationInput, enr: Enrichment,
                          model: ModelInfo) -> tuple[ProviderRequest, list[str]]:
        width, height, notes = resolve_size(model, inp.width, inp.height, enr.aspect_ratio)
        prompt = enr.final_prompt
        negative = enr.negative_prompt
        if negative and not model.negative_prompt:
            prompt = f"{prompt}. Avoid: {negative}"
            notes.append(f"{model.name} takes no negative prompt; it was added to the prompt as 'Avoid: ...'")
            negative = None
        seed = enr.seed
        if seed is None and model.seed:
            seed = secrets.randbelow(2**31)
        elif seed is not None and not model.seed:
            notes.append(f"{model.name} does not accept a seed; the seed was not sent")
            seed = None
        if enr.init_image is not None and not model.image_to_image and inp.kind == "generate":
            raise InvalidInput(f"{model.name} cannot start from an image; choose a provider whose models list "
                               "image_to_image in list_providers")
        if len(prompt) > MAX_PROMPT:
            prompt = prompt[:MAX_PROMPT]
            notes.append(f"the enriched prompt was cut to {MAX_PROMPT} characters")
        if enr.mask is not None and not model.mask:
            raise InvalidInput(f"{model.name} cannot edit inside a mask; choose a model whose capabilities "
                               "include mask in list_providers")
        return ProviderRequest(prompt=prompt, model=model.name, width=width, height=height,
                               negative_prompt=negative, seed=seed, init_image=enr.init_image,
                               strength=inp.strength, mask=enr.mask), notes

    async def _run(self, user_id: str, session: Session, job_id: str, kind: str, provider: Provider,
                   request: ProviderRequest, base: GenerateResult, used_memory_ids: list[str],
                   started: float) -> None:
        provider_started = time.perf_counter()
        try:
            async def submitted(remote_id: str) -> None:
                self.jobs.set_provider_job_id(user_id, job_id, remote_id)

            call = provider.edit if kind == "edit" else provider.generate
            image = await call(request, lambda p, m: self._progress(user_id, job_id, p, m), submitted)
            provider_ms = (time.perf_counter() - provider_started) * 1000
            result = base.model_copy(deep=True)
            result.notes.extend(image.notes)
            if image.cost_usd is not None:
                result.cost_usd = image.cost_usd
            if image.revised_prompt:
                result.notes.append(f"{provider.name} revised the prompt to: {image.revised_prompt}")
            what = f"image returned by {provider.name}"
            await anyio.to_thread.run_sync(lambda: self._record(user_id, job_id, image.data, what, image.seed, result,
                                                                 kind, session.id))
            result.timings_ms.provider = round(provider_ms, 2)
            result.timings_ms.total = round((time.perf_counter() - started) * 1000, 2)
            self.jobs.save_result(user_id, job_id, result.model_dump_json())
            if not base.incognito:
                self.sessions.set_last_image(session, result.image_id or "")
                self.memories.mark_used(user_id, used_memory_ids)
        except ContextServerError as exc:
            self.jobs.fail(user_id, job_id, str(exc))
        except Exception as exc:
            log.exception("generation job %s failed", job_id)
            self.jobs.fail(user_id, job_id, f"the generation failed unexpectedly ({type(exc).__name__})")
        finally:
            self._live.pop(job_id, None)

    def _record(self, user_id: str, job_id: str, data: bytes, what: str, seed: int | None,
                result: GenerateResult, kind: str = "generate", session_id: str | None = None) -> None:
        """Decode, store and record the provider's image (on a worker thread, holding a full-size slot)."""
        image_id = secrets.token_hex(16)
        with full_size_image(image_pixels(data)):
            img = decode_image(data, what=what)
            stored = self.files.save(user_id, image_id, img, "png")
            self.files.save_preview(stored.path, img)
            del img
        now = now_iso()
        result.image_id, result.uri, result.path = image_id, image_uri(image_id), str(stored.path)
        result.width, result.height, result.format = stored.width, stored.height, stored.format
        result.seed = seed if seed is not None else result.seed
        result.status, result.progress, result.created_at = "completed", 1.0, now
        described = describe_image(self.store, user_id, result.prompt, result.parent_id, kind)
        row: ImageRow = {
            "id": image_id, "user_id": user_id, "job_id": job_id, "parent_id": result.parent_id,
            "prompt": result.prompt, "final_prompt": result.final_prompt,
            "negative_prompt": result.negative_prompt, "provider": result.provider, "model": result.model,
            "seed": result.seed, "width": stored.width, "height": stored.height, "format": stored.format,
            "path": str(stored.path), "applied": result.applied.model_dump_json(),
            "incognito": int(result.incognito), "created_at": now, "session_id": session_id,
            "search_text": described["search_text"], "subjects": described["subjects"],
        }
        try:
            with self.store.write() as db:
                self.images.record(db, row)
                UsageLedger.record(db, user_id, job_id, provider=result.provider, model=result.model,
                                   cost_usd=result.cost_usd, created_at=now)
                Jobs.complete(db, user_id, job_id, image_id, result.model_dump_json(), now)
        except BaseException:
            self.files.delete(stored.path)
            raise
        if not row["incognito"]:
            self.images.index_soon()

    async def _progress(self, user_id: str, job_id: str, fraction: float, message: str | None) -> None:
        live = self._live.get(job_id)
        if live is None or fraction <= live.reported:
            return
        fraction = min(fraction, 0.99)
        live.reported = fraction
        now = time.monotonic()
        if now - live.last_saved > 0.5:
            live.last_saved = now
            self.jobs.set_progress(user_id, job_id, fraction)
        for sink in list(live.sinks):
            try:
                await sink(fraction, message)
            except Exception:  # a client that went away must not fail the job
                live.sinks.remove(sink)

    async def _follow(self, user_id: str, job: JobRow, wait: bool,
                      progress: ProgressSink | None) -> GenerateResult:
        return await self._wait_with(user_id, job["id"], wait, progress)

    async def _wait_for(self, user_id: str, job_id: str, wait: bool) -> GenerateResult:
        if wait:
            deadline = time.monotonic() + self.wait_seconds
            if self.runner.running_here(job_id) is not None:
                await self.runner.wait(job_id, self.wait_seconds)
            while time.monotonic() < deadline and self.jobs.get(user_id, job_id)["status"] == "running":
                await anyio.sleep(0.1)  # running in another process: poll its row
        return self.result(user_id, job_id)

    def resume(self, job: JobRow) -> bool:
        """Pick up a job interrupted by a restart, if its provider can continue it (a recorded remote id)."""
        if not job["provider_job_id"]:
            return False
        try:
            provider, model = self.providers.resolve(job["provider"], job["model"])
        except ContextServerError:
            return False
        params = json.loads(job["params"] or "{}")
        fields = params.get("request") or {}
        request = ProviderRequest(**{k: v for k, v in fields.items() if k in ProviderRequest.__dataclass_fields__})
        request.resume_id = job["provider_job_id"]
        base = GenerateResult.model_validate(params["result"])
        base.job_id = job["id"]
        user_id = job["user_id"]
        self.jobs.adopt(user_id, job["id"])
        session = self.sessions.touch(user_id, f"resumed:{params.get('session_id', '')}")
        self._live[job["id"]] = _Live()
        self.runner.spawn(job["id"], self._run(user_id, session, job["id"], job["kind"] or "generate", provider,
                                               request, base, params.get("used_memory_ids", []),
                                               time.perf_counter()))
        del model
        return True

    def result(self, user_id: str, job_id: str) -> GenerateResult:
        job = self.jobs.get(user_id, job_id)
        if job["status"] == "completed" and job["result"]:
            done = GenerateResult.model_validate_json(job["result"])
            if done.image_id and self.store.one("select 1 as x from images where id = ? and user_id = ?",
                                                [done.image_id, user_id]) is None:
                done.deleted, done.uri, done.path = True, None, None  # delete_image removed it since
            return done
        params = json.loads(job["params"] or "{}")
        result = GenerateResult.model_validate(params.get("result") or {
            "status": job["status"], "prompt": "", "final_prompt": "", "applied": Applied().model_dump()})
        result.job_id = job_id
        result.status = job["status"]
        result.progress = float(job["progress"] or 0.0)
        result.error = job["error"]
        result.created_at = job["created_at"]
        return result
