"""Typed errors of the routing engine.

Each carries a stable ``code`` for programs and a French ``message`` that a
volunteer or coordinator can read as is. Raising one never follows a state
change: every script checks before it writes.
"""

from __future__ import annotations


class RoutingError(Exception):
    """Base class: a request the engine refused, with nothing changed."""

    code = "routing_error"
    message = "La demande n'a pas pu être traitée."

    def __init__(self, detail: str | None = None) -> None:
        self.detail = detail
        super().__init__(f"{self.code}: {self.message}" + (f" ({detail})" if detail else ""))


class UnknownDepartement(RoutingError):
    code = "unknown_departement"
    message = "Ce département n'existe pas. Vérifiez le numéro ou le code postal."


class UnknownSkill(RoutingError):
    code = "unknown_skill"
    message = "Cette compétence n'existe pas."


class UnknownTask(RoutingError):
    code = "unknown_task"
    message = "Cette demande n'existe pas ou est déjà terminée."


class UnknownVolunteer(RoutingError):
    code = "unknown_volunteer"
    message = "Ce bénévole n'est pas connecté."


class TaskExists(RoutingError):
    code = "task_exists"
    message = "Cette demande existe déjà."


class OfferNotYours(RoutingError):
    code = "offer_not_yours"
    message = "Cette demande a été proposée à quelqu'un d'autre."


class OfferExpired(RoutingError):
    code = "offer_expired"
    message = "Cette proposition a expiré : la demande est passée à un autre bénévole."


class TaskNotAssigned(RoutingError):
    code = "task_not_assigned"
    message = "Vous ne traitez pas cette demande."


class TaskAlreadyEnded(RoutingError):
    code = "task_already_ended"
    message = "Cette demande est déjà terminée."


class NotInWrapUp(RoutingError):
    code = "not_in_wrapup"
    message = "Il n'y a pas de fiche de fin d'appel à remplir pour cette demande."


class OverCapacity(RoutingError):
    code = "over_capacity"
    message = "Vous avez déjà le maximum de conversations en cours."


class InvalidPresence(RoutingError):
    code = "invalid_presence"
    message = "Ce changement d'état n'est pas possible maintenant."


class TaskNotWaiting(RoutingError):
    code = "task_not_waiting"
    message = "Cette demande n'est plus en attente."


class TransferTargetUnavailable(RoutingError):
    code = "transfer_target_unavailable"
    message = "Ce collègue n'est pas connecté : le transfert est impossible."


class VolunteerRequired(RoutingError):
    code = "volunteer_required"
    message = "Le bénévole qui fait la demande doit être indiqué."


class TransferWithoutTarget(RoutingError):
    code = "transfer_without_target"
    message = "Indiquez une compétence ou un collègue : le transfert n'a pas de destinataire."


class InvalidPriority(RoutingError):
    code = "invalid_priority"
    message = "La priorité doit être un nombre entier de 0 à 9."


class InvalidChatCapacity(RoutingError):
    code = "invalid_chat_capacity"
    message = "Le nombre de discussions simultanées doit être d'au moins 1."


class UnknownChannel(RoutingError):
    code = "unknown_channel"
    message = "Ce canal n'existe pas : appel, discussion ou rappel seulement."


class InvalidTaskId(RoutingError):
    code = "invalid_task_id"
    message = "Identifiant de demande invalide : il ne peut être vide ni contenir « | »."


class InvalidIdentifier(RoutingError):
    code = "invalid_identifier"
    message = "Identifiant invalide : il ne peut pas contenir « | »."


ERRORS_BY_CODE: dict[str, type[RoutingError]] = {
    cls.code: cls
    for cls in (
        UnknownDepartement,
        UnknownSkill,
        UnknownTask,
        UnknownVolunteer,
        TaskExists,
        OfferNotYours,
        OfferExpired,
        TaskNotAssigned,
        TaskAlreadyEnded,
        NotInWrapUp,
        OverCapacity,
        InvalidPresence,
        TaskNotWaiting,
        TransferTargetUnavailable,
        VolunteerRequired,
        TransferWithoutTarget,
        InvalidPriority,
        InvalidChatCapacity,
        UnknownChannel,
        InvalidTaskId,
        InvalidIdentifier,
    )
}
