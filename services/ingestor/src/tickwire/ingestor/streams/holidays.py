"""The US equity market's full holidays and early closes (the NYSE and Nasdaq rules).

Guarantees: `closed_all_day(day)` is True exactly on the exchanges' full holidays as their
standing rules give them (since 2022, when Juneteenth was added): New Year's Day,
Martin Luther King Jr. Day, Washington's Birthday, Good Friday, Memorial Day, Juneteenth,
Independence Day, Labor Day, Thanksgiving and Christmas. A holiday on a Saturday is taken
the Friday before, on a Sunday the Monday after; New Year's Day on a Saturday is not
taken at all (the exchanges keep the year's last trading day). `early_close(day)` is True
on the days trading ends at 13:00 New York time: the day before Independence Day, the
day after Thanksgiving and Christmas Eve, each when it is a trading day.

One-off closures the exchanges announce (national days of mourning, emergencies) are not
rules and are not here: a stream's silence on such a day only sends its symbols back to
polling, which is what such a day needs anyway.

Written out rather than taken from a calendar library: ten rules and Easter's date.
"""

from __future__ import annotations

from datetime import date, timedelta
from functools import lru_cache


def nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    """The `n`-th `weekday` (Monday 0) of the month; n = -1 for the last one."""
    if n > 0:
        first = date(year, month, 1)
        return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))
    last = date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - weekday) % 7)


def easter(year: int) -> date:
    """Western Easter Sunday (the anonymous Gregorian computus)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    leap = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * leap) // 451
    month, day = divmod(h + leap - 7 * m + 114, 31)
    return date(year, month, day + 1)


def _observed(day: date) -> date:
    """A fixed-date holiday on a weekend is taken on the nearest weekday."""
    if day.weekday() == 5:
        return day - timedelta(days=1)
    if day.weekday() == 6:
        return day + timedelta(days=1)
    return day


@lru_cache(maxsize=8)
def holidays(year: int) -> frozenset[date]:
    days = {
        nth_weekday(year, 1, 0, 3),             # Martin Luther King Jr. Day
        nth_weekday(year, 2, 0, 3),             # Washington's Birthday
        easter(year) - timedelta(days=2),        # Good Friday
        nth_weekday(year, 5, 0, -1),            # Memorial Day
        _observed(date(year, 7, 4)),             # Independence Day
        nth_weekday(year, 9, 0, 1),             # Labor Day
        nth_weekday(year, 11, 3, 4),            # Thanksgiving
        _observed(date(year, 12, 25)),           # Christmas
    }
    if year >= 2022:
        days.add(_observed(date(year, 6, 19)))  # Juneteenth
    new_year = date(year, 1, 1)
    if new_year.weekday() != 5:  # on a Saturday it is not taken on December 31
        days.add(_observed(new_year))
    return frozenset(days)


def closed_all_day(day: date) -> bool:
    """No regular session: a weekend or a full holiday."""
    return day.weekday() >= 5 or day in holidays(day.year)


def early_close(day: date) -> bool:
    """Trading ends at 13:00 New York time."""
    if closed_all_day(day):
        return False
    year = day.year
    return day in (date(year, 7, 3), nth_weekday(year, 11, 3, 4) + timedelta(days=1),
                   date(year, 12, 24))
