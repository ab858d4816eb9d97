"""The request-complexity classifier that routes chat requests to the light or heavy tier.

`classifier_prompts.json` is a labeled set, each label written by hand, as a careful human would,
before the prompt was run through the classifier; no label was changed afterwards. The first 76
items were written before the classifier existed. The rest were added in six batches of 32-36, each
written as a fresh held-out check on the classifier of its time and only then run; several of them
led to fixes, so the set as a whole is no longer held out, and the accuracy asserted here is an
in-sample floor, not an estimate of accuracy on new traffic. scripts/evaluate_classifier.py
reports the classifier's figures on it.
"""

from __future__ import annotations

import time
from collections import defaultdict

import pytest

from api.services.classifier import Route, classify, length_only
from scripts.evaluate_classifier import TIERS, evaluate, load_labeled_set, report

PROMPTS = load_labeled_set()
# Accuracy floors on the labeled set.
OVERALL_FLOOR = 0.85
LANGUAGE_FLOOR = 0.8

# Words the reason uses to name the signals that fired.
SIGNAL_WORDS = (
    "code",
    "stack trace",
    "file names",
    "error message",
    "debugging",
    "technical terms",
    "proof",
    "LaTeX",
    "math",
    "equation",
    "arithmetic",
    "word problem",
    "optimisation problem",
    "multi-step",
    "analysis",
    "several tasks",
    "questions",
    "output",
    "detail",
    "length",
    "context",
    "chit-chat",
    "translation",
    "lookup",
)

TECH_HISTORY = [
    {
        "role": "user",
        "content": "Our checkout service writes every order to PostgreSQL and publishes an event "
        "to Kafka. Under load we see duplicate events and sometimes an event for an order whose "
        "transaction was rolled back. How do we fix this?",
    },
    {
        "role": "assistant",
        "content": "That is the dual-write problem: the database commit and the Kafka publish are "
        "two separate operations, so one can succeed while the other fails. Use the transactional "
        "outbox pattern: in the same transaction as the order, insert a row into an `outbox` "
        "table; a relay process (or Debezium reading the WAL) publishes outbox rows to Kafka and "
        "marks them sent. Consumers must be idempotent, because the relay can publish a row twice "
        "after a crash: keep the processed event ids in a table with a unique constraint.\n"
        "```sql\nCREATE TABLE outbox (\n  id uuid PRIMARY KEY,\n  topic text NOT NULL,\n"
        "  payload jsonb NOT NULL,\n  created_at timestamptz NOT NULL DEFAULT now(),\n"
        "  sent_at timestamptz\n);\n```",
    },
    {"role": "user", "content": "We implemented the outbox with a polling relay every 500 ms."},
    {
        "role": "assistant",
        "content": "Good. Poll with `SELECT ... FOR UPDATE SKIP LOCKED LIMIT 100` so that several "
        "relay instances can run without publishing the same rows, and add a partial index on "
        "created_at WHERE sent_at IS NULL so that the poll stays cheap as the table grows.",
    },
]

TRAVEL_HISTORY = [
    {
        "role": "user",
        "content": "I'm visiting Seoul in late October with my parents. What will the weather be "
        "like, and what should we pack?",
    },
    {
        "role": "assistant",
        "content": "Late October is one of the nicest times to visit Seoul. Days are usually clear "
        "and dry, around 15 to 20 degrees, and evenings get cool. Pack layers: long-sleeved tops, "
        "a light sweater and a medium jacket for the evenings, plus comfortable walking shoes, "
        "because you will walk a lot between palaces, markets and subway stations.",
    },
]


def accuracy(predict, items) -> float:
    return sum(predict(item) == item["expected"] for item in items) / len(items)


def by_classify(item) -> str:
    return classify(item["prompt"], item.get("history", ())).tier


def by_length(item) -> str:
    return length_only(item["prompt"])


def assert_route_is_well_formed(route: Route) -> None:
    assert route.tier in {"light", "heavy"}
    assert 0.0 <= route.score <= 1.0
    assert (route.tier == "heavy") == (route.score >= 0.5), route
    assert route.reason.startswith(f"{route.tier}: "), route
    assert f"(score {route.score:.2f})" in route.reason, route
    assert any(word in route.reason for word in SIGNAL_WORDS), route


# ------------------------------------------------------------------------- the labeled set


def test_the_labeled_set_is_large_and_balanced():
    counts = defaultdict(int)
    for item in PROMPTS:
        assert set(item) <= {"prompt", "history", "expected", "lang"}
        assert item["expected"] in {"light", "heavy"} and item["lang"] in {"en", "ko"}
        counts[item["lang"], item["expected"]] += 1
    assert len(PROMPTS) >= 60
    assert min(counts.values()) >= 0.2 * len(PROMPTS), dict(counts)
    assert sum(1 for item in PROMPTS if item.get("history")) >= 4


