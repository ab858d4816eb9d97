"""The request-complexity classifier's rules: its signals, their patterns and weights, as data.

api/services/classifier.py applies this table and explains how a decision is made; this module
only says what counts and how much. Weights are evidence points: a request is heavy from
HEAVY_BAR points, so a weight of HEAVY_BAR or more makes a request heavy on its own and a
smaller one needs company.

A pattern is either `Words` or a `Regex`. `Words` are read case-insensitively, in English
(`en`, regex alternatives matched as whole words between ASCII boundaries: Hangul counts as a
word character for \\b, so \\bAPI\\b would miss "API와"), in Korean (`ko`, matched anywhere, as
particles attach to the word) and at the opening of the message (`opening`). Each string in a
tuple holds one or more alternatives; their order is the order the regex tries them. A `Regex`
(code, math notation) is read as written, case-sensitive unless it says otherwise.

The weights are the same in both languages. The one difference is length: a Hangul character
counts HANGUL_WEIGHT times, as Korean carries roughly 2-3 times the content of English per
character, and without the weight a long Korean request scores as a short one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# --------------------------------------------------------------------------------------------
# The table's vocabulary.

# ASCII word boundaries, for a `Regex` that reads whole Latin words (see the module docstring).
WORD_START = r"(?<![A-Za-z0-9_])"
WORD_END = r"(?![A-Za-z0-9_])"


@dataclass(frozen=True)
class Words:
    """Words and phrases, per language; any of them matches (case-insensitive)."""

    en: tuple[str, ...] = ()
    ko: tuple[str, ...] = ()
    opening: tuple[str, ...] = ()  # English that must open the message, after any punctuation


@dataclass(frozen=True)
class Regex:
    """A pattern of symbols rather than words, read as written."""

    pattern: str
    multiline: bool = False  # ^ and $ match at each line
    ignore_case: bool = False


Pattern = Words | Regex

# How a signal counts: "all" once, when every pattern matches (usually there is one);
# "patterns" once per pattern that matches; "distinct" once per different text the (single)
# pattern matches, up to `limit`; "occurrences" once per match of any pattern.
Count = Literal["all", "patterns", "distinct", "occurrences"]


@dataclass(frozen=True)
class Signal:
    """`points` each time the patterns count, after the first `free` counts."""

    label: str  # named in the route's reason; "{n}" is replaced by the count
    points: float
    patterns: tuple[Pattern, ...]
    count: Count = "all"
    limit: int = 0  # for "distinct"
    free: int = 0


@dataclass(frozen=True)
class Group:
    """Signals of one kind: their points add up to `cap`, and the strongest names the group."""

    name: str
    cap: float
    signals: tuple[Signal, ...]


@dataclass(frozen=True)
class LightCue:
    """Points (negative) for a request that reads as light, when no longer than `max_length`
    thresholds (weighted length, see HANGUL_WEIGHT); None is any length."""

    label: str
    points: float
    patterns: tuple[Pattern, ...]  # any of them
    max_length: float | None = None


# --------------------------------------------------------------------------------------------
# Scoring.

# Evidence points at which a request becomes heavy (score = points / (HEAVY_BAR + points), so
# these points score 0.5). The bar started at 1.0; on fresh hand-labeled batches every error was
# a heavy request scoring just under it and no light one came near, so it was lowered to 0.75.
HEAVY_BAR = 0.75
# A content signal this strong is decisive: light cues no longer scale the length and context
# points down, and a follow-up in a conversation earns no extra points.
STRONG_SIGNAL = 1.0
# A content signal this strong means the request is not a simple lookup.
LOOKUP_SIGNAL_MAX = 0.5

# The regexes read the head and tail of a long message, characters (where the instruction is),
# not all of it; length is still measured on the whole text. History messages get less.
SCAN_MESSAGE = (4_000, 2_000)
SCAN_HISTORY = (2_000, 1_000)

# --------------------------------------------------------------------------------------------
# Code. Pasted code or a crash means review or debugging; constructs that prose never contains
# count more than hints that it sometimes does.

FENCE = Regex(r"```|~~~")
INLINE_CODE = Regex(r"`[^`\n]{2,200}`")
STACK_TRACE = Regex(
    r"Traceback \(most recent call last\)|File \"[^\"\n]+\", line \d+"
    r"|^\s+at [\w$.<>]+ ?\([^)\n]*:\d+(?::\d+)?\)|[Ss]egmentation fault|core dumped"
    r"|^panic: |^\s*at [\w$.]+\.\w+\([\w$]+\.java:\d+\)",
    multiline=True,
)
ERROR_LINE = Regex(r"\b[A-Z]\w*(?:Error|Exception|Fault)\b(?::| \()|Cannot read propert")
CODE_CONSTRUCTS = (
    Regex(r"\bdef \w+\s*\("),
    Regex(r"\bclass \w+\s*[:({]"),
    Regex(r"\bfunction\s*\w*\s*\("),
    Regex(r"^\s*(?:from [\w.]+ )?import [\w.]+(?: as \w+)?\s*;?\s*$", multiline=True),
    Regex(r"#include\s*[<\"]"),
    Regex(r"\bSELECT\b[^;]{1,300}?\bFROM\b|\bselect \* from\b|\bINSERT INTO\b|\bCREATE TABLE\b"),
    Regex(r"\b(?:const|let|var) \w+\s*="),
    Regex(r"\b(?:printf?|println|console\.log|System\.out\.\w+)\s*\("),
    Regex(r"\b(?:public|private|protected|static) (?:static )?[\w<>\[\]]+ \w+\s*\("),
    Regex(r"^\s*(?:if|for|while|switch)\s*\(.*\)\s*\{", multiline=True),
)
CODE_HINTS = (
    Regex(r"=>|::|&&|\|\||!==?|===?|\+\+|\+=|-="),
    Regex(r"\w\[[\w'\"]{1,20}\]"),
    Regex(r"\b\w+\.\w+\([^()\n]{0,80}\)"),
    Regex(r"[;{}]\s*$", multiline=True),
    Regex(r"\bO\((?:1|n|log ?n|n ?log ?n|n\^?2|n²|[a-z] ?[*+] ?[a-z])\)"),
    Regex(r"\b\w+\([a-z]\s*[-+]\s*\d\)"),
)
FILE_NAME = Regex(
    WORD_START
    + r"[\w\-/]+\.(?:py|js|mjs|ts|tsx|jsx|java|kt|go|rs|rb|php|c|cc|cpp|h|hpp|cs|swift|scala"
    r"|sql|sh|bash|ps1|yaml|yml|toml|ini|json|ipynb|html|css|scss|vue|lock|gradle)" + WORD_END
)
IDENTIFIER = Regex(  # camelCase, snake_case, PascalCaseNames
    WORD_START
    + r"(?:[a-z]{2,}[A-Z][A-Za-z0-9]*|[a-z][a-z0-9]*_[a-z0-9_]+|(?:[A-Z][a-z0-9]+){3,})"
    + WORD_END
)
CODE_REQUEST = Words(
    en=(
        r"(?:write|implement|code|build|create) (?:me )?(?:a |an |the )?(?:\w+ ){0,3}"
        r"(?:function|program|script|class|method|query|regex|algorithm|module|api|endpoint|test)s?",
        r"implement\w*",
        r"refactor\w*",
        r"(?:give|show|suggest|describe) (?:me )?(?:an|the) algorithm",
        r"(?:convert|rewrite|port|refactor|optimi[sz]e) (?:this|the|my|that|it) (?:\w+ ){0,2}"
        r"(?:code|function|script|class|method|query|loop|program|module|component|recursive)",
        r"add (?:error handling|tests|unit tests|logging|type hints|retries)",
    ),
    ko=(
        r"구현|리팩터링",
        r"(?:코드|함수|스크립트|프로그램|클래스|쿼리|정규식|정규 표현식|알고리즘|테스트)"
        r"[을를]? ?(?:알려|짜|만들|작성|설계|제시)",
        r"(?:반복문|재귀|비동기|동기|클래스|함수|타입스크립트|자바스크립트|파이썬|자바)"
        r"(?: ?버전)?\s*(?:으로|로) (?:바꿔|변환|옮겨|다시 짜)",
    ),
)
DEBUGGING = Words(
    en=(
        r"bugs?|buggy|errors?|exceptions?|crash(?:es|ed|ing)?|segfault|debug\w*",
        r"(?:doesn't|does not|isn't|is not|not) work(?:ing)?",
        r"fix (?:this|my|the|it)|memory leak|runs? (?:so |very |really )?slow(?:ly)?",
        r"error handling",
    ),
    ko=(
        r"버그|에러|오류|예외|크래시|디버깅|고쳐|고치|수정해|안 ?돼요",
        r"작동하지|동작하지|느린지|느려|누수",
    ),
)

CODE = Group(
    "code",
    cap=1.6,
    signals=(
        Signal("code block", 1.2, (FENCE,)),
        Signal("stack trace", 1.2, (STACK_TRACE,)),
        Signal("error message", 0.6, (ERROR_LINE,)),  # KeyError: 'x'
        Signal("code request", 0.6, (CODE_REQUEST,)),
        Signal("inline code", 0.5, (INLINE_CODE,)),
        Signal("code syntax", 0.6, CODE_CONSTRUCTS, count="patterns"),
        Signal("code syntax", 0.3, CODE_HINTS, count="patterns"),
        Signal("source file names", 0.3, (FILE_NAME,)),
        Signal("code identifiers", 0.3, (IDENTIFIER,), count="distinct", limit=2),
        Signal("debugging request", 0.35, (DEBUGGING,)),
    ),
)

# --------------------------------------------------------------------------------------------
# Technical terms. A topic is not a difficulty: at most HEAVY_BAR, so it needs another signal.

TECHNICAL_TERMS = Words(
    en=(
        r"apis?|databases?|sql|nosql|postgres(?:ql)?|mysql|mongodb|redis|kafka|servers?",
        r"backend|frontend|kubernetes|k8s|docker|containers?|react|python|javascript",
        r"typescript|java|c\+\+|rust|bash|shell|cron|cassandra|spanner|dynamodb|elasticsearch",
        r"recursi(?:on|ve)|iterative|golang|algorithms?|time complexity|threads?",
        r"multithreading|concurrency|async|cach(?:e|ing)|latency|throughput|tcp|udp",
        r"https?(?:/\d)?|quic|dns|distributed|microservices?|monolith|schema|index(?:es)?",
        r"quer(?:y|ies)|compilers?|regex|shard(?:s|ing)?|tenants?|transactions?|encryption",
        r"cryptograph\w*|rsa|neural networks?|machine learning|gradient|git|linux|kernel",
        r"oauth|jwt|websockets?|load balancer|rate limit(?:er|ing)?|gateway|deadlock",
        r"race condition|quicksort|merge ?sort|pivot|data structures?|binary tree|hash ?map",
        r"linked list|graphql|saas|consistency",
    ),
    ko=(
        r"데이터베이스|서버|백엔드|프론트엔드|알고리즘|복잡도|스레드|멀티스레딩|동시성|비동기|분산",
        r"트랜잭션|캐시|쿼리|인덱스|아키텍처|마이크로서비스|파티션|토픽|컨슈머|프로듀서|암호|컴파일",
        r"함수|코드|자료구조|정렬|쿠버네티스|도커|리액트|자바스크립트|파이썬|메모리|네트워크",
        r"재귀|반복문|셸|쉘|크론|백업|프로토콜|머신러닝|딥러닝|신경망|양자|데드락",
        r"퀵소트|해시|스키마|샤딩|로드 ?밸런서",
    ),
)

TECHNICAL = Group(
    "technical terms",
    cap=0.75,
    signals=(Signal("technical terms", 0.25, (TECHNICAL_TERMS,), count="distinct", limit=3),),
)

# --------------------------------------------------------------------------------------------
# Math. A proof is heavy however short.

PROOF = Words(
    en=(r"prove|proofs?|show that|demonstrate that|derive|derivation",),
    ko=(r"증명|유도해|유도하|임을 보(?:여|이)|함을 보(?:여|이)|성립함을|참임을",),
)
LATEX = Regex(
    r"\\(?:frac|int|sum|sqrt|lim|prod|cdot|infty|partial|alpha|beta|theta|pi)\b"
    r"|\$(?=[^\s\d$])[^$\n]{1,200}[^\s$]\$"
)
MATH_WORDS = Words(  # calculus, algebra and probability
    en=(
        r"integra(?:l|ls|te|tion)|derivatives?|differentiat\w*|solve for|equations?|theorem",
        r"lemma|irrational|eigen\w*|matri(?:x|ces)|probability|limit of|polynomial|logarithm",
        r"converge\w*|induction",
    ),
    ko=(r"미분|적분|방정식|극한|행렬|확률|무리수|정리를|수열|급수|고유값|귀납법|다항식|로그함수",),
)
EQUATION = Regex(r"\d?[a-z](?:\^\d)?\s*[-+*/]\s*\d*[a-z0-9][^=\n]{0,40}=\s*-?\d")
MATH_NOTATION = Regex(
    r"[∫∑∏√∞≤≥≠≈∂πθ]|\[\[[-\d\s,.]+\]"  # symbols, a matrix literal [[1, 2], [3, 4]]
    r"|\b[a-z]\^\d|\b[a-z]\^[a-z]\b|\bsqrt\s*\(|\b(?:sin|cos|tan|log|ln)\s*\("
)
OPTIMISATION_PROBLEM = Words(  # find the minimum ...
    en=(
        r"(?:find|compute|determine|calculate|return) the (?:minimum|maximum|min|max|shortest"
        r"|longest|optimal|smallest|largest|fewest)",
    ),
    ko=(r"(?:최소|최대|최단|최장|최적)[^.?!\n]{0,30}(?:구하|찾|계산)",),
)
ARITHMETIC = Regex(r"\d\s*[-+*/\u00d7\u00f7^%]\s*\d")
WORD_PROBLEM = Words(
    en=(r"at least|at most|how many ways|expected value|combinations?|permutations?",),
    ko=(r"적어도|경우의 수|기댓값|조합|순열",),
)

MATH = Group(
    "math",
    cap=1.6,
    signals=(
        Signal("proof wording", 1.0, (PROOF,)),
        Signal("LaTeX", 0.8, (LATEX,)),
        Signal("math wording", 0.7, (MATH_WORDS,)),
        Signal("equation", 0.5, (EQUATION,)),
        Signal("math notation", 0.5, (MATH_NOTATION,)),
        Signal("optimisation problem", 0.5, (OPTIMISATION_PROBLEM,)),
        Signal("arithmetic", 0.3, (ARITHMETIC,)),
        Signal("word problem", 0.3, (WORD_PROBLEM,)),
    ),
)

# --------------------------------------------------------------------------------------------
# Multi-step or analysis wording: each kind of wording that appears counts once. One mild cue
# ("why do cats purr?") stays light.

MULTI_STEP_WORDING = (
    Words(en=(r"step[- ]by[- ]step|walk me through",)),
    Words(en=(r"pros and cons|trade-?offs?|compare and contrast|for and against",)),
    Words(en=(r"design(?:ing)? (?:a|an|the|my|our)|architect\w*|root cause",)),
    Words(ko=(r"단계별|단계적으로|차근차근",)),
    Words(ko=(r"장단점|트레이드오프|득실|찬반|찬성과 반대",)),
    Words(ko=(r"설계",)),
    Words(en=(r"analy[sz](?:e|is|ing)|discuss|critique|critically",)),
    Words(ko=(r"분석|논해|논의해 ?(?:줘|주세요)|고찰|비판|반박|논리적",)),
)
ANALYSIS_WORDING = (
    Words(en=(r"compar(?:e|ing|ison)|versus|vs\.?|differences? between",)),
    Words(en=(r"evaluate|assess",)),
    Words(
        en=(r"explain [^.?!\n]{0,60}(?:why|how)|why (?:does|do|is|are|would|did|can't|doesn't)",)
    ),
    Words(en=(r"how (?:does|do|would|should) .{1,60}(?:work|structure|handle|scale)",)),
    Words(en=(r"optimi[sz]\w*|troubleshoot\w*|strateg(?:y|ies)|best practices?",)),
    Words(en=(r"implications?|impact of|consider(?:ing)?|nuanced|factors",)),
    Words(en=(r"arguments?|fallac(?:y|ies)|counter-?arguments?|rebut\w*",)),
    Words(
        en=(
            r"which (?:is|one is|would be) better",
            r"(?:should|would) (?:i|we|you) (?:use|choose|pick|go with)",
        )
    ),
    Words(en=(r"what could cause|how (?:do|can|should) i (?:debug|fix|handle|design)",)),
    Words(en=(r"investigat\w*|diagnos\w*|track down|figure out why",)),
    Words(ko=(r"비교",)),
    Words(ko=(r"설명해|설명 ?해 ?줘|설명하",)),
    Words(ko=(r"왜",)),
    Words(ko=(r"원인|원리|이유|요인|논거",)),
    Words(ko=(r"조사해|진단|추적",)),
    Words(ko=(r"차이",)),
    Words(ko=(r"최적화|평가|전략|검토|방법",)),
    Words(ko=(r"어떻게 .{0,12}(?:해야|하나요|할까|하는지|정해|찾아|대응)",)),
    Words(ko=(r"어떤 상황|어떤 순서",)),
    Words(ko=(r"시사점|측면에서|영향|균형 있게|다각도",)),
    Words(ko=(r"어느 (?:것|게|쪽)|뭘 (?:써야|골라야)",)),
)

ANALYSIS = Group(
    "analysis",
    cap=1.2,
    signals=(
        Signal("multi-step wording", 0.6, MULTI_STEP_WORDING, count="patterns"),
        Signal("analysis wording", 0.4, ANALYSIS_WORDING, count="patterns"),
    ),
)

# --------------------------------------------------------------------------------------------
# Requested output.

LONG_FORM = Words(
    en=(
        r"(?:write|draft|compose|create|generate) (?:me )?(?:a |an |the )?(?:[\w-]+ ){0,3}"
        r"(?:essay|report|article|story|blog post|paper|tutorial|guide|documentation|proposal"
        r"|speech|chapter|thesis)",
        r"(?:plan|create|make|build|draft|write|design) (?:me )?(?:a |an |the )?(?:[\w-]+ ){0,3}"
        r"(?:plan|schedule|itinerary|curriculum|roadmap|syllabus|study guide)",
    ),
    ko=(
        r"(?:에세이|보고서|논문|리포트|소설|기사|칼럼|연설문|자기소개서)[^.?!\n]{0,30}?(?:써|작성)",
        r"(?:계획|일정|커리큘럼|로드맵)[을를]? ?(?:짜|세워|만들|작성)",
    ),
)
# A size counts only in a request to produce something ("a 900-page novel I read" is not one).
OUTPUT_SIZE = Regex(
    WORD_START
    + r"\d{3,}[- ]?(?:words?|characters|lines)|\d+[- ]pages?"
    + WORD_END
    # (the boundaries bind to the first and the second alternative only)
    + r"|\d+\s*자|분량|페이지",
    ignore_case=True,
)
WRITE_REQUEST = Words(
    en=(r"write|draft|compose|generate|produce|create|give me",),
    ko=(r"써|작성|만들어",),
)
DETAIL = Words(
    en=(
        r"detailed|in detail|thorough(?:ly)?|comprehensive(?:ly)?|in[- ]depth|extensive(?:ly)?",
        r"elaborate",
    ),
    ko=(r"일별|주별|요일별|자세히|자세하게|상세히|상세하게|구체적으로|꼼꼼히|심층|길게",),
)

OUTPUT = Group(
    "requested output",
    cap=1.0,
    signals=(
        Signal("long output requested", 0.6, (LONG_FORM,)),
        Signal("explicit output size", 0.6, (OUTPUT_SIZE, WRITE_REQUEST)),
        Signal("detail requested", 0.5, (DETAIL,)),
    ),
)

# --------------------------------------------------------------------------------------------
# Several tasks or questions in one request: points for each after the first.

TASKS = (
    Words(en=(r"summari[sz]e|outline",), ko=(r"요약",)),
    Words(en=(r"explain|describe",), ko=(r"설명|서술",)),
    Words(en=(r"analy[sz]e|evaluate|critique|discuss",), ko=(r"분석|평가|논해",)),
    Words(en=(r"compare|contrast",), ko=(r"비교",)),
    Words(en=(r"write|draft|compose",), ko=(r"작성|써 ?줘",)),
    Words(en=(r"implement|design|build",), ko=(r"구현|설계",)),
    Words(en=(r"prove|solve|derive",), ko=(r"증명|풀어",)),
    Words(en=(r"list|suggest|recommend",), ko=(r"나열|제안|추천",)),
)
QUESTION_MARK = Regex(r"[?\uff1f]")
# Korean questions written without a '?'. Only unambiguous endings: "-나요" and "-니까" also
# end statements ("기억나요", "그러니까").
KO_QUESTION_END = Regex(r"(?:까요|는지요|을까|인가요|습니까)(?=\s*(?:[.,!。\n]|$))")
QUESTIONS = (QUESTION_MARK, KO_QUESTION_END)

SEVERAL_TASKS = Group(
    "tasks",
    cap=0.7,
    signals=(Signal("several tasks", 0.35, TASKS, count="patterns", free=1),),
)
SEVERAL_QUESTIONS = Group(
    "questions",
    cap=0.9,
    signals=(Signal("{n} questions", 0.3, QUESTIONS, count="occurrences", free=1),),
)

# What the words of a message show, in the order the points add up.
CONTENT = (CODE, TECHNICAL, MATH, ANALYSIS, OUTPUT, SEVERAL_TASKS, SEVERAL_QUESTIONS)

# --------------------------------------------------------------------------------------------
# Length, measured in thresholds (COMPLEXITY_THRESHOLD characters, Hangul weighted): up to one
# threshold LENGTH_POINTS per threshold, then LENGTH_POINTS + LENGTH_POINTS_PER_DOUBLING per
# doubling, so length alone makes a request heavy only past about 3.2 thresholds.

HANGUL = r"[\uac00-\ud7a3\u3131-\u318e]"
HANGUL_WEIGHT = 2.5
LENGTH_POINTS = 0.25
LENGTH_POINTS_PER_DOUBLING = 0.3
LENGTH_CAP = 1.4

# --------------------------------------------------------------------------------------------
# Conversation context. Size says little (a long chat about a trip stays light); what the
# conversation is about says more (a follow-up in a code review is heavy).

HISTORY_CHARS_UNIT = 1000  # characters, Hangul weighted
HISTORY_POINTS_PER_DOUBLING = 0.25  # of 1 + history size in units
HISTORY_FREE_MESSAGES = 2
HISTORY_POINTS_PER_MESSAGE = 0.05  # for each message after the free ones
HISTORY_CAP = 0.3
HISTORY_CONTENT_MESSAGES = 6  # the last ones, read for content
HISTORY_CONTENT_SHARE = 0.35  # of their content points
HISTORY_CONTENT_CAP = 0.6
CONTEXT_MIN = 0.1  # fewer context points count as none
FOLLOW_UP_POINTS = 0.2
FOLLOW_UP_MAX_CHARS = 200
CONTEXT_CAP = 0.9
# A short message that refers back to the conversation.
FOLLOW_UP = Words(
    opening=(r"ok(?:ay)?|and|so|now|then|also",),
    en=(r"that|this|it|those|these|above|same|what if",),
    ko=(r"그럼|그러면|그리고|이 부분|이것|그것|위의|위 코드|같은 방식|마찬가지|라면|다면",),
)

# --------------------------------------------------------------------------------------------
# Light cues. They never cancel a strong signal: "thanks, and here is the traceback ..." stays
# heavy.

CHIT_CHAT = LightCue(
    "chit-chat",  # greetings, thanks, small talk
    -0.2,
    (
        Words(
            opening=(
                r"hi|hello|hey|yo|good (?:morning|afternoon|evening|night)|thanks|thank you|thx"
                r"|cheers|great|awesome|cool",
            ),
            en=(
                r"how are you|how was your|how's it going|have a (?:nice|great|good|wonderful)",
                r"nice to meet|i hope you're|see you|bye|lol|haha\w*|ugh|thanks|thank you",
                r"i just wanted to (?:say|stop by)",
            ),
            ko=(
                r"안녕|고마워|고맙|감사해|감사합니다|좋은 아침|좋은 하루|잘 지내|반가워|반갑",
                r"주말 잘|수고|ㅋㅋ|ㅎㅎ|힘내|기분이|기분 전환|조심하세요|보내세요|보내셨",
            ),
        ),
    ),
)
# Chit-chat keeps this share of the length and context points, unless a signal is strong.
CHIT_CHAT_KEEPS = 0.35
SHORT_TRANSLATION = LightCue(
    "short translation",
    -0.4,
    (
        Words(
            en=(
                r"translate|translation|how do you say",
                r"in (?:french|spanish|german|english|korean|japanese|chinese|italian)",
            ),
            ko=(r"번역|영어로|한국어로|일본어로|중국어로|불어로|독일어로",),
        ),
    ),
    max_length=2,
)
# A single short question with no other cue: "What is the capital of Australia?", "몇 시간 걸려?".
SIMPLE_LOOKUP = LightCue(
    "simple lookup",
    -0.2,
    (
        Words(
            opening=(
                r"what(?:'s| is| are| does| time)?|who|when|where|which"
                r"|how (?:many|much|far|old|long)|is|are|was|were|do|does|did|can|should",
            )
        ),
        Words(ko=(r"어디|언제|누구|몇|뭐|무엇|무슨",)),
    ),
    max_length=1,
)
