"""Language evidence for the text classifier: function words and letters per language.

Detection is a vote. Every word of a message that is typical of a language (``jsem`` for
Czech, ``som`` for Slovak, ``się`` for Polish, ``kje`` for Slovenian, ``ich`` for German …)
votes for it with a weight, and so does every word written with a letter only that language
uses (ř, ľ, ł, ß, Cyrillic). Russian typed in Latin letters is recognised through
:func:`skeleton`, a lossy spelling that maps the common transliterations of one Russian
word to one key (``moy``, ``moj`` and ``moi`` are all ``moi``).

The votes are computed once per distinct word (the classifier caches them with its own
per-word data, adds a vote for the language of each rule a word matches, and sums a
message's votes; the first of :data:`LANGUAGES` wins a tie). Which language wins never
changes the category: the rules of every language apply to every message.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

#: The languages the shipped rules cover, in the order ties are broken.
LANGUAGES: tuple[str, ...] = ("cs", "sk", "pl", "sl", "ru", "en", "de")

# Folded (lower case, no diacritics) function words and frequent short words; the weight is
# how typical the word is of that one language (shared words carry little or nothing).
# fmt: off
_MARKERS: Mapping[str, Mapping[str, float]] = {
    "cs": {
        "jsem": 2, "jste": 1.5, "jsme": 1.5, "jsou": 1.5, "neni": 1.5, "jak": 1, "kdy": 1.5,
        "proc": 1.5, "chci": 2, "bych": 1, "muzete": 1.5, "muzu": 1.5, "muj": 1, "dekuji": 2,
        "dekuju": 2, "jeste": 1.5, "ktery": 1, "ktera": 1, "tohle": 1.5, "tahle": 1.5,
        "nebo": 1.5, "pro": 0.8, "neco": 1, "zatim": 1, "porad": 1, "taky": 1, "vase": 1,
        "mate": 0.5, "jde": 1, "lze": 1.5, "uz": 0.3, "se": 0.3, "ze": 0.3, "moje": 0.3,
        "mi": 0.2, "potrebuji": 1.5, "potrebuju": 1.5, "mam": 0.3, "nemam": 0.5, "jaky": 1,
        "jakou": 1.5, "jaka": 0.5, "kolik": 1.5, "dobry": 0.3, "bylo": 1, "byl": 0.5,
        "prosim": 0.3, "toho": 0.3, "kde": 0.3, "tim": 0.5, "ten": 0.3, "to": 0.1,
        "byla": 0.5, "jen": 1, "tenhle": 1.5, "tyhle": 1.5, "jsi": 1.5, "zitra": 1, "vcera": 1,
        "tyden": 1.5, "mesic": 1.5, "kvuli": 1.5, "abych": 1.5, "jiz": 1, "chtel": 1.5,
        "chtela": 1.5,
    },
    "sk": {
        "som": 2, "sme": 1.5, "ste": 1, "ako": 1.5, "kedy": 2, "preco": 2, "chcem": 2,
        "mozete": 1.5, "mozem": 1.5, "dakujem": 2, "este": 1.5, "ktory": 1.5, "ktora": 1,
        "toto": 0.5, "alebo": 2, "pre": 1.5, "sa": 1.5, "vo": 1, "zo": 1, "aj": 1.5,
        "iba": 1, "len": 1, "stale": 1, "zatial": 1.5, "neviem": 1.5, "viem": 1, "nie": 0.5,
        "nieco": 1.5, "velmi": 1, "potrebujem": 1.5, "mam": 0.3, "moj": 0.2, "uz": 0.3,
        "tych": 1, "tej": 1, "aky": 1, "ake": 1, "aka": 0.5, "kolko": 1.5, "bol": 1,
        "bola": 1.5, "bolo": 1.5, "dobry": 0.3, "prosim": 0.3, "kde": 0.3, "si": 0.3, "by": 0.3,
        "ma": 0.2, "tyzden": 1.5, "mesiac": 1.5, "mojho": 1.5, "nechcem": 2, "chcel": 1.5,
        "chcela": 1.5, "pri": 0.5,
    },
    "pl": {
        "jest": 2, "sie": 2, "czy": 2, "nie": 0.8, "gdzie": 2, "kiedy": 2, "dlaczego": 2,
        "moge": 2, "prosze": 2, "dziekuje": 2, "dzien": 1.5, "juz": 1.5, "jeszcze": 2,
        "chce": 0.8, "lub": 2, "albo": 2, "dla": 2, "moja": 1, "moje": 0.3, "bo": 1,
        "jestem": 2, "mnie": 1.5, "zeby": 2, "mozna": 2, "moze": 1.5, "jaki": 1, "jaka": 0.5,
        "jakie": 1.5, "tylko": 2, "przez": 2, "bardzo": 2, "wiem": 1, "witam": 2, "pan": 1,
        "pani": 1, "panstwo": 2, "ile": 1.5, "ktory": 0.3, "ze": 0.3, "mi": 0.2, "mam": 0.3,
        "ten": 0.3, "go": 1, "co": 0.3, "ma": 0.2, "niz": 1.5, "inna": 1, "stoi": 1,
        "byla": 0.5, "przy": 1.5, "sa": 0.2,
    },
    "sl": {
        "sem": 1.5, "ni": 1.5, "ali": 2, "kako": 2, "kje": 2, "kdaj": 2, "zakaj": 2,
        "kateri": 1.5, "katerega": 2, "lahko": 2, "hvala": 2, "pozdravljeni": 3, "zivjo": 2,
        "imam": 1, "zelim": 2, "rad": 1, "rada": 1, "bi": 0.8, "in": 0.5, "ga": 1.5,
        "so": 0.5, "bo": 1.5, "boste": 2, "kaj": 2, "naj": 1, "tudi": 2, "samo": 1,
        "kaksen": 2, "kaksna": 2, "kaksne": 2, "smo": 1.5, "nisem": 2, "zelo": 2, "ampak": 2,
        "oziroma": 2, "lp": 1, "dan": 0.5, "moj": 0.2, "moje": 0.3, "da": 0.3, "je": 0.2,
        "se": 0.3, "za": 0.3, "pa": 1, "sta": 0.5, "koliko": 1.5, "prosim": 0.3, "ze": 0.3,
        "tega": 1, "tem": 0.5, "en": 1, "teden": 1.5, "drugo": 1.5, "kot": 1.5, "hocem": 2,
        "ker": 2, "strani": 1,
    },
    "en": {
        "the": 2, "is": 1, "my": 1.5, "i": 0.5, "how": 1.5, "where": 1.5, "when": 1.5,
        "why": 1.5, "can": 1, "you": 1.5, "please": 2, "pls": 1, "thanks": 2, "thank": 2,
        "hello": 1.5, "hi": 1, "it": 1, "of": 1, "and": 1, "but": 1, "this": 1.5, "was": 1,
        "have": 1.5, "has": 1, "not": 1, "do": 1, "does": 2, "still": 1, "what": 1.5,
        "whats": 1.5, "wont": 1, "dont": 1, "cant": 1, "didnt": 1, "doesnt": 1, "isnt": 1,
        "for": 1, "with": 1, "want": 1, "would": 1.5, "im": 1, "which": 1.5, "get": 1,
        "an": 1, "be": 1, "are": 1.5, "there": 1, "will": 1, "in": 1, "seems": 1, "hasnt": 1,
        "on": 1, "me": 0.5, "your": 1.5, "its": 1,
    },
    "de": {
        "ich": 2, "ist": 2, "mein": 2, "meine": 2, "meinen": 2, "nicht": 2, "wie": 2,
        "wo": 1.5, "wann": 2, "warum": 2, "kann": 1.5, "bitte": 2, "danke": 2, "hallo": 1.5,
        "es": 0.5, "das": 1.5, "der": 1.5, "die": 1.5, "und": 2, "aber": 2, "noch": 2,
        "habe": 2, "hab": 1.5, "hat": 1.5, "mit": 1.5, "fur": 1.5, "ein": 1.5, "eine": 2,
        "einen": 2, "wurde": 2, "nach": 1.5, "dem": 1.5, "sie": 1.5, "sich": 2, "auf": 2,
        "zu": 1, "von": 1.5, "bei": 1.5, "schon": 1.5, "mir": 1.5, "gibt": 2, "welche": 2,
        "welchen": 2, "man": 0.5, "kein": 2, "keine": 2, "ihr": 1.5, "was": 0.5, "im": 1,
    },
}

# Russian written in Latin letters, in any common transliteration (looked up by skeleton).
_RU_LATIN: Mapping[str, float] = {
    "gde": 2, "kak": 2, "kogda": 2, "pochemu": 2, "chto": 2, "shto": 2, "eto": 2, "mne": 1,
    "menya": 2, "moy": 1, "moya": 1.5, "moyu": 1.5, "uzhe": 2, "eshche": 2, "eshe": 1,
    "pozhaluysta": 3, "spasibo": 3, "zdravstvuyte": 3, "privet": 2, "khochu": 3, "mozhno": 2,
    "nuzhno": 2, "nuzhen": 2, "ili": 1.5, "dlya": 2, "etot": 2, "eta": 1, "etogo": 2,
    "kakoy": 2, "kakaya": 2, "kakie": 2, "kakoe": 2, "ya": 1, "est": 1, "li": 0.5,
    "ne": 0.3, "net": 0.5, "vy": 0.5, "chem": 1, "podskazhite": 3, "skolko": 2, "tolko": 1,
    "mozhet": 2, "budet": 2, "sdelat": 1.5, "delat": 1.5,
}
# fmt: on

# Letters that only one of the languages uses (before folding).
_LETTERS: Mapping[str, str] = {
    "cs": "ěřů",
    "sk": "ľĺôŕ",
    "pl": "ąęłńśźżć",
    "de": "ßöü",
}
_LETTER_VOTE = 3.0
_CYRILLIC = re.compile("[\u0400-\u04ff]")
_CYRILLIC_VOTE = 4.0

_TRANSLIT = {
    "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "е": "e", "ж": "zh", "з": "z",
    "и": "i", "к": "k", "л": "l", "м": "m", "н": "n", "о": "o", "п": "p", "р": "r",
    "с": "s", "т": "t", "у": "u", "ф": "f", "х": "kh", "ц": "ts", "ч": "ch", "ш": "sh",
    "щ": "shch", "ъ": "", "ы": "y", "ь": "", "э": "e", "ю": "yu", "я": "ya",
}  # fmt: skip
_TRANSLIT_TABLE = str.maketrans(_TRANSLIT)
_SKELETON_STEPS = (
    ("shch", "sh"), ("sch", "sh"), ("kh", "h"), ("x", "h"), ("tz", "c"), ("ts", "c"),
    ("w", "v"), ("j", "i"), ("y", "i"),
)  # fmt: skip
_LATIN_WORD = re.compile(r"^[a-z]+$")


def transliterate(folded: str) -> str:
    """Folded Russian in Latin letters (``заказ`` -> ``zakaz``); other letters unchanged.

    *folded* has gone through :func:`router.classify.fold`, so й and ё are already и and е.
    """
    return folded.translate(_TRANSLIT_TABLE)


def skeleton(latin: str) -> str:
    """A lossy key shared by the usual Latin spellings of one Russian word.

    ``zhdu``, ``moy``/``moj``/``moi``, ``khochu``/``hochu``, ``otslezhivaet``/
    ``otslejivaet`` … map to one key each, so a stem transliterated once matches them all.
    """
    key = latin
    for old, new in _SKELETON_STEPS:
        if old in key:
            key = key.replace(old, new)
    return key


def is_latin_word(token: str) -> bool:
    return _LATIN_WORD.match(token) is not None


_MARKER_INDEX: dict[str, tuple[tuple[str, float], ...]] = {}
for _lang, _words in _MARKERS.items():
    for _word, _weight in _words.items():
        _MARKER_INDEX[_word] = (*_MARKER_INDEX.get(_word, ()), (_lang, float(_weight)))
_RU_LATIN_INDEX: dict[str, float] = {skeleton(word): float(w) for word, w in _RU_LATIN.items()}


def is_function_word(folded: str) -> bool:
    """Whether *folded* is one of the frequent short words the languages are told by."""
    return folded in _MARKER_INDEX or (
        is_latin_word(folded) and skeleton(folded) in _RU_LATIN_INDEX
    )


def word_votes(raw: str, folded: str) -> tuple[tuple[str, float], ...]:
    """The language votes of one word: *raw* as written (case-folded), *folded* its fold."""
    votes: dict[str, float] = {}
    for lang, weight in _MARKER_INDEX.get(folded, ()):
        votes[lang] = votes.get(lang, 0.0) + weight
    if not raw.isascii():
        if _CYRILLIC.search(raw):
            votes["ru"] = votes.get("ru", 0.0) + _CYRILLIC_VOTE
        for lang, letters in _LETTERS.items():
            if any(letter in raw for letter in letters):
                votes[lang] = votes.get(lang, 0.0) + _LETTER_VOTE
    elif is_latin_word(folded):
        ru = _RU_LATIN_INDEX.get(skeleton(folded))
        if ru is not None:
            votes["ru"] = votes.get("ru", 0.0) + ru
    return tuple(votes.items())
