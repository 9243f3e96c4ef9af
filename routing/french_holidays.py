"""French public holidays, by name in French, from the ``holidays`` library's France alone.

``holidays.France`` (or ``import holidays.countries.france``) first runs the package
``holidays.countries``, which imports every country the library knows: ~280 modules and
8 MB of resident memory in every server process, for one country. Here France's module
is loaded from its file without its package: it only imports the library's base classes
(``holidays.holiday_base``, ``holidays.groups``...), and its translations are found next to
those, so the result is the same as ``holidays.France(years=year, language="fr")``.
"""

from __future__ import annotations

import importlib.util
import sys
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any

_MODULE = "holidays.countries.france"


def _france() -> Any:
    loaded = sys.modules.get(_MODULE)  # the library's own, when something imported it
    if loaded is None:
        import holidays  # the base classes only: countries are loaded lazily by name

        path = Path(holidays.__file__).parent / "countries" / "france.py"
        spec = importlib.util.spec_from_file_location(_MODULE, path)
        if spec is None or spec.loader is None:  # a layout we do not know: the slow way
            return holidays.France
        loaded = importlib.util.module_from_spec(spec)
        # Registered under its own name, so a later `import holidays.countries` reuses it
        # (one France class per process) instead of loading the file a second time.
        sys.modules[_MODULE] = loaded
        try:
            spec.loader.exec_module(loaded)
        except BaseException:
            del sys.modules[_MODULE]
            raise
    return loaded.France


@lru_cache(maxsize=16)
def french_holidays(year: int) -> dict[date, str]:
    """The public holidays of metropolitan France in that year, named in French."""
    return dict(_france()(years=year, language="fr"))


def holiday_name(day: date) -> str:
    """The French public holiday on that day ('' if none)."""
    return french_holidays(day.year).get(day, "")
