"""``flask --app app users …``: create and list accounts from the command line."""

import sys

import click
from flask.cli import AppGroup
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from accounts.errors import AccountError
from accounts.models import Role, User
from accounts.users import create_user
from core import audit
from core.db import ensure_schema
from core.extensions import db

users_cli = AppGroup("users", help="Manage accounts.")


def read_password() -> str:
    """Ask twice on a terminal; read two lines from standard input when it is piped."""
    if sys.stdin.isatty():
        return click.prompt("Password", hide_input=True, confirmation_prompt="Repeat password")
    first = sys.stdin.readline().rstrip("\r\n")
    second = sys.stdin.readline().rstrip("\r\n")
    if first != second:
        raise click.ClickException("The two passwords differ.")
    return first


@users_cli.command("create")
@click.argument("email")
@click.option("--role", type=click.Choice([r.value for r in Role]), required=True)
@click.option("--name", default="", help="Display name (default: the part before @).")
@click.option("--organisation", "organisation_id", type=int, help="Organisation id (partners).")
@click.option("--locale", type=click.Choice(["de", "en"]), default="de")
def create_command(email, role, name, organisation_id, locale):
    """Create an account with a password read from the terminal or standard input."""
    ensure_schema()
    password = read_password()
    try:
        user = create_user(email, name or email.split("@")[0], Role(role), audit.SYSTEM,
                           organisation_id=organisation_id, password=password, locale=locale, send_link=False)
    except AccountError as error:
        raise click.ClickException(str(error.message)) from None
    click.echo(f"Created {user.role.value} account {user.email} (id {user.id}).")


@users_cli.command("list")
def list_command():
    """List all accounts."""
    ensure_schema()
    accounts = db.session.scalars(
        select(User).options(selectinload(User.organisation)).order_by(User.role, User.email)
    ).all()
    for user in accounts:
        org = f"  [{user.organisation.name}]" if user.organisation else ""
        state = "" if user.active else "  (inactive)"
        click.echo(f"{user.id:>4}  {user.role.value:<8} {user.email:<40} {user.name}{org}{state}")
    if not accounts:
        click.echo("No accounts yet. Create one with: flask --app app users create EMAIL --role admin")
