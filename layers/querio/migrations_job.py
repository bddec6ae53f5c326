"""The deploy-time schema job behind ``functions/migrate`` (a CloudFormation custom resource).

Event shape: CloudFormation's custom resource request, as relayed by the CDK provider
framework (``RequestType`` = ``Create`` | ``Update`` | ``Delete``). The answer's
``PhysicalResourceId`` stays ``querio-schema`` so an Update never replaces the resource,
and ``Data.Applied`` lists the versions applied by this run (empty when already current).
"""

from __future__ import annotations

from typing import Any

from querio.config import Settings

PHYSICAL_ID = "querio-schema"


def apply_schema(event: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """Apply pending migrations for Create/Update; do nothing on Delete (data outlives code).

    Raises whatever the database raises: the provider framework reports it to CloudFormation,
    which fails (and rolls back) the deploy instead of running code against an old schema.
    """
    request = event.get("RequestType")
    if request == "Delete":
        return {"PhysicalResourceId": event.get("PhysicalResourceId") or PHYSICAL_ID}
    if request not in ("Create", "Update"):
        raise ValueError(f"unexpected custom resource RequestType {request!r}")
    from querio.adapters.postgres.migrate import migrate
    from querio.wiring import database_url

    applied = migrate(database_url(settings))
    return {"PhysicalResourceId": PHYSICAL_ID, "Data": {"Applied": ",".join(applied)}}
