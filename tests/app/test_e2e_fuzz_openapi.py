"""Schemathesis fuzzes the operations API described by docs/openapi.yaml on a real app host
(durablehost process + Azurite) with every built-in check: no 5xx, every status code,
content type, header and body documented, valid input accepted and invalid input refused.

Bounded and reproducible: the examples phase, 20 fuzzed examples per operation (valid and
invalid), the coverage phase's invalid boundaries and undeclared methods; derandomized, no
example database (tests.app.hypothesis_setup keeps Hypothesis' files out of the tree).
The host is this module's own, so the operations the fuzzer starts die with it.
`ignored_auth` is the one check left out: the local host takes requests without keys.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.specs.openapi.formats import unregister_string_format

from operations.idempotency import check_key
from tests.app.conftest import AppHost, run_app_host
from tests.app.hypothesis_setup import HYPOTHESIS_HOME
from tests.support.azurite import Azurite

pytestmark = pytest.mark.e2e

SPEC_PATH = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"
EXAMPLES_PER_OPERATION = 20
# Reports do real work per row and per partition (one activity each); the fuzzer's valid
# counts (up to 5,000,000 rows, 64 partitions) are cut to these so the host's work does not
# slow the fuzz down. Still valid, so nothing else changes.
FUZZ_MAX_ROWS = 200
FUZZ_MAX_PARTITIONS = 2


@pytest.fixture(scope="module")
def fuzz_host(tmp_path_factory: pytest.TempPathFactory, azurite: Azurite) -> Iterator[AppHost]:
    with run_app_host(tmp_path_factory.mktemp("fuzz"), azurite) as host:
        yield host


# What `format: uri` means in this spec's inputs (callbackUrl, urls): an absolute http(s)
# URL of a public host (check_url; docs/operations.md, "Outbound requests"). A generic URI
# (a 300-character DNS name, ftp:, a literal private address) is rightly refused.
PUBLIC_HTTP_URLS = st.builds(
    "{}://{}.example.com/{}".format,
    st.sampled_from(["http", "https"]),
    st.from_regex(r"[a-z0-9]{1,20}", fullmatch=True),
    st.from_regex(r"[A-Za-z0-9._~-]{0,40}", fullmatch=True),
)


@pytest.fixture(scope="module")
def api_schema(fuzz_host: AppHost) -> Iterator[schemathesis.BaseSchema]:
    schemathesis.openapi.format("uri", PUBLIC_HTTP_URLS)
    schema = schemathesis.openapi.from_path(SPEC_PATH)
    schema.config.update(base_url=fuzz_host.url)
    # The local host runs without function keys (docs/openapi.yaml: "locally keys are
    # optional"), so requests without a key are accepted by design; enforced keys are
    # tested against a deployment copy in test_e2e_function_keys.py.
    schema.config.checks.update(excluded_check_names=["ignored_auth"])
    # The coverage phase walks every boundary deterministically, unbounded by max_examples;
    # its valid cases each start an operation (~4x the time of the rest together), so it
    # runs the invalid side only (and the undeclared methods). Examples and fuzzing still
    # send valid and invalid data.
    schema.config.phases.coverage.generation.update(modes=[GenerationMode.NEGATIVE])
    yield schema
    unregister_string_format("uri")  # back to schemathesis' own generator


schema = schemathesis.pytest.from_fixture("api_schema")


def _prepare(case: schemathesis.Case) -> bool:
    """Adjust a generated case for what a schema cannot say; False to skip it.

    Each adjustment keeps a valid case valid and an invalid one invalid.
    """
    kinds = {"approval", "ingest", "report"}
    # POST /api/operations/report is the startReport operation, fuzzed under its own path.
    if (
        case.operation.path == "/api/operations/{id}"
        and (case.path_parameters or {}).get("id") in kinds
    ):
        return False
    body = case.body
    if case.path == "/api/operations/report" and isinstance(body, dict):
        for field, most in (("rows", FUZZ_MAX_ROWS), ("partitions", FUZZ_MAX_PARTITIONS)):
            value = body.get(field)
            if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
                body[field] = min(value, most)
    headers: MutableMapping[str, Any] = case.headers or {}
    key = headers.get("Idempotency-Key")
    if isinstance(key, str) and check_key(key) is None:
        # A key names one request: the fuzzer reusing a key for another body is rightly a
        # 422, which a stateless schema cannot express. A fresh key per case is as valid.
        headers["Idempotency-Key"] = f"fuzz-{uuid.uuid4()}"
    positive = case.meta is not None and case.meta.generation.mode is GenerationMode.POSITIVE
    if positive and case.query and "continuationToken" in case.query:
        # Only tokens from nextLink are valid; a generated string is not one (400).
        del case.query["continuationToken"]
    return True


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_the_api_keeps_its_contract_under_fuzzing(case: schemathesis.Case) -> None:
    if _prepare(case):
        case.call_and_validate()


def test_fuzzing_left_no_hypothesis_files_in_the_work_tree() -> None:
    repo = SPEC_PATH.parents[1]
    assert not HYPOTHESIS_HOME.is_relative_to(repo)
    assert not (repo / ".hypothesis" / "examples").exists()
