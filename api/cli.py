"""Operator commands: create-admin, ensure-database, usage-cleanup, metrics-reset, batch."""

from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from sqlalchemy import create_engine, make_url, text

from api.batch_cli import batch_cli
from api.schemas.auth import RegisterSchema
from api.services import accounts, admin_users, usage
from core import metrics_store
from core.errors import ServiceError


@click.command("create-admin")
@with_appcontext
@click.argument("email")
@click.option(
    "--password",
    envvar="ADMIN_PASSWORD",
    help="Password for a new account (or ADMIN_PASSWORD); asked for when the account is new.",
)
@click.option("--name", default=None, help="Display name for a new account.")
def create_admin(email: str, password: str | None, name: str | None) -> None:
    """Make EMAIL an admin, creating the account if it does not exist."""
    is_new = not accounts.exists(email)
    if is_new and password is None:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    if is_new:  # the same rules as POST /api/auth/register
        fields = {"email": email, "password": password, **({"name": name} if name else {})}
        errors = RegisterSchema().validate(fields)
        if errors:
            raise click.ClickException(f"Invalid input: {errors}")
    try:
        user, created = admin_users.create_or_promote_admin(email, password, name)
    except ServiceError as exc:
        details = f" {exc.details}" if exc.details else ""
        raise click.ClickException(f"{exc.message}{details}") from exc
    verb = "Created admin" if created else "Granted admin role to"
    click.echo(f"{verb} {user.email} ({user.id})")


@click.command("ensure-database")
@with_appcontext
def ensure_database() -> None:
    """Create the database named in DATABASE_URL if it does not exist yet."""
    url = make_url(current_app.config["SQLALCHEMY_DATABASE_URI"])
    maintenance = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with maintenance.connect() as connection:
            exists = connection.scalar(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": url.database}
            )
            if exists:
                click.echo(f"Database {url.database} exists")
                return
            quoted = connection.dialect.identifier_preparer.quote(url.database)
            connection.execute(text(f"CREATE DATABASE {quoted}"))
            click.echo(f"Created database {url.database}")
    finally:
        maintenance.dispose()


@click.command("usage-cleanup")
@with_appcontext
@click.option("--days", type=click.IntRange(min=0), default=None, help="Keep this many days.")
def usage_cleanup(days: int | None) -> None:
    """Delete usage records older than USAGE_RETENTION_DAYS (or --days)."""
    click.echo(f"Deleted {usage.cleanup(days)} usage records")


@click.command("metrics-reset")
@with_appcontext
def metrics_reset() -> None:
    """Zero the request and job metrics in Redis (the usage log is kept)."""
    metrics_store.reset()
    click.echo("Metrics reset")


def init_app(app: Flask) -> None:
    app.cli.add_command(create_admin)
    app.cli.add_command(ensure_database)
    app.cli.add_command(usage_cleanup)
    app.cli.add_command(metrics_reset)
    app.cli.add_command(batch_cli)
