"""Checking what a volunteer states about themselves: territory, skills, phone, capacity."""

from __future__ import annotations

from dataclasses import dataclass

import phonenumbers

from routing.errors import UnknownDepartement
from routing.skills import LANGUAGES, SKILLS
from routing.territory import Territories, load_territories
from volunteers.errors import VolunteerError
from volunteers.models import PhoneMode

STRUCTURES: dict[str, str] = {
    "france_services": "France Services",
    "mediatheque": "Médiathèque",
    "association": "Association",
    "ccas": "CCAS ou mairie",
    "independant": "Bénévole indépendant",
    "autre": "Autre",
}
MAX_CHAT_CAPACITY = 4


@dataclass(frozen=True)
class ProfileInput:
    """A profile form as typed by the volunteer (all text)."""

    name: str
    postal_code: str
    skills: tuple[str, ...] = ()
    languages: tuple[str, ...] = ("fr",)
    structure: str = ""
    phone_mode: str = PhoneMode.BROWSER.value
    phone: str = ""
    chat_capacity: str = "2"


@dataclass(frozen=True)
class CleanProfile:
    """A checked profile, ready to store (phone in E.164, not yet sealed)."""

    name: str
    postal_code: str
    departement: str
    skills: str
    languages: str
    structure: str
    phone_mode: PhoneMode
    phone: str
    chat_capacity: int


def clean_name(name: str) -> str:
    text = " ".join(name.split())
    if not 2 <= len(text) <= 80:
        raise VolunteerError("bad_name", "Indiquez un nom de 2 à 80 caractères.")
    return text


def departement_of(postal_code: str, territories: Territories | None = None) -> tuple[str, str]:
    """The postal code cleaned and its département code; a clear French error if unknown."""
    text = postal_code.strip().replace(" ", "")
    try:
        dep = (territories or load_territories()).departement_for_postal_code(text)
    except UnknownDepartement:
        raise VolunteerError(
            "bad_postal_code",
            "Ce code postal n'est pas reconnu : indiquez 5 chiffres, par exemple 05000.",
        ) from None
    return text, dep.code


def clean_phone(text: str) -> str:
    """A phone number in E.164 (+33…); French numbers may be typed as 06 12 34 56 78."""
    try:
        number = phonenumbers.parse(text.strip(), "FR")
    except phonenumbers.NumberParseException:
        number = None
    if number is None or not phonenumbers.is_valid_number(number):
        raise VolunteerError(
            "bad_phone", "Ce numéro de téléphone n'est pas valide. Exemple : 06 12 34 56 78."
        )
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def clean_profile(form: ProfileInput, territories: Territories | None = None) -> CleanProfile:
    """Check every field; the first problem raises a VolunteerError in French."""
    name = clean_name(form.name)
    postal_code, departement = departement_of(form.postal_code, territories)
    skills = sorted(set(form.skills))
    if any(s not in SKILLS for s in skills):
        raise VolunteerError("bad_skill", "Une des compétences choisies n'existe pas.")
    languages = sorted(set(form.languages) | {"fr"})
    if any(lang not in LANGUAGES for lang in languages):
        raise VolunteerError("bad_language", "Une des langues choisies n'existe pas.")
    if form.structure and form.structure not in STRUCTURES:
        raise VolunteerError("bad_structure", "Choisissez votre structure dans la liste.")
    try:
        mode = PhoneMode(form.phone_mode)
    except ValueError:
        raise VolunteerError(
            "bad_phone_mode", "Choisissez comment vous prenez les appels."
        ) from None
    phone = ""
    if mode is PhoneMode.PHONE:
        if not form.phone.strip():
            raise VolunteerError(
                "phone_required", "Indiquez le numéro de téléphone sur lequel vous appeler."
            )
        phone = clean_phone(form.phone)
    try:
        capacity = int(form.chat_capacity)
    except ValueError:
        capacity = 0
    if not 1 <= capacity <= MAX_CHAT_CAPACITY:
        raise VolunteerError(
            "bad_capacity",
            f"Le nombre de discussions en même temps doit être entre 1 et {MAX_CHAT_CAPACITY}.",
        )
    return CleanProfile(
        name=name,
        postal_code=postal_code,
        departement=departement,
        skills=",".join(skills),
        languages=",".join(languages),
        structure=form.structure,
        phone_mode=mode,
        phone=phone,
        chat_capacity=capacity,
    )
