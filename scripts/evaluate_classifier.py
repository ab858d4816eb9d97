"""Evaluate the request-complexity classifier on its hand-labeled set.

Prints the accuracy overall and per language, beside that of the original length-only rule,
and the confusion matrix of labeled against classified tiers. The labeled set is
tests/unit/classifier_prompts.json (its docstring in tests/unit/test_classifier.py says how it
was written); that test module asserts its accuracy floors on this same evaluation.

    python scripts/evaluate_classifier.py                  # from the repository root
    python scripts/evaluate_classifier.py --misses         # and the misclassified prompts
    python scripts/evaluate_classifier.py --threshold 150  # another COMPLEXITY_THRESHOLD
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from api.services.classifier import classify, length_only

LABELED_SET = Path(__file__).resolve().parent.parent / "tests" / "unit" / "classifier_prompts.json"
LANGUAGES = ("en", "ko")
TIERS = ("light", "heavy")
DEFAULT_THRESHOLD = 100  # COMPLEXITY_THRESHOLD's default, and classify()'s


def load_labeled_set(path: Path = LABELED_SET) -> list[dict[str, Any]]:
    """The labeled prompts: {"prompt", "expected" (tier), "lang", optional "history"}."""
    return json.loads(path.read_text("utf-8"))


@dataclass(frozen=True)
class Outcome:
    lang: str
    prompt: str
    expected: str  # the tier of the label
    predicted: str  # the classifier's tier
    reason: str  # the classifier's reason
    by_length: str  # the tier of the original length-only rule

    @property
    def correct(self) -> bool:
        return self.predicted == self.expected


@dataclass(frozen=True)
class Evaluation:
    threshold: int
    outcomes: tuple[Outcome, ...]

    def of(self, lang: str = "all") -> list[Outcome]:
        """The outcomes for one language, or "all"."""
        return [o for o in self.outcomes if lang in ("all", o.lang)]

    def accuracy(self, lang: str = "all") -> float:
        outcomes = self.of(lang)
        return sum(o.correct for o in outcomes) / len(outcomes)

    def length_only_accuracy(self, lang: str = "all") -> float:
        outcomes = self.of(lang)
        return sum(o.by_length == o.expected for o in outcomes) / len(outcomes)

    def confusion(self, lang: str = "all") -> dict[tuple[str, str], int]:
        """How many prompts of each (labeled tier, classified tier)."""
        counts = {(expected, predicted): 0 for expected in TIERS for predicted in TIERS}
        for o in self.of(lang):
            counts[o.expected, o.predicted] += 1
        return counts

    def misses(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.correct]


def evaluate(
    items: list[dict[str, Any]] | None = None, *, threshold: int = DEFAULT_THRESHOLD
) -> Evaluation:
    """Classify every labeled prompt (by default the whole labeled set)."""
    items = load_labeled_set() if items is None else items
    outcomes = []
    for item in items:
        route = classify(item["prompt"], item.get("history", ()), threshold=threshold)
        outcomes.append(
            Outcome(
                lang=item["lang"],
                prompt=item["prompt"],
                expected=item["expected"],
                predicted=route.tier,
                reason=route.reason,
                by_length=length_only(item["prompt"], threshold=threshold),
            )
        )
    return Evaluation(threshold, tuple(outcomes))


def report(evaluation: Evaluation, *, misses: bool = False) -> str:
    lines = [
        f"Classifier on {len(evaluation.outcomes)} labeled prompts "
        f"(threshold {evaluation.threshold})",
        "",
        f"{'':8}{'prompts':>8}{'accuracy':>10}{'length-only':>13}",
    ]
    for lang in ("all", *LANGUAGES):
        lines.append(
            f"{lang:8}{len(evaluation.of(lang)):>8}{evaluation.accuracy(lang):>10.3f}"
            f"{evaluation.length_only_accuracy(lang):>13.3f}"
        )
    confusion = evaluation.confusion()
    lines += ["", "Confusion matrix (rows: labeled, columns: classified)", ""]
    lines.append(f"{'':8}" + "".join(f"{tier:>8}" for tier in TIERS))
    for expected in TIERS:
        counts = "".join(f"{confusion[expected, predicted]:>8}" for predicted in TIERS)
        lines.append(f"{expected:8}{counts}")
    if misses:
        lines += ["", f"Misses ({len(evaluation.misses())})"]
        for o in evaluation.misses():
            lines.append(f"- [{o.lang}] labeled {o.expected}, {o.reason}: {o.prompt[:100]!r}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threshold", type=int, default=DEFAULT_THRESHOLD)
    parser.add_argument("--misses", action="store_true", help="list the misclassified prompts")
    args = parser.parse_args(argv)
    print(report(evaluate(threshold=args.threshold), misses=args.misses))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
