"""The enrichment step every generation goes through, in a fixed order:

template → profile defaults → styles (pinned, relevant to this prompt, this session's) → reference.

Everything added is recorded in the `Applied` receipt. `apply_memory=False` adds nothing from memory
(no profile defaults, no styles); what the caller names explicitly (a template, a reference, an input
image) still applies, because the caller asked for it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

import anyio

from context_server.adapters.files import reencode_png, stored_png
from context_server.adapters.providers.registry import ProviderRegistry
from context_server.domain.generation.input import GenerationInput
from context_server.domain.images import Images
from context_server.domain.memory.references import Reference, References
from context_server.domain.memory.styles import StyleChoice, compose_negative, compose_prompt
from context_server.domain.profile import DEFAULTS, ProfileRow, Profiles
from context_server.domain.sessions import Session
from context_server.domain.templates.library import TemplateLibrary
from context_server.errors import InvalidInput
from context_server.models import Applied, AppliedReference

__all__ = ["Enricher", "Enrichment", "StyleSource"]

FetchFn = Callable[[str], Awaitable[bytes]]


class StyleSource(Protocol):
    def styles_for(self, user_id: str, session_id: str, prompt: str, strength: str) -> StyleChoice:
        """The styles that apply to `prompt` (pinned, this session's, always, its subject's), and those left out."""
        ...


@dataclass
class Enrichment:
    final_prompt: str
    negative_prompt: str | None
    provider: str | None
    model: str | None
    aspect_ratio: str | None
    applied: Applied = field(default_factory=Applied)
    seed: int | None = None
    init_image: bytes | None = None
    mask: bytes | None = None
    parent_id: str | None = None
    used_memory_ids: list[str] = field(default_factory=list)
    profile: ProfileRow = field(default_factory=DEFAULTS.copy)


class Enricher:
    def __init__(self, profiles: Profiles, templates: TemplateLibrary, references: References, images: Images,
                 providers: ProviderRegistry, fetch_image: FetchFn, styles: StyleSource | None = None) -> None:
        self.profiles = profiles
        self.templates = templates
        self.references = references
        self.images = images
        self.providers = providers
        self.fetch_image = fetch_image
        self.styles = styles

    async def enrich(self, user_id: str, session: Session, inp: GenerationInput) -> Enrichment:
        result = Enrichment(
            final_prompt=self._apply_template(user_id, inp),
            negative_prompt=inp.negative_prompt,
            provider=inp.provider,
            model=inp.model,
            aspect_ratio=inp.aspect_ratio,
            seed=inp.seed,
        )
        result.profile = self.profiles.get(user_id)
        if inp.template:
            template = self.templates.get(user_id, inp.template)
            result.applied.template, result.applied.template_version = template.name, template.version
        if inp.reference and inp.input_image_url:
            raise InvalidInput("give either reference or input_image_url, not both")
        if inp.apply_memory:
            self._apply_profile(result, inp, result.profile)
        choice, ref = await self._look_up(result, user_id, session, inp)
        if choice.styles:
            result.applied.styles = choice.styles
            result.applied.left_out = choice.left_out
            result.used_memory_ids = [s.memory_id for s in choice.styles]
            result.final_prompt = compose_prompt(result.final_prompt, [s.phrase for s in choice.positive])
            if choice.negative:
                result.negative_prompt = compose_negative(result.negative_prompt,
                                                          [s.phrase for s in choice.negative])
        await self._apply_reference(result, user_id, session, inp, ref)
        return result

    async def _look_up(self, result: Enrichment, user_id: str, session: Session,
                       inp: GenerationInput) -> tuple[StyleChoice, Reference | None]:
        """The styles for this prompt and the referenced image, looked up at the same time, each in its own
        worker thread (styles read SQLite and the subject lexicon; a reference may also ask the image index).
        The results are applied in the fixed order afterwards; when both fail, the styles' error is the one
        raised, as if they had run one after the other."""
        strength = str(result.profile.get("style_strength") or "light")
        wants_styles = inp.apply_memory and self.styles is not None and strength != "off"
        styles = StyleChoice()
        ref: Reference | None = None
        errors: list[BaseException | None] = [None, None]

        async def find_styles() -> None:
            nonlocal styles
            assert self.styles is not None
            try:
                styles = await anyio.to_thread.run_sync(self.styles.styles_for, user_id, session.id, inp.prompt,
                                                        strength)
            except Exception as exc:
                errors[0] = exc

        async def find_reference() -> None:
            nonlocal ref
            assert inp.reference is not None
            try:
                ref = await anyio.to_thread.run_sync(self.references.resolve, user_id, session, inp.reference)
            except Exception as exc:
                errors[1] = exc

        if wants_styles and inp.reference:
            async with anyio.create_task_group() as group:
                group.start_soon(find_styles)
                group.start_soon(find_reference)
        elif wants_styles:
            await find_styles()
        elif inp.reference:
            await find_reference()
        for error in errors:
            if error is not None:
                raise error
        return styles, ref

    def _apply_template(self, user_id: str, inp: GenerationInput) -> str:
        """Render the template; the prompt fills its `subject` (or `prompt`) argument when the caller
        did not, and is otherwise put in front of the rendered text."""
        prompt = inp.prompt.strip()
        if not inp.template:
            return prompt
        template = self.templates.get(user_id, inp.template)
        names = {a.name for a in template.arguments}
        args = dict(inp.template_args)
        slot = next((n for n in ("subject", "prompt") if n in names and n not in args), None)
        if slot:
            args[slot] = prompt
        rendered = self.templates.render(user_id, inp.template, args)
        return rendered if slot else f"{prompt}. {rendered}"

    @staticmethod
    def _apply_profile(result: Enrichment, inp: GenerationInput, profile: ProfileRow) -> None:
        filled: dict[str, object] = {}
        if result.provider is None and profile["default_provider"]:
            result.provider = filled["provider"] = profile["default_provider"]
        if result.model is None and profile["default_model"] and (
            inp.provider is None or inp.provider == profile["default_provider"]
        ):
            result.model = filled["model"] = profile["default_model"]
        if (inp.width is None and inp.height is None and result.aspect_ratio is None
                and profile["default_aspect_ratio"] and inp.kind == "generate"):
            result.aspect_ratio = filled["aspect_ratio"] = profile["default_aspect_ratio"]
        if result.negative_prompt is None and profile["default_negative_prompt"]:
            result.negative_prompt = filled["negative_prompt"] = profile["default_negative_prompt"]
        result.applied.profile = filled

    async def _apply_reference(self, result: Enrichment, user_id: str, session: Session,
                               inp: GenerationInput, ref: Reference | None) -> None:
        if inp.mask_image:
            mask = await anyio.to_thread.run_sync(self.references.resolve, user_id, session, inp.mask_image)
            result.mask = await anyio.to_thread.run_sync(
                lambda: stored_png(self.images.read(user_id, mask.image_id), what="mask image"))
        if inp.input_image_url:
            fetched = await self.fetch_image(inp.input_image_url)
            # Decoded and re-encoded, with the §8 limits, so providers only ever see a clean PNG.
            result.init_image = await anyio.to_thread.run_sync(
                lambda: reencode_png(fetched, what="image at input_image_url"))
            return
        if ref is None:
            if inp.kind == "edit":
                raise InvalidInput("edit_image needs the image to edit: an image id or words like 'the previous one'")
            return
        result.parent_id = ref.image_id
        _, model = self.providers.resolve(result.provider, result.model)
        if inp.kind == "edit" or model.image_to_image:
            result.init_image = await anyio.to_thread.run_sync(
                lambda: stored_png(self.images.read(user_id, ref.image_id), what="reference image"))
            mode = "image_to_image"
        else:
            mode = "prompt_continuity"
            result.final_prompt = f"{result.final_prompt}. Continuing an earlier image: {ref.prompt}"
            if result.seed is None and ref.row.get("seed") is not None:
                result.seed = int(ref.row["seed"])
        result.applied.reference = AppliedReference(
            image_id=ref.image_id, prompt=ref.prompt, score=ref.score, mode=mode,  # type: ignore[arg-type]
            reason=ref.reason, alternatives=ref.alternatives,
        )

