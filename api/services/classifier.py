"""Request-complexity classifier: route a chat request to the light or the heavy model tier.

Pure and cheap, as it runs on every chat request: precompiled regexes, no I/O, no model. About
0.2 ms for a typical message, a few ms for a 2,000-character one. The regexes read at most the
first 4,000 and last 2,000 characters of a message (where the instruction is); length is
measured on all of it.

Scoring. Each signal adds *evidence points* E, and score = E / (0.75 + E), so 0.75 points is the
0.5 boundary: a weight of 0.75 or more reads as "this alone makes the request heavy", smaller
weights need company. The bar started at 1.0; on fresh hand-labeled batches every error was a
heavy request scoring just under it and no light one came near, so it was lowered to 0.75.
Within a group, points add up to the group's cap.

- Code (cap 1.6). A fenced block or a stack trace 1.2 (pasted code or a crash means review or
  debugging); an error line (``KeyError: 'x'``), a code request ("write a function", "convert
  this function", "구현", "쿼리를 작성") and each construct that prose never contains
  (``def f(``, ``#include <``, ``SELECT .. FROM``) 0.6; inline code 0.5; debugging words
  ("bug", "crash", "에러", "고쳐") 0.35; each weaker hint (``x[3]``, ``=>``, ``O(n)``), source
  file names and camelCase/snake_case identifiers 0.3.
- Technical terms (0.25 each, cap 0.75): databases, networking, algorithms, ... A topic is not
  a difficulty, so it needs another signal.
- Math (cap 1.6). "prove", "show that", "derive", "증명", "~임을 보여" 1.0 (a proof is heavy
  however short); LaTeX 0.8; calculus, algebra and probability words ("derivative", "solve
  for", "미분", "방정식", "확률") 0.7; an equation, math notation (``x^2``, ``sqrt(``, ∫, a matrix
  literal) and "find the minimum ..." 0.5; bare arithmetic and word-problem wording ("at least",
  "경우의 수") 0.3.
- Multi-step or analysis wording, English and Korean (cap 1.2): "step by step", "pros and cons",
  "trade-offs", "design a", "analyze", "단계별", "장단점", "설계", "분석" 0.6 each; "compare",
  "explain why", "implications", "investigate", "비교", "설명해", "왜", "원인", "차이" 0.4
  each. One mild cue ("why do cats purr?") stays light. Several task verbs in one request
  ("summarize ... and analyze", "요약하고 분석") add 0.35 per extra task (cap 0.7).
- Several questions: 0.3 per question after the first (cap 0.9), counting '?' and the Korean
  endings that only ask (-까요, -습니까, -인가요) when written without one.
- Requested output (cap 1.0): "write an essay/report/story", "plan a schedule", "에세이를 써줘",
  "계획을 짜줘" 0.6; an explicit size in a request to write ("1500-word", "2000자 분량") 0.6;
  "detailed", "in depth", "자세히", "구체적으로" 0.5.
- Length (cap 1.4). A Hangul character counts as 2.5: Korean carries roughly 2-3 times the
  content of English per character, and without the weight a long Korean request scores as a
  short one. With r = weighted length / threshold: 0.25 * r up to the threshold, then
  0.25 + 0.3 * log2(r), so length alone makes a request heavy only past about 3.2 times the
  threshold; a bit longer than the threshold needs another signal.
- Conversation context (cap 0.9). History size and turns up to 0.3 (0.25 * log2(1 + weighted
  chars / 1000), 0.05 per message after the second): size says little, a long chat about a
  trip stays light. What the conversation is about says more: 0.35 times the content points of
  the last six messages, up to 0.6. A short follow-up that refers back ("that", "what if",
  "그럼", "이 부분") adds 0.2. So context tips a follow-up in a technical thread to heavy, and
  does not force anything on its own.

Light cues. Greetings, thanks and small talk ("how was your weekend", "좋은 하루", "ㅎㅎ") keep
35% of the length and context points and take 0.2 off; a short translation takes 0.4 off; a
single short question with no other cue ("What is the capital of Australia?", "몇 시간 걸려?")
0.2. They never cancel a strong signal: "thanks, and here is the traceback ..." stays heavy.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

_HEAVY = "heavy"
_LIGHT = "light"

# The regexes read the head and tail of a long message (where the instruction is), not all of
# it; length is still measured on the whole text. History messages get a smaller window.
_SCAN_MESSAGE = (4_000, 2_000)
_SCAN_HISTORY = (2_000, 1_000)
_HANGUL_WEIGHT = 2.5
_HISTORY_SCAN_MESSAGES = 6
# Evidence points at which a request becomes heavy (score 0.5). See the module docstring.
_HEAVY_BAR = 0.75


@dataclass(frozen=True)
class Route:
    tier: str  # "light" or "heavy"
    score: float  # 0.0 .. 1.0, >= 0.5 means heavy
    reason: str  # readable, e.g. "heavy: code block, multi-step wording (score 0.72)"


def length_only(message: str, *, threshold: int = 100) -> str:
    """The original rule: heavy when the message is longer than `threshold` characters."""
    return _HEAVY if len(message) > threshold else _LIGHT


# --------------------------------------------------------------------------------------------
# Patterns. Latin terms use ASCII boundaries instead of \b: Hangul counts as a word character,
# so \bAPI\b would not match "API와".

_A = r"(?<![A-Za-z0-9_])"
_Z = r"(?![A-Za-z0-9_])"
_I = re.IGNORECASE


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


def _words(*alternatives: str) -> str:
    return _A + "(?:" + "|".join(alternatives) + ")" + _Z


def _re(pattern: str, flags: int = 0) -> _Pattern:
    return _Pattern(pattern, flags)


_HANGUL = re.compile(r"[\uac00-\ud7a3\u3131-\u318e]")

# Code.
_FENCE = _re(r"```|~~~")
_INLINE_CODE = _re(r"`[^`\n]{2,200}`")
_TRACE = _re(
    r"Traceback \(most recent call last\)|File \"[^\"\n]+\", line \d+"
    r"|^\s+at [\w$.<>]+ ?\([^)\n]*:\d+(?::\d+)?\)|[Ss]egmentation fault|core dumped"
    r"|^panic: |^\s*at [\w$.]+\.\w+\([\w$]+\.java:\d+\)",
    re.MULTILINE,
)
_ERROR_LINE = _re(r"\b[A-Z]\w*(?:Error|Exception|Fault)\b(?::| \()|Cannot read propert")
# Constructs that do not occur in prose (0.6 each) and weaker hints (0.3 each).
_CODE_CONSTRUCTS = [
    _re(r"\bdef \w+\s*\("),
    _re(r"\bclass \w+\s*[:({]"),
    _re(r"\bfunction\s*\w*\s*\("),
    _re(r"^\s*(?:from [\w.]+ )?import [\w.]+(?: as \w+)?\s*;?\s*$", re.MULTILINE),
    _re(r"#include\s*[<\"]"),
    _re(r"\bSELECT\b[^;]{1,300}?\bFROM\b|\bselect \* from\b|\bINSERT INTO\b|\bCREATE TABLE\b"),
    _re(r"\b(?:const|let|var) \w+\s*="),
    _re(r"\b(?:printf?|println|console\.log|System\.out\.\w+)\s*\("),
    _re(r"\b(?:public|private|protected|static) (?:static )?[\w<>\[\]]+ \w+\s*\("),
    _re(r"^\s*(?:if|for|while|switch)\s*\(.*\)\s*\{", re.MULTILINE),
]
_CODE_HINTS = [
    _re(r"=>|::|&&|\|\||!==?|===?|\+\+|\+=|-="),
    _re(r"\w\[[\w'\"]{1,20}\]"),
    _re(r"\b\w+\.\w+\([^()\n]{0,80}\)"),
    _re(r"[;{}]\s*$", re.MULTILINE),
    _re(r"\bO\((?:1|n|log ?n|n ?log ?n|n\^?2|n²|[a-z] ?[*+] ?[a-z])\)"),
    _re(r"\b\w+\([a-z]\s*[-+]\s*\d\)"),
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
        r"(?:convert|rewrite|port|refactor|optimi[sz]e) (?:this|the|my|that|it) (?:\w+ ){0,2}"
        r"(?:code|function|script|class|method|query|loop|program|module|component|recursive)",
        r"add (?:error handling|tests|unit tests|logging|type hints|retries)",
    )
    + r"|구현|리팩터링"
    r"|(?:코드|함수|스크립트|프로그램|클래스|쿼리|정규식|정규 표현식|알고리즘|테스트)"
    r"[을를]? ?(?:알려|짜|만들|작성|설계|제시)"
    r"|(?:반복문|재귀|비동기|동기|클래스|함수|타입스크립트|자바스크립트|파이썬|자바)"
    r"(?: ?버전)?\s*(?:으로|로) (?:바꿔|변환|옮겨|다시 짜)",
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
    + r"|버그|에러|오류|예외|크래시|디버깅|고쳐|고치|수정해|안 ?돼요"
    r"|작동하지|동작하지|느린지|느려|누수",
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
        r"bash",
        r"shell",
        r"cron",
        r"cassandra",
        r"spanner",
        r"dynamodb",
        r"elasticsearch",
        r"recursi(?:on|ve)",
        r"iterative",
        r"golang",
        r"algorithms?",
        r"time complexity",
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
        r"saas",
        r"consistency",
    )
    + r"|데이터베이스|서버|백엔드|프론트엔드|알고리즘|복잡도|스레드|멀티스레딩|동시성|비동기|분산|"
    r"트랜잭션|캐시|쿼리|인덱스|아키텍처|마이크로서비스|파티션|토픽|컨슈머|프로듀서|암호|컴파일|"
    r"함수|코드|자료구조|정렬|쿠버네티스|도커|리액트|자바스크립트|파이썬|메모리|네트워크|"
    r"재귀|반복문|셸|쉘|크론|백업|프로토콜|머신러닝|딥러닝|신경망|양자|데드락|"
    r"퀵소트|해시|스키마|샤딩|로드 ?밸런서",
    _I,
)

# Math.
_PROOF = _re(
    _words(r"prove", r"proofs?", r"show that", r"demonstrate that", r"derive", r"derivation")
    + r"|증명|유도해|유도하|임을 보(?:여|이)|함을 보(?:여|이)|성립함을|참임을",
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
_LATEX = _re(
    r"\\(?:frac|int|sum|sqrt|lim|prod|cdot|infty|partial|alpha|beta|theta|pi)\b"
    r"|\$(?=[^\s\d$])[^$\n]{1,200}[^\s$]\$"
)
_MATH_SYMBOLS = _re(
    r"[∫∑∏√∞≤≥≠≈∂πθ]|\[\[[-\d\s,.]+\]"  # symbols, a matrix literal [[1, 2], [3, 4]]
    r"|\b[a-z]\^\d|\b[a-z]\^[a-z]\b|\bsqrt\s*\(|\b(?:sin|cos|tan|log|ln)\s*\("
)
_EQUATION = _re(r"\d?[a-z](?:\^\d)?\s*[-+*/]\s*\d*[a-z0-9][^=\n]{0,40}=\s*-?\d")
_ARITHMETIC = _re(r"\d\s*[-+*/\u00d7\u00f7^%]\s*\d")
_WORD_PROBLEM = _re(
    _words(
        r"at least",
        r"at most",
        r"how many ways",
        r"expected value",
        r"combinations?",
        r"permutations?",
    )
    + r"|적어도|경우의 수|기댓값|조합|순열",
    _I,
)

# Multi-step or analysis wording.
_STRONG_CUES = [
    _re(_words(r"step[- ]by[- ]step", r"walk me through"), _I),
    _re(_words(r"pros and cons", r"trade-?offs?", r"compare and contrast", r"for and against"), _I),
    _re(_words(r"design(?:ing)? (?:a|an|the|my|our)", r"architect\w*", r"root cause"), _I),
    _re(r"단계별|단계적으로|차근차근"),
    _re(r"장단점|트레이드오프|득실|찬반|찬성과 반대"),
    _re(r"설계"),
    _re(_words(r"analy[sz](?:e|is|ing)", r"discuss", r"critique", r"critically"), _I),
    _re(r"분석|논해|논의해 ?(?:줘|주세요)|고찰|비판|반박|논리적"),
]
_CUES = [
    _re(_words(r"compar(?:e|ing|ison)", r"versus", r"vs\.?", r"differences? between"), _I),
    _re(_words(r"evaluate", r"assess"), _I),
    _re(
        _words(
            r"explain [^.?!\n]{0,60}(?:why|how)", r"why (?:does|do|is|are|would|did|can't|doesn't)"
        ),
        _I,
    ),
    _re(_words(r"how (?:does|do|would|should) .{1,60}(?:work|structure|handle|scale)"), _I),
    _re(_words(r"optimi[sz]\w*", r"troubleshoot\w*", r"strateg(?:y|ies)", r"best practices?"), _I),
    _re(_words(r"implications?", r"impact of", r"consider(?:ing)?", r"nuanced", r"factors"), _I),
    _re(_words(r"arguments?", r"fallac(?:y|ies)", r"counter-?arguments?", r"rebut\w*"), _I),
    _re(
        _words(
            r"which (?:is|one is|would be) better",
            r"(?:should|would) (?:i|we|you) (?:use|choose|pick|go with)",
        ),
        _I,
    ),
    _re(_words(r"what could cause", r"how (?:do|can|should) i (?:debug|fix|handle|design)"), _I),
    _re(_words(r"investigat\w*", r"diagnos\w*", r"track down", r"figure out why"), _I),
    _re(r"비교"),
    _re(r"설명해|설명 ?해 ?줘|설명하"),
    _re(r"왜"),
    _re(r"원인|원리|이유|요인|논거"),
    _re(r"조사해|진단|추적"),
    _re(r"차이"),
    _re(r"최적화|평가|전략|검토|방법"),
    _re(r"어떻게 .{0,12}(?:해야|하나요|할까|하는지|정해|찾아|대응)"),
    _re(r"어떤 상황|어떤 순서"),
    _re(r"시사점|측면에서|영향|균형 있게|다각도"),
    _re(r"어느 (?:것|게|쪽)|뭘 (?:써야|골라야)"),
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
_QUESTION_MARK = _re(r"[?\uff1f]")
# Only unambiguous endings: "-나요" and "-니까" also end statements ("기억나요", "그러니까").
_KO_QUESTION_END = _re(r"(?:까요|는지요|을까|인가요|습니까)(?=\s*(?:[.,!。\n]|$))")

# Requested output length.
_LONG_FORM = _re(
    _words(
        r"(?:write|draft|compose|create|generate) (?:me )?(?:a |an |the )?(?:[\w-]+ ){0,3}"
        r"(?:essay|report|article|story|blog post|paper|tutorial|guide|documentation|proposal"
        r"|speech|chapter|thesis)"
    )
    + "|"
    + _words(
        r"(?:plan|create|make|build|draft|write|design) (?:me )?(?:a |an |the )?(?:[\w-]+ ){0,3}"
        r"(?:plan|schedule|itinerary|curriculum|roadmap|syllabus|study guide)"
    )
    + r"|(?:에세이|보고서|논문|리포트|소설|기사|칼럼|연설문|자기소개서)[^.?!\n]{0,30}?(?:써|작성)"
    + r"|(?:계획|일정|커리큘럼|로드맵)[을를]? ?(?:짜|세워|만들|작성)",
    _I,
)
# A size counts only in a request to produce something ("a 900-page novel I read" is not one).
_WRITE = _re(
    _words(r"write", r"draft", r"compose", r"generate", r"produce", r"create", r"give me")
    + r"|써|작성|만들어",
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
    + r"|일별|주별|요일별|자세히|자세하게|상세히|상세하게|구체적으로|꼼꼼히|심층|길게",
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
        r"thanks",
        r"thank you",
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
    + _words(r"that", r"this", r"it", r"those", r"these", r"above", r"same", r"what if")
    + r"|그럼|그러면|그리고|이 부분|이것|그것|위의|위 코드|같은 방식|마찬가지|라면|다면",
    _I,
)


# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Signal:
    label: str
    points: float


def _sample(text: str, window: tuple[int, int] = _SCAN_MESSAGE) -> str:
    """The text the regexes scan: all of it, or its head and tail when it is long."""
    head, tail = window
    if len(text) <= head + tail:
        return text
    return text[:head] + "\n" + text[-tail:]


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


def _distinct(patterns: list[_Pattern], text: _Text) -> int:
    return sum(1 for pattern in patterns if pattern.search(text))


def _distinct_matches(pattern: _Pattern, text: _Text, limit: int = 8) -> int:
    seen: set[str] = set()
    for match in pattern.finditer(text):
        seen.add(match.group(0).lower())
        if len(seen) >= limit:
            break
    return len(seen)


def _question_count(text: _Text) -> int:
    return _QUESTION_MARK.count(text) + _KO_QUESTION_END.count(text)


def _content_signals(text: _Text) -> list[_Signal]:
    """Signals read from the words of one message (no length, no context)."""
    signals = [
        _group(
            [
                ("code block", 1.2 if _FENCE.search(text) else 0.0),
                ("stack trace", 1.2 if _TRACE.search(text) else 0.0),
                ("error message", 0.6 if _ERROR_LINE.search(text) else 0.0),
                ("code request", 0.6 if _CODE_REQUEST.search(text) else 0.0),
                ("inline code", 0.5 if _INLINE_CODE.search(text) else 0.0),
                ("code syntax", 0.6 * _distinct(_CODE_CONSTRUCTS, text)),
                ("code syntax", 0.3 * _distinct(_CODE_HINTS, text)),
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
                ("word problem", 0.3 if _WORD_PROBLEM.search(text) else 0.0),
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
                (
                    "explicit output size",
                    0.6 if _SIZE.search(text) and _WRITE.search(text) else 0.0,
                ),
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
        return 0.25 * ratio
    return min(1.4, 0.25 + 0.3 * math.log2(ratio))


def _context_signal(
    message: str, history: Sequence[Mapping[str, str]], strong_content: bool
) -> _Signal | None:
    if not history:
        return None
    contents = [str(turn.get("content") or "") for turn in history if isinstance(turn, Mapping)]
    size = sum(_weighted_length(content, _sample(content, _SCAN_HISTORY)) for content in contents)
    # Size and turns say little on their own (a long chat about a trip is still light) ...
    points = min(0.3, 0.25 * math.log2(1 + size / 1000) + 0.05 * max(0, len(contents) - 2))
    # ... what the conversation is about says more: a follow-up in a code review is heavy.
    recent = contents[-_HISTORY_SCAN_MESSAGES:]
    recent_points = sum(
        signal.points
        for content in recent
        for signal in _content_signals(_Text.of(_sample(content, _SCAN_HISTORY)))
    )
    points += min(0.6, 0.35 * recent_points)
    if points < 0.1:
        return None
    if len(message) <= 200 and _FOLLOW_UP.search(_Text.of(message)) and not strong_content:
        points += 0.2
    return _Signal("long conversation context", min(0.9, points))


def _light_cues(
    text: _Text, weighted_length: float, threshold: int, content: list[_Signal]
) -> list[_Signal]:
    cues: list[_Signal] = []
    if _CHIT_CHAT.search(text):
        cues.append(_Signal("chit-chat", -0.2))
    if _TRANSLATION.search(text) and weighted_length <= 2 * threshold:
        cues.append(_Signal("short translation", -0.4))
    plain_question = (
        _question_count(text) <= 1
        and not _distinct(_STRONG_CUES + _CUES, text)
        and not any(signal.points >= 0.5 for signal in content)
    )
    short = weighted_length <= threshold
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
    threshold = max(1, int(threshold))  # a misconfigured 0 must not fail every chat request
    message = message or ""
    if not message.strip():
        return Route(_LIGHT, 0.0, "light: empty message, no signals (score 0.00)")
    sample = _sample(message)
    weighted = _weighted_length(message, sample)
    text = _Text.of(sample)

    content = _content_signals(text)
    strong_content = any(signal.points >= 1.0 for signal in content)
    soft = [_Signal("length", _length_points(weighted, threshold))]
    context = _context_signal(message, history, strong_content)
    if context is not None:
        soft.append(context)
    light = _light_cues(text, weighted, threshold, content)

    if any(cue.label == "chit-chat" for cue in light) and not strong_content:
        soft = [_Signal(signal.label, signal.points * 0.35) for signal in soft]

    evidence = max(0.0, sum(s.points for s in content + soft) + sum(c.points for c in light))
    # Rounded as shown in the reason, and the tier is read from that same number.
    score = round(evidence / (_HEAVY_BAR + evidence), 2)
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
    strongest = sorted((s for s in signals if s.points >= 0.2), key=lambda s: -s.points)[:3]
    names = [s.label for s in strongest]
    if tier == _LIGHT:
        names += [cue.label for cue in light]
    if not names:
        names = [f"short plain text (length {round(weighted_length)}/{threshold})"]
    return f"{tier}: {', '.join(names)} (score {score:.2f})"