def test_accuracy_overall_and_per_language():
    overall = accuracy(by_classify, PROMPTS)
    per_language = {
        lang: accuracy(by_classify, [item for item in PROMPTS if item["lang"] == lang])
        for lang in ("en", "ko")
    }
    misses = [
        (item["expected"], classify(item["prompt"], item.get("history", ())).reason, item["prompt"])
        for item in PROMPTS
        if by_classify(item) != item["expected"]
    ]
    assert overall >= OVERALL_FLOOR, f"accuracy {overall:.3f}; misses: {misses}"
    for lang, value in per_language.items():
        assert value >= LANGUAGE_FLOOR, f"{lang} accuracy {value:.3f}; misses: {misses}"


def test_the_evaluation_script_reports_the_same_figures():
    evaluation = evaluate()
    misses = [(o.expected, o.reason, o.prompt) for o in evaluation.misses()]
    assert evaluation.accuracy() >= OVERALL_FLOOR, f"misses: {misses}"
    for lang in ("en", "ko"):
        assert evaluation.accuracy(lang) >= LANGUAGE_FLOOR, f"{lang}; misses: {misses}"
    for lang in ("all", "en", "ko"):
        items = [item for item in PROMPTS if lang in ("all", item["lang"])]
        assert evaluation.accuracy(lang) == accuracy(by_classify, items)
        assert evaluation.length_only_accuracy(lang) == accuracy(by_length, items)
        assert evaluation.accuracy(lang) > evaluation.length_only_accuracy(lang), lang
        confusion = evaluation.confusion(lang)
        assert sum(confusion.values()) == len(items)
        assert sum(confusion[tier, tier] for tier in TIERS) == sum(
            by_classify(item) == item["expected"] for item in items
        )
    text = report(evaluation, misses=True)
    assert f"{evaluation.accuracy():.3f}" in text
    assert f"Misses ({len(evaluation.misses())})" in text


@pytest.mark.parametrize("lang", ["all", "en", "ko"])
def test_strictly_beats_the_length_only_rule(lang):
    items = [item for item in PROMPTS if lang in ("all", item["lang"])]
    ours, original = accuracy(by_classify, items), accuracy(by_length, items)
    message = f"{lang}: classify {ours:.3f} vs length_only {original:.3f} on {len(items)} prompts"
    assert ours > original, message


def test_every_route_is_well_formed():
    for item in PROMPTS:
        assert_route_is_well_formed(classify(item["prompt"], item.get("history", ())))


# ------------------------------------------------------------------------- behaviours


@pytest.mark.parametrize(
    ("message", "signal"),
    [
        ("이 코드의 버그를 찾아줘: ```x = [1,2,3]; print(x[3])```", "code block"),
        ("Find the bug: ```def avg(xs): return sum(xs) / len(xs)```", "code block"),
        (
            'Traceback (most recent call last):\n  File "app.py", line 3, in <module>\n'
            "    main()\nKeyError: 'user_id'",
            "stack trace",
        ),
        ("Why is `SELECT * FROM t WHERE YEAR(created_at) = 2024` slow?", "code"),
        ("Write a Python function that merges overlapping intervals.", "code request"),
    ],
)
def test_code_is_heavy(message, signal):
    route = classify(message)
    assert route.tier == "heavy", route
    assert signal in route.reason
    assert_route_is_well_formed(route)


@pytest.mark.parametrize(
    "message",
    [
        "prove that sqrt(2) is irrational",
        "루트 2가 무리수임을 증명해줘.",
        "Show that the sum of the first n odd numbers is n^2.",
        r"Evaluate $\int_0^1 x e^x \, dx$.",
    ],
)
def test_math_proofs_are_heavy_even_when_short(message):
    route = classify(message)
    assert route.tier == "heavy", route
    assert length_only(message) == "light"  # the hard case for the original rule


@pytest.mark.parametrize(
    "message", ["hi", "Hello!", "Good morning! How are you?", "안녕하세요!", "고마워요 ㅎㅎ"]
)
def test_greetings_are_light(message):
    route = classify(message)
    assert route.tier == "light", route
    assert "chit-chat" in route.reason


@pytest.mark.parametrize(
    "message",
    [
        "Hey! I just got back from a really lovely weekend trip to the mountains with my family. "
        "The weather was great and we had a lot of fun hiking and eating. How was your weekend?",
        "I've been so busy lately with work and family stuff that I barely had any time for "
        "myself, but this weekend I finally went to the beach, read a novel, ate way too much ice "
        "cream and just relaxed the whole day. It was exactly what I needed.",
        "어제 친구들이랑 오랜만에 만나서 맛있는 삼겹살도 먹고 노래방도 가고 정말 재미있게 "
        "놀았어요. 요즘 일이 너무 바빠서 정말 힘들었는데 덕분에 기분 전환이 많이 됐어요. 다음 "
        "주에는 등산도 가 보려고요. 주말 잘 보내셨어요?",
        "요즘 날씨가 많이 추워져서 아침에 일어나기가 너무 힘들어요. 이불 밖은 위험하다는 말이 "
        "정말 실감 나네요. 다들 감기 조심하시고 따뜻하게 입고 다니세요! 저는 오늘 따뜻한 유자차 "
        "한 잔 마시면서 버티는 중이에요.",
    ],
)
def test_long_chit_chat_is_light(message):
    assert length_only(message) == "heavy"  # long enough to fool the original rule
    assert classify(message).tier == "light"


