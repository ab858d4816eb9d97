"""Request-complexity classifier: route a chat request to the light or the heavy model tier.

Pure and cheap, as it runs on every chat request: precompiled regexes, no I/O, no model. About
0.2 ms for a typical message, a few ms for a 2,000-character one. The regexes read at most the
head and tail of a message (where the instruction is); length is measured on all of it.

The rules are data, in api/services/classifier_rules.py: every signal with its words in English
and Korean or its pattern, its weight and its group's cap, and the constants named below. This
module applies them.

How a decision is made. Signals add up to evidence points E, and score = E / (HEAVY_BAR + E), so
a request is heavy (score 0.5 or more) once its points reach the bar. A signal weighing the bar
or more makes a request heavy on its own (a code block, a stack trace, a proof, however short);
lighter ones need company (a technical term names a topic, not a difficulty).

1. Content. The words of the message are read for groups of signals: code, technical terms,
   math, multi-step or analysis wording, requested output, several tasks, several questions.
   Each signal adds its points once, or once per kind of wording found, per different term (up
   to a limit) or per question after the first, as the table says. A group adds at most its
   cap, and its strongest signal names it in the reason.
2. Length, in thresholds (COMPLEXITY_THRESHOLD characters, a Hangul character counting
   HANGUL_WEIGHT): points grow in proportion up to one threshold and with the logarithm beyond,
   so length alone makes a request heavy only when it is several thresholds long, and a request
   a bit over the threshold needs another signal.
3. Conversation context, when there is history: a little for its size and number of messages,
   more for what its last messages are about (a share of their content points), and a little
   more for a short follow-up that refers back ("what if", "그럼") unless the message is heavy
   by itself. So context tips a follow-up in a technical thread to heavy and forces nothing on
   its own: a long chat about a trip stays light.
4. Light cues take points off: chit-chat (which also scales the length and context points
   down), a short translation, a single short question with no other cue. They never cancel a
   strong signal: "thanks, and here is the traceback ..." stays heavy.

The score is rounded to two decimals as the reason shows it, and the tier is read from that
same number.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from api.services import classifier_rules as rules

_HEAVY = "heavy"
_LIGHT = "light"
# The reason names the strongest signals of at least this many points.
_REASON_MIN_POINTS = 0.2
_REASON_SIGNALS = 3


@dataclass(frozen=True)
class Route:
    tier: str  # "light" or "heavy"
    score: float  # 0.0 .. 1.0, >= 0.5 means heavy
    reason: str  # readable, e.g. "heavy: code block, multi-step wording (score 0.72)"


def length_only(message: str, *, threshold: int = 100) -> str:
    """The original rule: heavy when the message is longer than `threshold` characters."""
    return _HEAVY if len(message) > threshold else _LIGHT


# --------------------------------------------------------------------------------------------
# The table, compiled.


@dataclass(frozen=True)
class _Text:
    """A message as the patterns read it: as written, and lowercased once."""

    raw: str
    low: str

    @classmethod
    def of(cls, text: str) -> _Text:
        return cls(text, text.lower())


class _Pattern:
    """A compiled regex. Case-insensitive ones (written in lowercase) run on the lowercased
    text without re.IGNORECASE, which is several times faster on long word alternations."""

    __slots__ = ("lower", "regex")

    def __init__(self, pattern: str, flags: int = 0) -> None:
        self.lower = bool(flags & re.IGNORECASE)
        self.regex = re.compile(pattern, flags & ~re.IGNORECASE)

    def _of(self, text: _Text) -> str:
        return text.low if self.lower else text.raw

    def search(self, text: _Text) -> re.Match[str] | None:
        return self.regex.search(self._of(text))

    def finditer(self, text: _Text) -> Iterator[re.Match[str]]:
        return self.regex.finditer(self._of(text))

    def count(self, text: _Text) -> int:
        return sum(1 for _ in self.regex.finditer(self._of(text)))


def _compile(pattern: rules.Pattern) -> _Pattern:
    if isinstance(pattern, rules.Regex):
        flags = re.MULTILINE if pattern.multiline else 0
        return _Pattern(pattern.pattern, flags | (re.IGNORECASE if pattern.ignore_case else 0))
    alternatives = []
    if pattern.opening:
        alternatives.append(r"^\W*(?:" + "|".join(pattern.opening) + ")" + rules.WORD_END)
    if pattern.en:
        alternatives.append(rules.WORD_START + "(?:" + "|".join(pattern.en) + ")" + rules.WORD_END)
    alternatives.extend(pattern.ko)
    latin = bool(pattern.opening or pattern.en)
    return _Pattern("|".join(alternatives), re.IGNORECASE if latin else 0)


def _compile_all(patterns: Sequence[rules.Pattern]) -> tuple[_Pattern, ...]:
    return tuple(_compile(pattern) for pattern in patterns)


@dataclass(frozen=True)
class _Rule:
    signal: rules.Signal
    patterns: tuple[_Pattern, ...]


_CONTENT = tuple(
    (group, tuple(_Rule(signal, _compile_all(signal.patterns)) for signal in group.signals))
    for group in rules.CONTENT
)
_CHIT_CHAT = _compile_all(rules.CHIT_CHAT.patterns)
_SHORT_TRANSLATION = _compile_all(rules.SHORT_TRANSLATION.patterns)
_SIMPLE_LOOKUP = _compile_all(rules.SIMPLE_LOOKUP.patterns)
_FOLLOW_UP = _compile(rules.FOLLOW_UP)
_HANGUL = re.compile(rules.HANGUL)


# --------------------------------------------------------------------------------------------
# Applying it.


@dataclass(frozen=True)
class _Signal:
    label: str
    points: float


def _sample(text: str, window: tuple[int, int] = rules.SCAN_MESSAGE) -> str:
    """The text the regexes scan: all of it, or its head and tail when it is long."""
    head, tail = window
    if len(text) <= head + tail:
        return text
    return text[:head] + "\n" + text[-tail:]


def _weighted_length(text: str, sample: str) -> float:
    hangul = len(_HANGUL.findall(sample))
    if sample is not text and sample:
        hangul = round(hangul * len(text) / len(sample))
    return len(text) + (rules.HANGUL_WEIGHT - 1) * hangul


def _any(patterns: tuple[_Pattern, ...], text: _Text) -> bool:
    return any(pattern.search(text) for pattern in patterns)


def _distinct_matches(patterns: tuple[_Pattern, ...], text: _Text, limit: int) -> int:
    seen: set[str] = set()
    for pattern in patterns:
        for match in pattern.finditer(text):
            seen.add(match.group(0).lower())
            if len(seen) >= limit:
                return len(seen)
    return len(seen)


def _count(rule: _Rule, text: _Text) -> int:
    """How many times the rule's signal counts in `text` (see rules.Count)."""
    how = rule.signal.count
    if how == "all":
        return int(all(pattern.search(text) for pattern in rule.patterns))
    if how == "patterns":
        return sum(1 for pattern in rule.patterns if pattern.search(text))
    if how == "distinct":
        return _distinct_matches(rule.patterns, text, rule.signal.limit)
    return sum(pattern.count(text) for pattern in rule.patterns)


