"""``elearn users``: operator commands on accounts (erasure)."""

from __future__ import annotations

import uuid
from typing import Annotated

import typer

from elearn_data.cli.common import console, domain_errors, refuse_unless_embedded
from elearn_data.config import load_settings
from elearn_data.database import Database
from elearn_data.errors import InvalidInput

app = typer.Typer(help="Operator commands on user accounts.", no_args_is_help=True)


@app.command()
def erase(
    user_id: Annotated[str, typer.Argument(help="The id of the user to erase.")],
    force: Annotated[
        bool, typer.Option(help="Allow erasing on a cluster that is not the embedded one.")
    ] = False,
) -> None:
    """Erase a user's personal data everywhere (keeps enrollments and money rows, pseudonymous).

    On a cluster other than the embedded one the command needs --force.
    """
    with domain_errors():
        try:
            uid = uuid.UUID(user_id)
        except ValueError:
            raise InvalidInput(f"not a user id: {user_id!r}") from None
        settings = load_settings()
        refuse_unless_embedded(settings, f"erase user {uid}", force=force)
        with Database(settings, application="elearn-users") as db:
            db.users.erase(uid)
        console.print(f"erased user {uid}")
