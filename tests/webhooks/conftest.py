from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

# The same fixtures: real agents; import on node web; node n1 and its real sync pass.
from tests.cluster.conftest import cluster  # noqa: F401
from tests.nodes.conftest import import_package, n1, sync  # noqa: F401
from tests.webhooks.receiver import Receiver
from webhooks.models import WebhookEndpoint
from webhooks.services import endpoint_create

SECRET = "a-test-secret-of-some-length"
EndpointMaker = Callable[..., WebhookEndpoint]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.close()


@pytest.fixture
def endpoint(receiver: Receiver) -> EndpointMaker:
    """``endpoint("package.imported", ...)``: an endpoint at the test's receiver for these events."""

    def make(*events: str, secret: str = SECRET) -> WebhookEndpoint:
        return endpoint_create(url=receiver.url, events=events, secret=secret)[0]

    return make