def _content_signals(text: _Text) -> dict[str, _Signal]:
    """Signals read from the words of one message (no length, no context), by group name.

    A group is one signal: its strongest label and the capped sum of its points.
    """
    signals: dict[str, _Signal] = {}
    for group, group_rules in _CONTENT:
        fired: list[tuple[str, float]] = []
        for rule in group_rules:
            count = _count(rule, text)
            points = rule.signal.points * max(0, count - rule.signal.free)
            if points > 0:
                fired.append((rule.signal.label.format(n=count), points))
        if fired:
            label = max(fired, key=lambda item: item[1])[0]
            signals[group.name] = _Signal(label, min(group.cap, sum(p for _, p in fired)))
    return signals


def _length_points(weighted_length: float, threshold: int) -> float:
    ratio = weighted_length / threshold
    if ratio <= 1:
        return rules.LENGTH_POINTS * ratio
    return min(
        rules.LENGTH_CAP,
        rules.LENGTH_POINTS + rules.LENGTH_POINTS_PER_DOUBLING * math.log2(ratio),
    )


def _context_signal(
    message: str, history: Sequence[Mapping[str, str]], strong_content: bool
) -> _Signal | None:
    if not history:
        return None
    contents = [str(turn.get("content") or "") for turn in history if isinstance(turn, Mapping)]
    size = sum(
        _weighted_length(content, _sample(content, rules.SCAN_HISTORY)) for content in contents
    )
    points = min(
        rules.HISTORY_CAP,
        rules.HISTORY_POINTS_PER_DOUBLING * math.log2(1 + size / rules.HISTORY_CHARS_UNIT)
        + rules.HISTORY_POINTS_PER_MESSAGE * max(0, len(contents) - rules.HISTORY_FREE_MESSAGES),
    )
    recent = contents[-rules.HISTORY_CONTENT_MESSAGES :]
    recent_points = sum(
        signal.points
        for content in recent
        for signal in _content_signals(_Text.of(_sample(content, rules.SCAN_HISTORY))).values()
    )
    points += min(rules.HISTORY_CONTENT_CAP, rules.HISTORY_CONTENT_SHARE * recent_points)
    if points < rules.CONTEXT_MIN:
        return None
    if (
        len(message) <= rules.FOLLOW_UP_MAX_CHARS
        and _FOLLOW_UP.search(_Text.of(message))
        and not strong_content
    ):
        points += rules.FOLLOW_UP_POINTS
    return _Signal("long conversation context", min(rules.CONTEXT_CAP, points))


