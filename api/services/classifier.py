"""Request-complexity classifier: route a chat request to the light or the heavy model tier.

Pure and cheap: precompiled regexes over (at most) the first 16,000 and last 4,000 characters
of the message, no I/O and no model. It runs on every chat request.

Scoring. Each signal adds *evidence points*; the total E becomes the score E / (1 + E), so one
point of evidence is exactly the 0.5 boundary. A weight of 1.0 or more therefore reads as "this
signal alone makes the request heavy", and weights below it need company. Within a group the
points add up to the group's cap.

- Code (cap 1.6). A fenced block (1.2) or a stack trace (1.2) alone is heavy: pasted code or a
  crash almost always means review or debugging. An error line such as ``KeyError: 'x'`` 0.6,
  a code request ("write a function", "구현") 0.6, inline code 0.5, each distinct code construct
  (``def f(``, ``#include <``, ``SELECT .. FROM``, ``x[3]``, ``=>``) 0.4, source file names 0.3,
  camelCase/snake_case identifiers 0.3, debugging words ("bug", "crash", "에러", "고쳐") 0.35.
- Technical terms (0.25 each, cap 0.75): databases, networking, algorithms, ... Topic alone is
  not difficulty, so it needs another signal.
- Math (cap 1.6). "prove"/"증명" 1.0 (a proof is heavy however short); calculus and algebra words
  ("derivative", "solve for", "미분", "방정식") 0.7; LaTeX 0.8; an equation (``3x^2 - 12x = 0``)
  0.5; math symbols (∫, √, ``x^2``, ``sqrt(``) 0.5; bare arithmetic (``2 + 2``) 0.3.
- Multi-step or analysis wording, English and Korean (cap 1.2): "step by step", "pros and cons",
  "trade-offs", "design", "단계별", "장단점", "설계" 0.6; "compare", "analyze", "explain why",
  "비교", "분석", "설명해", "왜", "원인" 0.4. One mild cue ("why ...?") stays light.
- Several questions (0.3 per question after the first, cap 0.9): '?' plus Korean question
  endings (-나요, -까요, -습니까) that lack one.
- Requested output length (cap 1.0): "write an essay/report/story" 0.6, an explicit size
  ("1500-word", "2000자", "분량") 0.6, "detailed"/"in depth"/"자세히"/"구체적으로" 0.5.
- Length (soft, cap 1.4). Weighted length counts a Hangul syllable as 2.5 characters: Korean
  carries roughly 2-3x the content of English per character, so without it a long Korean
  request is under-scored. With r = weighted length / threshold: 0.3 * r up to the threshold,
  then 0.3 + 0.45 * log2(r): 0.75 at twice the threshold, 1.2 at four times. Length alone turns
  heavy only past about 2.7x the threshold; below that it needs another signal.
- Conversation context (soft, cap 1.0): history size (0.3 * log2(1 + weighted chars / 1000)),
  turns (0.05 per message after the second, cap 0.2), 0.3x the content points of the last six
  messages (cap 0.5), and a short referring follow-up ("that", "그럼", "이 부분") 0.3.

Light cues. Greetings, thanks and small talk ("how was your weekend", "좋은 하루") keep only 35%
of the soft points (length, context) and take 0.2 off; a short translation takes 0.4 off, a
single short fact or yes/no question 0.2. They do not cancel code or math: "thanks, and here is
the traceback ..." stays heavy.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

HEAVY = "heavy"
LIGHT = "light"

_HEAD_CHARS = 16_000
_TAIL_CHARS = 4_000
_HANGUL_WEIGHT = 2.5
_HISTORY_SCAN_MESSAGES = 6


@dataclass(frozen=True)
class Route:
    tier: str  # "light" or "heavy"
    score: float  # 0.0 .. 1.0, >= 0.5 means heavy
    reason: str  # readable, e.g. "heavy: code block, multi-step wording (score 0.72)"


def length_only(message: str, *, threshold: int = 100) -> str:
    """The original rule: heavy when the message is longer than `threshold` characters."""
    return HEAVY if len(message) > threshold else LIGHT


# --------------------------------------------------------------------------------------------
# Patterns. Latin terms use ASCII boundaries instead of \b: Hangul counts as a word character,
# so \bAPI\b would not match "API와".

_A = r"(?<![A-Za-z0-9_])"
_Z = r"(?![A-Za-z0-9_])"
_I = re.IGNORECASE
_IM = re.IGNORECASE | re.MULTILINE


def _words(*alternatives: str) -> str:
    return _A + "(?:" + "|".join(alternatives) + ")" + _Z


def _re(pattern: str, flags: int = 0) -> re.Pattern[str]:
    return re.compile(pattern, flags)


_HANGUL = _re(r"[\uac00-\ud7a3\u3131-\u318e]")

# Code.
_FENCE = _re(r"```|~~~")
_INLINE_CODE = _re(r"`[^`\n]{2,200}`")
_TRACE = _re(
    r"Traceback \(most recent call last\)|File \"[^\"\n]+\", line \d+"
    r"|^\s+at [\w$.<>]+ ?\([^)\n]*:\d+(?::\d+)?\)|segmentation fault|core dumped"
    r"|^panic: |^\s*at [\w$.]+\.\w+\([\w$]+\.java:\d+\)",
    re.MULTILINE | re.IGNORECASE,
)
_ERROR_LINE = _re(r"\b[A-Z]\w*(?:Error|Exception|Fault)\b(?::| \()|Cannot read propert")
_CODE_CONSTRUCTS = [
    _re(r"\bdef \w+\s*\("),
    _re(r"\bclass \w+\s*[:({]"),
    _re(r"\bfunction\s*\w*\s*\("),
    _re(r"^\s*(?:from [\w.]+ )?import [\w.]+(?: as \w+)?\s*;?\s*$", re.MULTILINE),
    _re(r"#include\s*[<\"]"),
    _re(r"\bSELECT\b[^;]{1,300}?\bFROM\b|\bselect \* from\b|\bINSERT INTO\b|\bCREATE TABLE\b"),
    _re(r"\b(?:const|let|var) \w+\s*="),
    _re(r"=>|::|&&|\|\||!==?|===?|\+\+|\+=|-="),
    _re(r"\b(?:printf?|println|console\.log|System\.out\.\w+)\s*\("),
    _re(r"\w\[[\w'\"]{1,20}\]"),
    _re(r"\b\w+\.\w+\([^()\n]{0,80}\)"),
    _re(r"[;{}]\s*$", re.MULTILINE),
    _re(r"\b(?:public|private|protected|static) (?:static )?[\w<>\[\]]+ \w+\s*\("),
    _re(r"^\s*(?:if|for|while|switch)\s*\(.*\)\s*\{", re.MULTILINE),
    _re(r"\bO\((?:1|n|log ?n|n ?log ?n|n\^?2|n²|[a-z] ?[*+] ?[a-z])\)"),
]
_FILE_NAME = _re(
    _A + r"[\w\-/]+\.(?:py|js|mjs|ts|tsx|jsx|java|kt|go|rs|rb|php|c|cc|cpp|h|hpp|cs|swift|scala"
    r"|sql|sh|bash|ps1|yaml|yml|toml|ini|json|ipynb|html|css|scss|vue|lock|gradle)" + _Z
)
_IDENTIFIER = _re(
    _A + r"(?:[a-z]{2,}[A-Z][A-Za-z0-9]*|[a-z][a-z0-9]*_[a-z0-9_]+|(?:[A-Z][a-z0-9]+){3,})" + _Z
)
_CODE_REQUEST = _re(
    _words(
        r"(?:write|implement|code|build|create) (?:me )?(?:a |an |the )?(?:\w+ ){0,3}"
        r"(?:function|program|script|class|method|query|regex|algorithm|module|api|endpoint|test)s?",
        r"implement\w*",
        r"refactor\w*",
        r"(?:give|show|suggest|describe) (?:me )?(?:an|the) algorithm",
    )
    + r"|구현|알고리즘을? (?:알려|짜|만들|작성|설계|구현|제시)|코드를? (?:짜|작성)|함수를? (?:만들|작성|짜)|스크립트를? (?:만들|작성|짜)|리팩터링",
    _I,
)
_DEBUG = _re(
    _words(
        r"bugs?",
        r"buggy",
        r"errors?",
        r"exceptions?",
        r"crash(?:es|ed|ing)?",
        r"segfault",
        r"debug\w*",
        r"(?:doesn't|does not|isn't|is not|not) work(?:ing)?",
        r"fix (?:this|my|the|it)",
        r"memory leak",
        r"runs? (?:so |very |really )?slow(?:ly)?",
        r"error handling",
    )
    + r"|버그|에러|오류|예외|크래시|디버깅|고쳐|고치|수정해|안 ?돼요|작동하지|동작하지|느린지|느려|누수",
    _I,
)
_TECH = _re(
    _words(
        r"apis?",
        r"databases?",
        r"sql",
        r"nosql",
        r"postgres(?:ql)?",
        r"mysql",
        r"mongodb",
        r"redis",
        r"kafka",
        r"servers?",
        r"backend",
        r"frontend",
        r"kubernetes",
        r"k8s",
        r"docker",
        r"containers?",
        r"react",
        r"python",
        r"javascript",
        r"typescript",
        r"java",
        r"c\+\+",
        r"rust",
        r"golang",
        r"algorithms?",
        r"time complexity",
        r"recursion",
        r"threads?",
        r"multithreading",
        r"concurrency",
        r"async",
        r"cach(?:e|ing)",
        r"latency",
        r"throughput",
        r"tcp",
        r"udp",
        r"https?(?:/\d)?",
        r"quic",
        r"dns",
        r"distributed",
        r"microservices?",
        r"monolith",
        r"schema",
        r"index(?:es)?",
        r"quer(?:y|ies)",
        r"compilers?",
        r"regex",
        r"shard(?:s|ing)?",
        r"tenants?",
        r"transactions?",
        r"encryption",
        r"cryptograph\w*",
        r"rsa",
        r"neural networks?",
        r"machine learning",
        r"gradient",
        r"git",
        r"linux",
        r"kernel",
        r"oauth",
        r"jwt",
        r"websockets?",
        r"load balancer",
        r"rate limit(?:er|ing)?",
        r"gateway",
        r"deadlock",
        r"race condition",
        r"quicksort",
        r"merge ?sort",
        r"pivot",
        r"data structures?",
        r"binary tree",
        r"hash ?map",
        r"linked list",
        r"graphql",
        r"rest",
        r"saas",
        r"consistency",
    )
    + r"|데이터베이스|서버|백엔드|프론트엔드|알고리즘|복잡도|스레드|멀티스레딩|동시성|비동기|분산|"
    r"트랜잭션|캐시|쿼리|인덱스|아키텍처|마이크로서비스|파티션|토픽|컨슈머|프로듀서|암호|컴파일|"
    r"함수|코드|자료구조|정렬|쿠버네티스|도커|리액트|자바스크립트|파이썬|메모리|네트워크|"
    r"프로토콜|머신러닝|딥러닝|신경망|양자|데드락|퀵소트|해시|스키마|샤딩|로드 ?밸런서",
    _I,
)

# Math.
_PROOF = _re(
    _words(r"prove", r"proofs?", r"show that", r"demonstrate that")
    + r"|증명|임을 보(?:여|이)|함을 보(?:여|이)|성립함을|참임을",
    _I,
)
_MATH_WORDS = _re(
    _words(
        r"integra(?:l|ls|te|tion)",
        r"derivatives?",
        r"differentiat\w*",
        r"solve for",
        r"equations?",
        r"theorem",
        r"lemma",
        r"irrational",
        r"eigen\w*",
        r"matri(?:x|ces)",
        r"probability",
        r"limit of",
        r"polynomial",
        r"logarithm",
        r"converge\w*",
        r"induction",
    )
    + r"|미분|적분|방정식|극한|행렬|확률|무리수|정리를|수열|급수|고유값|귀납법|다항식|로그함수",
    _I,
)
_PROBLEM = _re(
    _words(
        r"(?:find|compute|determine|calculate|return) the (?:minimum|maximum|min|max|shortest"
        r"|longest|optimal|smallest|largest|fewest)"
    )
    + r"|(?:최소|최대|최단|최장|최적)[^.?!\n]{0,30}(?:구하|찾|계산)",
    _I,
)
_LATEX = _re(r"\\(?:frac|int|sum|sqrt|lim|prod|cdot|infty|partial|alpha|beta|theta|pi)\b|\$[^$]+\$")
_MATH_SYMBOLS = _re(
    r"[∫∑∏√∞≤≥≠≈∂πθ]|\b[a-z]\^\d|\b[a-z]\^[a-z]\b|\bsqrt\s*\(|\b(?:sin|cos|tan|log|ln)\s*\("
)
_EQUATION = _re(r"\d?[a-z](?:\^\d)?\s*[-+*/]\s*\d*[a-z0-9][^=\n]{0,40}=\s*-?\d")
_ARITHMETIC = _re(r"\d\s*[-+*/×÷^%]\s*\d")

# Multi-step or analysis wording.
_STRONG_CUES = [
    _re(_words(r"step[- ]by[- ]step", r"walk me through"), _I),
    _re(_words(r"pros and cons", r"trade-?offs?", r"compare and contrast"), _I),
    _re(_words(r"design(?:ing)? (?:a|an|the|my|our)", r"architect\w*", r"root cause"), _I),
    _re(r"단계별|단계적으로|차근차근"),
    _re(r"장단점|트레이드오프|득실"),
    _re(r"설계"),
    _re(_words(r"analy[sz](?:e|is|ing)", r"discuss", r"critique", r"critically"), _I),
    _re(r"분석|논해|논의|고찰"),
]
_CUES = [
    _re(_words(r"compar(?:e|ing|ison)", r"versus", r"vs\.?", r"differences? between"), _I),
    _re(_words(r"evaluate", r"assess"), _I),
    _re(_words(r"explain (?:why|how)", r"why (?:does|do|is|are|would|did|can't|doesn't)"), _I),
    _re(_words(r"how (?:does|do|would|should) .{1,60}(?:work|structure|handle|scale)"), _I),
    _re(_words(r"optimi[sz]\w*", r"troubleshoot\w*", r"strateg(?:y|ies)", r"best practices?"), _I),
    _re(_words(r"implications?", r"impact of", r"consider(?:ing)?"), _I),
    _re(_words(r"what could cause", r"how (?:do|can|should) i (?:debug|fix|handle|design)"), _I),
    _re(r"비교"),
    _re(r"설명해|설명 ?해 ?줘|설명하"),
    _re(r"왜"),
    _re(r"원인|원리"),
    _re(r"차이"),
    _re(r"최적화|평가|전략|검토|방법"),
    _re(r"어떻게 .{0,12}(?:해야|하나요|할까|하는지|정해|찾아|대응)"),
    _re(r"어떤 상황|어느 쪽|어떤 순서"),
    _re(r"시사점|측면에서|영향"),
]

# Task verbs: a request naming several tasks ("summarize and analyze") is multi-step.
_TASKS = [
    _re(_words(r"summari[sz]e", r"outline") + r"|요약", _I),
    _re(_words(r"explain", r"describe") + r"|설명|서술", _I),
    _re(_words(r"analy[sz]e", r"evaluate", r"critique", r"discuss") + r"|분석|평가|논해", _I),
    _re(_words(r"compare", r"contrast") + r"|비교", _I),
    _re(_words(r"write", r"draft", r"compose") + r"|작성|써 ?줘", _I),
    _re(_words(r"implement", r"design", r"build") + r"|구현|설계", _I),
    _re(_words(r"prove", r"solve", r"derive") + r"|증명|풀어", _I),
    _re(_words(r"list", r"suggest", r"recommend") + r"|나열|제안|추천", _I),
]

# Questions.
_QUESTION_MARK = _re(r"[?？]")
_KO_QUESTION_END = _re(r"(?:나요|까요|니까|는지요|을까|인가요|습니까|는가)(?=\s*(?:[.!。\n]|$))")

# Requested output length.
_LONG_FORM = _re(
    _words(
        r"(?:write|draft|compose|create|generate) (?:me )?(?:a |an |the )?(?:[\w-]+ ){0,3}"
        r"(?:essay|report|article|story|blog post|paper|tutorial|guide|documentation|proposal"
        r"|speech|chapter|thesis)"
    )
    + r"|에세이|보고서|논문|리포트|소설|기사를? 써",
    _I,
)
_SIZE = _re(
    _A + r"\d{3,}[- ]?(?:words?|characters|lines)|\d+[- ]pages?" + _Z + r"|\d+\s*자|분량|페이지", _I
)
_DETAIL = _re(
    _words(
        r"detailed",
        r"in detail",
        r"thorough(?:ly)?",
        r"comprehensive(?:ly)?",
        r"in[- ]depth",
        r"extensive(?:ly)?",
        r"elaborate",
    )
    + r"|자세히|자세하게|상세히|상세하게|구체적으로|꼼꼼히|심층|길게",
    _I,
)

# Light cues.
_CHIT_CHAT = _re(
    r"^\W*(?:hi|hello|hey|yo|good (?:morning|afternoon|evening|night)|thanks|thank you|thx|cheers"
    r"|great|awesome|cool)"
    + _Z
    + "|"
    + _words(
        r"how are you",
        r"how was your",
        r"how's it going",
        r"have a (?:nice|great|good|wonderful)",
        r"nice to meet",
        r"i hope you're",
        r"see you",
        r"bye",
        r"lol",
        r"haha\w*",
        r"ugh",
        r"thanks (?:so much|a lot)",
        r"i just wanted to (?:say|stop by)",
    )
    + r"|안녕|고마워|고맙|감사해|감사합니다|좋은 아침|좋은 하루|잘 지내|반가워|반갑|주말 잘|수고|"
    r"ㅋㅋ|ㅎㅎ|힘내|기분이|기분 전환|조심하세요|보내세요|보내셨",
    _I,
)
_TRANSLATION = _re(
    _words(
        r"translate",
        r"translation",
        r"how do you say",
        r"in (?:french|spanish|german|english|korean|japanese|chinese|italian)",
    )
    + r"|번역|영어로|한국어로|일본어로|중국어로|불어로|독일어로",
    _I,
)
_LOOKUP = _re(
    r"^\W*(?:what(?:'s| is| are| does| time)?|who|when|where|which|how (?:many|much|far|old|long)"
    r"|is|are|was|were|do|does|did|can|should)" + _Z,
    _I,
)
_KO_LOOKUP = _re(r"(?:어디|언제|누구|몇|뭐|무엇|무슨)")

# Follow-up that only makes sense with the conversation.
_FOLLOW_UP = _re(
    r"^\W*(?:ok(?:ay)?|and|so|now|then|also)"
    + _Z
    + "|"
    + _words(r"that", r"this", r"it", r"those", r"these", r"above", r"same")
    + r"|그럼|그러면|그리고|이 부분|이것|그것|위의|위 코드|같은 방식|마찬가지",
    _I,
)


# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Signal:
    label: str
    points: float


def _sample(text: str) -> str:
    """The text the regexes scan: all of it, or its head and tail when it is very long."""
    if len(text) <= _HEAD_CHARS + _TAIL_CHARS:
        return text
    return text[:_HEAD_CHARS] + "\n" + text[-_TAIL_CHARS:]


def _weighted_length(text: str, sample: str) -> float:
    hangul = len(_HANGUL.findall(sample))
    if sample is not text and sample:
        hangul = round(hangul * len(text) / len(sample))
    return len(text) + (_HANGUL_WEIGHT - 1) * hangul


def _group(label_points: list[tuple[str, float]], cap: float) -> _Signal | None:
    """One signal for a group: its strongest label and the capped sum of its points."""
    fired = [(label, points) for label, points in label_points if points > 0]
    if not fired:
        return None
    label = max(fired, key=lambda item: item[1])[0]
    return _Signal(label, min(cap, sum(points for _, points in fired)))


def _distinct(patterns: list[re.Pattern[str]], text: str) -> int:
    return sum(1 for pattern in patterns if pattern.search(text))


def _distinct_matches(pattern: re.Pattern[str], text: str, limit: int = 8) -> int:
    seen: set[str] = set()
    for match in pattern.finditer(text):
        seen.add(match.group(0).lower())
        if len(seen) >= limit:
            break
    return len(seen)


def _question_count(text: str) -> int:
    marks = len(_QUESTION_MARK.findall(text))
    return marks + len(_KO_QUESTION_END.findall(text))


def _content_signals(text: str) -> list[_Signal]:
    """Signals read from the words of one message (no length, no context)."""
    signals = [
        _group(
            [
                ("code block", 1.2 if _FENCE.search(text) else 0.0),
                ("stack trace", 1.2 if _TRACE.search(text) else 0.0),
                ("error message", 0.6 if _ERROR_LINE.search(text) else 0.0),
                ("code request", 0.6 if _CODE_REQUEST.search(text) else 0.0),
                ("inline code", 0.5 if _INLINE_CODE.search(text) else 0.0),
                ("code syntax", 0.4 * _distinct(_CODE_CONSTRUCTS, text)),
                ("source file names", 0.3 if _FILE_NAME.search(text) else 0.0),
                ("code identifiers", min(0.6, 0.3 * _distinct_matches(_IDENTIFIER, text, 2))),
                ("debugging request", 0.35 if _DEBUG.search(text) else 0.0),
            ],
            cap=1.6,
        ),
        _group([("technical terms", 0.25 * _distinct_matches(_TECH, text, 3))], cap=0.75),
        _group(
            [
                ("proof wording", 1.0 if _PROOF.search(text) else 0.0),
                ("LaTeX", 0.8 if _LATEX.search(text) else 0.0),
                ("math wording", 0.7 if _MATH_WORDS.search(text) else 0.0),
                ("equation", 0.5 if _EQUATION.search(text) else 0.0),
                ("math notation", 0.5 if _MATH_SYMBOLS.search(text) else 0.0),
                ("optimisation problem", 0.5 if _PROBLEM.search(text) else 0.0),
                ("arithmetic", 0.3 if _ARITHMETIC.search(text) else 0.0),
            ],
            cap=1.6,
        ),
        _group(
            [
                ("multi-step wording", 0.6 * _distinct(_STRONG_CUES, text)),
                ("analysis wording", 0.4 * _distinct(_CUES, text)),
            ],
            cap=1.2,
        ),
        _group(
            [
                ("long output requested", 0.6 if _LONG_FORM.search(text) else 0.0),
                ("explicit output size", 0.6 if _SIZE.search(text) else 0.0),
                ("detail requested", 0.5 if _DETAIL.search(text) else 0.0),
            ],
            cap=1.0,
        ),
    ]
    tasks = _distinct(_TASKS, text)
    if tasks >= 2:
        signals.append(_Signal("several tasks", min(0.7, 0.35 * (tasks - 1))))
    questions = _question_count(text)
    if questions >= 2:
        signals.append(_Signal(f"{questions} questions", min(0.9, 0.3 * (questions - 1))))
    return [signal for signal in signals if signal is not None]


def _length_points(weighted_length: float, threshold: int) -> float:
    ratio = weighted_length / threshold
    if ratio <= 1:
        return 0.3 * ratio
    return min(1.4, 0.3 + 0.45 * math.log2(ratio))


def _context_signal(
    message: str, history: Sequence[Mapping[str, str]], strong_content: bool
) -> _Signal | None:
    if not history:
        return None
    contents = [str(turn.get("content") or "") for turn in history if isinstance(turn, Mapping)]
    size = sum(_weighted_length(content, _sample(content)) for content in contents)
    points = 0.3 * math.log2(1 + size / 1000)
    points += min(0.2, 0.05 * max(0, len(contents) - 2))
    recent = contents[-_HISTORY_SCAN_MESSAGES:]
    recent_points = sum(
        signal.points for content in recent for signal in _content_signals(_sample(content))
    )
    points += min(0.5, 0.3 * recent_points)
    if points < 0.1:
        return None
    if len(message) <= 200 and _FOLLOW_UP.search(message) and not strong_content:
        points += 0.3
    return _Signal("long conversation context", min(1.0, points))


def _light_cues(text: str, weighted_length: float, threshold: int) -> list[_Signal]:
    cues: list[_Signal] = []
    if _CHIT_CHAT.search(text):
        cues.append(_Signal("chit-chat", -0.2))
    if _TRANSLATION.search(text) and weighted_length <= 2 * threshold:
        cues.append(_Signal("short translation", -0.4))
    plain_question = _question_count(text) <= 1 and not _distinct(_STRONG_CUES + _CUES, text)
    short = weighted_length <= 1.5 * threshold
    if plain_question and short and (_LOOKUP.search(text) or _KO_LOOKUP.search(text)):
        cues.append(_Signal("simple lookup", -0.2))
    return cues


def classify(
    message: str, history: Sequence[Mapping[str, str]] = (), *, threshold: int = 100
) -> Route:
    """Pick the model tier for `message`, given the earlier conversation `history`.

    `threshold` is COMPLEXITY_THRESHOLD: the length in characters (Hangul weighted, see the
    module docstring) at which length starts to count as real evidence of a heavy request.
    """
    if threshold < 1:
        raise ValueError("threshold must be a positive number of characters")
    message = message or ""
    sample = _sample(message)
    weighted = _weighted_length(message, sample)

    content = _content_signals(sample)
    strong_content = any(signal.points >= 1.0 for signal in content)
    soft: list[_Signal] = []
    if message.strip():
        soft.append(_Signal("length", _length_points(weighted, threshold)))
    context = _context_signal(message, history, strong_content)
    if context is not None:
        soft.append(context)
    light = _light_cues(sample, weighted, threshold) if message.strip() else []

    if any(cue.label == "chit-chat" for cue in light) and not strong_content:
        soft = [_Signal(signal.label, signal.points * 0.35) for signal in soft]

    evidence = max(0.0, sum(s.points for s in content + soft) + sum(c.points for c in light))
    score = round(evidence / (1 + evidence), 3)
    tier = HEAVY if score >= 0.5 else LIGHT
    return Route(tier, score, _reason(tier, score, content + soft, light, weighted, threshold))


def _reason(
    tier: str,
    score: float,
    signals: list[_Signal],
    light: list[_Signal],
    weighted_length: float,
    threshold: int,
) -> str:
    strongest = sorted((s for s in signals if s.points >= 0.2), key=lambda s: -s.points)[:3]
    names = [s.label for s in strongest]
    if tier == LIGHT:
        names += [cue.label for cue in light]
    if not names:
        names = [f"short plain text (length {round(weighted_length)}/{threshold})"]
    return f"{tier}: {', '.join(names)} (score {score:.2f})"
