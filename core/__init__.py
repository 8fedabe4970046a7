"""Shared infrastructure of Fundus: extensions, model base, mail outbox, security helpers.

Nothing in here has pages of its own; features import from here, never the other way round.
"""
