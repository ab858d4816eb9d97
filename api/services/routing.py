"""Which model answers: the client's choice, or the classifier's for `auto`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from flask import current_app

from api.services.classifier import classify
from api.services.errors import InvalidInput


@dataclass(frozen=True)
class Decision:
    tier: str
    model: str
    score: float
    reason: str


def tier_models() -> dict[str, str]:
    return {"light": current_app.config["MODEL_LIGHT"], "heavy": current_app.config["MODEL_HEAVY"]}


def choices() -> list[str]:
    return ["auto", "light", "heavy", *dict.fromkeys(tier_models().values())]


def choose(
    requested: str | None, message: str, history: Sequence[Mapping[str, str]] = ()
) -> Decision:
    """The tier and model for a request; 422 for a model the gateway does not serve."""
    requested = (requested or "auto").strip()
    models = tier_models()
    route = classify(message, history, threshold=current_app.config["COMPLEXITY_THRESHOLD"])
    if requested == "auto":
        return Decision(route.tier, models[route.tier], route.score, route.reason)
    for tier, model in models.items():
        if requested in (tier, model):
            reason = f"{tier}: requested by the client (classifier said {route.reason})"
            return Decision(tier, model, route.score, reason[:500])
    raise InvalidInput(
        f"Unknown model {requested!r}.",
        details={"json": {"model": [f"Must be one of: {', '.join(choices())}."]}},
    )
