"""`flask batch submit|status|results`: batches from the command line, for operators."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext

from api.schemas.batches import BatchSchema
from api.services import batches
from api.services.identity import Identity
from core.errors import ServiceError
from core.repositories import users as users_repo


def _owner(email: str):
    user = users_repo.get_by_email(email.strip().lower())
    if user is None or not user.is_active:
        raise click.ClickException(f"No active account {email!r}.")
    return user


def _show(batch) -> None:
    # The batch's links are paths of this API; a request context lets url_for build them.
    with current_app.test_request_context():
        click.echo(json.dumps(BatchSchema().dump(batches.with_counts(batch)), indent=2))


def _fail(exc: ServiceError) -> click.ClickException:
    details = f"\n{json.dumps(exc.details, indent=2)}" if exc.details else ""
    return click.ClickException(f"{exc.message}{details}")


@click.group("batch")
def batch_cli() -> None:
    """Submit batches of prompts and read their results."""


@batch_cli.command("submit")
@with_appcontext
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--user", "email", required=True, help="The account the batch runs for.")
def submit(file: Path, email: str) -> None:
    """Submit FILE, JSONL in OpenAI's batch format, for --user; prints the batch."""
    identity = Identity(user=_owner(email), method="cli")
    try:
        requests = batches.parse_jsonl(file.read_text(encoding="utf-8"))
        batch = batches.create(identity, requests, input_format="jsonl")
    except ServiceError as exc:
        raise _fail(exc) from exc
    _show(batch)


def _owned(batch_id: uuid.UUID, email: str):
    try:
        return batches.get(_owner(email).id, batch_id)
    except ServiceError as exc:
        raise _fail(exc) from exc


@batch_cli.command("status")
@with_appcontext
@click.argument("batch_id", type=click.UUID)
@click.option("--user", "email", required=True, help="The batch's owner.")
def status(batch_id: uuid.UUID, email: str) -> None:
    """Print a batch's status and request counts."""
    _show(_owned(batch_id, email))


@batch_cli.command("results")
@with_appcontext
@click.argument("batch_id", type=click.UUID)
@click.option("--user", "email", required=True, help="The batch's owner.")
def results(batch_id: uuid.UUID, email: str) -> None:
    """Print the ended requests' results as JSON Lines."""
    for line in batches.results(_owned(batch_id, email)):
        click.echo(line, nl=False)
