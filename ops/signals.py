from django.dispatch import Signal

# Sent by ``run_demo`` after migrations and demo contacts are in place; apps create their own
# demo objects (segments, campaigns, experiments…) idempotently in receivers.
demo_ready = Signal()
