"""The text of an email that the classifier reads (SPEC §3 step 1), and HTML made readable.

Everything that decides which lines of an email are the customer's own new words lives
here: quoted replies, reply attributions, Outlook header blocks, signatures, "sent from my
phone" lines and confidentiality disclaimers are dropped, in the languages the shop serves
(cs, sk, pl, sl, ru, de, en). Pure string functions; imports nothing from the project.

The rules, in the order a body is read:
    * a line starting with ``>`` is quoted and skipped, wherever it is, so a customer who
      answers below or between quotes (bottom-posting) keeps every line of their own;
    * a reply attribution ("On … wrote:", "Dne … napsal(a):", "W dniu … napisał(a):",
      "Am … schrieb …:", "… napísal(a):", "… je napisal(a):", "… написал(а):", also wrapped
      over two or three lines) is skipped; when no ``>`` quote follows it, the rest of the
      body is the quoted message without markers and is dropped;
    * an Outlook block ("-----Original Message-----" and its translations, a line of
      underscores, or "From:" followed by "Sent:"/"Date:" within three lines) drops the rest;
    * a signature ("-- ", "S pozdravem", "Best regards", "Mit freundlichen Grüßen",
      "Pozdrawiam", "Lep pozdrav", "С уважением", …), a device line ("Sent from my iPhone",
      "Odesláno z iPhonu", …) or a disclaimer paragraph drops the rest. A bare "Thanks" /
      "Děkuji" only counts when at most a few short lines follow it.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

__all__ = ["classification_text", "html_to_text", "strip_reply"]

# -- reply attributions -------------------------------------------------------------------

_WROTE = (
    r"wrote|writes|napsal(?:\(a\)|a|/a)?|napísal(?:\(a\)|a|/a)?|napisał(?:\(a\)|a)?|pisze|"
    r"schrieb|je\s+napisal(?:\(a\)|a)?|napisal(?:\(a\)|a)?|написал(?:\(а\)|а)?|пишет|"
    r"a\s+écrit|escribió"
)
_ATTRIBUTION = re.compile(
    r"^\s*(?:"
    # "On Mon, … wrote:", "Dne … napsal(a):", "W dniu … napisał(a):", "Am … schrieb …:"
    r"(?:on|dne|dňa|w\s+dniu|am|dnia)\b.*\b(?:" + _WROTE + r")(?!\w).*:"
    # "<date>, Jan Novák <jan@example.cz> wrote:" and friends: a date or an address
    r"|.*[0-9@].*\b(?:" + _WROTE + r")\s*:"
    # "Jan Novák napsal(a):" - the "(a)" spelling only ever comes from a mail client
    r"|.*\b(?:napsal|napísal|napisał|napisal)\(a\)\s*:|.*\bнаписал\(а\)\s*:"
    # Yandex / Mail.ru: "12.03.2024, 10:00, \"Иван\" <ivan@example.ru>:"
    r"|.*[0-9].*<[^<>\s]+@[^<>\s]+>\s*:"
    r")\s*$",
    re.IGNORECASE,
)
# How an attribution begins when a mail client wrapped it over several lines.
_ATTRIBUTION_START = re.compile(r"^\s*(?:on|dne|dňa|w\s+dniu|am|dnia)\s+\S", re.IGNORECASE)

# -- Outlook blocks -----------------------------------------------------------------------

_ORIGINAL_MESSAGE = re.compile(
    r"^\s*-{2,}\s*(?:original\s+message|původní\s+zpráva|pôvodná\s+správa|"
    r"ursprüngliche\s+nachricht|oryginalna\s+wiadomość|wiadomość\s+oryginalna|"
    r"izvirno\s+sporočilo|prvotno\s+sporočilo|исходное\s+сообщение|původní\s+e-?mail|"
    r"пересылаемое\s+сообщение)\s*-{2,}\s*$",
    re.IGNORECASE,
)
_UNDERSCORES = re.compile(r"^\s*_{20,}\s*$")
_FROM_LINE = re.compile(r"^\s*\**(?:from|od|von|от|de)\s*\**\s*:", re.IGNORECASE)
_SENT_LINE = re.compile(
    r"^\s*\**(?:sent|date|datum|odesláno|odoslané|gesendet|wysłano|wysłane|data|"
    r"poslano|poslan|отправлено|дата|envoyé|subject|předmět|predmet|betreff|temat|"
    r"zadeva|тема)\s*\**\s*:",
    re.IGNORECASE,
)

# -- signatures, device lines, disclaimers ------------------------------------------------

_SIGNATURE_DELIMITER = re.compile(r"^--\s?$|^__\s?$")
_CLOSING = re.compile(
    r"^\s*(?:"
    r"s\s+pozdravem|se\s+srdečným\s+pozdravem|s\s+přátelským\s+pozdravem|s\s+úctou|"
    r"s\s+pozdravom|s\s+úctou|s\s+priateľským\s+pozdravom|"
    r"best\s+regards|kind\s+regards|warm\s+regards|regards|best\s+wishes|"
    r"many\s+thanks\s+and\s+regards|thanks\s+and\s+regards|yours\s+(?:sincerely|faithfully)|"
    r"mit\s+freundlichen\s+gr(?:ü|ue|u)(?:ß|ss)en|freundliche\s+gr(?:ü|ue|u)(?:ß|ss)e|"
    r"viele\s+gr(?:ü|ue|u)(?:ß|ss)e|beste\s+gr(?:ü|ue|u)(?:ß|ss)e|"
    r"liebe\s+gr(?:ü|ue|u)(?:ß|ss)e|"
    r"pozdrawiam(?:\s+serdecznie)?|z\s+poważaniem|z\s+wyrazami\s+szacunku|"
    r"lep\s+pozdrav|lepo\s+pozdravljeni|s\s+spoštovanjem|"
    r"с\s+уважением|с\s+наилучшими\s+пожеланиями|всего\s+(?:доброго|хорошего)"
    r")\b[\s,.!]*(?:\S+(?:\s+\S+){0,3})?\s*$",
    re.IGNORECASE,
)
_CLOSING_SHORT = re.compile(r"^\s*(?:mfg|lg|lp|br)[\s,.!]*$", re.IGNORECASE)
_THANKS = re.compile(
    r"^\s*(?:thanks|thank\s+you|cheers|díky|děkuji|ďakujem|vďaka|dziękuję|dzięki|"
    r"danke|vielen\s+dank|hvala|спасибо|благодарю)[\s,.!]*$",
    re.IGNORECASE,
)
_THANKS_TAIL = 4  # a bare "Thanks" starts a signature only when at most this many lines follow
_DEVICE = re.compile(
    r"^\s*(?:sent\s+from\s+my\b|sent\s+from\s+(?:outlook|mail|yahoo|gmail|samsung)|"
    r"sent\s+with\b|get\s+outlook\s+for|"
    r"odesláno\s+z|odesláno\s+ze|odoslané\s+z|odoslané\s+zo|wysłane\s+z|wysłano\s+z|"
    r"gesendet\s+(?:von|mit|vom)|von\s+meinem\s+\S+(?:\s+\S+)?\s+gesendet|"
    r"poslano\s+(?:iz|z|s)|отправлено\s+(?:с|из|со))\b",
    re.IGNORECASE,
)
_DISCLAIMER_START = re.compile(
    r"^\s*(?:disclaimer|confidentiality\s+notice|legal\s+notice|právní\s+upozornění|"
    r"upozornění\s*:|this\s+(?:e-?mail|message|communication)\b|"
    r"(?:tento|tato|táto|této)\s+(?:e-?mail|zpráva|správa|emailová|e-mailová)|"
    r"(?:diese|dieser)\s+(?:e-?mail|nachricht)|ta\s+wiadomość|"
    r"(?:to|ta)\s+(?:e-?sporočilo|sporočilo|e-pošta)|"
    r"(?:это|данное)\s+(?:письмо|сообщение|электронное))",
    re.IGNORECASE,
)
_CONFIDENTIAL = re.compile(
    r"confidential|privileged|intended\s+(?:solely|only)|důvěrn|dôvern|vertraulich|"
    r"poufn|zaupn|конфиденциальн|предназначен",
    re.IGNORECASE,
)

_SUBJECT_PREFIX = re.compile(
    r"^\s*(?:(?:re|fw|fwd|aw|wg|odp|odg|ответ|отв|пересл)"
    r"(?:\s*\[\d+\]|\s*\(\d+\))?\s*:\s*)+",
    re.IGNORECASE,
)


def _quoted(line: str) -> bool:
    return line.lstrip().startswith(">")


def _attribution_at(lines: list[str], index: int) -> int:
    """How many lines (1–3) form a reply attribution starting at *index*, or 0."""
    if _ATTRIBUTION.match(lines[index]):
        return 1
    if not _ATTRIBUTION_START.match(lines[index]):
        return 0
    joined = lines[index]
    for extra in (1, 2):
        if index + extra >= len(lines) or not lines[index + extra].strip():
            return 0
        joined += " " + lines[index + extra].strip()
        if _ATTRIBUTION.match(joined):
            return 1 + extra
    return 0


def _outlook_block(lines: list[str], index: int) -> bool:
    line = lines[index]
    if _ORIGINAL_MESSAGE.match(line) or _UNDERSCORES.match(line):
        return True
    if _FROM_LINE.match(line):
        return any(_SENT_LINE.match(following) for following in lines[index + 1 : index + 4])
    return False


def _disclaimer(lines: list[str], index: int) -> bool:
    if not _DISCLAIMER_START.match(lines[index]):
        return False
    paragraph = []
    for line in lines[index:]:
        if not line.strip():
            break
        paragraph.append(line)
    return bool(_CONFIDENTIAL.search(" ".join(paragraph)))


def _signature(lines: list[str], index: int) -> bool:
    line = lines[index]
    if _SIGNATURE_DELIMITER.match(line) or _CLOSING.match(line) or _CLOSING_SHORT.match(line):
        return True
    if _DEVICE.match(line):
        return True
    if _THANKS.match(line):
        tail = [rest for rest in lines[index + 1 :] if rest.strip() and not _quoted(rest)]
        return len(tail) <= _THANKS_TAIL and all(len(rest.strip()) <= 60 for rest in tail)
    return False


def strip_reply(body: str) -> str:
    """The customer's own new text of *body*: quotes, signatures and disclaimers removed."""
    lines = body.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    kept: list[str] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        if _quoted(line):
            index += 1
            continue
        span = _attribution_at(lines, index)
        if span:
            following = next((x for x in lines[index + span :] if x.strip()), None)
            if following is None or not _quoted(following):
                break  # a quote without markers: everything below is the old message
            index += span
            continue
        if _outlook_block(lines, index) or _signature(lines, index) or _disclaimer(lines, index):
            break
        kept.append(line.rstrip())
        index += 1
    text = "\n".join(kept).strip()
    return re.sub(r"\n{3,}", "\n\n", text)


