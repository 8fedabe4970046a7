"""Periodic work of the accounts feature, run by ``flask --app app jobs run``."""

from accounts.applications import delete_old_rejected_applications
from accounts.sessions import forget_old_sign_ins
from core.jobs import job


@job("sign-ins")
def sign_ins() -> str:
    return f"{forget_old_sign_ins()} ended sign-ins removed"


@job("rejected applications")
def rejected_applications() -> str:
    return f"{delete_old_rejected_applications()} deleted"
