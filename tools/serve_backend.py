"""`make up BACKEND=postgres-kafka`'s servers: PostgreSQL on 5432 and Kafka on 9092 (its
KRaft controller on 9093), loopback only, the ones the test harness runs
(tests/harness/backends.py), on the ports and with the credentials that
components/postgres-kafka names. Their data stays in <run dir>/postgres-kafka between
runs (`make clean-data` deletes it).

Started by scripts/up.sh; prints "ready" once both serve clients, then runs until
SIGTERM or SIGINT, and stops both on the way out (also when one fails to start).
"""

import signal
import socket
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from harness.backends import Kafka, Postgres

# What components/postgres-kafka/*.yaml point the sidecars at.
POSTGRES_PORT, KAFKA_PORT, KAFKA_CONTROLLER_PORT = 5432, 9092, 9093
DATABASE, PASSWORD = "tasks", "postgres"
# Dapr's state.postgresql creates its metadata table on start with CREATE TABLE IF NOT
# EXISTS, and two sidecars doing that at once race in PostgreSQL's catalog: one exits
# ("failed to ensure metadata table exists"), and `make up` stops with it. The same
# statement, run once here before any sidecar starts, leaves them nothing to race on
# (the rest of their migration is serialized by a row lock in this table).
METADATA_TABLE = (
    "CREATE TABLE IF NOT EXISTS dapr_metadata (key text NOT NULL PRIMARY KEY, value text NOT NULL)"
)


def taken(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def main(run_dir: Path) -> int:
    busy = [p for p in (POSTGRES_PORT, KAFKA_PORT, KAFKA_CONTROLLER_PORT) if taken(p)]
    if busy:
        print(f"ports {busy} are taken: stop what listens there first", file=sys.stderr)
        return 1
    workdir = run_dir / "postgres-kafka"
    workdir.mkdir(parents=True, exist_ok=True)
    postgres = Postgres(workdir, database=DATABASE, port=POSTGRES_PORT, password=PASSWORD)
    kafka = Kafka(workdir, port=KAFKA_PORT, controller_port=KAFKA_CONTROLLER_PORT)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        postgres.start()
        postgres.query(METADATA_TABLE)
        kafka.start()
        print(f"ready: PostgreSQL on {POSTGRES_PORT}, Kafka on {KAFKA_PORT} (data in {workdir})")
        sys.stdout.flush()
        while not stop.is_set() and postgres.process.running and kafka.process.running:
            stop.wait(0.5)
        if not stop.is_set():
            gone = postgres.process if not postgres.process.running else kafka.process
            print(f"{gone.name} exited:\n{gone.log_tail(5)}", file=sys.stderr)
            return 1
        return 0
    except Exception as error:  # a server that did not start: say why, stop the other
        print(f"{type(error).__name__}: {error}", file=sys.stderr)
        return 1
    finally:
        kafka.stop()
        postgres.stop()


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
