"""services/aws.py against moto's AWS server on 127.0.0.1 (real boto3, real HTTP)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import boto3
import pytest

from sloth_runner.errors import IntegrationError
from sloth_runner.services.aws import AWSClient


def launch(instance_type: str = "m5.xlarge", name: str = "web") -> str:
    ec2 = boto3.client("ec2")
    r = ec2.run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1,
                          InstanceType=instance_type,
                          TagSpecifications=[{"ResourceType": "instance",
                                              "Tags": [{"Key": "Name", "Value": name}]}])
    return r["Instances"][0]["InstanceId"]


def put_cpu(namespace: str, dimension: str, value: str, points: list[tuple[float, float]]):
    now = datetime.now(UTC)
    boto3.client("cloudwatch").put_metric_data(Namespace=namespace, MetricData=[
        {"MetricName": "CPUUtilization", "Dimensions": [{"Name": dimension, "Value": value}],
         "Timestamp": now - timedelta(hours=hours), "Value": v, "Unit": "Percent"}
        for hours, v in points])


def test_ec2_utilization_of_running_instances(aws_server):
    busy, idle = launch(name="busy"), launch("t3.small", "idle")
    put_cpu("AWS/EC2", "InstanceId", busy, [(1, 80.0), (5, 60.0), (200, 99.0)])
    stopped = launch()
    boto3.client("ec2").stop_instances(InstanceIds=[stopped])
    rows = {r["instance_id"]: r for r in AWSClient().ec2_utilization(7 * 86400)}
    assert set(rows) == {busy, idle}  # stopped instances use no CPU
    assert (rows[busy]["cpu_avg"], rows[busy]["cpu_max"], rows[busy]["datapoints"]) == \
        (70.0, 80.0, 2)  # the 200-hour-old point is outside the 7-day window
    assert rows[busy]["name"] == "busy" and rows[busy]["instance_type"] == "m5.xlarge"
    assert rows[idle]["cpu_avg"] is None and rows[idle]["datapoints"] == 0


def test_rds_performance(aws_server):
    boto3.client("rds").create_db_instance(
        DBInstanceIdentifier="orders-db", DBInstanceClass="db.t3.medium", Engine="postgres",
        MasterUsername="admin", MasterUserPassword="not-a-secret-1", AllocatedStorage=20)
    put_cpu("AWS/RDS", "DBInstanceIdentifier", "orders-db", [(1, 30.0), (2, 50.0)])
    (row,) = AWSClient().rds_performance(86400)
    assert row["db_instance_id"] == "orders-db" and row["instance_class"] == "db.t3.medium"
    assert (row["cpu_avg"], row["cpu_max"]) == (40.0, 50.0)
    assert row["connections_avg"] is None


def test_costs_sum_per_service_and_day(aws_server):
    day = date.today() - timedelta(days=1)
    aws_server.queue_costs([{"ResultsByTime": [{
        "TimePeriod": {"Start": day.isoformat(), "End": date.today().isoformat()},
        "Total": {}, "Estimated": False,
        "Groups": [
            {"Keys": ["Amazon EC2"], "Metrics": {"UnblendedCost": {"Amount": "12.5", "Unit": "USD"}}},
            {"Keys": ["Amazon RDS"], "Metrics": {"UnblendedCost": {"Amount": "7.25", "Unit": "USD"}}},
        ]}], "DimensionValueAttributes": []}])
    costs = AWSClient().costs(30 * 86400)
    assert costs["by_service"] == {"Amazon EC2": 12.5, "Amazon RDS": 7.25}
    assert costs["total"] == 19.75 and costs["currency"] == "USD"
    assert costs["daily"] == [{"date": day.isoformat(), "amount": 19.75}]
    assert costs["start"] == (date.today() - timedelta(days=30)).isoformat()


def test_modify_instance_stops_resizes_and_restarts(aws_server):
    iid = launch("m5.xlarge")
    client = AWSClient()
    plan = client.modify_instance(iid, "m5.large", dry_run=True)
    assert plan["changed"] is True and plan["dry_run"] is True
    ec2 = boto3.client("ec2")
    assert ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0][
        "InstanceType"] == "m5.xlarge"  # a dry run changes nothing
    done = client.modify_instance(iid, "m5.large", wait_s=30)
    inst = ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]
    assert inst["InstanceType"] == "m5.large" and done["restarted"] is True
    assert inst["State"]["Name"] in ("pending", "running")
    with pytest.raises(IntegrationError, match="is running; resizing stops it"):
        client.modify_instance(iid, "m5.xlarge", restart=False)


def test_errors_name_the_operation_and_never_the_secret(aws_server, monkeypatch):
    with pytest.raises(IntegrationError, match=r"aws ec2 DescribeInstances failed: "
                                               r"InvalidInstanceID.NotFound"):
        AWSClient().modify_instance("i-0123456789abcdef0", "t3.micro")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    with pytest.raises(IntegrationError, match="aws ec2 DescribeInstances: Could not connect") as e:
        AWSClient().ec2_utilization(3600)
    assert "testing-secret" not in str(e.value)
    with pytest.raises(IntegrationError, match="unknown setting 'zone'"):
        AWSClient().configure({"zone": "x"})
