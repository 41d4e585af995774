"""Secrets a run knows by name: the values of environment variables called like credentials.

`log.info(os.getenv("DEPLOY_TOKEN"))` prints a value with nothing around it that says it is a
secret, and a random token has no shape a detector could know. Its variable's name says it,
so the run's scrubber is given these values to look for, as it is given the AI's API key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

# Words that name a credential in a variable's name; PWD and OLDPWD are directories.
SECRET_NAME = re.compile(
    r"(SECRET|TOKEN|PASSWORD|PASSWD|PASSPHRASE|API_?KEY|PRIVATE_?KEY|ACCESS_?KEY|CREDENTIAL"
    r"|AUTH|SESSION|COOKIE|SIGNING_?KEY|ENCRYPTION_?KEY|WEBHOOK|DSN|_PWD$|_PASS$)",
    re.IGNORECASE)
NOT_SECRET_VALUES = frozenset({"true", "false", "yes", "no", "none", "null", "enabled",
                               "disabled"})
MIN_LENGTH = 6  # shorter values would match inside ordinary words


def secret_values(environ: Mapping[str, str]) -> list[str]:
    """The values of credential-named variables worth looking for in text."""
    found = []
    for name, value in environ.items():
        if not SECRET_NAME.search(name) or len(value) < MIN_LENGTH:
            continue
        if value.lower() in NOT_SECRET_VALUES or value.isdigit():
            continue
        found.append(value)
    return found
