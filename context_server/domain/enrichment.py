"""The enrichment step every generation goes through, in a fixed order:

template → profile defaults → styles (pinned, relevant to this prompt, this session's) → reference.

Everything added is recorded in the `Applied` receipt. `apply_memory=False` adds nothing from memory
(no profile defaults, no styles); what the caller names explicitly (a template, a reference, an input
image) still applies, because the caller asked for it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio

from ..adapters.files import decode_image, encode_image
from ..adapters.providers.registry import ProviderRegistry
from ..errors import InvalidInput
from ..models import Applied, AppliedReference, AppliedStyle
from .images import Images
from .profile import Profiles
from .references import References, reference_subject
from .requests import GenerationInput
from .sessions import Session
from .templates import TemplateLibrary
from .text import sanitise

__all__ = ["Enricher", "Enrichment", "StyleSource"]

FetchFn = Callable[[str], Awaitable[bytes]]


class StyleSource(Protocol):
    def styles_for(self, user_id: str, session_id: str, prompt: str, strength: str) -> list[AppliedStyle]:
        """Pinned styles, the styles relevant to `prompt` and this session's styles, best first."""
        ...

    def wants_query(self, user_id: str, strength: str) -> bool:
        """Whether styles_for will embed the prompt."""
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
    profile: dict[str, Any] = field(default_factory=dict)


class Enricher:
    def __init__(self, profiles: Profiles, templates: TemplateLibrary, references: References, images: Images,
                 providers: ProviderRegistry, fetch_image: FetchFn, styles: StyleSource | None = None,
                 prefetch: Callable[[list[str]], object] | None = None) -> None:
        #: Embeds several query texts in one batch ahead of the lookups that need them (they then hit the
        #: embedder's cache): one model call instead of two when a prompt has styles and a reference.
        self.prefetch = prefetch
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
            result.applied.template = f"{template.name}@v{template.version}"
        if inp.apply_memory:
            self._apply_profile(result, inp, result.profile)
            await self._prefetch(user_id, inp, result.profile)
            await anyio.to_thread.run_sync(self._apply_styles, result, user_id, session, inp)
        await self._apply_reference(result, user_id, session, inp)
        return result

    async def _prefetch(self, user_id: str, inp: GenerationInput, profile: dict[str, Any]) -> None:
        if self.prefetch is None or self.styles is None or not inp.reference:
            return
        subject = reference_subject(inp.reference)
        strength = str(profile.get("style_strength") or "light")
        if subject and self.styles.wants_query(user_id, strength):
            await anyio.to_thread.run_sync(self.prefetch, [sanitise(inp.prompt), subject])

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
    def _apply_profile(result: Enrichment, inp: GenerationInput, profile: dict[str, Any]) -> None:
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

    def _apply_styles(self, result: Enrichment, user_id: str, session: Session, inp: GenerationInput) -> None:
        strength = str(result.profile.get("style_strength") or "light")
        if self.styles is None or strength == "off":
            return
        styles = self.styles.styles_for(user_id, session.id, inp.prompt, strength)
        if not styles:
            return
        result.applied.styles = styles
        result.used_memory_ids = [s.memory_id for s in styles]
        result.final_prompt = f"{result.final_prompt}. Style: " + "; ".join(s.content for s in styles)

    async def _apply_reference(self, result: Enrichment, user_id: str, session: Session,
                               inp: GenerationInput) -> None:
        if inp.reference and inp.input_image_url:
            raise InvalidInput("give either reference or input_image_url, not both")
        if inp.mask_image:
            mask = await anyio.to_thread.run_sync(self.references.resolve, user_id, session, inp.mask_image)
            result.mask = self._png(self.images.read(user_id, mask.image_id), "mask image")
        if inp.input_image_url:
            result.init_image = self._png(await self.fetch_image(inp.input_image_url), "image at input_image_url")
            return
        if not inp.reference:
            if inp.kind == "edit":
                raise InvalidInput("edit_image needs the image to edit: an image id or words like 'the previous one'")
            return
        ref = await anyio.to_thread.run_sync(self.references.resolve, user_id, session, inp.reference)
        result.parent_id = ref.image_id
        _, model = self.providers.resolve(result.provider, result.model)
        if inp.kind == "edit" or model.image_to_image:
            result.init_image = self._png(self.images.read(user_id, ref.image_id), "reference image")
            mode = "image_to_image"
        else:
            mode = "prompt_continuity"
            result.final_prompt = f"{result.final_prompt}. Continuing an earlier image: {ref.prompt}"
            if result.seed is None and ref.row.get("seed") is not None:
                result.seed = int(ref.row["seed"])
        result.applied.reference = AppliedReference(
            image_id=ref.image_id, prompt=ref.prompt, score=ref.score, mode=mode,  # type: ignore[arg-type]
            alternatives=ref.alternatives,
        )

    @staticmethod
    def _png(data: bytes, what: str) -> bytes:
        """Decode (with the §8 limits) and re-encode, so providers only ever see a clean PNG."""
        return encode_image(decode_image(data, what=what), "png")
