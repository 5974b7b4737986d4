"""Everything that writes consent evidence or acts on a person's rights.

- ``ledger``: ``consent_record`` appends to the ledger and refreshes the derived current state
  in the same transaction (``current_state_rebuild``, one set-based statement also used by demo
  loading and merges); ``consent_merge``; ``consent_record_bulk`` (API).
- ``flows``: double opt-in, unsubscribe, preference centre, SMS STOP, bounces and complaints.
- ``suppression``: the suppression list (HMAC-keyed), ``is_erased_identity``.
- ``rights``: ``erase_contact``, ``export_contact_data``, rights requests, ``retention_purge``.
"""

from consent.services.flows import (
    ConfirmationOutcome,
    consent_withdraw_if_allowed,
    double_opt_in_confirm,
    double_opt_in_request,
    email_feedback_process,
    preference_centre_apply,
    preference_centre_purposes,
    sms_stop_process,
)
from consent.services.ledger import (
    CONSENT_BATCH_MAX,
    consent_merge,
    consent_record,
    consent_record_bulk,
    current_state_rebuild,
)
from consent.services.rights import (
    ErasureReport,
    erase_contact,
    export_contact_data,
    retention_purge,
    rights_request_complete,
    rights_request_export,
)
from consent.services.suppression import (
    identity_hash,
    is_erased_identity,
    is_suppressed,
    normalise_address,
    suppression_add,
)

__all__ = [
    "CONSENT_BATCH_MAX",
    "ConfirmationOutcome",
    "ErasureReport",
    "consent_merge",
    "consent_record",
    "consent_record_bulk",
    "consent_withdraw_if_allowed",
    "current_state_rebuild",
    "double_opt_in_confirm",
    "double_opt_in_request",
    "email_feedback_process",
    "erase_contact",
    "export_contact_data",
    "identity_hash",
    "is_erased_identity",
    "is_suppressed",
    "normalise_address",
    "preference_centre_apply",
    "preference_centre_purposes",
    "retention_purge",
    "rights_request_complete",
    "rights_request_export",
    "sms_stop_process",
    "suppression_add",
]
