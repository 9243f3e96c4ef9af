"""The catalogue of skills (procedure families) and languages a task may need."""

from __future__ import annotations

SKILLS: dict[str, str] = {
    "famille": "Famille, CAF",
    "emploi": "Emploi, France Travail",
    "impots": "Impôts",
    "sante": "Santé, Ameli",
    "retraite": "Retraite",
    "papiers": "Papiers, ANTS",
    "logement": "Logement",
    "numerique": "Numérique de base",
}

LANGUAGES: dict[str, str] = {
    "fr": "Français",
    "en": "Anglais",
    "ar": "Arabe",
    "es": "Espagnol",
    "pt": "Portugais",
    "it": "Italien",
    "de": "Allemand",
    "tr": "Turc",
    "lsf": "Langue des signes française",
}
