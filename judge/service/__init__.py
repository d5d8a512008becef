"""`judge serve`: the judging service over the same stages as `judge compare`.

`app` builds the FastAPI application and serves it; `api` is the REST API under ``/v1``; `ui` the
web pages (leaderboard, comparison, review) with their assets in ``static/``; `db` the SQLite index
of comparisons, jobs and labels; `jobs` the runner that starts each comparison as a child process
(`child`); `status` folds a job's progress file into per-stage progress; `views` reads run folders
for the API and pages; `spec` checks submitted comparisons; `security` the token, header, host and
bind rules; `client` is what `judge submit|status|watch` call. The run folders stay the source of
truth.
"""

from judge.service.app import DEFAULT_PORT, create_app, serve
from judge.service.client import DEFAULT_URL, ServiceClient
from judge.service.security import client_token

__all__ = ["DEFAULT_PORT", "DEFAULT_URL", "ServiceClient", "client_token", "create_app", "serve"]
