"""Signals other apps listen to (dependencies flow contacts ← consent ← segments …)."""

from django.dispatch import Signal

# Sent by seed_demo after contacts and events are loaded, inside no transaction.
# kwargs: contact_ids (numpy array, same order as population), population (DemoContacts), now.
demo_population_loaded = Signal()
