"""How each channel's templates are named and how data from logs is escaped for it.

Every ``{{ expression }}`` a template prints goes through its channel's escaper (see
``watcher.templates``). Log data is hostile input: a ``<!channel>`` must not ping a Slack channel,
a ``<script>`` must not run in an email client, a line break must not start a new mail header, and
an ANSI escape must not repaint a terminal.

A message made of several parts (an email's subject, text and HTML) has one channel per part, all
in one template folder (``email/firing.subject.txt.j2``, ``email/firing.txt.j2``,
``email/firing.html.j2``). A receiver's override keyed by the event alone (``firing: x.j2``)
applies to the main part; the other parts are overridden as ``email_html.firing: x.html.j2``.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from dataclasses import dataclass

from watcher.incidents.model import Event

_ENTITIES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "`": "\u02cb"})
# A mark that touches a space, punctuation or an end can open or close bold, italics or
# strikethrough; inside a word (model_version) it never does, and is left alone.
_MARK_AT_EDGE = re.compile(r"(?<![^\W_])[*_~]|[*_~](?![^\W_])")


def escape_slack(text: str) -> str:
    """Slack mrkdwn control characters: ``<!channel>``, ``<@U1>`` and ``<url|x>`` become inert, and
    ``*``, ``_``, ``~`` and backticks from data format nothing and cannot end a code span.

    mrkdwn has no escape character: a zero-width space on each side of a mark that could pair
    keeps it (a copied value still reads as the log said) but stops the pairing; a backtick
    becomes U+02CB (looks alike, cannot end a code span).
    """
    parts = _URL.split(text)  # URLs at odd indexes: a zero-width space would break the link
    return "".join(
        part.translate(_URL_ENTITIES) if index % 2 else _marks_inert(part.translate(_ENTITIES))
        for index, part in enumerate(parts)
    )


_URL = re.compile(r"(\bhttps?://[^\s<>|`]+)")
_URL_ENTITIES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})


def _marks_inert(text: str) -> str:
    return _MARK_AT_EDGE.sub(lambda match: f"\u200b{match.group()}\u200b", text)


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_CONTROL_OR_BREAK = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_LINE_BREAKS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def _shown(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_console(text: str) -> str:
    """Terminal control characters (ANSI escapes, carriage returns) from logs are shown, not obeyed;
    line breaks and tabs are kept (the text part of an email)."""
    return _CONTROL.sub(_shown, text)


def escape_line(text: str) -> str:
    """Every control character shown as ``\\xNN``, line breaks included: a value from logs stays on
    its line of a terminal (the console receiver, ``watcher incidents``, ``watcher silence ls``)."""
    return _CONTROL_OR_BREAK.sub(_shown, text)


def escape_html(text: str) -> str:
    """HTML special characters, quotes included (data may land in an attribute)."""
    return html.escape(text, quote=True)


def one_line(text: str) -> str:
    """Line breaks and other control characters become one space: for mail headers and SMS, where a
    CR/LF from log data would start a new header or waste a segment."""
    return _LINE_BREAKS.sub(" ", text)


def keep(text: str) -> str:
    """No escaping: for output that is encoded as a whole afterwards (JSON)."""
    return text


@dataclass(frozen=True)
class Channel:
    """How one channel's templates are named and escaped."""

    name: str
    escape: Callable[[str], str]
    extension: str  # default template: <folder>/<event>.<extension>.j2
    folder: str = ""  # default: the name; the parts of one message share their main part's folder

    @property
    def main(self) -> bool:
        """Whether a receiver override keyed by the event alone applies to this channel."""
        return not self.folder or self.folder == self.name

    def default_template(self, event: Event) -> str:
        return f"{self.folder or self.name}/{event.value}.{self.extension}.j2"


# One line per channel: a new channel adds its escaper here.
CHANNELS: dict[str, Channel] = {
    "console": Channel("console", escape_line, "txt"),
    "slack": Channel("slack", escape_slack, "md"),
    "email": Channel("email", escape_console, "txt"),
    "email_subject": Channel("email_subject", one_line, "subject.txt", folder="email"),
    "email_html": Channel("email_html", escape_html, "html", folder="email"),
    "sms": Channel("sms", one_line, "txt"),
    "webhook": Channel("webhook", keep, "json"),  # not templated: only its annotations are rendered
}
