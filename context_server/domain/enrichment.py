"""The enrichment step every generation goes through, in a fixed order:

template → profile defaults → styles (pinned, relevant to this prompt, this session's) → reference.

Everything added is recorded in the `Applied` receipt; `apply_memory=False` skips profile, styles and
reference words' memory lookups (an explicit template and an explicit image id still apply, because the
caller asked for them by name).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..models import Applied
from .profile import Profiles
from .requests import GenerationInput
from .sessions import Session
from .templates import TemplateLibrary

__all__ = ["Enricher", "Enrichment"]


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
    parent_id: str | None = None
    used_memory_ids: list[str] = field(default_factory=list)
    profile: dict[str, Any] = field(default_factory=dict)


class Enricher:
    def __init__(self, profiles: Profiles, templates: TemplateLibrary) -> None:
        self.profiles = profiles
        self.templates = templates

    async def enrich(self, user_id: str, session: Session, inp: GenerationInput) -> Enrichment:
        prompt = self._apply_template(user_id, inp)
        result = Enrichment(
            final_prompt=prompt,
            negative_prompt=inp.negative_prompt,
            provider=inp.provider,
            model=inp.model,
            aspect_ratio=inp.aspect_ratio,
            seed=inp.seed,
        )
        profile = self.profiles.get(user_id)
        result.profile = profile
        if inp.template:
            template = self.templates.get(user_id, inp.template)
            result.applied.template = f"{template.name}@v{template.version}"
        if inp.apply_memory:
            self._apply_profile(result, inp, profile)
        return result

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
                and profile["default_aspect_ratio"]):
            result.aspect_ratio = filled["aspect_ratio"] = profile["default_aspect_ratio"]
        if result.negative_prompt is None and profile["default_negative_prompt"]:
            result.negative_prompt = filled["negative_prompt"] = profile["default_negative_prompt"]
        result.applied.profile = filled
