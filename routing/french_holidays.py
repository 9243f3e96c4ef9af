"""French public holidays (metropolitan France), by name in French.

Computed here rather than with the ``holidays`` library: importing it, even France's
module alone, loads the library's base classes, every calendar it knows (Hindu,
Islamic, Chinese...) and its translations, ~3 MB of resident memory in every server
process, for eleven dates a year that follow two rules: a fixed day, or a fixed
distance from Easter. The list is the library's ``France(years=year, language="fr")``
for every year since 1982 (the year 8 May became a holiday again);
tests/routing/test_french_holidays.py checks it against the library.
"""

from __future__ import annotations

from datetime import date, timedelta
from functools import lru_cache

# (month, day, name): the same date every year.
FIXED = (
    (1, 1, "Jour de l'an"),
    (5, 1, "Fête du Travail"),
    (5, 8, "Fête de la Victoire"),
    (7, 14, "Fête nationale"),
    (8, 15, "Assomption"),
    (11, 1, "Toussaint"),
    (11, 11, "Armistice"),
    (12, 25, "Noël"),
)
# (days after Easter Sunday, name).
FROM_EASTER = (
    (1, "Lundi de Pâques"),
    (39, "Ascension"),
    (50, "Lundi de Pentecôte"),
)
# Whit Monday was the "journée de solidarité", a working day, from 2005 to 2007
# (loi n° 2004-626, then loi n° 2008-351).
WORKED_WHIT_MONDAYS = range(2005, 2008)


def easter_sunday(year: int) -> date:
    """Gregorian Easter (the anonymous algorithm of Meeus, Jones and Butcher)."""
    a = year % 19
    b, c = divmod(year, 100)
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    el = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * el) // 451
    month, day = divmod(h + el - 7 * m + 114, 31)
    return date(year, month, day + 1)


@lru_cache(maxsize=16)
def french_holidays(year: int) -> dict[date, str]:
    """The public holidays of metropolitan France in that year, named in French.

    Two holidays on the same day share it, names in alphabetical order joined by "; "
    (Ascension on 1 May 2008: "Ascension; Fête du Travail").
    """
    names: dict[date, list[str]] = {}
    for month, day, name in FIXED:
        names.setdefault(date(year, month, day), []).append(name)
    easter = easter_sunday(year)
    for offset, name in FROM_EASTER:
        if name == "Lundi de Pentecôte" and year in WORKED_WHIT_MONDAYS:
            continue
        names.setdefault(easter + timedelta(days=offset), []).append(name)
    return {day: "; ".join(sorted(n)) for day, n in sorted(names.items())}


def holiday_name(day: date) -> str:
    """The French public holiday on that day ('' if none)."""
    return french_holidays(day.year).get(day, "")
