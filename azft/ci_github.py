"""`azft ci comment`: post or update one pull-request comment per spec through GitHub's REST API.

The comment bodies are the ``comment.md`` files ``azft ci review`` wrote; each starts with a hidden marker
(``<!-- azft-plan:<key> -->``), and a later run updates the comment carrying the same marker instead of adding
another. Endpoints (GitHub REST, "Issue comments"): ``GET /repos/{repo}/issues/{number}/comments``,
``POST /repos/{repo}/issues/{number}/comments``, ``PATCH /repos/{repo}/issues/comments/{id}``.

The token comes from ``$GITHUB_TOKEN`` (the action passes its ``github-token`` input) and is sent only to
``$GITHUB_API_URL`` (default ``https://api.github.com``); it never reaches a log. A token without
``pull-requests: write`` (a pull request from a fork) gets a warning, not a failed run: the plans are in the job
summary either way.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import click

from azft.errors import EXIT_OK, AzftError, UsageError

PER_PAGE = 100
MAX_PAGES = 50


class GitHubError(AzftError):
    exit_code = 4


class GitHub:
    """The few REST calls the comment needs, with the standard library."""

    def __init__(self, api: str, token: str, timeout: float = 30):
        self.api, self.token, self.timeout = api.rstrip("/"), token, timeout

    def call(self, method: str, path: str, body: dict | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            f"{self.api}{path}",
            data=data,
            method=method,
            headers={
                "Accept": "application/vnd.github+json",
                "Authorization": f"Bearer {self.token}",
                "X-GitHub-Api-Version": "2022-11-28",
                "User-Agent": "azft-ci",
                **({"Content-Type": "application/json"} if data else {}),
            },
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                text = resp.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as e:
            detail = e.read().decode("utf-8", "replace")[:300]
            raise GitHubError(f"GitHub {method} {path}: HTTP {e.code} {detail}".replace(self.token, "***")) from None
        except (urllib.error.URLError, OSError) as e:
            raise GitHubError(f"GitHub {method} {path}: {e}") from None
        return json.loads(text) if text else None

    def comments(self, repo: str, number: int) -> list[dict]:
        out: list[dict] = []
        for page in range(1, MAX_PAGES + 1):
            batch = self.call("GET", f"/repos/{repo}/issues/{number}/comments?per_page={PER_PAGE}&page={page}")
            out += batch or []
            if not batch or len(batch) < PER_PAGE:
                break
        return out

    def upsert(self, repo: str, number: int, marker: str, body: str, existing: list[dict]) -> tuple[str, str]:
        """("updated" | "created" | "unchanged", url) for the comment carrying ``marker``."""
        mine = [c for c in existing if str(c.get("body", "")).startswith(marker)]
        if mine:
            c = mine[0]
            if c.get("body") == body:
                return "unchanged", c.get("html_url", "")
            done = self.call("PATCH", f"/repos/{repo}/issues/comments/{c['id']}", {"body": body})
            return "updated", (done or {}).get("html_url", "")
        done = self.call("POST", f"/repos/{repo}/issues/{number}/comments", {"body": body})
        return "created", (done or {}).get("html_url", "")


def pull_request_number(explicit: int | None) -> int | None:
    """``--pr``, else the pull request of the event that started the run (``$GITHUB_EVENT_PATH``)."""
    if explicit:
        return explicit
    path = os.environ.get("GITHUB_EVENT_PATH")
    if not path or not Path(path).is_file():
        return None
    try:
        event = json.loads(Path(path).read_text(encoding="utf-8"))
    except ValueError:
        return None
    number = (event.get("pull_request") or {}).get("number") or event.get("number")
    return int(number) if number else None


def comment_files(out: Path) -> list[tuple[str, str]]:
    """(marker, body) of every ``<out>/<key>/comment.md``, sorted by key."""
    found = []
    for f in sorted(out.glob("*/comment.md")):
        body = f.read_text(encoding="utf-8")
        marker = body.split("\n", 1)[0]
        if marker.startswith("<!-- azft-plan:"):
            found.append((marker, body))
    return found


@click.command("comment")
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(file_okay=False, exists=True),
    help="The folder `azft ci review --out` wrote.",
)
@click.option("--pr", "pr", type=int, default=None, help="Pull request number (default: from $GITHUB_EVENT_PATH).")
@click.option("--repo", "repo", default=None, metavar="OWNER/NAME", help="Default: $GITHUB_REPOSITORY.")
@click.option(
    "--output",
    "-o",
    type=click.Choice(["table", "json"]),
    default="table",
    help="json: one document on stdout with each comment's action and address.",
)
def comment_cmd(out: str, pr: int | None, repo: str | None, output: str) -> int:
    """Post each spec's plan as one pull-request comment, updating the comment an earlier run posted."""
    bodies = comment_files(Path(out))
    posted: list[dict] = []
    doc: dict = {"pull_request": None, "comments": posted, "error": None}

    def emit() -> None:
        if output == "json":
            click.echo(json.dumps(doc, indent=2))

    if not bodies:
        click.echo("no comment to post", err=True)
        emit()
        return EXIT_OK
    number = pull_request_number(pr)
    repo = repo or os.environ.get("GITHUB_REPOSITORY")
    token = os.environ.get("GITHUB_TOKEN")
    if not number or not repo:
        raise UsageError("no pull request to comment on", hint="pass --pr and --repo, or run on a pull_request event")
    if not token:
        raise UsageError("$GITHUB_TOKEN is not set", hint="the action passes its github-token input")
    gh = GitHub(os.environ.get("GITHUB_API_URL") or "https://api.github.com", token)
    try:
        existing = gh.comments(repo, number)
        doc["pull_request"] = number
        for marker, body in bodies:
            action, url = gh.upsert(repo, number, marker, body, existing)
            click.echo(f"{marker[5:-4]}: {action} {url}", err=True)
            posted.append({"spec": marker[5:-4].removeprefix("azft-plan:"), "action": action, "url": url})
    except GitHubError as e:
        # a read-only token (pull requests from forks) must not fail the review: the summary has the plans
        click.echo(
            f"::warning title=azft::could not comment on pull request #{number}: {e.message}", err=output == "json"
        )
        doc["error"] = e.message
    emit()
    return EXIT_OK
