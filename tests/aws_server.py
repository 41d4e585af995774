"""moto's AWS server on 127.0.0.1 for tests: EC2, RDS, CloudWatch and Cost Explorer speak the
real AWS wire protocols to boto3. `reset()` empties it between tests; `env` points boto3 at it
with throwaway credentials. It runs in a daemon thread and `stop()` ends it."""

from __future__ import annotations

import json
import urllib.request


class AWSServer:
    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.server.start()
        host, port = self.server.get_host_and_port()
        self.url = f"http://{host}:{port}"
        self.env = {"AWS_ENDPOINT_URL": self.url, "AWS_ACCESS_KEY_ID": "testing",
                    "AWS_SECRET_ACCESS_KEY": "testing-secret", "AWS_DEFAULT_REGION": "us-east-1",
                    "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"}

    def _post(self, path: str, body: dict | None = None) -> None:
        data = json.dumps(body or {}).encode()
        request = urllib.request.Request(self.url + path, data=data, method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

    def reset(self) -> None:
        self._post("/moto-api/reset")

    def queue_costs(self, results: list[dict]) -> None:
        """What the next GetCostAndUsage calls answer (moto tracks no real costs)."""
        self._post("/moto-api/static/ce/cost-and-usage-results", {"results": results})

    def stop(self) -> None:
        self.server.stop()
