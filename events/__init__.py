"""Trainings: programme, registration, waiting list, attendance, calendar feeds (issue 4)."""
