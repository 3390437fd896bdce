"""Google's official Cloud Run client (google-cloud-run, REST transport) driven
through a full lifecycle against the canary emulator.

Usage: python cloud_run_lifecycle.py http://127.0.0.1:PORT
Exits 0 when every step behaved as Cloud Run does; prints the failing step otherwise.
"""

import sys

from google.api_core import exceptions
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import run_v2

ENDPOINT = sys.argv[1]
PARENT = "projects/demo/locations/us-central1"
NAME = f"{PARENT}/services/hello"
OPTIONS = ClientOptions(api_endpoint=ENDPOINT)

services = run_v2.ServicesClient(credentials=AnonymousCredentials(), transport="rest", client_options=OPTIONS)
revisions = run_v2.RevisionsClient(credentials=AnonymousCredentials(), transport="rest", client_options=OPTIONS)


def step(name):
    print(f"-- {name}", flush=True)


def expect(error, call):
    try:
        call()
    except error as e:
        return e
    raise AssertionError(f"expected {error.__name__}")


step("create, waiting on the operation")
op = services.create_service(
    parent=PARENT,
    service_id="hello",
    service=run_v2.Service(
        labels={"team": "payments"},
        template=run_v2.RevisionTemplate(
            containers=[run_v2.Container(image="gcr.io/demo/hello:v1", env=[run_v2.EnvVar(name="MODE", value="prod")])],
            scaling=run_v2.RevisionScaling(min_instance_count=1, max_instance_count=5),
        ),
    ),
)
created = op.result(timeout=60)
assert created.name == NAME, created.name
assert created.reconciling is False
assert created.terminal_condition.state == run_v2.Condition.State.CONDITION_SUCCEEDED, created.terminal_condition
assert created.latest_ready_revision.startswith(f"{NAME}/revisions/hello-"), created.latest_ready_revision
assert created.generation == 1 and created.observed_generation == 1
stable = created.latest_ready_revision.rsplit("/", 1)[1]

step("get")
got = services.get_service(name=NAME)
assert got.labels["team"] == "payments"
assert got.template.scaling.max_instance_count == 5
assert got.template.containers[0].env[0].value == "prod"
assert got.traffic_statuses[0].percent == 100 and got.traffic_statuses[0].revision == stable
old_etag = got.etag

step("a pinned revision at 0% with tags stable and canary")
canary = run_v2.Service(got)
canary.template.revision = "hello-v2"
canary.template.containers[0].image = "gcr.io/demo/hello:v2"
canary.traffic = [
    run_v2.TrafficTarget(type_=run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION, revision=stable, percent=100, tag="stable"),
    run_v2.TrafficTarget(type_=run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION, revision="hello-v2", percent=0, tag="canary"),
]
deployed = services.update_service(service=canary).result(timeout=60)
assert deployed.latest_created_revision == f"{NAME}/revisions/hello-v2", deployed.latest_created_revision
tags = {t.tag: t for t in deployed.traffic_statuses}
assert tags["canary"].percent == 0 and tags["canary"].uri, tags
assert tags["stable"].percent == 100 and tags["stable"].revision == stable
assert deployed.generation == 2

step("a 95/5 split")
split = run_v2.Service(deployed)
split.traffic = [
    run_v2.TrafficTarget(type_=run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION, revision=stable, percent=95, tag="stable"),
    run_v2.TrafficTarget(type_=run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION, revision="hello-v2", percent=5, tag="canary"),
]
after = services.update_service(service=split).result(timeout=60)
assert sorted(t.percent for t in after.traffic_statuses) == [5, 95], after.traffic_statuses
assert after.latest_created_revision == deployed.latest_created_revision, "a traffic-only change creates no revision"

step("list and get revisions")
listed = list(revisions.list_revisions(parent=NAME))
assert sorted(r.name.rsplit("/", 1)[1] for r in listed) == sorted([stable, "hello-v2"]), listed
v2 = revisions.get_revision(name=f"{NAME}/revisions/hello-v2")
assert v2.containers[0].image == "gcr.io/demo/hello:v2"
assert v2.service == NAME
assert any(c.type_ == "Ready" and c.state == run_v2.Condition.State.CONDITION_SUCCEEDED for c in v2.conditions), v2.conditions

step("a stale etag is refused")
stale = run_v2.Service(after)
stale.etag = old_etag
stale.labels["team"] = "other"
err = expect(exceptions.Conflict, lambda: services.update_service(service=stale))
assert "etag" in err.message, err.message

step("traffic that does not add up to 100 is refused")
bad = run_v2.Service(after)
bad.traffic = [run_v2.TrafficTarget(type_=run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION, revision=stable, percent=90)]
err = expect(exceptions.BadRequest, lambda: services.update_service(service=bad))
assert "100" in err.message, err.message

step("404 on a missing service")
expect(exceptions.NotFound, lambda: services.get_service(name=f"{PARENT}/services/nope"))

step("list services")
assert [s.name for s in services.list_services(parent=PARENT)] == [NAME]

step("delete")
gone = services.delete_service(name=NAME).result(timeout=60)
assert gone.name == NAME
expect(exceptions.NotFound, lambda: services.get_service(name=NAME))
assert list(services.list_services(parent=PARENT)) == []

print("ok: google-cloud-run completed the lifecycle against the emulator")
