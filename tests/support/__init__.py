"""What the tests share, by what it is (conftest.py files hold only fixtures):

auth        secrets of apps that require keys; clients acting for one key
faults      faults injected into an app under test
fuzz        the fuzzed live server and the jobs seeded on it
harness     processors run directly over files, as the runner runs them
jobs        submitting jobs and waiting on them over HTTP (in-process and live)
multipart   request bodies built by hand
ports       free ports on 127.0.0.1, and who listens on them
problems    RFC 9457 problem responses
processors  the tests' own processors and their registry
queue       procrastinate workers in the test's event loop, and the queue's entries
servers     real `filejob serve` / `filejob worker` / CLI processes
services    PostgreSQL databases and a SeaweedFS store for the distributed profile
settings    test settings and the deployment profiles
snapshots   what an embedded server keeps, to check a refusal left it as it was
storage     what an app under test stores: rows, blobs, temp files
wait        wait_until: polling with a bound
webhooks    a real webhook receiver
"""