def classification_text(subject: str, body: str) -> str:
    """Subject (without Re:/Fwd: prefixes) and the customer's own words of *body*."""
    subject = _SUBJECT_PREFIX.sub("", " ".join(subject.split())).strip()
    text = strip_reply(body)
    return "\n\n".join(part for part in (subject, text) if part)


# -- HTML → text --------------------------------------------------------------------------

# fmt: off
_BLOCK = frozenset((
    "address", "article", "aside", "dd", "div", "dl", "dt", "fieldset", "figcaption", "figure",
    "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main", "nav",
    "ol", "p", "pre", "section", "table", "tbody", "thead", "tfoot", "tr", "ul",
))
# fmt: on
_SKIP = frozenset(["head", "script", "style", "template", "noscript", "title", "object"])
_CELL = frozenset(("td", "th"))


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[tuple[int, str]] = []  # (quote depth, text)
        self.current: list[str] = []
        self.depth = 0
        self.skipping = 0
        self.pre = 0
        self.spaced = False  # the text so far ends with a space

    def newline(self) -> None:
        self.lines.append((self.depth, "".join(self.current)))
        self.current = []
        self.spaced = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self.skipping += 1
        elif tag == "br":
            self.newline()
        elif tag == "blockquote":
            self.newline()
            self.depth += 1
        elif tag in _BLOCK:
            if self.current:
                self.newline()
            if tag == "pre":
                self.pre += 1
            if tag == "li":
                self.current.append("- ")
                self.spaced = True
        elif tag in _CELL and self.current and not self.spaced:
            self.current.append(" ")
            self.spaced = True

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self.skipping = max(0, self.skipping - 1)
        elif tag == "blockquote":
            self.newline()
            self.depth = max(0, self.depth - 1)
        elif tag in _BLOCK:
            if tag == "pre":
                self.pre = max(0, self.pre - 1)
            if tag in ("p", "div", "table", "h1", "h2", "h3", "h4", "h5", "h6") or self.current:
                self.newline()

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("br", "hr"):
            self.newline()

    def handle_data(self, data: str) -> None:
        if self.skipping:
            return
        if self.pre:
            first, *rest = data.split("\n")
            self.current.append(first)
            for part in rest:
                self.newline()
                self.current.append(part)
            return
        text = re.sub(r"\s+", " ", data)
        if not self.current or self.spaced:
            text = text.lstrip()
        if text:
            self.current.append(text)
            self.spaced = text.endswith(" ")


def html_to_text(html: str) -> str:
    """Readable plain text of an HTML body: tags dropped, entities decoded, paragraphs and
    line breaks kept, ``<blockquote>`` content prefixed with ``>`` like a quoted reply."""
    parser = _TextExtractor()
    try:
        parser.feed(html)
        parser.close()
    except (AssertionError, ValueError):  # pragma: no cover - html.parser is very tolerant
        pass
    parser.newline()
    out: list[str] = []
    for depth, text in parser.lines:
        text = text.replace("\u00a0", " ").strip()
        line = ("> " * depth + text).rstrip() if text else ""
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out).strip()
