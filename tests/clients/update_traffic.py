"""A person changing a service's traffic by hand with Google's official Cloud Run client
(google-cloud-run, REST transport), as the runbook's
`gcloud run services update-traffic SERVICE --to-revisions REVISION=PERCENT,...` does:
the named revisions get their percentages, every other entry drops to 0%, tags stay.

Usage: python update_traffic.py http://127.0.0.1:PORT projects/P/locations/L/services/S REVISION=PERCENT...
Prints the traffic the service's spec holds afterwards, one `revision percent tag` per line.
"""

import sys

from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import run_v2

endpoint, name, *assignments = sys.argv[1:]
wanted = {}
for a in assignments:
    revision, percent = a.split("=")
    wanted[revision] = int(percent)

services = run_v2.ServicesClient(
    credentials=AnonymousCredentials(), transport="rest", client_options=ClientOptions(api_endpoint=endpoint)
)
service = services.get_service(name=name)
by_revision = {}
traffic = []
for t in service.traffic:
    entry = run_v2.TrafficTarget(t)
    entry.percent = wanted.get(t.revision, 0) if t.revision not in by_revision else 0
    by_revision[t.revision] = entry
    traffic.append(entry)
REVISION = run_v2.TrafficTargetAllocationType.TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION
for revision, percent in wanted.items():
    if revision not in by_revision:
        traffic.append(run_v2.TrafficTarget(type_=REVISION, revision=revision, percent=percent))
del service.traffic[:]
service.traffic.extend(traffic)
# Not waiting on the operation (`--async`): the tests' emulator clock moves only when
# they move it, and the new traffic is in the service's spec at once.
services.update_service(service=service)
updated = services.get_service(name=name)
for t in updated.traffic:
    print(t.revision, t.percent, t.tag or "-")
