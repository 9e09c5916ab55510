"""pytest fixtures shared by the test_otlp_*.py files (imported by them with
`from otlp.fixtures import *`)."""
import pytest

from otlp.harness import Receiver, SdkService


@pytest.fixture
def receivers(tmp_path):
    """make(**kw) -> a started-or-not Receiver; all are killed at teardown.
    Request it before agent_factory so agents stop first (teardown runs in
    reverse) and never flush into a receiver that is already gone."""
    made = []

    def make(start=True, **kw):
        r = Receiver(tmp_path, name=f"receiver{len(made)}", **kw)
        made.append(r)
        return r.start() if start else r

    yield make
    for r in made:
        r.kill()


@pytest.fixture
def receiver(receivers):
    return receivers()


@pytest.fixture
def sdk_services(tmp_path):
    made = []

    def make(*args, **kw):
        s = SdkService(tmp_path, *args, **kw)
        made.append(s)
        return s

    yield make
    for s in made:
        if s.proc.poll() is None:
            s.proc.kill()
            s.proc.wait(timeout=10)