@pytest.mark.parametrize(
    "message",
    [
        "What is the capital of Australia?",
        "Translate 'good night' into French.",
        "Is a tomato a fruit or a vegetable?",
        "'감사합니다'를 영어로 번역해줘.",
        "고양이가 초콜릿을 먹어도 돼?",
    ],
)
def test_lookups_translations_and_yes_no_questions_are_light(message):
    assert classify(message).tier == "light"


def test_analysis_wording_in_korean_is_heavy():
    route = classify("REST API와 GraphQL의 장단점을 비교해서 설명해줘.")
    assert route.tier == "heavy", route
    assert "wording" in route.reason


def test_several_questions_count():
    route = classify(
        "What's the difference between TCP and UDP? When would you pick QUIC? "
        "And how does HTTP/3 use it?"
    )
    assert route.tier == "heavy", route
    assert "3 questions" in route.reason


def test_korean_length_is_weighted_for_density():
    english = (
        "I'm planning to repaint my living room this weekend. The walls are currently a pale "
        "yellow and the furniture is mostly dark wood. I was thinking about a soft sage green. "
        "Does that sound nice?"
    )
    korean = (
        "이번 주말에 거실 벽을 새로 칠하려고 해요. 지금은 연한 노란색이고 가구는 대부분 "
        "어두운 원목이에요. 은은한 세이지 그린으로 하면 어울릴까요?"
    )
    assert len(korean) < len(english) / 2
    # The same request scores about the same in both languages, despite half the characters.
    assert abs(classify(korean).score - classify(english).score) <= 0.1
    assert length_only(korean) != length_only(english)


def test_a_long_history_tips_a_short_follow_up_towards_heavy():
    follow_up = "Would that still work at ten times the traffic?"
    alone = classify(follow_up)
    in_context = classify(follow_up, TECH_HISTORY)
    assert alone.tier == "light", alone
    assert in_context.tier == "heavy", in_context
    assert "context" in in_context.reason
    # Context tips, it does not force: a long chat about a trip, or a thank-you, stays light.
    assert classify(follow_up, TRAVEL_HISTORY).tier == "light"
    assert classify("Thanks, that's all I needed!", TECH_HISTORY).tier == "light"


def test_the_threshold_moves_a_borderline_long_prompt():
    message = (
        "I'm looking for ideas for a dinner this weekend with four friends; one of them is "
        "vegetarian and another one doesn't eat spicy food, and I'd like something I can "
        "prepare ahead."
    )
    assert classify(message, threshold=50).tier == "heavy"
    assert classify(message).tier == "light"
    assert classify(message, threshold=1000).tier == "light"
    scores = [classify(message, threshold=t).score for t in (50, 100, 200, 1000)]
    assert scores == sorted(scores, reverse=True)


def test_a_nonsense_threshold_does_not_break_requests():
    assert_route_is_well_formed(classify("hello there", threshold=0))
    assert_route_is_well_formed(classify("hello there", threshold=-5))


@pytest.mark.parametrize("message", ["", " ", "\n\t  \n"])
def test_empty_or_whitespace_message_is_light(message):
    route = classify(message)
    assert route.tier == "light" and route.score == 0.0
    assert route.reason


def test_history_of_odd_shapes_does_not_crash():
    history = [{"role": "user"}, {"role": "assistant", "content": None}, {"content": "hi"}]
    assert_route_is_well_formed(classify("And then?", history))


def test_length_only_is_the_original_rule():
    assert length_only("x" * 100) == "light"
    assert length_only("x" * 101) == "heavy"
    assert length_only("x" * 11, threshold=10) == "heavy"
    assert length_only("") == "light"


@pytest.mark.parametrize(
    "message",
    [
        "Please summarise the following notes. " + "lorem ipsum dolor sit amet " * 4000,
        "다음 문서를 요약해줘. " + "가나다라마바사 아자차카 타파하 " * 6000,
        "```\n" + "def f(x):\n    return [x] * 2  # (\n" * 4000,
        "(" * 100_000,
    ],
)
def test_a_100_kb_message_is_classified_well_under_a_second(message):
    message = message[:100_000]
    history = [{"role": "user", "content": message}] * 5
    started = time.perf_counter()
    route = classify(message, history)
    elapsed = time.perf_counter() - started
    assert_route_is_well_formed(route)
    assert elapsed < 1.0, f"{elapsed:.3f} s"
