"""AWS facts for infrastructure workflows (EC2 and RDS utilisation, costs) and one change
(resizing an EC2 instance), over boto3.

boto3 is an optional extra (`pip install 'sloth-runner[aws]'`) imported on the first call, so
workflows that never touch AWS never pay its ~0.2 s import. Credentials, region and endpoint
come from boto3's usual chain (AWS_PROFILE, AWS_ACCESS_KEY_ID, AWS_REGION, AWS_ENDPOINT_URL,
~/.aws/...), overridable per run with `aws.configure{region, profile, endpoint_url}`. Every
failure becomes an IntegrationError naming the service, the operation and AWS's error code;
botocore never puts credentials in those messages.
"""

from __future__ import annotations

import threading

from sloth_runner.errors import IntegrationError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

SETTINGS = ("region", "profile", "endpoint_url")
MAX_DATAPOINTS = 1440  # CloudWatch answers at most this many per request


class AWSClient:
    """One boto3 session per run; boto3 clients are thread-safe once made."""

    def __init__(self) -> None:
        self.settings: dict[str, str] = {}
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    def configure(self, settings: dict[str, Any]) -> None:
        unknown = set(settings) - set(SETTINGS)
        if unknown:
            raise IntegrationError(f"aws.configure: unknown setting '{sorted(unknown)[0]}' "
                                   f"(settings: {', '.join(SETTINGS)})")
        for key, value in settings.items():
            if not isinstance(value, str) or not value:
                raise IntegrationError(f"aws.configure: {key} must be a non-empty string")
        with self._lock:
            self.settings.update(settings)
            self._clients.clear()

    def client(self, service: str) -> Any:
        with self._lock:
            found = self._clients.get(service)
            if found is None:
                try:
                    import boto3
                except ImportError:
                    raise IntegrationError("the aws module needs boto3: pip install "
                                           "'sloth-runner[aws]'") from None
                from botocore.config import Config

                # Standard retry mode (throttling and 5xx, with backoff), bounded attempts.
                config = Config(retries={"mode": "standard", "max_attempts": 3},
                                connect_timeout=10, read_timeout=60)
                with _errors(service, "setup"):
                    session = boto3.session.Session(profile_name=self.settings.get("profile"),
                                                    region_name=self.settings.get("region"))
                    found = session.client(service, endpoint_url=self.settings.get("endpoint_url"),
                                           config=config)
                self._clients[service] = found
            return found

    # -- EC2 ---------------------------------------------------------------------------------

    def ec2_utilization(self, window_s: float) -> list[dict[str, Any]]:
        """Running instances with their CPU average and peak over the window."""
        out = []
        for inst in self._instances([{"Name": "instance-state-name", "Values": ["running"]}]):
            iid = inst["InstanceId"]
            cpu = self._metric("AWS/EC2", "CPUUtilization", "InstanceId", iid, window_s)
            out.append({"instance_id": iid, "instance_type": inst["InstanceType"],
                        "name": _tag(inst, "Name"), "state": inst["State"]["Name"],
                        "cpu_avg": cpu["avg"], "cpu_max": cpu["max"],
                        "datapoints": cpu["count"]})
        return out

    def modify_instance(self, instance_id: str, instance_type: str, restart: bool = True,
                        dry_run: bool = False, wait_s: float = 600) -> dict[str, Any]:
        """Change an instance's type: stop it if it runs, change it, start it again."""
        ec2 = self.client("ec2")
        found = self._instances(instance_ids=[instance_id])
        if not found:
            raise IntegrationError(f"aws ec2: no instance {instance_id}")
        inst = found[0]
        before, state = inst["InstanceType"], inst["State"]["Name"]
        result = {"instance_id": instance_id, "previous_type": before,
                  "instance_type": instance_type, "changed": before != instance_type,
                  "state_before": state, "dry_run": dry_run, "restarted": False}
        if before == instance_type or dry_run:
            return result
        if state not in ("running", "stopped"):
            raise IntegrationError(f"aws ec2: instance {instance_id} is {state}; it can be "
                                   "resized when running or stopped")
        if state == "running" and not restart:
            raise IntegrationError(f"aws ec2: instance {instance_id} is running; resizing "
                                   "stops it (pass restart = true to allow)")
        delay = 5
        attempts = max(1, int(wait_s // delay))
        if state == "running":
            with _errors("ec2", "StopInstances"):
                ec2.stop_instances(InstanceIds=[instance_id])
                ec2.get_waiter("instance_stopped").wait(
                    InstanceIds=[instance_id], WaiterConfig={"Delay": delay, "MaxAttempts": attempts})
        with _errors("ec2", "ModifyInstanceAttribute"):
            ec2.modify_instance_attribute(InstanceId=instance_id,
                                          InstanceType={"Value": instance_type})
        if state == "running":
            with _errors("ec2", "StartInstances"):
                ec2.start_instances(InstanceIds=[instance_id])
            result["restarted"] = True
        return result

    def _instances(self, filters: list[dict] | None = None,
                   instance_ids: list[str] | None = None) -> list[dict[str, Any]]:
        kwargs: dict[str, Any] = {}
        if filters:
            kwargs["Filters"] = filters
        if instance_ids:
            kwargs["InstanceIds"] = instance_ids
        out = []
        with _errors("ec2", "DescribeInstances"):
            for page in self.client("ec2").get_paginator("describe_instances").paginate(**kwargs):
                for reservation in page["Reservations"]:
                    out.extend(reservation["Instances"])
        return out

    # -- RDS ---------------------------------------------------------------------------------

    def rds_performance(self, window_s: float) -> list[dict[str, Any]]:
        """Each DB instance's CPU, connections and free storage over the window."""
        out = []
        with _errors("rds", "DescribeDBInstances"):
            pages = list(self.client("rds").get_paginator("describe_db_instances").paginate())
        for page in pages:
            for db in page["DBInstances"]:
                name = db["DBInstanceIdentifier"]
                cpu = self._metric("AWS/RDS", "CPUUtilization", "DBInstanceIdentifier", name,
                                   window_s)
                conns = self._metric("AWS/RDS", "DatabaseConnections", "DBInstanceIdentifier",
                                     name, window_s)
                free = self._metric("AWS/RDS", "FreeStorageSpace", "DBInstanceIdentifier", name,
                                    window_s)
                out.append({"db_instance_id": name, "instance_class": db["DBInstanceClass"],
                            "engine": db.get("Engine"), "status": db.get("DBInstanceStatus"),
                            "cpu_avg": cpu["avg"], "cpu_max": cpu["max"],
                            "connections_avg": conns["avg"], "connections_max": conns["max"],
                            "free_storage_min_gb": None if free["min"] is None
                            else round(free["min"] / 2**30, 2)})
        return out

    # -- Cost Explorer -----------------------------------------------------------------------

    def costs(self, window_s: float) -> dict[str, Any]:
        """Unblended cost per service and per day over the last `window_s` (whole days)."""
        from datetime import date, timedelta

        days = max(1, round(window_s / 86400))
        end = date.today()
        start = end - timedelta(days=days)
        by_service: dict[str, float] = {}
        daily: list[dict[str, Any]] = []
        currency = "USD"
        kwargs: dict[str, Any] = {
            "TimePeriod": {"Start": start.isoformat(), "End": end.isoformat()},
            "Granularity": "DAILY", "Metrics": ["UnblendedCost"],
            "GroupBy": [{"Type": "DIMENSION", "Key": "SERVICE"}],
        }
        ce = self.client("ce")
        while True:
            with _errors("ce", "GetCostAndUsage"):
                page = ce.get_cost_and_usage(**kwargs)
            for period in page.get("ResultsByTime", []):
                day_total = 0.0
                for group in period.get("Groups", []):
                    metric = group["Metrics"]["UnblendedCost"]
                    amount = float(metric["Amount"])
                    currency = metric.get("Unit", currency)
                    service = group["Keys"][0]
                    by_service[service] = by_service.get(service, 0.0) + amount
                    day_total += amount
                daily.append({"date": period["TimePeriod"]["Start"],
                              "amount": round(day_total, 4)})
            token = page.get("NextPageToken")
            if not token:
                break
            kwargs["NextPageToken"] = token
        return {"total": round(sum(by_service.values()), 4), "currency": currency,
                "by_service": {k: round(v, 4) for k, v in sorted(by_service.items())},
                "daily": daily, "start": start.isoformat(), "end": end.isoformat()}

    # -- CloudWatch --------------------------------------------------------------------------

    def _metric(self, namespace: str, name: str, dimension: str, value: str,
                window_s: float) -> dict[str, Any]:
        from datetime import UTC, datetime, timedelta

        period = max(300, -(-int(window_s) // MAX_DATAPOINTS // 60) * 60)
        now = datetime.now(UTC)
        with _errors("cloudwatch", "GetMetricStatistics"):
            answer = self.client("cloudwatch").get_metric_statistics(
                Namespace=namespace, MetricName=name,
                Dimensions=[{"Name": dimension, "Value": value}],
                StartTime=now - timedelta(seconds=window_s), EndTime=now, Period=period,
                Statistics=["Average", "Maximum", "Minimum"])
        points = answer.get("Datapoints", [])
        if not points:
            return {"avg": None, "max": None, "min": None, "count": 0}
        return {"avg": round(sum(p["Average"] for p in points) / len(points), 2),
                "max": round(max(p["Maximum"] for p in points), 2),
                "min": round(min(p["Minimum"] for p in points), 2), "count": len(points)}


def _tag(resource: dict[str, Any], key: str) -> str | None:
    return next((t["Value"] for t in resource.get("Tags", []) if t.get("Key") == key), None)


class _errors:  # noqa: N801 (used like a function: `with _errors("ec2", "DescribeInstances")`)
    """botocore's exceptions as IntegrationErrors that say what to do. (A class, not
    contextlib.contextmanager: contextlib is not otherwise imported when a run starts.)"""

    def __init__(self, service: str, operation: str) -> None:
        self.service = service
        self.operation = operation

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> None:
        if isinstance(exc, Exception) and not isinstance(exc, IntegrationError):
            translated = _translate(exc, self.service, self.operation)
            if translated is not None:
                raise translated from exc


def _translate(exc: Exception, service: str, operation: str) -> IntegrationError | None:
    """The IntegrationError for a boto3/botocore exception; None for anything else."""
    kind = type(exc).__name__
    if kind == "ClientError":
        err = getattr(exc, "response", {}).get("Error", {})
        return IntegrationError(f"aws {service} {operation} failed: {err.get('Code')}: "
                                f"{err.get('Message')}")
    if kind in ("NoCredentialsError", "PartialCredentialsError", "ProfileNotFound"):
        return IntegrationError(f"aws {service}: {exc} (set AWS_PROFILE or "
                                "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)")
    if kind == "NoRegionError":
        return IntegrationError(f"aws {service}: no region (set AWS_REGION or "
                                "aws.configure{region = ...})")
    if type(exc).__module__.startswith(("botocore", "boto3")):
        return IntegrationError(f"aws {service} {operation}: {exc}")
    return None


def window_seconds(window: Any, default: str = "7d") -> float:
    from sloth_runner.durations import parse_duration

    try:
        return parse_duration(window if window is not None else default)
    except ValueError as exc:
        raise IntegrationError(f"aws: bad time window: {exc}") from exc
