"""What every azft command runs first: deployments past their TTL are deleted (or, with ``AZFT_TTL_ACTION=warn``,
kept and warned about), and a warning is printed for each one that still exists past its deadline.

Cheap by construction: one ``stat`` of ``.azft/deployments.json`` when nothing is deployed, one small JSON read
otherwise; Azure is called only for a deployment whose deadline has passed. ``AZFT_NOW`` sets the clock
(``azft.deploy.records.now``).
"""

from __future__ import annotations

import os
from typing import Callable

from azft.deploy import records

ACTION_ENV = "AZFT_TTL_ACTION"


def enforce(warn: Callable[[str], None]) -> list[str]:
    """Delete expired deployments (names returned); ``warn`` gets one line per expired deployment."""
    if not records.records_path().is_file():
        return []
    at = records.now()
    expired = [d for d in records.load_all() if d.expired(at)]
    if not expired:
        return []
    action = os.environ.get(ACTION_ENV, "delete").strip().lower()
    deleted = []
    for d in expired:
        assert d.expires_at is not None
        late = records.human_duration(at - d.expires_at)
        what = f"deployment {d.name} ({d.kind}, job {d.job})"
        cost = f"${d.hourly_usd:.2f}/hour, ${d.cost_so_far(at):.2f} so far"
        if action == "warn":
            warn(
                f"{what} passed its TTL of {d.ttl} {late} ago and still exists ({cost}): "
                f"`azft endpoints delete {d.name}` (or unset {ACTION_ENV} to delete it automatically)"
            )
            continue
        try:
            from azft.deploy.service import remove

            remove(d)
        except Exception as e:  # the command the user ran goes on; the warning repeats until it is gone
            msg = getattr(e, "message", None) or type(e).__name__
            warn(
                f"{what} passed its TTL of {d.ttl} {late} ago and could not be deleted ({msg}); it still bills "
                f"{cost}: `azft endpoints delete {d.name}`"
            )
            continue
        deleted.append(d.name)
        warn(f"{what} passed its TTL of {d.ttl} {late} ago: deleted ({cost})")
    return deleted
