"""sigver enrollment application: user store, enrollment, verification and HTTP service.

Python API::

    from enrollment import Verifier

    verifier = Verifier(home="/tmp/sigver-home")  # default model, or model="path/to/model.pt"
    verifier.enroll("alice", ["ref1.png", "ref2.png", "ref3.png", "ref4.png"])
    result = verifier.verify("alice", "questioned.png")
    result.score, result.accepted, result.threshold

The HTTP service lives in :mod:`enrollment.service` (``sigver serve``).
"""

from __future__ import annotations

from enrollment.config import Settings, resolve_home
from enrollment.errors import (
    AuthenticationError,
    ConcurrentUpdateError,
    EnrollmentError,
    InsufficientReferencesError,
    InvalidUserIdError,
    ModelMismatchError,
    StoreError,
    UserExistsError,
    UserNotFoundError,
)
from enrollment.store import (
    AuditEvent,
    PostgresStore,
    UserRecord,
    UserStore,
    open_store,
    validate_user_id,
)
from enrollment.verifier import EnrollmentResult, VerificationResult, Verifier

__all__ = [
    "AuditEvent",
    "PostgresStore",
    "open_store",
    "AuthenticationError",
    "ConcurrentUpdateError",
    "EnrollmentError",
    "EnrollmentResult",
    "InsufficientReferencesError",
    "InvalidUserIdError",
    "ModelMismatchError",
    "Settings",
    "StoreError",
    "UserExistsError",
    "UserNotFoundError",
    "UserRecord",
    "UserStore",
    "VerificationResult",
    "Verifier",
    "resolve_home",
    "validate_user_id",
]
