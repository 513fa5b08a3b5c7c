"""Test-only fault injection for an API process, loaded by Python at start-up when this folder is on
PYTHONPATH and ``PAGEMILL_TEST_FAULT=usage`` is set: ``GET /api/v1/usage`` raises an exception no handler
expects (a stand-in for a bug), so the tests can see how a real server answers and logs an unhandled error.
Nothing in the product knows about it.
"""

import os

FAULT_MESSAGE = "injected fault: a bug in the usage route"
FAULT_ENV = "PAGEMILL_TEST_FAULT"


def _broken_usage_of(*_args: object, **_kwargs: object) -> object:
    raise RuntimeError(FAULT_MESSAGE)


# Only in the process the test starts with the variable: importing this module (for FAULT_MESSAGE) must not
# break the importing process.
if os.environ.get(FAULT_ENV) == "usage":
    from pagemill.tenancy import usage

    usage.usage_of = _broken_usage_of  # type: ignore[assignment]
