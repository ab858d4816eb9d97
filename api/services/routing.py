"""Which model answers: the client's choice, or the classifier's for `auto`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from api.chat_messages import text_of
from api.services.classifier import classify
from config.settings import get_settings
from core.errors import InvalidInput
from pipeline.queue import tier_models


@dataclass(frozen=True)
class Decision:
    tier: str
    model: str
    score: float
    reason: str


def choices() -> list[str]:
    return ["auto", "light", "heavy", *dict.fromkeys(tier_models().values())]


def choose(
    requested: str | None,
    message: str,
    history: Sequence[Mapping[str, Any]] = (),
    *,
    needs_vision: bool = False,
) -> Decision:
    """The tier and model for a request; 422 for a model the gateway does not serve.

    A request with images goes to a model that takes them (VISION_MODELS): `auto` picks
    the other tier when the classifier's cannot, a named model that cannot is refused.
    """
    requested = (requested or "auto").strip()
    models = tier_models()
    texts = [{"role": turn["role"], "content": text_of(turn.get("content"))} for turn in history]
    route = classify(message, texts, threshold=get_settings().models.complexity_threshold)
    seeing = {tier for tier, model in models.items() if model in vision_models()}
    if requested == "auto":
        tier, reason = route.tier, route.reason
        if needs_vision and tier not in seeing and seeing:
            tier = sorted(seeing)[0]
            reason = f"{tier}: the request has images (classifier said {route.reason})"
        if not needs_vision or tier in seeing:
            return Decision(tier, models[tier], route.score, reason[:500])
        raise _no_images("None of the served models takes images")
    for tier, model in models.items():
        if requested in (tier, model):
            if needs_vision and tier not in seeing:
                raise _no_images(f"The model {requested!r} does not take images")
            reason = f"{tier}: requested by the client (classifier said {route.reason})"
            return Decision(tier, model, route.score, reason[:500])
    raise InvalidInput(
        f"Unknown model {requested!r}.",
        details={"json": {"model": [f"Must be one of: {', '.join(choices())}."]}},
    )


def vision_models() -> tuple[str, ...]:
    return get_settings().models.vision_models


def _no_images(reason: str) -> InvalidInput:
    message = f"{reason} (VISION_MODELS lists the models that do)."
    return InvalidInput(message, details={"json": {"messages": [message]}})
