"""Embedded mode (`make demo`): SQLite under var/, filesystem broker, mail to files."""

from .base import *  # noqa: F403

DEBUG = env.bool("DEBUG", default=True)  # noqa: F405
