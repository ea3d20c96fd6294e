"""Errors raised by the enrollment application.

All of them are :class:`sigver.errors.SigverError` subclasses, so the CLI turns
them into a one-line message and exit status 2; the HTTP service maps each
class to a status code (see :data:`HTTP_STATUS`).
"""

from __future__ import annotations

from sigver.errors import ImageError, ModelError, SigverError

__all__ = [
    "AlreadyExistsError",
    "ApiKeyNotFoundError",
    "AuthenticationError",
    "ConcurrentUpdateError",
    "EnrollmentError",
    "HTTP_STATUS",
    "InsufficientReferencesError",
    "InvalidUserIdError",
    "ModelMismatchError",
    "StoreError",
    "TenantNotFoundError",
    "UserExistsError",
    "UserNotFoundError",
    "http_status_for",
]


class EnrollmentError(SigverError):
    """Base class for errors of the enrollment application.

    Attributes
    ----------
    cli_hint : str or None
        What to type at the command line to fix it. Kept out of the message,
        which the Python API and the HTTP service also show, where ``--force``
        means nothing; the CLI appends it (:func:`sigver.cli.main`).
    """

    cli_hint: str | None = None


class StoreError(EnrollmentError):
    """The user store is unusable (corrupt, newer schema, unwritable...)."""


class ApiKeyNotFoundError(StoreError, LookupError):
    """No API key with this name or id (or not in the caller's tenant)."""


class AlreadyExistsError(StoreError):
    """A tenant or an active API key of that name already exists."""


class InvalidUserIdError(EnrollmentError, ValueError):
    """A user id does not match the allowed pattern (:func:`enrollment.store.validate_user_id`)."""


class UserNotFoundError(EnrollmentError, LookupError):
    """No user with this id is enrolled."""

    def __init__(self, user_id: str) -> None:
        self.user_id = user_id
        super().__init__(f"user {user_id!r} is not enrolled")


class TenantNotFoundError(EnrollmentError, LookupError):
    """No tenant with this id exists."""

    def __init__(self, tenant: str) -> None:
        self.tenant = tenant
        super().__init__(f"tenant {tenant!r} does not exist (create it first)")


class UserExistsError(EnrollmentError):
    """The user is already enrolled and neither ``add`` nor ``force`` was requested."""

    def __init__(self, user_id: str) -> None:
        self.user_id = user_id
        super().__init__(
            f"user {user_id!r} is already enrolled; add references to the enrollment or replace it"
        )

    cli_hint = "sigver enroll --add adds references, --force replaces the enrollment"


class ConcurrentUpdateError(EnrollmentError):
    """The user changed between reading and writing (another process enrolled it)."""


class InsufficientReferencesError(EnrollmentError, ValueError):
    """Too few distinct reference signatures to train a classifier."""


class ModelMismatchError(EnrollmentError):
    """The user was enrolled with a different feature extractor.

    Scores from a classifier trained on another extractor's features would be
    meaningless, so verification refuses instead of returning a wrong score.
    """

    def __init__(self, user_id: str, enrolled_model: str, current_model: str) -> None:
        self.user_id = user_id
        super().__init__(
            f"user {user_id!r} was enrolled with model {enrolled_model} but the current model "
            f"is {current_model}; re-enroll the user with the current model"
        )

    cli_hint = "re-enroll with: sigver enroll --force --user ID IMG..."


class AuthenticationError(EnrollmentError):
    """Missing, unknown or revoked API key."""


#: HTTP status code for each error class (most specific class first).
HTTP_STATUS: tuple[tuple[type[Exception], int], ...] = (
    (AuthenticationError, 401),
    (InvalidUserIdError, 422),
    (InsufficientReferencesError, 422),
    (UserNotFoundError, 404),
    (TenantNotFoundError, 404),
    (UserExistsError, 409),
    (ConcurrentUpdateError, 409),
    (ModelMismatchError, 409),
    (AlreadyExistsError, 409),
    (ApiKeyNotFoundError, 404),
    (ImageError, 400),
    (StoreError, 503),
    (ModelError, 503),
    (SigverError, 400),
)


def http_status_for(exc: BaseException) -> int:
    """HTTP status code for a sigver error (500 for anything unexpected)."""
    for cls, status in HTTP_STATUS:
        if isinstance(exc, cls):
            return status
    return 500
