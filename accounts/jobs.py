"""Periodic work of the accounts feature, run by ``flask --app app jobs run``."""

from accounts.sessions import forget_old_sign_ins
from core.jobs import job


@job("sign-ins")
def sign_ins() -> str:
    return f"{forget_old_sign_ins()} ended sign-ins removed"
