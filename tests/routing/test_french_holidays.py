"""French public holidays: computed by routing/french_holidays.py, checked against the
``holidays`` library (imported by this test only: the server no longer loads it)."""

from __future__ import annotations

import subprocess
import sys
from datetime import date

import pytest

from routing.french_holidays import easter_sunday, french_holidays, holiday_name


@pytest.fixture(scope="module")
def library_france():
    import holidays

    return holidays.country_holidays("FR", language="fr")


def test_same_dates_and_names_as_the_library_since_1982(library_france) -> None:
    for year in range(1982, 2101):
        expected = dict(sorted(library_france.__class__(years=year, language="fr").items()))
        assert french_holidays(year) == expected, year


@pytest.mark.parametrize(
    ("year", "easter"),
    [
        (1982, date(1982, 4, 11)),
        (2008, date(2008, 3, 23)),
        (2025, date(2025, 4, 20)),
        (2038, date(2038, 4, 25)),
        (2285, date(2285, 3, 22)),
    ],
)
def test_easter_sunday(year: int, easter: date) -> None:
    assert easter_sunday(year) == easter


def test_holiday_name() -> None:
    assert holiday_name(date(2026, 5, 25)) == "Lundi de Pentecôte"
    assert holiday_name(date(2006, 6, 5)) == ""  # Whit Monday, worked from 2005 to 2007
    assert holiday_name(date(2008, 5, 1)) == "Ascension; Fête du Travail"
    assert holiday_name(date(2026, 5, 26)) == ""


def test_the_server_does_not_load_the_holidays_library() -> None:
    code = (
        "import sys; from datetime import date; from routing.french_holidays import holiday_name;"
        "holiday_name(date(2026, 7, 14)); print('holidays' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
