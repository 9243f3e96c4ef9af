"""Everything a caller or a volunteer hears on the phone, in clear and simple French."""

from __future__ import annotations

from routing.territory import Territories

WELCOME = "Bonjour, et bienvenue à Permanence, l'aide gratuite pour vos démarches en ligne."
CLOSED_HOURS = "La ligne est fermée pour le moment."
OPEN_HOURS = "Nous sommes ouverts {summary}."
CLOSED_HOLIDAY = "Aujourd'hui, {name}, est un jour férié : la ligne est fermée."
CLOSED_CLOSURE = "La ligne est exceptionnellement fermée."
NEXT_OPEN = "Elle ouvrira {moment}."
NOBODY = "Aucun bénévole n'est disponible pour le moment."
OFFER_CALLBACK = "Pour qu'un bénévole vous rappelle, tapez 1."
GOODBYE = "Merci de votre appel. Au revoir."
NOT_UNDERSTOOD = "Je n'ai pas compris."
TOPIC_INTRO = "Pour nous dire de quoi il s'agit :"
TOPIC_ITEM = "pour {label}, tapez {digit}."
TOPIC_FALLBACK = "Ce n'est pas grave : un bénévole vous aidera pour tout sujet."
DEPT_ASK = (
    "Tapez le numéro de votre département, en deux chiffres, puis la touche dièse. "
    "Par exemple, zéro, cinq, puis dièse. Pour l'outre-mer, tapez les trois chiffres."
)
DEPT_UNKNOWN = "Ce numéro de département n'existe pas."
DEPT_FALLBACK = "Ce n'est pas grave : nous allons chercher un bénévole partout en France."
DEPT_CORSE = "Pour la Corse-du-Sud, tapez 1. Pour la Haute-Corse, tapez 2."
DEPT_CONFIRM = "Vous avez choisi le {spoken}, {name}. Si c'est juste, tapez 1. Sinon, tapez 2."
KNOWN_CALLER = (
    "Vous nous avez appelés récemment depuis le {spoken}, {name}. "
    "Si c'est toujours votre département, tapez 1. Sinon, tapez 2."
)
QUEUED = "Merci. Nous cherchons un bénévole pour vous. Restez en ligne."
RESUMED = "Vous retrouvez votre place dans la file d'attente."
POSITION_FIRST = "Vous êtes la prochaine personne à être aidée."
POSITION = "Il y a {ahead} personnes avant vous."
POSITION_ONE = "Il y a une personne avant vous."
WAIT_ESTIMATE = "L'attente est estimée à environ {minutes}."
STAR_FOR_CALLBACK = "Pour être rappelé sans perdre votre place, appuyez sur la touche étoile."
CONNECTING = "Un bénévole va vous répondre dans un instant."
CALLBACK_NUMBER_TAIL = (
    "Nous vous rappellerons au numéro qui se termine par {tail}. "
    "Si c'est bien votre numéro, tapez 1. Pour donner un autre numéro, tapez 2."
)
CALLBACK_ASK_NUMBER = "Tapez votre numéro de téléphone, en dix chiffres, puis la touche dièse."
CALLBACK_NUMBER_BAD = "Ce numéro n'est pas valable."
CALLBACK_READBACK = "Vous avez tapé le {digits}. Si c'est juste, tapez 1. Sinon, tapez 2."
CALLBACK_SAVED_OPEN = (
    "C'est noté. "
    "Un bénévole vous rappellera dès que possible, sans que vous perdiez votre place."
)
CALLBACK_SAVED_LATER = "C'est noté. Un bénévole vous rappellera quand la ligne sera ouverte."
CALLBACK_NO_NUMBER_QUEUE = (
    "Nous n'avons pas pu noter votre numéro. "
    "Vous restez en attente, à votre place."
)
CALLBACK_NO_NUMBER_CLOSED = (
    "Nous n'avons pas pu noter votre numéro. "
    "Vous pouvez nous rappeler quand la ligne est ouverte."
)
TECHNICAL_FAULT = (
    "Un problème technique nous empêche de vous garder en attente. "
    "Nous allons plutôt vous rappeler."
)
HANDED_OVER = (
    "Le bénévole vous passe à un collègue. "
    "Ne quittez pas : vous gardez votre place, quelqu'un va vous répondre."
)
LINE_LOST = (
    "La communication avec le bénévole a été coupée. "
    "Ne quittez pas : vous gardez votre place, quelqu'un va vous répondre."
)
TASK_CLOSED = "Nous n'avons pas pu trouver de bénévole pour vous répondre."

WHISPER_CALL = "Appel Permanence. {context} Appuyez sur 1 pour prendre l'appel."
WHISPER_CALLBACK = "Rappel Permanence. {context} Appuyez sur 1 pour lancer le rappel."
WHISPER_MISSED = "Appel non pris. Au revoir."
WHISPER_TAKEN = "Cet appel a déjà été pris par quelqu'un d'autre. Merci."
VOLUNTEER_CONNECTED = "Vous êtes en relation."
VOLUNTEER_DIALING = "Nous appelons la personne. Restez en ligne."
CALLBACK_HANDED_OVER = (
    "Un autre bénévole va prendre la suite : il vous rappellera dans quelques instants. "
    "Au revoir."
)
VOLUNTEER_CALL_OVER = "L'appel est terminé. Merci pour votre aide."
CALLBACK_NO_ANSWER = "La personne n'a pas répondu. L'appel est terminé. Merci."


def spoken_departement(code: str) -> str:
    """How the code is read aloud: '05' as 'zéro cinq', '2A' as 'deux A', '75' as is."""
    if code == "2A":
        return "deux A"
    if code == "2B":
        return "deux B"
    if code.startswith("0"):
        return "zéro " + code[1]
    return code


def departement_phrase(territories: Territories, code: str) -> dict[str, str]:
    """Fields for a prompt naming a département."""
    return {"spoken": spoken_departement(code), "name": territories.departement(code).name}


def minutes_phrase(minutes: int) -> str:
    return "une minute" if minutes <= 1 else f"{minutes} minutes"


def spoken_digits(number: str) -> str:
    """A French national number read in pairs: '06 12 34 56 78'."""
    digits = "".join(c for c in number if c.isdigit())
    if digits.startswith("33") and len(digits) == 11:
        digits = "0" + digits[2:]
    return " ".join(digits[i : i + 2] for i in range(0, len(digits), 2))
