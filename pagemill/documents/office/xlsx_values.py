"""A spreadsheet cell's value as the text Excel shows, where that is cheap to know.

Numbers in General format drop a ".0" and binary noise (15 significant digits); the common fixed, thousands
and percent formats are applied; numbers in a date or time format are dates (``2024-03-01``,
``2024-03-01 14:30:00``), times (``08:05:00``) or durations (``26:03:00``) in the workbook's date system
(1900 or 1904); booleans are TRUE/FALSE; error values (``#DIV/0!``) stay as they are; an empty cell is empty,
never "None" or "NaN".

A cell's number format is decided once per cell style (:class:`NumberStyle`), not once per cell: a sheet of
two million cells has a handful of styles.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Final

from pagemill.documents.office.ooxml_chart import format_general

# Excel's built-in number formats by numFmtId (ECMA-376 18.8.30), the ones a workbook may use unnamed.
BUILTIN_FORMATS: Final[dict[int, str]] = {
    0: "General",
    1: "0",
    2: "0.00",
    3: "#,##0",
    4: "#,##0.00",
    5: '"$"#,##0_);("$"#,##0)',
    6: '"$"#,##0_);[Red]("$"#,##0)',
    7: '"$"#,##0.00_);("$"#,##0.00)',
    8: '"$"#,##0.00_);[Red]("$"#,##0.00)',
    9: "0%",
    10: "0.00%",
    11: "0.00E+00",
    12: "# ?/?",
    13: "# ??/??",
    14: "mm-dd-yy",
    15: "d-mmm-yy",
    16: "d-mmm",
    17: "mmm-yy",
    18: "h:mm AM/PM",
    19: "h:mm:ss AM/PM",
    20: "h:mm",
    21: "h:mm:ss",
    22: "m/d/yy h:mm",
    37: "#,##0_);(#,##0)",
    38: "#,##0_);[Red](#,##0)",
    39: "#,##0.00_);(#,##0.00)",
    40: "#,##0.00_);[Red](#,##0.00)",
    41: r'_(* #,##0_);_(* \(#,##0\);_(* "-"_);_(@_)',
    42: r'_("$"* #,##0_);_("$"* \(#,##0\);_("$"* "-"_);_(@_)',
    43: r'_(* #,##0.00_);_(* \(#,##0.00\);_(* "-"??_);_(@_)',
    44: r'_("$"* #,##0.00_)_("$"* \(#,##0.00\)_("$"* "-"??_)_(@_)',
    45: "mm:ss",
    46: "[h]:mm:ss",
    47: "mmss.0",
    48: "##0.0E+0",
    49: "@",
}
WINDOWS_EPOCH: Final = dt.datetime(1899, 12, 30)
MAC_EPOCH: Final = dt.datetime(1904, 1, 1)

_FIXED_FORMAT: Final = re.compile(r"^(#,##)?0(\.0+)?(%)?$")
_FORMAT_NOISE: Final = re.compile(r'\[[^\]]*\]|"[^"]*"|\\.|_.|\*.')
# Quoted text and [colour]/[$-locale] sections say nothing of dates; [h], [mm], [ss] (elapsed time) do.
_DATE_NOISE: Final = re.compile(r'".*?"|\[(?!hh?\]|mm?\]|ss?\])[^\]]*\]')
_DATE_TOKEN: Final = re.compile(r"(?<![_\\])[dmhysDMHYS]")
_ELAPSED: Final = re.compile(r"\[hh?\](:mm(:ss(\.0*)?)?)?|\[mm?\](:ss(\.0*)?)?|\[ss?\](\.0*)?", re.I)
_SECONDS_PER_DAY: Final = 86400

# (thousands separator, decimals, percent) of a plain fixed, thousands or percent format
FixedPattern = tuple[bool, int, bool]


@dataclass(frozen=True, slots=True)
class NumberStyle:
    """How a cell style shows a number: its format code, and what that code is (a plain fixed pattern, a
    date or time, an elapsed duration)."""

    code: str
    pattern: FixedPattern | None
    date: bool
    duration: bool

    @classmethod
    def of(cls, code: str) -> NumberStyle:
        """The style of number format ``code``."""
        date = is_date_format(code)
        return cls(code, _simple_format(code), date, date and is_duration_format(code))


def is_date_format(code: str | None) -> bool:
    """True when a number in format ``code`` is a date, a time or a duration (it has d, m, y, h or s
    outside quoted text and brackets, in its positive section)."""
    if code is None:
        return False
    section = _DATE_NOISE.sub("", code.split(";", 1)[0])
    return _DATE_TOKEN.search(section) is not None


def is_duration_format(code: str | None) -> bool:
    """True when format ``code`` shows elapsed time (``[h]:mm:ss``), which runs past 24 hours."""
    return code is not None and _ELAPSED.search(code.split(";", 1)[0]) is not None


def cast_number(raw: str) -> int | float:
    """A number cell's stored text as a number: integral when written without a point or an exponent.
    ValueError when it is not a number."""
    if "." in raw or "E" in raw or "e" in raw:
        return float(raw)
    return int(raw)


def number_text(raw: str, style: NumberStyle | None, epoch: dt.datetime) -> str:
    """The text of a number cell whose stored text is ``raw`` in ``style`` (None: General); ValueError
    when ``raw`` is not a number."""
    value = cast_number(raw)
    if style is None:
        return str(value) if isinstance(value, int) else format_general(value)
    if style.date:
        try:
            return cell_text(from_excel(value, epoch, duration=style.duration))
        except (OverflowError, ValueError):
            return "#VALUE!"  # a serial outside the calendar, as Excel shows it
    if style.pattern is not None:
        return _fixed(float(value), style.pattern)
    # Formats this does not imitate (currency, scientific, fractions, text) show the number as General.
    return str(value) if isinstance(value, int) else format_general(value)


def from_excel(value: float, epoch: dt.datetime, *, duration: bool = False) -> object:
    """The date, time or duration of serial ``value`` in the date system starting at ``epoch``: a time of
    day when it is under one day, a duration for an elapsed-time format; milliseconds rounded."""
    if duration:
        delta = dt.timedelta(days=value)
        if delta.microseconds:
            delta = dt.timedelta(
                seconds=delta.total_seconds() // 1, microseconds=round(delta.microseconds, -3)
            )
        return delta
    day, fraction = divmod(value, 1)
    clock = dt.timedelta(milliseconds=round(fraction * _SECONDS_PER_DAY * 1000))
    if 0 <= value < 1 and clock.days == 0:
        minutes, seconds = divmod(clock.seconds, 60)
        hours, minutes = divmod(minutes, 60)
        return dt.time(hours, minutes, seconds, clock.microseconds)
    if 0 < value < 60 and epoch == WINDOWS_EPOCH:
        day += 1  # Excel's 1900 calendar has a 29 February 1900: serials before it are a day off
    return epoch + dt.timedelta(days=day) + clock


def cell_text(value: object, number_format: str | None = None) -> str:
    """The text of a cell holding ``value`` (a Python value: number, date, time, duration, boolean or
    string) in ``number_format``."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        pattern = _simple_format(number_format)
        if pattern is None:
            return str(value) if isinstance(value, int) else format_general(value)
        return _fixed(float(value), pattern)
    if isinstance(value, dt.datetime):
        if value.time() == dt.time(0, 0):
            return value.date().isoformat()
        return value.isoformat(sep=" ", timespec="seconds")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return _duration(value)
    return str(value)


def _fixed(value: float, pattern: FixedPattern) -> str:
    thousands, decimals, percent = pattern
    shown = value * 100 if percent else value
    text = f"{shown:,.{decimals}f}" if thousands else f"{shown:.{decimals}f}"
    if text.startswith("-") and float(text.replace(",", "")) == 0:
        text = text[1:]
    return text + ("%" if percent else "")


def _simple_format(number_format: str | None) -> FixedPattern | None:
    """(thousands separator, decimals, percent) of a plain fixed, thousands or percent format; None for
    General and every format this does not imitate."""
    if not number_format or number_format == "General":
        return None
    # Positive section only, without colours, conditions, quoted text and padding.
    section = _FORMAT_NOISE.sub("", number_format.split(";", 1)[0]).strip()
    match = _FIXED_FORMAT.match(section)
    if match is None:
        return None
    decimals = len(match.group(2)) - 1 if match.group(2) else 0
    return bool(match.group(1)), decimals, bool(match.group(3))


def _duration(value: dt.timedelta) -> str:
    seconds = int(value.total_seconds())
    sign = "-" if seconds < 0 else ""
    hours, rest = divmod(abs(seconds), 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{sign}{hours}:{minutes:02d}:{seconds:02d}"
