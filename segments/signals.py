"""Signals segments sends; activation listens to trigger sends on entry.

Both are sent after the membership transaction commits (``transaction.on_commit``), once per
segment per computation (full or real-time), never with an empty list.
kwargs: ``segment_id`` (int), ``contact_ids`` (list[int]), ``at`` (aware datetime of the diff).
"""

from django.dispatch import Signal

contact_entered_segment = Signal()
contact_exited_segment = Signal()