def _short_enough(cue: rules.LightCue, weighted_length: float, threshold: int) -> bool:
    return cue.max_length is None or weighted_length <= cue.max_length * threshold


def _light_cues(
    text: _Text, weighted_length: float, threshold: int, content: dict[str, _Signal]
) -> list[_Signal]:
    cues: list[_Signal] = []
    for cue, patterns in (
        (rules.CHIT_CHAT, _CHIT_CHAT),
        (rules.SHORT_TRANSLATION, _SHORT_TRANSLATION),
    ):
        if _any(patterns, text) and _short_enough(cue, weighted_length, threshold):
            cues.append(_Signal(cue.label, cue.points))
    # A single question with no analysis wording and no signal of weight.
    plain_question = (
        rules.SEVERAL_QUESTIONS.name not in content
        and rules.ANALYSIS.name not in content
        and not any(signal.points >= rules.LOOKUP_SIGNAL_MAX for signal in content.values())
    )
    lookup = rules.SIMPLE_LOOKUP
    if (
        plain_question
        and _short_enough(lookup, weighted_length, threshold)
        and _any(_SIMPLE_LOOKUP, text)
    ):
        cues.append(_Signal(lookup.label, lookup.points))
    return cues


def classify(
    message: str, history: Sequence[Mapping[str, str]] = (), *, threshold: int = 100
) -> Route:
    """Pick the model tier for `message`, given the earlier conversation `history`.

    `threshold` is COMPLEXITY_THRESHOLD: the length in characters (Hangul weighted, see the
    module docstring) at which length starts to count as real evidence of a heavy request.
    """
    threshold = max(1, int(threshold))  # a misconfigured 0 must not fail every chat request
    message = message or ""
    if not message.strip():
        return Route(_LIGHT, 0.0, "light: empty message, no signals (score 0.00)")
    sample = _sample(message)
    weighted = _weighted_length(message, sample)
    text = _Text.of(sample)

    by_group = _content_signals(text)
    content = list(by_group.values())
    strong_content = any(signal.points >= rules.STRONG_SIGNAL for signal in content)
    soft = [_Signal("length", _length_points(weighted, threshold))]
    context = _context_signal(message, history, strong_content)
    if context is not None:
        soft.append(context)
    light = _light_cues(text, weighted, threshold, by_group)

    if any(cue.label == rules.CHIT_CHAT.label for cue in light) and not strong_content:
        soft = [_Signal(signal.label, signal.points * rules.CHIT_CHAT_KEEPS) for signal in soft]

    evidence = max(0.0, sum(s.points for s in content + soft) + sum(c.points for c in light))
    # Rounded as shown in the reason, and the tier is read from that same number.
    score = round(evidence / (rules.HEAVY_BAR + evidence), 2)
    tier = _HEAVY if score >= 0.5 else _LIGHT
    return Route(tier, score, _reason(tier, score, content + soft, light, weighted, threshold))


def _reason(
    tier: str,
    score: float,
    signals: list[_Signal],
    light: list[_Signal],
    weighted_length: float,
    threshold: int,
) -> str:
    strongest = sorted(
        (s for s in signals if s.points >= _REASON_MIN_POINTS), key=lambda s: -s.points
    )[:_REASON_SIGNALS]
    names = [s.label for s in strongest]
    if tier == _LIGHT:
        names += [cue.label for cue in light]
    if not names:
        names = [f"short plain text (length {round(weighted_length)}/{threshold})"]
    return f"{tier}: {', '.join(names)} (score {score:.2f})"
