from __future__ import annotations

import pytest

from osprey.eval.fixtures import write_fixtures


@pytest.fixture(scope="session")
def eval_fixtures(tmp_path_factory):
    """Benchmark files in the official formats, built from two synthetic scenes."""
    return write_fixtures(tmp_path_factory.mktemp("eval_fixtures"))
