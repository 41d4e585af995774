import pytest

from sloth_runner.ai.client import AIService
from sloth_runner.store import Store
from sloth_runner.store.ai_usage import AIUsageStore
from tests.conftest import serving

API_KEY = "sk-test-SECRET-0123456789abcdefghij"


class Sleeps(list):
    def __call__(self, seconds):
        self.append(seconds)


@pytest.fixture
def sleeps():
    return Sleeps()


def make_service(settings: dict, sleep=None) -> AIService:
    """An AIService with the given settings, recording usage in the test's own store."""
    store = Store()
    notices: list[str] = []
    svc = AIService(usage=lambda: AIUsageStore(store), environ={}, notice=notices.append,
                    **({"sleep": sleep} if sleep is not None else {}))
    svc.configure(settings)
    svc.notices = notices
    svc.store = store
    return svc


@pytest.fixture
def service(server, sleeps):
    """Pointed at the fault server; retries sleep into `sleeps` instead of waiting."""
    return make_service({"provider": "openai", "api_key": API_KEY, "base_url": server.base_url,
                         "model": "gpt-4o-mini", "timeout": 2, "retry_attempts": 3}, sleeps)


@pytest.fixture(scope="session")
def llama_server():
    from tests.ai.llama_server import LlamaServer

    yield from serving(LlamaServer)


@pytest.fixture
def llama_service(llama_server):
    return make_service({"provider": "openai", "base_url": llama_server.base_url,
                         "model": "smollm2", "timeout": 60, "retry_attempts": 0})
